//! `SigV4` verification cost of a typical PUT head (target: at most 3 µs), plus the presigned
//! and signing paths for comparison. One request per iteration, on one core.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use tessera_http::sigv4::{verify, AuthInput, Signer};

const NOW: i64 = 1_700_000_000;
const CREDS: &[(&str, &str)] = &[("AKIDTESSERA", "tessera/secret+key")];

fn signer() -> Signer<'static> {
    Signer {
        access_key: "AKIDTESSERA",
        secret: "tessera/secret+key",
        region: "us-east-1",
        service: "s3",
    }
}

fn bench(c: &mut Criterion) {
    let sha = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
    let path = "/photos/2024/holiday%20pics/IMG_0001.jpg";
    let base = [
        ("Host", "photos.s3.example.com:9000"),
        ("Content-Length", "4194304"),
        ("Content-Type", "image/jpeg"),
        ("Content-MD5", "kAFQmDzST7DWlj99KOF/cg=="),
        ("x-amz-meta-camera", "phone"),
    ];
    let signed = signer().sign_headers("PUT", path, "", &base, sha, NOW);
    let mut headers: Vec<(&str, &str)> = base.to_vec();
    headers.push(("User-Agent", "aws-cli/2.23 Python/3.12 Linux/6.1"));
    headers.push(("Accept-Encoding", "identity"));
    headers.push(("x-amz-date", &signed.amz_date));
    headers.push(("x-amz-content-sha256", sha));
    headers.push(("Authorization", &signed.authorization));
    let input = AuthInput {
        method: "PUT",
        raw_path: path,
        raw_query: "",
        headers: &headers,
        virtual_host_bucket: None,
    };
    assert!(verify(&input, NOW, CREDS).is_ok());
    c.bench_function("sigv4/verify_header_put", |b| {
        b.iter(|| verify(black_box(&input), NOW, CREDS).unwrap());
    });

    let query = signer().presign(
        "GET",
        path,
        "",
        &[("host", "photos.s3.example.com:9000")],
        3600,
        NOW,
    );
    let get_headers = [
        ("Host", "photos.s3.example.com:9000"),
        ("User-Agent", "curl/8"),
    ];
    let presigned = AuthInput {
        method: "GET",
        raw_path: path,
        raw_query: &query,
        headers: &get_headers,
        virtual_host_bucket: None,
    };
    assert!(verify(&presigned, NOW, CREDS).is_ok());
    c.bench_function("sigv4/verify_presigned_get", |b| {
        b.iter(|| verify(black_box(&presigned), NOW, CREDS).unwrap());
    });

    c.bench_function("sigv4/sign_header_put", |b| {
        b.iter(|| signer().sign_headers("PUT", black_box(path), "", &base, sha, NOW));
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
