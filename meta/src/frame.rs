//! Log frames: encoding, checking and classifying what follows the last good frame.
//!
//! ```text
//!  offset  size  field
//!  0       4     magic "TSML"
//!  4       4     payload length (u32 LE, <= FRAME_PAYLOAD_MAX)
//!  8       2     record version (u16 LE)
//!  10      2     reserved, zero
//!  12      4     CRC32C of bytes 0..12 (protects the length before it is trusted)
//!  16      8     log sequence number (u64 LE), +1 per frame
//!  24      8     reserved, zero
//!  32      len   payload: rkyv archive of the version's `Txn` (16-byte aligned)
//!  32+len  4     CRC32C of bytes 0..32+len
//!  ...     0-15  zero padding to the next multiple of 16
//! ```
//! Pure: no I/O. See `docs/meta-format.md` for the recovery rules built on these checks.

use crate::record::{encode_current, Txn};
use crate::MetaError;

/// First four bytes of every frame.
pub const FRAME_MAGIC: [u8; 4] = *b"TSML";
/// Bytes before the payload; a multiple of [`FRAME_ALIGN`] so that payloads are aligned.
pub const FRAME_HEADER_BYTES: usize = 32;
/// Bytes after the payload before padding: the frame CRC.
pub const FRAME_TRAILER_BYTES: usize = 4;
/// Every frame starts and ends on this boundary, so every payload is 16-byte aligned for rkyv.
pub const FRAME_ALIGN: usize = 16;
/// Largest payload accepted: a completed 10,000-part upload with 16 shards per part is about
/// 3.6 MiB archived; 8 MiB leaves room and bounds what a corrupt length can make recovery read.
pub const FRAME_PAYLOAD_MAX: usize = 8 << 20;

const _: () = assert!(FRAME_HEADER_BYTES % FRAME_ALIGN == 0);
const _: () = assert!(FRAME_PAYLOAD_MAX < u32::MAX as usize);

fn crc32c(bytes: &[u8]) -> u32 {
    // CRC32C fits in 32 bits; crc-fast returns it widened to u64.
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32
}

/// Total bytes a frame with a `payload_len`-byte payload occupies, padding included.
#[must_use]
pub const fn frame_len(payload_len: usize) -> usize {
    (FRAME_HEADER_BYTES + payload_len + FRAME_TRAILER_BYTES).next_multiple_of(FRAME_ALIGN)
}

/// Appends one frame carrying `txn` at sequence number `lsn` to `out`, whose length must be a
/// multiple of [`FRAME_ALIGN`]. On error `out` is left as it was. Returns the frame's length.
pub fn encode_frame(out: &mut Vec<u8>, lsn: u64, txn: &Txn) -> Result<usize, MetaError> {
    assert!(out.len() % FRAME_ALIGN == 0, "frames start 16-byte aligned");
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
    if let Err(e) = encode_current(txn, out) {
        out.truncate(start);
        return Err(e);
    }
    let payload_len = out.len() - start - FRAME_HEADER_BYTES;
    if payload_len > FRAME_PAYLOAD_MAX {
        out.truncate(start);
        return Err(MetaError::FrameTooLarge { bytes: payload_len });
    }
    let header = &mut out[start..start + FRAME_HEADER_BYTES];
    header[0..4].copy_from_slice(&FRAME_MAGIC);
    header[4..8].copy_from_slice(&(payload_len as u32).to_le_bytes());
    header[8..10].copy_from_slice(&crate::record::RECORD_VERSION_CURRENT.to_le_bytes());
    let header_crc = crc32c(&header[0..12]);
    header[12..16].copy_from_slice(&header_crc.to_le_bytes());
    header[16..24].copy_from_slice(&lsn.to_le_bytes());
    let crc = crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    let end = start + frame_len(payload_len);
    out.resize(end, 0);
    // Paired with `check_frame`: what we just wrote must read back as one valid frame.
    debug_assert!(matches!(check_frame(out, start), Ok(f) if f.lsn == lsn && f.end == end));
    Ok(end - start)
}

/// A frame that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameView {
    pub version: u16,
    pub lsn: u64,
    /// Byte range of the payload inside the buffer given to [`check_frame`].
    pub payload_start: usize,
    pub payload_end: usize,
    /// Offset just past the frame's padding: where the next frame starts.
    pub end: usize,
}

/// Why the bytes at an offset are not a valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameFault {
    /// Fewer bytes remain than the header or the length it announces.
    Incomplete,
    BadMagic,
    BadHeaderCrc,
    /// The header is intact but announces more than [`FRAME_PAYLOAD_MAX`].
    TooLarge,
    /// The frame CRC does not match: payload, sequence number or CRC damaged or torn.
    BadCrc,
    /// Reserved or padding bytes are not zero.
    BadPadding,
}

/// Checks the frame at `off` (a multiple of [`FRAME_ALIGN`]) in `buf`.
pub fn check_frame(buf: &[u8], off: usize) -> Result<FrameView, FrameFault> {
    debug_assert!(off % FRAME_ALIGN == 0);
    let rest = buf.get(off..).unwrap_or(&[]);
    if rest.len() < FRAME_HEADER_BYTES {
        return Err(FrameFault::Incomplete);
    }
    if rest[0..4] != FRAME_MAGIC {
        return Err(FrameFault::BadMagic);
    }
    let word = |at: usize| u32::from_le_bytes([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]]);
    if crc32c(&rest[0..12]) != word(12) {
        return Err(FrameFault::BadHeaderCrc);
    }
    let payload_len = word(4) as usize;
    if payload_len > FRAME_PAYLOAD_MAX {
        return Err(FrameFault::TooLarge);
    }
    let total = frame_len(payload_len);
    if rest.len() < total {
        return Err(FrameFault::Incomplete);
    }
    let crc_at = FRAME_HEADER_BYTES + payload_len;
    if crc32c(&rest[..crc_at]) != word(crc_at) {
        return Err(FrameFault::BadCrc);
    }
    if rest[10..12] != [0, 0]
        || rest[24..32].iter().any(|&b| b != 0)
        || rest[crc_at + FRAME_TRAILER_BYTES..total]
            .iter()
            .any(|&b| b != 0)
    {
        return Err(FrameFault::BadPadding);
    }
    let mut lsn = [0u8; 8];
    lsn.copy_from_slice(&rest[16..24]);
    Ok(FrameView {
        version: u16::from_le_bytes([rest[8], rest[9]]),
        lsn: u64::from_le_bytes(lsn),
        payload_start: off + FRAME_HEADER_BYTES,
        payload_end: off + crc_at,
        end: off + total,
    })
}

