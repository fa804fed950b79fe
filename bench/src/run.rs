//! Phases of a run and the worker threads that execute them.
//!
//! ```text
//!  for each endpoint (one after the other, same settings):
//!    setup (CreateBucket ×buckets) ─► prepare (PUT every object) ─► measured phase ─► cleanup
//!  a phase: N worker threads, one Client each ──► per-worker OpStats ──► merged PhaseResult
//!                    │ every op: Live counters (relaxed atomics)
//!                    ▼
//!           progress line on stderr, once a second
//! ```
//!
//! Workers share only an operation counter, the live counters and the read-only pattern.
//! Latencies go to per-worker histograms merged at the end, so recording costs no contention.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::args::{Endpoint, OpKind, RunConfig, Workload};
use crate::client::{Auth, Client};
use crate::content::{object_size, splitmix64, Pattern};
use crate::error::BenchError;
use crate::histogram::Histogram;

/// How often the progress line is refreshed.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// Distinct error kinds kept per operation; more are folded into "other" so that a storm of
/// unusual errors cannot grow memory.
pub const ERROR_KINDS_MAX: usize = 32;

/// What one operation kind did in one phase.
#[derive(Clone, Debug, Default)]
pub struct OpStats {
    /// Latencies of successful operations, µs.
    pub latency_us: Histogram,
    /// Time to the response head of successful GETs, µs (empty for other operations).
    pub first_byte_us: Histogram,
    /// Successful operations.
    pub ops: u64,
    /// Payload bytes moved by successful operations (PUT sent, GET received).
    pub bytes: u64,
    /// Failed operations.
    pub errors: u64,
    /// Failed operations by [`BenchError::kind`].
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Keys seen in listing pages (list only).
    pub keys_listed: u64,
}

impl OpStats {
    fn merge(&mut self, other: &OpStats) {
        self.latency_us.merge(&other.latency_us);
        self.first_byte_us.merge(&other.first_byte_us);
        self.ops += other.ops;
        self.bytes += other.bytes;
        self.errors += other.errors;
        self.keys_listed += other.keys_listed;
        for (kind, n) in &other.errors_by_kind {
            *self.errors_by_kind.entry(kind.clone()).or_default() += n;
        }
    }

    fn record_error(&mut self, error: &BenchError) {
        self.errors += 1;
        let mut kind = error.kind();
        if !self.errors_by_kind.contains_key(&kind) && self.errors_by_kind.len() >= ERROR_KINDS_MAX
        {
            "other".clone_into(&mut kind);
        }
        *self.errors_by_kind.entry(kind).or_default() += 1;
    }
}

/// The result of one phase against one endpoint.
#[derive(Clone, Debug)]
pub struct PhaseResult {
    /// The endpoint URL.
    pub endpoint: String,
    /// `setup`, `prepare`, the workload name, or `cleanup`.
    pub phase: String,
    /// Wall time from the first request to the last response.
    pub elapsed: Duration,
    /// Per operation kind, indexed by [`OpKind::index`].
    pub ops: [OpStats; 5],
}

impl PhaseResult {
    /// Failed operations of every kind.
    #[must_use]
    pub fn errors(&self) -> u64 {
        self.ops.iter().map(|s| s.errors).sum()
    }
}

/// What a phase does.
#[derive(Clone, Copy, Debug)]
enum Plan {
    /// Operation `kind` on object `seq % objects` for each sequence number.
    Sequence(OpKind),
    /// Listing pages; each worker pages through its bucket and starts over, or stops after
    /// one full pass when `single_pass`.
    List { single_pass: bool },
    /// Weighted random operations on the worker's own keys.
    Mixed([u32; 5]),
}

struct Live {
    ops: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    issued: AtomicU64,
    done: AtomicBool,
}

struct Phase<'a> {
    config: &'a RunConfig,
    endpoint: &'a Endpoint,
    auth: &'a Auth,
    pattern: &'a Pattern,
    plan: Plan,
    label: &'a str,
    ops_max: Option<u64>,
    /// Stop issuing operations after this long.
    duration: Option<Duration>,
    /// The objects exist when the phase starts (mixed: all keys start present).
    objects_exist: bool,
}

