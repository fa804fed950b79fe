//! `tessera-ec`: the erasure-coding math of the gateway. Reed-Solomon encode and reconstruct
//! on ISA-L, the geometry that maps objects and byte ranges onto stripes and shards, and the
//! per-chunk checksums that catch bitrot.
//!
//! It does no I/O, spawns nothing and allocates only when a [`Codec`] is built: the object
//! engine owns the buffers and the sites; this crate says what goes where and fills parity.
//!
//! ```text
//!  PUT                                         GET (range)
//!  body ─► stripe buffer k × c                  Layout::read_plan(range)
//!            │  Codec::encode_with_checksums       │ data_fetch(i) / stripe_fetch()
//!            ▼                                     ▼   per-shard stored byte ranges
//!          k data + m parity chunks, k+m CRCs    fetched chunks ─► verify_stored_chunk
//!            │                                     │ missing / corrupt?  Codec::reconstruct
//!            ▼                                     ▼
//!  shard i: [chunk][crc][chunk][crc]…         pieces(): (stripe, shard, offset, len) ─► output
//!
//!  stripe s:  d0 d1 … d(k-1) │ p0 … p(m-1)     every chunk of a stripe has one length:
//!             object bytes   │ Cauchy parity   c, or ⌈tail/k⌉ for the short last stripe
//! ```
//!
//! Modules: [`codec`] (ISA-L behind `isal.rs`, the only file with `unsafe`), [`geometry`],
//! [`checksum`]. The on-shard byte layout is described in `docs/ec-layout.md`.

pub mod checksum;
pub mod codec;
mod error;
pub mod geometry;
mod isal;

pub use checksum::{
    checksum_trailer, chunk_checksum, extend_checksum, extend_crc32, verify_chunk,
    verify_stored_chunk, ChunkHasher, CrcAppender, CHECKSUM_ALGORITHM, CHECKSUM_LEN,
};
pub use codec::{Codec, ShardSet, CHECKSUM_STEP_BYTES, DECODE_CACHE_ENTRIES};
pub use error::Error;
pub use geometry::{
    chunk_size_for, ByteRange, Layout, Piece, Pieces, ReadPlan, ShardFetch, Stripe, CHUNK_ALIGN,
    CHUNK_SIZE_DEFAULT, CHUNK_SIZE_MAX, OBJECT_SIZE_MAX,
};

/// Most shards (data + parity) of one object: `k + m ≤ 32`. Shard sets are `u32` bitmasks,
/// per-call pointer arrays live on the stack at this size, and 32 sites per object is far past
/// any deployment the gateway targets.
pub const SHARDS_MAX: usize = 32;
