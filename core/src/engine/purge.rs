//! The purge worker: deletes the shards of overwritten and deleted objects at their sites.
//!
//! Each core drains its own purge queue (entries are committed to its metadata log when the
//! object record that replaced them is durable), in small batches at a low rate so that
//! foreground requests keep the core. An entry leaves the queue only once its site confirmed
//! the delete (or the shard was already gone); a failing site keeps its entries for later.

use std::rc::Rc;
use std::time::Duration;

use tessera_meta::{FileStorage, MetaStore, QueueKind};

use super::{backend_key, Engine};
use crate::site::SiteError;

/// Entries handled per step.
pub const PURGE_BATCH_MAX: usize = 64;
/// Pause between steps when the queue is empty or a step made no progress.
pub const PURGE_IDLE: Duration = Duration::from_millis(500);

/// Runs forever on this core (stopped with the runtime).
pub async fn run(engine: Rc<Engine>, store: MetaStore<FileStorage>) {
    loop {
        let progressed = step(&engine, &store).await;
        if !progressed {
            monoio::time::sleep(PURGE_IDLE).await;
        }
    }
}

/// One batch; true when at least one entry was completed.
pub async fn step(engine: &Engine, store: &MetaStore<FileStorage>) -> bool {
    let entries = store.queue_page(QueueKind::Purge, 0, PURGE_BATCH_MAX);
    let mut progressed = false;
    for entry in entries {
        let Some(site) = engine.sites.get(usize::from(entry.site)) else {
            // The site was removed from the configuration: nothing left to delete there.
            progressed |= store.dequeue(QueueKind::Purge, entry.id).await.is_ok();
            continue;
        };
        match site.delete(&backend_key(&entry.backend_id)).await {
            Ok(()) | Err(SiteError::NotFound) => {
                progressed |= store.dequeue(QueueKind::Purge, entry.id).await.is_ok();
            }
            Err(_) => {}
        }
    }
    progressed
}
