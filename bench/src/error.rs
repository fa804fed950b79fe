//! The crate's one error enum: bad arguments, and every way a measured request can fail.

use std::fmt;

/// Everything that can go wrong in the load generator.
///
/// Request failures are not fatal: the run counts them by [`BenchError::kind`] and goes on.
#[derive(Debug)]
#[non_exhaustive]
pub enum BenchError {
    /// A command-line argument is missing, unknown or malformed.
    Usage(String),
    /// The TCP connection to the endpoint could not be opened.
    Connect(std::io::Error),
    /// Reading or writing the connection failed mid-request (reset, timeout, early close).
    Io(std::io::Error),
    /// The server answered with a status the operation does not expect; `code` is the S3
    /// error code from the XML body when there was one.
    Status {
        /// The HTTP status.
        status: u16,
        /// The S3 `<Code>` of the error body, if any.
        code: Option<String>,
    },
    /// A GET body differed from the deterministic content of its key at `offset`.
    Verify {
        /// The first object offset whose byte differs.
        offset: u64,
    },
    /// The response did not parse as HTTP/1.1 or broke its own framing.
    Protocol(&'static str),
    /// Setting up buckets or the prepare phase failed, so the run cannot start.
    Setup(String),
}

impl BenchError {
    /// A short label for the "errors by kind" table: the variant, plus status and S3 code.
    #[must_use]
    pub fn kind(&self) -> String {
        match self {
            BenchError::Usage(_) => "usage".to_owned(),
            BenchError::Connect(e) => format!("connect: {:?}", e.kind()),
            BenchError::Io(e) => format!("io: {:?}", e.kind()),
            BenchError::Status { status, code } => match code {
                Some(code) => format!("http {status} {code}"),
                None => format!("http {status}"),
            },
            BenchError::Verify { .. } => "verify: content mismatch".to_owned(),
            BenchError::Protocol(what) => format!("protocol: {what}"),
            BenchError::Setup(_) => "setup".to_owned(),
        }
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Usage(msg) => write!(f, "usage: {msg}"),
            BenchError::Connect(e) => write!(f, "connect: {e}"),
            BenchError::Io(e) => write!(f, "i/o: {e}"),
            BenchError::Status { .. } => f.write_str(&self.kind()),
            BenchError::Verify { offset } => write!(f, "GET body differs at offset {offset}"),
            BenchError::Protocol(what) => write!(f, "protocol error: {what}"),
            BenchError::Setup(msg) => write!(f, "setup: {msg}"),
        }
    }
}

impl std::error::Error for BenchError {}
