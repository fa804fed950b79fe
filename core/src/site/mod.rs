//! Sites: where shards live. One interface over two kinds of storage target — a directory on a
//! local disk (`dir`, `io_uring` file I/O) and a bucket on an S3 endpoint (`s3`, HTTP/1.1 over
//! plain TCP or rustls) — with health tracking the engine chooses sites by.
//!
//! ```text
//!   engine (one per core)
//!     │ put_shard(key, len) ─► ShardWriter ─ write(buf) ─► buf back ─ … ─ finish()
//!     │ get_range(key, range, buf) ─► (bytes, buf back)      head / delete / delete_many / list
//!     ▼
//!   Site (per core, !Send) ── enum, static dispatch
//!     ├─ Dir ─► tmp file ─ write_at ─ fsync ─ rename ─ fsync dir        (dir.rs, monoio fs)
//!     └─ S3  ─► pool of keep-alive connections ─ SigV4 ─ HTTP/1.1 ─ TLS (s3/)
//!            └─ every request: admit? (health) ─ timeouts ─ retries with backoff ─ record
//! ```
//!
//! Buffers are owned by the caller's pool and move into each operation and back out with its
//! result, as monoio's I/O does; a site never allocates per byte moved. Keys are opaque ids
//! chosen by the engine: a site never sees client keys. Every failure is a [`SiteError`]; no
//! path panics on a backend's behaviour.
//!
//! Each core builds its own `Site` values from the shared [`config::SiteConfig`] list: sites
//! hold sockets, files and `Rc`s, and never cross cores.

pub mod chunk_buf;
pub mod config;
pub mod dir;
pub mod health;
pub mod s3;

use std::fmt;
use std::io;

pub use chunk_buf::{ChunkBuf, ShardBytes};
pub use config::SiteConfig;
pub use dir::{DirShardWriter, DirSite};
pub use health::{HealthEffect, HealthSnapshot, HealthState};
pub use s3::{S3ShardWriter, S3Site};

/// Longest backend key, the S3 limit. Engine ids are far shorter; the limit bounds the
/// request-line and path buffers.
pub const KEY_BYTES_MAX: usize = 1024;
/// Most keys in one `delete_many` call: the S3 `DeleteObjects` limit.
pub const DELETE_BATCH_MAX: usize = 1000;
/// Most entries in one `list` page: the S3 `ListObjectsV2` limit.
pub const LIST_PAGE_MAX: usize = 1000;

/// Which timeout expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// TCP connect and TLS handshake.
    Connect,
    /// Waiting for the response head after the request was sent.
    FirstByte,
    /// A pause in the middle of a transfer.
    Idle,
}

/// Why a site operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SiteError {
    /// The shard does not exist (404 `NoSuchKey`, `ENOENT` under the root).
    NotFound,
    /// The key is empty, too long, or (dir sites) not a safe relative path.
    InvalidKey,
    /// The requested range starts at or past the end of the shard, or does not fit the buffer.
    InvalidRange,
    /// A shard writer received more bytes than announced, or `finish` came early.
    LengthMismatch {
        /// The length announced to `put_shard`.
        expected: u64,
        /// The bytes received (so far, if more).
        actual: u64,
    },
    /// A timeout expired.
    Timeout(TimeoutPhase),
    /// The TCP connection could not be made (refused, unreachable, DNS).
    Connect(io::ErrorKind),
    /// A read, write or fsync failed with this kind.
    Io(io::ErrorKind),
    /// The disk of a dir site is full (`ENOSPC`, `EDQUOT`).
    DiskFull,
    /// The dir site's directory or a file in it may not be written or read (`EACCES`, `EPERM`,
    /// `EROFS`).
    PermissionDenied,
    /// The dir site's root directory is missing (an unmounted disk).
    RootMissing,
    /// The peer closed the connection before the response was complete.
    Closed,
    /// The backend answered with an error status; `code` is the S3 error code when it sent one.
    Http {
        /// The HTTP status; 0 for a per-key failure inside a 200 `DeleteObjects` result.
        status: u16,
        /// The S3 error code (`SlowDown`, `InternalError`, …) or empty.
        code: String,
    },
    /// The backend rejected the credentials or signature (403 `SignatureDoesNotMatch`,
    /// `InvalidAccessKeyId`, `AccessDenied`). Never retried.
    Auth {
        /// The S3 error code.
        code: String,
    },
    /// The TLS handshake or session failed (bad certificate, protocol error).
    Tls(String),
    /// The backend sent something that is not valid HTTP/S3 (bad head, bad XML, bad length).
    Protocol(&'static str),
    /// The site is marked down and no probe is due: the request was not sent.
    Down,
    /// `delete_many` was given more than `DELETE_BATCH_MAX` keys.
    BatchTooLarge,
    /// The site's configuration is invalid (only at build time).
    Config(String),
}

