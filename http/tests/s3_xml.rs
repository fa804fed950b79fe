//! The XML layer through its public API: response documents compared with the examples of the S3
//! API reference, request documents parsed from those examples, every rejection path, and
//! properties (hostile keys survive escaping; arbitrary bytes never panic a parser).

// S3 operation and element names (CopyObject, ETag) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use std::fmt::Write as _;

use proptest::prelude::*;
use tessera_http::error::escape_xml_into;
use tessera_http::s3::percent::decode_path;
use tessera_http::xml::{
    parse_complete_multipart_upload, parse_create_bucket_configuration, parse_delete,
    AccessControlPolicy, BucketInfo, Checksums, CompleteMultipartUploadResult, CompletedPart,
    CopyObjectResult, CopyPartResult, DeleteError, DeleteResult, DeletedObject,
    InitiateMultipartUploadResult, ListAllMyBucketsResult, ListMultipartUploadsResult,
    ListObjectsResult, ListObjectsV2Result, ListPartsResult, LocationConstraint, ObjectIdentifier,
    ObjectInfo, Owner, PartInfo, Timestamp, UploadInfo, VersioningConfiguration, XmlBody,
    DELETE_OBJECTS_MAX, XML_BODY_BYTES_MAX,
};
use tessera_http::S3ErrorCode;

const DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
const NS: &str = "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"";

/// 2009-10-12T17:50:30.000Z, the date of the ListObjects examples in the S3 API reference.
const EXAMPLE_TIME: Timestamp = Timestamp::from_unix_ms(1_255_369_830_000);

fn owner() -> Owner {
    Owner {
        id: "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a".into(),
        display_name: "mtd@amazon.com".into(),
    }
}

fn object(key: &str) -> ObjectInfo {
    ObjectInfo {
        key: key.into(),
        last_modified: EXAMPLE_TIME,
        etag: "fba9dede5f27731c9771645a39863328".into(),
        size: 434_234,
        owner: Some(owner()),
        checksum_algorithm: None,
    }
}

/// The ListObjectsV2 example of the S3 API reference ("my-image.jpg") is written element for
/// element; the owner is left out without fetch-owner.
#[test]
fn list_objects_v2_reference_example() {
    let contents = [object("my-image.jpg")];
    let xml = ListObjectsV2Result {
        bucket: "bucket",
        prefix: "",
        delimiter: None,
        max_keys: 1000,
        encoding_url: false,
        continuation_token: None,
        start_after: None,
        fetch_owner: false,
        is_truncated: false,
        next_continuation_token: None,
        contents: &contents,
        common_prefixes: &[],
    }
    .to_xml();
    let expected = format!(
        "{DECL}<ListBucketResult {NS}><Name>bucket</Name><Prefix></Prefix>\
         <KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>\
         <Contents><Key>my-image.jpg</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>\
         <ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>\
         <StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>"
    );
    assert_eq!(xml, expected);
}

/// A truncated v2 page with tokens, start-after, owners and common prefixes: KeyCount counts
/// both kinds of entries, tokens are echoed, owners appear with fetch-owner.
#[test]
fn list_objects_v2_paging_fields() {
    let contents = [object("photos/a.jpg")];
    let prefixes = ["photos/2006/".to_owned(), "photos/2007/".to_owned()];
    let xml = ListObjectsV2Result {
        bucket: "example-bucket",
        prefix: "photos/",
        delimiter: Some("/"),
        max_keys: 3,
        encoding_url: false,
        continuation_token: Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm"),
        start_after: Some("photos/0"),
        fetch_owner: true,
        is_truncated: true,
        next_continuation_token: Some("next&token"),
        contents: &contents,
        common_prefixes: &prefixes,
    }
    .to_xml();
    for part in [
        "<ContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm</ContinuationToken>",
        "<NextContinuationToken>next&amp;token</NextContinuationToken>",
        "<StartAfter>photos/0</StartAfter>",
        "<KeyCount>3</KeyCount>",
        "<Delimiter>/</Delimiter>",
        "<IsTruncated>true</IsTruncated>",
        "<Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID><DisplayName>mtd@amazon.com</DisplayName></Owner>",
        "<CommonPrefixes><Prefix>photos/2006/</Prefix></CommonPrefixes><CommonPrefixes><Prefix>photos/2007/</Prefix></CommonPrefixes></ListBucketResult>",
    ] {
        assert!(xml.contains(part), "missing {part} in {xml}");
    }
    assert!(!xml.contains("EncodingType"));
}