/// Runs every phase against every endpoint and returns the results in order.
pub fn run(config: &RunConfig) -> Result<Vec<PhaseResult>, BenchError> {
    let pattern = Pattern::new();
    let auth = Auth {
        access_key: config.access_key.clone(),
        secret_key: config.secret_key.clone(),
        region: config.region.clone(),
    };
    let mut results = Vec::new();
    for endpoint in &config.endpoints {
        if config.setup {
            let mut client = Client::new(
                &endpoint.authority,
                &auth,
                &pattern,
                config.mode,
                config.chunk_bytes,
            );
            for bucket in config.bucket_names() {
                client.create_bucket(&bucket).map_err(|e| {
                    BenchError::Setup(format!("{}: CreateBucket {bucket}: {e}", endpoint.url))
                })?;
            }
        }
        let base = Phase {
            config,
            endpoint,
            auth: &auth,
            pattern: &pattern,
            plan: Plan::Sequence(OpKind::Put),
            label: "prepare",
            ops_max: Some(config.objects),
            duration: None,
            objects_exist: false,
        };
        if config.prepare && config.workload.needs_objects() {
            let prepared = run_phase(&base);
            if prepared.errors() > 0 {
                eprintln!(
                    "warning: {} of {} prepare PUTs failed against {}",
                    prepared.errors(),
                    config.objects,
                    endpoint.url
                );
            }
            results.push(prepared);
        }
        let plan = match config.workload {
            // With neither a duration nor an operation count, each worker lists its bucket
            // once, so the keys listed add up to the objects per bucket × workers.
            Workload::Single(OpKind::List) => Plan::List {
                single_pass: config.duration.is_none() && config.ops.is_none(),
            },
            Workload::Single(kind) => Plan::Sequence(kind),
            Workload::Mixed(weights) => Plan::Mixed(weights),
        };
        let mut ops_max = match (config.duration, plan) {
            (Some(_), _) | (None, Plan::List { .. }) => config.ops,
            (None, _) => Some(config.ops.unwrap_or(config.objects)),
        };
        if matches!(plan, Plan::Sequence(OpKind::Delete)) {
            // Each object can be deleted once.
            ops_max = Some(ops_max.map_or(config.objects, |n| n.min(config.objects)));
        }
        let measured = Phase {
            plan,
            label: config.workload.name(),
            ops_max,
            duration: config.duration,
            objects_exist: config.workload.needs_objects(),
            ..base
        };
        results.push(run_phase(&measured));
        if config.cleanup {
            let cleanup = Phase {
                plan: Plan::Sequence(OpKind::Delete),
                label: "cleanup",
                ops_max: Some(config.objects),
                ..base
            };
            results.push(run_phase(&cleanup));
        }
    }
    Ok(results)
}

fn run_phase(phase: &Phase<'_>) -> PhaseResult {
    let live = Live {
        ops: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        issued: AtomicU64::new(0),
        done: AtomicBool::new(false),
    };
    let stop_at = phase.duration.map(|d| Instant::now() + d);
    let started = Instant::now();
    let mut per_worker: Vec<[OpStats; 5]> = Vec::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..phase.config.concurrency)
            .map(|w| {
                let live = &live;
                scope.spawn(move || worker(phase, w, stop_at, live))
            })
            .collect();
        let progress = phase.config.progress.then(|| {
            let live = &live;
            scope.spawn(move || progress_loop(phase, started, live))
        });
        for handle in handles {
            // A worker thread only panics on a violated assertion; propagate it.
            per_worker.push(handle.join().expect("worker thread panicked"));
        }
        live.done.store(true, Ordering::Relaxed);
        if let Some(progress) = progress {
            // The progress loop only formats and writes to stderr; a panic there is a bug.
            progress.join().expect("progress thread panicked");
        }
    });
    let elapsed = started.elapsed();
    let mut ops: [OpStats; 5] = Default::default();
    for stats in &per_worker {
        for (total, one) in ops.iter_mut().zip(stats) {
            total.merge(one);
        }
    }
    PhaseResult {
        endpoint: phase.endpoint.url.clone(),
        phase: phase.label.to_owned(),
        elapsed,
        ops,
    }
}

