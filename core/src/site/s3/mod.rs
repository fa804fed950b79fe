//! `s3` sites: a bucket on an S3 endpoint, reached over HTTP/1.1 (plain or rustls) with `SigV4`
//! signing, a bounded keep-alive pool, timeouts, retries and health.
//!
//! ```text
//!  request ─► admit (health) ─► lease (pool) ─► sign (tessera_http::sigv4::Signer)
//!     ─► write head [+ body] ─► read head (first-byte timeout) ─► read body (idle timeout)
//!     ─► clean end of a keep-alive response? recycle : close
//!     ─► record (health) ─► retryable and attempts left? backoff with full jitter, again
//! ```
//!
//! Streaming PUTs go out with `Content-Length` straight from the caller's buffers
//! (`UNSIGNED-PAYLOAD`), or aws-chunked with a signature per chunk when the payload must be
//! signed. A shard of at most [`PUT_REPLAY_BYTES_MAX`] is also copied as it streams, so that a
//! retryable failure of its PUT (a 500/503 answer, a dropped connection, a timeout) is sent
//! again from the copy, within the same retry budget. Larger shards are not retried here: their
//! bytes already went back to the caller's pool. Idempotent requests (GET, HEAD, DELETE, `DeleteObjects`, list) are
//! retried on timeouts, broken connections, 500/502/503/504 and `SlowDown`. A request that
//! finds a reused keep-alive connection already closed by the server is re-sent once at once on
//! a new connection without counting as a fault.

pub mod conn;
pub mod tls;
pub mod wire;

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use md5::Digest as _;
use monoio::buf::{IoBuf as _, IoBufMut as _};
use rustls::pki_types::ServerName;
use tessera_http::codec::head::Framing;
use tessera_http::codec::BodyDecoder;
use tessera_http::sigv4::{SignatureChain, Signer};

use self::conn::{Conn, Dialer, Lease, Pool, PoolStats};
use self::wire::{ResponseHead, SMALL_BODY_BYTES_MAX};
use super::config::{Addressing, PayloadSigning, S3SiteConfig};
use super::health::{Admission, Health, HealthSnapshot};
use super::{
    check_key, ByteRange, ListPage, ShardBytes, ShardInfo, SiteError, TimeoutPhase,
    DELETE_BATCH_MAX,
};

/// Payload bytes per aws-chunked chunk when the payload is signed. 64 KiB is what the AWS SDKs
/// use: each chunk costs one HMAC and ~90 bytes of framing, so this keeps framing under 0.2 %.
pub const SIGNED_CHUNK_BYTES: usize = 64 * 1024;
/// Room reserved in front of each signed chunk for its `size;chunk-signature=…\r\n` line.
const CHUNK_LINE_BYTES_MAX: usize = 16 + 17 + 64 + 2;
/// Shards up to this length are copied while they stream so that the site can send a failed
/// PUT again by itself. Small objects are where request-level failures cost the most: with the
/// default write quorum (all shards of a 2+1 object) one `503 SlowDown` or `500` from one site
/// otherwise fails the client's PUT. 256 KiB covers every shard of objects up to ~512 KiB at
/// ec 2+1 and bounds the copies to `connections_max` × 256 KiB per site per core.
pub const PUT_REPLAY_BYTES_MAX: u64 = 256 * 1024;

/// A parsed `endpoint` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `https`.
    pub tls: bool,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port (80/443 when not given).
    pub port: u16,
}

