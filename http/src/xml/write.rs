//! Response document writers. Each document is a plain struct the metadata layer fills; its
//! [`XmlBody::write_xml`] appends the whole document (declaration included) to a `String`.

use crate::error::{escape_xml_into, S3ErrorCode};
use crate::s3::percent::encode_url_into;
use crate::xml::time::Timestamp;
use crate::xml::S3_XML_NAMESPACE;

/// A response document that can be serialised.
pub trait XmlBody {
    /// Appends the whole document, XML declaration included, to `out`.
    fn write_xml(&self, out: &mut String);

    /// The whole document as a new string.
    fn to_xml(&self) -> String {
        let mut out = String::with_capacity(512);
        self.write_xml(&mut out);
        out
    }
}

/// The storage class every Tessera object reports: one class, whatever the bucket's policy.
const STORAGE_CLASS: &str = "STANDARD";

/// Small helpers over the output string; every text goes through one of them, so nothing is
/// written unescaped.
struct Writer<'o> {
    out: &'o mut String,
}

impl Writer<'_> {
    fn declaration_and_root(&mut self, root: &str) {
        self.out
            .push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<");
        self.out.push_str(root);
        self.out.push_str(" xmlns=\"");
        self.out.push_str(S3_XML_NAMESPACE);
        self.out.push_str("\">");
    }

    fn open(&mut self, name: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
    }

    fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    /// `<name>text</name>`, text XML-escaped.
    fn text(&mut self, name: &str, text: &str) {
        self.open(name);
        escape_xml_into(self.out, text);
        self.close(name);
    }

    /// `<name>text</name>`, text URL-encoded when `encoding_url` (`encoding-type=url`), else
    /// XML-escaped. URL-encoded text is plain ASCII without XML specials.
    fn key_text(&mut self, name: &str, text: &str, encoding_url: bool) {
        self.open(name);
        if encoding_url {
            encode_url_into(self.out, text);
        } else {
            escape_xml_into(self.out, text);
        }
        self.close(name);
    }

    fn opt_text(&mut self, name: &str, text: Option<&str>) {
        if let Some(text) = text {
            self.text(name, text);
        }
    }

    fn number(&mut self, name: &str, value: impl Into<u64>) {
        self.open(name);
        push_u64(self.out, value.into());
        self.close(name);
    }

    fn boolean(&mut self, name: &str, value: bool) {
        self.text(name, if value { "true" } else { "false" });
    }

    fn time(&mut self, name: &str, value: Timestamp) {
        self.open(name);
        value.write_iso8601(self.out);
        self.close(name);
    }

    /// `<ETag>"etag"</ETag>`: the ETag is stored without quotes and sent with them.
    fn etag(&mut self, etag: &str) {
        self.open("ETag");
        escape_xml_into(self.out, "\"");
        escape_xml_into(self.out, etag.trim_matches('"'));
        escape_xml_into(self.out, "\"");
        self.close("ETag");
    }

    fn owner(&mut self, name: &str, owner: &Owner) {
        self.open(name);
        self.text("ID", &owner.id);
        self.text("DisplayName", &owner.display_name);
        self.close(name);
    }

    fn checksums(&mut self, checksums: &Checksums) {
        self.opt_text("ChecksumCRC32", checksums.crc32.as_deref());
        self.opt_text("ChecksumCRC32C", checksums.crc32c.as_deref());
        self.opt_text("ChecksumCRC64NVME", checksums.crc64nvme.as_deref());
        self.opt_text("ChecksumSHA1", checksums.sha1.as_deref());
        self.opt_text("ChecksumSHA256", checksums.sha256.as_deref());
    }

    fn common_prefixes(&mut self, prefixes: &[String], encoding_url: bool) {
        for prefix in prefixes {
            self.open("CommonPrefixes");
            self.key_text("Prefix", prefix, encoding_url);
            self.close("CommonPrefixes");
        }
    }

    fn encoding_type(&mut self, encoding_url: bool) {
        if encoding_url {
            self.text("EncodingType", "url");
        }
    }
}

