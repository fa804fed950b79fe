//! Criterion benches for the metadata store: durable appends per second with group commit and
//! with one fsync per append (`io_uring` files in a temp directory), index lookups, a 1000-key
//! listing page merged across 2 cores, and recovery of 1,000,000 records.
//!
//! Run short: `cargo bench -p tessera-meta -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tessera_meta::{
    merge_pages, partition_of, testkit, FileStorage, Index, ListQuery, MemStorage, MetaStore, Op,
    StoreConfig, SyncMode,
};

// The gateway binary runs on mimalloc; measuring on glibc malloc would mostly measure glibc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Distinct keys the append benches cycle through, so the index stays bounded.
const APPEND_KEYS: u64 = 200_000;

fn uring() -> monoio::Runtime<monoio::IoUringDriver> {
    monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .build()
        .expect("io_uring runtime")
}

/// `iters` commits spread over `tasks` concurrent tasks on one core; returns the wall time.
fn append_run(
    rt: &mut monoio::Runtime<monoio::IoUringDriver>,
    store: &MetaStore<FileStorage>,
    tasks: u64,
    iters: u64,
    counter: &mut u64,
) -> Duration {
    let base = *counter;
    *counter += iters;
    rt.block_on(async {
        let started = Instant::now();
        let mut handles = Vec::new();
        for t in 0..tasks {
            let store = store.clone();
            handles.push(monoio::spawn(async move {
                let mut i = t;
                while i < iters {
                    let n = (base + i) % APPEND_KEYS;
                    let object = testkit::typical_object("b", &testkit::key40(n), n);
                    store
                        .commit(vec![Op::PutObject(object)])
                        .await
                        .expect("commit");
                    i += tasks;
                }
            }));
        }
        for h in handles {
            h.await;
        }
        started.elapsed()
    })
}

fn appends(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Elements(1));
    for (name, tasks, sync) in [
        ("group_commit_1024_tasks", 1024, SyncMode::Durable),
        ("group_commit_256_tasks", 256, SyncMode::Durable),
        ("group_commit_4096_tasks", 4096, SyncMode::Durable),
        ("fsync_per_append_1_task", 1, SyncMode::Durable),
        ("no_sync_1024_tasks", 1024, SyncMode::NoSyncForBenchmarks),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rt = uring();
        let config = StoreConfig {
            sync,
            ..StoreConfig::default()
        };
        let store = rt.block_on(async {
            let storage = FileStorage::new(dir.path()).expect("storage");
            MetaStore::open(storage, config).await.expect("open").0
        });
        let mut counter = 0;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| append_run(&mut rt, &store, tasks, iters, &mut counter));
        });
        let stats = store.store_stats();
        println!(
            "append/{name}: {} commits in {} fsyncs ({:.1} commits per fsync), {} snapshots",
            stats.commits,
            stats.fsyncs,
            stats.commits as f64 / stats.fsyncs.max(1) as f64,
            stats.snapshots
        );
    }
    group.finish();
}

fn lookups(c: &mut Criterion) {
    const OBJECTS: u64 = 1_000_000;
    const LOOKUPS: u64 = 4096;
    let mut group = c.benchmark_group("lookup");
    group.throughput(Throughput::Elements(LOOKUPS));
    group.bench_function("index_1m_objects_random_keys", |b| {
        // Built inside the closure so that filtered runs skip it.
        let mut index = Index::new();
        for n in 0..OBJECTS {
            index.apply(Op::PutObject(testkit::typical_object(
                "b",
                &testkit::key40(n),
                n,
            )));
        }
        let keys: Vec<String> = (0..LOOKUPS)
            .map(|i| testkit::key40(i.wrapping_mul(2_654_435_761) % OBJECTS))
            .collect();
        b.iter(|| {
            for k in &keys {
                black_box(index.object("b", k).map(|o| o.size));
            }
        });
    });
    group.finish();
}