impl Endpoint {
    /// Parses `http(s)://host[:port][/]`.
    #[must_use]
    pub fn parse(text: &str) -> Option<Endpoint> {
        let (tls, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else {
            (false, text.strip_prefix("http://")?)
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return None;
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None if after.is_empty() => default_port,
                None => return None,
            };
            (host.to_owned(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), port.parse().ok()?),
                None => (rest.to_owned(), default_port),
            }
        };
        if host.is_empty() {
            return None;
        }
        Some(Endpoint { tls, host, port })
    }

    fn authority(&self, host: &str) -> String {
        let default_port = if self.tls { 443 } else { 80 };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

struct Inner {
    config: S3SiteConfig,
    /// The `Host` header.
    host_header: String,
    /// `/bucket` (path style) or empty (virtual-host style).
    path_prefix: String,
    pool: Rc<Pool>,
    health: RefCell<Health>,
    bucket_ready: Cell<bool>,
    signed_payload: bool,
    rng: Cell<u64>,
}

/// An S3 site on one core. Cheap to clone (shared within the core).
#[derive(Clone)]
pub struct S3Site(Rc<Inner>);

/// A response to a request whose body is small enough to buffer.
struct Small {
    status: u16,
    content_length: Option<u64>,
    body: Vec<u8>,
}

/// A request with a small (or no) body.
struct Call<'a> {
    method: &'static str,
    path: String,
    query: String,
    headers: Vec<(&'static str, String)>,
    body: &'a [u8],
    /// Read no body whatever the head says (HEAD requests).
    head_only: bool,
}

/// Maps an error status and S3 error code.
fn status_error(status: u16, code: String) -> SiteError {
    const AUTH_CODES: [&str; 8] = [
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "AccessDenied",
        "RequestTimeTooSkewed",
        "AuthorizationHeaderMalformed",
        "InvalidToken",
        "ExpiredToken",
        "InvalidSignature",
    ];
    // A 403 is an auth failure even without a code (HEAD responses carry no body).
    if status == 401 || status == 403 || AUTH_CODES.contains(&code.as_str()) {
        return SiteError::Auth { code };
    }
    match status {
        404 => SiteError::NotFound,
        416 => SiteError::InvalidRange,
        _ => SiteError::Http { status, code },
    }
}

fn now_unix_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Length on the wire of an aws-chunked body carrying `total` payload bytes.
#[must_use]
pub fn aws_chunked_len(total: u64) -> u64 {
    let line = |n: u64| -> u64 { format!("{n:x}").len() as u64 + 17 + 64 + 2 };
    let chunk = SIGNED_CHUNK_BYTES as u64;
    let full = total / chunk;
    let rest = total % chunk;
    let mut len = full * (line(chunk) + chunk + 2);
    if rest > 0 {
        len += line(rest) + rest + 2;
    }
    len + line(0) + 2
}

impl S3Site {
    /// Builds the site: parses the endpoint, loads TLS roots; opens no connection.
    pub fn open(config: &S3SiteConfig) -> Result<S3Site, SiteError> {
        let endpoint = Endpoint::parse(&config.endpoint)
            .ok_or_else(|| SiteError::Config(format!("bad endpoint {:?}", config.endpoint)))?;
        let (connect_host, path_prefix) = match config.addressing {
            Addressing::Path => (endpoint.host.clone(), format!("/{}", config.bucket)),
            Addressing::VirtualHost => (
                format!("{}.{}", config.bucket, endpoint.host),
                String::new(),
            ),
        };
        let host_header = endpoint.authority(&connect_host);
        let tls = if endpoint.tls {
            let tls_config = conn::tls_config(config.ca_file.as_deref(), config.insecure)?;
            let name = ServerName::try_from(connect_host.clone())
                .map_err(|_| SiteError::Config(format!("bad TLS name {connect_host:?}")))?;
            Some((tls_config, name))
        } else {
            None
        };
        let dialer = Dialer {
            authority: if connect_host.contains(':') {
                format!("[{connect_host}]:{}", endpoint.port)
            } else {
                format!("{connect_host}:{}", endpoint.port)
            },
            tls,
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
        };
        let pool = Pool::new(
            dialer,
            config.connections_max,
            Duration::from_millis(config.idle_timeout_ms),
        );
        let signed_payload = match config.payload_signing {
            PayloadSigning::Auto => !endpoint.tls,
            PayloadSigning::Unsigned => false,
            PayloadSigning::Signed => true,
        };
        let mut seed = [0u8; 8];
        getrandom::getrandom(&mut seed).map_err(|_| SiteError::Io(std::io::ErrorKind::Other))?;
        Ok(S3Site(Rc::new(Inner {
            config: config.clone(),
            host_header,
            path_prefix,
            pool,
            health: RefCell::new(Health::new(
                config.down_after_errors,
                Duration::from_millis(config.probe_interval_ms),
            )),
            bucket_ready: Cell::new(false),
            signed_payload,
            rng: Cell::new(u64::from_le_bytes(seed) | 1),
        })))
    }

    /// The site's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.0.config.name
    }

    /// Health figures.
    #[must_use]
    pub fn health(&self) -> HealthSnapshot {
        self.0.health.borrow().snapshot()
    }

    /// Connection pool counters (opened, reused, recycled).
    #[must_use]
    pub fn pool_stats(&self) -> PoolStats {
        self.0.pool.stats()
    }

    /// Whether request bodies are signed (aws-chunked) rather than `UNSIGNED-PAYLOAD`.
    #[must_use]
    pub fn signs_payload(&self) -> bool {
        self.0.signed_payload
    }

    fn admit(&self) -> Result<(), SiteError> {
        match self.0.health.borrow_mut().admit(Instant::now()) {
            Admission::Go | Admission::Probe => Ok(()),
            Admission::Reject => Err(SiteError::Down),
        }
    }

    fn record_ok(&self, latency: Duration) {
        self.0.health.borrow_mut().record_success(latency);
    }

    fn record_err(&self, err: &SiteError) {
        self.0
            .health
            .borrow_mut()
            .record_failure(err.health_effect(), Instant::now());
    }

    /// The delay before retry number `attempt` (1-based): uniform in `[0, min(max, base·2^(attempt-1))]`
    /// ("full jitter"), so that many cores retrying a struggling site spread out.
    fn backoff(&self, attempt: u32) -> Duration {
        let c = &self.0.config;
        let cap = c
            .backoff_base_ms
            .saturating_mul(1 << (attempt - 1).min(20))
            .min(c.backoff_max_ms);
        // xorshift64: quality is irrelevant here, only spread.
        let mut x = self.0.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0.rng.set(x);
        Duration::from_millis(x % (cap + 1))
    }

    fn object_path(&self, key: &str) -> String {
        let mut path = String::with_capacity(self.0.path_prefix.len() + 1 + key.len() * 3);
        path.push_str(&self.0.path_prefix);
        path.push('/');
        wire::encode_into(&mut path, key.as_bytes(), true);
        path
    }

    fn bucket_path(&self) -> String {
        if self.0.path_prefix.is_empty() {
            "/".to_owned()
        } else {
            self.0.path_prefix.clone()
        }
    }

    /// Signs and writes a request head, with `body` appended in the same write. Returns the
    /// chunk-signature chain the signature seeds (used by signed streaming PUTs).
    async fn send_head(
        &self,
        lease: &mut Lease,
        call: &Call<'_>,
        payload_hash: &str,
        content_length: Option<u64>,
    ) -> Result<SignatureChain, SiteError> {
        let signer = Signer {
            access_key: &self.0.config.access_key,
            secret: &self.0.config.secret_key,
            region: &self.0.config.region,
            service: "s3",
        };
        let mut to_sign: Vec<(&str, &str)> = Vec::with_capacity(call.headers.len() + 1);
        to_sign.push(("host", &self.0.host_header));
        for (name, value) in &call.headers {
            if name.starts_with("x-amz-") || *name == "content-md5" || *name == "content-encoding" {
                to_sign.push((name, value));
            }
        }
        let signature = signer.sign_headers(
            call.method,
            &call.path,
            &call.query,
            &to_sign,
            payload_hash,
            now_unix_s(),
        );
        let mut headers: Vec<(&str, &str)> =
            call.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        headers.push(("x-amz-date", &signature.amz_date));
        headers.push(("x-amz-content-sha256", &signature.content_sha256));
        headers.push(("authorization", &signature.authorization));
        let mut target = call.path.clone();
        if !call.query.is_empty() {
            target.push('?');
            target.push_str(&call.query);
        }
        let mut out = Vec::with_capacity(512 + call.body.len());
        wire::write_request_head(
            &mut out,
            call.method,
            &target,
            &self.0.host_header,
            &headers,
            content_length,
        );
        out.extend_from_slice(call.body);
        self.write_timed(lease.conn(), out).await.0?;
        Ok(signature.chain)
    }

    /// Writes `buf` within the idle timeout and gives it back; on a timeout the buffer went
    /// down with the cancelled write and a new one like it is handed back.
    async fn write_timed<B: ShardBytes>(
        &self,
        conn: &mut Conn,
        buf: B,
    ) -> (Result<(), SiteError>, B) {
        let capacity = buf.replacement_capacity();
        let range = buf.payload_range();
        let idle = Duration::from_millis(self.0.config.idle_timeout_ms);
        match monoio::time::timeout(idle, conn.stream.write_all(buf.slice(range))).await {
            Ok((Ok(_), buf)) => (Ok(()), buf.into_inner()),
            Ok((Err(err), buf)) => (Err(conn::io_error(&err)), buf.into_inner()),
            Err(_) => (
                Err(SiteError::Timeout(TimeoutPhase::Idle)),
                B::replacement(capacity),
            ),
        }
    }

    async fn read_head(&self, conn: &mut Conn) -> Result<ResponseHead, SiteError> {
        let first_byte = Duration::from_millis(self.0.config.first_byte_timeout_ms);
        loop {
            if let Some(head) = wire::parse_response_head(conn.buffered())? {
                conn.consume(head.head_len);
                if head.status == 100 {
                    continue;
                }
                return Ok(head);
            }
            conn.fill(first_byte, TimeoutPhase::FirstByte).await?;
        }
    }

    async fn read_small_body(
        &self,
        conn: &mut Conn,
        framing: Framing,
    ) -> Result<Vec<u8>, SiteError> {
        let idle = Duration::from_millis(self.0.config.idle_timeout_ms);
        let mut decoder = BodyDecoder::new(framing);
        let mut body = Vec::new();
        while !decoder.is_done() {
            if conn.buffered().is_empty() {
                conn.fill(idle, TimeoutPhase::Idle).await?;
            }
            let step = decoder
                .decode(conn.buffered())
                .map_err(|_| SiteError::Protocol("bad response body framing"))?;
            body.extend_from_slice(&conn.buffered()[step.payload]);
            conn.consume(step.consumed);
            if body.len() > SMALL_BODY_BYTES_MAX {
                return Err(SiteError::Protocol("response body too large"));
            }
        }
        Ok(body)
    }

    /// Reads a body that runs until the server closes the connection.
    async fn read_to_close(&self, conn: &mut Conn) -> Result<Vec<u8>, SiteError> {
        let idle = Duration::from_millis(self.0.config.idle_timeout_ms);
        let mut body = Vec::new();
        loop {
            body.extend_from_slice(conn.buffered());
            let n = conn.buffered().len();
            conn.consume(n);
            if body.len() > SMALL_BODY_BYTES_MAX {
                return Err(SiteError::Protocol("response body too large"));
            }
            match conn.fill(idle, TimeoutPhase::Idle).await {
                Ok(()) => {}
                Err(SiteError::Closed) => return Ok(body),
                Err(err) => return Err(err),
            }
        }
    }

    /// Finishes a response whose head is read: buffers its body, recycles the connection when
    /// the exchange ended cleanly, and turns an error status into an error.
    async fn finish_small(
        &self,
        mut lease: Lease,
        head: ResponseHead,
        head_only: bool,
    ) -> Result<Small, SiteError> {
        let framing = if head_only {
            Framing::None
        } else {
            head.framing
        };
        let body = if head.to_close && !head_only {
            self.read_to_close(lease.conn()).await?
        } else {
            self.read_small_body(lease.conn(), framing).await?
        };
        if !head.close && lease.conn().buffered().is_empty() {
            lease.recycle();
        }
        let content_length = match head.framing {
            Framing::Length(n) => Some(n),
            _ => None,
        };
        if (200..300).contains(&head.status) {
            Ok(Small {
                status: head.status,
                content_length,
                body,
            })
        } else {
            Err(status_error(head.status, wire::error_code(&body)))
        }
    }

    /// One attempt of a small request. The flag says whether the failure happened on a reused
    /// connection before any response byte (a keep-alive the server had closed).
    async fn attempt(
        &self,
        call: &Call<'_>,
        fresh_only: bool,
    ) -> Result<(Small, Duration), (SiteError, bool)> {
        let mut lease = self
            .0
            .pool
            .lease(fresh_only)
            .await
            .map_err(|e| (e, false))?;
        let reused = lease.reused;
        let payload_hash = if call.body.is_empty() && call.method != "POST" && call.method != "PUT"
        {
            tessera_http::sigv4::EMPTY_SHA256_HEX.to_owned()
        } else {
            hex::encode(sha2::Sha256::digest(call.body))
        };
        let length = if call.body.is_empty() && matches!(call.method, "GET" | "HEAD" | "DELETE") {
            None
        } else {
            Some(call.body.len() as u64)
        };
        if let Err(err) = self
            .send_head(&mut lease, call, &payload_hash, length)
            .await
        {
            return Err((err, reused));
        }
        let sent = Instant::now();
        let head = match self.read_head(lease.conn()).await {
            Ok(head) => head,
            Err(err) => {
                let stale = reused && matches!(err, SiteError::Closed);
                return Err((err, stale));
            }
        };
        let latency = sent.elapsed();
        match self.finish_small(lease, head, call.head_only).await {
            Ok(small) => Ok((small, latency)),
            Err(err) => Err((err, false)),
        }
    }

    /// Runs a small idempotent request with admission, retries and health recording.
    async fn call(&self, call: &Call<'_>) -> Result<Small, SiteError> {
        self.call_after(call, 0).await
    }

    /// [`S3Site::call`] when `retries` of the request's retry budget are already spent.
    async fn call_after(&self, call: &Call<'_>, mut retries: u32) -> Result<Small, SiteError> {
        let mut fresh_only = false;
        loop {
            if !fresh_only {
                self.admit()?;
            }
            match self.attempt(call, fresh_only).await {
                Ok((small, latency)) => {
                    self.record_ok(latency);
                    return Ok(small);
                }
                Err((_, true)) if !fresh_only => {
                    // The pooled connection was dead on arrival: resend at once on a new one.
                    fresh_only = true;
                }
                Err((err, _)) => {
                    fresh_only = false;
                    self.record_err(&err);
                    if !err.is_retryable() || retries >= self.0.config.retries_max {
                        return Err(err);
                    }
                    retries += 1;
                    monoio::time::sleep(self.backoff(retries)).await;
                }
            }
        }
    }

    /// Makes sure the backend bucket exists, creating it if allowed (once per core).
    pub async fn ensure_bucket(&self) -> Result<(), SiteError> {
        if self.0.bucket_ready.get() {
            return Ok(());
        }
        let head = Call {
            method: "HEAD",
            path: self.bucket_path(),
            query: String::new(),
            headers: Vec::new(),
            body: &[],
            head_only: true,
        };
        match self.call(&head).await {
            Ok(_) => {}
            Err(SiteError::NotFound) if self.0.config.create_bucket => {
                let body = if self.0.config.region == "us-east-1" {
                    String::new()
                } else {
                    format!(
                        "<CreateBucketConfiguration><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                        self.0.config.region
                    )
                };
                let create = Call {
                    method: "PUT",
                    path: self.bucket_path(),
                    query: String::new(),
                    headers: Vec::new(),
                    body: body.as_bytes(),
                    head_only: false,
                };
                match self.call(&create).await {
                    Ok(_) => {}
                    Err(SiteError::Http { status: 409, code })
                        if code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" => {}
                    Err(err) => return Err(err),
                }
            }
            Err(err) => return Err(err),
        }
        self.0.bucket_ready.set(true);
        Ok(())
    }

    /// Starts a streaming PUT; see [`super::Site::put_shard`].
    pub async fn put_shard(&self, key: &str, total_len: u64) -> Result<S3ShardWriter, SiteError> {
        check_key(key)?;
        self.ensure_bucket().await?;
        let signed = self.0.signed_payload;
        let mut headers = vec![("content-type", "application/octet-stream".to_owned())];
        // An empty body needs no chunk framing: its hash is the known empty-string hash.
        let signed = signed && total_len > 0;
        let (payload_hash, length) = if total_len == 0 {
            (tessera_http::sigv4::EMPTY_SHA256_HEX, 0)
        } else if signed {
            headers.push(("content-encoding", "aws-chunked".to_owned()));
            headers.push(("x-amz-decoded-content-length", total_len.to_string()));
            (
                "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                aws_chunked_len(total_len),
            )
        } else {
            ("UNSIGNED-PAYLOAD", total_len)
        };
        let call = Call {
            method: "PUT",
            path: self.object_path(key),
            query: String::new(),
            headers,
            body: &[],
            head_only: false,
        };
        let mut retries = 0;
        let mut fresh_only = false;
        loop {
            if !fresh_only {
                self.admit()?;
            }
            let result = async {
                let mut lease = self
                    .0
                    .pool
                    .lease(fresh_only)
                    .await
                    .map_err(|e| (e, false))?;
                let reused = lease.reused;
                let chain = self
                    .send_head(&mut lease, &call, payload_hash, Some(length))
                    .await
                    .map_err(|e| (e, reused))?;
                Ok((lease, chain))
            }
            .await;
            match result {
                Ok((lease, chain)) => {
                    let chain = signed.then_some(chain);
                    let replay = (total_len <= PUT_REPLAY_BYTES_MAX).then(|| Replay {
                        path: call.path.clone(),
                        // Bounded by PUT_REPLAY_BYTES_MAX just above.
                        #[allow(clippy::cast_possible_truncation)]
                        body: Vec::with_capacity(total_len as usize),
                        failure: None,
                    });
                    return Ok(S3ShardWriter {
                        site: self.clone(),
                        lease: Some(lease),
                        total_len,
                        written: 0,
                        replay,
                        signed: chain.map(|chain| {
                            Box::new(SignedBody {
                                chain,
                                frame: Vec::with_capacity(
                                    CHUNK_LINE_BYTES_MAX + SIGNED_CHUNK_BYTES + 2,
                                ),
                            })
                        }),
                    });
                }
                Err((_, true)) if !fresh_only => fresh_only = true,
                Err((err, _)) => {
                    // Nothing of the body was sent yet, so even a PUT may be retried here.
                    fresh_only = false;
                    self.record_err(&err);
                    if !err.is_retryable() || retries >= self.0.config.retries_max {
                        return Err(err);
                    }
                    retries += 1;
                    monoio::time::sleep(self.backoff(retries)).await;
                }
            }
        }
    }

    /// Reads a range; see [`super::Site::get_range`].
    pub async fn get_range(
        &self,
        key: &str,
        range: ByteRange,
        mut buf: Vec<u8>,
    ) -> (Result<usize, SiteError>, Vec<u8>) {
        buf.clear();
        if let Err(err) = check_key(key) {
            return (Err(err), buf);
        }
        if range.len == 0 || range.len > buf.capacity() as u64 {
            return (Err(SiteError::InvalidRange), buf);
        }
        let mut retries = 0;
        let mut fresh_only = false;
        loop {
            if !fresh_only {
                if let Err(err) = self.admit() {
                    return (Err(err), buf);
                }
            }
            let (result, returned) = self.get_attempt(key, range, buf, fresh_only).await;
            buf = returned;
            match result {
                Ok((n, latency)) => {
                    self.record_ok(latency);
                    return (Ok(n), buf);
                }
                Err((_, true)) if !fresh_only => fresh_only = true,
                Err((err, _)) => {
                    fresh_only = false;
                    self.record_err(&err);
                    if !err.is_retryable() || retries >= self.0.config.retries_max {
                        return (Err(err), buf);
                    }
                    retries += 1;
                    monoio::time::sleep(self.backoff(retries)).await;
                }
            }
        }
    }

    #[allow(clippy::type_complexity)] // (result with the stale flag, buffer) is the BufResult shape.
    async fn get_attempt(
        &self,
        key: &str,
        range: ByteRange,
        mut buf: Vec<u8>,
        fresh_only: bool,
    ) -> (Result<(usize, Duration), (SiteError, bool)>, Vec<u8>) {
        buf.clear();
        let mut lease = match self.0.pool.lease(fresh_only).await {
            Ok(lease) => lease,
            Err(err) => return (Err((err, false)), buf),
        };
        let reused = lease.reused;
        let call = Call {
            method: "GET",
            path: self.object_path(key),
            query: String::new(),
            headers: vec![(
                "range",
                format!("bytes={}-{}", range.start, range.start + range.len - 1),
            )],
            body: &[],
            head_only: false,
        };
        if let Err(err) = self
            .send_head(
                &mut lease,
                &call,
                tessera_http::sigv4::EMPTY_SHA256_HEX,
                None,
            )
            .await
        {
            return (Err((err, reused)), buf);
        }
        let sent = Instant::now();
        let head = match self.read_head(lease.conn()).await {
            Ok(head) => head,
            Err(err) => {
                let stale = reused && matches!(err, SiteError::Closed);
                return (Err((err, stale)), buf);
            }
        };
        let latency = sent.elapsed();
        let Framing::Length(body_len) = head.framing else {
            if (200..300).contains(&head.status) {
                return (
                    Err((SiteError::Protocol("ranged GET without length"), false)),
                    buf,
                );
            }
            let err = self.finish_small(lease, head, false).await.err();
            let err = err.unwrap_or(SiteError::Protocol("error status without error"));
            return (Err((err, false)), buf);
        };
        let partial = match (head.status, head.range_first) {
            // rclone answers 200 but with Content-Range and only the range in the body.
            (200 | 206, Some(first)) => first == range.start,
            (206, None) => true,
            _ => false,
        };
        if (200..300).contains(&head.status) && head.range_first.is_some() && !partial {
            return (
                Err((
                    SiteError::Protocol("Content-Range does not match the request"),
                    false,
                )),
                buf,
            );
        }
        match head.status {
            _ if partial => {
                if body_len > range.len {
                    return (
                        Err((
                            SiteError::Protocol("partial body longer than the range"),
                            false,
                        )),
                        buf,
                    );
                }
                let (result, buf) = self.read_into(lease.conn(), buf, body_len as usize).await;
                if let Err(err) = result {
                    return (Err((err, false)), buf);
                }
                if !head.close && lease.conn().buffered().is_empty() {
                    lease.recycle();
                }
                (Ok((buf.len(), latency)), buf)
            }
            200 => {
                // The server ignored Range and sends the whole shard: skip to the start, keep
                // the range, and close the connection rather than drain the rest.
                if range.start >= body_len {
                    return (Err((SiteError::InvalidRange, false)), buf);
                }
                let mut skip = range.start as usize;
                while skip > 0 {
                    let step = skip.min(buf.capacity());
                    let (result, returned) = self.read_into(lease.conn(), buf, step).await;
                    buf = returned;
                    buf.clear();
                    if let Err(err) = result {
                        return (Err((err, false)), buf);
                    }
                    skip -= step;
                }
                let want = range.len.min(body_len - range.start) as usize;
                let (result, buf) = self.read_into(lease.conn(), buf, want).await;
                match result {
                    Ok(()) => (Ok((buf.len(), latency)), buf),
                    Err(err) => (Err((err, false)), buf),
                }
            }
            _ => {
                let err = self.finish_small(lease, head, false).await.err();
                let err = err.unwrap_or(SiteError::Protocol("error status without error"));
                (Err((err, false)), buf)
            }
        }
    }

    /// Reads exactly `want` body bytes into `buf` (appending): first what the connection has
    /// buffered, then straight from the socket into the buffer's spare capacity.
    async fn read_into(
        &self,
        conn: &mut Conn,
        mut buf: Vec<u8>,
        want: usize,
    ) -> (Result<(), SiteError>, Vec<u8>) {
        let target = buf.len() + want;
        assert!(target <= buf.capacity());
        let take = conn.buffered().len().min(want);
        buf.extend_from_slice(&conn.buffered()[..take]);
        conn.consume(take);
        let idle = Duration::from_millis(self.0.config.idle_timeout_ms);
        while buf.len() < target {
            let capacity = buf.capacity();
            let filled = buf.len();
            let slice = buf.slice_mut(filled..target);
            let Ok((result, slice)) = monoio::time::timeout(idle, conn.read_body(slice)).await
            else {
                return (
                    Err(SiteError::Timeout(TimeoutPhase::Idle)),
                    Vec::with_capacity(capacity),
                );
            };
            buf = slice.into_inner();
            match result {
                Ok(0) => return (Err(SiteError::Closed), buf),
                Ok(_) => {}
                Err(err) => return (Err(conn::io_error(&err)), buf),
            }
        }
        (Ok(()), buf)
    }

    /// The length of a shard.
    pub async fn head(&self, key: &str) -> Result<ShardInfo, SiteError> {
        check_key(key)?;
        let call = Call {
            method: "HEAD",
            path: self.object_path(key),
            query: String::new(),
            headers: Vec::new(),
            body: &[],
            head_only: true,
        };
        let small = self.call(&call).await?;
        let len = small
            .content_length
            .ok_or(SiteError::Protocol("HEAD without Content-Length"))?;
        Ok(ShardInfo { len })
    }

    /// Deletes a shard; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), SiteError> {
        check_key(key)?;
        let call = Call {
            method: "DELETE",
            path: self.object_path(key),
            query: String::new(),
            headers: Vec::new(),
            body: &[],
            head_only: false,
        };
        match self.call(&call).await {
            Ok(_) | Err(SiteError::NotFound) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Deletes up to `DELETE_BATCH_MAX` shards with one `DeleteObjects` request (keys that
    /// XML 1.0 cannot carry are deleted one by one).
    pub async fn delete_many(
        &self,
        keys: &[String],
    ) -> Result<Vec<(String, SiteError)>, SiteError> {
        if keys.len() > DELETE_BATCH_MAX {
            return Err(SiteError::BatchTooLarge);
        }
        let mut failed = Vec::new();
        let mut batch: Vec<&str> = Vec::with_capacity(keys.len());
        for key in keys {
            if check_key(key).is_err() {
                failed.push((key.clone(), SiteError::InvalidKey));
            } else if wire::xml_safe(key) {
                batch.push(key);
            } else if let Err(err) = self.delete(key).await {
                if err == SiteError::Down {
                    return Err(err);
                }
                failed.push((key.clone(), err));
            }
        }
        if batch.is_empty() {
            return Ok(failed);
        }
        let body = wire::delete_objects_body(&batch);
        let md5 =
            base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body.as_bytes()));
        let call = Call {
            method: "POST",
            path: self.bucket_path(),
            query: "delete=".to_owned(),
            headers: vec![
                ("content-md5", md5),
                ("content-type", "application/xml".to_owned()),
            ],
            body: body.as_bytes(),
            head_only: false,
        };
        let small = self.call(&call).await?;
        debug_assert!(small.status == 200);
        for (key, code) in wire::parse_delete_errors(&small.body)? {
            if code == "NoSuchKey" {
                continue;
            }
            let err = if code == "AccessDenied" {
                SiteError::Auth { code }
            } else {
                SiteError::Http { status: 0, code }
            };
            failed.push((key, err));
        }
        Ok(failed)
    }

    /// One page of keys under `prefix`; see [`super::Site::list`].
    pub async fn list(
        &self,
        prefix: &str,
        continuation: Option<&str>,
    ) -> Result<ListPage, SiteError> {
        self.ensure_bucket().await?;
        let mut query = String::with_capacity(128 + prefix.len() * 3);
        if let Some(token) = continuation {
            query.push_str("continuation-token=");
            wire::encode_into(&mut query, token.as_bytes(), false);
            query.push('&');
        }
        let _ = write!(
            query,
            "encoding-type=url&list-type=2&max-keys={}",
            super::LIST_PAGE_MAX
        );
        if !prefix.is_empty() {
            query.push_str("&prefix=");
            wire::encode_into(&mut query, prefix.as_bytes(), false);
        }
        let call = Call {
            method: "GET",
            path: self.bucket_path(),
            query,
            headers: Vec::new(),
            body: &[],
            head_only: false,
        };
        let small = self.call(&call).await?;
        wire::parse_list(&small.body)
    }

    /// Sends one HEAD of the bucket, whatever the health state; any answer but a server error
    /// or an auth failure counts as the site being reachable.
    pub async fn probe(&self) -> Result<(), SiteError> {
        let call = Call {
            method: "HEAD",
            path: self.bucket_path(),
            query: String::new(),
            headers: Vec::new(),
            body: &[],
            head_only: true,
        };
        let result = match self.attempt(&call, false).await {
            Ok((_, latency)) => Ok(latency),
            Err((SiteError::NotFound, _)) => Ok(Duration::ZERO),
            Err((err, _)) => Err(err),
        };
        match result {
            Ok(latency) => {
                self.record_ok(latency);
                Ok(())
            }
            Err(err) => {
                self.record_err(&err);
                Err(err)
            }
        }
    }
}