/// Appends `value` in decimal without going through `fmt` (one per listing entry).
fn push_u64(out: &mut String, mut value: u64) {
    let mut digits = [0u8; 20]; // u64::MAX has 20 digits
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8; // 0..=9, so the cast is exact
        value /= 10;
        if value == 0 {
            break;
        }
    }
    for &digit in &digits[start..] {
        out.push(char::from(digit));
    }
}

/// An owner (bucket owner, object owner, upload initiator).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    /// Canonical user id.
    pub id: String,
    /// Display name.
    pub display_name: String,
}

/// Checksums of an object or part, base64 as S3 sends them; `None` when not stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checksums {
    /// `ChecksumCRC32`.
    pub crc32: Option<String>,
    /// `ChecksumCRC32C`.
    pub crc32c: Option<String>,
    /// `ChecksumCRC64NVME`.
    pub crc64nvme: Option<String>,
    /// `ChecksumSHA1`.
    pub sha1: Option<String>,
    /// `ChecksumSHA256`.
    pub sha256: Option<String>,
}

/// One bucket of a ListBuckets answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketInfo {
    /// Bucket name.
    pub name: String,
    /// When the bucket was created.
    pub creation_date: Timestamp,
}

/// `ListAllMyBucketsResult` (ListBuckets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListAllMyBucketsResult<'a> {
    /// The caller.
    pub owner: &'a Owner,
    /// The buckets of this page, in name order.
    pub buckets: &'a [BucketInfo],
    /// Token for the next page (paginated ListBuckets, only when more buckets follow).
    pub continuation_token: Option<&'a str>,
    /// The request's prefix, echoed when given.
    pub prefix: Option<&'a str>,
}

impl XmlBody for ListAllMyBucketsResult<'_> {
    fn write_xml(&self, out: &mut String) {
        let mut w = Writer { out };
        w.declaration_and_root("ListAllMyBucketsResult");
        w.owner("Owner", self.owner);
        w.open("Buckets");
        for bucket in self.buckets {
            w.open("Bucket");
            w.text("Name", &bucket.name);
            w.time("CreationDate", bucket.creation_date);
            w.close("Bucket");
        }
        w.close("Buckets");
        w.opt_text("ContinuationToken", self.continuation_token);
        w.opt_text("Prefix", self.prefix);
        w.close("ListAllMyBucketsResult");
    }
}

/// `LocationConstraint` (GetBucketLocation). S3 answers an empty element for `us-east-1`, and
/// clients read an empty element as `us-east-1`, so that region is written empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocationConstraint<'a> {
    /// The bucket's region.
    pub region: &'a str,
}

impl XmlBody for LocationConstraint<'_> {
    fn write_xml(&self, out: &mut String) {
        let mut w = Writer { out };
        w.declaration_and_root("LocationConstraint");
        if self.region != "us-east-1" {
            escape_xml_into(w.out, self.region);
        }
        w.close("LocationConstraint");
    }
}

/// `VersioningConfiguration` (GetBucketVersioning) for a bucket where versioning was never
/// enabled: an empty element, which is what S3 answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VersioningConfiguration;

impl XmlBody for VersioningConfiguration {
    fn write_xml(&self, out: &mut String) {
        let mut w = Writer { out };
        w.declaration_and_root("VersioningConfiguration");
        w.close("VersioningConfiguration");
    }
}

/// `AccessControlPolicy` (GetBucketAcl, GetObjectAcl): the owner holds FULL_CONTROL, the only
/// grant Tessera has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessControlPolicy<'a> {
    /// The owner, also the single grantee.
    pub owner: &'a Owner,
}

