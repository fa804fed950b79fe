//! Request head parsing on `httparse`, with the limits that keep a hostile client bounded.

use std::ops::Range;

/// Limits on one request head; each is a config value in `tessera-core`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLimits {
    /// Bytes in the request line plus all header lines. S3 allows 8 KiB of user metadata alone,
    /// so the default (16 KiB) leaves room for it and the auth headers.
    pub header_bytes_max: usize,
    /// Number of header lines. 100 covers every SDK (they send ~15) plus user metadata.
    pub header_count_max: usize,
    /// Bytes in the request target (path + query). Keys are at most 1024 bytes, which can grow
    /// ×3 when percent-encoded, plus a presigned query of ~1 KiB: 8 KiB.
    pub uri_bytes_max: usize,
}

/// `header_count_max` must fit in the fixed `httparse` scratch array below.
pub const HEADER_COUNT_CAP: usize = 256;

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            header_bytes_max: 16 * 1024,
            header_count_max: 100,
            uri_bytes_max: 8 * 1024,
        }
    }
}

/// Why a request head was refused; each maps to a 4xx status and closes the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeadError {
    /// The bytes are not an HTTP/1.x request head (bad token, bad line ending, bad version).
    Malformed,
    /// The head did not end within `header_bytes_max` bytes.
    TooLarge,
    /// More than `header_count_max` header lines.
    TooManyHeaders,
    /// The request target is longer than `uri_bytes_max`.
    UriTooLong,
    /// The head is not valid UTF-8.
    NotUtf8,
    /// Both Content-Length and Transfer-Encoding, several differing Content-Lengths, or a
    /// Content-Length that is not a number.
    BadFraming,
    /// A transfer coding other than `chunked`.
    UnsupportedTransferEncoding,
    /// HTTP/1.0 or another version we do not speak.
    UnsupportedVersion,
}

impl HeadError {
    /// A sentence for the error message sent to the client.
    #[must_use]
    pub fn message(self) -> &'static str {
        match self {
            HeadError::Malformed => "The request is not a well-formed HTTP/1.1 request",
            HeadError::TooLarge => "The request head is larger than allowed",
            HeadError::TooManyHeaders => "The request has more header lines than allowed",
            HeadError::UriTooLong => "The request URI is longer than allowed",
            HeadError::NotUtf8 => "The request head is not valid UTF-8",
            HeadError::BadFraming => "The request body framing is ambiguous or invalid",
            HeadError::UnsupportedTransferEncoding => {
                "Only the chunked transfer coding is supported"
            }
            HeadError::UnsupportedVersion => "Only HTTP/1.1 is supported",
        }
    }

    /// The HTTP status this error answers with.
    #[must_use]
    pub fn status(self) -> u16 {
        match self {
            HeadError::TooLarge | HeadError::TooManyHeaders => 431,
            HeadError::UriTooLong => 414,
            HeadError::UnsupportedTransferEncoding => 501,
            HeadError::UnsupportedVersion => 505,
            HeadError::Malformed | HeadError::NotUtf8 | HeadError::BadFraming => 400,
        }
    }
}

/// How the request body is framed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body (no Content-Length, no Transfer-Encoding).
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head. Reused across requests on a connection: `parse_head` refills it
/// without allocating once its buffers have grown to the connection's largest head.
#[derive(Debug, Default)]
pub struct RequestHead {
    text: String,
    method: Range<usize>,
    target: Range<usize>,
    headers: Vec<(Range<usize>, Range<usize>)>,
    /// Body framing.
    pub framing: Option<Framing>,
    /// False when the client sent `Connection: close` (or spoke HTTP/1.0).
    pub keep_alive: bool,
    /// The client sent `Expect: 100-continue`.
    pub expect_continue: bool,
}

impl RequestHead {
    /// The method (`GET`, `PUT`, …) as sent.
    #[must_use]
    pub fn method(&self) -> &str {
        &self.text[self.method.clone()]
    }

