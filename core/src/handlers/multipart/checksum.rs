//! Multipart checksums (`x-amz-checksum-algorithm` + `x-amz-checksum-type`) as S3 applies
//! them: the choice at CreateMultipartUpload, each part's algorithm at UploadPart, the checks
//! and the object checksum at CompleteMultipartUpload, and the headers GET/HEAD return.
//!
//! ```text
//!  Create   : algorithm + type (defaults, allowed pairs) ─► Upload (type as a reserved pair)
//!  Part     : its checksum must use the upload's algorithm (stored by UploadPart already)
//!  Complete : XML part checksums = stored ones ─► COMPOSITE  checksum(part digests) "-N"
//!                                             └► FULL_OBJECT CRC combined from part CRCs
//!             ─► = x-amz-checksum-<alg> of the Complete request, if sent ─► Object.checksums
//!  GET/HEAD : x-amz-checksum-<alg> + x-amz-checksum-type (whole object, or the part asked for)
//! ```
//!
//! Nothing here reads object data: an object checksum exists when every listed part was
//! uploaded with a checksum of the algorithm (a part copied with UploadPartCopy from a range
//! carries none, and the object then has no checksum). Uploads created without an algorithm
//! whose parts all carry the same CRC get that CRC as a full-object checksum, for free.

use tessera_http::checksum::{
    composite_checksum, full_object_checksum, ChecksumAlgorithm as HttpAlgorithm, ChecksumType,
    ChecksumValue,
};
use tessera_http::codec::RequestHead;
use tessera_http::xml::{Checksums, CompletedPart};
use tessera_http::{S3Error, S3ErrorCode};
use tessera_meta::multipart_checksum::{self as stored, ChecksumScope};
use tessera_meta::{Checksum, Object, Upload, UploadPart};

use crate::handlers::object::{http_algorithm, meta_algorithm};

/// The checksum a multipart upload was created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadChecksum {
    pub algorithm: HttpAlgorithm,
    pub kind: ChecksumType,
}

fn invalid_request(message: impl Into<String>) -> S3Error {
    S3Error::new(S3ErrorCode::InvalidRequest, message)
}

/// The checksum a CreateMultipartUpload asks for: `x-amz-checksum-algorithm` (or the SDK's
/// `x-amz-sdk-checksum-algorithm`) and `x-amz-checksum-type`, with S3's defaults and rules.
pub fn requested(head: &RequestHead) -> Result<Option<UploadChecksum>, S3Error> {
    let algorithm = match head
        .header("x-amz-checksum-algorithm")
        .or_else(|| head.header("x-amz-sdk-checksum-algorithm"))
    {
        None => None,
        Some(name) => Some(HttpAlgorithm::from_name(name).ok_or_else(|| {
            invalid_request("Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]")
        })?),
    };
    let kind =
        match head.header("x-amz-checksum-type") {
            None => None,
            Some(name) => Some(ChecksumType::from_name(name).ok_or_else(|| {
                invalid_request("Value for x-amz-checksum-type header is invalid.")
            })?),
        };
    match (algorithm, kind) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(invalid_request(
            "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.",
        )),
        (Some(algorithm), kind) => {
            let kind = kind.unwrap_or_else(|| ChecksumType::multipart_default(algorithm));
            if !kind.allows(algorithm) {
                return Err(invalid_request(format!(
                    "The {} checksum type cannot be used with the {} checksum algorithm.",
                    kind.name(),
                    algorithm.name().to_ascii_lowercase()
                )));
            }
            Ok(Some(UploadChecksum { algorithm, kind }))
        }
    }
}

/// The checksum `upload` was created with, if any.
#[must_use]
pub fn of_upload(upload: &Upload) -> Option<UploadChecksum> {
    let algorithm = http_algorithm(upload.checksum_algorithm?);
    let kind = stored::upload_checksum_type(upload)
        .and_then(ChecksumType::from_name)
        .unwrap_or_else(|| ChecksumType::multipart_default(algorithm));
    Some(UploadChecksum { algorithm, kind })
}

