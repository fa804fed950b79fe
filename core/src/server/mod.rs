//! The S3 server on one core: the accept loop, connection handling and request dispatch.
//!
//! ```text
//!  accept ─► conn::serve_connection ─► head ─► dispatch::handle ─► Response ─► socket
//!                         ▲                        │
//!                         └── BodyReader ◄─────────┘ (the handler pulls the body as it needs it)
//! ```

pub mod admin;
pub mod body;
pub mod conn;
pub mod dispatch;
pub mod response;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tessera_http::codec::HeadLimits;

use tessera_http::sigv4::SigningKeyCache;
use tessera_meta::{CoreId, FileStorage, MetaStore, StoreConfig};

use crate::credentials::Keyring;
use crate::mesh::{self, Envelope, Mesh, MetaClient};
use crate::metrics::CoreMetrics;
use crate::runtime::{log, Shared};

/// How often a draining core checks whether its connections have finished.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// Everything one core's tasks share. Lives in an `Rc`: it never leaves its core.
#[derive(Debug)]
pub struct CoreCtx {
    /// This core's index.
    pub core: usize,
    /// Process-wide read-only state.
    pub shared: Arc<Shared>,
    /// Request head limits from the config.
    pub head_limits: HeadLimits,
    /// Metadata of every core, through this core.
    pub meta: MetaClient,
    /// This core's object engine (its site instances and codecs).
    pub engine: Rc<crate::engine::Engine>,
    /// The policy of new buckets.
    pub default_policy: tessera_meta::Policy,
    /// Access keys with this core's cache of derived signing keys.
    pub credentials: SigningKeyCache<SharedKeyring>,
    request_seq: Cell<u64>,
}

/// The process's keyring seen through the `Credentials` trait.
#[derive(Debug, Clone)]
pub struct SharedKeyring(pub Arc<Shared>);

impl tessera_http::sigv4::Credentials for SharedKeyring {
    fn secret(&self, access_key: &str) -> Option<&str> {
        Keyring::secret(&self.0.keyring, access_key)
    }
}

impl CoreCtx {
    /// This core's metrics slot.
    #[must_use]
    pub fn metrics(&self) -> &CoreMetrics {
        &self.shared.metrics[self.core]
    }

    /// A new request id: unique per process run (core in the top bits, a counter below, and the
    /// start time so restarts do not repeat ids).
    pub fn next_request_id(&self) -> String {
        let seq = self.request_seq.get().wrapping_add(1);
        self.request_seq.set(seq);
        format!(
            "{:02X}{:014X}",
            self.core & 0xFF,
            seq & 0x00FF_FFFF_FFFF_FFFF
        )
    }
}

/// Runs one core: its S3 accept loop (and the admin listener on core 0) until shutdown, then
/// waits for its connections to drain.
pub async fn run_core(
    core: usize,
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    admin: Option<std::net::TcpListener>,
    mesh: Mesh,
    inbox: flume::Receiver<Envelope>,
) {
    let limits = &shared.config.limits;
    let head_limits = HeadLimits {
        header_bytes_max: limits.header_bytes_max,
        header_count_max: limits.header_count_max,
        uri_bytes_max: limits.uri_bytes_max,
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let meta_dir = shared
        .config
        .server
        .data_dir
        .join("meta")
        .join(format!("core-{core}"));
    let store = match open_store(&meta_dir).await {
        Ok(store) => store,
        Err(e) => {
            log(format_args!(
                "core {core}: cannot open metadata in {}: {e}",
                meta_dir.display()
            ));
            std::process::exit(1);
        }
    };
    monoio::spawn(mesh::serve_inbox(store.clone(), inbox));
    let meta = MetaClient::new(CoreId(core as u16), store.clone(), mesh);
    let credentials = SigningKeyCache::new(SharedKeyring(Arc::clone(&shared)));
    let engine = match build_engine(&shared.config) {
        Ok(engine) => Rc::new(engine),
        Err(e) => {
            log(format_args!("core {core}: {e}"));
            std::process::exit(1);
        }
    };
    // Validated at start-up (Config::validate), so parsing cannot fail here.
    let default_policy = crate::engine::policy::parse(&shared.config.engine.default_policy)
        .unwrap_or(crate::handlers::bucket::DEFAULT_POLICY);
    let slot = || crate::metrics::Slot::new(Arc::clone(&shared.metrics), core);
    monoio::spawn(crate::engine::purge::run(Rc::clone(&engine), store, slot()));
    monoio::spawn(crate::engine::repair::run(
        Rc::clone(&engine),
        meta.clone(),
        slot(),
    ));
    monoio::spawn(crate::engine::scrub::run(
        Rc::clone(&engine),
        meta.clone(),
        shared.config.engine.orphan_grace_ms,
        shared.config.server.data_dir.clone(),
        slot(),
    ));
    monoio::spawn(crate::handlers::multipart::run_reaper(
        meta.clone(),
        shared.config.engine.upload_age_max_s,
    ));
    let ctx = Rc::new(CoreCtx {
        core,
        shared,
        head_limits,
        meta,
        engine,
        default_policy,
        credentials,
        request_seq: Cell::new(seed << 24),
    });
    if let Some(admin) = admin {
        match monoio::net::TcpListener::from_std(admin) {
            Ok(admin) => {
                monoio::spawn(admin::run(Rc::clone(&ctx), admin));
            }
            Err(e) => log(format_args!("core {core}: admin listener: {e}")),
        }
    }
    let listener = match monoio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            log(format_args!("core {core}: listener: {e}"));
            return;
        }
    };
    accept_loop(&ctx, &listener).await;
    let deadline = std::time::Instant::now()
        + Duration::from_millis(ctx.shared.config.limits.shutdown_grace_ms);
    while ctx
        .metrics()
        .connections_open
        .load(std::sync::atomic::Ordering::Relaxed)
        > 0
        && std::time::Instant::now() < deadline
    {
        monoio::time::sleep(DRAIN_POLL).await;
    }
}

