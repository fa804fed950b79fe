//! A response the dispatcher hands to the connection: a head and a body held in memory.
//!
//! Object bodies will stream from sites; until the object engine exists every body here is a
//! small XML document or empty.

use tessera_http::codec::ResponseHead;
use tessera_http::S3Error;

/// One response.
#[derive(Debug)]
pub struct Response {
    /// Status and headers (Content-Length is added when written).
    pub head: ResponseHead,
    /// The body bytes.
    pub body: Vec<u8>,
    /// For HEAD: the Content-Length to announce while sending no body.
    pub head_only_length: Option<u64>,
    /// Close the connection after this response.
    pub close: bool,
    /// An object body streamed after the head, of `head_only_length` bytes.
    pub stream: Option<crate::engine::read::ObjectReader>,
    /// An S3 error whose XML body is rendered when the response is written (that is where the
    /// request id is known).
    pub error: Option<S3Error>,
}

impl Response {
    /// An empty response with `status`.
    #[must_use]
    pub fn empty(status: u16) -> Self {
        Response {
            head: ResponseHead::new(status),
            body: Vec::new(),
            head_only_length: None,
            close: false,
            stream: None,
            error: None,
        }
    }

    /// An XML document with `status`.
    #[must_use]
    pub fn xml(status: u16, body: String) -> Self {
        let mut response = Response::empty(status);
        response.head.header("Content-Type", "application/xml");
        response.body = body.into_bytes();
        response
    }

    /// The S3 XML error document for `error`.
    #[must_use]
    pub fn error(error: &S3Error, request_id: &str) -> Self {
        let mut response = Response::xml(error.status(), error.to_xml(request_id));
        if error.status() == 304 {
            response.body.clear();
        }
        response
    }

    /// The S3 XML error document for `error`, rendered with the request id when written.
    #[must_use]
    pub fn s3_error(error: S3Error) -> Self {
        let mut response = Response::empty(error.status());
        if error.status() != 304 {
            response.head.header("Content-Type", "application/xml");
        }
        response.error = Some(error);
        response
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.head.header(name, value);
        self
    }
}
