//! Checks the codec's promise that calls allocate nothing once the codec exists: a counting
//! global allocator records allocations made on the test's own thread while it encodes,
//! reconstructs (decode-table cache hits and misses) and verifies checksums.

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use tessera_ec::{verify_chunk, ByteRange, Codec, Layout, ShardSet};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        if TRACKING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: AllocLayout, new_size: usize) -> *mut u8 {
        if TRACKING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn calls_do_not_allocate() {
    // Checks that encode, encode_with_checksums, reconstruct (cold and cached patterns, more
    // patterns than cache slots), checksum verification and range planning allocate nothing.
    let (k, m, len) = (8, 4, 100_000);
    let mut codec = Codec::new(k, m).expect("codec");
    let data: Vec<Vec<u8>> = (0..k).map(|i| vec![i as u8 * 17 + 1; len]).collect();
    let mut parity = vec![vec![0u8; len]; m];
    let mut checksums = vec![0u64; k + m];
    let mut shards = vec![vec![0u8; len]; k + m];
    let patterns: Vec<ShardSet> = (0..k + m)
        .flat_map(|a| (a + 1..k + m).map(move |b| ShardSet::EMPTY.with(a).with(b)))
        .collect();
    let layout = Layout::new(10_000_000, k, 65_536).expect("layout");

    TRACKING.with(|t| t.set(true));
    codec.encode(&data, &mut parity).expect("encode");
    codec
        .encode_with_checksums(&data, &mut parity, &mut checksums)
        .expect("encode");
    for (i, chunk) in data.iter().chain(&parity).enumerate() {
        shards[i].copy_from_slice(chunk);
    }
    for &lost in patterns.iter().chain(&patterns) {
        let present = ShardSet(ShardSet::first(k + m).0 & !lost.0);
        codec
            .reconstruct(&mut shards, present, lost)
            .expect("reconstruct");
    }
    verify_chunk(&shards[0], checksums[0]).expect("intact");
    let plan = layout
        .read_plan(ByteRange::Inclusive {
            first: 123_456,
            last: 7_654_321,
        })
        .expect("plan");
    let pieces: u64 = plan.pieces().map(|p| u64::from(p.len)).sum();
    let fetched = (0..k).filter_map(|i| plan.data_fetch(i)).count();
    TRACKING.with(|t| t.set(false));

    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0);
    assert_eq!(pieces, 7_654_321 - 123_456 + 1);
    assert_eq!(fetched, k);
    for (i, chunk) in data.iter().chain(&parity).enumerate() {
        assert_eq!(&shards[i], chunk);
    }
}
