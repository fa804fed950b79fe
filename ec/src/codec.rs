//! Reed-Solomon encode and reconstruct over ISA-L, allocation-free per call.
//!
//! ```text
//!  Codec::new(k, m)            once per (k, m) per core: Cauchy matrix, encode tables,
//!        │                     DECODE_CACHE_ENTRIES preallocated decode-table slots
//!        ├─ encode(data[k], parity[m])                 parity = C · data
//!        ├─ encode_with_checksums(.., checksums[k+m])  same, plus one CRC per chunk
//!        ├─ encode_packed(data k·len, parity m·len, ..)  same, on one contiguous slab each
//!        └─ reconstruct(shards[k+m], present, rebuild) rebuild = R · (first k present)
//!                              R derived from the inverse of the present rows, cached per
//!                              (sources, rebuild) pattern; reconstruct_packed on a slab
//! ```

use crate::checksum::ChunkHasher;
use crate::isal::{self, TABLE_BYTES_PER_COEFFICIENT};
use crate::{Error, SHARDS_MAX};

/// Decode-table slots kept per codec. A stripe's erasure pattern is set by which sites are down
/// or slow, so a core sees a handful of patterns at a time; 16 covers every single and double
/// loss of a 4+2 code. Each slot reserves `32 · k · m` bytes (at most 8 KiB), so a codec holds
/// at most 128 KiB of decode tables. A miss costs one k × k inversion over GF(2^8) (microseconds).
pub const DECODE_CACHE_ENTRIES: usize = 16;

/// Bytes encoded per step of [`Codec::encode_with_checksums`]: small enough that a step's
/// k + m strips stay in L2 while they are checksummed, large enough to amortise the call.
pub const CHECKSUM_STEP_BYTES: usize = 32 * 1024;

/// A set of shard indices (bit i = shard i), data shards `0..k` then parity `k..k+m`.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ShardSet(pub u32);

const _: () = assert!(
    SHARDS_MAX <= u32::BITS as usize,
    "ShardSet is a u32 bitmask"
);

impl ShardSet {
    pub const EMPTY: ShardSet = ShardSet(0);

    /// Shards `0..n`.
    #[must_use]
    pub fn first(n: usize) -> ShardSet {
        assert!(n <= SHARDS_MAX);
        ShardSet(if n == 32 { u32::MAX } else { (1u32 << n) - 1 })
    }

    #[must_use]
    pub fn contains(self, shard: usize) -> bool {
        shard < SHARDS_MAX && self.0 & (1 << shard) != 0
    }

    #[must_use]
    pub fn with(self, shard: usize) -> ShardSet {
        assert!(shard < SHARDS_MAX);
        ShardSet(self.0 | (1 << shard))
    }

    #[must_use]
    pub fn without(self, shard: usize) -> ShardSet {
        assert!(shard < SHARDS_MAX);
        ShardSet(self.0 & !(1 << shard))
    }

    #[must_use]
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    #[must_use]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Shard indices in increasing order.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        let mut bits = self.0;
        core::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let shard = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Some(shard)
        })
    }
}

impl core::fmt::Debug for ShardSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// One cached decode: which shards it reads, which it writes, and its expanded tables.
struct DecodeSlot {
    sources: ShardSet,
    rebuild: ShardSet,
    /// Logical clock of the last use, for least-recently-used eviction.
    used: u64,
    /// `32 · k · m` bytes reserved; the first `32 · k · rebuild.len()` are in use.
    tables: Box<[u8]>,
}

/// A Reed-Solomon code with `k` data and `m` parity shards. Build one per (k, m) per core and
/// keep it: construction allocates, calls do not.
pub struct Codec {
    k: usize,
    m: usize,
    /// `(k + m) × k`, row major: identity on top, Cauchy rows below.
    matrix: Box<[u8]>,
    /// `32 · k · m` bytes: the expanded parity rows.
    encode_tables: Box<[u8]>,
    slots: Box<[DecodeSlot]>,
    clock: u64,
}

