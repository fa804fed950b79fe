//! `tessera recover`: rebuilds the metadata of an empty data directory from the sites alone.
//!
//! ```text
//!  every site: list "" page by page ─► key "xx/<32 hex>" ─► backend id
//!     └─► get_range(last 16 bytes) ─► footer_len ─► get_range(footer) ─► manifest::decode
//!  plan (pure):
//!     data shards  grouped by (bucket, key, version, part 0) ─► ≥ k shards? ─► Object
//!     part indexes (footer-only shards of CompleteMultipartUpload) ─► every listed part has
//!                  ≥ k of its shards? ─► Object { parts }
//!     per (bucket, key): the newest candidate (mtime, version id) wins
//!  write: MetaStore per core (data_dir/meta/core-N)
//!     PutBucket on every core; PutObject (+ repair entries for missing shards) on the core
//!     partition_of(bucket, key) names
//! ```
//!
//! Shards that no chosen object references (older versions, uploads that never completed,
//! writes that never committed) are left in place: the scrub (`engine::scrub`) removes them
//! once the gateway runs. What cannot be rebuilt: deletions whose purge had not finished
//! (the object reappears), multipart uploads still in progress (their parts become orphans),
//! and bucket policies (buckets come back with the configured default policy).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use futures_util::future::join_all;
use tessera_http::S3Error;
use tessera_meta::{
    partition_of, BackendId, Bucket, Checksum, ChecksumAlgorithm, ETag, FileStorage, MetaError,
    MetaStore, Object, ObjectPart, Op, Policy, QueueEntry, QueueKind, Shard, ShardState, SiteId,
    StoreConfig,
};

use crate::config::Config;
use crate::engine::manifest::{self, IndexedPart, Manifest, PartIndex, TRAILER_BYTES};
use crate::engine::{backend_key, policy, Engine};
use crate::site::{ByteRange, Site, SiteError};

/// Manifest reads in flight at once while scanning a site: enough to hide a remote site's
/// latency, few enough that the scan never crowds out a serving gateway's connections.
pub const SCAN_READS_INFLIGHT_MAX: usize = 32;
/// Largest footer read: a part index of `INDEX_PARTS_MAX` parts of 6 shards is ~1.3 MB, so
/// 4 MiB covers every real footer and bounds the buffer a damaged trailer could ask for.
pub const FOOTER_BYTES_MAX: usize = 4 << 20;
/// Estimated record bytes per metadata commit while rebuilding: keeps every frame far below
/// `FRAME_PAYLOAD_MAX` (8 MiB) while batching many objects per fsync.
pub const REBUILD_COMMIT_BYTES_MAX: usize = 1 << 20;
/// Progress is printed every this many shards scanned.
pub const PROGRESS_EVERY_SHARDS: u64 = 1000;

/// Why `tessera recover` stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum RecoverError {
    /// The data directory already holds metadata and `--force` was not given.
    MetadataExists(PathBuf),
    /// A file system operation on the data directory failed.
    Io(String),
    /// A site could not be opened from its configuration.
    Site(String),
    /// Writing the rebuilt metadata failed.
    Meta(MetaError),
}

impl fmt::Display for RecoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoverError::MetadataExists(path) => write!(
                f,
                "{} already holds metadata; pass --force to move it aside and rebuild",
                path.display()
            ),
            RecoverError::Io(message) | RecoverError::Site(message) => f.write_str(message),
            RecoverError::Meta(e) => write!(f, "writing metadata: {e}"),
        }
    }
}

impl std::error::Error for RecoverError {}

/// One shard found at a site, with its manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedShard {
    /// The site it was listed at.
    pub site: SiteId,
    /// Its backend id (from its key).
    pub backend_id: BackendId,
    /// Its length at the site.
    pub len: u64,
    /// Its manifest.
    pub manifest: Manifest,
}

/// What a scan and rebuild found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Keys listed at all sites.
    pub keys_listed: u64,
    /// Shards whose manifest was read and valid.
    pub shards_scanned: u64,
    /// Keys that are not shards or whose footer is damaged or unreadable.
    pub shards_unreadable: u64,
    /// Sites that could not be listed to the end.
    pub sites_failed: u64,
    /// Buckets recreated.
    pub buckets: u64,
    /// Object records rebuilt (single-request and multipart).
    pub objects: u64,
    /// Of those, multipart objects.
    pub multipart_objects: u64,
    /// Missing shards of rebuilt objects, queued for repair.
    pub repairs_queued: u64,
    /// Versions seen with too few shards to be read (skipped).
    pub versions_unreadable: u64,
    /// Shards no rebuilt object references (left for the scrub).
    pub shards_unreferenced: u64,
}

