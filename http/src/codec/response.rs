//! Response heads: the status line and headers, written into a caller-owned buffer.

use std::fmt::Write as _;

/// The interim answer to `Expect: 100-continue`.
pub fn write_continue(out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
}

/// The reason phrase for the statuses the gateway sends.
#[must_use]
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// A response head under construction: status, headers, and the body length it announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// HTTP status code.
    pub status: u16,
    /// Header lines in order.
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// A head with `status` and no headers.
    #[must_use]
    pub fn new(status: u16) -> Self {
        ResponseHead {
            status,
            headers: Vec::with_capacity(8),
        }
    }

    /// Adds a header line.
    pub fn header(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// True when this status never carries a body (1xx, 204, 304).
    #[must_use]
    pub fn status_forbids_body(&self) -> bool {
        self.status < 200 || self.status == 204 || self.status == 304
    }

    /// Writes the status line, the headers and `Content-Length: body_len` (omitted where the
    /// status forbids a body), then the blank line. A `Connection: close` is added when
    /// `keep_alive` is false.
    pub fn write(&self, body_len: u64, keep_alive: bool, out: &mut Vec<u8>) {
        let mut text = String::with_capacity(128 + self.headers.len() * 48);
        let _ = write!(
            text,
            "HTTP/1.1 {} {}\r\n",
            self.status,
            reason_phrase(self.status)
        );
        for (name, value) in &self.headers {
            // Header values come from our own code and user metadata; CR/LF would allow
            // response splitting, so they are replaced rather than trusted.
            text.push_str(name);
            text.push_str(": ");
            for ch in value.chars() {
                text.push(if ch == '\r' || ch == '\n' { ' ' } else { ch });
            }
            text.push_str("\r\n");
        }
        if !self.status_forbids_body() {
            let _ = write!(text, "Content-Length: {body_len}\r\n");
        }
        if !keep_alive {
            text.push_str("Connection: close\r\n");
        }
        text.push_str("\r\n");
        out.extend_from_slice(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 200 carries Content-Length; a 304 and a 204 do not; CR/LF cannot split the response.
    #[test]
    fn writes_heads() {
        let mut out = Vec::new();
        let mut head = ResponseHead::new(200);
        head.header("ETag", "\"abc\"")
            .header("x-amz-meta-a", "x\r\nInjected: 1");
        head.write(5, true, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "HTTP/1.1 200 OK\r\nETag: \"abc\"\r\nx-amz-meta-a: x  Injected: 1\r\nContent-Length: 5\r\n\r\n");
        let mut out = Vec::new();
        ResponseHead::new(304).write(5, false, &mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n"
        );
        let mut out = Vec::new();
        ResponseHead::new(204).write(0, true, &mut out);
        assert_eq!(out, b"HTTP/1.1 204 No Content\r\n\r\n");
    }
}