/// v1 with encoding-type=url: Key, Prefix, Delimiter, Marker, NextMarker and CommonPrefixes are
/// URL-encoded, EncodingType is announced, the bucket name is not encoded, and Owner is written.
#[test]
fn list_objects_v1_url_encoding() {
    let contents = [object("a b+c%/é\u{1}.txt")];
    let prefixes = ["dir one/".to_owned()];
    let xml = ListObjectsResult {
        bucket: "bkt",
        prefix: "a b",
        marker: "m+1",
        delimiter: Some("/"),
        max_keys: 1000,
        encoding_url: true,
        is_truncated: true,
        next_marker: Some("n&1"),
        contents: &contents,
        common_prefixes: &prefixes,
    }
    .to_xml();
    let expected = format!(
        "{DECL}<ListBucketResult {NS}><Name>bkt</Name><Prefix>a%20b</Prefix>\
         <Marker>m%2B1</Marker><NextMarker>n%261</NextMarker><MaxKeys>1000</MaxKeys>\
         <Delimiter>/</Delimiter><IsTruncated>true</IsTruncated><EncodingType>url</EncodingType>\
         <Contents><Key>a%20b%2Bc%25/%C3%A9%01.txt</Key>\
         <LastModified>2009-10-12T17:50:30.000Z</LastModified>\
         <ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>\
         <Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>\
         <DisplayName>mtd@amazon.com</DisplayName></Owner><StorageClass>STANDARD</StorageClass>\
         </Contents><CommonPrefixes><Prefix>dir%20one/</Prefix></CommonPrefixes>\
         </ListBucketResult>"
    );
    assert_eq!(xml, expected);
}

/// Without encoding-type, keys are XML-escaped (control bytes as character references).
#[test]
fn list_keys_xml_escaped() {
    let contents = [object("<a&b>\u{1}")];
    let xml = ListObjectsResult {
        bucket: "bkt",
        prefix: "",
        marker: "",
        delimiter: None,
        max_keys: 1000,
        encoding_url: false,
        is_truncated: false,
        next_marker: None,
        contents: &contents,
        common_prefixes: &[],
    }
    .to_xml();
    assert!(xml.contains("<Key>&lt;a&amp;b&gt;&#x1;</Key>"), "{xml}");
    assert!(xml.contains("<Marker></Marker>"));
    assert!(!xml.contains("NextMarker"));
}

/// ListBuckets in the shape of the S3 API reference example.
#[test]
fn list_buckets() {
    let buckets = [
        BucketInfo {
            name: "examplebucket".into(),
            creation_date: Timestamp::from_unix_ms(1_477_519_386_000),
        },
        BucketInfo {
            name: "examplebucket2".into(),
            creation_date: Timestamp::from_unix_ms(1_477_519_387_123),
        },
    ];
    let owner = owner();
    let xml = ListAllMyBucketsResult {
        owner: &owner,
        buckets: &buckets,
        continuation_token: None,
        prefix: None,
    }
    .to_xml();
    let expected = format!(
        "{DECL}<ListAllMyBucketsResult {NS}><Owner><ID>{}</ID><DisplayName>mtd@amazon.com</DisplayName></Owner>\
         <Buckets><Bucket><Name>examplebucket</Name><CreationDate>2016-10-26T22:03:06.000Z</CreationDate></Bucket>\
         <Bucket><Name>examplebucket2</Name><CreationDate>2016-10-26T22:03:07.123Z</CreationDate></Bucket>\
         </Buckets></ListAllMyBucketsResult>",
        owner.id
    );
    assert_eq!(xml, expected);

    // A paginated page echoes the prefix and hands out the next token after the buckets.
    let page = ListAllMyBucketsResult {
        owner: &owner,
        buckets: &buckets[..1],
        continuation_token: Some("dG9r&"),
        prefix: Some("example"),
    }
    .to_xml();
    assert!(
        page.ends_with("</Buckets><ContinuationToken>dG9r&amp;</ContinuationToken><Prefix>example</Prefix></ListAllMyBucketsResult>"),
        "{page}"
    );
}

