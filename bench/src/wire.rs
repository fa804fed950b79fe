//! The sans-I/O half of the client: request heads (signed with `tessera_http`'s `Signer`),
//! aws-chunked framing of PUT bodies, response heads and the bits of S3 XML we read.
//!
//! ```text
//!  (method, bucket, key, mode) ─► write_head ─► "PUT /b/k HTTP/1.1\r\n… Authorization …\r\n\r\n"
//!  body bytes (from content::Pattern) ─► ChunkFramer ─► size lines, CRLFs, CRC32 trailer
//!  socket bytes ─► parse_response_head ─► ResponseHead { status, framing, close }
//!  small bodies ─► xml_text("Code") / count_tag("<Key>")
//! ```
//!
//! Nothing here touches a socket: `client.rs` owns the I/O.

use std::fmt::Write as _;
pub use tessera_http::sigv4::uri_encode_into as encode_into;

use tessera_http::checksum::{ChecksumAlgorithm, ChecksumHasher};
use tessera_http::codec::head::Framing;
use tessera_http::sigv4::{SignatureChain, SignedRequest, Signer};

use crate::args::PayloadMode;
use crate::error::BenchError;

/// Most headers in a response head we parse; S3 servers send ~10.
pub const RESPONSE_HEADERS_MAX: usize = 64;
/// Longest response head accepted.
pub const RESPONSE_HEAD_BYTES_MAX: usize = 16 * 1024;
/// Longest non-object body (errors, listings) we keep whole. A ListObjectsV2 page of 1000
/// keys of 1024 bytes is about 1.3 MiB; 4 MiB bounds a hostile or broken server.
pub const SMALL_BODY_BYTES_MAX: usize = 4 << 20;

/// `x-amz-content-sha256` of the aws-chunked unsigned mode with trailers.
pub const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
/// `x-amz-content-sha256` of the aws-chunked mode with signed chunks.
pub const STREAMING_SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
/// `x-amz-content-sha256` when the body is not covered by the signature.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// The SHA-256 of the empty string: the payload hash of bodiless requests.
pub const EMPTY_SHA256: &str = tessera_http::sigv4::EMPTY_SHA256_HEX;

/// Length of `;chunk-signature=` plus 64 hex digits.
const CHUNK_SIGNATURE_EXT_BYTES: u64 = 17 + 64;
/// The CRC32 trailer line: `x-amz-checksum-crc32:` + 8 base64 characters + CRLF.
const CRC32_TRAILER_LINE_BYTES: u64 = 21 + 8 + 2;

/// The path-style request path of an object (`key` empty: the bucket itself).
#[must_use]
pub fn object_path(bucket: &str, key: &str) -> String {
    let mut path = String::with_capacity(bucket.len() + key.len() + 2);
    path.push('/');
    encode_into(&mut path, bucket.as_bytes(), false);
    if !key.is_empty() {
        path.push('/');
        encode_into(&mut path, key.as_bytes(), true);
    }
    path
}

/// Writes a signed request head into `out` (cleared first).
///
/// `headers` are extra headers, all signed together with `host`; `content_length` is sent
/// unsigned when given. Returns the signing result (its chain seeds aws-chunked signatures).
#[allow(clippy::too_many_arguments)] // One flat call mirrors the request line and headers.
pub fn write_head(
    out: &mut Vec<u8>,
    keys: &Signer<'_>,
    method: &str,
    host: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    payload_hash: &str,
    content_length: Option<u64>,
    now_unix_s: i64,
) -> SignedRequest {
    let mut to_sign: Vec<(&str, &str)> = Vec::with_capacity(headers.len() + 1);
    to_sign.push(("host", host));
    to_sign.extend_from_slice(headers);
    let signed = keys.sign_headers(method, path, query, &to_sign, payload_hash, now_unix_s);
    out.clear();
    let mut text = String::with_capacity(512);
    // Writing into a String cannot fail.
    let _ = write!(text, "{method} {path}");
    if !query.is_empty() {
        text.push('?');
        text.push_str(query);
    }
    let _ = write!(
        text,
        " HTTP/1.1\r\nHost: {host}\r\nx-amz-date: {}\r\nx-amz-content-sha256: {}\r\nAuthorization: {}\r\n",
        signed.amz_date, signed.content_sha256, signed.authorization
    );
    for (name, value) in headers {
        let _ = write!(text, "{name}: {value}\r\n");
    }
    if let Some(length) = content_length {
        let _ = write!(text, "Content-Length: {length}\r\n");
    }
    text.push_str("\r\n");
    out.extend_from_slice(text.as_bytes());
    signed
}