/// Checks that a part's checksum (header or trailer algorithm) is the upload's algorithm.
pub fn check_part(upload: &Upload, part: Option<HttpAlgorithm>) -> Result<(), S3Error> {
    match (of_upload(upload), part) {
        (Some(expected), Some(actual)) if expected.algorithm != actual => {
            Err(invalid_request(format!(
                "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                expected.algorithm.name().to_ascii_lowercase(),
                actual.name().to_ascii_lowercase()
            )))
        }
        _ => Ok(()),
    }
}

/// The checksum a part was uploaded with.
#[must_use]
pub fn part_value(part: &UploadPart) -> Option<ChecksumValue> {
    let c = part.checksum.as_ref()?;
    ChecksumValue::from_bytes(http_algorithm(c.algorithm), &c.value)
}

/// The XML field of `algorithm` in `checksums`.
fn xml_field(checksums: &mut Checksums, algorithm: HttpAlgorithm) -> &mut Option<String> {
    match algorithm {
        HttpAlgorithm::Crc32 => &mut checksums.crc32,
        HttpAlgorithm::Crc32c => &mut checksums.crc32c,
        HttpAlgorithm::Crc64Nvme => &mut checksums.crc64nvme,
        HttpAlgorithm::Sha1 => &mut checksums.sha1,
        HttpAlgorithm::Sha256 => &mut checksums.sha256,
    }
}

/// XML checksums holding `text` under `algorithm`.
#[must_use]
pub fn xml_checksums(algorithm: HttpAlgorithm, text: String) -> Checksums {
    let mut out = Checksums::default();
    *xml_field(&mut out, algorithm) = Some(text);
    out
}

/// The object checksum a completion computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectChecksum {
    pub value: ChecksumValue,
    pub kind: ChecksumType,
    /// Digest and number of every part (returned for GET/HEAD with `partNumber`).
    pub parts: Vec<(u32, ChecksumValue)>,
}

impl ObjectChecksum {
    /// The text S3 shows: base64, with `-N` for a composite checksum.
    #[must_use]
    pub fn text(&self) -> String {
        match self.kind {
            ChecksumType::FullObject => self.value.to_base64(),
            ChecksumType::Composite => self.value.to_composite_text(self.parts.len()),
        }
    }

    /// The records for `Object.checksums`: the object's, then one per part.
    #[must_use]
    pub fn records(&self) -> Vec<Checksum> {
        let algorithm = meta_algorithm(self.value.algorithm());
        let scope = match self.kind {
            ChecksumType::FullObject => ChecksumScope::FullObject,
            ChecksumType::Composite => ChecksumScope::Composite {
                parts: self.parts.len() as u32,
            },
        };
        let mut out = Vec::with_capacity(1 + self.parts.len());
        out.push(stored::encode(algorithm, self.value.as_bytes(), scope));
        out.extend(self.parts.iter().map(|(number, value)| {
            stored::encode(
                algorithm,
                value.as_bytes(),
                ChecksumScope::Part { number: *number },
            )
        }));
        out
    }
}

fn invalid_part(number: u16, why: &str) -> S3Error {
    S3Error::new(
        S3ErrorCode::InvalidPart,
        format!(
            "One or more of the specified parts could not be found. The part may not have been \
             uploaded, or the specified entity tag or checksum may not have matched the \
             part's (part {number}: {why})."
        ),
    )
}

