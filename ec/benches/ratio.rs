//! Crate vs raw ISA-L, measured so that a shared, busy machine does not decide the answer:
//! the contenders run interleaved call by call on the same buffers, and each reports its
//! fastest call out of many (the time of an undisturbed call on one core). Prints a table of
//! GB/s (10^9 bytes of stripe data per second) and the crate/raw ratio.
//!
//! Run: `cargo bench -p tessera-ec --bench ratio` (about 20 s; pin with `taskset -c 1`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use erasure_isa_l_sys as sys;
use tessera_ec::{chunk_checksum, Codec, ShardSet};

const GEOMETRIES: [(usize, usize); 4] = [(2, 1), (4, 2), (8, 4), (10, 4)];
const CHUNKS: [usize; 2] = [64 * 1024, 1024 * 1024];
/// Bytes of stripe data each contender processes per configuration (split into calls).
const BYTES_PER_CONTENDER: usize = 3 << 30;

/// A bench size as ISA-L's `int`; every size here is far below 2^31.
fn int(n: usize) -> i32 {
    i32::try_from(n).expect("bench sizes fit in an int")
}

fn filled(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

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

fn raw_decode_rows(k: usize, m: usize, generator: &[u8]) -> Vec<u8> {
    let mut sub = generator[m * k..].to_vec();
    let mut inverse = vec![0u8; k * k];
    // SAFETY: both buffers hold k·k bytes.
    let rc = unsafe { sys::gf_invert_matrix(sub.as_mut_ptr(), inverse.as_mut_ptr(), int(k)) };
    assert_eq!(rc, 0);
    inverse[..m * k].to_vec()
}

fn raw(len: usize, k: usize, tables: &[u8], sources: &mut [*mut u8], outputs: &mut [*mut u8]) {
    // SAFETY: every pointer addresses `len` bytes of a live buffer owned by the caller; outputs
    // are distinct from each other and from the sources; tables match k × outputs.
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

/// Runs the closures interleaved and returns each one's fastest call.
fn fastest(calls: usize, contenders: &mut [&mut dyn FnMut()]) -> Vec<Duration> {
    let mut best = vec![Duration::MAX; contenders.len()];
    for _ in 0..calls {
        for (f, b) in contenders.iter_mut().zip(best.iter_mut()) {
            let start = Instant::now();
            f();
            *b = (*b).min(start.elapsed());
        }
    }
    best
}

fn gbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e9
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("| code | chunk | encode raw | encode crate | ratio | +checksums | reconstruct raw | reconstruct crate | ratio |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (k, m) in GEOMETRIES {
        for chunk in CHUNKS {
            let stripe = k * chunk;
            let calls = (BYTES_PER_CONTENDER / stripe).max(50);
            let mut codec = Codec::new(k, m).expect("codec");
            let mut data: Vec<Vec<u8>> = (0..k).map(|i| filled(chunk, i as u8)).collect();
            let mut parity = vec![vec![0u8; chunk]; m];
            let mut parity2 = vec![vec![0u8; chunk]; m];
            let mut parity3 = vec![vec![0u8; chunk]; m];
            let mut checksums = vec![0u64; k + m];
            let encode_tables = raw_tables(k, &codec.matrix()[k * k..]);
            let mut sources: Vec<*mut u8> = data.iter_mut().map(Vec::as_mut_ptr).collect();
            let mut outputs: Vec<*mut u8> = parity.iter_mut().map(Vec::as_mut_ptr).collect();
            let encode = fastest(
                calls,
                &mut [
                    &mut || raw(chunk, k, &encode_tables, &mut sources, &mut outputs),
                    &mut || {
                        codec
                            .encode(black_box(&data), &mut parity2)
                            .expect("encode");
                    },
                    &mut || {
                        codec
                            .encode_with_checksums(black_box(&data), &mut parity3, &mut checksums)
                            .expect("encode");
                    },
                ],
            );
            assert_eq!(parity, parity2);
            assert_eq!(parity, parity3);
            assert!(data
                .iter()
                .chain(&parity)
                .zip(&checksums)
                .all(|(c, &s)| chunk_checksum(c) == s));

            let mut shards: Vec<Vec<u8>> = data.iter().chain(&parity).cloned().collect();
            let mut shards2 = shards.clone();
            let decode_tables = raw_tables(k, &raw_decode_rows(k, m, codec.matrix()));
            let (lost_shards, kept) = shards.split_at_mut(m);
            let mut sources: Vec<*mut u8> = kept.iter_mut().map(Vec::as_mut_ptr).collect();
            let mut outputs: Vec<*mut u8> = lost_shards.iter_mut().map(Vec::as_mut_ptr).collect();
            let lost = ShardSet::first(m);
            let present = ShardSet(ShardSet::first(k + m).0 & !lost.0);
            let reconstruct = fastest(
                calls,
                &mut [
                    &mut || raw(chunk, k, &decode_tables, &mut sources, &mut outputs),
                    &mut || {
                        codec
                            .reconstruct(black_box(&mut shards2), present, lost)
                            .expect("reconstruct");
                    },
                ],
            );
            assert_eq!(&shards[..k], &data[..]);
            assert_eq!(&shards2[..k], &data[..]);
            let [e_raw, e_crate, e_sum] = [0, 1, 2].map(|i| gbps(stripe, encode[i]));
            let [r_raw, r_crate] = [0, 1].map(|i| gbps(stripe, reconstruct[i]));
            println!(
                "| {k}+{m} | {} KiB | {e_raw:.1} | {e_crate:.1} | {:.0} % | {e_sum:.1} | {r_raw:.1} | {r_crate:.1} | {:.0} % |",
                chunk / 1024,
                100.0 * e_crate / e_raw,
                100.0 * r_crate / r_raw,
            );
        }
    }
    overhead();
    let chunk = filled(1024 * 1024, 3);
    let crc = fastest(
        2000,
        &mut [
            &mut || {
                black_box(crc_fast::checksum(
                    crc_fast::CrcAlgorithm::Crc64Nvme,
                    black_box(&chunk),
                ));
            },
            &mut || {
                black_box(crc_fast::checksum(
                    crc_fast::CrcAlgorithm::Crc32Iscsi,
                    black_box(&chunk),
                ));
            },
        ],
    );
    println!(
        "\nchecksum of a 1 MiB chunk: CRC-64/NVME {:.1} GB/s, CRC32C {:.1} GB/s",
        gbps(chunk.len(), crc[0]),
        gbps(chunk.len(), crc[1])
    );
}

/// Fixed cost per call: 4+2 on 64-byte chunks, where the kernels do almost nothing.
fn overhead() {
    let (k, m, chunk) = (4, 2, 64);
    let mut codec = Codec::new(k, m).expect("codec");
    let encoder = Codec::new(k, m).expect("codec");
    let mut data: Vec<Vec<u8>> = (0..k).map(|i| filled(chunk, i as u8)).collect();
    let mut parity = vec![vec![0u8; chunk]; m];
    let mut parity2 = vec![vec![0u8; chunk]; m];
    let encode_tables = raw_tables(k, &codec.matrix()[k * k..]);
    let mut sources: Vec<*mut u8> = data.iter_mut().map(Vec::as_mut_ptr).collect();
    let mut outputs: Vec<*mut u8> = parity.iter_mut().map(Vec::as_mut_ptr).collect();
    let mut shards: Vec<Vec<u8>> = vec![vec![0u8; chunk]; k + m];
    codec.encode(&data, &mut shards[k..]).expect("encode");
    shards[..k].clone_from_slice(&data);
    let lost = ShardSet::first(m);
    let present = ShardSet(ShardSet::first(k + m).0 & !lost.0);
    let best = fastest(
        200_000,
        &mut [
            &mut || raw(chunk, k, &encode_tables, &mut sources, &mut outputs),
            &mut || {
                encoder
                    .encode(black_box(&data), &mut parity2)
                    .expect("encode");
            },
            &mut || {
                codec
                    .reconstruct(black_box(&mut shards), present, lost)
                    .expect("reconstruct");
            },
        ],
    );
    println!(
        "\nper-call time at 4+2 x 64 B: raw encode {} ns, crate encode {} ns, crate reconstruct {} ns",
        best[0].as_nanos(),
        best[1].as_nanos(),
        best[2].as_nanos()
    );
}