fn hex_digits(value: u64) -> u64 {
    u64::from((64 - value.leading_zeros()).div_ceil(4).max(1))
}

/// The wire length of a `size`-byte payload framed by `mode` with `chunk_bytes` chunks.
#[must_use]
pub fn encoded_len(mode: PayloadMode, size: u64, chunk_bytes: usize) -> u64 {
    let chunk = chunk_bytes as u64;
    let full = size / chunk;
    let last = size % chunk;
    let framed = |len: u64, ext: u64| hex_digits(len) + ext + 2 + len + 2;
    match mode {
        PayloadMode::Unsigned | PayloadMode::Signed => size,
        PayloadMode::ChunkedCrc32 => {
            let mut total = full * framed(chunk, 0);
            if last > 0 {
                total += framed(last, 0);
            }
            // "0\r\n", the trailer line, the final CRLF.
            total + 3 + CRC32_TRAILER_LINE_BYTES + 2
        }
        PayloadMode::ChunkedSigned => {
            let mut total = full * framed(chunk, CHUNK_SIGNATURE_EXT_BYTES);
            if last > 0 {
                total += framed(last, CHUNK_SIGNATURE_EXT_BYTES);
            }
            // The empty final chunk: "0;chunk-signature=…\r\n\r\n".
            total + framed(0, CHUNK_SIGNATURE_EXT_BYTES)
        }
    }
}

/// The headers an aws-chunked PUT adds (signed), for `size` decoded bytes.
#[must_use]
pub fn chunked_headers(mode: PayloadMode, size: u64) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("content-encoding", "aws-chunked".to_owned()),
        ("x-amz-decoded-content-length", size.to_string()),
    ];
    if mode == PayloadMode::ChunkedCrc32 {
        headers.push(("x-amz-sdk-checksum-algorithm", "CRC32".to_owned()));
        headers.push(("x-amz-trailer", "x-amz-checksum-crc32".to_owned()));
    }
    headers
}

/// Frames the chunks of one aws-chunked body: the caller sends `prefix`, the data, then
/// [`CHUNK_SUFFIX`] for each chunk, and [`ChunkFramer::finish`]'s bytes at the end.
pub struct ChunkFramer {
    chain: Option<SignatureChain>,
    crc: Option<ChecksumHasher>,
}

impl std::fmt::Debug for ChunkFramer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkFramer")
            .field("signed", &self.chain.is_some())
            .finish_non_exhaustive()
    }
}

/// What follows every chunk's data.
pub const CHUNK_SUFFIX: &[u8] = b"\r\n";

impl ChunkFramer {
    /// A framer for `mode` (one of the chunked modes); `signed` is the request head's signing
    /// result, whose chain seeds the chunk signatures.
    #[must_use]
    pub fn new(mode: PayloadMode, signed: &SignedRequest) -> Self {
        match mode {
            PayloadMode::ChunkedSigned => ChunkFramer {
                chain: Some(signed.chain.clone()),
                crc: None,
            },
            PayloadMode::ChunkedCrc32 => ChunkFramer {
                chain: None,
                crc: Some(ChecksumHasher::new(ChecksumAlgorithm::Crc32)),
            },
            PayloadMode::Unsigned | PayloadMode::Signed => {
                panic!("ChunkFramer for a non-chunked mode")
            }
        }
    }

    /// Appends the size line of a non-empty chunk holding `data` to `out`.
    pub fn chunk_prefix(&mut self, data: &[u8], out: &mut Vec<u8>) {
        assert!(!data.is_empty(), "the empty chunk is written by finish");
        if let Some(crc) = &mut self.crc {
            crc.update(data);
        }
        if let Some(chain) = &mut self.chain {
            out.extend_from_slice(chain.sign_chunk(data).as_bytes());
        } else {
            let mut line = String::with_capacity(20);
            let _ = write!(line, "{:x}\r\n", data.len());
            out.extend_from_slice(line.as_bytes());
        }
    }

