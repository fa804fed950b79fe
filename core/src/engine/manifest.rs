//! The manifest every shard carries: enough to rebuild the object's metadata from the sites
//! alone. It is a footer, written after the chunk area, because the ETag (the MD5 of the whole
//! body) is known only once the body has been read; its length is fixed before the first byte
//! is written (every field that is not yet known has a fixed width), so a site learns the
//! shard's total length up front.
//!
//! ```text
//!  shard: [chunk area: chunk|crc64|chunk|crc64|…][body][body_len u32][crc64(body) u64]["TSM1"]
//!  body:  version u8=1, shard u8, k u8, n u8, replica u8, chunk_size u32, size u64,
//!         version_id u64, mtime_ms u64, md5 [16], etag_parts u16, part_number u16,
//!         checksum_algorithm u8 (0 = none), checksum [32] (zero padded),
//!         bucket, key: u16 length + UTF-8
//!         6 content headers: u16 length + bytes, 0xFFFF = absent
//!         metadata: u16 count, then name, value (u16 length + bytes each)
//!         part index: u8 (0 = none, 1 = present), then if present:
//!           policy: tag u8 (0 ec, 1 replica, 2 hybrid), threshold u64, n u8, k u8, m u8,
//!                   chunk_size u32
//!           u16 part count, then per part: number u16, size u64, etag [16],
//!           u8 shard count, then per shard: site u16, backend id [16]
//! ```
//! All integers little-endian. The trailer (16 bytes) is found from the end of the shard.
//!
//! A *part index* is a footer-only shard (no chunk area) written by CompleteMultipartUpload:
//! the part shards were written before the client chose which parts make up the object, so
//! only the index can say which parts (and which of their shards) belong to the completed
//! object. It carries the object's own version id, ETag, size, headers and metadata.

use tessera_meta::{BackendId, ContentHeaders, MetaPair, Policy, SiteId};

/// Bytes after the body: length, checksum, magic.
pub const TRAILER_BYTES: usize = 16;
/// Identifies a version-1 manifest footer.
pub const MAGIC: [u8; 4] = *b"TSM1";
/// Width of the checksum field (the longest S3 checksum, SHA-256).
pub const CHECKSUM_FIELD_BYTES: usize = 32;
const ABSENT: u16 = u16::MAX;
/// Most parts a part index lists: the S3 limit on parts of one multipart upload.
pub const INDEX_PARTS_MAX: usize = 10_000;
/// Most shards one indexed part lists (a policy's n is a `u8`).
pub const INDEX_PART_SHARDS_MAX: usize = u8::MAX as usize;

/// What one shard says about itself and its object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// This shard's index (data shards first).
    pub shard: u8,
    /// Data shards (1 for replicas).
    pub k: u8,
    /// Shards in total.
    pub n: u8,
    /// Stored as identical copies.
    pub replica: bool,
    /// Chunk size of full stripes.
    pub chunk_size: u32,
    /// Object size in bytes.
    pub size: u64,
    /// Version id of this write.
    pub version_id: u64,
    /// Last-modified time in milliseconds since the epoch.
    pub mtime_ms: u64,
    /// MD5 of the object (the ETag).
    pub md5: [u8; 16],
    /// Parts of a multipart object (0 for a single PUT).
    pub etag_parts: u16,
    /// For a shard of one multipart part: its part number (0 for a whole object).
    pub part_number: u16,
    /// The client's checksum: algorithm code (1 = CRC32 … 5 = SHA-256) and digest, if any.
    pub checksum: Option<(u8, Vec<u8>)>,
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Content headers.
    pub headers: ContentHeaders,
    /// User metadata.
    pub user_metadata: Vec<MetaPair>,
    /// Present only on the footer-only shards that record a completed multipart object.
    pub index: Option<PartIndex>,
}

/// The parts of a completed multipart object, as CompleteMultipartUpload recorded them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartIndex {
    /// The object's policy (the upload's, possibly `Hybrid`: each part resolves it by size).
    pub policy: Policy,
    /// Parts in part-number order.
    pub parts: Vec<IndexedPart>,
}

/// One part of a completed multipart object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedPart {
    /// Part number (1..=10 000).
    pub number: u16,
    /// Part size in bytes.
    pub size: u64,
    /// MD5 of the part.
    pub etag: [u8; 16],
    /// Where each of the part's shards lives, in shard order.
    pub shards: Vec<(SiteId, BackendId)>,
}