fn progress_loop(phase: &Phase<'_>, started: Instant, live: &Live) {
    let tty = std::io::stderr().is_terminal();
    let mut last_bytes = 0u64;
    let mut last_ops = 0u64;
    let mut last_tick = started;
    let mut next_tick = started + PROGRESS_INTERVAL;
    while !live.done.load(Ordering::Relaxed) {
        // Sleep in short steps so the line stops promptly when the phase ends.
        std::thread::sleep(Duration::from_millis(50));
        let now = Instant::now();
        if now < next_tick {
            continue;
        }
        next_tick += PROGRESS_INTERVAL;
        let bytes = live.bytes.load(Ordering::Relaxed);
        let ops = live.ops.load(Ordering::Relaxed);
        let errors = live.errors.load(Ordering::Relaxed);
        let window = now.duration_since(last_tick).as_secs_f64();
        let text = format!(
            "[{} {}] {:6.1}s {:10.1} MiB/s {:10.0} ops/s  total {} ops, {} errors",
            phase.endpoint.url,
            phase.label,
            now.duration_since(started).as_secs_f64(),
            (bytes - last_bytes) as f64 / window / f64::from(1u32 << 20),
            (ops - last_ops) as f64 / window,
            ops,
            errors,
        );
        last_bytes = bytes;
        last_ops = ops;
        last_tick = now;
        let mut stderr = std::io::stderr().lock();
        if tty {
            let _ = write!(stderr, "\r{text}\x1b[K");
        } else {
            let _ = writeln!(stderr, "{text}");
        }
        let _ = stderr.flush();
    }
    if tty && started.elapsed() >= PROGRESS_INTERVAL {
        let _ = writeln!(std::io::stderr());
    }
}

/// The keys a mixed-workload worker owns, split by whether they exist now.
struct OwnedKeys {
    present: Vec<u64>,
    absent: Vec<u64>,
}

impl OwnedKeys {
    fn new(worker: usize, workers: usize, objects: u64, exist: bool) -> Self {
        let owned: Vec<u64> = (worker as u64..objects).step_by(workers).collect();
        if exist {
            OwnedKeys {
                present: owned,
                absent: Vec::new(),
            }
        } else {
            OwnedKeys {
                present: Vec::new(),
                absent: owned,
            }
        }
    }
}

fn pick(rng: &mut u64, len: usize) -> usize {
    assert!(len > 0);
    (splitmix64(rng) % len as u64) as usize
}

fn choose_kind(rng: &mut u64, weights: &[u32; 5]) -> OpKind {
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    let mut roll = splitmix64(rng) % total;
    for kind in OpKind::ALL {
        let w = u64::from(weights[kind.index()]);
        if roll < w {
            return kind;
        }
        roll -= w;
    }
    unreachable!("roll < total weight")
}