/// Builds this core's engine: its own instance of every configured site.
fn build_engine(config: &crate::config::Config) -> Result<crate::engine::Engine, String> {
    let sites = config
        .effective_sites()
        .iter()
        .map(|site| crate::site::Site::open(site).map_err(|e| format!("site {}: {e}", site.name())))
        .collect::<Result<Vec<_>, _>>()?;
    let engine = &config.engine;
    let mut built = crate::engine::Engine::new(
        sites,
        engine.placement,
        engine.write_quorum,
        engine.object_size_max,
    );
    built.etag_mode = engine.etag;
    built.upload_budget = crate::engine::budget::ByteBudget::new(engine.upload_memory_per_core);
    if engine.md5_lanes {
        built.md5_lanes = Some(
            crate::engine::md5_lanes::Md5Lanes::new()
                .with_finish_wait(std::time::Duration::from_millis(engine.md5_finish_wait_ms)),
        );
    } else {
        built.md5_lanes = None;
    }
    Ok(built)
}

/// Opens (recovering) this core's metadata store.
async fn open_store(
    dir: &std::path::Path,
) -> Result<MetaStore<FileStorage>, tessera_meta::MetaError> {
    std::fs::create_dir_all(dir).map_err(|e| tessera_meta::MetaError::Io {
        op: "create_dir_all",
        file: dir.display().to_string(),
        kind: e.kind(),
        message: e.to_string(),
    })?;
    let storage = FileStorage::new(dir)?;
    let (store, report) = MetaStore::open(storage, StoreConfig::default()).await?;
    if report.truncated_bytes > 0 {
        log(format_args!("metadata {}: {report:?}", dir.display()));
    }
    Ok(store)
}

async fn accept_loop(ctx: &Rc<CoreCtx>, listener: &monoio::net::TcpListener) {
    let max = ctx.shared.config.limits.connections_per_core_max as u64;
    loop {
        let accepted = listener.accept().await;
        if ctx.shared.is_shutting_down() {
            return;
        }
        let (stream, _peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                log(format_args!("core {}: accept: {e}", ctx.core));
                monoio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let metrics = ctx.metrics();
        CoreMetrics::add(&metrics.connections_accepted, 1);
        if metrics
            .connections_open
            .load(std::sync::atomic::Ordering::Relaxed)
            >= max
        {
            CoreMetrics::add(&metrics.connections_refused, 1);
            monoio::spawn(conn::refuse(Rc::clone(ctx), stream));
            continue;
        }
        CoreMetrics::add(&metrics.connections_open, 1);
        let ctx = Rc::clone(ctx);
        monoio::spawn(async move {
            conn::serve_connection(&ctx, stream).await;
            CoreMetrics::sub(&ctx.metrics().connections_open, 1);
        });
    }
}