/// CompleteMultipartUpload's checksum work: checks each listed part's XML checksums against
/// the stored ones, computes the object checksum and compares it with the request's
/// `x-amz-checksum-<alg>` (`claimed`, base64, `-N` allowed) and `x-amz-checksum-type`.
pub fn complete(
    upload: &Upload,
    listed: &[(&CompletedPart, &UploadPart)],
    claimed: Option<(HttpAlgorithm, &str)>,
    claimed_type: Option<&str>,
) -> Result<Option<ObjectChecksum>, S3Error> {
    let declared = of_upload(upload);
    for (wanted, part) in listed {
        let mut sent = wanted.checksums.clone();
        let stored_value = part_value(part);
        for algorithm in HttpAlgorithm::ALL {
            let Some(text) = xml_field(&mut sent, algorithm).take() else {
                continue;
            };
            let matches = stored_value
                .is_some_and(|v| v.algorithm() == algorithm && v.to_base64() == text.trim());
            if !matches {
                return Err(invalid_part(wanted.part_number, "checksum"));
            }
        }
        if let (Some(declared), Some(value)) = (declared, stored_value) {
            let omitted = wanted.checksums == Checksums::default();
            if declared.kind == ChecksumType::Composite && omitted {
                return Err(invalid_request(format!(
                    "The upload was created using a {} checksum. The complete request must include the checksum for each part. It was missing for part {} in the request.",
                    value.algorithm().name().to_ascii_lowercase(),
                    wanted.part_number
                )));
            }
        }
    }
    if let Some(name) = claimed_type {
        let kind = ChecksumType::from_name(name)
            .ok_or_else(|| invalid_request("Value for x-amz-checksum-type header is invalid."))?;
        if declared.is_some_and(|d| d.kind != kind) {
            return Err(invalid_request(format!(
                "The upload was created using the {} checksum mode. The complete request must use the same checksum mode.",
                declared.map_or("", |d| d.kind.name())
            )));
        }
    }
    let values: Option<Vec<(u32, ChecksumValue, u64)>> = listed
        .iter()
        .map(|(_, p)| part_value(p).map(|v| (p.number, v, p.size)))
        .collect();
    let (algorithm, kind) = match (declared, &values) {
        (Some(d), _) => (d.algorithm, d.kind),
        // No algorithm declared: parts that all carry the same CRC still give a full-object
        // CRC (free: no data is read).
        (None, Some(v)) if !v.is_empty() => {
            let first = v[0].1.algorithm();
            if v.iter().any(|(_, c, _)| c.algorithm() != first)
                || !ChecksumType::FullObject.allows(first)
            {
                return check_claim(None, claimed);
            }
            (first, ChecksumType::FullObject)
        }
        _ => return check_claim(None, claimed),
    };
    let Some(values) = values.filter(|v| v.iter().all(|(_, c, _)| c.algorithm() == algorithm))
    else {
        return check_claim(None, claimed);
    };
    let value = match kind {
        ChecksumType::Composite => {
            let digests: Vec<ChecksumValue> = values.iter().map(|(_, c, _)| *c).collect();
            composite_checksum(algorithm, &digests)
        }
        ChecksumType::FullObject => {
            let crcs: Vec<(ChecksumValue, u64)> = values.iter().map(|(_, c, n)| (*c, *n)).collect();
            full_object_checksum(algorithm, &crcs)
        }
    }
    .ok_or_else(|| crate::engine::internal("multipart checksum of mixed algorithms"))?;
    let object = ObjectChecksum {
        value,
        kind,
        parts: values.iter().map(|(n, c, _)| (*n, *c)).collect(),
    };
    check_claim(Some(object), claimed)
}

/// Compares the Complete request's `x-amz-checksum-<alg>` with what was computed: a different
/// value is `BadDigest`; a claim the gateway cannot check (no part checksums) is refused too,
/// as accepting it would store an unverified checksum.
fn check_claim(
    computed: Option<ObjectChecksum>,
    claimed: Option<(HttpAlgorithm, &str)>,
) -> Result<Option<ObjectChecksum>, S3Error> {
    let Some((algorithm, text)) = claimed else {
        return Ok(computed);
    };
    let bad = || {
        S3Error::new(
            S3ErrorCode::BadDigest,
            format!(
                "The {} you specified did not match the calculated checksum.",
                algorithm.header_name()
            ),
        )
    };
    let Some(object) = &computed else {
        return Err(bad());
    };
    // A composite value may be sent with or without its `-N` suffix.
    let digest = match text.trim().rsplit_once('-') {
        Some((digest, n)) if n.parse::<usize>() == Ok(object.parts.len()) => digest,
        _ => text.trim(),
    };
    if object.value.algorithm() != algorithm || object.value.to_base64() != digest {
        return Err(bad());
    }
    Ok(computed)
}

