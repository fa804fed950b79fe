//! The purge worker: deletes the shards of overwritten and deleted objects at their sites.
//!
//! ```text
//!  this core's purge queue ─► page of ≤ PURGE_BATCH_MAX entries ─► grouped by site
//!     ─► one delete_many per site (S3: one DeleteObjects request), all sites at once
//!     ─► one metadata commit dequeuing every entry whose shard is gone ─► next page
//! ```
//!
//! Each core drains its own purge queue (entries are committed to its metadata log when the
//! object record that replaced them is durable). Deletes are batched per site: a page of a
//! thousand shards costs one request per site and one log write + fsync, instead of one
//! request and one fsync per shard. So the worker holds at most one connection per site of
//! the core's pool at a time, and leaves the log's group commit to foreground requests.
//!
//! An entry leaves the queue only once its site confirmed the delete (or the shard was already
//! gone); a failing site keeps its entries for a later step. The worker never deletes anything
//! a request waits for: a DELETE or an overwrite is answered as soon as its metadata commits.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::join_all;
use tessera_meta::{FileStorage, MetaStore, Op, QueueEntry, QueueKind};

use super::{backend_key, Engine};
use crate::metrics::{CoreMetrics, Slot};
use crate::site::{SiteError, DELETE_BATCH_MAX};

/// Entries handled per step: one `DeleteObjects` request per site, at most the S3 batch limit
/// of 1000 keys even if every entry of the page is on one site.
pub const PURGE_BATCH_MAX: usize = 1000;
const _: () = assert!(PURGE_BATCH_MAX <= DELETE_BATCH_MAX);
/// Pause between steps when the queue is empty or a step made no progress.
pub const PURGE_IDLE: Duration = Duration::from_millis(500);

/// Runs forever on this core (stopped with the runtime).
///
/// The pages walk the queue in id order and start over at its end, so entries of a site that
/// keeps failing do not hold back the entries queued behind them.
pub async fn run(engine: Rc<Engine>, store: MetaStore<FileStorage>, metrics: Slot) {
    let mut after_id = 0;
    loop {
        let (progressed, last_id) = step(&engine, &store, after_id, &metrics).await;
        after_id = last_id.unwrap_or(0);
        if !progressed && after_id == 0 {
            monoio::time::sleep(PURGE_IDLE).await;
        }
    }
}

/// One batch of the entries with ids above `after_id`: whether at least one entry was
/// completed, and the last id of a full page (`None` at the end of the queue).
pub async fn step(
    engine: &Engine,
    store: &MetaStore<FileStorage>,
    after_id: u64,
    metrics: &CoreMetrics,
) -> (bool, Option<u64>) {
    let queued = store.with_index(|index| index.queue_len(QueueKind::Purge));
    CoreMetrics::set(&metrics.purge_queue, queued as u64);
    let entries = store.queue_page(QueueKind::Purge, after_id, PURGE_BATCH_MAX);
    let last_id = (entries.len() == PURGE_BATCH_MAX)
        .then(|| entries.last().map(|entry| entry.id))
        .flatten();
    (complete(engine, store, &entries, metrics).await, last_id)
}

/// Deletes the shards of `entries` and dequeues those that are gone; true when any was.
async fn complete(
    engine: &Engine,
    store: &MetaStore<FileStorage>,
    entries: &[QueueEntry],
    metrics: &CoreMetrics,
) -> bool {
    if entries.is_empty() {
        return false;
    }
    let mut done: Vec<u64> = Vec::with_capacity(entries.len());
    let mut by_site: HashMap<usize, Vec<&QueueEntry>> = HashMap::new();
    for entry in entries {
        let site = usize::from(entry.site);
        if site < engine.sites.len() {
            by_site.entry(site).or_default().push(entry);
        } else {
            // The site was removed from the configuration: nothing left to delete there.
            done.push(entry.id);
        }
    }
    let deleted = join_all(
        by_site
            .into_iter()
            .map(|(site, entries)| delete_at_site(engine, site, entries)),
    )
    .await;
    done.extend(deleted.into_iter().flatten());
    if done.is_empty() {
        return false;
    }
    let ops: Vec<Op> = done
        .into_iter()
        .map(|id| Op::DeleteQueue {
            kind: QueueKind::Purge,
            id,
        })
        .collect();
    // A failed commit leaves the entries queued: the next step deletes them again, which is
    // harmless (deleting a missing shard succeeds).
    let count = ops.len() as u64;
    let committed = store.commit(ops).await.is_ok();
    if committed {
        CoreMetrics::add(&metrics.shards_purged, count);
    }
    committed
}

/// Deletes the shards of `entries` (all on `site`) in one batch; returns the ids of the entries
/// whose shard is gone.
async fn delete_at_site(engine: &Engine, site: usize, entries: Vec<&QueueEntry>) -> Vec<u64> {
    assert!(entries.len() <= DELETE_BATCH_MAX);
    let keys: Vec<String> = entries
        .iter()
        .map(|entry| backend_key(&entry.backend_id))
        .collect();
    match engine.sites[site].delete_many(&keys).await {
        Ok(failed) => {
            let failed: std::collections::HashSet<&str> = failed
                .iter()
                .filter(|(_, err)| *err != SiteError::NotFound)
                .map(|(key, _)| key.as_str())
                .collect();
            entries
                .iter()
                .zip(&keys)
                .filter(|(_, key)| !failed.contains(key.as_str()))
                .map(|(entry, _)| entry.id)
                .collect()
        }
        // The backend bucket itself is gone: so are the shards.
        Err(SiteError::NotFound) => entries.iter().map(|entry| entry.id).collect(),
        Err(_) => Vec::new(),
    }
}
