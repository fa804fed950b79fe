//! Request-head parsing: a typical SDK PUT head (15 headers, SigV4) parsed into a reused
//! `RequestHead`, as the connection loop does for every request.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tessera_http::codec::{head::parse_head, HeadLimits, RequestHead};

const TYPICAL_PUT: &[u8] = b"PUT /bench-bucket/objects/2026/11/22/object-000123.bin HTTP/1.1\r\n\
Host: 127.0.0.1:9000\r\n\
Accept-Encoding: identity\r\n\
User-Agent: Boto3/1.36.0 md/Botocore#1.36.0 ua/2.0 os/linux#6.1 md/arch#x86_64 lang/python#3.11.7\r\n\
Content-Type: application/octet-stream\r\n\
Content-Length: 1048576\r\n\
Content-MD5: 1B2M2Y8AsgTpgAmY7PhCfg==\r\n\
Expect: 100-continue\r\n\
X-Amz-Date: 20261122T010203Z\r\n\
X-Amz-Content-SHA256: UNSIGNED-PAYLOAD\r\n\
x-amz-checksum-crc32: AAAAAA==\r\n\
x-amz-sdk-checksum-algorithm: CRC32\r\n\
amz-sdk-invocation-id: 0c9a7f0e-3c1a-4f0e-9b8e-1b2c3d4e5f60\r\n\
amz-sdk-request: attempt=1; max=3\r\n\
x-amz-meta-owner: bench\r\n\
Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261122/us-east-1/s3/aws4_request, SignedHeaders=content-md5;content-type;host;x-amz-content-sha256;x-amz-date, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024\r\n\
\r\n";

fn bench_head(c: &mut Criterion) {
    let limits = HeadLimits::default();
    let mut head = RequestHead::default();
    let mut group = c.benchmark_group("head");
    group.throughput(Throughput::Bytes(TYPICAL_PUT.len() as u64));
    group.bench_function("parse_typical_put", |b| {
        b.iter(|| {
            let len = parse_head(std::hint::black_box(TYPICAL_PUT), &limits, &mut head).unwrap();
            assert_eq!(len, Some(TYPICAL_PUT.len()));
        });
    });
    // Baseline in the same run: httparse alone, with no limits, copies or framing checks.
    group.bench_function("httparse_only", |b| {
        b.iter(|| {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut request = httparse::Request::new(&mut headers);
            let status = request.parse(std::hint::black_box(TYPICAL_PUT)).unwrap();
            assert!(status.is_complete());
        });
    });
    group.finish();
}

criterion_group!(benches, bench_head);
criterion_main!(benches);
