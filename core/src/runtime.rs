//! The thread-per-core runtime: one monoio executor per CPU, each pinned, each with its own
//! `SO_REUSEPORT` listener, and the shutdown gate that drains them on SIGINT/SIGTERM.
//!
//! ```text
//!  main thread: bind N listeners (SO_REUSEPORT) ─┬─► core 0 thread: pin, monoio runtime, accept loop (+ admin)
//!                                               ├─► core 1 thread: pin, monoio runtime, accept loop
//!  signal thread: SIGINT/SIGTERM ─► gate.close() ┘   (listeners shut down → accept loops end → drain)
//! ```
//!
//! Nothing is shared between cores but read-only state (config, keys) and each core's own
//! metrics slot. A connection lives its whole life on the core whose listener accepted it.

use std::net::SocketAddr;
use std::os::fd::AsRawFd as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::credentials::Keyring;
use crate::mesh::Mesh;
use crate::metrics::CoreMetrics;
use crate::server;

/// io_uring submission queue entries per core. Each connection has at most one read or write
/// in flight, so this bounds in-flight operations, not connections; the kernel queues overflow.
pub const URING_ENTRIES: u32 = 1024;
/// Listen backlog per core.
pub const LISTEN_BACKLOG: i32 = 1024;

/// Process-wide state shared read-only by every core.
#[derive(Debug)]
pub struct Shared {
    /// The validated configuration.
    pub config: Config,
    /// Accepted access keys.
    pub keyring: Keyring,
    /// One metrics slot per core.
    pub metrics: std::sync::Arc<[CoreMetrics]>,
    /// Set once on SIGINT/SIGTERM; never cleared.
    pub shutting_down: AtomicBool,
}

impl Shared {
    /// True once shutdown has begun.
    #[must_use]
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
}

/// Fails with `AddrInUse` when another socket already listens on `addr`.
///
/// The cores' listeners share their address through `SO_REUSEPORT`, and Linux lets any other
/// process of the same user join such a group: a second gateway started on a busy port would
/// start "successfully" and the kernel would split new connections between the two processes,
/// each with its own metadata (a bucket created through one answers `NoSuchBucket` through the
/// other). A probe bound *without* `SO_REUSEPORT` conflicts with every listener on the address,
/// whatever its options, so trying one first tells whether the address is really free.
/// `SO_REUSEADDR` keeps connections of an earlier run in `TIME_WAIT` from counting. Port 0
/// (pick any) is never busy.
pub fn ensure_free(addr: SocketAddr) -> std::io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let probe = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    probe.set_reuse_address(true)?;
    match probe.bind(&addr.into()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(std::io::Error::new(
            e.kind(),
            "another process already listens there (is a gateway still running?)",
        )),
        Err(e) => Err(e),
    }
}

/// Binds one listener with `SO_REUSEPORT` so every core can bind the same address.
pub fn reuseport_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// The CPUs this process may run on, in order; core `i` is pinned to `cpus[i % len]`.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most size_of::<cpu_set_t>()
    // bytes into it and we pass exactly that size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &raw mut set) != 0 {
            return vec![0];
        }
        let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect();
        if cpus.is_empty() {
            vec![0]
        } else {
            cpus
        }
    }
}

/// Runs the gateway until SIGINT/SIGTERM and the drain that follows. Returns when every core
/// has stopped.
pub fn serve(config: Config, keyring: Keyring) -> std::io::Result<()> {
    let cores = config.core_count();
    ensure_free(config.server.listen).map_err(|e| {
        std::io::Error::new(e.kind(), format!("listen {}: {e}", config.server.listen))
    })?;
    ensure_free(config.server.admin_listen).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("admin listen {}: {e}", config.server.admin_listen),
        )
    })?;
    let listeners: Vec<std::net::TcpListener> = (0..cores)
        .map(|_| reuseport_listener(config.server.listen))
        .collect::<std::io::Result<_>>()
        .map_err(|e| {
            std::io::Error::new(e.kind(), format!("listen {}: {e}", config.server.listen))
        })?;
    let admin = reuseport_listener(config.server.admin_listen).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("admin listen {}: {e}", config.server.admin_listen),
        )
    })?;
    let listener_fds: Vec<i32> = listeners
        .iter()
        .map(std::os::fd::AsRawFd::as_raw_fd)
        .chain([admin.as_raw_fd()])
        .collect();

    if monoio::utils::detect_uring() {
        log(format_args!(
            "io_uring available: each core runs an io_uring driver"
        ));
    } else {
        log(format_args!(
            "io_uring cannot be set up here: falling back to epoll"
        ));
    }
    let shared = Arc::new(Shared {
        metrics: (0..cores).map(|_| CoreMetrics::default()).collect(),
        config,
        keyring,
        shutting_down: AtomicBool::new(false),
    });
    start_signal_thread(Arc::clone(&shared), listener_fds)?;

    check_core_count(&shared.config.server.data_dir, cores)?;
    if shared.config.sites.is_empty() {
        // The embedded default: three directories under the data directory, created here.
        for site in shared.config.effective_sites() {
            if let crate::site::SiteConfig::Dir(dir) = site {
                std::fs::create_dir_all(&dir.path)?;
            }
        }
    }
    let (mesh, inboxes) = Mesh::new(cores);
    let cpus = allowed_cpus();
    let mut admin = Some(admin);
    let mut threads = Vec::with_capacity(cores);
    for ((core, listener), inbox) in listeners.into_iter().enumerate().zip(inboxes) {
        let shared = Arc::clone(&shared);
        let mesh = mesh.clone();
        let cpu = cpus[core % cpus.len()];
        let admin = if core == 0 { admin.take() } else { None };
        let thread = std::thread::Builder::new()
            .name(format!("tessera-core-{core}"))
            .spawn(move || {
                if let Err(e) = monoio::utils::bind_to_cpu_set([cpu]) {
                    log(format_args!("core {core}: cannot pin to cpu {cpu}: {e:?}"));
                }
                let mut runtime = match monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                    .with_entries(URING_ENTRIES)
                    .enable_timer()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        log(format_args!("core {core}: cannot start runtime: {e}"));
                        std::process::exit(1);
                    }
                };
                runtime.block_on(server::run_core(core, shared, listener, admin, mesh, inbox));
            })?;
        threads.push(thread);
    }
    log(format_args!(
        "listening on http://{} (S3) and http://{} (admin) with {cores} core(s)",
        shared.config.server.listen, shared.config.server.admin_listen
    ));
    for thread in threads {
        if thread.join().is_err() {
            return Err(std::io::Error::other("a core thread panicked"));
        }
    }
    log(format_args!("stopped"));
    Ok(())
}

