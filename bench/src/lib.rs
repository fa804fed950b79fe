//! tessera-bench: an S3 load generator in the spirit of MinIO warp, and a no-op server that
//! measures the generator itself.
//!
//! ```text
//!  argv ─► args::parse ─► RunConfig
//!                           │ for each --endpoint, one after the other
//!                           ▼
//!   run: setup ─► prepare ─► measured phase ─► cleanup        (run.rs)
//!          worker threads × concurrency, one keep-alive Client each
//!            Client ──► wire (sign with tessera-http, frame aws-chunked, parse heads)
//!              PUT body ◄── content::Pattern (deterministic per key, written without copies)
//!              GET body ──► Pattern::check (with --verify) ──► dropped
//!          latencies ─► histogram (per worker, merged)  live counters ─► progress line
//!                           │
//!                           ▼
//!   report::table (stderr/stdout) or report::json (--json)
//! ```
//!
//! It does not keep objects (memory is the pattern plus one read buffer per worker), speak
//! TLS, or use virtual-host addressing. Signing is `tessera_http::sigv4::Signer`, the same
//! canonicalisation the gateway verifies with.

pub mod args;
pub mod client;
pub mod content;
pub mod error;
pub mod histogram;
pub mod noop;
pub mod report;
pub mod run;
pub mod wire;

pub use error::BenchError;