/// Why a footer could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestError {
    /// The magic, lengths or checksum do not match: not a Tessera shard, or damaged.
    Corrupt,
    /// A version this build does not know.
    UnknownVersion(u8),
}

fn put_str(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => {
            assert!(
                text.len() < usize::from(ABSENT),
                "field lengths are bounded by request limits"
            );
            out.extend_from_slice(&(text.len() as u16).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        None => out.extend_from_slice(&ABSENT.to_le_bytes()),
    }
}

/// Policy as a fixed 16 bytes: tag, threshold, n, k, m, chunk size (unused fields zero).
fn put_policy(out: &mut Vec<u8>, policy: &Policy) {
    let (tag, threshold, n, k, m, chunk_size) = match *policy {
        Policy::Ec { k, m, chunk_size } => (0_u8, 0_u64, 0_u8, k, m, chunk_size),
        Policy::Replica { n } => (1, 0, n, 0, 0, 0),
        Policy::Hybrid {
            threshold,
            n,
            k,
            m,
            chunk_size,
        } => (2, threshold, n, k, m, chunk_size),
    };
    out.push(tag);
    out.extend_from_slice(&threshold.to_le_bytes());
    out.extend_from_slice(&[n, k, m]);
    out.extend_from_slice(&chunk_size.to_le_bytes());
}

/// Serializes the footer (body and trailer).
#[must_use]
pub fn encode(manifest: &Manifest) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&[
        1,
        manifest.shard,
        manifest.k,
        manifest.n,
        u8::from(manifest.replica),
    ]);
    out.extend_from_slice(&manifest.chunk_size.to_le_bytes());
    out.extend_from_slice(&manifest.size.to_le_bytes());
    out.extend_from_slice(&manifest.version_id.to_le_bytes());
    out.extend_from_slice(&manifest.mtime_ms.to_le_bytes());
    out.extend_from_slice(&manifest.md5);
    out.extend_from_slice(&manifest.etag_parts.to_le_bytes());
    out.extend_from_slice(&manifest.part_number.to_le_bytes());
    let mut checksum = [0_u8; CHECKSUM_FIELD_BYTES];
    let (algorithm, digest) = manifest
        .checksum
        .as_ref()
        .map_or((0, &[][..]), |(a, d)| (*a, d.as_slice()));
    assert!(digest.len() <= CHECKSUM_FIELD_BYTES);
    checksum[..digest.len()].copy_from_slice(digest);
    out.push(algorithm);
    out.extend_from_slice(&checksum);
    put_str(&mut out, Some(&manifest.bucket));
    put_str(&mut out, Some(&manifest.key));
    let h = &manifest.headers;
    for field in [
        &h.content_type,
        &h.content_encoding,
        &h.content_disposition,
        &h.content_language,
        &h.cache_control,
        &h.expires,
    ] {
        put_str(&mut out, field.as_deref());
    }
    out.extend_from_slice(&(manifest.user_metadata.len() as u16).to_le_bytes());
    for pair in &manifest.user_metadata {
        put_str(&mut out, Some(&pair.name));
        put_str(&mut out, Some(&pair.value));
    }
    match &manifest.index {
        None => out.push(0),
        Some(index) => {
            out.push(1);
            put_policy(&mut out, &index.policy);
            assert!(index.parts.len() <= INDEX_PARTS_MAX);
            out.extend_from_slice(&(index.parts.len() as u16).to_le_bytes());
            for part in &index.parts {
                assert!(part.shards.len() <= INDEX_PART_SHARDS_MAX);
                out.extend_from_slice(&part.number.to_le_bytes());
                out.extend_from_slice(&part.size.to_le_bytes());
                out.extend_from_slice(&part.etag);
                out.push(part.shards.len() as u8);
                for (site, id) in &part.shards {
                    out.extend_from_slice(&site.to_le_bytes());
                    out.extend_from_slice(id);
                }
            }
        }
    }
    let body_len = out.len() as u32;
    let crc = tessera_ec::chunk_checksum(&out);
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&MAGIC);
    out
}

