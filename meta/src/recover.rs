//! Recovery: load a snapshot, replay log bytes, decide what a bad frame means. Pure.
//!
//! ```text
//!  snap.G (valid, ends in SnapshotEnd) ──► Index at lsn L
//!  log.G, log.G+1, ... frames lsn L+1, L+2, ... ──apply──► Index
//!      first bad frame ─┬─ only zeroes / torn, nothing valid after ─► truncate, report
//!                       └─ a valid frame after it (or a valid frame out of sequence)
//!                              ─► MetaError::Corrupt, unless RecoveryMode::TruncateCorruption
//! ```

use std::time::Duration;

use crate::frame::{check_frame, classify_tail, FrameFault, Tail};
use crate::index::Index;
use crate::record::{Op, Record};
use crate::MetaError;

/// What to do when recovery finds damage followed by valid frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RecoveryMode {
    /// Refuse to open (the default): an operator must look.
    #[default]
    Strict,
    /// Truncate at the first bad frame anyway, losing what follows (reported).
    TruncateCorruption,
}

/// One cut made by recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    pub file: String,
    /// The file's new length.
    pub offset: u64,
    /// Bytes dropped.
    pub bytes: u64,
    /// True when valid frames were dropped (damage), false for a torn or zero tail.
    pub corrupt: bool,
    pub reason: String,
}

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The snapshot file loaded, if any.
    pub snapshot: Option<String>,
    /// Ops loaded from the snapshot.
    pub snapshot_ops: u64,
    /// Log frames replayed.
    pub frames: u64,
    /// Ops replayed from the log.
    pub ops: u64,
    /// The sequence number of the last frame applied.
    pub last_lsn: u64,
    /// Sum of [`Truncation::bytes`].
    pub truncated_bytes: u64,
    pub truncations: Vec<Truncation>,
    pub elapsed: Duration,
}

/// The result of replaying one log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogReplay {
    /// Bytes of valid frames: the file's length after recovery.
    pub valid_len: usize,
    pub frames: u64,
    pub ops: u64,
    pub truncation: Option<Truncation>,
}

fn decode_apply(index: &mut Index, version: u16, payload: &[u8]) -> Result<u64, MetaError> {
    let txn = Record::decode(version, payload)?.into_current();
    let ops = txn.ops.len() as u64;
    for op in txn.ops {
        index.apply(op);
    }
    Ok(ops)
}

/// Replays the frames of one log file into `index`, expecting sequence numbers to continue from
/// `last_lsn` (updated as frames apply).
pub fn replay_log(
    index: &mut Index,
    file: &str,
    bytes: &[u8],
    last_lsn: &mut u64,
    mode: RecoveryMode,
) -> Result<LogReplay, MetaError> {
    let mut off = 0;
    let mut frames = 0;
    let mut ops = 0;
    let fault: Option<FrameFault> = loop {
        if off == bytes.len() {
            return Ok(LogReplay {
                valid_len: off,
                frames,
                ops,
                truncation: None,
            });
        }
        match check_frame(bytes, off) {
            Ok(frame) if frame.lsn == *last_lsn + 1 => {
                let payload = &bytes[frame.payload_start..frame.payload_end];
                match decode_apply(index, frame.version, payload) {
                    Ok(n) => ops += n,
                    Err(e) => {
                        if mode == RecoveryMode::Strict {
                            return Err(MetaError::Corrupt {
                                file: file.to_owned(),
                                offset: off as u64,
                                detail: e.to_string(),
                            });
                        }
                        break None;
                    }
                }
                *last_lsn = frame.lsn;
                frames += 1;
                off = frame.end;
            }
            Ok(_) => break None,
            Err(fault) => break Some(fault),
        }
    };
    let tail = classify_tail(bytes, off, fault);
    let (corrupt, reason) = match tail {
        Tail::Clean => unreachable!("off < len here"),
        Tail::Zeroes => (false, "zero-filled tail".to_owned()),
        Tail::Torn(f) => (false, format!("torn tail ({f:?})")),
        Tail::Corrupt { fault, next_valid } => {
            let detail = match fault {
                Some(f) => format!("{f:?}; a valid frame follows at byte {next_valid}"),
                None => format!("frame out of sequence (expected lsn {})", *last_lsn + 1),
            };
            if mode == RecoveryMode::Strict {
                return Err(MetaError::Corrupt {
                    file: file.to_owned(),
                    offset: off as u64,
                    detail,
                });
            }
            (true, detail)
        }
    };
    Ok(LogReplay {
        valid_len: off,
        frames,
        ops,
        truncation: Some(Truncation {
            file: file.to_owned(),
            offset: off as u64,
            bytes: (bytes.len() - off) as u64,
            corrupt,
            reason,
        }),
    })
}