struct SignedBody {
    chain: SignatureChain,
    /// `[room for the chunk line][payload up to SIGNED_CHUNK_BYTES][\r\n]`; payload is copied
    /// in at `CHUNK_LINE_BYTES_MAX`.
    frame: Vec<u8>,
}

/// The copy of a small shard kept to send its PUT again.
struct Replay {
    /// The object path of the PUT.
    path: String,
    /// Every byte written so far.
    body: Vec<u8>,
    /// The retryable failure of the first attempt, once one happened during `write` (the
    /// connection is gone; the rest of the body is only copied and `finish` sends the copy).
    failure: Option<SiteError>,
}

/// A streaming PUT to an S3 site.
pub struct S3ShardWriter {
    site: S3Site,
    lease: Option<Lease>,
    total_len: u64,
    written: u64,
    /// Present for shards of at most [`PUT_REPLAY_BYTES_MAX`].
    replay: Option<Replay>,
    /// Boxed: the HMAC state and frame are only needed when the payload is signed, and keep
    /// `ShardWriter` small otherwise.
    signed: Option<Box<SignedBody>>,
}

impl S3ShardWriter {
    fn conn(&mut self) -> Result<&mut Conn, SiteError> {
        match self.lease.as_mut() {
            Some(lease) => Ok(lease.conn()),
            // An earlier write failed and dropped the connection.
            None => Err(SiteError::Closed),
        }
    }