/// The backend id named by a shard key `xx/<32 hex>` (see [`backend_key`]), if it is one.
#[must_use]
pub fn backend_id_of(key: &str) -> Option<BackendId> {
    let (fan, hex_id) = key.split_once('/')?;
    if fan.len() != 2 || hex_id.len() != 32 || !hex_id.starts_with(fan) {
        return None;
    }
    let mut id = [0_u8; 16];
    hex::decode_to_slice(hex_id, &mut id).ok()?;
    (backend_key(&id) == key).then_some(id)
}

/// Reads and decodes the manifest footer of shard `key` (of length `len`) at `site`.
pub async fn read_manifest(site: &Site, key: &str, len: u64) -> Result<Manifest, SiteError> {
    const CORRUPT: SiteError = SiteError::Protocol("not a Tessera shard footer");
    if len < TRAILER_BYTES as u64 {
        return Err(CORRUPT);
    }
    let range = ByteRange {
        start: len - TRAILER_BYTES as u64,
        len: TRAILER_BYTES as u64,
    };
    let (read, trailer) = site
        .get_range(key, range, Vec::with_capacity(TRAILER_BYTES))
        .await;
    read?;
    let footer_len = manifest::footer_len(&trailer).map_err(|_| CORRUPT)?;
    if footer_len as u64 > len || footer_len > FOOTER_BYTES_MAX {
        return Err(CORRUPT);
    }
    let range = ByteRange {
        start: len - footer_len as u64,
        len: footer_len as u64,
    };
    let (read, footer) = site
        .get_range(key, range, Vec::with_capacity(footer_len))
        .await;
    if read? != footer_len {
        return Err(CORRUPT);
    }
    manifest::decode(&footer).map_err(|_| CORRUPT)
}

/// The shard length a manifest implies: chunk area plus footer. Index shards have no chunks.
fn expected_len(manifest: &Manifest) -> Option<u64> {
    let footer = manifest::encode(manifest).len() as u64;
    if manifest.index.is_some() {
        return Some(footer);
    }
    let layout =
        tessera_ec::Layout::new(manifest.size, usize::from(manifest.k), manifest.chunk_size)
            .ok()?;
    Some(layout.shard_len() + footer)
}

fn checksum_of(manifest: &Manifest) -> Option<Checksum> {
    let (code, value) = manifest.checksum.as_ref()?;
    let algorithm = match code {
        1 => ChecksumAlgorithm::Crc32,
        2 => ChecksumAlgorithm::Crc32c,
        3 => ChecksumAlgorithm::Crc64Nvme,
        4 => ChecksumAlgorithm::Sha1,
        5 => ChecksumAlgorithm::Sha256,
        _ => return None,
    };
    Some(Checksum {
        algorithm,
        value: value.clone(),
    })
}

/// The metadata to write, computed from the scanned shards alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Bucket name → earliest write seen in it (its creation time).
    pub buckets: BTreeMap<String, u64>,
    /// One object per (bucket, key): its newest readable version.
    pub objects: Vec<Object>,
    /// Shards of `objects[i]` that were not found and are recorded `Pending`, by flattened
    /// index (`engine::repair::flat_index`: a part's shards count after the earlier parts').
    pub missing: Vec<(usize, usize)>,
    /// Versions seen with too few readable shards.
    pub versions_unreadable: u64,
    /// Shards no planned object references.
    pub shards_unreferenced: u64,
}

type VersionKey = (String, String, u64);
/// The best version seen so far of one (bucket, key): (mtime, version id, object, indices
/// of its missing shards).
type Candidate = (u64, u64, Object, Vec<u16>);

