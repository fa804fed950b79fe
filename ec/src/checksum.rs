//! Per-chunk checksums: CRC-64/NVME over each stored chunk, kept in an 8-byte little-endian
//! trailer right after the chunk on its shard (see `docs/ec-layout.md`).
//!
//! Why CRC-64/NVME rather than CRC32C: both run at tens of GB/s per core (`crc-fast`'s
//! AVX-512 kernels, or ISA-L's AVX2 ones on CPUs without AVX-512; see [`extend_checksum`]),
//! so speed does not decide. The 64-bit check misses a random corruption with probability
//! 2^-64 instead of 2^-32, which matters when scrubbing billions of chunks over years, and
//! costs 4 more bytes per chunk
//! (8 bytes per MiB, 0.0008 %). It is also the checksum S3 itself defaults to for full-object
//! checksums, so the crate and the HTTP layer share one well-tested algorithm.

use crc_fast::{CrcAlgorithm, Digest};

use crate::Error;

/// Bytes of the checksum trailer that follows every stored chunk.
pub const CHECKSUM_LEN: usize = 8;

/// The algorithm of every chunk checksum. Recorded in each shard's manifest by the engine.
pub const CHECKSUM_ALGORITHM: CrcAlgorithm = CrcAlgorithm::Crc64Nvme;

/// The checksum of one chunk's bytes.
#[must_use]
pub fn chunk_checksum(chunk: &[u8]) -> u64 {
    extend_checksum(0, chunk)
}

/// A running checksum, for chunks that arrive in pieces. `Copy`, no allocation.
#[derive(Clone, Copy)]
pub struct ChunkHasher(u64);

impl ChunkHasher {
    #[must_use]
    pub fn new() -> Self {
        ChunkHasher(0)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0 = extend_checksum(self.0, bytes);
    }

    #[must_use]
    pub fn finalize(&self) -> u64 {
        self.0
    }
}

impl Default for ChunkHasher {
    fn default() -> Self {
        Self::new()
    }
}

/// CRC-64/NVME's polynomial, bit-reflected (the register shifts right).
const POLY_REFLECTED: u64 = 0x9A6C_9329_AC4B_C9B5;
/// CRC-64/NVME's final XOR (its initial value too).
const XOR_OUT: u64 = u64::MAX;
/// Appenders kept per thread, by piece length.
const APPENDERS_CACHED: usize = 4;

/// Continues a checksum over more bytes: `extend_checksum(crc(A), B) == crc(A ‖ B)`, and
/// `crc(∅) == 0`.
///
/// On CPUs with AVX2 and VPCLMULQDQ but not AVX-512 (AMD Zen 3, for one) this is ISA-L's
/// 256-bit kernel: 25 GB/s on one core here against 12.5 GB/s for `crc-fast`, whose x86
/// kernels are 128-bit below AVX-512. That was 22 % of a GET's CPU on such a machine.
#[must_use]
pub fn extend_checksum(running: u64, bytes: &[u8]) -> u64 {
    match crate::isal::crc64_nvme_avx2(running, bytes) {
        Some(crc) => crc,
        None => extend_portably(CHECKSUM_ALGORITHM, running, XOR_OUT, bytes),
    }
}

/// S3's `CRC32` (CRC-32/ISO-HDLC) continued over more bytes, as [`extend_checksum`] does for
/// CRC-64/NVME (and on the same 256-bit kernels where the CPU has them): the `crc(∅) == 0`
/// convention, so a hasher is one `u32`. For the HTTP layer's `x-amz-checksum-crc32`, which
/// boto3 and the AWS CLI send with every upload by default.
#[must_use]
pub fn extend_crc32(running: u32, bytes: &[u8]) -> u32 {
    match crate::isal::crc32_iso_hdlc_avx2(running, bytes) {
        Some(crc) => crc,
        // CRC-32 values fit the low 32 bits of `crc-fast`'s 64-bit state.
        None => extend_portably(
            CrcAlgorithm::Crc32IsoHdlc,
            u64::from(running),
            u64::from(u32::MAX),
            bytes,
        ) as u32,
    }
}

/// `crc-fast`'s kernel continued from a finished checksum `running` of an algorithm whose
/// initial value and final XOR are both `xor_out` (true of CRC-64/NVME and CRC-32/ISO-HDLC).
fn extend_portably(algorithm: CrcAlgorithm, running: u64, xor_out: u64, bytes: &[u8]) -> u64 {
    let mut digest = Digest::new_with_init_state(algorithm, running ^ xor_out);
    digest.update(bytes);
    digest.finalize()
}

