//! The crate's one error enum.

use std::fmt;

/// Everything that can go wrong in `tessera-meta`. Programmer errors are assertions, not variants.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetaError {
    /// A storage operation failed (open, read, write, fsync, truncate, remove).
    Io {
        op: &'static str,
        file: String,
        kind: std::io::ErrorKind,
        message: String,
    },
    /// A record could not be serialized (a bug or an allocation failure).
    Encode(String),
    /// A frame passed its checksums but its payload is not a valid archive of its version, or
    /// names a version this build does not know.
    Decode { version: u16, message: String },
    /// An encoded transaction is larger than [`crate::FRAME_PAYLOAD_MAX`].
    FrameTooLarge { bytes: usize },
    /// Recovery found a bad frame followed by valid ones: not a torn write but damage. The store
    /// refuses to open unless told to truncate ([`crate::RecoveryMode::TruncateCorruption`]).
    Corrupt {
        file: String,
        offset: u64,
        detail: String,
    },
    /// An earlier write or fsync failed, so the durable state of the log tail is unknown; the
    /// store refuses further appends until it is reopened (and recovered).
    Poisoned,
    /// The per-core queue of appends waiting for a commit is full ([`crate::APPENDS_PENDING_MAX`]).
    Busy,
}

impl MetaError {
    pub(crate) fn io(op: &'static str, file: &str, err: &std::io::Error) -> Self {
        MetaError::Io {
            op,
            file: file.to_owned(),
            kind: err.kind(),
            message: err.to_string(),
        }
    }
}

impl fmt::Display for MetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaError::Io {
                op, file, message, ..
            } => write!(f, "metadata {op} on {file} failed: {message}"),
            MetaError::Encode(m) => write!(f, "metadata record encoding failed: {m}"),
            MetaError::Decode { version, message } => {
                write!(f, "metadata record (version {version}) is invalid: {message}")
            }
            MetaError::FrameTooLarge { bytes } => {
                write!(f, "metadata transaction of {bytes} bytes exceeds the frame limit")
            }
            MetaError::Corrupt {
                file,
                offset,
                detail,
            } => write!(
                f,
                "metadata log {file} is corrupt at byte {offset} ({detail}) and valid frames follow; refusing to truncate"
            ),
            MetaError::Poisoned => write!(f, "metadata log is poisoned by an earlier I/O failure"),
            MetaError::Busy => write!(f, "too many metadata appends are waiting for a commit"),
        }
    }
}

impl std::error::Error for MetaError {}