/// Groups scanned shards into objects. `sites` is the number of configured sites; `fresh_id`
/// supplies backend ids for the `Pending` placeholders of missing shards.
pub fn plan(
    shards: &[ScannedShard],
    sites: usize,
    mut fresh_id: impl FnMut() -> BackendId,
) -> Plan {
    let mut plan = Plan::default();
    let mut whole: BTreeMap<VersionKey, Vec<&ScannedShard>> = BTreeMap::new();
    let mut indexes: BTreeMap<VersionKey, &ScannedShard> = BTreeMap::new();
    let mut part_shards: HashMap<BackendId, &ScannedShard> = HashMap::new();
    for shard in shards {
        let m = &shard.manifest;
        if expected_len(m) != Some(shard.len) {
            // Truncated or padded: not a shard this build wrote completely.
            continue;
        }
        let bucket_seen = plan.buckets.entry(m.bucket.clone()).or_insert(m.mtime_ms);
        *bucket_seen = (*bucket_seen).min(m.mtime_ms);
        let version = (m.bucket.clone(), m.key.clone(), m.version_id);
        if m.index.is_some() {
            indexes.entry(version).or_insert(shard);
        } else if m.part_number > 0 {
            part_shards.insert(shard.backend_id, shard);
        } else {
            whole.entry(version).or_default().push(shard);
        }
    }

    // Candidates per (bucket, key): (mtime, version id, object, missing shard indices).
    let mut candidates: BTreeMap<(String, String), Candidate> = BTreeMap::new();
    let mut offer = |object: Object, missing: Vec<u16>| {
        let rank = (object.mtime_ms, object.version_id);
        let slot = (object.bucket.clone(), object.key.clone());
        match candidates.get(&slot) {
            Some(held) if (held.0, held.1) >= rank => {}
            _ => {
                candidates.insert(slot, (rank.0, rank.1, object, missing));
            }
        }
    };
    for group in whole.values() {
        match whole_object(group, sites, &mut fresh_id) {
            Some((object, missing)) => offer(object, missing),
            None => plan.versions_unreadable += 1,
        }
    }
    for index_shard in indexes.values() {
        match multipart_object(index_shard, &part_shards) {
            Some(object) => offer(object, Vec::new()),
            None => plan.versions_unreadable += 1,
        }
    }
    let mut referenced: HashSet<BackendId> = HashSet::new();
    for (_, _, object, missing) in candidates.into_values() {
        let i = plan.objects.len();
        referenced.extend(object.shards.iter().map(|s| s.backend_id));
        referenced.extend(
            object
                .parts
                .iter()
                .flat_map(|p| p.shards.iter().map(|s| s.backend_id)),
        );
        if object.parts.is_empty() {
            plan.missing
                .extend(missing.into_iter().map(|s| (i, usize::from(s))));
        } else {
            // Part shards the index lists but no site holds: queued like a whole object's.
            plan.missing.extend(
                crate::engine::repair::flat_shards(&object)
                    .filter(|(_, s)| s.state == ShardState::Pending)
                    .map(|(flat, _)| (i, flat)),
            );
        }
        plan.objects.push(object);
    }
    // Index shards are referenced by version, not by id.
    let chosen: HashSet<VersionKey> = plan
        .objects
        .iter()
        .filter(|o| !o.parts.is_empty())
        .map(|o| (o.bucket.clone(), o.key.clone(), o.version_id))
        .collect();
    plan.shards_unreferenced = shards
        .iter()
        .filter(|s| {
            let m = &s.manifest;
            if m.index.is_some() {
                !chosen.contains(&(m.bucket.clone(), m.key.clone(), m.version_id))
            } else {
                !referenced.contains(&s.backend_id)
            }
        })
        .count() as u64;
    plan
}

/// The object of one (bucket, key, version) group of whole-object shards, if ≥ k distinct
/// shards agree on its shape.
fn whole_object(
    group: &[&ScannedShard],
    sites: usize,
    fresh_id: &mut impl FnMut() -> BackendId,
) -> Option<(Object, Vec<u16>)> {
    let first = &group.first()?.manifest;
    let (k, n) = (usize::from(first.k), usize::from(first.n));
    if k == 0 || n < k {
        return None;
    }
    let same_shape = |m: &Manifest| {
        (m.k, m.n, m.replica, m.chunk_size, m.size, m.md5)
            == (
                first.k,
                first.n,
                first.replica,
                first.chunk_size,
                first.size,
                first.md5,
            )
    };
    let mut found: Vec<Option<&ScannedShard>> = vec![None; n];
    for shard in group {
        let index = usize::from(shard.manifest.shard);
        if index < n && same_shape(&shard.manifest) && found[index].is_none() {
            found[index] = Some(shard);
        }
    }
    if found.iter().flatten().count() < k {
        return None;
    }
    // Missing shards get a fresh id at a site none of the found shards uses (any site if
    // there are too few): repair writes them there.
    let used: HashSet<SiteId> = found.iter().flatten().map(|s| s.site).collect();
    let mut free = (0..sites)
        .filter_map(|s| SiteId::try_from(s).ok())
        .filter(|s| !used.contains(s));
    let mut missing = Vec::new();
    let shards: Vec<Shard> = found
        .iter()
        .enumerate()
        .map(|(i, shard)| {
            if let Some(shard) = shard {
                Shard {
                    site: shard.site,
                    backend_id: shard.backend_id,
                    state: ShardState::Durable,
                }
            } else {
                missing.push(i as u16);
                Shard {
                    site: free.next().unwrap_or((i % sites.max(1)) as SiteId),
                    backend_id: fresh_id(),
                    state: ShardState::Pending,
                }
            }
        })
        .collect();
    let policy = if first.replica {
        Policy::Replica { n: first.n }
    } else {
        Policy::Ec {
            k: first.k,
            m: first.n - first.k,
            chunk_size: first.chunk_size,
        }
    };
    let object = Object {
        bucket: first.bucket.clone(),
        key: first.key.clone(),
        version_id: first.version_id,
        size: first.size,
        etag: ETag {
            md5: first.md5,
            parts: first.etag_parts,
        },
        headers: first.headers.clone(),
        user_metadata: first.user_metadata.clone(),
        checksums: checksum_of(first).into_iter().collect(),
        mtime_ms: first.mtime_ms,
        policy,
        chunk_size: first.chunk_size,
        shards,
        parts: Vec::new(),
    };
    Some((object, missing))
}