    /// Appends the payload of `buf`; see [`super::ShardWriter::write`].
    pub async fn write<B: ShardBytes>(&mut self, buf: B) -> (Result<(), SiteError>, B) {
        let len = buf.payload().len() as u64;
        if self.written + len > self.total_len {
            return (
                Err(SiteError::LengthMismatch {
                    expected: self.total_len,
                    actual: self.written + len,
                }),
                buf,
            );
        }
        if let Some(replay) = self.replay.as_mut() {
            replay.body.extend_from_slice(buf.payload());
            if replay.failure.is_some() {
                self.written += len;
                return (Ok(()), buf);
            }
        }
        let (result, buf) = if self.signed.is_some() {
            (self.write_signed(buf.payload()).await, buf)
        } else {
            let site = self.site.clone();
            match self.conn() {
                Ok(conn) => site.write_timed(conn, buf).await,
                Err(err) => (Err(err), buf),
            }
        };
        match result {
            Ok(()) => self.written += len,
            Err(err) => {
                self.lease = None;
                self.site.record_err(&err);
                match self.replay.as_mut() {
                    Some(replay) if err.is_retryable() => {
                        replay.failure = Some(err);
                        self.written += len;
                        return (Ok(()), buf);
                    }
                    _ => return (Err(err), buf),
                }
            }
        }
        (Ok(()), buf)
    }

