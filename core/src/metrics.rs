//! Counters each core updates for itself and the admin endpoint sums on demand.
//!
//! Each core owns one cache-line-aligned slot and is its only writer, so updates are plain
//! relaxed stores without contention; readers (the admin API) tolerate slightly stale sums.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counters of one core.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct CoreMetrics {
    /// Connections accepted.
    pub connections_accepted: AtomicU64,
    /// Connections currently open.
    pub connections_open: AtomicU64,
    /// Connections refused because `connections_per_core_max` was reached.
    pub connections_refused: AtomicU64,
    /// Requests answered.
    pub requests: AtomicU64,
    /// Requests answered with a 4xx status.
    pub responses_4xx: AtomicU64,
    /// Requests answered with a 5xx status.
    pub responses_5xx: AtomicU64,
    /// Request body bytes received (decoded payload).
    pub bytes_in: AtomicU64,
    /// Response body bytes sent.
    pub bytes_out: AtomicU64,
    /// Batches the core's MD5 lanes hashed (see `engine::md5_lanes`).
    pub md5_batches: AtomicU64,
    /// Stripes those batches held: jobs ÷ batches is how many uploads shared the lanes.
    pub md5_jobs: AtomicU64,
    /// Stripe chunks hashed in SIMD lanes rather than one stream at a time.
    pub md5_chunks_in_lanes: AtomicU64,
    /// Shards the repair worker re-created.
    pub shards_repaired: AtomicU64,
    /// Repair attempts that failed (the entry stays queued and is retried).
    pub repair_failures: AtomicU64,
    /// Entries in the core's repair queue, as of the worker's last step.
    pub repair_queue: AtomicU64,
    /// Shards the purge worker deleted at their sites (or found gone).
    pub shards_purged: AtomicU64,
    /// Entries in the core's purge queue, as of the worker's last step.
    pub purge_queue: AtomicU64,
    /// Orphaned shards the scrub deleted.
    pub orphans_deleted: AtomicU64,
    /// Part-index copies the scrub wrote to sites that lacked them.
    pub part_index_copies_written: AtomicU64,
    /// Shards whose manifest footer did not read in the scrub's last pass (kept).
    pub unreadable_footers: AtomicU64,
}

/// One core's metrics slot, held by that core's background workers (which serve no request
/// and so have no request context).
#[derive(Debug, Clone)]
pub struct Slot {
    all: Arc<[CoreMetrics]>,
    core: usize,
}

impl Slot {
    /// Core `core`'s slot of `all`.
    #[must_use]
    pub fn new(all: Arc<[CoreMetrics]>, core: usize) -> Self {
        assert!(core < all.len());
        Slot { all, core }
    }
}

impl std::ops::Deref for Slot {
    type Target = CoreMetrics;

    fn deref(&self) -> &CoreMetrics {
        &self.all[self.core]
    }
}

impl CoreMetrics {
    /// Adds `n` to `counter` (single writer per core).
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets gauge `gauge` to `value`.
    pub fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Ordering::Relaxed);
    }

    /// Subtracts `n` from `counter`.
    pub fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }

    /// Copies the core's MD5 lane counts `(batches, jobs, chunks in lanes)` (kept in plain cells
    /// by the engine) into the metrics.
    pub fn mirror_md5_lanes(&self, (batches, jobs, in_lanes): (u64, u64, u64)) {
        self.md5_batches.store(batches, Ordering::Relaxed);
        self.md5_jobs.store(jobs, Ordering::Relaxed);
        self.md5_chunks_in_lanes.store(in_lanes, Ordering::Relaxed);
    }

    /// Records the status of one answered request.
    pub fn record_status(&self, status: u16) {
        Self::add(&self.requests, 1);
        if (400..500).contains(&status) {
            Self::add(&self.responses_4xx, 1);
        } else if status >= 500 {
            Self::add(&self.responses_5xx, 1);
        }
    }
}

/// Renders all cores' counters in the Prometheus text format, one series per core.
#[must_use]
pub fn render_prometheus(cores: &[CoreMetrics]) -> String {
    type Field = fn(&CoreMetrics) -> &AtomicU64;
    let mut out = String::new();
    let series: [(&str, &str, Field); 19] = [
        ("tessera_connections_accepted_total", "counter", |m| {
            &m.connections_accepted
        }),
        ("tessera_connections_open", "gauge", |m| &m.connections_open),
        ("tessera_connections_refused_total", "counter", |m| {
            &m.connections_refused
        }),
        ("tessera_requests_total", "counter", |m| &m.requests),
        ("tessera_responses_4xx_total", "counter", |m| {
            &m.responses_4xx
        }),
        ("tessera_responses_5xx_total", "counter", |m| {
            &m.responses_5xx
        }),
        ("tessera_body_bytes_in_total", "counter", |m| &m.bytes_in),
        ("tessera_body_bytes_out_total", "counter", |m| &m.bytes_out),
        ("tessera_md5_batches_total", "counter", |m| &m.md5_batches),
        ("tessera_md5_jobs_total", "counter", |m| &m.md5_jobs),
        ("tessera_md5_chunks_in_lanes_total", "counter", |m| {
            &m.md5_chunks_in_lanes
        }),
        ("tessera_shards_repaired_total", "counter", |m| {
            &m.shards_repaired
        }),
        ("tessera_repair_failures_total", "counter", |m| {
            &m.repair_failures
        }),
        ("tessera_repair_queue_entries", "gauge", |m| &m.repair_queue),
        ("tessera_shards_purged_total", "counter", |m| {
            &m.shards_purged
        }),
        ("tessera_purge_queue_entries", "gauge", |m| &m.purge_queue),
        ("tessera_orphans_deleted_total", "counter", |m| {
            &m.orphans_deleted
        }),
        ("tessera_part_index_copies_written_total", "counter", |m| {
            &m.part_index_copies_written
        }),
        ("tessera_scrub_unreadable_footers", "gauge", |m| {
            &m.unreadable_footers
        }),
    ];
    for (name, kind, field) in series {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (core, metrics) in cores.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}{{core=\"{core}\"}} {}",
                field(metrics).load(Ordering::Relaxed)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each core's counters appear as their own series with the values recorded.
    #[test]
    fn renders_per_core_series() {
        let cores = [CoreMetrics::default(), CoreMetrics::default()];
        cores[1].record_status(404);
        cores[1].record_status(200);
        let text = render_prometheus(&cores);
        assert!(
            text.contains("tessera_requests_total{core=\"1\"} 2"),
            "{text}"
        );
        assert!(text.contains("tessera_responses_4xx_total{core=\"1\"} 1"));
        assert!(text.contains("tessera_requests_total{core=\"0\"} 0"));
        let slot = Slot::new(Arc::from(cores), 1);
        CoreMetrics::add(&slot.shards_repaired, 3);
        CoreMetrics::set(&slot.repair_queue, 7);
        let text = render_prometheus(&slot.all);
        assert!(text.contains("tessera_shards_repaired_total{core=\"1\"} 3"));
        assert!(text.contains("tessera_repair_queue_entries{core=\"1\"} 7"));
        assert!(text.contains("# TYPE tessera_repair_queue_entries gauge"));
    }
}