impl XmlBody for AccessControlPolicy<'_> {
    fn write_xml(&self, out: &mut String) {
        let mut w = Writer { out };
        w.declaration_and_root("AccessControlPolicy");
        w.owner("Owner", self.owner);
        w.open("AccessControlList");
        w.out.push_str(
            "<Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
             xsi:type=\"CanonicalUser\">",
        );
        w.text("ID", &self.owner.id);
        w.text("DisplayName", &self.owner.display_name);
        w.close("Grantee");
        w.text("Permission", "FULL_CONTROL");
        w.close("Grant");
        w.close("AccessControlList");
        w.close("AccessControlPolicy");
    }
}

/// One object in a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Object key.
    pub key: String,
    /// Last modification time.
    pub last_modified: Timestamp,
    /// ETag without quotes (hex MD5, or `hex-N` for multipart).
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
    /// Owner, written when the listing includes owners (v1 always, v2 with fetch-owner).
    pub owner: Option<Owner>,
    /// The checksum algorithm stored with the object (`CRC64NVME`, ...), if any.
    pub checksum_algorithm: Option<&'static str>,
}

fn write_contents(w: &mut Writer<'_>, entry: &ObjectInfo, encoding_url: bool, with_owner: bool) {
    w.open("Contents");
    w.key_text("Key", &entry.key, encoding_url);
    w.time("LastModified", entry.last_modified);
    w.etag(&entry.etag);
    w.opt_text("ChecksumAlgorithm", entry.checksum_algorithm);
    w.number("Size", entry.size);
    if let (true, Some(owner)) = (with_owner, &entry.owner) {
        w.owner("Owner", owner);
    }
    w.text("StorageClass", STORAGE_CLASS);
    w.close("Contents");
}

/// `ListBucketResult` of ListObjects (v1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListObjectsResult<'a> {
    /// Bucket name.
    pub bucket: &'a str,
    /// The request's prefix (empty when none).
    pub prefix: &'a str,
    /// The request's marker (empty when none).
    pub marker: &'a str,
    /// The request's delimiter.
    pub delimiter: Option<&'a str>,
    /// The request's max-keys.
    pub max_keys: u32,
    /// `encoding-type=url`: Key, Prefix, Delimiter, Marker, NextMarker and CommonPrefixes are
    /// URL-encoded.
    pub encoding_url: bool,
    /// More entries follow.
    pub is_truncated: bool,
    /// Where the next page starts; S3 sends it only when truncated with a delimiter (clients
    /// otherwise use the last key), the caller decides.
    pub next_marker: Option<&'a str>,
    /// Objects, in key order.
    pub contents: &'a [ObjectInfo],
    /// Common prefixes, in order.
    pub common_prefixes: &'a [String],
}

impl XmlBody for ListObjectsResult<'_> {
    fn write_xml(&self, out: &mut String) {
        let url = self.encoding_url;
        let mut w = Writer { out };
        w.declaration_and_root("ListBucketResult");
        w.text("Name", self.bucket);
        w.key_text("Prefix", self.prefix, url);
        w.key_text("Marker", self.marker, url);
        if let Some(next) = self.next_marker {
            w.key_text("NextMarker", next, url);
        }
        w.number("MaxKeys", self.max_keys);
        if let Some(delimiter) = self.delimiter {
            w.key_text("Delimiter", delimiter, url);
        }
        w.boolean("IsTruncated", self.is_truncated);
        w.encoding_type(url);
        for entry in self.contents {
            write_contents(&mut w, entry, url, true);
        }
        w.common_prefixes(self.common_prefixes, url);
        w.close("ListBucketResult");
    }
}