    /// Copies `data` into chunk frames, sending each frame as it fills.
    async fn write_signed(&mut self, mut data: &[u8]) -> Result<(), SiteError> {
        while !data.is_empty() {
            let signed = self.signed.as_mut().ok_or(SiteError::Closed)?;
            if signed.frame.is_empty() {
                signed.frame.resize(CHUNK_LINE_BYTES_MAX, 0);
            }
            let room = CHUNK_LINE_BYTES_MAX + SIGNED_CHUNK_BYTES - signed.frame.len();
            let take = room.min(data.len());
            signed.frame.extend_from_slice(&data[..take]);
            data = &data[take..];
            if signed.frame.len() == CHUNK_LINE_BYTES_MAX + SIGNED_CHUNK_BYTES {
                self.send_frame().await?;
            }
        }
        Ok(())
    }

    /// Signs and sends the payload staged in the frame (possibly empty: the final chunk).
    async fn send_frame(&mut self) -> Result<(), SiteError> {
        let signed = self.signed.as_mut().ok_or(SiteError::Closed)?;
        if signed.frame.is_empty() {
            signed.frame.resize(CHUNK_LINE_BYTES_MAX, 0);
        }
        let payload_len = signed.frame.len() - CHUNK_LINE_BYTES_MAX;
        // `sign_chunk` returns the whole `{len:x};chunk-signature={sig}\r\n` line.
        let line = signed
            .chain
            .sign_chunk(&signed.frame[CHUNK_LINE_BYTES_MAX..]);
        assert!(line.len() <= CHUNK_LINE_BYTES_MAX);
        assert!(line.starts_with(&format!("{payload_len:x};")));
        let begin = CHUNK_LINE_BYTES_MAX - line.len();
        signed.frame[begin..CHUNK_LINE_BYTES_MAX].copy_from_slice(line.as_bytes());
        signed.frame.extend_from_slice(b"\r\n");
        let frame = std::mem::take(&mut signed.frame);
        let end = frame.len();
        let site = self.site.clone();
        let conn = self.conn()?;
        let idle = Duration::from_millis(site.0.config.idle_timeout_ms);
        let written =
            monoio::time::timeout(idle, conn.stream.write_all(frame.slice(begin..end))).await;
        let Ok((result, slice)) = written else {
            return Err(SiteError::Timeout(TimeoutPhase::Idle));
        };
        let mut frame = slice.into_inner();
        frame.clear();
        if let Some(signed) = self.signed.as_mut() {
            signed.frame = frame;
        }
        result.map(|_| ()).map_err(|e| conn::io_error(&e))
    }

