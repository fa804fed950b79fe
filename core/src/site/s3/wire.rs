//! The sans-I/O part of the S3 client: request heads, response heads, key and query encoding,
//! and the few XML documents a site reads and writes. Nothing here touches a socket.
//!
//! ```text
//!  key ─► encode_path ─► "/bucket/k%20ey" ─► sign ─► write_request_head ─► bytes
//!  bytes ─► parse_response_head ─► ResponseHead { status, framing, close }
//!  body  ─► error_code / parse_list / parse_delete_errors
//! ```

use std::fmt::Write as _;
pub use tessera_http::sigv4::{percent_decode, uri_encode_into as encode_into};

use tessera_http::codec::head::Framing;

use super::super::{ListEntry, ListPage, SiteError};

/// Most headers in a response head we parse; S3 sends ~10.
pub const RESPONSE_HEADERS_MAX: usize = 64;
/// Longest response head; also the size of each connection's read buffer.
pub const RESPONSE_HEAD_BYTES_MAX: usize = 16 * 1024;
/// Longest body we buffer whole (errors, listings, delete results). A listing of 1000 keys of
/// 1024 bytes, URL-encoded, is ~3.5 MiB.
pub const SMALL_BODY_BYTES_MAX: usize = 8 * 1024 * 1024;

/// What the client needs from a response head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// Bytes of the head, including the blank line.
    pub head_len: usize,
    /// How the body is framed (ignoring that a HEAD response has none).
    pub framing: Framing,
    /// The server will close the connection after this response.
    pub close: bool,
    /// Neither Content-Length nor chunked: the body runs until the server closes (RFC 9112
    /// §6.3). `framing` is then `None` and `close` is true.
    pub to_close: bool,
    /// `Content-Range: bytes first-last/total`: the first byte of the body in the object.
    pub range_first: Option<u64>,
}

/// The first byte of `bytes first-last/total`, if the value has that form.
fn content_range_first(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let spec = text.strip_prefix("bytes ")?;
    let (first, _) = spec.split_once('-')?;
    first.trim().parse().ok()
}

/// Parses a response head from the start of `input`; `Ok(None)` when more bytes are needed.
pub fn parse_response_head(input: &[u8]) -> Result<Option<ResponseHead>, SiteError> {
    let mut headers = [httparse::EMPTY_HEADER; RESPONSE_HEADERS_MAX];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(input) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if input.len() >= RESPONSE_HEAD_BYTES_MAX {
                return Err(SiteError::Protocol("response head too large"));
            }
            return Ok(None);
        }
        Err(_) => return Err(SiteError::Protocol("malformed response head")),
    };
    let status = response.code.ok_or(SiteError::Protocol("no status"))?;
    let mut close = response.version == Some(0);
    let mut length = None;
    let mut chunked = false;
    let mut range_first = None;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(header.value)
                .map_err(|_| SiteError::Protocol("bad Content-Length"))?;
            let value: u64 = text
                .trim()
                .parse()
                .map_err(|_| SiteError::Protocol("bad Content-Length"))?;
            if length.is_some_and(|l| l != value) {
                return Err(SiteError::Protocol("conflicting Content-Length"));
            }
            length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = header
                .value
                .split(|&b| b == b',')
                .any(|v| v.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if header.name.eq_ignore_ascii_case("content-range") {
            range_first = content_range_first(header.value);
        } else if header.name.eq_ignore_ascii_case("connection") {
            let value = header.value.trim_ascii();
            if value.eq_ignore_ascii_case(b"close") {
                close = true;
            } else if value.eq_ignore_ascii_case(b"keep-alive") {
                close = false;
            }
        }
    }
    let mut to_close = false;
    let framing = if chunked {
        Framing::Chunked
    } else if let Some(length) = length {
        Framing::Length(length)
    } else {
        // No framing: 204/304/1xx have no body; anything else runs to the end of the
        // connection, which therefore cannot be reused.
        if !(status == 204 || status == 304 || (100..200).contains(&status)) {
            to_close = true;
            close = true;
        }
        Framing::None
    };
    Ok(Some(ResponseHead {
        status,
        head_len,
        framing,
        close,
        to_close,
        range_first,
    }))
}

