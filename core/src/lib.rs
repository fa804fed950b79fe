//! tessera-core: the gateway process — runtime, configuration, S3 server, and (as they land)
//! sites, the object engine and background workers.
//!
//! ```text
//!            ┌──────────── tessera serve ────────────┐
//!  config ──►│ runtime: one pinned monoio executor   │
//!  keys   ──►│ per CPU, SO_REUSEPORT listener each   │
//!            │   server::conn ─► server::dispatch    │──► tessera-http (codec, router, auth, xml)
//!            │   server::admin (core 0)              │
//!            └───────────────────────────────────────┘
//! ```
//!
//! It does not parse HTTP or verify signatures itself (that is `tessera-http`, pure and
//! tested on its own), nor encode shards (`tessera-ec`) or frame metadata (`tessera-meta`).

pub mod config;
pub mod credentials;
pub mod engine;
pub mod handlers;
pub mod mesh;
pub mod metrics;
pub mod recover;
pub mod recv_lowat;
pub mod rep_movsb;
pub mod runtime;
pub mod server;
pub mod site;

/// Helpers shared by the crate's unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    /// Runs `future` to completion on a fresh single-thread runtime with timers (io_uring where
    /// available, epoll otherwise), as each core's runtime is.
    pub fn run<F: std::future::Future>(future: F) -> F::Output {
        monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime")
            .block_on(future)
    }
}