/// `ListBucketResult` of ListObjectsV2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListObjectsV2Result<'a> {
    /// Bucket name.
    pub bucket: &'a str,
    /// The request's prefix (empty when none).
    pub prefix: &'a str,
    /// The request's delimiter.
    pub delimiter: Option<&'a str>,
    /// The request's max-keys.
    pub max_keys: u32,
    /// `encoding-type=url`: Key, Prefix, Delimiter, StartAfter and CommonPrefixes are encoded.
    pub encoding_url: bool,
    /// The request's continuation-token, echoed.
    pub continuation_token: Option<&'a str>,
    /// The request's start-after, echoed.
    pub start_after: Option<&'a str>,
    /// Owners are written (`fetch-owner=true`).
    pub fetch_owner: bool,
    /// More entries follow.
    pub is_truncated: bool,
    /// The token for the next page (only when truncated).
    pub next_continuation_token: Option<&'a str>,
    /// Objects, in key order.
    pub contents: &'a [ObjectInfo],
    /// Common prefixes, in order.
    pub common_prefixes: &'a [String],
}

impl XmlBody for ListObjectsV2Result<'_> {
    fn write_xml(&self, out: &mut String) {
        let url = self.encoding_url;
        let mut w = Writer { out };
        w.declaration_and_root("ListBucketResult");
        w.text("Name", self.bucket);
        w.key_text("Prefix", self.prefix, url);
        w.opt_text("ContinuationToken", self.continuation_token);
        w.opt_text("NextContinuationToken", self.next_continuation_token);
        if let Some(start_after) = self.start_after {
            w.key_text("StartAfter", start_after, url);
        }
        w.number(
            "KeyCount",
            (self.contents.len() + self.common_prefixes.len()) as u64,
        );
        w.number("MaxKeys", self.max_keys);
        if let Some(delimiter) = self.delimiter {
            w.key_text("Delimiter", delimiter, url);
        }
        w.boolean("IsTruncated", self.is_truncated);
        w.encoding_type(url);
        for entry in self.contents {
            write_contents(&mut w, entry, url, self.fetch_owner);
        }
        w.common_prefixes(self.common_prefixes, url);
        w.close("ListBucketResult");
    }
}

/// `InitiateMultipartUploadResult` (CreateMultipartUpload).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitiateMultipartUploadResult<'a> {
    /// Bucket name.
    pub bucket: &'a str,
    /// Object key.
    pub key: &'a str,
    /// The new upload id.
    pub upload_id: &'a str,
}

impl XmlBody for InitiateMultipartUploadResult<'_> {
    fn write_xml(&self, out: &mut String) {
        let mut w = Writer { out };
        w.declaration_and_root("InitiateMultipartUploadResult");
        w.text("Bucket", self.bucket);
        w.text("Key", self.key);
        w.text("UploadId", self.upload_id);
        w.close("InitiateMultipartUploadResult");
    }
}

/// `CompleteMultipartUploadResult`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompleteMultipartUploadResult<'a> {
    /// The object's URL (`http://host/bucket/key`, key percent-encoded by the caller).
    pub location: &'a str,
    /// Bucket name.
    pub bucket: &'a str,
    /// Object key.
    pub key: &'a str,
    /// The multipart ETag without quotes (`hex-N`).
    pub etag: &'a str,
    /// Object checksums, if any.
    pub checksums: &'a Checksums,
    /// `COMPOSITE` or `FULL_OBJECT`, when a checksum is sent.
    pub checksum_type: Option<&'a str>,
}

impl XmlBody for CompleteMultipartUploadResult<'_> {
    fn write_xml(&self, out: &mut String) {
        let mut w = Writer { out };
        w.declaration_and_root("CompleteMultipartUploadResult");
        w.text("Location", self.location);
        w.text("Bucket", self.bucket);
        w.text("Key", self.key);
        w.etag(self.etag);
        w.checksums(self.checksums);
        w.opt_text("ChecksumType", self.checksum_type);
        w.close("CompleteMultipartUploadResult");
    }
}

/// One part in a ListParts answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartInfo {
    /// Part number, 1..=10 000.
    pub part_number: u16,
    /// When the part was uploaded.
    pub last_modified: Timestamp,
    /// ETag without quotes.
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
    /// Part checksums, if any.
    pub checksums: Checksums,
}

