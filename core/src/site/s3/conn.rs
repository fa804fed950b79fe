//! Connections to one S3 site on one core: plain TCP or rustls over TCP, each with a read
//! buffer, kept alive in a bounded pool.
//!
//! ```text
//!  Pool::acquire ── idle connection fresh? ─yes─► Lease (reused)
//!        │ no: fewer than connections_max open? ─yes─► Lease (new; caller connects)
//!        └─ else wait for a release ◄───────────────────────────┐
//!  Lease::recycle (response framed cleanly, keep-alive) ─► idle ─┤
//!  Lease dropped (error, timeout, abort) ─► socket closed ───────┘ (a slot frees up)
//! ```
//!
//! A connection returns to the pool only through `recycle`, which the client calls after a
//! response whose body it read to the exact end. Anything else — an error, a timeout that
//! dropped a future mid-read, an abandoned upload — drops the lease and closes the socket, so
//! a later request can never read the tail of an earlier response.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use monoio::buf::{IoBuf, IoBufMut as _, SliceMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use monoio::BufResult;
use rustls::pki_types::ServerName;

use super::tls::TlsStream;
use crate::recv_lowat::RecvLowat;

use super::super::{SiteError, TimeoutPhase};
use super::wire::RESPONSE_HEAD_BYTES_MAX;

/// A byte stream to the site.
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream>),
}

impl Stream {
    /// Reads into the slice's spare room.
    pub async fn read(&mut self, buf: SliceMut<Vec<u8>>) -> BufResult<usize, SliceMut<Vec<u8>>> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(s) => s.read(buf, None).await,
        }
    }

    /// The TCP socket (under the TLS session, if any).
    #[must_use]
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.tcp(),
        }
    }

    /// Writes all of `buf`.
    pub async fn write_all<T: IoBuf + 'static>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.write_all(buf).await,
            Stream::Tls(s) => s.write_all(buf).await,
        }
    }
}

/// One connection: the stream and the bytes read from it but not consumed yet.
pub struct Conn {
    /// The stream.
    pub stream: Stream,
    /// Read buffer; `rbuf[rpos..]` are unconsumed bytes. Capacity `RESPONSE_HEAD_BYTES_MAX`.
    pub rbuf: Vec<u8>,
    /// Start of the unconsumed bytes in `rbuf`.
    pub rpos: usize,
    /// The TCP socket's receive low-water mark.
    lowat: RecvLowat,
}

impl Conn {
    fn new(stream: Stream) -> Conn {
        Conn {
            stream,
            rbuf: Vec::with_capacity(RESPONSE_HEAD_BYTES_MAX),
            rpos: 0,
            lowat: RecvLowat::default(),
        }
    }

    /// Reads body bytes into the slice's spare room, all of which the server is sure to send
    /// (the rest of a framed body): the read completes once most of them have arrived rather
    /// than at every segment (see [`crate::recv_lowat`]).
    pub async fn read_body(
        &mut self,
        buf: SliceMut<Vec<u8>>,
    ) -> BufResult<usize, SliceMut<Vec<u8>>> {
        match &mut self.stream {
            Stream::Plain(tcp) => {
                let to_come = buf.end() - buf.begin();
                if let Err(err) = self.lowat.wait(tcp, to_come).await {
                    return (Err(err), buf);
                }
                tcp.read(buf).await
            }
            Stream::Tls(tls) => tls.read(buf, Some(&mut self.lowat)).await,
        }
    }

    /// The unconsumed bytes.
    #[must_use]
    pub fn buffered(&self) -> &[u8] {
        &self.rbuf[self.rpos..]
    }

    /// Marks `n` buffered bytes consumed.
    pub fn consume(&mut self, n: usize) {
        assert!(n <= self.rbuf.len() - self.rpos);
        self.rpos += n;
        if self.rpos == self.rbuf.len() {
            self.rbuf.clear();
            self.rpos = 0;
        }
    }

    /// Reads more bytes into the read buffer within `timeout`; `Closed` at end of stream.
    pub async fn fill(&mut self, timeout: Duration, phase: TimeoutPhase) -> Result<(), SiteError> {
        if self.rpos > 0 {
            // Move the unconsumed tail to the front to make room (only head bytes live here,
            // so this is at most a few KiB, and rare).
            self.rbuf.drain(..self.rpos);
            self.rpos = 0;
        }
        let len = self.rbuf.len();
        if len == self.rbuf.capacity() {
            return Err(SiteError::Protocol("response head too large"));
        }
        // A head's length is unknown: wake at every byte.
        if let Err(err) = self.lowat.reset(self.stream.tcp()) {
            return Err(io_error(&err));
        }
        let buf = std::mem::take(&mut self.rbuf);
        let slice = buf.slice_mut(len..RESPONSE_HEAD_BYTES_MAX.max(len));
        let Ok((result, slice)) = monoio::time::timeout(timeout, self.stream.read(slice)).await
        else {
            // The read future was dropped with the buffer; this connection is finished anyway.
            return Err(SiteError::Timeout(phase));
        };
        self.rbuf = slice.into_inner();
        match result {
            Ok(0) => Err(SiteError::Closed),
            Ok(_) => Ok(()),
            Err(err) => Err(io_error(&err)),
        }
    }
}

