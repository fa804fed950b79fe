//! Stripe geometry: object → stripes → chunks, byte range → per-shard fetches and output
//! placement. Pure arithmetic; no buffers.
//!
//! ```text
//!  object bytes:  |<------- stripe 0: k·c ------->|<------- stripe 1 ------->|<- tail ->|
//!                 | d0 | d1 | d2 | d3 |            | d0 | d1 | d2 | d3 |        |d0|d1|d2|d3|
//!                   c    c    c    c                                           c' = ⌈tail/k⌉
//!  shard i (i<k): [chunk(0,i)][crc][chunk(1,i)][crc] ... [chunk(last,i) c'][crc]
//!  shard p (p≥k): [parity(0,p)][crc] ...                 [parity(last,p) c'][crc]
//! ```
//!
//! Full stripes use the chunk size `c`; the last, short stripe (the tail, when the object is not
//! a multiple of `k·c`) uses `c' = ⌈tail / k⌉`, so a small object costs `m·⌈size/k⌉` of parity
//! rather than `m·c`. Data chunks of the short stripe are zero-padded to `c'` (fewer than `k`
//! bytes of padding per object) so every chunk of a stripe has the same length and every shard of
//! an object has the same stored length. Each stored chunk is followed by its 8-byte checksum.

use core::ops::Range;

use crate::{Error, CHECKSUM_LEN, SHARDS_MAX};

/// Chunk sizes are multiples of this: one AVX-512 vector and one cache line, so full-stripe
/// chunks never need ISA-L's masked tail step and chunk buffers carved from one slab stay
/// cache-line aligned.
pub const CHUNK_ALIGN: u32 = 64;

/// The default chunk size: 1 MiB per shard per stripe, where ISA-L runs at full speed and a
/// 4+2 stripe buffer is 6 MiB.
pub const CHUNK_SIZE_DEFAULT: u32 = 1024 * 1024;

/// The largest chunk size: bounds one stripe buffer at `SHARDS_MAX · 16 MiB = 512 MiB` and keeps
/// every chunk length far below ISA-L's `int` length.
pub const CHUNK_SIZE_MAX: u32 = 16 * 1024 * 1024;

/// The largest object (or multipart part) one layout describes: S3's 5 TiB object limit.
pub const OBJECT_SIZE_MAX: u64 = 5 * 1024 * 1024 * 1024 * 1024;

const _: () = assert!(CHUNK_SIZE_DEFAULT % CHUNK_ALIGN == 0);
const _: () = assert!(CHUNK_SIZE_MAX % CHUNK_ALIGN == 0 && CHUNK_SIZE_DEFAULT <= CHUNK_SIZE_MAX);
// A stripe's data, `k · c`, and a shard's stored length must not overflow u64 arithmetic.
const _: () = assert!((SHARDS_MAX as u64) * (CHUNK_SIZE_MAX as u64) < (1 << 32));
const _: () = assert!(OBJECT_SIZE_MAX < (1 << 50));

/// The chunk size for an object of `object_size` bytes over `k` data shards: the smallest
/// multiple of [`CHUNK_ALIGN`] that holds `⌈object_size / k⌉`, capped at `chunk_size_max`.
/// A 4 KiB object over k = 4 gets 1 KiB chunks, not 1 MiB; an object of at least
/// `k · chunk_size_max` gets `chunk_size_max`. Use `chunk_size_max` when the size is unknown
/// (the short last stripe then keeps parity small anyway). Stripe buffers sized from this
/// value are all a PUT needs.
#[must_use]
pub fn chunk_size_for(object_size: u64, k: usize, chunk_size_max: u32) -> u32 {
    assert!((1..=SHARDS_MAX).contains(&k));
    assert!(chunk_size_max >= CHUNK_ALIGN && chunk_size_max % CHUNK_ALIGN == 0);
    let per_shard = object_size.div_ceil(k as u64);
    let aligned = per_shard
        .div_ceil(u64::from(CHUNK_ALIGN))
        .max(1)
        .saturating_mul(u64::from(CHUNK_ALIGN));
    aligned.min(u64::from(chunk_size_max)) as u32
}

/// How one object (or multipart part) is cut into stripes, chunks and shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    object_size: u64,
    k: usize,
    chunk_size: u32,
}

/// One stripe of a [`Layout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stripe {
    pub index: u64,
    /// Object offset of the stripe's first byte.
    pub object_offset: u64,
    /// Object bytes in the stripe: `k · chunk_len` except in the short last stripe.
    pub data_len: u64,
    /// Length of every chunk (data and parity) of this stripe.
    pub chunk_len: u32,
}

impl Stripe {
    /// The object bytes held by data chunk `shard` (empty for trailing data chunks of a short
    /// stripe). Bytes of the chunk past this range are zero padding.
    #[must_use]
    pub fn data_chunk_range(&self, shard: usize) -> Range<u64> {
        let chunk_len = u64::from(self.chunk_len);
        let start = (shard as u64 * chunk_len).min(self.data_len);
        let end = ((shard as u64 + 1) * chunk_len).min(self.data_len);
        self.object_offset + start..self.object_offset + end
    }
}