/// `ListPartsResult`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListPartsResult<'a> {
    /// Bucket name.
    pub bucket: &'a str,
    /// Object key.
    pub key: &'a str,
    /// Upload id.
    pub upload_id: &'a str,
    /// Initiator and owner of the upload.
    pub owner: &'a Owner,
    /// The request's part-number-marker (0 when none).
    pub part_number_marker: u16,
    /// The marker for the next page (the last part listed).
    pub next_part_number_marker: u16,
    /// The request's max-parts.
    pub max_parts: u32,
    /// More parts follow.
    pub is_truncated: bool,
    /// The checksum algorithm of the upload, if any.
    pub checksum_algorithm: Option<&'a str>,
    /// `COMPOSITE` or `FULL_OBJECT`, with a checksum algorithm.
    pub checksum_type: Option<&'a str>,
    /// Parts in ascending part-number order.
    pub parts: &'a [PartInfo],
}

impl XmlBody for ListPartsResult<'_> {
    fn write_xml(&self, out: &mut String) {
        let mut w = Writer { out };
        w.declaration_and_root("ListPartsResult");
        w.text("Bucket", self.bucket);
        w.text("Key", self.key);
        w.text("UploadId", self.upload_id);
        w.owner("Initiator", self.owner);
        w.owner("Owner", self.owner);
        w.text("StorageClass", STORAGE_CLASS);
        w.number("PartNumberMarker", self.part_number_marker);
        w.number("NextPartNumberMarker", self.next_part_number_marker);
        w.number("MaxParts", self.max_parts);
        w.boolean("IsTruncated", self.is_truncated);
        w.opt_text("ChecksumAlgorithm", self.checksum_algorithm);
        w.opt_text("ChecksumType", self.checksum_type);
        for part in self.parts {
            w.open("Part");
            w.number("PartNumber", part.part_number);
            w.time("LastModified", part.last_modified);
            w.etag(&part.etag);
            w.number("Size", part.size);
            w.checksums(&part.checksums);
            w.close("Part");
        }
        w.close("ListPartsResult");
    }
}

/// One in-progress upload in a ListMultipartUploads answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadInfo {
    /// Object key.
    pub key: String,
    /// Upload id.
    pub upload_id: String,
    /// When the upload was created.
    pub initiated: Timestamp,
    /// Initiator and owner.
    pub owner: Owner,
}

/// `ListMultipartUploadsResult`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListMultipartUploadsResult<'a> {
    /// Bucket name.
    pub bucket: &'a str,
    /// The request's key-marker (empty when none).
    pub key_marker: &'a str,
    /// The request's upload-id-marker (empty when none).
    pub upload_id_marker: &'a str,
    /// Next page's key-marker (when truncated).
    pub next_key_marker: Option<&'a str>,
    /// Next page's upload-id-marker (when truncated).
    pub next_upload_id_marker: Option<&'a str>,
    /// The request's prefix (empty when none).
    pub prefix: &'a str,
    /// The request's delimiter.
    pub delimiter: Option<&'a str>,
    /// The request's max-uploads.
    pub max_uploads: u32,
    /// `encoding-type=url`: Key, Prefix, Delimiter, KeyMarker, NextKeyMarker and CommonPrefixes
    /// are encoded.
    pub encoding_url: bool,
    /// More uploads follow.
    pub is_truncated: bool,
    /// Uploads in (key, initiation) order.
    pub uploads: &'a [UploadInfo],
    /// Common prefixes, in order.
    pub common_prefixes: &'a [String],
}

