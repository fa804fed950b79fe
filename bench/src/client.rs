//! The I/O shell: one blocking keep-alive connection per worker and the five S3 operations.
//!
//! ```text
//!  worker ─► Client::put/get/head/delete/list
//!              │ wire::write_head (signed)         content::Pattern (body, no copy)
//!              ▼                                        │
//!            TcpStream::write_vectored ◄────────────────┘
//!            TcpStream::read ─► read buffer (IO_BUFFER_BYTES) ─► BodyDecoder ─► discard /
//!                                                                 Pattern::check / small body
//! ```
//!
//! Memory per client is fixed: one read buffer and two small scratch vectors. PUT bodies are
//! written straight from the shared pattern, GET bodies are checked in the read buffer and
//! dropped, so no object is ever held.

use std::io::{IoSlice, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tessera_http::checksum::{ChecksumAlgorithm, ChecksumHasher};
use tessera_http::codec::BodyDecoder;
use tessera_http::sigv4::{hex32_string, Signer};

use crate::args::PayloadMode;
use crate::content::{key_seed, Pattern, PATTERN_BYTES};
use crate::error::BenchError;
use crate::wire::{
    self, ChunkFramer, ResponseHead, CHUNK_SUFFIX, EMPTY_SHA256, SMALL_BODY_BYTES_MAX,
    STREAMING_SIGNED, STREAMING_UNSIGNED_TRAILER, UNSIGNED_PAYLOAD,
};

/// Bytes of each connection's read buffer: large enough that a 64 MiB GET takes ~128 reads
/// (syscall cost is then negligible next to the copy), small enough that 64 workers hold
/// 32 MiB in total.
pub const IO_BUFFER_BYTES: usize = 512 * 1024;
/// PUT bodies up to this size go out in the same `write` as their head: one syscall and one
/// TCP segment train per small object instead of two.
pub const INLINE_BODY_BYTES_MAX: usize = 64 * 1024;
/// A request that makes no progress for this long fails with a timeout.
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);

const _: () = assert!(INLINE_BODY_BYTES_MAX <= PATTERN_BYTES);
const _: () = assert!(IO_BUFFER_BYTES >= wire::RESPONSE_HEAD_BYTES_MAX);

/// Credentials and scope shared by all clients of a run.
#[derive(Clone, Debug)]
pub struct Auth {
    /// Access key id.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
    /// Signing region.
    pub region: String,
}

/// What a successful GET returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetOutcome {
    /// Body bytes received.
    pub bytes: u64,
    /// Time from the start of the request to its response head (time to first byte).
    pub first_byte: Duration,
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListPage {
    /// Keys on the page.
    pub keys: u64,
    /// The token of the next page, if the listing is truncated.
    pub next: Option<String>,
}

/// A connection to one endpoint and the operations over it.
pub struct Client<'a> {
    authority: String,
    auth: &'a Auth,
    pattern: &'a Pattern,
    mode: PayloadMode,
    chunk_bytes: usize,
    stream: Option<TcpStream>,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    head: Vec<u8>,
    frame: Vec<u8>,
}

impl std::fmt::Debug for Client<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("authority", &self.authority)
            .field("connected", &self.stream.is_some())
            .finish_non_exhaustive()
    }
}