/// Where one shard's reads for a plan go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardFetch {
    /// The stripes whose chunks are fetched.
    pub stripes: Range<u64>,
    /// The stored bytes to fetch, relative to the start of the shard's chunk area: whole
    /// chunks with their checksums, so each can be verified.
    pub bytes: Range<u64>,
}

/// One contiguous run of requested bytes inside one data chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub stripe: u64,
    /// The data shard holding the bytes.
    pub shard: usize,
    /// Offset of the first byte inside its chunk.
    pub chunk_offset: u32,
    pub len: u32,
    /// Offset of the first byte in the shard's stored bytes (chunks and checksums).
    pub stored_offset: u64,
    /// Where the bytes go in the response body (0 = first byte of the requested range).
    pub output_offset: u64,
}

impl Layout {
    /// The layout of `object_size` bytes over `k` data shards with full-stripe chunks of
    /// `chunk_size` bytes (a non-zero multiple of [`CHUNK_ALIGN`], at most [`CHUNK_SIZE_MAX`]).
    pub fn new(object_size: u64, k: usize, chunk_size: u32) -> Result<Layout, Error> {
        if k == 0 || k > SHARDS_MAX {
            return Err(Error::Geometry { k, m: 0 });
        }
        if chunk_size == 0 || chunk_size % CHUNK_ALIGN != 0 || chunk_size > CHUNK_SIZE_MAX {
            return Err(Error::ChunkSize {
                chunk_size: u64::from(chunk_size),
            });
        }
        if object_size > OBJECT_SIZE_MAX {
            return Err(Error::ObjectSize { object_size });
        }
        Ok(Layout {
            object_size,
            k,
            chunk_size,
        })
    }

    #[must_use]
    pub fn object_size(&self) -> u64 {
        self.object_size
    }

    #[must_use]
    pub fn data_shards(&self) -> usize {
        self.k
    }

    #[must_use]
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Object bytes in one full stripe: `k · chunk_size`.
    #[must_use]
    pub fn stripe_data_size(&self) -> u64 {
        self.k as u64 * u64::from(self.chunk_size)
    }

    /// Stripes whose chunks are `chunk_size` long.
    #[must_use]
    pub fn full_stripes(&self) -> u64 {
        self.object_size / self.stripe_data_size()
    }

    /// Object bytes in the short last stripe; 0 when there is none.
    #[must_use]
    pub fn tail_len(&self) -> u64 {
        self.object_size % self.stripe_data_size()
    }

    /// All stripes, the short last one included. An empty object has none.
    #[must_use]
    pub fn stripe_count(&self) -> u64 {
        self.full_stripes() + u64::from(self.tail_len() > 0)
    }

    /// Stripe `index` (`< stripe_count()`).
    #[must_use]
    pub fn stripe(&self, index: u64) -> Stripe {
        assert!(index < self.stripe_count(), "stripe {index} out of range");
        let object_offset = index * self.stripe_data_size();
        if index < self.full_stripes() {
            Stripe {
                index,
                object_offset,
                data_len: self.stripe_data_size(),
                chunk_len: self.chunk_size,
            }
        } else {
            let tail = self.tail_len();
            Stripe {
                index,
                object_offset,
                data_len: tail,
                chunk_len: tail.div_ceil(self.k as u64) as u32,
            }
        }
    }

    /// Offset of stripe `index`'s chunk in every shard's stored bytes. Only the last stripe can
    /// be short, so all stripes before `index` are full.
    #[must_use]
    pub fn stored_chunk_offset(&self, index: u64) -> u64 {
        assert!(index <= self.stripe_count());
        index.min(self.full_stripes()) * (u64::from(self.chunk_size) + CHECKSUM_LEN as u64)
            + if index > self.full_stripes() {
                u64::from(self.stripe(self.full_stripes()).chunk_len) + CHECKSUM_LEN as u64
            } else {
                0
            }
    }

    /// Stored bytes of each shard (every shard of an object has the same length): chunks and
    /// their checksums, not counting the engine's manifest.
    #[must_use]
    pub fn shard_len(&self) -> u64 {
        self.stored_chunk_offset(self.stripe_count())
    }

    /// The stored bytes of the chunks of `stripes`, in any shard.
    #[must_use]
    pub fn stored_range(&self, stripes: Range<u64>) -> Range<u64> {
        assert!(stripes.start <= stripes.end && stripes.end <= self.stripe_count());
        self.stored_chunk_offset(stripes.start)..self.stored_chunk_offset(stripes.end)
    }

    /// The read of `range`: which stripes it touches, what each shard must fetch, and where each
    /// piece goes in the output.
    pub fn read_plan(&self, range: ByteRange) -> Result<ReadPlan, Error> {
        let range = range.resolve(self.object_size)?;
        let stripes = if range.is_empty() {
            0..0
        } else {
            let size = self.stripe_data_size();
            range.start / size..(range.end - 1) / size + 1
        };
        Ok(ReadPlan {
            layout: *self,
            range,
            stripes,
        })
    }
}