/// The checksum headers of a GET/HEAD with `x-amz-checksum-mode: ENABLED`: for the whole
/// object (`part` = `None`), its checksum and type; for `partNumber` of a multipart object,
/// that part's checksum. Values of no known shape are skipped.
#[must_use]
pub fn read_headers(object: &Object, part: Option<u32>) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut object_kind = ChecksumType::FullObject;
    for checksum in &object.checksums {
        let algorithm = http_algorithm(checksum.algorithm);
        let Some((digest, scope)) = stored::decode(checksum) else {
            continue;
        };
        let Some(value) = ChecksumValue::from_bytes(algorithm, digest) else {
            continue;
        };
        match (scope, part) {
            (ChecksumScope::FullObject, None) => {
                out.push((algorithm.header_name(), value.to_base64()));
            }
            (ChecksumScope::Composite { parts }, None) => {
                object_kind = ChecksumType::Composite;
                out.push((
                    algorithm.header_name(),
                    value.to_composite_text(parts as usize),
                ));
            }
            (ChecksumScope::Composite { .. }, Some(_)) => object_kind = ChecksumType::Composite,
            (ChecksumScope::Part { number }, Some(wanted)) if number == wanted => {
                out.push((algorithm.header_name(), value.to_base64()));
            }
            _ => {}
        }
    }
    if !out.is_empty() {
        out.push(("x-amz-checksum-type", object_kind.name().to_owned()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_http::checksum::ChecksumHasher;
    use tessera_meta::{ContentHeaders, Policy};

    fn upload(algorithm: Option<HttpAlgorithm>, kind: Option<&str>) -> Upload {
        let mut user_metadata = Vec::new();
        if let Some(kind) = kind {
            stored::set_upload_checksum_type(&mut user_metadata, kind);
        }
        Upload {
            bucket: "b".to_owned(),
            key: "k".to_owned(),
            upload_id: "u".to_owned(),
            initiated_ms: 0,
            headers: ContentHeaders::default(),
            user_metadata,
            checksum_algorithm: algorithm.map(meta_algorithm),
            policy: Policy::Replica { n: 1 },
            owner: "o".to_owned(),
        }
    }

    fn part(number: u32, data: &[u8], algorithm: Option<HttpAlgorithm>) -> UploadPart {
        UploadPart {
            bucket: "b".to_owned(),
            key: "k".to_owned(),
            upload_id: "u".to_owned(),
            number,
            size: data.len() as u64,
            etag: [0; 16],
            checksum: algorithm.map(|a| Checksum {
                algorithm: meta_algorithm(a),
                value: ChecksumHasher::digest(a, data).as_bytes().to_vec(),
            }),
            mtime_ms: 0,
            chunk_size: 1,
            shards: Vec::new(),
        }
    }

    fn empty_object() -> Object {
        Object {
            bucket: "b".to_owned(),
            key: "k".to_owned(),
            version_id: 1,
            size: 0,
            etag: tessera_meta::ETag {
                md5: [0; 16],
                parts: 3,
            },
            headers: ContentHeaders::default(),
            user_metadata: Vec::new(),
            checksums: Vec::new(),
            mtime_ms: 0,
            policy: Policy::Replica { n: 1 },
            chunk_size: 0,
            shards: Vec::new(),
            parts: Vec::new(),
        }
    }

    fn listed(part: &UploadPart, send: bool) -> CompletedPart {
        let checksums = match (send, part_value(part)) {
            (true, Some(v)) => xml_checksums(v.algorithm(), v.to_base64()),
            _ => Checksums::default(),
        };
        CompletedPart {
            part_number: part.number as u16,
            etag: String::new(),
            checksums,
        }
    }

    fn run(
        upload: &Upload,
        parts: &[UploadPart],
        with_checksums: bool,
        claimed: Option<(HttpAlgorithm, &str)>,
    ) -> Result<Option<ObjectChecksum>, S3Error> {
        let sent: Vec<CompletedPart> = parts.iter().map(|p| listed(p, with_checksums)).collect();
        let pairs: Vec<(&CompletedPart, &UploadPart)> = sent.iter().zip(parts).collect();
        complete(upload, &pairs, claimed, None)
    }

    /// A full-object upload's checksum is the CRC of the concatenated data; a composite
    /// one's is the checksum of the part digests with `-N`; the records round-trip to the
    /// headers GET/HEAD returns, for the object and for one part.
    #[test]
    fn object_checksums_and_read_headers() {
        let data = [&b"first part"[..], b"", b"third"];
        let whole: Vec<u8> = data.concat();
        for algorithm in [
            HttpAlgorithm::Crc32,
            HttpAlgorithm::Crc32c,
            HttpAlgorithm::Crc64Nvme,
        ] {
            let parts: Vec<UploadPart> = (0..3)
                .map(|i| part(i as u32 + 1, data[i], Some(algorithm)))
                .collect();
            let up = upload(Some(algorithm), Some("FULL_OBJECT"));
            let full = run(&up, &parts, true, None).unwrap().unwrap();
            assert_eq!(full.value, ChecksumHasher::digest(algorithm, &whole));
            assert_eq!(full.text(), full.value.to_base64());
            let object = Object {
                checksums: full.records(),
                ..empty_object()
            };
            let headers = read_headers(&object, None);
            assert_eq!(
                headers,
                vec![
                    (algorithm.header_name(), full.value.to_base64()),
                    ("x-amz-checksum-type", "FULL_OBJECT".to_owned())
                ]
            );
            let third = read_headers(&object, Some(3));
            assert_eq!(
                third[0].1,
                ChecksumHasher::digest(algorithm, b"third").to_base64()
            );
        }
        let parts: Vec<UploadPart> = (0..3)
            .map(|i| part(i as u32 + 1, data[i], Some(HttpAlgorithm::Sha256)))
            .collect();
        let composite = run(
            &upload(Some(HttpAlgorithm::Sha256), None),
            &parts,
            true,
            None,
        )
        .unwrap()
        .unwrap();
        let digests: Vec<u8> = parts
            .iter()
            .flat_map(|p| p.checksum.as_ref().unwrap().value.clone())
            .collect();
        assert_eq!(
            composite.value,
            ChecksumHasher::digest(HttpAlgorithm::Sha256, &digests)
        );
        assert!(composite.text().ends_with("-3"));
        let object = Object {
            checksums: composite.records(),
            ..empty_object()
        };
        assert_eq!(
            read_headers(&object, None),
            vec![
                ("x-amz-checksum-sha256", composite.text()),
                ("x-amz-checksum-type", "COMPOSITE".to_owned())
            ]
        );
    }

    /// A wrong part checksum in the XML is InvalidPart; a composite upload's XML must list
    /// them; a wrong Complete header is BadDigest, the right one (with or without `-N`)
    /// passes; an upload without an algorithm whose parts carry CRC32 gets a full-object CRC32.
    #[test]
    fn complete_checks() {
        let a = HttpAlgorithm::Crc32;
        let parts = vec![part(1, b"aaaa", Some(a)), part(2, b"bb", Some(a))];
        let up = upload(Some(a), None);
        let mut sent: Vec<CompletedPart> = parts.iter().map(|p| listed(p, true)).collect();
        sent[1].checksums = xml_checksums(a, ChecksumHasher::digest(a, b"xx").to_base64());
        let pairs: Vec<(&CompletedPart, &UploadPart)> = sent.iter().zip(&parts).collect();
        let err = complete(&up, &pairs, None, None).unwrap_err();
        assert_eq!(err.code, S3ErrorCode::InvalidPart);
        let err = run(&up, &parts, false, None).unwrap_err();
        assert_eq!(err.code, S3ErrorCode::InvalidRequest);

        let good = run(&up, &parts, true, None).unwrap().unwrap();
        let text = good.text();
        assert!(run(&up, &parts, true, Some((a, &text))).is_ok());
        let bare = good.value.to_base64();
        assert!(run(&up, &parts, true, Some((a, &bare))).is_ok());
        let wrong = ChecksumHasher::digest(a, b"nope").to_base64();
        let err = run(&up, &parts, true, Some((a, &wrong))).unwrap_err();
        assert_eq!(err.code, S3ErrorCode::BadDigest);

        let plain = run(&upload(None, None), &parts, false, None)
            .unwrap()
            .unwrap();
        assert_eq!(plain.kind, ChecksumType::FullObject);
        assert_eq!(plain.value, ChecksumHasher::digest(a, b"aaaabb"));
        let unchecked = vec![part(1, b"aaaa", None)];
        assert_eq!(
            run(&upload(None, None), &unchecked, false, None).unwrap(),
            None
        );
        let err = run(&upload(None, None), &unchecked, false, Some((a, &bare))).unwrap_err();
        assert_eq!(err.code, S3ErrorCode::BadDigest);
    }
}
