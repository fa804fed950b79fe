//! A crash point for integration tests: with `TESSERA_TEST_CRASH_POINT=before-repair-queue` in
//! the environment, the process aborts at the moment a repair-queue entry is about to be
//! committed, before anything of that commit reaches the log. That is exactly the state a
//! SIGKILL or power cut between an object record's commit and its repair-queue commit leaves
//! (the record durable, its `Pending` shards queued nowhere), which the gateway's sweep must
//! find after a restart.
//!
//! Without the variable (every real deployment) this is one cached boolean test per commit
//! carrying a repair entry. Nothing else is read from the environment by this crate.

use std::sync::OnceLock;

use crate::record::{Op, QueueKind};

/// The environment variable naming the crash point.
pub const CRASH_POINT_ENV: &str = "TESSERA_TEST_CRASH_POINT";
/// Its one recognised value.
pub const BEFORE_REPAIR_QUEUE: &str = "before-repair-queue";

fn armed() -> bool {
    static ARMED: OnceLock<bool> = OnceLock::new();
    *ARMED.get_or_init(|| {
        std::env::var(CRASH_POINT_ENV).is_ok_and(|value| value == BEFORE_REPAIR_QUEUE)
    })
}

/// Whether `ops` would commit a repair-queue entry.
#[must_use]
pub fn queues_repair(ops: &[Op]) -> bool {
    ops.iter()
        .any(|op| matches!(op, Op::PutQueue(entry) if entry.kind == QueueKind::Repair))
}

/// Aborts the process if the crash point is armed and `ops` would queue a repair.
pub fn check(ops: &[Op]) {
    if armed() && queues_repair(ops) {
        eprintln!(
            "{CRASH_POINT_ENV}={BEFORE_REPAIR_QUEUE}: aborting before the repair-queue commit"
        );
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::QueueEntry;

    #[test]
    fn only_repair_entries_trigger() {
        let entry = |kind| {
            Op::PutQueue(QueueEntry {
                kind,
                id: 1,
                site: 0,
                backend_id: [0; 16],
                bucket: "b".into(),
                key: "k".into(),
                version_id: 1,
                shard_index: 0,
                enqueued_ms: 0,
                attempts: 0,
            })
        };
        assert!(queues_repair(&[
            entry(QueueKind::Purge),
            entry(QueueKind::Repair)
        ]));
        assert!(!queues_repair(&[entry(QueueKind::Purge)]));
        assert!(!queues_repair(&[Op::DeleteQueue {
            kind: QueueKind::Repair,
            id: 1
        }]));
        // The variable is not set in unit tests: checking never aborts.
        check(&[entry(QueueKind::Repair)]);
    }
}