/// A requested byte range, as an HTTP `Range` header can express it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// No `Range` header: the whole object.
    Full,
    /// `bytes=first-`: from `first` to the end.
    From { first: u64 },
    /// `bytes=first-last`, both inclusive; `last` past the end is clamped.
    Inclusive { first: u64, last: u64 },
    /// `bytes=-len`: the last `len` bytes (the whole object if it is shorter).
    Suffix { len: u64 },
}

impl ByteRange {
    /// The byte range of an object of `object_size` bytes that this request selects, by the
    /// rules of RFC 9110 §14.1.2 as S3 applies them: a first byte at or past the end, a zero
    /// suffix, or any range of an empty object is not satisfiable (HTTP 416). A `first` past
    /// `last` is a syntax error the HTTP layer should reject before calling this; it is
    /// reported as unsatisfiable here.
    pub fn resolve(self, object_size: u64) -> Result<Range<u64>, Error> {
        let unsatisfiable = Err(Error::RangeNotSatisfiable { object_size });
        match self {
            ByteRange::Full => Ok(0..object_size),
            ByteRange::From { first } | ByteRange::Inclusive { first, .. }
                if first >= object_size =>
            {
                unsatisfiable
            }
            ByteRange::From { first } => Ok(first..object_size),
            ByteRange::Inclusive { first, last } if first > last => unsatisfiable,
            ByteRange::Inclusive { first, last } => {
                Ok(first..last.saturating_add(1).min(object_size))
            }
            ByteRange::Suffix { len } if len == 0 || object_size == 0 => unsatisfiable,
            ByteRange::Suffix { len } => Ok(object_size - len.min(object_size)..object_size),
        }
    }
}

/// The shards, stored ranges and output placement for reading one byte range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadPlan {
    layout: Layout,
    range: Range<u64>,
    stripes: Range<u64>,
}

impl ReadPlan {
    /// The object bytes the response carries (for `Content-Range` and `Content-Length`).
    #[must_use]
    pub fn range(&self) -> Range<u64> {
        self.range.clone()
    }

    /// The stripes the range touches.
    #[must_use]
    pub fn stripes(&self) -> Range<u64> {
        self.stripes.clone()
    }

    /// What data shard `shard` must fetch on a healthy read: the chunks holding requested
    /// bytes, or `None` when the range needs nothing from it.
    #[must_use]
    pub fn data_fetch(&self, shard: usize) -> Option<ShardFetch> {
        assert!(shard < self.layout.k);
        if self.stripes.is_empty() {
            return None;
        }
        let overlaps = |stripe: u64| {
            let chunk = self.layout.stripe(stripe).data_chunk_range(shard);
            chunk.start < chunk.end && chunk.start < self.range.end && self.range.start < chunk.end
        };
        // Stripes strictly inside the plan are fully requested and full, so only the first and
        // last stripes can leave this shard out.
        let first = self.stripes.start + u64::from(!overlaps(self.stripes.start));
        let end = self.stripes.end - u64::from(!overlaps(self.stripes.end - 1));
        if first >= end {
            return None;
        }
        Some(ShardFetch {
            stripes: first..end,
            bytes: self.layout.stored_range(first..end),
        })
    }

    /// What any shard fetches on a degraded read, where whole stripes are reconstructed: the
    /// chunks of every stripe in the plan.
    #[must_use]
    pub fn stripe_fetch(&self) -> ShardFetch {
        ShardFetch {
            stripes: self.stripes.clone(),
            bytes: self.layout.stored_range(self.stripes.clone()),
        }
    }

    /// The requested bytes as runs inside data chunks, in output order.
    #[must_use]
    pub fn pieces(&self) -> Pieces {
        Pieces {
            layout: self.layout,
            position: self.range.start,
            start: self.range.start,
            end: self.range.end,
        }
    }
}

/// Iterator over the [`Piece`]s of a [`ReadPlan`].
#[derive(Clone, Debug)]
pub struct Pieces {
    layout: Layout,
    position: u64,
    start: u64,
    end: u64,
}

impl Iterator for Pieces {
    type Item = Piece;

    fn next(&mut self) -> Option<Piece> {
        if self.position >= self.end {
            return None;
        }
        let stripe_index = self.position / self.layout.stripe_data_size();
        let stripe = self.layout.stripe(stripe_index);
        let within = self.position - stripe.object_offset;
        let chunk_len = u64::from(stripe.chunk_len);
        let shard = (within / chunk_len) as usize;
        let chunk_offset = within % chunk_len;
        let chunk_end = stripe.data_chunk_range(shard).end;
        let len = chunk_end.min(self.end) - self.position;
        // `position` is inside the object, so its chunk holds at least that byte.
        assert!(len > 0 && shard < self.layout.k);
        let piece = Piece {
            stripe: stripe_index,
            shard,
            chunk_offset: chunk_offset as u32,
            len: len as u32,
            stored_offset: self.layout.stored_chunk_offset(stripe_index) + chunk_offset,
            output_offset: self.position - self.start,
        };
        self.position += len;
        Some(piece)
    }
}

#[cfg(test)]
mod tests;