impl core::fmt::Debug for Codec {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Codec")
            .field("k", &self.k)
            .field("m", &self.m)
            .finish_non_exhaustive()
    }
}

impl Codec {
    /// A codec for `k` data and `m` parity shards: `1 ≤ k`, `0 ≤ m`, `k + m ≤ SHARDS_MAX`.
    pub fn new(k: usize, m: usize) -> Result<Codec, Error> {
        if k == 0 || k.checked_add(m).is_none_or(|n| n > SHARDS_MAX) {
            return Err(Error::Geometry { k, m });
        }
        let n = k + m;
        let mut matrix = vec![0u8; n * k].into_boxed_slice();
        isal::gen_cauchy_matrix(&mut matrix, n, k);
        let mut encode_tables = vec![0u8; TABLE_BYTES_PER_COEFFICIENT * k * m].into_boxed_slice();
        isal::init_tables(k, m, &matrix[k * k..], &mut encode_tables);
        let slots = (0..DECODE_CACHE_ENTRIES)
            .map(|_| DecodeSlot {
                sources: ShardSet::EMPTY,
                rebuild: ShardSet::EMPTY,
                used: 0,
                tables: vec![0u8; TABLE_BYTES_PER_COEFFICIENT * k * m].into_boxed_slice(),
            })
            .collect();
        Ok(Codec {
            k,
            m,
            matrix,
            encode_tables,
            slots,
            clock: 0,
        })
    }

    #[must_use]
    pub fn data_shards(&self) -> usize {
        self.k
    }

    #[must_use]
    pub fn parity_shards(&self) -> usize {
        self.m
    }

    #[must_use]
    pub fn total_shards(&self) -> usize {
        self.k + self.m
    }

    /// The coefficient matrix, `(k + m) × k` row major, identity on top: shard `i` equals
    /// `Σ_j matrix[i·k + j] · data_j` over GF(2^8) with polynomial 0x11d.
    #[must_use]
    pub fn matrix(&self) -> &[u8] {
        &self.matrix
    }

    /// Computes the `m` parity chunks of one stripe from its `k` data chunks. All chunks must
    /// have the same length, which may be anything (alignment is ISA-L's business, handled in
    /// `isal.rs`). With `m = 0` this only checks the arguments.
    pub fn encode<D, P>(&self, data: &[D], parity: &mut [P]) -> Result<(), Error>
    where
        D: AsRef<[u8]>,
        P: AsMut<[u8]>,
    {
        let len = self.check_encode_args(data, parity)?;
        let sources: [&[u8]; SHARDS_MAX] = source_refs(data);
        let mut outputs: [&mut [u8]; SHARDS_MAX] = output_refs(parity, 0, len);
        isal::encode_data(
            &self.encode_tables,
            &sources[..self.k],
            &mut outputs[..self.m],
        );
        Ok(())
    }

    /// [`Codec::encode`], and the checksum of every chunk of the stripe into
    /// `checksums[0..k+m]` (data then parity). The stripe is processed in steps of
    /// [`CHECKSUM_STEP_BYTES`] so each step's bytes are checksummed while still in cache.
    pub fn encode_with_checksums<D, P>(
        &self,
        data: &[D],
        parity: &mut [P],
        checksums: &mut [u64],
    ) -> Result<(), Error>
    where
        D: AsRef<[u8]>,
        P: AsMut<[u8]>,
    {
        let len = self.check_encode_args(data, parity)?;
        if checksums.len() != self.k + self.m {
            return Err(Error::ShardCount {
                expected: self.k + self.m,
                actual: checksums.len(),
            });
        }
        let mut hashers = [ChunkHasher::new(); SHARDS_MAX];
        let mut start = 0;
        loop {
            let end = len.min(start + CHECKSUM_STEP_BYTES);
            let mut sources: [&[u8]; SHARDS_MAX] = [&[]; SHARDS_MAX];
            for (source, chunk) in sources.iter_mut().zip(data) {
                *source = &chunk.as_ref()[start..end];
            }
            let mut outputs: [&mut [u8]; SHARDS_MAX] = output_refs(parity, start, end);
            isal::encode_data(
                &self.encode_tables,
                &sources[..self.k],
                &mut outputs[..self.m],
            );
            for (hasher, source) in hashers.iter_mut().zip(&sources[..self.k]) {
                hasher.update(source);
            }
            for (hasher, output) in hashers[self.k..].iter_mut().zip(&outputs[..self.m]) {
                hasher.update(output);
            }
            if end == len {
                break;
            }
            start = end;
        }
        for (checksum, hasher) in checksums.iter_mut().zip(&hashers) {
            *checksum = hasher.finalize();
        }
        Ok(())
    }