/// Writes a request head. `headers` must not contain `Host` or `Content-Length`.
pub fn write_request_head(
    out: &mut Vec<u8>,
    method: &str,
    target: &str,
    host: &str,
    headers: &[(&str, &str)],
    content_length: Option<u64>,
) {
    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        debug_assert!(!name.eq_ignore_ascii_case("host"));
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(length) = content_length {
        let mut text = String::with_capacity(40);
        let _ = write!(text, "Content-Length: {length}\r\n");
        out.extend_from_slice(text.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// The text between the first `<tag>` and the following `</tag>` in `xml`, from `from` on;
/// returns it and the offset after the closing tag.
fn element<'a>(xml: &'a str, tag: &str, from: usize) -> Option<(&'a str, usize)> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml[from..].find(&open)? + from + open.len();
    let end = xml[start..].find(&close)? + start;
    Some((&xml[start..end], end + close.len()))
}

/// Replaces the five predefined XML entities and numeric character references.
#[must_use]
pub fn xml_unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .map(|h| u32::from_str_radix(h, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse::<u32>))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        if let Some(c) = decoded {
            out.push(c);
            rest = &rest[semi + 1..];
        } else {
            out.push('&');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Appends `text` XML-escaped.
pub fn xml_escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
}

/// Whether `key` can travel in an XML 1.0 document (no control characters but tab, CR, LF).
#[must_use]
pub fn xml_safe(key: &str) -> bool {
    !key.chars().any(|c| {
        (c < ' ' && !matches!(c, '\t' | '\r' | '\n')) || c == '\u{fffe}' || c == '\u{ffff}'
    })
}

/// The S3 error code of an error body (`<Code>…</Code>`), or empty.
#[must_use]
pub fn error_code(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    element(&text, "Code", 0)
        .map(|(code, _)| xml_unescape(code))
        .unwrap_or_default()
}

/// Parses a `ListObjectsV2` result requested with `encoding-type=url`.
pub fn parse_list(body: &[u8]) -> Result<ListPage, SiteError> {
    let text = std::str::from_utf8(body).map_err(|_| SiteError::Protocol("listing not UTF-8"))?;
    if !text.contains("<ListBucketResult") {
        return Err(SiteError::Protocol("not a ListBucketResult"));
    }
    let url_encoded = element(text, "EncodingType", 0).is_some_and(|(v, _)| v == "url");
    let decode = |raw: &str| -> Result<String, SiteError> {
        let unescaped = xml_unescape(raw);
        if url_encoded {
            String::from_utf8(percent_decode(&unescaped, true))
                .map_err(|_| SiteError::Protocol("listed key not UTF-8"))
        } else {
            Ok(unescaped)
        }
    };
    let mut entries = Vec::new();
    let mut at = 0;
    while let Some((contents, next)) = element(text, "Contents", at) {
        let (key, _) =
            element(contents, "Key", 0).ok_or(SiteError::Protocol("entry without Key"))?;
        let (size, _) =
            element(contents, "Size", 0).ok_or(SiteError::Protocol("entry without Size"))?;
        let len = size
            .trim()
            .parse()
            .map_err(|_| SiteError::Protocol("bad Size"))?;
        entries.push(ListEntry {
            key: decode(key)?,
            len,
        });
        at = next;
    }
    let truncated = element(text, "IsTruncated", 0).is_some_and(|(v, _)| v.trim() == "true");
    let continuation = if truncated {
        let (token, _) = element(text, "NextContinuationToken", 0)
            .ok_or(SiteError::Protocol("truncated listing without token"))?;
        Some(xml_unescape(token))
    } else {
        None
    };
    Ok(ListPage {
        entries,
        continuation,
    })
}

/// The `DeleteObjects` request body for `keys` (quiet mode: only failures are reported).
#[must_use]
pub fn delete_objects_body(keys: &[&str]) -> String {
    let mut out = String::with_capacity(64 + keys.iter().map(|k| k.len() + 32).sum::<usize>());
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete><Quiet>true</Quiet>");
    for key in keys {
        out.push_str("<Object><Key>");
        xml_escape_into(&mut out, key);
        out.push_str("</Key></Object>");
    }
    out.push_str("</Delete>");
    out
}

/// The `<Error>` entries of a `DeleteObjects` result: (key, code) pairs.
pub fn parse_delete_errors(body: &[u8]) -> Result<Vec<(String, String)>, SiteError> {
    let text = std::str::from_utf8(body).map_err(|_| SiteError::Protocol("result not UTF-8"))?;
    if !text.contains("<DeleteResult") {
        return Err(SiteError::Protocol("not a DeleteResult"));
    }
    let mut errors = Vec::new();
    let mut at = 0;
    while let Some((error, next)) = element(text, "Error", at) {
        let key = element(error, "Key", 0).map(|(k, _)| xml_unescape(k));
        let code = element(error, "Code", 0).map(|(c, _)| xml_unescape(c));
        errors.push((key.unwrap_or_default(), code.unwrap_or_default()));
        at = next;
    }
    Ok(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_heads_parse_in_pieces_and_frame_bodies() {
        // A head split at every byte parses only when complete; length, chunked and
        // connection-close are read; a head without framing is refused.
        let head = b"HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\nContent-Range: bytes 7-11/20\r\n\r\nhello";
        for cut in 0..head.len() - 5 {
            assert!(parse_response_head(&head[..cut])
                .expect("partial is fine")
                .is_none());
        }
        let parsed = parse_response_head(head).expect("valid").expect("complete");
        assert_eq!(parsed.status, 206);
        assert_eq!(parsed.head_len, head.len() - 5);
        assert_eq!(parsed.framing, Framing::Length(5));
        assert_eq!(parsed.range_first, Some(7));
        assert!(!parsed.close);
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        let parsed = parse_response_head(chunked)
            .expect("valid")
            .expect("complete");
        assert_eq!(parsed.framing, Framing::Chunked);
        assert!(parsed.close);
        let unframed = b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n";
        let parsed = parse_response_head(unframed)
            .expect("valid")
            .expect("complete");
        assert!(parsed.to_close && parsed.close);
        let no_content = b"HTTP/1.1 204 No Content\r\n\r\n";
        let parsed = parse_response_head(no_content)
            .expect("valid")
            .expect("complete");
        assert!(!parsed.to_close && !parsed.close);
        assert_eq!(parsed.framing, Framing::None);
        assert!(matches!(
            parse_response_head(b"NOT HTTP\r\n\r\n"),
            Err(SiteError::Protocol(_))
        ));
    }

    #[test]
    fn keys_encode_to_the_sigv4_canonical_form_and_back() {
        // Every byte outside the unreserved set is escaped; decoding restores the key.
        let key = "a b/+%=~\u{1}é/&?#";
        let mut out = String::new();
        encode_into(&mut out, key.as_bytes(), true);
        assert_eq!(out, "a%20b/%2B%25%3D~%01%C3%A9/%26%3F%23");
        assert_eq!(percent_decode(&out, true), key.as_bytes());
        assert_eq!(percent_decode("a+b%2B", true), b"a b+");
        assert_eq!(percent_decode("a+b", false), b"a+b");
        let mut query = String::new();
        encode_into(&mut query, b"a/b", false);
        assert_eq!(query, "a%2Fb");
    }

    #[test]
    fn request_head_layout() {
        // Method, target, Host first, the given headers, Content-Length, blank line.
        let mut out = Vec::new();
        write_request_head(
            &mut out,
            "PUT",
            "/b/k",
            "h:1",
            &[("x-amz-date", "d")],
            Some(7),
        );
        assert_eq!(
            out,
            b"PUT /b/k HTTP/1.1\r\nHost: h:1\r\nx-amz-date: d\r\nContent-Length: 7\r\n\r\n"
        );
    }

    #[test]
    fn listing_and_delete_results_parse() {
        // A url-encoded listing decodes keys (including XML entities and %XX); a truncated one
        // carries its token; delete errors come back as (key, code).
        let body = br#"<?xml version="1.0"?><ListBucketResult><EncodingType>url</EncodingType>
            <Contents><Key>a+%26b</Key><Size>12</Size></Contents>
            <Contents><Key>c&amp;%2B</Key><Size>0</Size></Contents>
            <IsTruncated>true</IsTruncated><NextContinuationToken>t&amp;1</NextContinuationToken>
            </ListBucketResult>"#;
        let page = parse_list(body).expect("valid listing");
        assert_eq!(page.entries.len(), 2);
        assert_eq!(page.entries[0].key, "a &b");
        assert_eq!(page.entries[0].len, 12);
        assert_eq!(page.entries[1].key, "c&+");
        assert_eq!(page.continuation.as_deref(), Some("t&1"));
        let result = br"<DeleteResult><Error><Key>k&lt;1</Key><Code>AccessDenied</Code></Error></DeleteResult>";
        let errors = parse_delete_errors(result).expect("valid result");
        assert_eq!(errors, vec![("k<1".to_owned(), "AccessDenied".to_owned())]);
        assert_eq!(
            error_code(b"<Error><Code>SlowDown</Code></Error>"),
            "SlowDown"
        );
    }

    #[test]
    fn delete_body_escapes_keys() {
        // Markup characters in keys are escaped so the document stays well formed.
        let body = delete_objects_body(&["a<b", "c&d"]);
        assert!(body.contains("<Key>a&lt;b</Key>"));
        assert!(body.contains("<Key>c&amp;d</Key>"));
        assert!(xml_safe("plain é"));
        assert!(!xml_safe("bell\u{7}"));
    }
}