impl SiteError {
    /// What this error says about the health of the site that returned it.
    #[must_use]
    pub fn health_effect(&self) -> HealthEffect {
        match self {
            SiteError::NotFound
            | SiteError::InvalidKey
            | SiteError::InvalidRange
            | SiteError::LengthMismatch { .. }
            | SiteError::Down
            | SiteError::BatchTooLarge
            | SiteError::Config(_) => HealthEffect::None,
            SiteError::Http { status, .. } if *status < 500 => HealthEffect::None,
            SiteError::DiskFull => HealthEffect::Degrade,
            // Wrong credentials or a vanished disk will not heal by retrying: stop sending.
            SiteError::RootMissing | SiteError::PermissionDenied | SiteError::Auth { .. } => {
                HealthEffect::Down
            }
            SiteError::Timeout(_)
            | SiteError::Connect(_)
            | SiteError::Io(_)
            | SiteError::Closed
            | SiteError::Http { .. }
            | SiteError::Tls(_)
            | SiteError::Protocol(_) => HealthEffect::Fault,
        }
    }

    /// Whether repeating the same idempotent request may succeed: timeouts, broken connections,
    /// 500 and 503 (`SlowDown`). Not auth errors, 4xx, TLS certificate errors or disk faults.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            SiteError::Timeout(_)
            | SiteError::Connect(_)
            | SiteError::Closed
            | SiteError::Io(_) => true,
            SiteError::Http { status, code } => {
                matches!(*status, 500 | 502 | 503 | 504) || code == "SlowDown"
            }
            _ => false,
        }
    }

    /// Maps a file-system error of a dir site.
    #[must_use]
    pub fn from_fs(err: &io::Error) -> SiteError {
        match err.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT) => SiteError::DiskFull,
            Some(libc::EACCES | libc::EPERM | libc::EROFS) => SiteError::PermissionDenied,
            Some(libc::ENOENT) => SiteError::NotFound,
            _ => SiteError::Io(err.kind()),
        }
    }
}

impl fmt::Display for SiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SiteError::NotFound => write!(f, "shard not found"),
            SiteError::InvalidKey => write!(f, "invalid backend key"),
            SiteError::InvalidRange => write!(f, "invalid range"),
            SiteError::LengthMismatch { expected, actual } => {
                write!(
                    f,
                    "shard length mismatch: announced {expected}, got {actual}"
                )
            }
            SiteError::Timeout(phase) => write!(f, "timeout ({phase:?})"),
            SiteError::Connect(kind) => write!(f, "connect failed: {kind}"),
            SiteError::Io(kind) => write!(f, "I/O error: {kind}"),
            SiteError::DiskFull => write!(f, "disk full"),
            SiteError::PermissionDenied => write!(f, "permission denied"),
            SiteError::RootMissing => write!(f, "site directory missing"),
            SiteError::Closed => write!(f, "connection closed early"),
            SiteError::Http { status, code } => write!(f, "HTTP {status} {code}"),
            SiteError::Auth { code } => write!(f, "authentication failed: {code}"),
            SiteError::Tls(msg) => write!(f, "TLS: {msg}"),
            SiteError::Protocol(msg) => write!(f, "protocol error: {msg}"),
            SiteError::Down => write!(f, "site is down"),
            SiteError::BatchTooLarge => write!(f, "more than {DELETE_BATCH_MAX} keys in a batch"),
            SiteError::Config(msg) => write!(f, "config: {msg}"),
        }
    }
}