fn now_unix_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Writes every byte of `slices`, looping over partial writes.
fn write_all_vectored(
    stream: &mut TcpStream,
    mut slices: &mut [IoSlice<'_>],
) -> std::io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match stream.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl<'a> Client<'a> {
    /// A client for `authority` (`host:port`); connects lazily.
    #[must_use]
    pub fn new(
        authority: &str,
        auth: &'a Auth,
        pattern: &'a Pattern,
        mode: PayloadMode,
        chunk_bytes: usize,
    ) -> Self {
        assert!(chunk_bytes > 0 && chunk_bytes <= PATTERN_BYTES);
        Client {
            authority: authority.to_owned(),
            auth,
            pattern,
            mode,
            chunk_bytes,
            stream: None,
            buf: vec![0; IO_BUFFER_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
            head: Vec::with_capacity(2048),
            frame: Vec::with_capacity(256),
        }
    }

    fn signer(&self) -> Signer<'a> {
        let auth: &'a Auth = self.auth;
        Signer {
            access_key: &auth.access_key,
            secret: &auth.secret_key,
            region: &auth.region,
            service: "s3",
        }
    }

    fn connect(&mut self) -> Result<(), BenchError> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(&self.authority).map_err(BenchError::Connect)?;
            // Small requests must not wait for delayed ACKs (a 40 ms stall otherwise).
            stream.set_nodelay(true).map_err(BenchError::Connect)?;
            stream
                .set_read_timeout(Some(IO_TIMEOUT))
                .map_err(BenchError::Connect)?;
            stream
                .set_write_timeout(Some(IO_TIMEOUT))
                .map_err(BenchError::Connect)?;
            self.stream = Some(stream);
            self.start = 0;
            self.end = 0;
        }
        Ok(())
    }

    /// Forgets the connection: after any failure its state is unknown.
    fn drop_connection(&mut self) {
        self.stream = None;
        self.start = 0;
        self.end = 0;
    }

    fn stream(&mut self) -> &mut TcpStream {
        // Every caller runs `connect` first, and only `drop_connection` clears the stream.
        self.stream.as_mut().expect("connected before use")
    }

    /// Runs `f`; on failure drops the connection so the next request starts clean.
    fn guarded<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, BenchError>,
    ) -> Result<T, BenchError> {
        self.connect()?;
        let result = f(self);
        if result.is_err() {
            self.drop_connection();
        }
        result
    }

    /// Reads until a response head is buffered, then parses it and consumes it.
    fn read_head(&mut self, head_request: bool) -> Result<ResponseHead, BenchError> {
        loop {
            if self.end > self.start {
                if let Some(head) =
                    wire::parse_response_head(&self.buf[self.start..self.end], head_request)?
                {
                    // Skip interim 100 Continue heads; we never send Expect, but be lenient.
                    self.start += head.head_len;
                    if head.status == 100 {
                        continue;
                    }
                    return Ok(head);
                }
            }
            self.fill()?;
        }
    }

    /// Reads more bytes after the unconsumed ones, compacting first.
    fn fill(&mut self) -> Result<(), BenchError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            return Err(BenchError::Protocol("response head larger than the buffer"));
        }
        // `fill` runs only inside `guarded`, after `connect`.
        let stream = self.stream.as_mut().expect("connected before use");
        let n = loop {
            match stream.read(&mut self.buf[self.end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(BenchError::Io(e)),
            }
        };
        if n == 0 {
            return Err(BenchError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        self.end += n;
        Ok(())
    }

    /// Reads a body framed as `head` says, handing each payload piece to `sink`.
    fn read_body(
        &mut self,
        head: &ResponseHead,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), BenchError>,
    ) -> Result<u64, BenchError> {
        let mut total = 0u64;
        if head.until_close {
            loop {
                if self.end > self.start {
                    sink(&self.buf[self.start..self.end])?;
                    total += (self.end - self.start) as u64;
                    self.start = self.end;
                }
                match self.fill() {
                    Ok(()) => {}
                    Err(BenchError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        return Ok(total);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let mut decoder = BodyDecoder::new(head.framing);
        while !decoder.is_done() {
            while self.start < self.end && !decoder.is_done() {
                let step = decoder
                    .decode(&self.buf[self.start..self.end])
                    .map_err(|_| BenchError::Protocol("bad chunked body"))?;
                if !step.payload.is_empty() {
                    let piece =
                        &self.buf[self.start + step.payload.start..self.start + step.payload.end];
                    sink(piece)?;
                    total += piece.len() as u64;
                }
                self.start += step.consumed;
                if step.consumed == 0 {
                    break;
                }
            }
            if !decoder.is_done() {
                self.fill()?;
            }
        }
        Ok(total)
    }

    /// Reads a whole response; a status outside `expected` becomes [`BenchError::Status`] with
    /// the S3 code of the body. Returns the head and the body when `keep_body`.
    fn finish_response(
        &mut self,
        head_request: bool,
        expected: &[u16],
        keep_body: bool,
    ) -> Result<(ResponseHead, Vec<u8>), BenchError> {
        let head = self.read_head(head_request)?;
        if !expected.contains(&head.status) {
            return Err(self.status_error(&head));
        }
        let mut body = Vec::new();
        self.read_body(&head, &mut |piece| {
            if !keep_body {
                return Ok(());
            }
            if body.len() + piece.len() > SMALL_BODY_BYTES_MAX {
                return Err(BenchError::Protocol(
                    "response body above SMALL_BODY_BYTES_MAX",
                ));
            }
            body.extend_from_slice(piece);
            Ok(())
        })?;
        if head.close {
            self.drop_connection();
        }
        Ok((head, body))
    }

    /// Reads the body of an unexpected response (keeping at most `SMALL_BODY_BYTES_MAX`) and
    /// turns it into [`BenchError::Status`] with the S3 error code it carries.
    fn status_error(&mut self, head: &ResponseHead) -> BenchError {
        let mut body = Vec::new();
        let read = self.read_body(head, &mut |piece| {
            let room = SMALL_BODY_BYTES_MAX.saturating_sub(body.len());
            body.extend_from_slice(&piece[..piece.len().min(room)]);
            Ok(())
        });
        if let Err(e) = read {
            return e;
        }
        if head.close {
            self.drop_connection();
        }
        BenchError::Status {
            status: head.status,
            code: wire::xml_text(&body, "Code").map(str::to_owned),
        }
    }

    /// After a failed write the server may already have answered (e.g. 403 before the body):
    /// prefer its status over the bare I/O error.
    fn write_failed(&mut self, error: std::io::Error) -> BenchError {
        match self.finish_response(false, &[], false) {
            Err(status @ BenchError::Status { .. }) => status,
            _ => BenchError::Io(error),
        }
    }

    /// Sends a bodiless request and reads its response.
    fn simple(
        &mut self,
        method: &str,
        path: &str,
        query: &str,
        expected: &[u16],
        keep_body: bool,
    ) -> Result<(ResponseHead, Vec<u8>), BenchError> {
        self.guarded(|c| {
            let signer = c.signer();
            let mut head = std::mem::take(&mut c.head);
            let _ = wire::write_head(
                &mut head,
                &signer,
                method,
                &c.authority,
                path,
                query,
                &[],
                EMPTY_SHA256,
                None,
                now_unix_s(),
            );
            let written = c.stream().write_all(&head);
            c.head = head;
            written.map_err(BenchError::Io)?;
            c.finish_response(method == "HEAD", expected, keep_body)
        })
    }

    /// `PutObject` of `size` bytes of `key`'s deterministic content, in the client's mode.
    pub fn put(&mut self, bucket: &str, key: &str, size: u64) -> Result<(), BenchError> {
        let path = wire::object_path(bucket, key);
        let seed = key_seed(key);
        self.guarded(|c| match c.mode {
            PayloadMode::Unsigned | PayloadMode::Signed => c.put_plain(&path, seed, size),
            PayloadMode::ChunkedCrc32 | PayloadMode::ChunkedSigned => {
                c.put_chunked(&path, seed, size)
            }
        })
    }

    fn put_plain(&mut self, path: &str, seed: u64, size: u64) -> Result<(), BenchError> {
        let pattern = self.pattern;
        let hash = if self.mode == PayloadMode::Signed {
            // A signed payload costs a full SHA-256 pass before the first byte is sent, as
            // it does for every real client in this mode.
            let mut sha = ChecksumHasher::new(ChecksumAlgorithm::Sha256);
            let mut offset = 0u64;
            while offset < size {
                let n = (size - offset).min(PATTERN_BYTES as u64) as usize;
                sha.update(pattern.slice(seed, offset, n));
                offset += n as u64;
            }
            let digest = sha.finalize();
            let mut bytes = [0u8; 32];
            bytes.copy_from_slice(digest.as_bytes());
            hex32_string(&bytes)
        } else {
            UNSIGNED_PAYLOAD.to_owned()
        };
        let signer = self.signer();
        let mut head = std::mem::take(&mut self.head);
        let _ = wire::write_head(
            &mut head,
            &signer,
            "PUT",
            &self.authority,
            path,
            "",
            &[],
            &hash,
            Some(size),
            now_unix_s(),
        );
        let first = size.min(INLINE_BODY_BYTES_MAX as u64) as usize;
        let mut result = {
            let mut slices = [
                IoSlice::new(&head),
                IoSlice::new(pattern.slice(seed, 0, first)),
            ];
            write_all_vectored(self.stream(), &mut slices)
        };
        let mut offset = first as u64;
        while result.is_ok() && offset < size {
            let n = (size - offset).min(PATTERN_BYTES as u64) as usize;
            result = self.stream().write_all(pattern.slice(seed, offset, n));
            offset += n as u64;
        }
        self.head = head;
        if let Err(e) = result {
            return Err(self.write_failed(e));
        }
        self.finish_response(false, &[200], false).map(|_| ())
    }

    fn put_chunked(&mut self, path: &str, seed: u64, size: u64) -> Result<(), BenchError> {
        let pattern = self.pattern;
        let extra = wire::chunked_headers(self.mode, size);
        let extra: Vec<(&str, &str)> = extra.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let hash = if self.mode == PayloadMode::ChunkedSigned {
            STREAMING_SIGNED
        } else {
            STREAMING_UNSIGNED_TRAILER
        };
        let auth = self.signer();
        let mut head = std::mem::take(&mut self.head);
        let signed = wire::write_head(
            &mut head,
            &auth,
            "PUT",
            &self.authority,
            path,
            "",
            &extra,
            hash,
            Some(wire::encoded_len(self.mode, size, self.chunk_bytes)),
            now_unix_s(),
        );
        let mut framer = ChunkFramer::new(self.mode, &signed);
        let mut frame = std::mem::take(&mut self.frame);
        let mut offset = 0u64;
        let mut first = true;
        let mut result = Ok(());
        while result.is_ok() && offset < size {
            let n = (size - offset).min(self.chunk_bytes as u64) as usize;
            let data = pattern.slice(seed, offset, n);
            frame.clear();
            framer.chunk_prefix(data, &mut frame);
            let lead: &[u8] = if first { &head } else { &[] };
            let mut slices = [
                IoSlice::new(lead),
                IoSlice::new(&frame),
                IoSlice::new(data),
                IoSlice::new(CHUNK_SUFFIX),
            ];
            result = write_all_vectored(self.stream(), &mut slices);
            first = false;
            offset += n as u64;
        }
        if result.is_ok() {
            frame.clear();
            framer.finish(&mut frame);
            let lead: &[u8] = if first { &head } else { &[] };
            let mut slices = [IoSlice::new(lead), IoSlice::new(&frame)];
            result = write_all_vectored(self.stream(), &mut slices);
        }
        self.head = head;
        self.frame = frame;
        if let Err(e) = result {
            return Err(self.write_failed(e));
        }
        self.finish_response(false, &[200], false).map(|_| ())
    }

    /// `GetObject`. With `verify`, every byte is checked against `key`'s content and the
    /// length against `expected_size`.
    pub fn get(
        &mut self,
        bucket: &str,
        key: &str,
        verify: bool,
        expected_size: Option<u64>,
    ) -> Result<GetOutcome, BenchError> {
        let path = wire::object_path(bucket, key);
        let seed = key_seed(key);
        let pattern = self.pattern;
        let started = Instant::now();
        self.guarded(|c| {
            let signer = c.signer();
            let mut head = std::mem::take(&mut c.head);
            let _ = wire::write_head(
                &mut head,
                &signer,
                "GET",
                &c.authority,
                &path,
                "",
                &[],
                EMPTY_SHA256,
                None,
                now_unix_s(),
            );
            let written = c.stream().write_all(&head);
            c.head = head;
            written.map_err(BenchError::Io)?;
            let response = c.read_head(false)?;
            let first_byte = started.elapsed();
            if response.status != 200 {
                return Err(c.status_error(&response));
            }
            let mut offset = 0u64;
            let total = c.read_body(&response, &mut |piece| {
                if verify {
                    pattern
                        .check(seed, offset, piece)
                        .map_err(|at| BenchError::Verify { offset: at })?;
                }
                offset += piece.len() as u64;
                Ok(())
            })?;
            if response.close {
                c.drop_connection();
            }
            if verify && expected_size.is_some_and(|s| s != total) {
                return Err(BenchError::Verify {
                    offset: total.min(expected_size.unwrap_or(0)),
                });
            }
            Ok(GetOutcome {
                bytes: total,
                first_byte,
            })
        })
    }

    /// `HeadObject`; returns the object's `Content-Length`.
    pub fn head(&mut self, bucket: &str, key: &str) -> Result<u64, BenchError> {
        let path = wire::object_path(bucket, key);
        let (head, _) = self.simple("HEAD", &path, "", &[200], false)?;
        Ok(head.content_length.unwrap_or(0))
    }

    /// `DeleteObject`.
    pub fn delete(&mut self, bucket: &str, key: &str) -> Result<(), BenchError> {
        let path = wire::object_path(bucket, key);
        self.simple("DELETE", &path, "", &[200, 204], false)
            .map(|_| ())
    }

    /// One `ListObjectsV2` page under `prefix`, after `token` when given.
    pub fn list(
        &mut self,
        bucket: &str,
        prefix: &str,
        token: Option<&str>,
        max_keys: u32,
    ) -> Result<ListPage, BenchError> {
        let path = wire::object_path(bucket, "");
        let mut query = String::with_capacity(128);
        if let Some(token) = token {
            query.push_str("continuation-token=");
            wire::encode_into(&mut query, token.as_bytes(), false);
            query.push('&');
        }
        query.push_str("list-type=2&max-keys=");
        query.push_str(&max_keys.to_string());
        query.push_str("&prefix=");
        wire::encode_into(&mut query, prefix.as_bytes(), false);
        let (_, body) = self.simple("GET", &path, &query, &[200], true)?;
        let truncated = wire::xml_text(&body, "IsTruncated") == Some("true");
        let next = if truncated {
            wire::xml_text(&body, "NextContinuationToken").map(wire::xml_unescape)
        } else {
            None
        };
        if truncated && next.is_none() {
            return Err(BenchError::Protocol("truncated listing without a token"));
        }
        Ok(ListPage {
            keys: wire::count_tag(&body, "<Key>"),
            next,
        })
    }

    /// `CreateBucket`; a bucket that already exists counts as success. `BucketAlreadyExists`
    /// is accepted too: some servers (rclone) answer it for the caller's own bucket, and if
    /// the bucket really belongs to someone else the first request of the run says so.
    pub fn create_bucket(&mut self, bucket: &str) -> Result<(), BenchError> {
        let path = wire::object_path(bucket, "");
        match self.simple("PUT", &path, "", &[200], false) {
            Err(BenchError::Status { status: 409, code })
                if matches!(
                    code.as_deref(),
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                ) =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    /// Bytes sent as the PUT body of a `size`-byte object in this client's mode.
    #[must_use]
    pub fn wire_len(&self, size: u64) -> u64 {
        wire::encoded_len(self.mode, size, self.chunk_bytes)
    }
}

/// Whether a status error is "the object is not there" (used by the mixed workload).
#[must_use]
pub fn is_not_found(error: &BenchError) -> bool {
    matches!(error, BenchError::Status { status: 404, .. })
}