/// GetBucketLocation: us-east-1 is an empty element, other regions are named.
#[test]
fn location_constraint() {
    assert_eq!(
        LocationConstraint {
            region: "us-east-1"
        }
        .to_xml(),
        format!("{DECL}<LocationConstraint {NS}></LocationConstraint>")
    );
    assert_eq!(
        LocationConstraint {
            region: "eu-west-1"
        }
        .to_xml(),
        format!("{DECL}<LocationConstraint {NS}>eu-west-1</LocationConstraint>")
    );
}

/// The fixed answers: versioning never enabled, owner with full control.
#[test]
fn fixed_answers() {
    assert_eq!(
        VersioningConfiguration.to_xml(),
        format!("{DECL}<VersioningConfiguration {NS}></VersioningConfiguration>")
    );
    let owner = owner();
    let acl = AccessControlPolicy { owner: &owner }.to_xml();
    assert!(
        acl.contains("xsi:type=\"CanonicalUser\"><ID>75aa57f0"),
        "{acl}"
    );
    assert!(acl.ends_with(
        "<Permission>FULL_CONTROL</Permission></Grant></AccessControlList></AccessControlPolicy>"
    ));
}

/// Multipart documents follow the reference examples (Example-Bucket / "example-object").
#[test]
fn multipart_documents() {
    let xml = InitiateMultipartUploadResult {
        bucket: "example-bucket",
        key: "example-object",
        upload_id: "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA",
    }
    .to_xml();
    assert_eq!(
        xml,
        format!(
            "{DECL}<InitiateMultipartUploadResult {NS}><Bucket>example-bucket</Bucket>\
             <Key>example-object</Key><UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>\
             </InitiateMultipartUploadResult>"
        )
    );

    let checksums = Checksums {
        crc64nvme: Some("AAAAAAAAAAA=".into()),
        ..Checksums::default()
    };
    let xml = CompleteMultipartUploadResult {
        location: "http://Example-Bucket.s3.Region.amazonaws.com/Example-Object",
        bucket: "Example-Bucket",
        key: "Example-Object",
        etag: "3858f62230ac3c915f300c664312c11f-9",
        checksums: &checksums,
        checksum_type: Some("FULL_OBJECT"),
    }
    .to_xml();
    assert_eq!(
        xml,
        format!(
            "{DECL}<CompleteMultipartUploadResult {NS}>\
             <Location>http://Example-Bucket.s3.Region.amazonaws.com/Example-Object</Location>\
             <Bucket>Example-Bucket</Bucket><Key>Example-Object</Key>\
             <ETag>&quot;3858f62230ac3c915f300c664312c11f-9&quot;</ETag>\
             <ChecksumCRC64NVME>AAAAAAAAAAA=</ChecksumCRC64NVME><ChecksumType>FULL_OBJECT</ChecksumType>\
             </CompleteMultipartUploadResult>"
        )
    );

    let owner = owner();
    let parts = [
        PartInfo {
            part_number: 2,
            last_modified: Timestamp::from_unix_ms(1_288_658_282_000),
            etag: "\"7778aef83f66abc1fa1e8477f296d394\"".into(),
            size: 10_485_760,
            checksums: Checksums::default(),
        },
        PartInfo {
            part_number: 3,
            last_modified: Timestamp::from_unix_ms(1_288_658_283_000),
            etag: "aaaa18db4cc2f85cedef654fccc4a4x8".into(),
            size: 10_485_760,
            checksums: Checksums {
                sha256: Some("c2hh".into()),
                ..Checksums::default()
            },
        },
    ];
    let xml = ListPartsResult {
        bucket: "example-bucket",
        key: "example-object",
        upload_id: "XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA",
        owner: &owner,
        part_number_marker: 1,
        next_part_number_marker: 3,
        max_parts: 2,
        is_truncated: true,
        checksum_algorithm: Some("SHA256"),
        checksum_type: Some("COMPOSITE"),
        parts: &parts,
    }
    .to_xml();
    for part in [
        "<PartNumberMarker>1</PartNumberMarker><NextPartNumberMarker>3</NextPartNumberMarker><MaxParts>2</MaxParts><IsTruncated>true</IsTruncated>",
        "<Part><PartNumber>2</PartNumber><LastModified>2010-11-02T00:38:02.000Z</LastModified><ETag>&quot;7778aef83f66abc1fa1e8477f296d394&quot;</ETag><Size>10485760</Size></Part>",
        "<ChecksumSHA256>c2hh</ChecksumSHA256></Part></ListPartsResult>",
        "<ChecksumAlgorithm>SHA256</ChecksumAlgorithm><ChecksumType>COMPOSITE</ChecksumType><Part>",
        "<Initiator><ID>75aa57f0",
    ] {
        assert!(xml.contains(part), "missing {part} in {xml}");
    }

    let uploads = [UploadInfo {
        key: "my movie.m2ts".into(),
        upload_id: "VXBsb2FkIElE".into(),
        initiated: Timestamp::from_unix_ms(1_288_658_282_000),
        owner: owner.clone(),
    }];
    let prefixes = ["photos/".to_owned()];
    let xml = ListMultipartUploadsResult {
        bucket: "bucket",
        key_marker: "",
        upload_id_marker: "",
        next_key_marker: Some("my movie.m2ts"),
        next_upload_id_marker: Some("VXBsb2FkIElE"),
        prefix: "",
        delimiter: Some("/"),
        max_uploads: 3,
        encoding_url: true,
        is_truncated: true,
        uploads: &uploads,
        common_prefixes: &prefixes,
    }
    .to_xml();
    for part in [
        "<Bucket>bucket</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><NextKeyMarker>my%20movie.m2ts</NextKeyMarker><NextUploadIdMarker>VXBsb2FkIElE</NextUploadIdMarker>",
        "<MaxUploads>3</MaxUploads><IsTruncated>true</IsTruncated><EncodingType>url</EncodingType>",
        "<Upload><Key>my%20movie.m2ts</Key><UploadId>VXBsb2FkIElE</UploadId>",
        "<StorageClass>STANDARD</StorageClass><Initiated>2010-11-02T00:38:02.000Z</Initiated></Upload>",
        "<CommonPrefixes><Prefix>photos/</Prefix></CommonPrefixes></ListMultipartUploadsResult>",
    ] {
        assert!(xml.contains(part), "missing {part} in {xml}");
    }
}