    /// Completes the upload and reads the answer; see [`super::ShardWriter::finish`].
    pub async fn finish(mut self) -> Result<(), SiteError> {
        if self.written != self.total_len {
            return Err(SiteError::LengthMismatch {
                expected: self.total_len,
                actual: self.written,
            });
        }
        let site = self.site.clone();
        if let Some(failure) = self.replay.as_mut().and_then(|r| r.failure.take()) {
            // Already recorded by `write`.
            return self.send_replay(failure).await;
        }
        let result = async {
            if self.signed.is_some() {
                let staged = self
                    .signed
                    .as_ref()
                    .map_or(0, |s| s.frame.len().saturating_sub(CHUNK_LINE_BYTES_MAX));
                if staged > 0 {
                    self.send_frame().await?;
                }
                // The final, empty chunk.
                self.send_frame().await?;
            }
            let mut lease = self.lease.take().ok_or(SiteError::Closed)?;
            let sent = Instant::now();
            let head = site.read_head(lease.conn()).await?;
            let latency = sent.elapsed();
            site.finish_small(lease, head, false).await?;
            Ok(latency)
        }
        .await;
        match result {
            Ok(latency) => {
                site.record_ok(latency);
                Ok(())
            }
            Err(err) => {
                site.record_err(&err);
                self.send_replay(err).await
            }
        }
    }