    /// [`Codec::encode_with_checksums`] on packed buffers, the shape of a PUT's stripe slab:
    /// `data` holds the k data chunks back to back (`k · chunk_len` bytes: a short last stripe
    /// is the same buffer re-sliced at its shorter chunk length) and `parity` receives the m
    /// parity chunks back to back.
    pub fn encode_packed(
        &self,
        data: &[u8],
        parity: &mut [u8],
        chunk_len: usize,
        checksums: &mut [u64],
    ) -> Result<(), Error> {
        check_packed(data.len(), self.k, chunk_len)?;
        check_packed(parity.len(), self.m, chunk_len)?;
        let mut data_chunks: [&[u8]; SHARDS_MAX] = [&[]; SHARDS_MAX];
        let mut parity_chunks: [&mut [u8]; SHARDS_MAX] =
            core::array::from_fn(|_| <&mut [u8]>::default());
        if chunk_len > 0 {
            for (slot, chunk) in data_chunks.iter_mut().zip(data.chunks_exact(chunk_len)) {
                *slot = chunk;
            }
            for (slot, chunk) in parity_chunks
                .iter_mut()
                .zip(parity.chunks_exact_mut(chunk_len))
            {
                *slot = chunk;
            }
        }
        self.encode_with_checksums(
            &data_chunks[..self.k],
            &mut parity_chunks[..self.m],
            checksums,
        )
    }

    /// [`Codec::reconstruct`] on a packed stripe: `stripe` holds all k + m chunks back to back
    /// (`(k + m) · chunk_len` bytes), as a degraded read assembles fetched chunks.
    pub fn reconstruct_packed(
        &mut self,
        stripe: &mut [u8],
        chunk_len: usize,
        present: ShardSet,
        rebuild: ShardSet,
    ) -> Result<(), Error> {
        check_packed(stripe.len(), self.k + self.m, chunk_len)?;
        let mut chunks: [&mut [u8]; SHARDS_MAX] = core::array::from_fn(|_| <&mut [u8]>::default());
        if chunk_len > 0 {
            for (slot, chunk) in chunks.iter_mut().zip(stripe.chunks_exact_mut(chunk_len)) {
                *slot = chunk;
            }
        }
        self.reconstruct(&mut chunks[..self.k + self.m], present, rebuild)
    }

    fn check_encode_args<D, P>(&self, data: &[D], parity: &mut [P]) -> Result<usize, Error>
    where
        D: AsRef<[u8]>,
        P: AsMut<[u8]>,
    {
        if data.len() != self.k {
            return Err(Error::ShardCount {
                expected: self.k,
                actual: data.len(),
            });
        }
        if parity.len() != self.m {
            return Err(Error::ShardCount {
                expected: self.m,
                actual: parity.len(),
            });
        }
        let len = data[0].as_ref().len();
        check_len(len)?;
        for (shard, chunk) in data.iter().enumerate() {
            let actual = chunk.as_ref().len();
            if actual != len {
                return Err(Error::ShardLength {
                    shard,
                    expected: len,
                    actual,
                });
            }
        }
        for (index, chunk) in parity.iter_mut().enumerate() {
            let actual = chunk.as_mut().len();
            if actual != len {
                return Err(Error::ShardLength {
                    shard: self.k + index,
                    expected: len,
                    actual,
                });
            }
        }
        Ok(len)
    }