impl XmlBody for ListMultipartUploadsResult<'_> {
    fn write_xml(&self, out: &mut String) {
        let url = self.encoding_url;
        let mut w = Writer { out };
        w.declaration_and_root("ListMultipartUploadsResult");
        w.text("Bucket", self.bucket);
        w.key_text("KeyMarker", self.key_marker, url);
        w.text("UploadIdMarker", self.upload_id_marker);
        if let Some(next) = self.next_key_marker {
            w.key_text("NextKeyMarker", next, url);
        }
        w.opt_text("NextUploadIdMarker", self.next_upload_id_marker);
        w.key_text("Prefix", self.prefix, url);
        if let Some(delimiter) = self.delimiter {
            w.key_text("Delimiter", delimiter, url);
        }
        w.number("MaxUploads", self.max_uploads);
        w.boolean("IsTruncated", self.is_truncated);
        w.encoding_type(url);
        for upload in self.uploads {
            w.open("Upload");
            w.key_text("Key", &upload.key, url);
            w.text("UploadId", &upload.upload_id);
            w.owner("Initiator", &upload.owner);
            w.owner("Owner", &upload.owner);
            w.text("StorageClass", STORAGE_CLASS);
            w.time("Initiated", upload.initiated);
            w.close("Upload");
        }
        w.common_prefixes(self.common_prefixes, url);
        w.close("ListMultipartUploadsResult");
    }
}

/// `CopyObjectResult`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyObjectResult<'a> {
    /// ETag of the new object, without quotes.
    pub etag: &'a str,
    /// Modification time of the new object.
    pub last_modified: Timestamp,
    /// Checksums of the new object, if any.
    pub checksums: &'a Checksums,
}

impl XmlBody for CopyObjectResult<'_> {
    fn write_xml(&self, out: &mut String) {
        write_copy_result(
            out,
            "CopyObjectResult",
            self.etag,
            self.last_modified,
            self.checksums,
        );
    }
}

/// `CopyPartResult` (UploadPartCopy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyPartResult<'a> {
    /// ETag of the new part, without quotes.
    pub etag: &'a str,
    /// Time the part was written.
    pub last_modified: Timestamp,
    /// Checksums of the new part, if any.
    pub checksums: &'a Checksums,
}

impl XmlBody for CopyPartResult<'_> {
    fn write_xml(&self, out: &mut String) {
        write_copy_result(
            out,
            "CopyPartResult",
            self.etag,
            self.last_modified,
            self.checksums,
        );
    }
}

fn write_copy_result(
    out: &mut String,
    root: &str,
    etag: &str,
    last_modified: Timestamp,
    checksums: &Checksums,
) {
    let mut w = Writer { out };
    w.declaration_and_root(root);
    w.etag(etag);
    w.time("LastModified", last_modified);
    w.checksums(checksums);
    w.close(root);
}

/// One successfully deleted object in a DeleteResult.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletedObject {
    /// The key, as the request named it.
    pub key: String,
    /// The version id, as the request named it.
    pub version_id: Option<String>,
}

/// One object that could not be deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteError {
    /// The key, as the request named it.
    pub key: String,
    /// The version id, as the request named it.
    pub version_id: Option<String>,
    /// Why (`AccessDenied`, `InternalError`, ...).
    pub code: S3ErrorCode,
    /// Human-readable message.
    pub message: String,
}

/// `DeleteResult` (DeleteObjects). In quiet mode only errors are listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteResult<'a> {
    /// The request asked `<Quiet>true</Quiet>`.
    pub quiet: bool,
    /// Deleted objects (deleting a missing key counts as deleted, as in S3).
    pub deleted: &'a [DeletedObject],
    /// Failed objects.
    pub errors: &'a [DeleteError],
}

impl XmlBody for DeleteResult<'_> {
    fn write_xml(&self, out: &mut String) {
        let mut w = Writer { out };
        w.declaration_and_root("DeleteResult");
        if !self.quiet {
            for deleted in self.deleted {
                w.open("Deleted");
                w.text("Key", &deleted.key);
                w.opt_text("VersionId", deleted.version_id.as_deref());
                w.close("Deleted");
            }
        }
        for error in self.errors {
            w.open("Error");
            w.text("Key", &error.key);
            w.opt_text("VersionId", error.version_id.as_deref());
            w.text("Code", error.code.as_str());
            w.text("Message", &error.message);
            w.close("Error");
        }
        w.close("DeleteResult");
    }
}
