//! The object engine: erasure-coded and replicated objects across sites.
//!
//! ```text
//!  PUT body ─► k data chunks per stripe ─► ISA-L parity (+ CRC-64 per chunk)
//!          ─► n shard writers in parallel (one per site) ─► manifest footer ─► finish
//!          ─► quorum durable? ─► metadata record (owning core, fsynced) ─► 200
//!  GET ─► metadata ─► fetch only the needed stripes of the data shards, verify every chunk
//!      ─► on a missing shard or bad checksum: fetch parity, reconstruct ─► stream stripes
//! ```
//!
//! One `Engine` per core: it holds that core's site instances and codecs. Sans-I/O pieces
//! (policy, placement, manifest, `tessera-ec` geometry) are unit-tested; the pipelines here are
//! exercised by the integration suite through real clients.

pub mod budget;
pub mod deleted_buckets;
pub mod manifest;
pub mod md5_lanes;
pub mod piece;
pub mod policy;
pub mod purge;
pub mod put;
pub mod read;
pub mod repair;
pub mod scrub;
pub mod settle;
pub mod sweep;

use std::cell::RefCell;

use tessera_ec::Codec;
use tessera_http::{S3Error, S3ErrorCode};
use tessera_meta::BackendId;

use crate::site::Site;

/// Read buffers kept per core for reuse. A GET batch uses one buffer per shard read plus one
/// for the assembled output (each up to about `read::READ_BATCH_BYTES`), so 8 buffers keep two
/// concurrent 2+1 GETs allocation-free while bounding idle memory to ~64 MiB per core.
pub const BUFFER_POOL_MAX: usize = 8;

/// How ETags of single-request objects and parts are computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EtagMode {
    /// The MD5 of the content, as S3 does (clients such as rclone compare it). The default.
    #[default]
    Md5,
    /// Opt-in: CRC-64/NVME and length instead of MD5 (≈ 50× cheaper), unless the request
    /// carries Content-MD5. ETags then no longer equal the content's MD5.
    Fast,
}

/// One core's engine.
pub struct Engine {
    /// How ETags are computed.
    pub etag_mode: EtagMode,
    /// Multi-buffer MD5 for this core's uploads (`None`: each upload hashes alone).
    pub md5_lanes: Option<md5_lanes::Md5Lanes>,
    /// Shards whose writes still finish in the background after their PUT was answered.
    pub settling: settle::Settling,
    /// Memory the stripe buffers of this core's uploads may use together.
    pub upload_budget: budget::ByteBudget,
    /// Reusable buffers (fresh allocations cost page faults that zero every page).
    buffers: RefCell<Vec<Vec<u8>>>,
    /// This core's instance of every configured site, indexed by `SiteId`.
    pub sites: Vec<Site>,
    codecs: RefCell<Vec<((usize, usize), Codec)>>,
    /// How shards are placed.
    pub placement: policy::Placement,
    /// Configured write quorum (0 = policy default).
    pub write_quorum: usize,
    /// Largest single-PUT object.
    pub object_size_max: u64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("sites", &self.sites.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over `sites`.
    #[must_use]
    pub fn new(
        sites: Vec<Site>,
        placement: policy::Placement,
        write_quorum: usize,
        object_size_max: u64,
    ) -> Self {
        Engine {
            etag_mode: EtagMode::Md5,
            md5_lanes: Some(md5_lanes::Md5Lanes::new()),
            settling: settle::Settling::default(),
            upload_budget: budget::ByteBudget::new(budget::UPLOAD_MEMORY_PER_CORE_DEFAULT),
            buffers: RefCell::new(Vec::new()),
            sites,
            codecs: RefCell::new(Vec::new()),
            placement,
            write_quorum,
            object_size_max,
        }
    }

    /// Runs `f` with the codec for (k, m), building it on first use. Never held across an
    /// await: the borrow ends when `f` returns.
    pub fn with_codec<R>(
        &self,
        k: usize,
        m: usize,
        f: impl FnOnce(&mut Codec) -> R,
    ) -> Result<R, S3Error> {
        let mut codecs = self.codecs.borrow_mut();
        if let Some((_, codec)) = codecs.iter_mut().find(|(shape, _)| *shape == (k, m)) {
            return Ok(f(codec));
        }
        let codec = Codec::new(k, m).map_err(|e| internal(format!("codec {k}+{m}: {e}")))?;
        codecs.push(((k, m), codec));
        let last = codecs.len() - 1;
        Ok(f(&mut codecs[last].1))
    }

    /// An empty buffer with at least `capacity` bytes, from the pool when one fits.
    pub fn take_buffer(&self, capacity: usize) -> Vec<u8> {
        let mut pool = self.buffers.borrow_mut();
        if let Some(position) = pool.iter().position(|b| b.capacity() >= capacity) {
            let mut buffer = pool.swap_remove(position);
            buffer.clear();
            return buffer;
        }
        Vec::with_capacity(capacity)
    }

    /// Returns a buffer to the pool (dropped when the pool is full).
    pub fn give_buffer(&self, buffer: Vec<u8>) {
        let mut pool = self.buffers.borrow_mut();
        if pool.len() < BUFFER_POOL_MAX && buffer.capacity() <= 2 * read::READ_BATCH_BYTES as usize
        {
            pool.push(buffer);
        }
    }

    /// The write quorum for an object of shape `shape`.
    #[must_use]
    pub fn quorum(&self, shape: &policy::Resolved) -> usize {
        let default = policy::default_write_quorum(shape);
        if self.write_quorum == 0 {
            default
        } else {
            self.write_quorum.clamp(shape.k, shape.n)
        }
    }
}

/// The site key of a shard: two hex digits of fan-out, then the whole id.
#[must_use]
pub fn backend_key(id: &BackendId) -> String {
    let hex = hex::encode(id);
    format!("{}/{}", &hex[..2], hex)
}

/// A fresh random id.
pub fn random_id() -> Result<BackendId, S3Error> {
    let mut id = [0_u8; 16];
    getrandom::getrandom(&mut id).map_err(|e| internal(format!("random id: {e}")))?;
    Ok(id)
}

/// An `InternalError`.
#[must_use]
pub fn internal(message: impl Into<String>) -> S3Error {
    S3Error::new(S3ErrorCode::InternalError, message)
}

/// A `ServiceUnavailable` for when too few sites answer.
#[must_use]
pub fn unavailable(message: impl Into<String>) -> S3Error {
    S3Error::new(S3ErrorCode::ServiceUnavailable, message)
}

/// Milliseconds since the epoch.
#[must_use]
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
