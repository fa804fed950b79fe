//! The S3 server on one core: the accept loop, connection handling and request dispatch.
//!
//! ```text
//!  accept ─► conn::serve_connection ─► head ─► dispatch::handle ─► Response ─► socket
//!                         ▲                        │
//!                         └── BodyReader ◄─────────┘ (the handler pulls the body as it needs it)
//! ```

pub mod admin;
pub mod conn;
pub mod dispatch;
pub mod response;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tessera_http::codec::HeadLimits;

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
    request_seq: Cell<u64>,
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
    let ctx = Rc::new(CoreCtx {
        core,
        shared,
        head_limits,
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