    /// Appends the final empty chunk and the trailers (the CRC32 of all data) to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        match (&mut self.chain, self.crc) {
            (Some(chain), _) => {
                out.extend_from_slice(chain.sign_chunk(&[]).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            (None, Some(crc)) => {
                out.extend_from_slice(b"0\r\n");
                out.extend_from_slice(b"x-amz-checksum-crc32:");
                out.extend_from_slice(crc.finalize().to_base64().as_bytes());
                out.extend_from_slice(b"\r\n\r\n");
            }
            (None, None) => unreachable!("constructed with a chain or a CRC"),
        }
    }
}

/// What the client needs from a response head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// Bytes of the head, blank line included.
    pub head_len: usize,
    /// How the body is framed (`None` also for bodiless statuses and HEAD responses).
    pub framing: Framing,
    /// `Content-Length`, also for a HEAD response (the object's size).
    pub content_length: Option<u64>,
    /// The body runs until the server closes (no length, not chunked).
    pub until_close: bool,
    /// The server closes the connection after this response.
    pub close: bool,
}

/// Parses a response head at the start of `input`; `Ok(None)` when more bytes are needed.
/// `head_request`: the request was a HEAD, so no body follows whatever the headers say.
pub fn parse_response_head(
    input: &[u8],
    head_request: bool,
) -> Result<Option<ResponseHead>, BenchError> {
    let mut headers = [httparse::EMPTY_HEADER; RESPONSE_HEADERS_MAX];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(input) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if input.len() < RESPONSE_HEAD_BYTES_MAX => return Ok(None),
        Ok(httparse::Status::Partial) => {
            return Err(BenchError::Protocol("response head too large"))
        }
        Err(_) => return Err(BenchError::Protocol("malformed response head")),
    };
    let status = response.code.ok_or(BenchError::Protocol("no status"))?;
    let mut close = response.version == Some(0);
    let mut content_length = None;
    let mut chunked = false;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .ok_or(BenchError::Protocol("bad Content-Length"))?;
            content_length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = header
                .value
                .split(|&b| b == b',')
                .any(|v| v.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if header.name.eq_ignore_ascii_case("connection") {
            let value = header.value.trim_ascii();
            if value.eq_ignore_ascii_case(b"close") {
                close = true;
            } else if value.eq_ignore_ascii_case(b"keep-alive") {
                close = false;
            }
        }
    }
    let bodiless = head_request || status == 204 || status == 304 || (100..200).contains(&status);
    let mut until_close = false;
    let framing = if bodiless {
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if let Some(length) = content_length {
        Framing::Length(length)
    } else {
        until_close = true;
        close = true;
        Framing::None
    };
    Ok(Some(ResponseHead {
        status,
        head_len,
        framing,
        content_length,
        until_close,
        close,
    }))
}

/// The text of the first `<tag>…</tag>` in an XML body (no entity decoding).
#[must_use]
pub fn xml_text<'a>(body: &'a [u8], tag: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(body).ok()?;
    let open = format!("<{tag}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find("</")? + start;
    Some(&text[start..end])
}

/// How many times `needle` occurs in `body` (e.g. `<Key>` in a listing page).
#[must_use]
pub fn count_tag(body: &[u8], needle: &str) -> u64 {
    let needle = needle.as_bytes();
    if needle.is_empty() || body.len() < needle.len() {
        return 0;
    }
    body.windows(needle.len()).filter(|w| *w == needle).count() as u64
}

