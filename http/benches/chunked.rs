//! aws-chunked decoding throughput on one core, payload bytes per second.
//!
//! - `signed_full`: chunk-signed body, 64 KiB chunks, fed in 64 KiB reads; includes the
//!   SHA-256 of every chunk that the signatures need.
//! - `sha256_only`: SHA-256 of the same payload: the part of `signed_full` that is hashing.
//! - `framing_only`: the same body without a signature chain: parsing and range hand-out.
//! - `chunk_signature_only`: verifying one chunk signature from a known hash, per 64 KiB.
//!   Framing + signatures (target ≥ 1 GB/s) is `framing_only` and this together.
//! - `unsigned_trailer_crc32`: `STREAMING-UNSIGNED-PAYLOAD-TRAILER` with a CRC32 trailer,
//!   decoded and CRC-checked by the `BodyVerifier` (target ≥ 5 GB/s).
//! - `body_md5_etag`, `body_crc64nvme`: whole-body hashes for scale (the `ETag` MD5 is the
//!   most expensive thing a PUT computes).
//!
//! Throughput is in GB/s (10^9 bytes) of payload per second of this thread's CPU time.

#[path = "common/cpu_time.rs"]
mod cpu_time;

use cpu_time::CpuTime;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sha2::{Digest, Sha256};
use tessera_http::aws_chunked::ChunkedDecoder;
use tessera_http::checksum::{BodyVerifier, ChecksumAlgorithm, ChecksumHasher, IntegrityHeaders};
use tessera_http::sigv4::{PayloadMode, SignatureChain, Signer};

const PAYLOAD_BYTES: usize = 8 << 20;
const CHUNK_BYTES: usize = 64 << 10;
const READ_BYTES: usize = 64 << 10;

fn chain() -> SignatureChain {
    let signer = Signer {
        access_key: "AK",
        secret: "SK",
        region: "us-east-1",
        service: "s3",
    };
    signer
        .sign_headers(
            "PUT",
            "/b/k",
            "",
            &[("host", "h")],
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            1_700_000_000,
        )
        .chain
}

/// Decodes `body` in `READ_BYTES` reads; returns payload bytes seen (so nothing is elided).
fn decode(decoder: &mut ChunkedDecoder, body: &[u8], mut sink: impl FnMut(&[u8])) -> usize {
    let mut seen = 0;
    let mut pos = 0;
    while !decoder.is_done() {
        let end = (pos + READ_BYTES).min(body.len());
        let read = &body[pos..end];
        let mut at = 0;
        while at < read.len() && !decoder.is_done() {
            let step = decoder.decode(&read[at..]).unwrap();
            let data = &read[at..][step.data];
            seen += data.len();
            sink(data);
            at += step.consumed;
        }
        pos += at;
    }
    seen
}

fn bench(c: &mut Criterion<CpuTime>) {
    let payload: Vec<u8> = (0..PAYLOAD_BYTES).map(|i| (i * 31 % 251) as u8).collect();
    let mut signing = chain();
    let mut signed = Vec::with_capacity(PAYLOAD_BYTES + 4096);
    for piece in payload.chunks(CHUNK_BYTES) {
        signed.extend_from_slice(signing.sign_chunk(piece).as_bytes());
        signed.extend_from_slice(piece);
        signed.extend_from_slice(b"\r\n");
    }
    signed.extend_from_slice(signing.sign_chunk(&[]).as_bytes());
    signed.extend_from_slice(b"\r\n");

    let mut group = c.benchmark_group("chunked");
    group.throughput(Throughput::Bytes(PAYLOAD_BYTES as u64));
    group.sample_size(20);
    group.bench_function("signed_full", |b| {
        b.iter(|| {
            let mut d = ChunkedDecoder::new(Some(chain()), false, Some(PAYLOAD_BYTES as u64), None);
            assert_eq!(decode(&mut d, black_box(&signed), |_| ()), PAYLOAD_BYTES);
        });
    });
    group.bench_function("sha256_only", |b| {
        b.iter(|| {
            let mut h = Sha256::new();
            for piece in black_box(&payload).chunks(CHUNK_BYTES) {
                h.update(piece);
            }
            h.finalize()
        });
    });
    group.bench_function("framing_only", |b| {
        b.iter(|| {
            let mut d = ChunkedDecoder::new(None, false, Some(PAYLOAD_BYTES as u64), None);
            assert_eq!(decode(&mut d, black_box(&signed), |_| ()), PAYLOAD_BYTES);
        });
    });
    group.throughput(Throughput::Bytes(CHUNK_BYTES as u64));
    let hash: [u8; 32] = Sha256::digest(&payload[..CHUNK_BYTES]).into();
    let verifier = chain();
    let claimed = verifier.expected_chunk_signature(&hash);
    group.bench_function("chunk_signature_only", |b| {
        b.iter(|| {
            let mut v = verifier.clone();
            assert!(v.verify_chunk(black_box(&hash), &claimed));
        });
    });

    let crc = ChecksumHasher::digest(ChecksumAlgorithm::Crc32, &payload).to_base64();
    let mut unsigned = Vec::with_capacity(PAYLOAD_BYTES + 4096);
    for piece in payload.chunks(CHUNK_BYTES) {
        unsigned.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        unsigned.extend_from_slice(piece);
        unsigned.extend_from_slice(b"\r\n");
    }
    unsigned.extend_from_slice(format!("0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n").as_bytes());
    let mode = PayloadMode::StreamingUnsignedTrailer {
        decoded_content_length: PAYLOAD_BYTES as u64,
    };
    let integrity = IntegrityHeaders::parse(&[("x-amz-trailer", "x-amz-checksum-crc32")]).unwrap();
    group.throughput(Throughput::Bytes(PAYLOAD_BYTES as u64));
    group.bench_function("unsigned_trailer_crc32", |b| {
        b.iter(|| {
            let mut d = ChunkedDecoder::for_payload(&mode, integrity.trailer).unwrap();
            let mut v = BodyVerifier::new(&mode, &integrity, false).unwrap();
            decode(&mut d, black_box(&unsigned), |data| v.update(data));
            v.finish(d.trailer_checksum()).unwrap()
        });
    });
    // For scale: the whole-body hashes a PUT may need besides the framing above.
    group.bench_function("body_md5_etag", |b| {
        b.iter(|| {
            let mut v =
                BodyVerifier::new(&PayloadMode::Unsigned, &IntegrityHeaders::default(), true)
                    .unwrap();
            v.update(black_box(&payload));
            v.finish(None).unwrap()
        });
    });
    group.bench_function("body_crc64nvme", |b| {
        b.iter(|| ChecksumHasher::digest(ChecksumAlgorithm::Crc64Nvme, black_box(&payload)));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = bench
}
criterion_main!(benches);
