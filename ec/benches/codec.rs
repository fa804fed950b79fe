//! Encode and reconstruct throughput of `tessera_ec::Codec` next to raw ISA-L
//! `ec_encode_data` on the same buffers in the same run, and the two candidate chunk checksums.
//!
//! Throughput counts the stripe's data bytes (`k · chunk`): what a PUT encodes and what a
//! degraded GET delivers. Reconstruct loses the first `m` data shards (the worst case: every
//! rebuilt shard is data) and rebuilds them from the remaining data and all parity.
//!
//! Run: `cargo bench -p tessera-ec --bench codec -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use erasure_isa_l_sys as sys;
use tessera_ec::{Codec, ShardSet};

const GEOMETRIES: [(usize, usize); 4] = [(2, 1), (4, 2), (8, 4), (10, 4)];
const CHUNKS: [usize; 2] = [64 * 1024, 1024 * 1024];

/// A bench size as ISA-L's `int`; every size here is far below 2^31.
fn int(n: usize) -> i32 {
    i32::try_from(n).expect("bench sizes fit in an int")
}

fn filled(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Raw ISA-L tables for the rows `rows` (each k coefficients) of a coefficient matrix.
fn raw_tables(k: usize, rows: &[u8]) -> Vec<u8> {
    let r = rows.len() / k;
    let mut tables = vec![0u8; 32 * k * r];
    // SAFETY: `rows` holds r·k coefficients and `tables` 32·k·r bytes, the extents ISA-L uses.
    unsafe {
        sys::ec_init_tables(
            int(k),
            int(r),
            rows.as_ptr().cast_mut(),
            tables.as_mut_ptr(),
        );
    }
    tables
}

/// Raw ISA-L matrices built directly with the sys crate: (generator, decode rows for losing
/// data shards `0..m` when reading shards `m..k+m`).
fn raw_matrices(k: usize, m: usize) -> (Vec<u8>, Vec<u8>) {
    let n = k + m;
    let mut generator = vec![0u8; n * k];
    // SAFETY: the buffer holds n·k bytes, all ISA-L writes.
    unsafe { sys::gf_gen_cauchy1_matrix(generator.as_mut_ptr(), int(n), int(k)) };
    let mut sub = generator[m * k..].to_vec();
    let mut inverse = vec![0u8; k * k];
    // SAFETY: both buffers hold k·k bytes.
    let rc = unsafe { sys::gf_invert_matrix(sub.as_mut_ptr(), inverse.as_mut_ptr(), int(k)) };
    assert_eq!(rc, 0, "Cauchy sub-matrix is invertible");
    (generator, inverse[..m * k].to_vec())
}

/// Calls `ec_encode_data` on raw pointers prepared outside the timing loop.
fn raw_encode(
    len: usize,
    k: usize,
    tables: &[u8],
    sources: &mut [*mut u8],
    outputs: &mut [*mut u8],
) {
    // SAFETY: every pointer addresses `len` bytes of a live buffer owned by the benchmark;
    // outputs are distinct from each other and from the sources; tables match k × outputs.
    unsafe {
        sys::ec_encode_data(
            int(len),
            int(k),
            int(outputs.len()),
            tables.as_ptr().cast_mut(),
            sources.as_mut_ptr(),
            outputs.as_mut_ptr(),
        );
    }
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for (k, m) in GEOMETRIES {
        for chunk in CHUNKS {
            let id = format!("{k}+{m}/{}KiB", chunk / 1024);
            group.throughput(Throughput::Bytes((k * chunk) as u64));
            let codec = Codec::new(k, m).expect("codec");
            let mut data: Vec<Vec<u8>> = (0..k).map(|i| filled(chunk, i as u8)).collect();
            let mut parity = vec![vec![0u8; chunk]; m];
            let mut checksums = vec![0u64; k + m];

            let (generator, _) = raw_matrices(k, m);
            assert_eq!(codec.matrix(), &generator[..], "same matrix as raw ISA-L");
            let tables = raw_tables(k, &generator[k * k..]);
            group.bench_function(BenchmarkId::new("isal_raw", &id), |b| {
                let mut sources: Vec<*mut u8> = data.iter_mut().map(Vec::as_mut_ptr).collect();
                let mut outputs: Vec<*mut u8> = parity.iter_mut().map(Vec::as_mut_ptr).collect();
                b.iter(|| raw_encode(chunk, k, &tables, &mut sources, &mut outputs));
            });
            let raw_parity = parity.clone();
            group.bench_function(BenchmarkId::new("tessera", &id), |b| {
                b.iter(|| codec.encode(black_box(&data), &mut parity).expect("encode"));
            });
            assert_eq!(parity, raw_parity, "crate and raw parity agree");
            group.bench_function(BenchmarkId::new("tessera_with_checksums", &id), |b| {
                b.iter(|| {
                    codec
                        .encode_with_checksums(black_box(&data), &mut parity, &mut checksums)
                        .expect("encode");
                });
            });
        }
    }
    group.finish();
}

fn reconstruct(c: &mut Criterion) {
    let mut group = c.benchmark_group("reconstruct");
    for (k, m) in GEOMETRIES {
        for chunk in CHUNKS {
            let id = format!("{k}+{m}/{}KiB", chunk / 1024);
            group.throughput(Throughput::Bytes((k * chunk) as u64));
            let mut codec = Codec::new(k, m).expect("codec");
            let data: Vec<Vec<u8>> = (0..k).map(|i| filled(chunk, i as u8)).collect();
            let mut parity = vec![vec![0u8; chunk]; m];
            codec.encode(&data, &mut parity).expect("encode");
            let mut shards: Vec<Vec<u8>> = data.iter().chain(&parity).cloned().collect();
            let lost = ShardSet::first(m);
            let present = ShardSet(ShardSet::first(k + m).0 & !lost.0);

            let (_, decode_rows) = raw_matrices(k, m);
            let tables = raw_tables(k, &decode_rows);
            group.bench_function(BenchmarkId::new("isal_raw", &id), |b| {
                let (lost_shards, kept) = shards.split_at_mut(m);
                let mut sources: Vec<*mut u8> = kept.iter_mut().map(Vec::as_mut_ptr).collect();
                let mut outputs: Vec<*mut u8> =
                    lost_shards.iter_mut().map(Vec::as_mut_ptr).collect();
                b.iter(|| raw_encode(chunk, k, &tables, &mut sources, &mut outputs));
            });
            assert_eq!(&shards[..k], &data[..], "raw decode rebuilt the data");
            group.bench_function(BenchmarkId::new("tessera", &id), |b| {
                b.iter(|| {
                    codec
                        .reconstruct(black_box(&mut shards), present, lost)
                        .expect("reconstruct");
                });
            });
            assert_eq!(&shards[..k], &data[..], "crate rebuilt the data");
        }
    }
    group.finish();
}

fn checksum(c: &mut Criterion) {
    let mut group = c.benchmark_group("checksum");
    let chunk = filled(1024 * 1024, 7);
    group.throughput(Throughput::Bytes(chunk.len() as u64));
    group.bench_function("crc64nvme/1MiB", |b| {
        b.iter(|| crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, black_box(&chunk)));
    });
    group.bench_function("crc32c/1MiB", |b| {
        b.iter(|| crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, black_box(&chunk)));
    });
    group.finish();
}

criterion_group!(benches, encode, reconstruct, checksum);
criterion_main!(benches);