fn listing(c: &mut Criterion) {
    let cores = std::cell::OnceCell::new();
    let build_cores = || {
        let mut cores = [Index::new(), Index::new()];
        for n in 0..100_000u64 {
            let key = testkit::key40(n);
            let core = partition_of("b", &key, 2).0 as usize;
            cores[core].apply(Op::PutObject(testkit::typical_object("b", &key, n)));
        }
        cores
    };
    let query = ListQuery {
        prefix: "photos/".to_owned(),
        delimiter: Some("/".to_owned()),
        start_after: Some(testkit::key40(50_000)),
        max_keys: 1000,
    };
    let flat = ListQuery {
        delimiter: None,
        ..query.clone()
    };
    let mut group = c.benchmark_group("list");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("page_1000_keys_2_cores", |b| {
        let cores = cores.get_or_init(build_cores);
        b.iter(|| {
            let pages = cores.iter().map(|i| i.list("b", &flat)).collect();
            let page = merge_pages(pages, 1000);
            assert_eq!(page.items.len(), 1000);
            black_box(page)
        });
    });
    group.bench_function("page_delimiter_2_cores", |b| {
        let cores = cores.get_or_init(build_cores);
        b.iter(|| {
            let pages = cores.iter().map(|i| i.list("b", &query)).collect();
            black_box(merge_pages(pages, 1000))
        });
    });
    group.finish();
}

fn recovery(c: &mut Criterion) {
    const RECORDS: u64 = 1_000_000;
    let mut group = c.benchmark_group("recovery");
    group.sample_size(10);
    group.throughput(Throughput::Elements(RECORDS));
    // Criterion may call a routine several times: expensive setup happens once, lazily, so
    // filtered runs skip it.
    let built = std::cell::OnceCell::new();
    let build_log = || {
        let storage = MemStorage::new();
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let config = StoreConfig {
                sync: SyncMode::NoSyncForBenchmarks,
                compact_log_bytes: u64::MAX,
                ..StoreConfig::default()
            };
            let (store, _) = MetaStore::open(storage.clone(), config)
                .await
                .expect("open");
            let mut handles = Vec::new();
            for t in 0..64 {
                let store = store.clone();
                handles.push(monoio::spawn(async move {
                    let mut n = t;
                    while n < RECORDS {
                        let o = testkit::typical_object("b", &testkit::key40(n), n);
                        store.commit(vec![Op::PutObject(o)]).await.expect("commit");
                        n += 64;
                    }
                }));
            }
            for h in handles {
                h.await;
            }
        });
        println!(
            "recovery: {RECORDS} records, {} log bytes ({} per record)",
            storage.bytes(),
            storage.bytes() as u64 / RECORDS
        );
        // One recovery timed in this thread's CPU time too: on a shared 2-core machine wall
        // time mostly measures the neighbours.
        let cpu_before = thread_cpu();
        let wall = Instant::now();
        let (store, _) = rt
            .block_on(MetaStore::open(storage.clone(), StoreConfig::default()))
            .expect("recover");
        let (cpu, wall) = (thread_cpu().saturating_sub(cpu_before), wall.elapsed());
        drop(store);
        println!(
            "recovery of {RECORDS} records: wall {wall:?}, thread CPU {cpu:?} = {:.2} M records per CPU-second",
            RECORDS as f64 / cpu.as_secs_f64() / 1e6
        );
        storage
    };
    group.bench_function("open_1m_object_records", |b| {
        let storage: &MemStorage = built.get_or_init(build_log);
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .expect("runtime");
        b.iter_batched(
            || storage.clone(),
            |s| {
                let (store, report) = rt
                    .block_on(MetaStore::open(s, StoreConfig::default()))
                    .expect("recover");
                assert_eq!(report.frames, RECORDS);
                store
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

/// CPU time consumed by the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and the clock id is a constant Linux defines.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    assert_eq!(rc, 0);
    // The kernel returns a non-negative time with nanoseconds below one second.
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

criterion_group!(benches, appends, lookups, listing, recovery);
criterion_main!(benches);