/// Copy results carry the ETag and the date (reference example: 2009-10-28T22:32:00Z).
#[test]
fn copy_results() {
    let none = Checksums::default();
    let time = Timestamp::from_unix_ms(1_256_769_120_000);
    assert_eq!(
        CopyObjectResult {
            etag: "9b2cf535f27731c974343645a3985328",
            last_modified: time,
            checksums: &none
        }
        .to_xml(),
        format!(
            "{DECL}<CopyObjectResult {NS}><ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag>\
             <LastModified>2009-10-28T22:32:00.000Z</LastModified></CopyObjectResult>"
        )
    );
    let xml = CopyPartResult {
        etag: "b",
        last_modified: time,
        checksums: &none,
    }
    .to_xml();
    assert!(
        xml.contains(&format!("<CopyPartResult {NS}><ETag>&quot;b&quot;</ETag>")),
        "{xml}"
    );
}

/// DeleteResult lists deleted keys and errors; quiet mode lists only errors.
#[test]
fn delete_result() {
    let deleted = [
        DeletedObject {
            key: "sample1.txt".into(),
            version_id: None,
        },
        DeletedObject {
            key: "a&b".into(),
            version_id: Some("v1".into()),
        },
    ];
    let errors = [DeleteError {
        key: "sample2.txt".into(),
        version_id: None,
        code: S3ErrorCode::AccessDenied,
        message: "Access Denied".into(),
    }];
    let verbose = DeleteResult {
        quiet: false,
        deleted: &deleted,
        errors: &errors,
    }
    .to_xml();
    assert_eq!(
        verbose,
        format!(
            "{DECL}<DeleteResult {NS}><Deleted><Key>sample1.txt</Key></Deleted>\
             <Deleted><Key>a&amp;b</Key><VersionId>v1</VersionId></Deleted>\
             <Error><Key>sample2.txt</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>\
             </DeleteResult>"
        )
    );
    let quiet = DeleteResult {
        quiet: true,
        deleted: &deleted,
        errors: &errors,
    }
    .to_xml();
    assert!(!quiet.contains("<Deleted>"));
    assert!(quiet.contains("<Error><Key>sample2.txt</Key>"));
}