/// The multipart object a part index describes, if every part has ≥ k readable shards.
fn multipart_object(
    index_shard: &ScannedShard,
    part_shards: &HashMap<BackendId, &ScannedShard>,
) -> Option<Object> {
    let m = &index_shard.manifest;
    let index = m.index.as_ref()?;
    let mut parts = Vec::with_capacity(index.parts.len());
    for part in &index.parts {
        let (_, shape) = policy::resolve(&index.policy, part.size);
        let shards: Vec<Shard> = part
            .shards
            .iter()
            .map(|&(site, backend_id)| {
                let present = part_shards.get(&backend_id).is_some_and(|s| {
                    s.site == site
                        && s.manifest.part_number == part.number
                        && s.manifest.bucket == m.bucket
                        && s.manifest.key == m.key
                        && s.manifest.size == part.size
                });
                Shard {
                    site,
                    backend_id,
                    state: if present {
                        ShardState::Durable
                    } else {
                        ShardState::Pending
                    },
                }
            })
            .collect();
        let durable = shards
            .iter()
            .filter(|s| s.state == ShardState::Durable)
            .count();
        if durable < shape.k || shards.len() != shape.n {
            return None;
        }
        parts.push(ObjectPart {
            number: u32::from(part.number),
            size: part.size,
            etag: part.etag,
            shards,
        });
    }
    Some(Object {
        bucket: m.bucket.clone(),
        key: m.key.clone(),
        version_id: m.version_id,
        size: m.size,
        etag: ETag {
            md5: m.md5,
            parts: m.etag_parts,
        },
        headers: m.headers.clone(),
        user_metadata: m.user_metadata.clone(),
        checksums: Vec::new(),
        mtime_ms: m.mtime_ms,
        policy: index.policy,
        chunk_size: 0,
        shards: Vec::new(),
        parts,
    })
}

/// Records a completed multipart object at the sites: one footer-only part index shard per
/// site, so that `tessera recover` can tell which parts make it up. Called by
/// CompleteMultipartUpload before its metadata commit; succeeds once as many copies are durable
/// as the strictest write quorum among the object's parts (the index must survive whatever
/// the parts survive). Copies that failed are not recorded anywhere: the scrub finds sites
/// without a copy and writes one there ([`write_part_index_copy`], `engine::scrub`).
pub async fn write_part_index(engine: &Engine, object: &Object) -> Result<(), S3Error> {
    let mut quorum = 1;
    for part in &object.parts {
        let (_, shape) = policy::resolve(&object.policy, part.size);
        quorum = quorum.max(engine.quorum(&shape));
    }
    let index = part_index(object)?;
    let copies = engine.sites.len();
    let quorum = quorum.min(copies);
    let written = join_all((0..copies).map(|site| {
        let footer = part_index_footer(object, &index, site, copies);
        async move {
            write_part_index_copy(engine, site, object.version_id, footer)
                .await
                .ok()
        }
    }))
    .await;
    let durable = written.iter().filter(|w| w.is_some()).count();
    if durable < quorum {
        return Err(crate::engine::unavailable(format!(
            "only {durable} of {copies} copies of the part index became durable (quorum {quorum})"
        )));
    }
    Ok(())
}

/// The part index of a multipart object: which parts, and which of their shards, make it up.
pub fn part_index(object: &Object) -> Result<PartIndex, S3Error> {
    let mut parts = Vec::with_capacity(object.parts.len());
    for part in &object.parts {
        parts.push(IndexedPart {
            number: u16::try_from(part.number)
                .map_err(|_| crate::engine::internal("part number out of range"))?,
            size: part.size,
            etag: part.etag,
            shards: part.shards.iter().map(|s| (s.site, s.backend_id)).collect(),
        });
    }
    Ok(PartIndex {
        policy: object.policy,
        parts,
    })
}