/// File in the data directory recording how many cores (metadata partitions) it was created
/// with. Keys are partitioned over cores by hash, so the count cannot change under existing data.
pub const CORES_FILE: &str = "meta/cores";

/// Records the core count on first start and refuses a different one later.
fn check_core_count(data_dir: &std::path::Path, cores: usize) -> std::io::Result<()> {
    let path = data_dir.join(CORES_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let recorded: usize = text.trim().parse().map_err(|_| {
                std::io::Error::other(format!(
                    "{}: not a number; the data directory is damaged",
                    path.display()
                ))
            })?;
            if recorded != cores {
                return Err(std::io::Error::other(format!(
                    "the data directory {} holds metadata for {recorded} core(s); start with --cores {recorded}",
                    data_dir.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir.join("meta"))?;
            std::fs::write(&path, format!("{cores}\n"))?;
            std::fs::File::open(data_dir.join("meta"))?.sync_all()
        }
        Err(e) => Err(e),
    }
}

/// Waits for SIGINT/SIGTERM on a plain thread; then marks shutdown and shuts the listeners
/// down so pending accepts return and no new connection is taken. A second signal exits at once.
fn start_signal_thread(shared: Arc<Shared>, listener_fds: Vec<i32>) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    std::thread::Builder::new()
        .name("tessera-signals".to_owned())
        .spawn(move || {
            let mut deadline: Option<Instant> = None;
            for signal in signals.forever() {
                if deadline.is_some() {
                    log(format_args!("second signal {signal}: exiting now"));
                    std::process::exit(1);
                }
                let grace = Duration::from_millis(shared.config.limits.shutdown_grace_ms);
                log(format_args!(
                    "signal {signal}: no longer accepting, draining for up to {grace:?}"
                ));
                shared.shutting_down.store(true, Ordering::Release);
                for &fd in &listener_fds {
                    // SAFETY: the fds belong to listeners that live until the process exits (the core
                    // threads own them and only stop using them once their accept fails); shutdown
                    // does not close the fd, it only makes pending and future accepts fail.
                    unsafe {
                        libc::shutdown(fd, libc::SHUT_RDWR);
                    }
                }
                deadline = Some(Instant::now() + grace);
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    std::thread::sleep(grace + Duration::from_millis(500));
                    let open: u64 = shared
                        .metrics
                        .iter()
                        .map(|m| m.connections_open.load(Ordering::Relaxed))
                        .sum();
                    log(format_args!(
                        "drain deadline passed with {open} connection(s) open: exiting"
                    ));
                    std::process::exit(0);
                });
            }
        })?;
    Ok(())
}

/// Writes one log line to stderr with a UTC timestamp.
pub fn log(args: std::fmt::Arguments<'_>) {
    let now = httpdate::fmt_http_date(std::time::SystemTime::now());
    eprintln!("{now} tessera: {args}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An address held by a `SO_REUSEPORT` listener (as another gateway's cores hold theirs) is
    /// reported busy, although a second `SO_REUSEPORT` bind would succeed; once that listener
    /// is gone the address is free again.
    #[test]
    fn a_reuseport_listener_of_another_process_makes_the_address_busy() {
        let first = reuseport_listener("127.0.0.1:0".parse().expect("address")).expect("bind");
        let addr = first.local_addr().expect("address");
        // What used to happen silently: the kernel lets a second group member in.
        let joined = reuseport_listener(addr).expect("SO_REUSEPORT shares the port");
        drop(joined);
        let err = ensure_free(addr).expect_err("the address is in use");
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
        drop(first);
        ensure_free(addr).expect("free once the listener closed");
        ensure_free("127.0.0.1:0".parse().expect("address")).expect("port 0 is never busy");
    }
}