/// Appends the checksum of a `len`-byte piece to a running checksum without reading the
/// piece again: `append(crc(A), crc(B)) == crc(A ‖ B)` for every `B` of `len` bytes.
///
/// The PUT pipeline already computes each data chunk's checksum (while encoding, on hot
/// data); the whole-object checksum of the fast ETag mode is then a chain of appends instead
/// of a second pass over every byte (~40 % of the CRC time of a fast-ETag PUT).
///
/// `crc(A ‖ B) = Z(crc(A)) ⊕ Z(crc(∅)) ⊕ crc(B)`, where `Z` is the linear map "run the
/// register over `len` zero bytes": a 64×64 GF(2) matrix, built by squaring the
/// one-zero-byte map (~40 matrix products for a megabyte; [`CrcAppender::cached`] keeps the
/// last few per thread), then applied with one matrix–vector product per append.
#[derive(Clone, Debug)]
pub struct CrcAppender {
    len: u64,
    /// Column `i` is `Z(1 << i)`.
    columns: [u64; 64],
    constant: u64,
}

/// `m ∘ n` for GF(2) matrices stored as columns.
fn compose(m: &[u64; 64], n: &[u64; 64]) -> [u64; 64] {
    let mut out = [0; 64];
    for (column, &v) in out.iter_mut().zip(n) {
        *column = apply(m, v);
    }
    out
}

/// `m · v` over GF(2).
fn apply(m: &[u64; 64], mut v: u64) -> u64 {
    let mut out = 0;
    while v != 0 {
        out ^= m[v.trailing_zeros() as usize];
        v &= v - 1;
    }
    out
}

impl CrcAppender {
    /// An appender for pieces of `len` bytes.
    #[must_use]
    pub fn new(len: u64) -> Self {
        // One zero byte is eight zero bits: each shifts the register right, folding the
        // polynomial in when a 1 falls out.
        let mut byte = [0_u64; 64];
        for (i, column) in byte.iter_mut().enumerate() {
            let mut v = 1_u64 << i;
            for _ in 0..8 {
                v = if v & 1 == 1 {
                    (v >> 1) ^ POLY_REFLECTED
                } else {
                    v >> 1
                };
            }
            *column = v;
        }
        let mut columns = [0_u64; 64];
        for (i, column) in columns.iter_mut().enumerate() {
            *column = 1 << i;
        }
        let (mut power, mut left) = (byte, len);
        while left != 0 {
            if left & 1 == 1 {
                columns = compose(&power, &columns);
            }
            left >>= 1;
            if left != 0 {
                power = compose(&power, &power);
            }
        }
        let constant = apply(&columns, chunk_checksum(&[]));
        CrcAppender {
            len,
            columns,
            constant,
        }
    }

    /// An appender for `len`-byte pieces from this thread's cache (built on a miss).
    #[must_use]
    pub fn cached(len: u64) -> Self {
        thread_local! {
            static CACHE: std::cell::RefCell<Vec<CrcAppender>> =
                const { std::cell::RefCell::new(Vec::new()) };
        }
        CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some(found) = cache.iter().find(|a| a.len == len) {
                return found.clone();
            }
            let built = CrcAppender::new(len);
            if cache.len() == APPENDERS_CACHED {
                cache.remove(0);
            }
            cache.push(built.clone());
            built
        })
    }

    /// The piece length this appender is for.
    #[must_use]
    pub fn piece_len(&self) -> u64 {
        self.len
    }

    /// The checksum of the bytes behind `running` followed by a `len`-byte piece whose own
    /// checksum is `piece`.
    #[must_use]
    pub fn append(&self, running: u64, piece: u64) -> u64 {
        apply(&self.columns, running) ^ self.constant ^ piece
    }
}

/// Checks `chunk` against the checksum stored for it.
pub fn verify_chunk(chunk: &[u8], expected: u64) -> Result<(), Error> {
    let actual = chunk_checksum(chunk);
    if actual == expected {
        Ok(())
    } else {
        Err(Error::ChecksumMismatch { expected, actual })
    }
}

/// Writes the trailer for a chunk whose checksum is `checksum`.
#[must_use]
pub fn checksum_trailer(checksum: u64) -> [u8; CHECKSUM_LEN] {
    checksum.to_le_bytes()
}