impl std::error::Error for SiteError {}

/// A byte range of a shard: `len` bytes from `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Number of bytes; at least 1.
    pub len: u64,
}

/// What `head` says about a shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardInfo {
    /// Length in bytes.
    pub len: u64,
}

/// One entry of a `list` page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    /// The backend key.
    pub key: String,
    /// Length in bytes.
    pub len: u64,
}

/// One page of `list`, in key order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ListPage {
    /// At most `LIST_PAGE_MAX` entries.
    pub entries: Vec<ListEntry>,
    /// Pass back to `list` for the next page; `None` on the last page.
    pub continuation: Option<String>,
}

/// Checks the generic key rules: 1..=`KEY_BYTES_MAX` bytes.
pub(crate) fn check_key(key: &str) -> Result<(), SiteError> {
    if key.is_empty() || key.len() > KEY_BYTES_MAX {
        return Err(SiteError::InvalidKey);
    }
    Ok(())
}

/// One site on one core.
#[derive(Clone)]
pub enum Site {
    /// A local directory.
    Dir(DirSite),
    /// An S3 bucket.
    S3(S3Site),
}

impl fmt::Debug for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Site").field(&self.name()).finish()
    }
}

impl Site {
    /// Builds this core's instance of a configured site. Checks the configuration, the
    /// directory (dir) or the TLS roots (s3); opens no connection.
    pub fn open(config: &SiteConfig) -> Result<Site, SiteError> {
        config.validate()?;
        Ok(match config {
            SiteConfig::Dir(c) => Site::Dir(DirSite::open(c)?),
            SiteConfig::S3(c) => Site::S3(S3Site::open(c)?),
        })
    }

    /// The site's configured name.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Site::Dir(s) => s.name(),
            Site::S3(s) => s.name(),
        }
    }

    /// Health figures as this core sees them.
    #[must_use]
    pub fn health(&self) -> HealthSnapshot {
        match self {
            Site::Dir(s) => s.health(),
            Site::S3(s) => s.health(),
        }
    }

    /// Starts writing a shard of exactly `total_len` bytes under `key`. The shard becomes
    /// visible (to `get_range`, `head`, `list`) only when [`ShardWriter::finish`] succeeds.
    pub async fn put_shard(&self, key: &str, total_len: u64) -> Result<ShardWriter, SiteError> {
        match self {
            Site::Dir(s) => s.put_shard(key, total_len).await.map(ShardWriter::Dir),
            Site::S3(s) => s.put_shard(key, total_len).await.map(ShardWriter::S3),
        }
    }

    /// Reads `range` of shard `key` into `buf` (its contents are replaced; its capacity must
    /// be at least `range.len`). Returns the bytes read — fewer than `range.len` only when the
    /// shard ends first — and the buffer, whose length is set to that count.
    pub async fn get_range(
        &self,
        key: &str,
        range: ByteRange,
        buf: Vec<u8>,
    ) -> (Result<usize, SiteError>, Vec<u8>) {
        match self {
            Site::Dir(s) => s.get_range(key, range, buf).await,
            Site::S3(s) => s.get_range(key, range, buf).await,
        }
    }

    /// The length of shard `key`.
    pub async fn head(&self, key: &str) -> Result<ShardInfo, SiteError> {
        match self {
            Site::Dir(s) => s.head(key).await,
            Site::S3(s) => s.head(key).await,
        }
    }

    /// Deletes shard `key`; deleting a missing shard succeeds (deletes are retried by the purge
    /// queue and must be idempotent).
    pub async fn delete(&self, key: &str) -> Result<(), SiteError> {
        match self {
            Site::Dir(s) => s.delete(key).await,
            Site::S3(s) => s.delete(key).await,
        }
    }

    /// Deletes up to `DELETE_BATCH_MAX` shards. `Ok` holds the keys that could not be deleted
    /// with their errors (empty when all went); `Err` means the batch as a whole failed.
    pub async fn delete_many(
        &self,
        keys: &[String],
    ) -> Result<Vec<(String, SiteError)>, SiteError> {
        match self {
            Site::Dir(s) => s.delete_many(keys).await,
            Site::S3(s) => s.delete_many(keys).await,
        }
    }

    /// One page of the keys under `prefix`, in order, starting after `continuation`.
    pub async fn list(
        &self,
        prefix: &str,
        continuation: Option<&str>,
    ) -> Result<ListPage, SiteError> {
        match self {
            Site::Dir(s) => s.list(prefix, continuation).await,
            Site::S3(s) => s.list(prefix, continuation).await,
        }
    }

    /// Sends one cheap request to see whether the site answers (the engine's prober calls this
    /// for down sites when `health().state` is `Down`); updates health either way.
    pub async fn probe(&self) -> Result<(), SiteError> {
        match self {
            Site::Dir(s) => s.probe().await,
            Site::S3(s) => s.probe().await,
        }
    }
}