/// The footer length announced by the last [`TRAILER_BYTES`] of a shard.
pub fn footer_len(trailer: &[u8]) -> Result<usize, ManifestError> {
    if trailer.len() != TRAILER_BYTES || trailer[12..16] != MAGIC {
        return Err(ManifestError::Corrupt);
    }
    let body_len = u32::from_le_bytes(
        trailer[0..4]
            .try_into()
            .map_err(|_| ManifestError::Corrupt)?,
    );
    Ok(body_len as usize + TRAILER_BYTES)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ManifestError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(ManifestError::Corrupt)?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, ManifestError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ManifestError> {
        Ok(u16::from_le_bytes(
            self.take(2)?
                .try_into()
                .map_err(|_| ManifestError::Corrupt)?,
        ))
    }
    fn u32(&mut self) -> Result<u32, ManifestError> {
        Ok(u32::from_le_bytes(
            self.take(4)?
                .try_into()
                .map_err(|_| ManifestError::Corrupt)?,
        ))
    }
    fn u64(&mut self) -> Result<u64, ManifestError> {
        Ok(u64::from_le_bytes(
            self.take(8)?
                .try_into()
                .map_err(|_| ManifestError::Corrupt)?,
        ))
    }
    fn string(&mut self) -> Result<Option<String>, ManifestError> {
        let len = self.u16()?;
        if len == ABSENT {
            return Ok(None);
        }
        let bytes = self.take(usize::from(len))?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| ManifestError::Corrupt)
    }
    fn required(&mut self) -> Result<String, ManifestError> {
        self.string()?.ok_or(ManifestError::Corrupt)
    }
}

/// Parses a whole footer (body and trailer), checking its checksum.
pub fn decode(footer: &[u8]) -> Result<Manifest, ManifestError> {
    if footer.len() < TRAILER_BYTES
        || footer_len(&footer[footer.len() - TRAILER_BYTES..])? != footer.len()
    {
        return Err(ManifestError::Corrupt);
    }
    let body = &footer[..footer.len() - TRAILER_BYTES];
    let crc = u64::from_le_bytes(
        footer[footer.len() - 12..footer.len() - 4]
            .try_into()
            .map_err(|_| ManifestError::Corrupt)?,
    );
    if tessera_ec::chunk_checksum(body) != crc {
        return Err(ManifestError::Corrupt);
    }
    let mut r = Reader { bytes: body, at: 0 };
    let version = r.u8()?;
    if version != 1 {
        return Err(ManifestError::UnknownVersion(version));
    }
    let (shard, k, n, replica) = (r.u8()?, r.u8()?, r.u8()?, r.u8()? != 0);
    let chunk_size = r.u32()?;
    let (size, version_id, mtime_ms) = (r.u64()?, r.u64()?, r.u64()?);
    let md5: [u8; 16] = r.take(16)?.try_into().map_err(|_| ManifestError::Corrupt)?;
    let etag_parts = r.u16()?;
    let part_number = r.u16()?;
    let algorithm = r.u8()?;
    let digest = r.take(CHECKSUM_FIELD_BYTES)?;
    let checksum = match algorithm {
        0 => None,
        1 | 2 => Some((algorithm, digest[..4].to_vec())),
        3 => Some((algorithm, digest[..8].to_vec())),
        4 => Some((algorithm, digest[..20].to_vec())),
        5 => Some((algorithm, digest[..32].to_vec())),
        _ => return Err(ManifestError::Corrupt),
    };
    let bucket = r.required()?;
    let key = r.required()?;
    let headers = ContentHeaders {
        content_type: r.string()?,
        content_encoding: r.string()?,
        content_disposition: r.string()?,
        content_language: r.string()?,
        cache_control: r.string()?,
        expires: r.string()?,
    };
    let count = r.u16()?;
    let mut user_metadata = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        user_metadata.push(MetaPair {
            name: r.required()?,
            value: r.required()?,
        });
    }
    let index = match r.u8()? {
        0 => None,
        1 => Some(read_index(&mut r)?),
        _ => return Err(ManifestError::Corrupt),
    };
    if r.at != body.len() {
        return Err(ManifestError::Corrupt);
    }
    Ok(Manifest {
        shard,
        k,
        n,
        replica,
        chunk_size,
        size,
        version_id,
        mtime_ms,
        md5,
        etag_parts,
        part_number,
        checksum,
        bucket,
        key,
        headers,
        user_metadata,
        index,
    })
}