/// The footer-only shard holding the part index copy for site `site` of `copies` (one per
/// configured site). The same bytes for a given object and site whenever it is built: the
/// record's parts never change their shards' sites or ids.
#[must_use]
pub fn part_index_footer(
    object: &Object,
    index: &PartIndex,
    site: usize,
    copies: usize,
) -> Vec<u8> {
    manifest::encode(&Manifest {
        shard: site as u8,
        k: 1,
        n: copies as u8,
        replica: true,
        chunk_size: 0,
        size: object.size,
        version_id: object.version_id,
        mtime_ms: object.mtime_ms,
        md5: object.etag.md5,
        etag_parts: object.etag.parts,
        part_number: 0,
        checksum: None,
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        headers: object.headers.clone(),
        user_metadata: object.user_metadata.clone(),
        index: Some(index.clone()),
    })
}

/// The backend id of the part-index copy of object version `version_id` at site `site`.
/// Derived rather than random, so that deleting or replacing the object purges every copy
/// without the record listing them (its format is frozen), and a copy the scrub restores
/// lands where the purge will look.
#[must_use]
pub fn part_index_id(version_id: u64, site: usize) -> tessera_meta::BackendId {
    let mut id = [0_u8; 16];
    id[..8].copy_from_slice(&version_id.to_le_bytes());
    id[8..12].copy_from_slice(b"pidx");
    id[12..].copy_from_slice(&u32::try_from(site).unwrap_or(u32::MAX).to_le_bytes());
    id
}

/// Writes one part index copy, `footer`, of object version `version_id` at site `site`
/// (under [`part_index_id`]).
pub async fn write_part_index_copy(
    engine: &Engine,
    site: usize,
    version_id: u64,
    footer: Vec<u8>,
) -> Result<(), S3Error> {
    let key = backend_key(&part_index_id(version_id, site));
    let site = engine
        .sites
        .get(site)
        .ok_or_else(|| crate::engine::internal("no such site"))?;
    let failed = |e: SiteError| crate::engine::unavailable(format!("site {}: {e}", site.name()));
    let mut writer = site
        .put_shard(&key, footer.len() as u64)
        .await
        .map_err(failed)?;
    let (result, _) = writer.write(footer).await;
    if let Err(e) = result {
        writer.abort().await;
        return Err(failed(e));
    }
    writer.finish().await.map_err(failed)
}

/// What `tessera recover` was asked to do.
#[derive(Clone, Debug)]
pub struct RecoverArgs {
    /// Move existing metadata aside instead of refusing.
    pub force: bool,
}