/// CreateBucketConfiguration from the reference example, with and without a namespace; an
/// empty body is no configuration.
#[test]
fn create_bucket_configuration() {
    let body = format!(
        "<CreateBucketConfiguration {NS}>\n  <LocationConstraint>Europe</LocationConstraint>\n</CreateBucketConfiguration>"
    );
    let parsed = parse_create_bucket_configuration(body.as_bytes()).expect("valid");
    assert_eq!(parsed.location_constraint.as_deref(), Some("Europe"));
    let parsed = parse_create_bucket_configuration(b"").expect("empty");
    assert_eq!(parsed.location_constraint, None);
    let parsed = parse_create_bucket_configuration(
        b"<CreateBucketConfiguration><LocationConstraint/></CreateBucketConfiguration>",
    )
    .expect("empty element");
    assert_eq!(parsed.location_constraint, None);
    let err = parse_create_bucket_configuration(b"<Other/>").expect_err("wrong root");
    assert_eq!(err.code, S3ErrorCode::MalformedXML);
}

/// The Delete example of the reference (two keys, one with a version id), a conditional key
/// (an ETag) and quiet mode; keys keep their surrounding whitespace.
#[test]
fn delete_request() {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Delete {NS}>\n  <Object>\n    <Key>sample1.txt</Key>\n  </Object>\n  \
         <Object>\n    <Key> sample2 &amp; more.txt </Key>\n    <VersionId>OYcLXagmS.WaD..oyH4KRguB95_YhLs7</VersionId>\n  </Object>\n  \
         <Object>\n    <Key>sample3.txt</Key>\n    <ETag>\"986173e9a4bf0c4a8e3a7d2d5a8e8f4b\"</ETag>\n  </Object>\n  \
         <Quiet>true</Quiet>\n</Delete>"
    );
    let parsed = parse_delete(body.as_bytes()).expect("valid");
    assert!(parsed.quiet);
    assert_eq!(
        parsed.objects,
        vec![
            ObjectIdentifier {
                key: "sample1.txt".into(),
                version_id: None,
                etag: None,
            },
            ObjectIdentifier {
                key: " sample2 & more.txt ".into(),
                version_id: Some("OYcLXagmS.WaD..oyH4KRguB95_YhLs7".into()),
                etag: None,
            },
            ObjectIdentifier {
                key: "sample3.txt".into(),
                version_id: None,
                etag: Some("\"986173e9a4bf0c4a8e3a7d2d5a8e8f4b\"".into()),
            },
        ]
    );
    let parsed = parse_delete(b"<Delete><Object><Key>k</Key></Object></Delete>").expect("valid");
    assert!(!parsed.quiet);
}

fn delete_body(count: usize) -> String {
    let mut body = String::from("<Delete>");
    for i in 0..count {
        let _ = write!(body, "<Object><Key>key-{i}</Key></Object>");
    }
    body.push_str("</Delete>");
    body
}

/// 1000 objects are accepted, 1001 are MalformedXML; so are empty and key-less documents.
#[test]
fn delete_request_limits() {
    let parsed = parse_delete(delete_body(DELETE_OBJECTS_MAX).as_bytes()).expect("1000 objects");
    assert_eq!(parsed.objects.len(), DELETE_OBJECTS_MAX);
    assert_eq!(parsed.objects[999].key, "key-999");
    for bad in [
        delete_body(DELETE_OBJECTS_MAX + 1),
        delete_body(0),
        "<Delete><Object><VersionId>v</VersionId></Object></Delete>".into(),
        "<Delete><Object><Key></Key></Object></Delete>".into(),
        "<Delete><Object><Key>k</Key></Object><Quiet>yes</Quiet></Delete>".into(),
        "<Delete><Object><Key>k</Key></Object>".into(),
        "<NotDelete><Object><Key>k</Key></Object></NotDelete>".into(),
    ] {
        let err = parse_delete(bad.as_bytes()).expect_err(&bad[..bad.len().min(80)]);
        assert_eq!(
            err.code,
            S3ErrorCode::MalformedXML,
            "{}",
            &bad[..bad.len().min(80)]
        );
    }
}

