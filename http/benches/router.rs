//! Routing cost per request: typical request heads through `Endpoint::from_request`, and the
//! XML writer for a full 1000-entry listing page. Throughput is the request-target (or the
//! document) in bytes, so the figure reads as bytes of head routed per second.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use tessera_http::s3::{Endpoint, RequestHead};
use tessera_http::xml::{ListObjectsV2Result, ObjectInfo, Timestamp, XmlBody};

/// One benchmark case: name, method, request target, Host, headers.
type Case<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    &'a [(&'a str, &'a str)],
);

fn routing(c: &mut Criterion) {
    let copy_headers = [
        ("host", "s3.example.com"),
        ("x-amz-copy-source", "/src/photos%2F2006%2Fa%20b.jpg"),
    ];
    let cases: [Case<'_>; 5] = [
        ("get_object_path_style", "GET", "/bucket/photos/2006/january/sample.jpg", Some("s3.example.com:9000"), &[]),
        ("get_object_vhost_encoded", "GET", "/photos/2006/my%20image%2B1.jpg?x-id=GetObject", Some("bucket.s3.example.com"), &[]),
        ("upload_part", "PUT", "/bucket/video.m2ts?partNumber=17&uploadId=VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA", Some("s3.example.com"), &[]),
        ("list_objects_v2", "GET", "/bucket?list-type=2&prefix=photos%2F2006%2F&delimiter=%2F&max-keys=100&encoding-type=url&continuation-token=MTIzNDU2Nzg5MA%3D%3D", Some("s3.example.com"), &[]),
        ("copy_object", "PUT", "/bucket/dest/key.jpg", Some("s3.example.com"), &copy_headers),
    ];
    let mut group = c.benchmark_group("route");
    for (name, method, target, host, headers) in cases {
        group.throughput(Throughput::Bytes(target.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let head = RequestHead::from_target(black_box(method), black_box(target), host);
                Endpoint::from_request(&head, Some("s3.example.com"), headers).expect("routes")
            });
        });
    }
    group.finish();
}

fn listing_xml(c: &mut Criterion) {
    let contents: Vec<ObjectInfo> = (0..1000)
        .map(|i| ObjectInfo {
            key: format!("photos/2006/january/image {i:05}.jpg"),
            last_modified: Timestamp::from_unix_ms(1_795_308_694_000 + i),
            etag: "fba9dede5f27731c9771645a39863328".into(),
            size: 434_234,
            owner: None,
            checksum_algorithm: Some("CRC64NVME"),
        })
        .collect();
    let mut group = c.benchmark_group("xml");
    for encoding_url in [false, true] {
        let page = ListObjectsV2Result {
            bucket: "bucket",
            prefix: "photos/2006/january/",
            delimiter: Some("/"),
            max_keys: 1000,
            encoding_url,
            continuation_token: None,
            start_after: None,
            fetch_owner: false,
            is_truncated: true,
            next_continuation_token: Some("MTIzNDU2Nzg5MA=="),
            contents: &contents,
            common_prefixes: &[],
        };
        let mut out = String::with_capacity(1 << 20);
        page.write_xml(&mut out);
        group.throughput(Throughput::Bytes(out.len() as u64));
        let name = if encoding_url {
            "list_v2_1000_url"
        } else {
            "list_v2_1000"
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                black_box(&page).write_xml(&mut out);
                out.len()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, routing, listing_xml);
criterion_main!(benches);