fn worker(phase: &Phase<'_>, w: usize, stop_at: Option<Instant>, live: &Live) -> [OpStats; 5] {
    let config = phase.config;
    let mut client = Client::new(
        &phase.endpoint.authority,
        phase.auth,
        phase.pattern,
        config.mode,
        config.chunk_bytes,
    );
    let mut stats: [OpStats; 5] = Default::default();
    let mut rng = config.seed ^ (w as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut owned = match phase.plan {
        Plan::Mixed(_) => Some(OwnedKeys::new(
            w,
            config.concurrency,
            config.objects,
            phase.objects_exist,
        )),
        _ => None,
    };
    let list_bucket = config.bucket_of(w as u64);
    let mut list_token: Option<String> = None;
    let mut listed_once = false;
    loop {
        if stop_at.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        let seq = live.issued.fetch_add(1, Ordering::Relaxed);
        if phase.ops_max.is_some_and(|max| seq >= max) {
            break;
        }
        let (kind, index) = match (phase.plan, owned.as_mut()) {
            (Plan::Sequence(kind), _) => (kind, seq % config.objects),
            (Plan::List { single_pass }, _) => {
                if single_pass && listed_once {
                    break;
                }
                (OpKind::List, 0)
            }
            (Plan::Mixed(weights), Some(keys)) => {
                let mut kind = choose_kind(&mut rng, &weights);
                if matches!(kind, OpKind::Get | OpKind::Head | OpKind::Delete)
                    && keys.present.is_empty()
                {
                    kind = OpKind::Put;
                }
                let index = match kind {
                    OpKind::Put if !keys.absent.is_empty() => {
                        keys.absent[pick(&mut rng, keys.absent.len())]
                    }
                    OpKind::Put | OpKind::Get | OpKind::Head | OpKind::Delete => {
                        if keys.present.is_empty() {
                            // A worker that owns no key (more workers than objects) idles.
                            break;
                        }
                        keys.present[pick(&mut rng, keys.present.len())]
                    }
                    OpKind::List => 0,
                };
                (kind, index)
            }
            (Plan::Mixed(_), None) => unreachable!("mixed workers own keys"),
        };
        let bucket = config.bucket_of(index);
        let key = config.key_of(index);
        let size = object_size(config.size, config.seed, index);
        let started = Instant::now();
        let result = match kind {
            OpKind::Put => client.put(&bucket, &key, size).map(|()| size),
            OpKind::Get => client
                .get(&bucket, &key, config.verify, Some(size))
                .map(|got| {
                    stats[OpKind::Get.index()]
                        .first_byte_us
                        .record(got.first_byte.as_micros() as u64);
                    got.bytes
                }),
            OpKind::Head => client.head(&bucket, &key).map(|_| 0),
            OpKind::Delete => client.delete(&bucket, &key).map(|()| 0),
            OpKind::List => {
                match client.list(
                    &list_bucket,
                    &config.prefix,
                    list_token.as_deref(),
                    config.list_max_keys,
                ) {
                    Ok(page) => {
                        stats[OpKind::List.index()].keys_listed += page.keys;
                        list_token = page.next;
                        listed_once |= list_token.is_none();
                        Ok(0)
                    }
                    Err(e) => {
                        // A failed page ends the pass: retrying it could loop forever.
                        list_token = None;
                        listed_once = true;
                        Err(e)
                    }
                }
            }
        };
        let micros = started.elapsed().as_micros() as u64;
        let slot = &mut stats[kind.index()];
        match result {
            Ok(bytes) => {
                slot.latency_us.record(micros);
                slot.ops += 1;
                slot.bytes += bytes;
                live.ops.fetch_add(1, Ordering::Relaxed);
                live.bytes.fetch_add(bytes, Ordering::Relaxed);
                if let Some(keys) = owned.as_mut() {
                    move_key(keys, kind, index);
                }
            }
            Err(error) => {
                slot.record_error(&error);
                live.errors.fetch_add(1, Ordering::Relaxed);
                if matches!(error, BenchError::Connect(_)) {
                    // Do not spin on a dead endpoint.
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
    stats
}

/// Keeps a mixed worker's view of its keys in step with a successful operation.
fn move_key(keys: &mut OwnedKeys, kind: OpKind, index: u64) {
    let (from, to) = match kind {
        OpKind::Put => (&mut keys.absent, &mut keys.present),
        OpKind::Delete => (&mut keys.present, &mut keys.absent),
        OpKind::Get | OpKind::Head | OpKind::List => return,
    };
    if let Some(at) = from.iter().position(|&i| i == index) {
        from.swap_remove(at);
        to.push(index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_choice_follows_the_weights() {
        // 100,000 draws with weights 1:3:0:0:6 land within 2 % of 10/30/0/0/60 %.
        let weights = [1, 3, 0, 0, 6];
        let mut rng = 42;
        let mut counts = [0u32; 5];
        for _ in 0..100_000 {
            counts[choose_kind(&mut rng, &weights).index()] += 1;
        }
        assert_eq!(counts[2] + counts[3], 0);
        for (i, expected) in [(0, 10_000i64), (1, 30_000), (4, 60_000)] {
            assert!(
                (i64::from(counts[i]) - expected).abs() < 2_000,
                "{counts:?}"
            );
        }
    }

    #[test]
    fn owned_keys_partition_the_objects() {
        // Three workers own disjoint key sets that together cover 0..10, and a put/delete
        // moves a key between the present and absent lists.
        let mut all: Vec<u64> = (0..3)
            .flat_map(|w| OwnedKeys::new(w, 3, 10, true).present)
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        let mut keys = OwnedKeys::new(1, 3, 10, true);
        move_key(&mut keys, OpKind::Delete, 4);
        assert!(!keys.present.contains(&4) && keys.absent == vec![4]);
        move_key(&mut keys, OpKind::Put, 4);
        assert!(keys.present.contains(&4) && keys.absent.is_empty());
    }
}