/// The CompleteMultipartUpload example of the reference: quoted ETags, checksums per part.
#[test]
fn complete_multipart_upload() {
    let body = format!(
        "<CompleteMultipartUpload {NS}>\n\
         <Part><PartNumber>1</PartNumber><ETag>\"a54357aff0632cce46d942af68356b38\"</ETag>\
         <ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>\n\
         <Part><ETag>&quot;0c78aef83f66abc1fa1e8477f296d394&quot;</ETag><PartNumber> 2 </PartNumber>\
         <ChecksumCRC32C>BBBBBB==</ChecksumCRC32C><ChecksumCRC64NVME>CCC=</ChecksumCRC64NVME>\
         <ChecksumSHA1>DDD=</ChecksumSHA1><ChecksumSHA256>EEE=</ChecksumSHA256></Part>\n\
         <Part><PartNumber>10000</PartNumber><ETag>acbd18db4cc2f85cedef654fccc4a4d8</ETag></Part>\n\
         </CompleteMultipartUpload>"
    );
    let parsed = parse_complete_multipart_upload(body.as_bytes()).expect("valid");
    assert_eq!(
        parsed.parts,
        vec![
            CompletedPart {
                part_number: 1,
                etag: "a54357aff0632cce46d942af68356b38".into(),
                checksums: Checksums {
                    crc32: Some("AAAAAA==".into()),
                    ..Checksums::default()
                },
            },
            CompletedPart {
                part_number: 2,
                etag: "0c78aef83f66abc1fa1e8477f296d394".into(),
                checksums: Checksums {
                    crc32: None,
                    crc32c: Some("BBBBBB==".into()),
                    crc64nvme: Some("CCC=".into()),
                    sha1: Some("DDD=".into()),
                    sha256: Some("EEE=".into()),
                },
            },
            CompletedPart {
                part_number: 10_000,
                etag: "acbd18db4cc2f85cedef654fccc4a4d8".into(),
                checksums: Checksums::default(),
            },
        ]
    );
}

/// Each way a CompleteMultipartUpload can be wrong maps to its S3 code.
#[test]
fn complete_multipart_upload_errors() {
    let part = |n: &str| format!("<Part><PartNumber>{n}</PartNumber><ETag>\"e\"</ETag></Part>");
    let doc = |parts: &[String]| {
        format!(
            "<CompleteMultipartUpload>{}</CompleteMultipartUpload>",
            parts.concat()
        )
    };
    let cases = [
        (doc(&[part("2"), part("1")]), S3ErrorCode::InvalidPartOrder),
        (doc(&[part("1"), part("1")]), S3ErrorCode::InvalidPartOrder),
        (doc(&[part("0")]), S3ErrorCode::InvalidArgument),
        (doc(&[part("10001")]), S3ErrorCode::InvalidArgument),
        (doc(&[part("99999999999")]), S3ErrorCode::InvalidArgument),
        (doc(&[part("one")]), S3ErrorCode::MalformedXML),
        (doc(&[part("-1")]), S3ErrorCode::MalformedXML),
        (doc(&[]), S3ErrorCode::MalformedXML),
        (
            doc(&["<Part><PartNumber>1</PartNumber></Part>".into()]),
            S3ErrorCode::MalformedXML,
        ),
        (
            doc(&["<Part><ETag>e</ETag></Part>".into()]),
            S3ErrorCode::MalformedXML,
        ),
        (
            doc(&["<Part><PartNumber>1</PartNumber><ETag>\"\"</ETag></Part>".into()]),
            S3ErrorCode::MalformedXML,
        ),
        (
            "<CompleteMultipartUpload><Part>".into(),
            S3ErrorCode::MalformedXML,
        ),
        ("not xml at all".into(), S3ErrorCode::MalformedXML),
    ];
    for (body, code) in cases {
        let err = parse_complete_multipart_upload(body.as_bytes()).expect_err(&body);
        assert_eq!(err.code, code, "{body}");
    }
}

