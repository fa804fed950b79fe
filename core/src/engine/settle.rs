//! Shards that finish in the background: a PUT is answered once its write quorum of shards is
//! durable and the others finished or had as long again (5 ms to 1 s, so healthy sites that
//! finish together cost nothing here); shards slower than that keep finishing (their final write, fsync and rename, or their
//! S3 response) in a task of their own. Such a shard is recorded `Pending` and queued for
//! repair like a failed one, so a crash loses nothing; this table tells the repair worker
//! (same core) whether to wait for the write, just mark the shard durable, or rebuild it.
//!
//! ```text
//!  put: quorum durable ─► record (late shards Pending) + repair entries ─► 200
//!        └─ late shards ─► settle task ─► Settling: InFlight ─► Finished(ok)
//!  repair worker: InFlight → retry later; Finished(true) → mark durable; else → rebuild
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tessera_meta::BackendId;

/// How long a finished entry nobody asked about is kept (its PUT failed after the quorum, so
/// no repair entry will ever look for it).
pub const FORGET_AFTER: Duration = Duration::from_secs(600);

/// Where a background shard write stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    /// Still being written.
    InFlight,
    /// Done: true when the shard became durable.
    Finished(bool),
}

/// One core's table of background shard writes, by backend id.
#[derive(Clone, Debug, Default)]
pub struct Settling {
    table: Rc<RefCell<HashMap<BackendId, (Settle, Instant)>>>,
}

impl Settling {
    /// Records that `id` is still being written.
    pub fn start(&self, id: BackendId) {
        self.table
            .borrow_mut()
            .insert(id, (Settle::InFlight, Instant::now()));
    }

    /// Records how the write of `id` ended.
    pub fn finish(&self, id: BackendId, durable: bool) {
        self.table
            .borrow_mut()
            .insert(id, (Settle::Finished(durable), Instant::now()));
    }

    /// Where `id` stands, if it was written in the background (since this process started).
    /// A finished entry is removed by this call: the caller acts on it once.
    #[must_use]
    pub fn take(&self, id: &BackendId) -> Option<Settle> {
        let mut table = self.table.borrow_mut();
        match table.get(id).map(|(settle, _)| *settle) {
            Some(Settle::InFlight) => Some(Settle::InFlight),
            Some(finished) => {
                table.remove(id);
                Some(finished)
            }
            None => None,
        }
    }

    /// Drops finished entries older than [`FORGET_AFTER`].
    pub fn forget_old(&self) {
        let now = Instant::now();
        self.table.borrow_mut().retain(|_, (settle, at)| {
            *settle == Settle::InFlight || now.duration_since(*at) < FORGET_AFTER
        });
    }

    /// Writes still in flight.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.table
            .borrow()
            .values()
            .filter(|(settle, _)| *settle == Settle::InFlight)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_write_is_reported_once() {
        let settling = Settling::default();
        let id = [7; 16];
        assert_eq!(settling.take(&id), None);
        settling.start(id);
        assert_eq!(settling.take(&id), Some(Settle::InFlight));
        assert_eq!(
            settling.take(&id),
            Some(Settle::InFlight),
            "in flight stays"
        );
        assert_eq!(settling.in_flight(), 1);
        settling.finish(id, true);
        assert_eq!(settling.in_flight(), 0);
        assert_eq!(settling.take(&id), Some(Settle::Finished(true)));
        assert_eq!(settling.take(&id), None);
        settling.start(id);
        settling.finish(id, false);
        settling.forget_old();
        assert_eq!(
            settling.take(&id),
            Some(Settle::Finished(false)),
            "recent kept"
        );
    }
}