    /// The raw request target (`/bucket/key?query`), still percent-encoded.
    #[must_use]
    pub fn target(&self) -> &str {
        &self.text[self.target.clone()]
    }

    /// The raw path part of the target.
    #[must_use]
    pub fn raw_path(&self) -> &str {
        let target = self.target();
        target.split_once('?').map_or(target, |(path, _)| path)
    }

    /// The raw query part of the target (without `?`), empty when absent.
    #[must_use]
    pub fn raw_query(&self) -> &str {
        self.target().split_once('?').map_or("", |(_, query)| query)
    }

    /// All headers in order, names as sent.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.headers
            .iter()
            .map(|(n, v)| (&self.text[n.clone()], &self.text[v.clone()]))
    }

    /// The first value of header `name` (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Number of header lines.
    #[must_use]
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// Body framing; `Framing::None` before a successful parse.
    #[must_use]
    pub fn body_framing(&self) -> Framing {
        self.framing.unwrap_or(Framing::None)
    }
}

/// Parses one request head from the start of `input`.
///
/// Returns `Ok(Some(len))` with `head` filled when a complete head of `len` bytes is present,
/// `Ok(None)` when more bytes are needed (and the limit is not yet reached), or the error that
/// must end the connection.
pub fn parse_head(
    input: &[u8],
    limits: &HeadLimits,
    head: &mut RequestHead,
) -> Result<Option<usize>, HeadError> {
    assert!(limits.header_count_max <= HEADER_COUNT_CAP);
    // Uninitialised scratch: zeroing 256 headers (8 KiB) would cost more than the parse.
    let mut scratch =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; HEADER_COUNT_CAP];
    let mut request = httparse::Request::new(&mut []);
    let window = &input[..input.len().min(limits.header_bytes_max)];
    let len =
        match request.parse_with_uninit_headers(window, &mut scratch[..limits.header_count_max]) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                if window.len() >= limits.header_bytes_max {
                    return Err(HeadError::TooLarge);
                }
                return Ok(None);
            }
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
            Err(httparse::Error::Version) => {
                // httparse says "Version" for any request line whose third token is not HTTP/1.x;
                // only a real HTTP version deserves 505, anything else is just malformed.
                let line_end = window
                    .iter()
                    .position(|&b| b == b'\n')
                    .unwrap_or(window.len());
                let line = &window[..line_end];
                let speaks_http = line.windows(6).any(|w| w == b" HTTP/");
                return Err(if speaks_http {
                    HeadError::UnsupportedVersion
                } else {
                    HeadError::Malformed
                });
            }
            Err(_) => return Err(HeadError::Malformed),
        };
    // httparse guarantees these are set on Complete.
    let (Some(method), Some(path), Some(version)) = (request.method, request.path, request.version)
    else {
        return Err(HeadError::Malformed);
    };
    if version != 1 {
        return Err(HeadError::UnsupportedVersion);
    }
    if path.len() > limits.uri_bytes_max {
        return Err(HeadError::UriTooLong);
    }
    let head_bytes = &input[..len];
    let text = if head_bytes.is_ascii() {
        // SAFETY: every ASCII byte sequence is valid UTF-8. The vectorised ASCII check is about
        // three times faster than full UTF-8 validation, and nearly every head is pure ASCII.
        unsafe { std::str::from_utf8_unchecked(head_bytes) }
    } else {
        std::str::from_utf8(head_bytes).map_err(|_| HeadError::NotUtf8)?
    };
    head.text.clear();
    head.text.push_str(text);
    head.headers.clear();
    let base = input.as_ptr() as usize;
    let offset_of = |s: &[u8]| s.as_ptr() as usize - base;
    head.method = offset_of(method.as_bytes())..offset_of(method.as_bytes()) + method.len();
    head.target = offset_of(path.as_bytes())..offset_of(path.as_bytes()) + path.len();
    // Absolute-form targets (`http://host/path`, sent through proxies; RFC 9112 §3.2.2 says
    // servers must accept them): keep only the path; the Host header names the authority.
    if let Some(rest) = path
        .strip_prefix("http://")
        .or_else(|| path.strip_prefix("https://"))
    {
        let slash = rest.find('/').ok_or(HeadError::Malformed)?;
        head.target.start += path.len() - rest.len() + slash;
    } else if !(path.starts_with('/') || (path == "*" && method == "OPTIONS")) {
        return Err(HeadError::Malformed);
    }
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    head.keep_alive = true;
    head.expect_continue = false;
    for header in request.headers.iter() {
        let name_start = offset_of(header.name.as_bytes());
        let value_start = offset_of(header.value);
        let name = header.name;
        // httparse hands values with surrounding whitespace already trimmed.
        let value = &text[value_start..value_start + header.value.len()];
        head.headers.push((
            name_start..name_start + name.len(),
            value_start..value_start + value.len(),
        ));
        // Only four header names matter for framing; their first letters (c, t, e) let every
        // other header skip the comparisons.
        if !matches!(
            name.as_bytes().first().map(u8::to_ascii_lowercase),
            Some(b'c' | b't' | b'e')
        ) {
            continue;
        }
        if name.eq_ignore_ascii_case("content-length") {
            let parsed = parse_content_length(value).ok_or(HeadError::BadFraming)?;
            if content_length.is_some_and(|previous| previous != parsed) {
                return Err(HeadError::BadFraming);
            }
            content_length = Some(parsed);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            for coding in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                if coding.eq_ignore_ascii_case("chunked") && !chunked {
                    chunked = true;
                } else {
                    return Err(HeadError::UnsupportedTransferEncoding);
                }
            }
        } else if name.eq_ignore_ascii_case("connection") {
            if value
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("close"))
            {
                head.keep_alive = false;
            }
        } else if name.eq_ignore_ascii_case("expect") && value.eq_ignore_ascii_case("100-continue")
        {
            head.expect_continue = true;
        }
    }
    head.framing = Some(match (transfer_encoding, content_length) {
        (true, Some(_)) => return Err(HeadError::BadFraming),
        (true, None) if chunked => Framing::Chunked,
        (true, None) => return Err(HeadError::UnsupportedTransferEncoding),
        (false, Some(length)) => Framing::Length(length),
        (false, None) => Framing::None,
    });
    Ok(Some(len))
}