/// Scans every configured site, then writes the rebuilt metadata under
/// `config.server.data_dir/meta`. Progress and the summary go to `out`.
pub async fn run(
    config: &Config,
    args: &RecoverArgs,
    out: &mut impl Write,
) -> Result<Summary, RecoverError> {
    let data_dir = &config.server.data_dir;
    let meta_dir = data_dir.join("meta");
    prepare_meta_dir(&meta_dir, args.force, out)?;
    let sites = config
        .effective_sites()
        .iter()
        .map(|c| Site::open(c).map_err(|e| RecoverError::Site(format!("site {}: {e}", c.name()))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut summary = Summary::default();
    let mut scanned = Vec::new();
    for (index, site) in sites.iter().enumerate() {
        let site_id =
            SiteId::try_from(index).map_err(|_| RecoverError::Site("too many sites".into()))?;
        scan_site(site, site_id, &mut scanned, &mut summary, out).await;
    }
    let _ = writeln!(
        out,
        "scanned {} shard(s) at {} site(s) ({} unreadable key(s), {} site(s) failed)",
        summary.shards_scanned,
        sites.len(),
        summary.shards_unreadable,
        summary.sites_failed
    );
    let plan = plan(&scanned, sites.len(), || {
        crate::engine::random_id().unwrap_or_else(|_| {
            // The OS random source failed: derive an id that cannot collide with a random one
            // in practice from the clock (the shard is only a repair target).
            let mut id = [0xFF_u8; 16];
            id[..8].copy_from_slice(&crate::engine::now_ms().to_le_bytes());
            id
        })
    });
    write_plan(config, &meta_dir, &plan, &mut summary, out).await?;
    summary.versions_unreadable = plan.versions_unreadable;
    summary.shards_unreferenced = plan.shards_unreferenced;
    let _ = writeln!(
        out,
        "rebuilt {} bucket(s) and {} object(s) ({} multipart); {} missing shard(s) queued for repair; \
         {} version(s) with too few shards skipped; {} unreferenced shard(s) left for the scrub",
        summary.buckets,
        summary.objects,
        summary.multipart_objects,
        summary.repairs_queued,
        summary.versions_unreadable,
        summary.shards_unreferenced
    );
    Ok(summary)
}

/// Refuses a data directory that holds metadata, or moves it aside with `force`.
fn prepare_meta_dir(
    meta_dir: &Path,
    force: bool,
    out: &mut impl Write,
) -> Result<(), RecoverError> {
    let io = |e: std::io::Error| RecoverError::Io(format!("{}: {e}", meta_dir.display()));
    let occupied = match std::fs::read_dir(meta_dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(io(e)),
    };
    if occupied {
        if !force {
            return Err(RecoverError::MetadataExists(meta_dir.to_path_buf()));
        }
        let aside = meta_dir.with_file_name(format!("meta.replaced-{}", crate::engine::now_ms()));
        std::fs::rename(meta_dir, &aside).map_err(io)?;
        let _ = writeln!(out, "moved the existing metadata to {}", aside.display());
    }
    std::fs::create_dir_all(meta_dir).map_err(io)
}

async fn scan_site(
    site: &Site,
    site_id: SiteId,
    scanned: &mut Vec<ScannedShard>,
    summary: &mut Summary,
    out: &mut impl Write,
) {
    let mut continuation: Option<String> = None;
    loop {
        let page = match site.list("", continuation.as_deref()).await {
            Ok(page) => page,
            Err(e) => {
                let _ = writeln!(out, "site {}: listing failed: {e}", site.name());
                summary.sites_failed += 1;
                return;
            }
        };
        for batch in page.entries.chunks(SCAN_READS_INFLIGHT_MAX) {
            let read = join_all(batch.iter().map(|entry| async move {
                let id = backend_id_of(&entry.key)?;
                let manifest = read_manifest(site, &entry.key, entry.len).await.ok()?;
                Some((id, entry.len, manifest))
            }))
            .await;
            for found in read {
                summary.keys_listed += 1;
                let Some((backend_id, len, manifest)) = found else {
                    summary.shards_unreadable += 1;
                    continue;
                };
                summary.shards_scanned += 1;
                if summary.shards_scanned % PROGRESS_EVERY_SHARDS == 0 {
                    let _ = writeln!(out, "scanned {} shard(s)…", summary.shards_scanned);
                }
                scanned.push(ScannedShard {
                    site: site_id,
                    backend_id,
                    len,
                    manifest,
                });
            }
        }
        match page.continuation {
            Some(next) => continuation = Some(next),
            None => return,
        }
    }
}

fn bucket_owner(config: &Config) -> String {
    config
        .credentials
        .first()
        .map(|c| c.access_key.clone())
        .or_else(|| std::env::var("TESSERA_ACCESS_KEY").ok())
        .unwrap_or_else(|| "tessera".to_owned())
}

/// A rough size of an object's record, for batching commits.
fn record_bytes(object: &Object) -> usize {
    512 + object.key.len()
        + object.shards.len() * 24
        + object
            .parts
            .iter()
            .map(|p| 48 + p.shards.len() * 24)
            .sum::<usize>()
}

async fn write_plan(
    config: &Config,
    meta_dir: &Path,
    plan: &Plan,
    summary: &mut Summary,
    out: &mut impl Write,
) -> Result<(), RecoverError> {
    let cores = config.core_count();
    std::fs::write(meta_dir.join("cores"), format!("{cores}\n"))
        .map_err(|e| RecoverError::Io(format!("{}: {e}", meta_dir.display())))?;
    let mut stores = Vec::with_capacity(cores);
    for core in 0..cores {
        let dir = meta_dir.join(format!("core-{core}"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| RecoverError::Io(format!("{}: {e}", dir.display())))?;
        let storage = FileStorage::new(&dir).map_err(RecoverError::Meta)?;
        let (store, _) = MetaStore::open(storage, StoreConfig::default())
            .await
            .map_err(RecoverError::Meta)?;
        stores.push(store);
    }
    let default_policy = policy::parse(&config.engine.default_policy)
        .unwrap_or(crate::handlers::bucket::DEFAULT_POLICY);
    let owner = bucket_owner(config);
    let bucket_ops: Vec<Op> = plan
        .buckets
        .iter()
        .map(|(name, created_ms)| {
            Op::PutBucket(Bucket {
                name: name.clone(),
                created_ms: *created_ms,
                policy: default_policy,
                owner: owner.clone(),
            })
        })
        .collect();
    for store in &stores {
        for batch in bucket_ops.chunks(1024) {
            store
                .commit(batch.to_vec())
                .await
                .map_err(RecoverError::Meta)?;
        }
    }
    summary.buckets = bucket_ops.len() as u64;

    let mut missing: HashMap<usize, Vec<usize>> = HashMap::new();
    for &(object, shard) in &plan.missing {
        missing.entry(object).or_default().push(shard);
    }
    let mut pending: Vec<(Vec<Op>, usize)> = (0..cores).map(|_| (Vec::new(), 0)).collect();
    let now = crate::engine::now_ms();
    for (i, object) in plan.objects.iter().enumerate() {
        let core = usize::from(partition_of(&object.bucket, &object.key, cores).0);
        let store = &stores[core];
        let (ops, bytes) = &mut pending[core];
        for &flat in missing.get(&i).map_or(&[][..], Vec::as_slice) {
            let Some(target) = crate::engine::repair::locate(object, flat) else {
                continue;
            };
            let shard = *crate::engine::repair::shard(object, target);
            let shard_index = crate::engine::repair::queued_index(flat);
            ops.push(Op::PutQueue(QueueEntry {
                kind: QueueKind::Repair,
                id: store.allocate_queue_id(),
                site: shard.site,
                backend_id: shard.backend_id,
                bucket: object.bucket.clone(),
                key: object.key.clone(),
                version_id: object.version_id,
                shard_index,
                enqueued_ms: now,
                attempts: 0,
            }));
            summary.repairs_queued += 1;
        }
        ops.push(Op::PutObject(object.clone()));
        *bytes += record_bytes(object);
        summary.objects += 1;
        if !object.parts.is_empty() {
            summary.multipart_objects += 1;
        }
        if *bytes >= REBUILD_COMMIT_BYTES_MAX {
            store
                .commit(std::mem::take(ops))
                .await
                .map_err(RecoverError::Meta)?;
            *bytes = 0;
            let _ = writeln!(out, "rebuilt {} object(s)…", summary.objects);
        }
    }
    for (store, (ops, _)) in stores.iter().zip(pending) {
        if !ops.is_empty() {
            store.commit(ops).await.map_err(RecoverError::Meta)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_meta::ContentHeaders;

    fn manifest(key: &str, version_id: u64, mtime_ms: u64, shard: u8, size: u64) -> Manifest {
        Manifest {
            shard,
            k: 2,
            n: 3,
            replica: false,
            chunk_size: tessera_ec::chunk_size_for(size, 2, 1 << 20),
            size,
            version_id,
            mtime_ms,
            md5: [version_id as u8; 16],
            etag_parts: 0,
            part_number: 0,
            checksum: Some((2, vec![1, 2, 3, 4])),
            bucket: "b".into(),
            key: key.into(),
            headers: ContentHeaders::default(),
            user_metadata: Vec::new(),
            index: None,
        }
    }

    fn scanned(site: u16, id: u8, manifest: Manifest) -> ScannedShard {
        ScannedShard {
            site,
            backend_id: [id; 16],
            len: expected_len(&manifest).unwrap(),
            manifest,
        }
    }

    fn ids() -> impl FnMut() -> BackendId {
        let mut next = 200_u8;
        move || {
            next += 1;
            [next; 16]
        }
    }

    /// Shard keys map back to their backend ids, and nothing else parses as one.
    #[test]
    fn backend_ids_round_trip() {
        let id = [0xAB; 16];
        assert_eq!(backend_id_of(&backend_key(&id)), Some(id));
        assert_eq!(backend_id_of("ab/abab"), None);
        assert_eq!(backend_id_of(&backend_key(&id).replace("ab/", "cd/")), None);
        assert_eq!(backend_id_of("meta/cores"), None);
        assert_eq!(backend_id_of(&backend_key(&id).to_uppercase()), None);
    }

    /// The newest version with at least k shards wins; a newer version with fewer than k
    /// shards is skipped; a missing shard becomes a Pending placeholder at an unused site.
    #[test]
    fn newest_readable_version_wins() {
        let shards = vec![
            scanned(0, 1, manifest("k", 10, 1_000, 0, 5000)),
            scanned(1, 2, manifest("k", 10, 1_000, 1, 5000)),
            scanned(2, 3, manifest("k", 10, 1_000, 2, 5000)),
            // A newer version whose writer died after one shard: unreadable.
            scanned(0, 4, manifest("k", 11, 2_000, 0, 70)),
            // A newer readable version with one shard lost.
            scanned(2, 5, manifest("k", 12, 3_000, 2, 7000)),
            scanned(0, 6, manifest("k", 12, 3_000, 0, 7000)),
        ];
        let plan = plan(&shards, 3, ids());
        assert_eq!(plan.objects.len(), 1);
        let object = &plan.objects[0];
        assert_eq!((object.version_id, object.size), (12, 7000));
        assert_eq!(object.shards[0].backend_id, [6; 16]);
        assert_eq!(object.shards[2].backend_id, [5; 16]);
        assert_eq!(object.shards[1].state, ShardState::Pending);
        assert_eq!(object.shards[1].site, 1);
        assert_eq!(plan.missing, vec![(0, 1)]);
        assert_eq!(plan.versions_unreadable, 1);
        assert_eq!(plan.shards_unreferenced, 4);
        assert_eq!(plan.buckets.get("b"), Some(&1_000));
        assert_eq!(
            object.checksums,
            vec![Checksum {
                algorithm: ChecksumAlgorithm::Crc32c,
                value: vec![1, 2, 3, 4]
            }]
        );
    }

    /// A shard whose length does not match its manifest (truncated) does not count.
    #[test]
    fn truncated_shards_do_not_count() {
        let mut short = scanned(1, 2, manifest("k", 10, 1_000, 1, 5000));
        short.len -= 1;
        let shards = vec![scanned(0, 1, manifest("k", 10, 1_000, 0, 5000)), short];
        let plan = plan(&shards, 3, ids());
        assert!(plan.objects.is_empty());
        assert_eq!(plan.versions_unreadable, 1);
    }

    fn part(number: u16, version_id: u64, shard: u8, size: u64) -> Manifest {
        Manifest {
            part_number: number,
            checksum: None,
            ..manifest("mp", version_id, 500, shard, size)
        }
    }

    fn index_manifest(parts: Vec<IndexedPart>, version_id: u64, mtime_ms: u64) -> Manifest {
        Manifest {
            shard: 0,
            k: 1,
            n: 3,
            replica: true,
            chunk_size: 0,
            size: parts.iter().map(|p| p.size).sum(),
            etag_parts: parts.len() as u16,
            checksum: None,
            index: Some(PartIndex {
                policy: Policy::Ec {
                    k: 2,
                    m: 1,
                    chunk_size: 1 << 20,
                },
                parts,
            }),
            ..manifest("mp", version_id, mtime_ms, 0, 0)
        }
    }

    /// A part index rebuilds the multipart object from exactly the parts it lists (a part
    /// uploaded but left out of the completion is not included), and it loses to a newer
    /// single PUT of the same key but beats an older one.
    #[test]
    fn multipart_from_part_index() {
        let size = 6 << 20;
        let mut shards = Vec::new();
        for (number, base) in [(1_u16, 10_u8), (2, 20), (3, 30)] {
            for shard in 0..3_u8 {
                shards.push(scanned(
                    u16::from(shard),
                    base + shard,
                    part(number, u64::from(base), shard, size),
                ));
            }
        }
        let listed = |number: u16, base: u8| IndexedPart {
            number,
            size,
            etag: [0; 16],
            shards: (0..3).map(|s| (u16::from(s), [base + s; 16])).collect(),
        };
        let index = index_manifest(vec![listed(1, 10), listed(3, 30)], 99, 900);
        shards.push(scanned(1, 90, index.clone()));
        shards.push(scanned(0, 91, manifest("mp", 7, 100, 0, 10)));
        shards.push(scanned(1, 92, manifest("mp", 7, 100, 1, 10)));
        let chosen = plan(&shards, 3, ids());
        assert_eq!(chosen.objects.len(), 1);
        let object = &chosen.objects[0];
        assert_eq!(object.version_id, 99);
        assert_eq!(object.size, 2 * size);
        assert_eq!(
            object.parts.iter().map(|p| p.number).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert!(object.parts[1]
            .shards
            .iter()
            .all(|s| s.state == ShardState::Durable));
        // Part 2's three shards and the older single PUT's two are unreferenced.
        assert_eq!(chosen.shards_unreferenced, 5);
        assert!(chosen.missing.is_empty());
        // A listed part shard no site holds is recorded Pending and queued for repair by its
        // flattened index (part 3 is the second listed part: 3 + 1).
        let without: Vec<ScannedShard> = shards
            .iter()
            .filter(|s| s.backend_id != [31; 16])
            .cloned()
            .collect();
        let degraded = plan(&without, 3, ids());
        assert_eq!(
            degraded.objects[0].parts[1].shards[1].state,
            ShardState::Pending
        );
        assert_eq!(degraded.missing, vec![(0, 4)]);

        // A newer single PUT wins over the multipart object.
        shards.push(scanned(0, 93, manifest("mp", 8, 1_000, 0, 10)));
        shards.push(scanned(2, 94, manifest("mp", 8, 1_000, 2, 10)));
        let chosen = plan(&shards, 3, ids());
        assert_eq!(chosen.objects[0].version_id, 8);

        // A part with fewer than k shards makes the multipart version unreadable.
        let shards: Vec<ScannedShard> = shards
            .into_iter()
            .filter(|s| s.backend_id != [10; 16] && s.backend_id != [11; 16])
            .filter(|s| s.manifest.version_id != 8)
            .collect();
        let chosen = plan(&shards, 3, ids());
        assert_eq!(chosen.objects[0].version_id, 7);
        assert_eq!(chosen.versions_unreadable, 1);
    }
}