    /// Rebuilds the shards in `rebuild` from the first `k` shards in `present` (data shards
    /// first, so a stripe missing only parity reads no parity).
    ///
    /// `shards` holds one buffer per shard, `k + m` of them. Buffers of present shards hold their
    /// chunk; buffers of rebuilt shards are overwritten; all of these have the stripe's chunk
    /// length. Buffers of shards in neither set are not touched and may be empty. Rebuilding
    /// a shard that is also present is an error, and so is having fewer than `k` present.
    pub fn reconstruct<B>(
        &mut self,
        shards: &mut [B],
        present: ShardSet,
        rebuild: ShardSet,
    ) -> Result<(), Error>
    where
        B: AsRef<[u8]> + AsMut<[u8]>,
    {
        let n = self.k + self.m;
        if shards.len() != n {
            return Err(Error::ShardCount {
                expected: n,
                actual: shards.len(),
            });
        }
        let all = ShardSet::first(n);
        if present.0 & !all.0 != 0 || rebuild.0 & !all.0 != 0 || present.0 & rebuild.0 != 0 {
            return Err(Error::ShardSet {
                present: present.0,
                rebuild: rebuild.0,
            });
        }
        if rebuild.is_empty() {
            return Ok(());
        }
        if present.len() < self.k {
            return Err(Error::TooManyMissing {
                present: present.len(),
                needed: self.k,
            });
        }
        // The first k present shards, lowest index first: data shards are preferred.
        let sources = ShardSet(
            present
                .iter()
                .take(self.k)
                .fold(0u32, |bits, shard| bits | (1 << shard)),
        );
        let len = shards[sources.iter().next().unwrap_or(0)].as_ref().len();
        check_len(len)?;
        for shard in sources.iter().chain(rebuild.iter()) {
            let actual = shards[shard].as_ref().len();
            if actual != len {
                return Err(Error::ShardLength {
                    shard,
                    expected: len,
                    actual,
                });
            }
        }
        let slot = self.decode_slot(sources, rebuild);
        let tables =
            &self.slots[slot].tables[..TABLE_BYTES_PER_COEFFICIENT * self.k * rebuild.len()];

        // Split `shards` into the read-only sources and the written outputs, both in increasing
        // shard order, which is the order the decode matrix rows and columns were built in.
        let mut sources_ref: [&[u8]; SHARDS_MAX] = [&[]; SHARDS_MAX];
        let mut outputs: [&mut [u8]; SHARDS_MAX] = core::array::from_fn(|_| <&mut [u8]>::default());
        let (mut s, mut o) = (0, 0);
        for (shard, buffer) in shards.iter_mut().enumerate() {
            if sources.contains(shard) {
                // Give up the unique borrow for a shared one that lives as long as `shards`.
                let shared: &B = buffer;
                sources_ref[s] = shared.as_ref();
                s += 1;
            } else if rebuild.contains(shard) {
                outputs[o] = buffer.as_mut();
                o += 1;
            }
        }
        assert_eq!((s, o), (self.k, rebuild.len()));
        isal::encode_data(tables, &sources_ref[..s], &mut outputs[..o]);
        Ok(())
    }

    /// The index of the slot holding decode tables for (`sources`, `rebuild`), computing them
    /// into the least recently used slot on a miss.
    fn decode_slot(&mut self, sources: ShardSet, rebuild: ShardSet) -> usize {
        self.clock += 1;
        let clock = self.clock;
        if let Some(slot) = self
            .slots
            .iter()
            .position(|s| s.used != 0 && s.sources == sources && s.rebuild == rebuild)
        {
            self.slots[slot].used = clock;
            return slot;
        }
        let slot = self
            .slots
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| s.used)
            .map_or(0, |(i, _)| i);
        let k = self.k;