/// Content-Length is 1*DIGIT; anything else (signs, spaces, overflow) is refused.
fn parse_content_length(value: &str) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8]) -> Result<Option<(usize, RequestHead)>, HeadError> {
        let mut head = RequestHead::default();
        parse_head(input, &HeadLimits::default(), &mut head).map(|r| r.map(|len| (len, head)))
    }

    /// A typical SDK PUT parses into method, raw path, raw query, headers and framing.
    #[test]
    fn parses_put_head() {
        let raw = b"PUT /bucket/a%20b?partNumber=1&uploadId=x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\nX-Amz-Meta-A:  v \r\n\r\nhello";
        let (len, head) = parse(raw).unwrap().unwrap();
        assert_eq!(len, raw.len() - 5);
        assert_eq!(head.method(), "PUT");
        assert_eq!(head.raw_path(), "/bucket/a%20b");
        assert_eq!(head.raw_query(), "partNumber=1&uploadId=x");
        assert_eq!(head.header("host"), Some("localhost"));
        assert_eq!(head.header("x-amz-meta-a"), Some("v"));
        assert_eq!(head.body_framing(), Framing::Length(5));
        assert!(head.expect_continue);
        assert!(head.keep_alive);
    }

    /// A head split anywhere asks for more bytes until it is complete.
    #[test]
    fn partial_heads_need_more() {
        let raw = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        for cut in 0..raw.len() {
            assert_eq!(
                parse(&raw[..cut]).unwrap().map(|r| r.0),
                None,
                "cut at {cut}"
            );
        }
        assert!(parse(raw).unwrap().is_some());
    }

    /// Each framing violation is refused with the right error.
    #[test]
    fn framing_violations() {
        let cases: &[(&[u8], HeadError)] = &[
            (
                b"PUT / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                HeadError::BadFraming,
            ),
            (
                b"PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                HeadError::BadFraming,
            ),
            (
                b"PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                HeadError::BadFraming,
            ),
            (
                b"PUT / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                HeadError::BadFraming,
            ),
            (
                b"PUT / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                HeadError::UnsupportedTransferEncoding,
            ),
            (b"GET / HTTP/1.0\r\n\r\n", HeadError::UnsupportedVersion),
            (b"GET / HTTP/2.0\r\n\r\n", HeadError::UnsupportedVersion),
            (b"G@T / HTTP/1.1\r\n\r\n", HeadError::Malformed),
            (b"NOT HTTP AT ALL\r\n\r\n", HeadError::Malformed),
            (b"GET / HTTP/1.1\r\nX: \xff\r\n\r\n", HeadError::NotUtf8),
        ];
        for (raw, expected) in cases {
            assert_eq!(
                parse(raw).map(|r| r.map(|x| x.0)),
                Err(*expected),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    /// Repeated identical Content-Length is allowed (RFC 9110 §8.6), chunked is recognised.
    #[test]
    fn framing_accepted() {
        let (_, head) = parse(b"PUT / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.body_framing(), Framing::Length(3));
        let (_, head) = parse(b"PUT / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\nConnection: keep-alive, close\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.body_framing(), Framing::Chunked);
        assert!(!head.keep_alive);
    }

    /// Size limits: head bytes, header count, URI length.
    #[test]
    fn limits_enforced() {
        let limits = HeadLimits {
            header_bytes_max: 64,
            header_count_max: 2,
            uri_bytes_max: 10,
        };
        let mut head = RequestHead::default();
        let long = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 100]].concat();
        assert_eq!(
            parse_head(&long, &limits, &mut head),
            Err(HeadError::TooLarge)
        );
        let many = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert_eq!(
            parse_head(many, &limits, &mut head),
            Err(HeadError::TooManyHeaders)
        );
        let uri = b"GET /0123456789ab HTTP/1.1\r\n\r\n";
        assert_eq!(
            parse_head(uri, &limits, &mut head),
            Err(HeadError::UriTooLong)
        );
    }

    /// Absolute-form targets keep only their path; other forms that are not origin-form are
    /// malformed.
    #[test]
    fn absolute_form() {
        let (_, head) = parse(
            b"GET http://bkt.s3.local:9000/key?x=1 HTTP/1.1\r\nHost: bkt.s3.local:9000\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.target(), "/key?x=1");
        assert_eq!(
            parse(b"GET http://host HTTP/1.1\r\n\r\n").map(|r| r.map(|x| x.0)),
            Err(HeadError::Malformed)
        );
        assert_eq!(
            parse(b"GET key HTTP/1.1\r\n\r\n").map(|r| r.map(|x| x.0)),
            Err(HeadError::Malformed)
        );
    }

    /// Reusing a head keeps no state from the previous request.
    #[test]
    fn reuse_resets_state() {
        let mut head = RequestHead::default();
        let limits = HeadLimits::default();
        parse_head(b"PUT /a HTTP/1.1\r\nExpect: 100-continue\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", &limits, &mut head).unwrap();
        parse_head(b"GET /b HTTP/1.1\r\n\r\n", &limits, &mut head).unwrap();
        assert_eq!(head.target(), "/b");
        assert!(!head.expect_continue && head.keep_alive);
        assert_eq!(head.body_framing(), Framing::None);
        assert_eq!(head.header_count(), 0);
    }
}