/// A snapshot that loaded completely.
#[derive(Debug)]
pub struct LoadedSnapshot {
    pub index: Index,
    /// The last log sequence number the snapshot covers.
    pub lsn: u64,
    pub ops: u64,
}

/// Loads a snapshot file. Returns `None` unless every frame is valid, frames are numbered
/// 1, 2, ... and the last one is a `SnapshotEnd` that counts the others, followed by nothing
/// but zero bytes: an interrupted snapshot write is simply not a snapshot.
#[must_use]
pub fn load_snapshot(bytes: &[u8]) -> Option<LoadedSnapshot> {
    let mut index = Index::new();
    let mut off = 0;
    let mut frames = 0u64;
    let mut ops = 0u64;
    while off < bytes.len() {
        let frame = check_frame(bytes, off).ok()?;
        if frame.lsn != frames + 1 {
            return None;
        }
        let txn = Record::decode(
            frame.version,
            &bytes[frame.payload_start..frame.payload_end],
        )
        .ok()?
        .into_current();
        off = frame.end;
        if let [Op::SnapshotEnd {
            frames: counted,
            lsn,
            queue_id_max,
        }] = txn.ops[..]
        {
            // Zero bytes after the end marker are space a file system allocated, not data.
            if counted != frames || bytes[off..].iter().any(|&b| b != 0) {
                return None;
            }
            index.apply(Op::SnapshotEnd {
                frames: counted,
                lsn,
                queue_id_max,
            });
            return Some(LoadedSnapshot { index, lsn, ops });
        }
        frames += 1;
        ops += txn.ops.len() as u64;
        for op in txn.ops {
            index.apply(op);
        }
    }
    None
}

/// Ops per snapshot frame: large enough that frame overhead is negligible, small enough that a
/// frame stays far below [`crate::FRAME_PAYLOAD_MAX`] for typical records.
pub const SNAPSHOT_OPS_PER_FRAME: usize = 64;

/// Serializes `index` (the state at log sequence number `lsn`) as a snapshot file: frames of up
/// to [`SNAPSHOT_OPS_PER_FRAME`] ops numbered from 1, then a `SnapshotEnd` frame. `size_hint`
/// is the expected size (the previous snapshot's), used to reserve the buffer once.
pub fn encode_snapshot(index: &Index, lsn: u64, size_hint: usize) -> Result<Vec<u8>, MetaError> {
    // Sized up front: growing a buffer of tens of MiB by doubling copies it and faults in fresh
    // pages several times over.
    let mut out = Vec::with_capacity(size_hint);
    let mut frames = 0u64;
    let mut batch = Vec::with_capacity(SNAPSHOT_OPS_PER_FRAME);
    let mut failed = None;
    let flush = |batch: &mut Vec<Op>, out: &mut Vec<u8>, frames: &mut u64| {
        let txn = crate::record::Txn {
            ops: std::mem::take(batch),
        };
        *frames += 1;
        crate::frame::encode_frame(out, *frames, &txn).map(|_| ())
    };
    index.for_each_op(|op| {
        if failed.is_some() {
            return;
        }
        batch.push(op);
        if batch.len() == SNAPSHOT_OPS_PER_FRAME {
            if let Err(e) = flush(&mut batch, &mut out, &mut frames) {
                failed = Some(e);
            }
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    if !batch.is_empty() {
        flush(&mut batch, &mut out, &mut frames)?;
    }
    let end = crate::record::Txn {
        ops: vec![Op::SnapshotEnd {
            frames,
            lsn,
            queue_id_max: index.queue_id_max(),
        }],
    };
    crate::frame::encode_frame(&mut out, frames + 1, &end)?;
    Ok(out)
}