/// A shard being written; see [`Site::put_shard`].
pub enum ShardWriter {
    /// To a dir site.
    Dir(DirShardWriter),
    /// To an S3 site.
    S3(S3ShardWriter),
}

impl fmt::Debug for ShardWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShardWriter::Dir(_) => "ShardWriter::Dir",
            ShardWriter::S3(_) => "ShardWriter::S3",
        })
    }
}

impl ShardWriter {
    /// Appends all of `buf` to the shard and gives the buffer back (also on error).
    pub async fn write(&mut self, buf: Vec<u8>) -> (Result<(), SiteError>, Vec<u8>) {
        match self {
            ShardWriter::Dir(w) => w.write(buf).await,
            ShardWriter::S3(w) => w.write(buf).await,
        }
    }

    /// Bytes of head room the next [`ShardWriter::write_chunk`] buffer should leave in front
    /// of its payload (see [`chunk_buf`]); 0 for writers that send buffers as they are.
    #[must_use]
    pub fn head_room(&self) -> usize {
        match self {
            ShardWriter::Dir(w) => w.head_room(),
            ShardWriter::S3(_) => 0,
        }
    }

    /// Appends the payload of `buf` to the shard and gives the buffer back (also on error).
    /// With the head room [`ShardWriter::head_room`] asked for, a direct dir writer writes
    /// from `buf` itself instead of copying it; any other head room only costs that copy.
    pub async fn write_chunk(&mut self, buf: ChunkBuf) -> (Result<(), SiteError>, ChunkBuf) {
        match self {
            ShardWriter::Dir(w) => w.write_chunk(buf).await,
            ShardWriter::S3(w) => w.write(buf).await,
        }
    }

    /// Completes the shard: it is durable (per the site's policy) and visible when this
    /// returns `Ok`. Fails with `LengthMismatch` unless exactly `total_len` bytes were written.
    pub async fn finish(self) -> Result<(), SiteError> {
        match self {
            ShardWriter::Dir(w) => w.finish().await,
            ShardWriter::S3(w) => w.finish().await,
        }
    }

    /// Abandons the shard: nothing becomes visible.
    pub async fn abort(self) {
        match self {
            ShardWriter::Dir(w) => w.abort().await,
            ShardWriter::S3(w) => w.abort(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_and_health_classification() {
        // Transient faults are retried and count towards down; client errors neither; auth
        // errors are never retried and stop traffic at once.
        let slow_down = SiteError::Http {
            status: 503,
            code: "SlowDown".into(),
        };
        assert!(slow_down.is_retryable());
        assert_eq!(slow_down.health_effect(), HealthEffect::Fault);
        let forbidden = SiteError::Auth {
            code: "SignatureDoesNotMatch".into(),
        };
        assert!(!forbidden.is_retryable());
        assert_eq!(forbidden.health_effect(), HealthEffect::Down);
        assert!(!SiteError::NotFound.is_retryable());
        assert_eq!(SiteError::NotFound.health_effect(), HealthEffect::None);
        assert!(SiteError::Timeout(TimeoutPhase::FirstByte).is_retryable());
        let enospc = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(SiteError::from_fs(&enospc), SiteError::DiskFull);
        let eacces = io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(SiteError::from_fs(&eacces), SiteError::PermissionDenied);
    }
}
