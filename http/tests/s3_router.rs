//! The S3 router through its public API: one case per operation, the validation errors, hostile
//! keys, and a property test that any key survives client encoding → routing → decoding.

// S3 operation and element names (CopyObject, ETag) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use proptest::prelude::*;
use tessera_http::s3::percent::encode_path_into;
use tessera_http::s3::router::{
    CopyRange, CopySource, ListBucketsParams, ListObjectsParams, ListObjectsV2Params,
    ListPartsParams, ListUploadsParams, ObjectReadParams, UnsupportedOp, KEY_BYTES_MAX,
    LIST_ENTRIES_MAX,
};
use tessera_http::s3::{BodyKind, Endpoint, NoHeaders, RequestHead};
use tessera_http::S3ErrorCode;

const DOMAIN: &str = "s3.example.com";

/// Routes `method target` in path style with the given headers.
fn route_with(
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<Endpoint, S3ErrorCode> {
    let head = RequestHead::from_target(method, target, Some("localhost:9000"));
    Endpoint::from_request(&head, Some(DOMAIN), headers).map_err(|e| e.code)
}

fn route(method: &str, target: &str) -> Result<Endpoint, S3ErrorCode> {
    route_with(method, target, &[])
}

fn s(text: &str) -> String {
    text.to_owned()
}

/// Every supported operation is recognised from its documented request shape, with its
/// parameters decoded and defaulted.
#[test]
fn every_supported_operation() {
    let b = || s("bkt");
    let k = || s("dir/key.txt");
    let cases: Vec<(&str, &str, Endpoint)> = vec![
        ("GET", "/", Endpoint::ListBuckets { params: Box::default() }),
        (
            "GET",
            "/?x-id=ListBuckets",
            Endpoint::ListBuckets { params: Box::default() },
        ),
        (
            "GET",
            "/?max-buckets=10&prefix=logs-&continuation-token=dG9r%3D&bucket-region=eu-west-1",
            Endpoint::ListBuckets {
                params: Box::new(ListBucketsParams {
                    prefix: Some(s("logs-")),
                    continuation_token: Some(s("dG9r=")),
                    max_buckets: Some(10),
                    bucket_region: Some(s("eu-west-1")),
                }),
            },
        ),
        ("PUT", "/bkt", Endpoint::CreateBucket { bucket: b() }),
        ("PUT", "/bkt/", Endpoint::CreateBucket { bucket: b() }),
        ("HEAD", "/bkt", Endpoint::HeadBucket { bucket: b() }),
        ("DELETE", "/bkt", Endpoint::DeleteBucket { bucket: b() }),
        ("GET", "/bkt?location", Endpoint::GetBucketLocation { bucket: b() }),
        ("GET", "/bkt?versioning", Endpoint::GetBucketVersioning { bucket: b() }),
        ("GET", "/bkt?acl", Endpoint::GetBucketAcl { bucket: b() }),
        (
            "GET",
            "/bkt",
            Endpoint::ListObjects {
                bucket: b(),
                params: Box::new(ListObjectsParams {
                    prefix: s(""),
                    delimiter: None,
                    marker: None,
                    max_keys: 1000,
                    encoding_url: false,
                }),
            },
        ),
        (
            "GET",
            "/bkt?prefix=photos%2F2006%2F&delimiter=%2F&marker=photos%2F2006%2Fa&max-keys=40&encoding-type=url",
            Endpoint::ListObjects {
                bucket: b(),
                params: Box::new(ListObjectsParams {
                    prefix: s("photos/2006/"),
                    delimiter: Some(s("/")),
                    marker: Some(s("photos/2006/a")),
                    max_keys: 40,
                    encoding_url: true,
                }),
            },
        ),
        (
            "GET",
            "/bkt?list-type=2&prefix=a+b&delimiter=&continuation-token=1ueGcxLPRx1Tr%2FXYExHnhbYLgveDs2J%2FwmHrZN&start-after=ExampleGuide.pdf&fetch-owner=true&max-keys=0",
            Endpoint::ListObjectsV2 {
                bucket: b(),
                params: Box::new(ListObjectsV2Params {
                    prefix: s("a b"),
                    delimiter: None,
                    continuation_token: Some(s("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wmHrZN")),
                    start_after: Some(s("ExampleGuide.pdf")),
                    max_keys: 0,
                    fetch_owner: true,
                    encoding_url: false,
                }),
            },
        ),
        (
            "GET",
            "/bkt?uploads&prefix=p&delimiter=%2F&key-marker=my-movie.m2ts&upload-id-marker=YW55IGlk&max-uploads=3",
            Endpoint::ListMultipartUploads {
                bucket: b(),
                params: Box::new(ListUploadsParams {
                    prefix: s("p"),
                    delimiter: Some(s("/")),
                    key_marker: Some(s("my-movie.m2ts")),
                    upload_id_marker: Some(s("YW55IGlk")),
                    max_uploads: 3,
                    encoding_url: false,
                }),
            },
        ),
        ("POST", "/bkt?delete", Endpoint::DeleteObjects { bucket: b() }),
        ("POST", "/bkt?delete=", Endpoint::DeleteObjects { bucket: b() }),
        ("PUT", "/bkt/dir/key.txt", Endpoint::PutObject { bucket: b(), key: k() }),
        (
            "PUT",
            "/bkt/dir/key.txt?x-id=PutObject",
            Endpoint::PutObject { bucket: b(), key: k() },
        ),
        (
            "GET",
            "/bkt/dir/key.txt",
            Endpoint::GetObject { bucket: b(), key: k(), params: ObjectReadParams::default() },
        ),
        (
            "HEAD",
            "/bkt/dir/key.txt?partNumber=3&versionId=null",
            Endpoint::HeadObject {
                bucket: b(),
                key: k(),
                params: ObjectReadParams {
                    part_number: Some(3),
                    version_id: Some(s("null")),
                    ..ObjectReadParams::default()
                },
            },
        ),
        (
            "DELETE",
            "/bkt/dir/key.txt",
            Endpoint::DeleteObject { bucket: b(), key: k(), version_id: None },
        ),
        ("GET", "/bkt/dir/key.txt?acl", Endpoint::GetObjectAcl { bucket: b(), key: k() }),
        (
            "POST",
            "/bkt/dir/key.txt?uploads",
            Endpoint::CreateMultipartUpload { bucket: b(), key: k() },
        ),
        (
            "PUT",
            "/bkt/dir/key.txt?partNumber=10000&uploadId=VXBsb2FkIElE",
            Endpoint::UploadPart {
                bucket: b(),
                key: k(),
                upload_id: s("VXBsb2FkIElE"),
                part_number: 10_000,
            },
        ),
        (
            "POST",
            "/bkt/dir/key.txt?uploadId=VXBsb2FkIElE",
            Endpoint::CompleteMultipartUpload { bucket: b(), key: k(), upload_id: s("VXBsb2FkIElE") },
        ),
        (
            "DELETE",
            "/bkt/dir/key.txt?uploadId=VXBsb2FkIElE",
            Endpoint::AbortMultipartUpload { bucket: b(), key: k(), upload_id: s("VXBsb2FkIElE") },
        ),
        (
            "GET",
            "/bkt/dir/key.txt?uploadId=VXBsb2FkIElE&max-parts=2&part-number-marker=1",
            Endpoint::ListParts {
                bucket: b(),
                key: k(),
                upload_id: s("VXBsb2FkIElE"),
                params: ListPartsParams { max_parts: 2, part_number_marker: 1 },
            },
        ),
    ];
    for (method, target, expected) in cases {
        assert_eq!(route(method, target), Ok(expected), "{method} {target}");
    }
}

/// `x-amz-copy-source` turns PutObject into CopyObject and UploadPart into UploadPartCopy, with
/// the source decoded and the range parsed (examples from the S3 API reference).
#[test]
fn copy_operations() {
    let headers = [(
        "X-Amz-Copy-Source",
        "/source-bucket/photos%2F2006%2Fmy%20image.jpg?versionId=3HL4kqtJlcpXroDTDmjVBH40Nrjfkd",
    )];
    assert_eq!(
        route_with("PUT", "/bkt/copy", &headers),
        Ok(Endpoint::CopyObject {
            bucket: s("bkt"),
            key: s("copy"),
            source: Box::new(CopySource {
                bucket: s("source-bucket"),
                key: s("photos/2006/my image.jpg"),
                version_id: Some(s("3HL4kqtJlcpXroDTDmjVBH40Nrjfkd")),
            }),
        })
    );
    let headers = [
        ("x-amz-copy-source", "source-bucket/a+b"),
        ("x-amz-copy-source-range", "bytes=500-6291455"),
    ];
    assert_eq!(
        route_with("PUT", "/bkt/k?partNumber=2&uploadId=U", &headers),
        Ok(Endpoint::UploadPartCopy {
            bucket: s("bkt"),
            key: s("k"),
            upload_id: s("U"),
            part_number: 2,
            source: Box::new(CopySource {
                bucket: s("source-bucket"),
                key: s("a+b"),
                version_id: None
            }),
            range: Some(CopyRange {
                first: 500,
                last: 6_291_455
            }),
        })
    );
    let bad_range = [
        ("x-amz-copy-source", "src/k"),
        ("x-amz-copy-source-range", "bytes=9-1"),
    ];
    assert_eq!(
        route_with("PUT", "/bkt/k?partNumber=2&uploadId=U", &bad_range),
        Err(S3ErrorCode::InvalidArgument)
    );
    assert_eq!(
        route_with("PUT", "/bkt/k", &[("x-amz-copy-source", "no-key")]),
        Err(S3ErrorCode::InvalidArgument)
    );
}

/// Virtual-host style addresses the bucket from the Host header, with or without a port; a
/// Host equal to the domain or any other host is path style.
#[test]
fn virtual_host_style() {
    let route_host = |target: &str, host: &str| {
        let head = RequestHead::from_target("GET", target, Some(host));
        Endpoint::from_request(&head, Some(DOMAIN), &NoHeaders).map_err(|e| e.code)
    };
    assert_eq!(
        route_host("/a%20b/c", "my.bkt.s3.example.com:9000")
            .map(|e| (e.bucket().map(s), e.key().map(s))),
        Ok((Some(s("my.bkt")), Some(s("a b/c"))))
    );
    assert!(
        matches!(route_host("/", "BKT.S3.example.com"), Ok(Endpoint::ListObjects { bucket, .. }) if bucket == "bkt")
    );
    assert!(matches!(
        route_host("/?location", "bkt.s3.example.com"),
        Ok(Endpoint::GetBucketLocation { .. })
    ));
    assert_eq!(
        route_host("/", "s3.example.com"),
        Ok(Endpoint::ListBuckets {
            params: Box::default()
        })
    );
    assert_eq!(
        route_host("/", "127.0.0.1:9000"),
        Ok(Endpoint::ListBuckets {
            params: Box::default()
        })
    );
    assert!(
        matches!(route_host("/bkt/k", "other.host"), Ok(Endpoint::GetObject { bucket, .. }) if bucket == "bkt")
    );
    // In virtual-host style the whole path is the key, so a leading "bkt/" is part of it.
    assert_eq!(
        route_host("/bkt/k", "bkt.s3.example.com").map(|e| e.key().map(s)),
        Ok(Some(s("bkt/k")))
    );
    // A virtual host that is not a valid bucket name cannot exist.
    assert_eq!(
        route_host("/k", "Bad_Name.s3.example.com"),
        Err(S3ErrorCode::NoSuchBucket)
    );
}

/// Bad input maps to the S3 error codes the brief and S3 use.
#[test]
fn validation_errors() {
    let long_key = "k".repeat(KEY_BYTES_MAX + 1);
    let max_key = "k".repeat(KEY_BYTES_MAX);
    let cases: Vec<(&str, String, S3ErrorCode)> = vec![
        ("PATCH", s("/bkt/k"), S3ErrorCode::MethodNotAllowed),
        ("get", s("/bkt/k"), S3ErrorCode::MethodNotAllowed),
        ("PUT", s("/"), S3ErrorCode::MethodNotAllowed),
        ("PUT", s("/ab"), S3ErrorCode::InvalidBucketName),
        ("PUT", s("/Bucket"), S3ErrorCode::InvalidBucketName),
        ("PUT", s("/192.168.5.4"), S3ErrorCode::InvalidBucketName),
        ("PUT", s("/xn--bucket"), S3ErrorCode::InvalidBucketName),
        ("PUT", s("/bucket-s3alias"), S3ErrorCode::InvalidBucketName),
        ("PUT", s("/a..b"), S3ErrorCode::InvalidBucketName),
        ("GET", s("/Bucket"), S3ErrorCode::NoSuchBucket),
        ("GET", s("/b_b/key"), S3ErrorCode::NoSuchBucket),
        (
            "PUT",
            format!("/bkt/{long_key}"),
            S3ErrorCode::KeyTooLongError,
        ),
        ("GET", s("/bkt/a%zzb"), S3ErrorCode::InvalidURI),
        ("GET", s("/bkt/a%2"), S3ErrorCode::InvalidURI),
        ("GET", s("/bkt/%C3%28"), S3ErrorCode::InvalidURI),
        ("GET", s("/bkt?prefix=%ff"), S3ErrorCode::InvalidURI),
        ("GET", s("bkt/k"), S3ErrorCode::InvalidURI),
        ("GET", s("/bkt?max-keys=-1"), S3ErrorCode::InvalidArgument),
        ("GET", s("/bkt?max-keys=ten"), S3ErrorCode::InvalidArgument),
        (
            "GET",
            s("/bkt?list-type=2&max-keys="),
            S3ErrorCode::InvalidArgument,
        ),
        (
            "GET",
            s("/bkt?encoding-type=base64"),
            S3ErrorCode::InvalidArgument,
        ),
        ("GET", s("/bkt?list-type=3"), S3ErrorCode::InvalidArgument),
        (
            "GET",
            s("/bkt?list-type=2&fetch-owner=maybe"),
            S3ErrorCode::InvalidArgument,
        ),
        (
            "GET",
            s("/bkt?uploads&max-uploads=-5"),
            S3ErrorCode::InvalidArgument,
        ),
        (
            "GET",
            s("/bkt/k?partNumber=0"),
            S3ErrorCode::InvalidArgument,
        ),
        (
            "GET",
            s("/bkt/k?partNumber=10001"),
            S3ErrorCode::InvalidArgument,
        ),
        (
            "GET",
            s("/bkt/k?partNumber=%2B5"),
            S3ErrorCode::InvalidArgument,
        ),
        ("GET", s("/?max-buckets=0"), S3ErrorCode::InvalidArgument),
        (
            "GET",
            s("/?max-buckets=10001"),
            S3ErrorCode::InvalidArgument,
        ),
        ("GET", s("/?max-buckets=%2B5"), S3ErrorCode::InvalidArgument),
        (
            "GET",
            s("/bkt/k?uploadId=U&part-number-marker=%2B1"),
            S3ErrorCode::InvalidArgument,
        ),
        (
            "PUT",
            s("/bkt/k?partNumber=1"),
            S3ErrorCode::InvalidArgument,
        ),
        ("PUT", s("/bkt/k?uploadId=U"), S3ErrorCode::InvalidArgument),
        (
            "PUT",
            s("/bkt/k?partNumber=x&uploadId=U"),
            S3ErrorCode::InvalidArgument,
        ),
        (
            "PUT",
            s("/bkt/k?partNumber=1&uploadId="),
            S3ErrorCode::InvalidArgument,
        ),
        (
            "GET",
            s("/bkt/k?uploadId=U&part-number-marker=-1"),
            S3ErrorCode::InvalidArgument,
        ),
        (
            "HEAD",
            s("/bkt/k?uploadId=U"),
            S3ErrorCode::MethodNotAllowed,
        ),
        ("POST", s("/bkt/k"), S3ErrorCode::MethodNotAllowed),
        ("DELETE", s("/bkt?logging"), S3ErrorCode::MethodNotAllowed),
        (
            "GET",
            format!("/bkt?{}", "a=1&".repeat(65)),
            S3ErrorCode::InvalidArgument,
        ),
    ];
    for (method, target, code) in cases {
        assert_eq!(
            route(method, &target).map(|e| e.name()),
            Err(code),
            "{method} {target}"
        );
    }
    assert!(matches!(
        route("PUT", &format!("/bkt/{max_key}")),
        Ok(Endpoint::PutObject { .. })
    ));
    assert!(matches!(
        route("GET", &format!("/{}", "a".repeat(63))),
        Ok(Endpoint::ListObjects { .. })
    ));
}

/// max-keys and friends are capped at 1000, even past u32.
#[test]
fn limits_are_capped() {
    let head = RequestHead::from_target("GET", "/bkt?max-keys=-1", None);
    let err = Endpoint::from_request(&head, None, &NoHeaders).expect_err("negative");
    assert_eq!(err.message, "max-keys must be a non-negative integer");
    assert_eq!(err.resource, "/bkt");
    assert!(matches!(
        route("GET", "/bkt?max-keys=99999999999999999999"),
        Ok(Endpoint::ListObjects { params, .. }) if params.max_keys == LIST_ENTRIES_MAX
    ));
    assert!(matches!(
        route("GET", "/bkt/k?uploadId=U&max-parts=1001"),
        Ok(Endpoint::ListParts { params, .. }) if params.max_parts == LIST_ENTRIES_MAX
    ));
}

/// Sub-resources Tessera does not implement route to named 501 operations for each method.
#[test]
fn unsupported_subresources() {
    let cases = [
        ("PUT", "/bkt?versioning", UnsupportedOp::PutBucketVersioning),
        ("PUT", "/bkt?acl", UnsupportedOp::PutBucketAcl),
        ("GET", "/bkt?policy", UnsupportedOp::GetBucketPolicy),
        ("DELETE", "/bkt?policy", UnsupportedOp::DeleteBucketPolicy),
        ("GET", "/bkt?tagging", UnsupportedOp::GetBucketTagging),
        (
            "PUT",
            "/bkt?lifecycle",
            UnsupportedOp::PutBucketLifecycleConfiguration,
        ),
        ("GET", "/bkt?cors", UnsupportedOp::GetBucketCors),
        ("GET", "/bkt?encryption", UnsupportedOp::GetBucketEncryption),
        (
            "GET",
            "/bkt?object-lock",
            UnsupportedOp::GetObjectLockConfiguration,
        ),
        ("GET", "/bkt?website", UnsupportedOp::GetBucketWebsite),
        ("GET", "/bkt?logging", UnsupportedOp::GetBucketLogging),
        (
            "GET",
            "/bkt?notification",
            UnsupportedOp::GetBucketNotificationConfiguration,
        ),
        ("GET", "/bkt?versions", UnsupportedOp::ListObjectVersions),
        (
            "GET",
            "/bkt?ownershipControls",
            UnsupportedOp::GetBucketOwnershipControls,
        ),
        (
            "GET",
            "/bkt?publicAccessBlock",
            UnsupportedOp::GetPublicAccessBlock,
        ),
        ("POST", "/bkt", UnsupportedOp::PostObject),
        ("OPTIONS", "/bkt/k", UnsupportedOp::PreflightRequest),
        ("GET", "/bkt/k?tagging", UnsupportedOp::GetObjectTagging),
        ("PUT", "/bkt/k?tagging", UnsupportedOp::PutObjectTagging),
        ("PUT", "/bkt/k?acl", UnsupportedOp::PutObjectAcl),
        ("GET", "/bkt/k?retention", UnsupportedOp::GetObjectRetention),
        (
            "GET",
            "/bkt/k?attributes",
            UnsupportedOp::GetObjectAttributes,
        ),
        ("POST", "/bkt/k?restore", UnsupportedOp::RestoreObject),
        (
            "POST",
            "/bkt/k?select&select-type=2",
            UnsupportedOp::SelectObjectContent,
        ),
    ];
    for (method, target, op) in cases {
        let endpoint = route(method, target).expect(target);
        assert!(
            matches!(&endpoint, Endpoint::Unsupported { operation, .. } if *operation == op),
            "{method} {target}: {endpoint:?}"
        );
        assert_eq!(endpoint.name(), op.name());
        let body = if method == "PUT" {
            BodyKind::Xml
        } else {
            BodyKind::None
        };
        assert_eq!(endpoint.body(), body, "{target}");
    }
}

/// The body kind tells the server whether to stream, buffer XML, or expect nothing.
#[test]
fn body_kinds() {
    let kind = |m: &str, t: &str| route(m, t).expect(t).body();
    assert_eq!(kind("PUT", "/bkt/k"), BodyKind::Stream);
    assert_eq!(
        kind("PUT", "/bkt/k?partNumber=1&uploadId=U"),
        BodyKind::Stream
    );
    assert_eq!(kind("PUT", "/bkt"), BodyKind::Xml);
    assert_eq!(kind("POST", "/bkt?delete"), BodyKind::Xml);
    assert_eq!(kind("POST", "/bkt/k?uploadId=U"), BodyKind::Xml);
    assert_eq!(kind("GET", "/bkt/k"), BodyKind::None);
    assert_eq!(kind("POST", "/bkt/k?uploads"), BodyKind::None);
    let copy = route_with("PUT", "/bkt/k", &[("x-amz-copy-source", "src/k")]).expect("copy");
    assert_eq!(copy.body(), BodyKind::None);
}

/// GetObject response overrides (presigned URLs) are decoded with form rules.
#[test]
fn response_overrides() {
    let endpoint = route(
        "GET",
        "/bkt/k?response-content-type=text%2Fplain&response-content-disposition=attachment%3B+filename%3D%22a+b.txt%22&X-Amz-Algorithm=AWS4-HMAC-SHA256",
    );
    let Ok(Endpoint::GetObject { params, .. }) = endpoint else {
        panic!("{endpoint:?}")
    };
    let overrides = params.overrides.expect("overrides present");
    assert_eq!(overrides.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        overrides.content_disposition.as_deref(),
        Some("attachment; filename=\"a b.txt\"")
    );
    assert_eq!(overrides.cache_control, None);
}

/// Hostile keys from the style guide route to exactly the key the client meant, both as an
/// SDK encodes them (everything escaped) and with the characters clients leave raw.
#[test]
fn hostile_keys() {
    let keys = [
        "a+b",
        "a b",
        "100%",
        "%2B",
        "k=v&x=y",
        "~user",
        "日本語/ファイル.txt",
        "emoji 🦀",
        "a//b",
        "/leading",
        "trailing/",
        "//",
        "ctrl\u{1}\u{7f}\r\n\t",
        "nul\u{0}",
        "?query#hash",
        ".",
        "..",
        "../../etc/passwd",
        "with 'quotes' and \"doubles\" <tags> &amp;",
    ];
    for key in keys {
        let mut target = String::from("/bkt/");
        encode_path_into(&mut target, key);
        let got = route("GET", &target).map(|e| e.key().map(s));
        assert_eq!(got, Ok(Some(s(key))), "{target}");
    }
    // Characters that clients send raw in the path.
    for (raw, key) in [
        ("/bkt/a+b", "a+b"),
        ("/bkt/a=b~c", "a=b~c"),
        ("/bkt/a//b/", "a//b/"),
    ] {
        assert_eq!(
            route("PUT", raw).map(|e| e.key().map(s)),
            Ok(Some(s(key))),
            "{raw}"
        );
    }
}

/// A head parsed by the HTTP codec routes directly: method, path, query, Host and the copy
/// headers all come from it.
#[test]
fn routes_codec_heads() {
    use tessera_http::codec::{head::parse_head, HeadLimits, RequestHead as CodecHead};
    let wire = b"PUT /a%20b+c?partNumber=3&uploadId=U HTTP/1.1\r\nHost: bkt.s3.example.com\r\n\
                 X-Amz-Copy-Source: /src/k%2B1\r\nx-amz-copy-source-range: bytes=0-9\r\n\r\n";
    let mut head = CodecHead::default();
    let len = parse_head(wire, &HeadLimits::default(), &mut head).expect("parses");
    assert_eq!(len, Some(wire.len()));
    let endpoint = Endpoint::from_request(&(&head).into(), Some(DOMAIN), &head);
    assert_eq!(
        endpoint.map_err(|e| e.code),
        Ok(Endpoint::UploadPartCopy {
            bucket: s("bkt"),
            key: s("a b+c"),
            upload_id: s("U"),
            part_number: 3,
            source: Box::new(CopySource {
                bucket: s("src"),
                key: s("k+1"),
                version_id: None
            }),
            range: Some(CopyRange { first: 0, last: 9 }),
        })
    );
}

/// Client-side encoding of a path the way SDKs do: everything but unreserved and `/` escaped,
/// optionally leaving `+` raw (some clients do, and it must still mean a plus).
fn client_path(bucket: &str, key: &str, raw_plus: bool) -> String {
    let mut target = format!("/{bucket}/");
    encode_path_into(&mut target, key);
    if raw_plus {
        target = target.replace("%2B", "+");
    }
    target
}

fn key_strategy() -> impl Strategy<Value = String> {
    let hostile = prop::sample::select(vec![
        '+', ' ', '%', '=', '~', '/', '?', '#', '&', 'é', '日', '\u{1}', '\u{0}', '\r', 'a', 'Z',
        '.',
    ]);
    prop_oneof![
        prop::collection::vec(hostile, 1..64).prop_map(|c| c.into_iter().collect::<String>()),
        any::<String>(),
    ]
    .prop_filter("1..=1024 bytes", |k| {
        !k.is_empty() && k.len() <= KEY_BYTES_MAX
    })
}

proptest! {
    /// Any valid key round-trips through client encoding → router → decoded key, in path and
    /// virtual-host style, with `+` escaped or raw.
    #[test]
    fn any_key_round_trips(key in key_strategy(), raw_plus in any::<bool>()) {
        let target = client_path("bkt", &key, raw_plus);
        let routed = route("PUT", &target);
        prop_assert_eq!(routed, Ok(Endpoint::PutObject { bucket: s("bkt"), key: key.clone() }));

        let vhost_target = target.strip_prefix("/bkt").expect("prefix");
        let head = RequestHead::from_target("GET", vhost_target, Some("bkt.s3.example.com"));
        let routed = Endpoint::from_request(&head, Some(DOMAIN), &NoHeaders);
        prop_assert_eq!(routed.ok().and_then(|e| e.key().map(s)), Some(key));
    }

    /// Any prefix round-trips as a query value, with spaces sent as `%20` or `+`.
    #[test]
    fn any_prefix_round_trips(prefix in key_strategy(), plus_for_space in any::<bool>()) {
        let mut encoded = String::new();
        encode_path_into(&mut encoded, &prefix);
        let encoded = encoded.replace('/', "%2F");
        let encoded = if plus_for_space { encoded.replace("%20", "+") } else { encoded };
        let routed = route("GET", &format!("/bkt?list-type=2&prefix={encoded}"));
        let Ok(Endpoint::ListObjectsV2 { params, .. }) = routed else {
            return Err(TestCaseError::fail(format!("{routed:?}")));
        };
        prop_assert_eq!(params.prefix, prefix);
    }

    /// Fully arbitrary text in every field never panics the router, and whatever routes names a
    /// valid bucket and a key within the limit.
    #[test]
    fn arbitrary_text_never_panics(
        method in any::<String>(),
        path in any::<String>(),
        query in any::<String>(),
        host in any::<String>(),
        copy in any::<String>(),
    ) {
        let path = format!("/{path}");
        let head = RequestHead { method: &method, path: &path, query: &query, host: Some(&host) };
        let headers = [("x-amz-copy-source", copy.as_str()), ("x-amz-copy-source-range", copy.as_str())];
        if let Ok(endpoint) = Endpoint::from_request(&head, Some(DOMAIN), &headers[..]) {
            prop_assert!(endpoint.key().is_none_or(|k| !k.is_empty() && k.len() <= KEY_BYTES_MAX));
        }
        let put = RequestHead { method: "PUT", path: &path, query: &query, host: Some(&host) };
        let _ = Endpoint::from_request(&put, Some(DOMAIN), &headers[..]);
    }

    /// Arbitrary request heads never panic the router; they route or fail with an S3 error.
    #[test]
    fn arbitrary_heads_never_panic(
        method in prop::sample::select(vec!["GET", "PUT", "POST", "HEAD", "DELETE", "OPTIONS", "X"]),
        path in "/[a-z0-9%+./ -]{0,40}",
        query in "[a-zA-Z0-9%+=&-]{0,40}",
    ) {
        let head = RequestHead { method, path: &path, query: &query, host: Some("bkt.s3.example.com") };
        let result = Endpoint::from_request(&head, Some(DOMAIN), &NoHeaders);
        if let Err(err) = result {
            prop_assert!((400..600).contains(&err.status()));
        }
    }
}