/// Maps a socket error; TLS failures surface as `Tls`.
#[must_use]
pub fn io_error(err: &io::Error) -> SiteError {
    if let Some(inner) = err.get_ref() {
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return SiteError::Tls(tls.to_string());
        }
    }
    match err.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe => SiteError::Closed,
        io::ErrorKind::InvalidData => SiteError::Tls(err.to_string()),
        kind => SiteError::Io(kind),
    }
}

/// Where and how to connect.
#[derive(Clone)]
pub struct Dialer {
    /// `host:port` to resolve.
    pub authority: String,
    /// TLS configuration and the name to verify, for `https`.
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
}

/// How long resolved addresses are reused. Resolution is a blocking `getaddrinfo`, so it runs
/// at most once a minute per site per core; a minute follows DNS changes (S3 rotates its
/// addresses) closely enough.
pub const DNS_CACHE_TTL: Duration = Duration::from_secs(60);

/// Pool counters, for the reuse-rate figure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections opened.
    pub opened: u64,
    /// Leases served by an idle pooled connection.
    pub reused: u64,
    /// Connections put back after a clean response.
    pub recycled: u64,
}

/// The bounded keep-alive pool of one site on one core.
pub struct Pool {
    idle: RefCell<VecDeque<(Conn, Instant)>>,
    /// Connections open: idle plus leased plus being connected.
    open: Cell<u32>,
    open_max: u32,
    idle_timeout: Duration,
    waiters: RefCell<VecDeque<Waker>>,
    stats: Cell<PoolStats>,
    dialer: Dialer,
    addresses: RefCell<Option<(Vec<SocketAddr>, Instant)>>,
}

/// A connection (or the right to open one) held by one request.
pub struct Lease {
    pool: Rc<Pool>,
    conn: Option<Conn>,
    /// The connection came from the idle pool (it may have been closed by the server).
    pub reused: bool,
    /// This lease counts in `Pool::open` (false once `recycle` handed the slot to the idle
    /// list along with the connection).
    slot_held: bool,
}