/// The largest legitimate CompleteMultipartUpload (10 000 parts, every checksum) fits the body
/// and element limits; one part more is MalformedXML.
#[test]
fn complete_multipart_upload_at_the_limit() {
    let body = |parts: u32| {
        let mut body = String::from("<CompleteMultipartUpload>");
        for n in 1..=parts {
            let _ = write!(
                body,
                "<Part><PartNumber>{n}</PartNumber><ETag>\"{n:032x}\"</ETag>\
                 <ChecksumCRC32>AAAAAA==</ChecksumCRC32><ChecksumCRC32C>AAAAAA==</ChecksumCRC32C>\
                 <ChecksumCRC64NVME>AAAAAAAAAAA=</ChecksumCRC64NVME>\
                 <ChecksumSHA1>AAAAAAAAAAAAAAAAAAAAAAAAAAA=</ChecksumSHA1>\
                 <ChecksumSHA256>AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=</ChecksumSHA256></Part>"
            );
        }
        body.push_str("</CompleteMultipartUpload>");
        body
    };
    let full = body(10_000);
    assert!(full.len() <= XML_BODY_BYTES_MAX, "{} bytes", full.len());
    let parsed = parse_complete_multipart_upload(full.as_bytes()).expect("10000 parts");
    assert_eq!(parsed.parts.len(), 10_000);
    assert_eq!(parsed.parts[9_999].etag, format!("{:032x}", 10_000));
    let err = parse_complete_multipart_upload(body(10_001).as_bytes()).expect_err("10001");
    assert_eq!(err.code, S3ErrorCode::MalformedXML);
}

/// Bodies over the limit are refused before parsing.
#[test]
fn oversized_body() {
    let mut body = delete_body(1).into_bytes();
    body.resize(XML_BODY_BYTES_MAX + 1, b' ');
    assert_eq!(
        parse_delete(&body).expect_err("too big").code,
        S3ErrorCode::EntityTooLarge
    );
}

proptest! {
    /// Any key, XML-escaped as clients and our writers do, comes back from a Delete document
    /// unchanged.
    #[test]
    fn delete_keys_round_trip(keys in prop::collection::vec(any::<String>().prop_filter("non-empty", |k| !k.is_empty()), 1..20)) {
        let mut body = String::from("<Delete>");
        for key in &keys {
            body.push_str("<Object><Key>");
            escape_xml_into(&mut body, key);
            body.push_str("</Key></Object>");
        }
        body.push_str("</Delete>");
        let parsed = parse_delete(body.as_bytes()).expect("escaped document parses");
        let got: Vec<String> = parsed.objects.into_iter().map(|o| o.key).collect();
        prop_assert_eq!(got, keys);
    }

    /// Any key written with encoding-type=url decodes back to itself.
    #[test]
    fn url_encoded_keys_round_trip(key in any::<String>().prop_filter("non-empty", |k| !k.is_empty())) {
        let contents = [object(&key)];
        let xml = ListObjectsResult {
            bucket: "b", prefix: "", marker: "", delimiter: None, max_keys: 1, encoding_url: true,
            is_truncated: false, next_marker: None, contents: &contents, common_prefixes: &[],
        }.to_xml();
        let start = xml.find("<Key>").expect("key") + 5;
        let end = xml.find("</Key>").expect("key end");
        let encoded = &xml[start..end];
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_graphic()));
        prop_assert_eq!(decode_path(encoded).expect("decodes"), key);
    }

    /// Arbitrary bytes never panic any parser.
    #[test]
    fn parsers_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_delete(&body);
        let _ = parse_complete_multipart_upload(&body);
        let _ = parse_create_bucket_configuration(&body);
    }

    /// Valid documents cut at any byte, or with one byte replaced, never panic and never
    /// produce more objects than the document named.
    #[test]
    fn damaged_documents_never_panic(cut in 0usize..200, at in 0usize..200, byte in any::<u8>()) {
        let doc = "<?xml version=\"1.0\"?><Delete><Object><Key>a&amp;b &#x41;</Key><VersionId>v</VersionId></Object><Object><Key><![CDATA[c<d]]></Key></Object><Quiet>false</Quiet></Delete>";
        let mut damaged = doc.as_bytes().to_vec();
        let at = at % damaged.len();
        damaged[at] = byte;
        damaged.truncate(cut.max(1));
        if let Ok(parsed) = parse_delete(&damaged) {
            prop_assert!(parsed.objects.len() <= 2);
        }
        let cmu = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"x\"</ETag></Part></CompleteMultipartUpload>".to_owned();
        let mut damaged = cmu.into_bytes();
        let at = at % damaged.len();
        damaged[at] = byte;
        damaged.truncate(cut.max(1));
        let _ = parse_complete_multipart_upload(&damaged);
    }
}