        // B = the rows of the generator matrix for the source shards; B⁻¹ maps sources to data.
        let mut b = [0u8; SHARDS_MAX * SHARDS_MAX];
        for (row, shard) in sources.iter().enumerate() {
            b[row * k..(row + 1) * k].copy_from_slice(&self.matrix[shard * k..(shard + 1) * k]);
        }
        let mut inverse = [0u8; SHARDS_MAX * SHARDS_MAX];
        let invertible = isal::invert_matrix(&mut b[..k * k], &mut inverse[..k * k], k);
        // Every k × k sub-matrix of a systematic Cauchy matrix is invertible, so this can only
        // fail if the matrix or the source set were corrupted: a programmer error.
        assert!(invertible, "Cauchy sub-matrix for {sources:?} is singular");

        // A rebuilt data shard d is row d of B⁻¹; a rebuilt parity shard p is (row p of the
        // generator) · B⁻¹.
        let mut decode = [0u8; SHARDS_MAX * SHARDS_MAX];
        for (row, shard) in rebuild.iter().enumerate() {
            let out = &mut decode[row * k..(row + 1) * k];
            if shard < k {
                out.copy_from_slice(&inverse[shard * k..(shard + 1) * k]);
            } else {
                let generator = &self.matrix[shard * k..(shard + 1) * k];
                for (j, coefficient) in out.iter_mut().enumerate() {
                    *coefficient = generator.iter().enumerate().fold(0u8, |acc, (t, &g)| {
                        acc ^ isal::gf_mul(g, inverse[t * k + j])
                    });
                }
            }
        }
        let rows = rebuild.len();
        let entry = &mut self.slots[slot];
        isal::init_tables(
            k,
            rows,
            &decode[..rows * k],
            &mut entry.tables[..TABLE_BYTES_PER_COEFFICIENT * k * rows],
        );
        entry.sources = sources;
        entry.rebuild = rebuild;
        entry.used = clock;
        slot
    }
}

/// Checks that a packed slab holds exactly `chunks` chunks of `chunk_len` bytes.
fn check_packed(len: usize, chunks: usize, chunk_len: usize) -> Result<(), Error> {
    check_len(chunk_len)?;
    if len == chunks * chunk_len {
        Ok(())
    } else {
        Err(Error::SlabLength {
            expected: chunks * chunk_len,
            actual: len,
        })
    }
}

/// Chunk lengths beyond `CHUNK_SIZE_MAX` would overflow ISA-L's `int` length for large k; the
/// geometry never produces them, so a caller passing one has a bug, reported as an error.
fn check_len(len: usize) -> Result<(), Error> {
    if len > crate::CHUNK_SIZE_MAX as usize {
        return Err(Error::ChunkSize {
            chunk_size: len as u64,
        });
    }
    Ok(())
}

fn source_refs<D: AsRef<[u8]>>(data: &[D]) -> [&[u8]; SHARDS_MAX] {
    let mut sources: [&[u8]; SHARDS_MAX] = [&[]; SHARDS_MAX];
    for (source, chunk) in sources.iter_mut().zip(data) {
        *source = chunk.as_ref();
    }
    sources
}

fn output_refs<P: AsMut<[u8]>>(
    parity: &mut [P],
    start: usize,
    end: usize,
) -> [&mut [u8]; SHARDS_MAX] {
    let mut outputs: [&mut [u8]; SHARDS_MAX] = core::array::from_fn(|_| <&mut [u8]>::default());
    for (output, chunk) in outputs.iter_mut().zip(parity.iter_mut()) {
        *output = &mut chunk.as_mut()[start..end];
    }
    outputs
}

#[cfg(test)]
mod tests;