/// Un-escapes the five XML entities (continuation tokens may contain `&amp;` etc.).
#[must_use]
pub fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_http::aws_chunked::ChunkedDecoder;
    use tessera_http::sigv4::{verify, AuthInput, PayloadMode as Verified};

    const AK: &str = "AKIDEXAMPLE";
    const SK: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const NOW: i64 = 1_700_000_000;

    fn signer() -> Signer<'static> {
        Signer {
            access_key: AK,
            secret: SK,
            region: "us-east-1",
            service: "s3",
        }
    }

    /// Parses a request head we wrote back into (method, path, query, headers).
    fn split_head(head: &[u8]) -> (String, String, String, Vec<(String, String)>) {
        let text = std::str::from_utf8(head).expect("ascii head");
        let mut lines = text.split("\r\n");
        let request_line = lines.next().expect("request line");
        let mut parts = request_line.split(' ');
        let method = parts.next().expect("method").to_owned();
        let target = parts.next().expect("target");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let headers = lines
            .take_while(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(": ").expect("header");
                (n.to_owned(), v.to_owned())
            })
            .collect();
        (method, path.to_owned(), query.to_owned(), headers)
    }

    fn verify_head(head: &[u8]) -> Verified {
        let (method, path, query, headers) = split_head(head);
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let input = AuthInput {
            method: &method,
            raw_path: &path,
            raw_query: &query,
            headers: &pairs,
            virtual_host_bucket: None,
        };
        let creds = [(AK, SK)];
        verify(&input, NOW, &creds[..])
            .expect("our signature verifies")
            .payload
    }

    #[test]
    fn signed_heads_verify_with_the_gateway_verifier() {
        // A GET of a key with spaces, `+`, `%` and UTF-8, and a listing with a query, both
        // verify with tessera-http's own SigV4 verifier (the one the gateway runs).
        let mut out = Vec::new();
        let path = object_path("bkt", "dir/a b+c%d/é~.txt");
        assert_eq!(path, "/bkt/dir/a%20b%2Bc%25d/%C3%A9~.txt");
        let _ = write_head(
            &mut out,
            &signer(),
            "GET",
            "127.0.0.1:9000",
            &path,
            "",
            &[],
            EMPTY_SHA256,
            None,
            NOW,
        );
        assert!(matches!(verify_head(&out), Verified::Sha256(_)));
        let _ = write_head(
            &mut out,
            &signer(),
            "GET",
            "127.0.0.1:9000",
            "/bkt",
            "list-type=2&max-keys=10&prefix=a%2Fb",
            &[],
            EMPTY_SHA256,
            None,
            NOW,
        );
        assert!(matches!(verify_head(&out), Verified::Sha256(_)));
    }

    fn encode_chunked(mode: PayloadMode, payload: &[u8], chunk: usize) -> (Vec<u8>, Verified) {
        let mut head = Vec::new();
        let extra = chunked_headers(mode, payload.len() as u64);
        let extra_refs: Vec<(&str, &str)> = extra.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let hash = if mode == PayloadMode::ChunkedSigned {
            STREAMING_SIGNED
        } else {
            STREAMING_UNSIGNED_TRAILER
        };
        let length = encoded_len(mode, payload.len() as u64, chunk);
        let signed = write_head(
            &mut head,
            &signer(),
            "PUT",
            "h:1",
            "/b/k",
            "",
            &extra_refs,
            hash,
            Some(length),
            NOW,
        );
        let verified = verify_head(&head);
        let mut framer = ChunkFramer::new(mode, &signed);
        let mut body = Vec::new();
        for piece in payload.chunks(chunk) {
            framer.chunk_prefix(piece, &mut body);
            body.extend_from_slice(piece);
            body.extend_from_slice(CHUNK_SUFFIX);
        }
        framer.finish(&mut body);
        assert_eq!(
            body.len() as u64,
            length,
            "encoded_len matches the bytes written"
        );
        (body, verified)
    }

    fn decode_all(mut decoder: ChunkedDecoder, body: &[u8], split: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < body.len() {
            let end = (at + split).min(body.len());
            let mut window = &body[at..end];
            while !window.is_empty() {
                let step = decoder.decode(window).expect("decodes");
                out.extend_from_slice(&window[step.data.clone()]);
                window = &window[step.consumed..];
                if step.consumed == 0 {
                    break;
                }
            }
            at = end;
        }
        decoder.finish().expect("complete and verified");
        out
    }

    #[test]
    fn aws_chunked_crc32_round_trips_through_the_gateway_decoder() {
        // A 200,000-byte body in 64 KiB chunks with a CRC32 trailer: the gateway's decoder,
        // fed in odd 777-byte pieces, returns the payload and the trailer checksum matches.
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (body, verified) = encode_chunked(PayloadMode::ChunkedCrc32, &payload, 64 * 1024);
        assert!(matches!(
            verified,
            Verified::StreamingUnsignedTrailer {
                decoded_content_length: 200_000
            }
        ));
        let decoder = ChunkedDecoder::for_payload(&verified, Some(ChecksumAlgorithm::Crc32))
            .expect("streaming");
        assert_eq!(decode_all(decoder, &body, 777), payload);
    }

    #[test]
    fn aws_chunked_signed_round_trips_and_a_tampered_byte_fails() {
        // Signed chunks verify in the gateway decoder; flipping one payload byte breaks the
        // chunk signature, so the encoder really signs what it sends.
        let payload: Vec<u8> = (0..70_000u32).map(|i| (i % 13) as u8).collect();
        let (mut body, verified) = encode_chunked(PayloadMode::ChunkedSigned, &payload, 8192);
        let decoder = ChunkedDecoder::for_payload(&verified, None).expect("streaming");
        assert_eq!(decode_all(decoder, &body, 4096), payload);
        let at = body.len() / 2;
        body[at] ^= 0x55;
        let mut decoder = ChunkedDecoder::for_payload(&verified, None).expect("streaming");
        let mut failed = false;
        let mut window = &body[..];
        while !window.is_empty() {
            match decoder.decode(window) {
                Ok(step) if step.consumed > 0 => window = &window[step.consumed..],
                Ok(_) => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        assert!(failed || decoder.finish().is_err());
    }

    #[test]
    fn encoded_len_covers_edge_sizes() {
        // Empty payloads, exact multiples of the chunk and one-byte remainders all frame to
        // exactly encoded_len bytes in both chunked modes.
        for mode in [PayloadMode::ChunkedCrc32, PayloadMode::ChunkedSigned] {
            for size in [0usize, 1, 8191, 8192, 8193, 16_384] {
                let payload = vec![0xAB; size];
                let (body, _) = encode_chunked(mode, &payload, 8192);
                assert_eq!(body.len() as u64, encoded_len(mode, size as u64, 8192));
            }
        }
        assert_eq!(encoded_len(PayloadMode::Unsigned, 123, 8192), 123);
    }

    #[test]
    fn response_heads_parse_framing_and_close() {
        // Length, chunked, HEAD (no body despite Content-Length), 204, read-to-close and a
        // partial head are each recognised.
        let r = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false)
            .expect("ok")
            .expect("complete");
        assert_eq!(
            (r.status, r.framing, r.close, r.head_len),
            (200, Framing::Length(5), false, 38)
        );
        let r = parse_response_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            false,
        )
        .expect("ok")
        .expect("complete");
        assert_eq!((r.framing, r.close), (Framing::Chunked, true));
        let r = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", true)
            .expect("ok")
            .expect("complete");
        assert_eq!((r.framing, r.content_length), (Framing::None, Some(99)));
        let r = parse_response_head(b"HTTP/1.1 204 No Content\r\n\r\n", false)
            .expect("ok")
            .expect("complete");
        assert_eq!((r.framing, r.until_close), (Framing::None, false));
        let r = parse_response_head(b"HTTP/1.1 200 OK\r\n\r\n", false)
            .expect("ok")
            .expect("complete");
        assert!(r.until_close && r.close);
        assert!(parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Le", false)
            .expect("ok")
            .is_none());
        assert!(matches!(
            parse_response_head(b"garbage\r\n\r\n", false),
            Err(BenchError::Protocol(_))
        ));
    }

    #[test]
    fn xml_helpers_find_codes_tokens_and_keys() {
        // The S3 error code, a continuation token with an entity, and the key count of a page.
        let error =
            b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>x</Message></Error>";
        assert_eq!(xml_text(error, "Code"), Some("NoSuchKey"));
        let page = b"<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>a</Key></Contents>\
<Contents><Key>b</Key></Contents><NextContinuationToken>x&amp;y</NextContinuationToken></ListBucketResult>";
        assert_eq!(count_tag(page, "<Key>"), 2);
        assert_eq!(xml_text(page, "IsTruncated"), Some("true"));
        assert_eq!(
            xml_unescape(xml_text(page, "NextContinuationToken").expect("token")),
            "x&y"
        );
        assert_eq!(xml_text(page, "Missing"), None);
    }
}