    /// After the first attempt failed with `failure` (already recorded): sends the kept copy
    /// of a small shard again with the rest of the retry budget, or returns `failure`.
    async fn send_replay(&mut self, failure: SiteError) -> Result<(), SiteError> {
        let site = self.site.clone();
        let Some(replay) = self.replay.take() else {
            return Err(failure);
        };
        if !failure.is_retryable() || site.0.config.retries_max == 0 {
            return Err(failure);
        }
        assert_eq!(replay.body.len() as u64, self.total_len);
        monoio::time::sleep(site.backoff(1)).await;
        // A plain PUT whose payload hash is signed: the copy is in memory, so no chunk framing
        // is needed, whatever `payload_signing` says.
        let call = Call {
            method: "PUT",
            path: replay.path,
            query: String::new(),
            headers: vec![("content-type", "application/octet-stream".to_owned())],
            body: &replay.body,
            head_only: false,
        };
        site.call_after(&call, 1).await.map(|_| ())
    }

    /// Abandons the upload: the connection is closed mid-body, so the server discards it and
    /// nothing becomes visible.
    pub fn abort(mut self) {
        self.lease = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        // Scheme, host, port (explicit and default), IPv6 literals; anything with a path or
        // another scheme is refused.
        let e = Endpoint::parse("https://s3.eu-west-1.amazonaws.com").expect("valid");
        assert!(e.tls);
        assert_eq!(e.port, 443);
        assert_eq!(e.authority(&e.host), "s3.eu-west-1.amazonaws.com");
        let e = Endpoint::parse("http://127.0.0.1:9000/").expect("valid");
        assert!(!e.tls);
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 9000));
        assert_eq!(e.authority(&e.host), "127.0.0.1:9000");
        let e = Endpoint::parse("http://[::1]:9000").expect("valid");
        assert_eq!(e.host, "::1");
        assert_eq!(e.authority(&e.host), "[::1]:9000");
        for bad in ["ftp://h", "http://", "http://h/path", "h:1", "http://h:x"] {
            assert!(Endpoint::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn addressing_styles_name_the_bucket_in_path_or_host() {
        // Path style puts the bucket first in the path and keeps the endpoint host; virtual
        // host style moves it into the Host header (and the TLS name) and keys start at `/`.
        let mut c = S3SiteConfig::new("s", "http://s3.example.com:9000", "r", "bkt", "a", "k");
        let site = S3Site::open(&c).expect("path style");
        assert_eq!(site.0.host_header, "s3.example.com:9000");
        assert_eq!(site.object_path("a b/c"), "/bkt/a%20b/c");
        assert_eq!(site.bucket_path(), "/bkt");
        c.addressing = Addressing::VirtualHost;
        c.endpoint = "https://s3.example.com".into();
        c.insecure = true;
        let site = S3Site::open(&c).expect("virtual host style");
        assert_eq!(site.0.host_header, "bkt.s3.example.com");
        assert_eq!(site.object_path("a b/c"), "/a%20b/c");
        assert_eq!(site.bucket_path(), "/");
        assert!(!site.signs_payload(), "unsigned over TLS by default");
    }

    #[test]
    fn backoff_is_jittered_and_capped() {
        // Every delay lies in [0, min(max, base * 2^(attempt-1))] and the delays vary.
        let mut c = S3SiteConfig::new("s", "http://h", "r", "bkt", "a", "k");
        c.backoff_base_ms = 10;
        c.backoff_max_ms = 100;
        let site = S3Site::open(&c).expect("site");
        let mut seen = std::collections::BTreeSet::new();
        for attempt in 1..=8u32 {
            for _ in 0..50 {
                let delay = site.backoff(attempt).as_millis() as u64;
                assert!(
                    delay <= (10u64 << (attempt - 1)).min(100),
                    "{attempt}: {delay}"
                );
                seen.insert(delay);
            }
        }
        assert!(seen.len() > 20, "jitter spreads delays: {seen:?}");
    }

    #[test]
    fn aws_chunked_length_matches_the_framing() {
        // The announced Content-Length equals the bytes the writer frames: one full chunk, a
        // partial chunk, and the final empty chunk.
        let total = SIGNED_CHUNK_BYTES as u64 + 5;
        let expected = (5 + 17 + 64 + 2 + SIGNED_CHUNK_BYTES + 2)
            + (1 + 17 + 64 + 2 + 5 + 2)
            + (1 + 17 + 64 + 2 + 2);
        assert_eq!(aws_chunked_len(total), expected as u64);
        assert_eq!(aws_chunked_len(0), 1 + 17 + 64 + 2 + 2);
    }

    #[test]
    fn error_statuses_map_to_site_errors() {
        // Auth codes become Auth whatever the status; 404 NotFound; 416 InvalidRange.
        assert!(matches!(
            status_error(403, "SignatureDoesNotMatch".into()),
            SiteError::Auth { .. }
        ));
        assert!(matches!(
            status_error(400, "AuthorizationHeaderMalformed".into()),
            SiteError::Auth { .. }
        ));
        assert_eq!(status_error(404, "NoSuchKey".into()), SiteError::NotFound);
        assert_eq!(status_error(416, String::new()), SiteError::InvalidRange);
        assert!(matches!(
            status_error(503, "SlowDown".into()),
            SiteError::Http { status: 503, .. }
        ));
    }
}