impl Pool {
    /// A pool of at most `open_max` connections made by `dialer`.
    #[must_use]
    pub fn new(dialer: Dialer, open_max: u32, idle_timeout: Duration) -> Rc<Pool> {
        assert!(open_max > 0);
        Rc::new(Pool {
            idle: RefCell::new(VecDeque::with_capacity(open_max as usize)),
            open: Cell::new(0),
            open_max,
            idle_timeout,
            waiters: RefCell::new(VecDeque::new()),
            stats: Cell::new(PoolStats::default()),
            dialer,
            addresses: RefCell::new(None),
        })
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> PoolStats {
        self.stats.get()
    }

    /// Connections open now (idle, leased or connecting).
    #[must_use]
    pub fn open_count(&self) -> u32 {
        self.open.get()
    }

    fn update(&self, f: impl FnOnce(&mut PoolStats)) {
        let mut stats = self.stats.get();
        f(&mut stats);
        self.stats.set(stats);
    }

    fn release_slot(&self) {
        let open = self.open.get();
        assert!(open > 0, "released more connections than opened");
        self.open.set(open - 1);
        self.wake_one();
    }

    fn wake_one(&self) {
        if let Some(waker) = self.waiters.borrow_mut().pop_front() {
            waker.wake();
        }
    }

    /// Takes a fresh idle connection, or a slot to open one, waiting while the pool is full.
    /// With `fresh_only`, idle connections are closed instead of reused (a retry after a
    /// reused connection turned out to be dead).
    pub async fn lease(self: &Rc<Pool>, fresh_only: bool) -> Result<Lease, SiteError> {
        let slot = std::future::poll_fn(|cx| {
            let now = Instant::now();
            let mut idle = self.idle.borrow_mut();
            if let Some((conn, since)) = idle.pop_back() {
                if !fresh_only && now.duration_since(since) < self.idle_timeout {
                    return Poll::Ready(Some(conn));
                }
                // Expired (or unwanted): close it and reuse its slot for a new connection.
                drop(conn);
                return Poll::Ready(None);
            }
            drop(idle);
            if self.open.get() < self.open_max {
                self.open.set(self.open.get() + 1);
                return Poll::Ready(None);
            }
            self.waiters.borrow_mut().push_back(cx.waker().clone());
            Poll::Pending
        })
        .await;
        let mut lease = Lease {
            pool: self.clone(),
            conn: None,
            reused: false,
            slot_held: true,
        };
        if let Some(conn) = slot {
            self.update(|s| s.reused += 1);
            lease.conn = Some(conn);
            lease.reused = true;
            return Ok(lease);
        }
        let conn = self.connect().await?;
        self.update(|s| s.opened += 1);
        lease.conn = Some(conn);
        Ok(lease)
    }

    fn resolve(&self) -> Result<Vec<SocketAddr>, SiteError> {
        let mut cache = self.addresses.borrow_mut();
        if let Some((addresses, at)) = cache.as_ref() {
            if at.elapsed() < DNS_CACHE_TTL {
                return Ok(addresses.clone());
            }
        }
        let addresses: Vec<SocketAddr> =
            std::net::ToSocketAddrs::to_socket_addrs(self.dialer.authority.as_str())
                .map_err(|e| SiteError::Connect(e.kind()))?
                .collect();
        if addresses.is_empty() {
            return Err(SiteError::Connect(io::ErrorKind::NotFound));
        }
        *cache = Some((addresses.clone(), Instant::now()));
        Ok(addresses)
    }

    async fn connect(&self) -> Result<Conn, SiteError> {
        let addresses = self.resolve()?;
        let dialer = &self.dialer;
        let attempt = async {
            let mut last = SiteError::Connect(io::ErrorKind::NotFound);
            for address in addresses {
                match TcpStream::connect_addr(address).await {
                    Ok(tcp) => {
                        // S3 requests are small heads followed by bulk bodies; without
                        // TCP_NODELAY a small request waits ~40 ms for a delayed ACK.
                        let _ = tcp.set_nodelay(true);
                        let stream = match &dialer.tls {
                            None => Stream::Plain(tcp),
                            Some((config, name)) => {
                                let tls = TlsStream::connect(config.clone(), name.clone(), tcp)
                                    .await
                                    .map_err(|e| io_error(&e))?;
                                Stream::Tls(Box::new(tls))
                            }
                        };
                        return Ok(Conn::new(stream));
                    }
                    Err(err) => last = SiteError::Connect(err.kind()),
                }
            }
            Err(last)
        };
        match monoio::time::timeout(dialer.connect_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(SiteError::Timeout(TimeoutPhase::Connect)),
        }
    }
}

impl Lease {
    /// The connection.
    pub fn conn(&mut self) -> &mut Conn {
        // A lease always holds its connection until `recycle` consumes the lease or `drop`.
        self.conn.as_mut().expect("a live lease holds a connection")
    }

    /// Puts the connection back in the pool: only after a response read to its exact end on
    /// a keep-alive connection.
    pub fn recycle(mut self) {
        if let Some(conn) = self.conn.take() {
            self.slot_held = false;
            assert!(
                conn.buffered().is_empty(),
                "recycling a connection with unread bytes"
            );
            self.pool.update(|s| s.recycled += 1);
            self.pool
                .idle
                .borrow_mut()
                .push_back((conn, Instant::now()));
            self.pool.wake_one();
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Not recycled (error, timeout, abort, or a failed connect): the socket closes with
        // the `Conn` and the slot is freed.
        if self.slot_held {
            self.conn = None;
            self.pool.release_slot();
        }
    }
}

/// Builds the rustls client configuration: system roots plus `ca_file`, or no verification at
/// all when `insecure` (tests only).
pub fn tls_config(
    ca_file: Option<&std::path::Path>,
    insecure: bool,
) -> Result<Arc<rustls::ClientConfig>, SiteError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| SiteError::Tls(e.to_string()))?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        // Unreadable system certificates are skipped: a missing store must not stop a site
        // that trusts only its own CA file.
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| SiteError::Config(format!("ca_file {}: {e}", path.display())))?;
            let mut added = 0;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert
                    .map_err(|e| SiteError::Config(format!("ca_file {}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| SiteError::Config(format!("ca_file {}: {e}", path.display())))?;
                added += 1;
            }
            if added == 0 {
                return Err(SiteError::Config(format!(
                    "ca_file {} holds no certificate",
                    path.display()
                )));
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// The verifier behind `insecure = true`: accepts any certificate, still checks handshake
/// signatures so the session is at least consistent.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