fn read_index(r: &mut Reader<'_>) -> Result<PartIndex, ManifestError> {
    let tag = r.u8()?;
    let threshold = r.u64()?;
    let (n, k, m) = (r.u8()?, r.u8()?, r.u8()?);
    let chunk_size = r.u32()?;
    let policy = match tag {
        0 => Policy::Ec { k, m, chunk_size },
        1 => Policy::Replica { n },
        2 => Policy::Hybrid {
            threshold,
            n,
            k,
            m,
            chunk_size,
        },
        _ => return Err(ManifestError::Corrupt),
    };
    let count = usize::from(r.u16()?);
    if count > INDEX_PARTS_MAX {
        return Err(ManifestError::Corrupt);
    }
    let mut parts = Vec::with_capacity(count);
    for _ in 0..count {
        let number = r.u16()?;
        let size = r.u64()?;
        let etag: [u8; 16] = r.take(16)?.try_into().map_err(|_| ManifestError::Corrupt)?;
        let shard_count = usize::from(r.u8()?);
        let mut shards = Vec::with_capacity(shard_count);
        for _ in 0..shard_count {
            let site_id: SiteId = r.u16()?;
            let id: BackendId = r.take(16)?.try_into().map_err(|_| ManifestError::Corrupt)?;
            shards.push((site_id, id));
        }
        parts.push(IndexedPart {
            number,
            size,
            etag,
            shards,
        });
    }
    Ok(PartIndex { policy, parts })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            shard: 2,
            k: 2,
            n: 3,
            replica: false,
            chunk_size: 1 << 20,
            size: 12_345,
            version_id: 77,
            mtime_ms: 1_795_000_000_000,
            md5: [7; 16],
            etag_parts: 0,
            part_number: 3,
            checksum: Some((1, vec![1, 2, 3, 4])),
            bucket: "photos".into(),
            key: "a/b c+ü".into(),
            headers: ContentHeaders {
                content_type: Some("image/png".into()),
                expires: Some(String::new()),
                ..ContentHeaders::default()
            },
            user_metadata: vec![MetaPair {
                name: "owner".into(),
                value: "me".into(),
            }],
            index: None,
        }
    }

    fn indexed() -> Manifest {
        Manifest {
            shard: 1,
            k: 1,
            n: 3,
            replica: true,
            chunk_size: 0,
            part_number: 0,
            etag_parts: 2,
            checksum: None,
            index: Some(PartIndex {
                policy: Policy::Hybrid {
                    threshold: 1 << 20,
                    n: 3,
                    k: 2,
                    m: 1,
                    chunk_size: 1 << 20,
                },
                parts: vec![
                    IndexedPart {
                        number: 1,
                        size: 5 << 20,
                        etag: [1; 16],
                        shards: vec![(0, [9; 16]), (2, [8; 16]), (1, [7; 16])],
                    },
                    IndexedPart {
                        number: 3,
                        size: 17,
                        etag: [3; 16],
                        shards: vec![(1, [6; 16]), (0, [5; 16]), (2, [4; 16])],
                    },
                ],
            }),
            ..sample()
        }
    }

    /// A part index footer round-trips for every policy kind, and a footer with an index is
    /// not mistaken for one without.
    #[test]
    fn part_index_round_trip() {
        let mut manifest = indexed();
        for policy in [
            Policy::Ec {
                k: 4,
                m: 2,
                chunk_size: 65_536,
            },
            Policy::Replica { n: 3 },
            indexed().index.unwrap().policy,
        ] {
            manifest.index.as_mut().unwrap().policy = policy;
            let footer = encode(&manifest);
            assert_eq!(decode(&footer).unwrap(), manifest);
            assert_ne!(footer, encode(&sample()));
        }
    }

    /// Every single-byte corruption of a part index footer is detected as well.
    #[test]
    fn part_index_corruption_detected() {
        let footer = encode(&indexed());
        for i in 0..footer.len() {
            let mut bad = footer.clone();
            bad[i] ^= 0x01;
            assert!(decode(&bad).is_err(), "flip at {i} not detected");
        }
    }

    /// A footer round-trips, and its length does not depend on the ETag or checksum values
    /// (so the shard length is fixed before the body is read).
    #[test]
    fn round_trip_and_fixed_length() {
        let manifest = sample();
        let footer = encode(&manifest);
        assert_eq!(decode(&footer).unwrap(), manifest);
        assert_eq!(
            footer_len(&footer[footer.len() - TRAILER_BYTES..]).unwrap(),
            footer.len()
        );
        let mut other = manifest.clone();
        other.md5 = [0; 16];
        other.checksum = Some((1, vec![0; 4]));
        assert_eq!(encode(&other).len(), footer.len());
    }

    /// Every single-byte corruption of a footer is detected.
    #[test]
    fn corruption_detected() {
        let footer = encode(&sample());
        for i in 0..footer.len() {
            let mut bad = footer.clone();
            bad[i] ^= 0x20;
            assert!(decode(&bad).is_err(), "flip at {i} not detected");
        }
        assert_eq!(decode(&footer[1..]), Err(ManifestError::Corrupt));
    }
}
