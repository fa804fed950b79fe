//! `SigV4` verification cost of a typical PUT head (target: at most 3 µs), plus the presigned
//! and signing paths for comparison. One request per iteration, on one core.

#[path = "common/cpu_time.rs"]
mod cpu_time;

use cpu_time::CpuTime;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use tessera_http::sigv4::{
    canonical_query, canonical_request, canonical_uri, signing_key, string_to_sign, verify,
    AuthInput, Signer, SigningKeyCache,
};

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

fn bench(c: &mut Criterion<CpuTime>) {
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

    let cached = SigningKeyCache::new(CREDS);
    c.bench_function("sigv4/verify_header_put_cached_key", |b| {
        b.iter(|| verify(black_box(&input), NOW, &cached).unwrap());
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

    // The parts of a verification, to see where the time goes.
    c.bench_function("sigv4/part_signing_key", |b| {
        b.iter(|| {
            signing_key(
                black_box("tessera/secret+key"),
                "20231114",
                "us-east-1",
                "s3",
            )
        });
    });
    let signed_list = "content-length;content-md5;content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-camera";
    c.bench_function("sigv4/part_canonical_request_and_string_to_sign", |b| {
        b.iter(|| {
            let canonical = canonical_request(
                "PUT",
                &canonical_uri(black_box(path)),
                &canonical_query("", None),
                &headers,
                signed_list,
                sha,
            );
            string_to_sign(
                &signed.amz_date,
                "20231114/us-east-1/s3/aws4_request",
                &canonical,
            )
        });
    });

    c.bench_function("sigv4/sign_header_put", |b| {
        b.iter(|| signer().sign_headers("PUT", black_box(path), "", &base, sha, NOW));
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = bench
}
criterion_main!(benches);