/// What lies after the last frame recovery accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// Nothing: the file ends exactly after the last good frame.
    Clean,
    /// Only zero bytes (a preallocated or zero-filled tail): truncated.
    Zeroes,
    /// A partial or damaged frame with no valid frame after it: a torn write, truncated.
    Torn(FrameFault),
    /// A bad frame followed by a valid one at `next_valid`: damage, not a torn write.
    Corrupt {
        fault: Option<FrameFault>,
        next_valid: usize,
    },
}

/// Classifies the bytes from `off` on, where the frame at `off` failed with `fault` (or, with
/// `fault == None`, was valid but out of sequence — a repeated or misplaced frame).
#[must_use]
pub fn classify_tail(buf: &[u8], off: usize, fault: Option<FrameFault>) -> Tail {
    if off >= buf.len() {
        return Tail::Clean;
    }
    let Some(fault) = fault else {
        // A frame that passes both CRCs cannot come from a torn write.
        return Tail::Corrupt {
            fault: None,
            next_valid: off,
        };
    };
    if buf[off..].iter().all(|&b| b == 0) {
        return Tail::Zeroes;
    }
    let mut at = off + FRAME_ALIGN;
    while at + FRAME_HEADER_BYTES <= buf.len() {
        if buf[at..at + 4] == FRAME_MAGIC && check_frame(buf, at).is_ok() {
            return Tail::Corrupt {
                fault: Some(fault),
                next_valid: at,
            };
        }
        at += FRAME_ALIGN;
    }
    Tail::Torn(fault)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Op, Record};

    fn txn(name: &str) -> Txn {
        Txn {
            ops: vec![Op::DeleteBucket {
                name: name.to_owned(),
            }],
        }
    }

    #[test]
    fn frame_round_trips_and_is_aligned() {
        // Encodes two frames back to back and checks both decode to what was written, start on
        // 16-byte boundaries and have the documented length.
        let mut buf = Vec::new();
        let a = encode_frame(&mut buf, 7, &txn("alpha")).unwrap();
        let b = encode_frame(&mut buf, 8, &txn("a-much-longer-bucket-name")).unwrap();
        assert_eq!(a % FRAME_ALIGN, 0);
        assert_eq!(buf.len(), a + b);
        let first = check_frame(&buf, 0).unwrap();
        assert_eq!(first.lsn, 7);
        assert_eq!(first.end, a);
        let second = check_frame(&buf, first.end).unwrap();
        assert_eq!(second.lsn, 8);
        assert_eq!(second.end, buf.len());
        assert_eq!(
            first.end,
            frame_len(first.payload_end - first.payload_start)
        );
        let mut aligned = rkyv::util::AlignedVec::<16>::new();
        aligned.extend_from_slice(&buf);
        let rec = Record::decode(
            second.version,
            &aligned[second.payload_start..second.payload_end],
        )
        .unwrap();
        assert_eq!(rec.into_current(), txn("a-much-longer-bucket-name"));
    }

    #[test]
    fn each_damage_is_detected() {
        // Flips one byte in each region of a frame and checks that the matching fault is found.
        let mut buf = Vec::new();
        encode_frame(&mut buf, 1, &txn("bucket")).unwrap();
        let cases = [
            (0, FrameFault::BadMagic),
            (5, FrameFault::BadHeaderCrc),
            (17, FrameFault::BadCrc),
            (40, FrameFault::BadCrc),
        ];
        for (at, want) in cases {
            let mut bad = buf.clone();
            bad[at] ^= 0x40;
            assert_eq!(check_frame(&bad, 0), Err(want), "byte {at}");
        }
        assert_eq!(
            check_frame(&buf[..buf.len() - 1], 0),
            Err(FrameFault::Incomplete)
        );
        let mut padded = buf.clone();
        padded[26] = 1;
        assert!(matches!(check_frame(&padded, 0), Err(FrameFault::BadCrc)));
    }

    #[test]
    fn tail_classification() {
        // Checks zero tails and torn tails are told apart from damage followed by a valid frame.
        let mut buf = Vec::new();
        let first = encode_frame(&mut buf, 1, &txn("one")).unwrap();
        encode_frame(&mut buf, 2, &txn("two")).unwrap();
        let mut zeroes = buf[..first].to_vec();
        zeroes.extend_from_slice(&[0u8; 64]);
        assert_eq!(
            classify_tail(&zeroes, first, Some(FrameFault::BadMagic)),
            Tail::Zeroes
        );
        let torn = &buf[..buf.len() - 5];
        assert_eq!(
            classify_tail(torn, first, Some(FrameFault::Incomplete)),
            Tail::Torn(FrameFault::Incomplete)
        );
        let mut damaged = buf.clone();
        damaged[3] ^= 1;
        assert!(matches!(
            classify_tail(&damaged, 0, Some(FrameFault::BadMagic)),
            Tail::Corrupt { next_valid, .. } if next_valid == first
        ));
    }
}