/// Splits a stored chunk (`chunk ‖ checksum`) and verifies it, returning the chunk's bytes.
/// This is the function every read path calls on every chunk it fetched.
pub fn verify_stored_chunk(stored: &[u8]) -> Result<&[u8], Error> {
    let Some(chunk_len) = stored.len().checked_sub(CHECKSUM_LEN) else {
        return Err(Error::StoredChunkTruncated { len: stored.len() });
    };
    let (chunk, trailer) = stored.split_at(chunk_len);
    let mut bytes = [0u8; CHECKSUM_LEN];
    bytes.copy_from_slice(trailer);
    verify_chunk(chunk, u64::from_le_bytes(bytes))?;
    Ok(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appending_piece_checksums_equals_hashing_everything() {
        let mut x = 0x9E37_79B9_7F4A_7C15_u64;
        let data: Vec<u8> = (0..(3 << 20) + 40_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for len in [1_usize, 7, 64, 4096, 10_000, 1 << 20] {
            let appender = CrcAppender::new(len as u64);
            assert_eq!(appender.piece_len(), len as u64);
            // From the empty object's checksum, and from a first piece of another length.
            for head in [0_usize, 3, 4097] {
                let mut running = chunk_checksum(&data[..head]);
                let mut end = head;
                while end + len <= data.len() {
                    running = appender.append(running, chunk_checksum(&data[end..end + len]));
                    end += len;
                }
                assert_eq!(
                    running,
                    chunk_checksum(&data[..end]),
                    "len {len} head {head}"
                );
                assert_eq!(
                    extend_checksum(running, &data[end..]),
                    chunk_checksum(&data)
                );
            }
            assert_eq!(CrcAppender::cached(len as u64).columns, appender.columns);
        }
        // A wrong piece checksum gives a wrong result.
        let appender = CrcAppender::new(100);
        let right = appender.append(chunk_checksum(b"abc"), chunk_checksum(&data[..100]));
        let wrong = appender.append(chunk_checksum(b"abc"), chunk_checksum(&data[1..101]));
        assert_eq!(
            right,
            chunk_checksum(&[b"abc".as_slice(), &data[..100]].concat())
        );
        assert_ne!(right, wrong);
    }

    #[test]
    fn the_wide_kernels_agree_with_crc_fast_at_every_length_and_alignment() {
        // Whichever kernel `extend_checksum` and `extend_crc32` pick on this CPU, and the
        // portable fallback, must give crc-fast's CRC for every length across the kernels'
        // block boundaries (16, 32, 128, 256 bytes), at unaligned starts, and when continued
        // from a running value.
        let data: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for start in 0..4 {
            for len in (0..=1100).chain([4093, 4096, 4997 - start]) {
                let bytes = &data[start..start + len];
                let expected = crc_fast::checksum(CHECKSUM_ALGORITHM, bytes);
                assert_eq!(chunk_checksum(bytes), expected, "start {start} len {len}");
                let split = len / 3;
                let running = chunk_checksum(&bytes[..split]);
                assert_eq!(extend_checksum(running, &bytes[split..]), expected);
                let portable =
                    extend_portably(CHECKSUM_ALGORITHM, running, XOR_OUT, &bytes[split..]);
                assert_eq!(portable, expected);

                let expected = crc_fast::checksum(CrcAlgorithm::Crc32IsoHdlc, bytes) as u32;
                let running = extend_crc32(0, &bytes[..split]);
                assert_eq!(
                    extend_crc32(running, &bytes[split..]),
                    expected,
                    "crc32 len {len}"
                );
                let portable = extend_portably(
                    CrcAlgorithm::Crc32IsoHdlc,
                    running.into(),
                    u32::MAX.into(),
                    &bytes[split..],
                );
                assert_eq!(portable as u32, expected);
            }
        }
        assert_eq!(chunk_checksum(&[]), 0);
        assert_eq!(extend_crc32(0, b"123456789"), 0xcbf4_3926);
        assert_eq!(extend_crc32(0, &[]), 0);
    }

    #[test]
    fn known_vector() {
        // Checks the algorithm is CRC-64/NVME by its catalogue check value for "123456789".
        assert_eq!(chunk_checksum(b"123456789"), 0xae8b_1486_0a79_9888);
    }

    #[test]
    fn incremental_matches_one_shot() {
        // Checks that feeding a chunk in pieces gives the one-shot checksum.
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut hasher = ChunkHasher::new();
        for piece in data.chunks(777) {
            hasher.update(piece);
        }
        assert_eq!(hasher.finalize(), chunk_checksum(&data));
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        // Checks that flipping any one bit of a stored chunk (data or trailer) fails verification.
        let chunk: Vec<u8> = (0..256u32).map(|i| (i * 31) as u8).collect();
        let mut stored = chunk.clone();
        stored.extend_from_slice(&checksum_trailer(chunk_checksum(&chunk)));
        assert_eq!(verify_stored_chunk(&stored).expect("intact"), &chunk[..]);
        for bit in 0..stored.len() * 8 {
            let mut bad = stored.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(matches!(
                verify_stored_chunk(&bad),
                Err(Error::ChecksumMismatch { .. })
            ));
        }
    }

    #[test]
    fn truncated_stored_chunk_is_an_error() {
        // Checks that a stored chunk shorter than its trailer is rejected, not sliced out of bounds.
        assert!(matches!(
            verify_stored_chunk(&[1, 2, 3]),
            Err(Error::StoredChunkTruncated { len: 3 })
        ));
        let empty_stored = checksum_trailer(chunk_checksum(&[]));
        assert_eq!(
            verify_stored_chunk(&empty_stored).expect("empty chunk"),
            &[] as &[u8]
        );
    }
}
