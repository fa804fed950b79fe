//! The repair worker: re-creates shards that are not durable — missed at write time (a site
//! was down or failed mid-PUT or mid-UploadPart), or found missing or corrupt by a read — so
//! that every acknowledged object, single-PUT or multipart, returns to full redundancy.
//!
//! ```text
//!  repair queue entry (bucket, key, version, flattened shard index, backend id)
//!    ─► current record from the owning core (gone, replaced, or shard durable? drop the entry)
//!    ─► whole object: read it through ObjectReader; footer from the record
//!       part p:       read only part p through ObjectReader; footer copied from a sibling
//!                     shard of the part (only the shard byte differs), as UploadPart wrote it
//!    ─► re-split into stripes, re-encode, keep chunk i (+ CRC) ─► write shard i + footer
//!    ─► commit the record with that shard durable (owning core) ─► drop the entry
//! ```
//!
//! Naming a shard: queue entries carry one `shard_index: u16` (the record format is frozen).
//! For repair and purge it is the *flattened* index: the object's own shards first, then each
//! part's shards in part order ([`flat_index`], [`locate`]). A single-PUT object's indices are
//! thus its plain shard indices, as before. A flattened index beyond `u16::MAX` (more than
//! 65 535 shards, e.g. 10 000 parts of 7+ shards) is stored as `u16::MAX` and the shard is
//! found by the entry's backend id instead ([`find`]), which is unique anyway.
//!
//! Runs as bounded steps on each core, walking the queue batch by batch; an entry whose site
//! is still failing stays queued and is retried on a later walk.
//!
//! `Pending` shards with no queue entry (a crash between an object record's commit and its
//! queue entries' commit, which are on different cores) are found by the sweep
//! ([`super::sweep`]) this worker runs at start and every `SWEEP_INTERVAL`. Missing part-index
//! copies are not shards of the record: the scrub re-creates them (`super::scrub`).

use std::rc::Rc;
use std::time::{Duration, Instant};

use tessera_ec::Layout;
use tessera_http::S3Error;
use tessera_meta::{BackendId, Object, QueueEntry, QueueKind, Shard, ShardState};

use super::manifest::{self, Manifest};
use super::policy::{self, Resolved};
use super::read::{part_unit, ObjectReader};
use super::settle::Settle;
use super::{backend_key, internal, unavailable, Engine};
use crate::handlers::object::{lookup, report_damage, set_shard_state};
use crate::mesh::MetaClient;
use crate::metrics::{CoreMetrics, Slot};

/// Entries handled per step.
pub const REPAIR_BATCH_MAX: usize = 8;
/// Pause between steps when nothing could be repaired.
pub const REPAIR_IDLE: Duration = Duration::from_secs(1);

/// One shard of an object: one of its own shards, or a shard of one of its parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardRef {
    /// `object.shards[index]` (a single-PUT object).
    Whole(usize),
    /// `object.parts[part].shards[shard]` (`part` is a position, not a part number).
    Part {
        /// Position of the part in `object.parts`.
        part: usize,
        /// Shard index within the part.
        shard: usize,
    },
}

/// The flattened index of `target`: the object's shards first, then every part's shards in
/// part order (the order `queue_purge` enumerates them in).
#[must_use]
pub fn flat_index(object: &Object, target: ShardRef) -> usize {
    match target {
        ShardRef::Whole(index) => index,
        ShardRef::Part { part, shard } => {
            object.shards.len()
                + object.parts[..part]
                    .iter()
                    .map(|p| p.shards.len())
                    .sum::<usize>()
                + shard
        }
    }
}

/// The shard a flattened index names, if the object has that many shards.
#[must_use]
pub fn locate(object: &Object, flat: usize) -> Option<ShardRef> {
    if flat < object.shards.len() {
        return Some(ShardRef::Whole(flat));
    }
    let mut rest = flat - object.shards.len();
    for (part, p) in object.parts.iter().enumerate() {
        if rest < p.shards.len() {
            return Some(ShardRef::Part { part, shard: rest });
        }
        rest -= p.shards.len();
    }
    None
}

/// The shard a queue entry names: by its flattened index when that shard has the entry's
/// backend id, else (an index saturated at `u16::MAX`) by the backend id alone. `None` when
/// the object no longer holds that shard.
#[must_use]
pub fn find(object: &Object, shard_index: u16, backend_id: &BackendId) -> Option<ShardRef> {
    if let Some(target) = locate(object, usize::from(shard_index)) {
        if shard(object, target).backend_id == *backend_id {
            return Some(target);
        }
    }
    let by_id = |shards: &[Shard]| shards.iter().position(|s| s.backend_id == *backend_id);
    if let Some(index) = by_id(&object.shards) {
        return Some(ShardRef::Whole(index));
    }
    object
        .parts
        .iter()
        .enumerate()
        .find_map(|(part, p)| by_id(&p.shards).map(|shard| ShardRef::Part { part, shard }))
}

/// The queue entry form of a flattened index (saturated: see the module docs).
#[must_use]
pub fn queued_index(flat: usize) -> u16 {
    u16::try_from(flat).unwrap_or(u16::MAX)
}

/// The shard `target` names. Panics if `target` is not a shard of `object` (a programmer
/// error: refs come from [`locate`] or [`find`] on the same record).
#[must_use]
pub fn shard(object: &Object, target: ShardRef) -> &Shard {
    match target {
        ShardRef::Whole(index) => &object.shards[index],
        ShardRef::Part { part, shard } => &object.parts[part].shards[shard],
    }
}

/// Mutable form of [`shard`].
pub fn shard_mut(object: &mut Object, target: ShardRef) -> &mut Shard {
    match target {
        ShardRef::Whole(index) => &mut object.shards[index],
        ShardRef::Part { part, shard } => &mut object.parts[part].shards[shard],
    }
}

/// Every shard of `object` with its flattened index.
pub fn flat_shards(object: &Object) -> impl Iterator<Item = (usize, &Shard)> {
    object
        .shards
        .iter()
        .chain(object.parts.iter().flat_map(|p| p.shards.iter()))
        .enumerate()
}

/// Runs forever on this core: the sweep at start and every `SWEEP_INTERVAL`, and the queue
/// in between.
pub async fn run(engine: Rc<Engine>, meta: MetaClient, metrics: Slot) {
    let mut sweep = super::sweep::Sweep::new(super::sweep::process_start_ms());
    let mut swept_at: Option<std::time::Instant> = None;
    let mut after_id = 0;
    let mut failures = FailureLog::default();
    loop {
        if swept_at.is_none_or(|at| at.elapsed() >= super::sweep::SWEEP_INTERVAL) {
            sweep.sweep(&meta).await;
            swept_at = Some(std::time::Instant::now());
        }
        let (progressed, next) = step(&engine, &meta, after_id, &mut failures, &metrics).await;
        after_id = next;
        if !progressed {
            monoio::time::sleep(REPAIR_IDLE).await;
        }
    }
}

/// How often repeated repair failures are summed up in the log.
pub const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Keeps a site that stays down from logging one failure per pending shard per step: the
/// first failure after a quiet interval is logged as it happens; the next ones are counted
/// and summed up in one line per [`FAILURE_LOG_INTERVAL`].
#[derive(Debug, Default)]
pub struct FailureLog {
    /// When the failure logged in full was, while its interval lasts.
    logged_at: Option<Instant>,
    /// Failures since then, not logged.
    suppressed: u64,
    /// The last of those.
    latest: String,
}

impl FailureLog {
    /// Records a failure at `now`: the line to log now, if any.
    pub fn failed(&mut self, now: Instant, message: String) -> Option<String> {
        match self.logged_at {
            Some(at) if now.duration_since(at) < FAILURE_LOG_INTERVAL => {
                self.suppressed += 1;
                self.latest = message;
                None
            }
            _ => {
                let summary = self.tick(now);
                self.logged_at = Some(now);
                Some(match summary {
                    Some(summary) => format!("{summary}\n{message}"),
                    None => message,
                })
            }
        }
    }

    /// The summary of the failures not logged, once their interval is over.
    pub fn tick(&mut self, now: Instant) -> Option<String> {
        let at = self.logged_at?;
        if now.duration_since(at) < FAILURE_LOG_INTERVAL {
            return None;
        }
        self.logged_at = None;
        let suppressed = std::mem::take(&mut self.suppressed);
        (suppressed > 0).then(|| {
            format!(
                "{suppressed} more repair failure(s) in {} s, the last: {}",
                FAILURE_LOG_INTERVAL.as_secs(),
                std::mem::take(&mut self.latest)
            )
        })
    }
}

/// Where the next step starts: after this batch when it was full (more may follow), else at
/// the head of the queue again. The worker walks the whole queue this way, so entries of a
/// site that stays down (a multipart upload can leave one per part) cannot keep the head of
/// the queue and starve the others.
#[must_use]
pub fn next_after_id(batch: &[QueueEntry]) -> u64 {
    match batch.last() {
        Some(last) if batch.len() >= REPAIR_BATCH_MAX => last.id,
        _ => 0,
    }
}

/// One batch of the entries after `after_id`; returns whether at least one entry left the
/// queue, and where the next batch starts ([`next_after_id`]).
pub async fn step(
    engine: &Rc<Engine>,
    meta: &MetaClient,
    after_id: u64,
    failures: &mut FailureLog,
    metrics: &CoreMetrics,
) -> (bool, u64) {
    let queued = meta
        .local
        .with_index(|index| index.queue_len(QueueKind::Repair));
    CoreMetrics::set(&metrics.repair_queue, queued as u64);
    let entries = meta
        .local
        .queue_page(QueueKind::Repair, after_id, REPAIR_BATCH_MAX);
    let next = next_after_id(&entries);
    engine.settling.forget_old();
    let mut progressed = false;
    if let Some(summary) = failures.tick(Instant::now()) {
        crate::runtime::log(format_args!("{summary}"));
    }
    for entry in entries {
        let done = match repair(engine, meta, &entry, metrics).await {
            Ok(done) => done,
            Err(e) => {
                CoreMetrics::add(&metrics.repair_failures, 1);
                let message = format!(
                    "repair of shard {} of {}/{}: {e}",
                    entry.shard_index, entry.bucket, entry.key
                );
                if let Some(line) = failures.failed(Instant::now(), message) {
                    crate::runtime::log(format_args!("{line}"));
                }
                false
            }
        };
        if done {
            progressed |= meta
                .local
                .dequeue(QueueKind::Repair, entry.id)
                .await
                .is_ok();
        }
    }
    (progressed, next)
}

/// Repairs one shard; `Ok(true)` when the entry is finished (repaired or obsolete).
async fn repair(
    engine: &Rc<Engine>,
    meta: &MetaClient,
    entry: &QueueEntry,
    metrics: &CoreMetrics,
) -> Result<bool, S3Error> {
    // A shard its PUT left finishing in the background: wait for it, and rebuild it only if
    // that write failed.
    let settled = engine.settling.take(&entry.backend_id);
    if settled == Some(Settle::InFlight) {
        return Ok(false);
    }
    let Some(object) = lookup(meta, &entry.bucket, &entry.key).await? else {
        return Ok(true);
    };
    if object.version_id != entry.version_id {
        return Ok(true);
    }
    let Some(target) = find(&object, entry.shard_index, &entry.backend_id) else {
        return Ok(true);
    };
    if shard(&object, target).state == ShardState::Durable {
        return Ok(true);
    }
    let damaged = match target {
        _ if settled == Some(Settle::Finished(true)) => Vec::new(),
        ShardRef::Whole(index) => {
            let shape = policy::stored_shape(&object.policy, object.chunk_size);
            let footer = whole_footer(&object, &shape, index);
            let reader = ObjectReader::new(Rc::clone(engine), object.clone(), 0..object.size)?;
            write_shard(engine, &object, &shape, index, footer, reader).await?
        }
        ShardRef::Part { part, shard } => rebuild_part_shard(engine, &object, part, shard).await?,
    };
    // Marked durable atomically on the owning core, only if the object was not replaced
    // meanwhile, without undoing another shard's change committed since the lookup.
    let recorded = set_shard_state(
        meta,
        &entry.bucket,
        &entry.key,
        object.version_id,
        &entry.backend_id,
        ShardState::Durable,
    )
    .await?;
    // Counted once the record holds it (not when the object was replaced meanwhile).
    if recorded && settled != Some(Settle::Finished(true)) {
        CoreMetrics::add(&metrics.shards_repaired, 1);
    }
    // Other shards this repair found missing or corrupt while reading (the reader also asks
    // the shard being repaired, when the others do not suffice: its damage is mended now).
    let own = flat_index(&object, target);
    let damaged: Vec<_> = damaged.into_iter().filter(|d| d.3 != own).collect();
    if !damaged.is_empty() {
        report_damage(meta, &damaged).await;
    }
    Ok(true)
}

/// The footer of shard `index` of a single-PUT object, from its record.
fn whole_footer(object: &Object, shape: &Resolved, index: usize) -> Vec<u8> {
    manifest::encode(&Manifest {
        shard: index as u8,
        k: shape.k as u8,
        n: shape.n as u8,
        replica: shape.replica,
        chunk_size: object.chunk_size,
        size: object.size,
        version_id: object.version_id,
        mtime_ms: object.mtime_ms,
        md5: object.etag.md5,
        etag_parts: object.etag.parts,
        part_number: 0,
        checksum: object.checksums.first().map(|c| {
            (
                super::put::checksum_code(crate::handlers::object::http_algorithm(c.algorithm)),
                c.value.clone(),
            )
        }),
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        headers: object.headers.clone(),
        user_metadata: object.user_metadata.clone(),
        index: None,
    })
}

/// Writes shard `shard_index` of part `part` (a position in `object.parts`) again from the
/// part's other shards; returns the damage the read found.
async fn rebuild_part_shard(
    engine: &Rc<Engine>,
    object: &Object,
    part: usize,
    shard_index: usize,
) -> Result<Vec<(String, String, u64, usize)>, S3Error> {
    let unit = part_unit(object, &object.parts[part]);
    let shape = policy::stored_shape(&unit.policy, unit.chunk_size);
    let footer = sibling_footer(
        engine,
        &unit,
        &shape,
        object.parts[part].number,
        shard_index,
    )
    .await?;
    let offset: u64 = object.parts[..part].iter().map(|p| p.size).sum();
    // A reader of the multipart object limited to this part: it reports damage by the
    // object's flattened indices.
    let reader = ObjectReader::new(
        Rc::clone(engine),
        object.clone(),
        offset..offset + unit.size,
    )?;
    write_shard(engine, &unit, &shape, shard_index, footer, reader).await
}

/// Whether `m`, read from shard `from` of the part `unit` (number `number`), is that part's
/// footer as UploadPart wrote it.
#[must_use]
pub fn is_part_footer(
    m: &Manifest,
    unit: &Object,
    shape: &Resolved,
    number: u32,
    from: usize,
) -> bool {
    m.index.is_none()
        && u32::from(m.part_number) == number
        && usize::from(m.shard) == from
        && (usize::from(m.k), usize::from(m.n), m.replica) == (shape.k, shape.n, shape.replica)
        && m.chunk_size == unit.chunk_size
        && m.size == unit.size
        && m.md5 == unit.etag.md5
        && m.bucket == unit.bucket
        && m.key == unit.key
}

/// The footer of shard `index` of a part: UploadPart wrote the same footer on every shard of
/// the part but for the shard byte, and the record lacks some of its fields (the part's write
/// id, time and checksum), so it is copied from the first sibling shard whose footer reads and
/// matches the part.
async fn sibling_footer(
    engine: &Engine,
    unit: &Object,
    shape: &Resolved,
    number: u32,
    index: usize,
) -> Result<Vec<u8>, S3Error> {
    let layout = Layout::new(unit.size, shape.k, unit.chunk_size)
        .map_err(|e| internal(format!("layout: {e}")))?;
    for (from, sibling) in unit.shards.iter().enumerate() {
        if from == index || sibling.state != ShardState::Durable {
            continue;
        }
        let Some(site) = engine.sites.get(usize::from(sibling.site)) else {
            continue;
        };
        let key = backend_key(&sibling.backend_id);
        let Ok(info) = site.head(&key).await else {
            continue;
        };
        let Ok(mut found) = crate::recover::read_manifest(site, &key, info.len).await else {
            continue;
        };
        if !is_part_footer(&found, unit, shape, number, from) {
            continue;
        }
        found.shard = index as u8;
        let footer = manifest::encode(&found);
        if layout.shard_len() + footer.len() as u64 == info.len {
            return Ok(footer);
        }
    }
    Err(unavailable(format!(
        "no sibling shard of part {number} of {}/{} has a readable footer",
        unit.bucket, unit.key
    )))
}

/// Writes shard `index` of `unit` (a whole object, or one part as [`part_unit`] describes it)
/// from the bytes `reader` yields, re-encoded stripe by stripe, then `footer`. Returns the
/// damage the reader found.
async fn write_shard(
    engine: &Rc<Engine>,
    unit: &Object,
    shape: &Resolved,
    index: usize,
    footer: Vec<u8>,
    mut reader: ObjectReader,
) -> Result<Vec<(String, String, u64, usize)>, S3Error> {
    let layout = Layout::new(unit.size, shape.k, unit.chunk_size)
        .map_err(|e| internal(format!("layout: {e}")))?;
    let shard = unit.shards[index];
    let site = engine
        .sites
        .get(usize::from(shard.site))
        .ok_or_else(|| internal("the shard's site is gone"))?;
    let mut writer = site
        .put_shard(
            &backend_key(&shard.backend_id),
            layout.shard_len() + footer.len() as u64,
        )
        .await
        .map_err(|e| unavailable(format!("site {}: {e}", site.name())))?;
    let mut pending: Vec<u8> = Vec::new();
    let mut consumed = 0_usize;
    for stripe_index in 0..layout.stripe_count() {
        let stripe = layout.stripe(stripe_index);
        let data_len = stripe.data_len as usize;
        while pending.len() - consumed < data_len {
            match reader.next().await {
                Ok(Some(piece)) => {
                    pending.drain(..consumed);
                    consumed = 0;
                    pending.extend_from_slice(&piece);
                }
                Ok(None) => {
                    writer.abort().await;
                    return Err(internal("the object ended early while repairing"));
                }
                Err(e) => {
                    writer.abort().await;
                    return Err(e);
                }
            }
        }
        let data = &pending[consumed..consumed + data_len];
        consumed += data_len;
        let chunk = match encode_chunk(engine, shape, &stripe, data, index) {
            Ok(chunk) => chunk,
            Err(e) => {
                writer.abort().await;
                return Err(e);
            }
        };
        let (result, _) = writer.write(chunk).await;
        if let Err(e) = result {
            writer.abort().await;
            return Err(unavailable(format!("site {}: {e}", site.name())));
        }
    }
    let (result, _) = writer.write(footer).await;
    if let Err(e) = result {
        writer.abort().await;
        return Err(unavailable(format!("site {}: {e}", site.name())));
    }
    writer
        .finish()
        .await
        .map_err(|e| unavailable(format!("site {}: {e}", site.name())))?;
    Ok(reader.damaged())
}
/// Chunk `index` of one stripe (with its checksum trailer) from the stripe's object bytes.
fn encode_chunk(
    engine: &Engine,
    shape: &Resolved,
    stripe: &tessera_ec::Stripe,
    data: &[u8],
    index: usize,
) -> Result<Vec<u8>, S3Error> {
    let chunk_len = stripe.chunk_len as usize;
    let mut chunks: Vec<Vec<u8>> = (0..shape.k)
        .map(|i| {
            let start = (i * chunk_len).min(data.len());
            let end = ((i + 1) * chunk_len).min(data.len());
            let mut chunk = data[start..end].to_vec();
            chunk.resize(chunk_len, 0);
            chunk
        })
        .collect();
    let mut out = if shape.replica || index < shape.k {
        std::mem::take(&mut chunks[if shape.replica { 0 } else { index }])
    } else {
        let mut parity: Vec<Vec<u8>> = (shape.k..shape.n).map(|_| vec![0; chunk_len]).collect();
        let mut slices: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
        engine
            .with_codec(shape.k, shape.n - shape.k, |codec| {
                codec.encode(&chunks, &mut slices)
            })?
            .map_err(|e| internal(format!("encode: {e}")))?;
        std::mem::take(&mut parity[index - shape.k])
    };
    let checksum = tessera_ec::chunk_checksum(&out);
    out.extend_from_slice(&tessera_ec::checksum_trailer(checksum));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_meta::{ContentHeaders, ETag, ObjectPart, Policy};

    fn durable(id: u8) -> Shard {
        Shard {
            site: u16::from(id % 3),
            backend_id: [id; 16],
            state: ShardState::Durable,
        }
    }

    fn object(shards: Vec<Shard>, parts: Vec<Vec<Shard>>) -> Object {
        Object {
            bucket: "b".into(),
            key: "k".into(),
            version_id: 7,
            size: 0,
            etag: ETag {
                md5: [0; 16],
                parts: 0,
            },
            headers: ContentHeaders::default(),
            user_metadata: Vec::new(),
            checksums: Vec::new(),
            mtime_ms: 0,
            policy: Policy::Ec {
                k: 2,
                m: 1,
                chunk_size: 1 << 20,
            },
            chunk_size: 1 << 20,
            shards,
            parts: parts
                .into_iter()
                .enumerate()
                .map(|(i, shards)| ObjectPart {
                    number: i as u32 + 1,
                    size: 5 << 20,
                    etag: [0; 16],
                    shards,
                })
                .collect(),
        }
    }

    /// A single-PUT object's flattened indices are its plain shard indices (entries queued
    /// before parts were repairable keep their meaning); past the last shard there is none.
    #[test]
    fn whole_object_indices_are_plain() {
        let whole = object(vec![durable(1), durable(2), durable(3)], Vec::new());
        for i in 0..3 {
            assert_eq!(locate(&whole, i), Some(ShardRef::Whole(i)));
            assert_eq!(flat_index(&whole, ShardRef::Whole(i)), i);
        }
        assert_eq!(locate(&whole, 3), None);
    }

    /// Parts of different widths (a hybrid upload: replica 3 for a small part, 2+1 and 4+2
    /// for large ones) flatten in part order and every index maps back to its shard, in the
    /// same order `flat_shards` (and so `queue_purge`) enumerates them.
    #[test]
    fn part_indices_round_trip() {
        let parts = vec![
            (10..13).map(durable).collect(),
            (20..26).map(durable).collect(),
            (30..33).map(durable).collect(),
        ];
        let multipart = object(Vec::new(), parts);
        let mut expected = Vec::new();
        for (part, p) in multipart.parts.iter().enumerate() {
            for index in 0..p.shards.len() {
                expected.push(ShardRef::Part { part, shard: index });
            }
        }
        assert_eq!(expected.len(), 12);
        for (flat, &target) in expected.iter().enumerate() {
            assert_eq!(flat_index(&multipart, target), flat);
            assert_eq!(locate(&multipart, flat), Some(target));
        }
        assert_eq!(locate(&multipart, 12), None);
        assert_eq!(
            locate(&multipart, 4),
            Some(ShardRef::Part { part: 1, shard: 1 })
        );
        for (flat, s) in flat_shards(&multipart) {
            assert_eq!(shard(&multipart, expected[flat]).backend_id, s.backend_id);
        }
    }

    /// A queue entry finds its shard by index when the backend id agrees, by backend id when
    /// the index was saturated or no longer matches, and not at all once the shard is gone.
    #[test]
    fn entries_find_their_shard() {
        let parts = vec![
            (10..13).map(durable).collect(),
            (20..23).map(durable).collect(),
        ];
        let mut multipart = object(Vec::new(), parts);
        let target = ShardRef::Part { part: 1, shard: 2 };
        assert_eq!(find(&multipart, 5, &[22; 16]), Some(target));
        assert_eq!(find(&multipart, u16::MAX, &[22; 16]), Some(target));
        assert_eq!(find(&multipart, 0, &[22; 16]), Some(target));
        assert_eq!(find(&multipart, 5, &[99; 16]), None);
        shard_mut(&mut multipart, target).state = ShardState::Pending;
        assert_eq!(multipart.parts[1].shards[2].state, ShardState::Pending);
        assert_eq!(queued_index(65_535), u16::MAX);
        assert_eq!(queued_index(70_000), u16::MAX);
        assert_eq!(queued_index(12), 12);
    }

    /// A full batch moves the cursor past its last entry; a short (or empty) one means the
    /// end of the queue, so the next step starts at its head.
    #[test]
    fn cursor_walks_the_queue_and_wraps() {
        let entry = |id: u64| QueueEntry {
            kind: QueueKind::Repair,
            id,
            site: 0,
            backend_id: [0; 16],
            bucket: "b".into(),
            key: "k".into(),
            version_id: 1,
            shard_index: 0,
            enqueued_ms: 0,
            attempts: 0,
        };
        let full: Vec<QueueEntry> = (10..10 + REPAIR_BATCH_MAX as u64).map(entry).collect();
        assert_eq!(next_after_id(&full), 9 + REPAIR_BATCH_MAX as u64);
        assert_eq!(next_after_id(&full[..REPAIR_BATCH_MAX - 1]), 0);
        assert_eq!(next_after_id(&[]), 0);
    }

    /// One failure is logged at once; the ones that follow within the interval are counted and
    /// summed up once it is over (by the next failure or by a tick), then the cycle restarts.
    #[test]
    fn repeated_failures_are_summed_up() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut log = FailureLog::default();
        assert_eq!(log.tick(at(0)), None);
        assert_eq!(log.failed(at(0), "a".into()).as_deref(), Some("a"));
        assert_eq!(log.failed(at(1), "b".into()), None);
        assert_eq!(log.failed(at(59), "c".into()), None);
        assert_eq!(log.tick(at(59)), None);
        assert_eq!(
            log.tick(at(60)).as_deref(),
            Some("2 more repair failure(s) in 60 s, the last: c")
        );
        assert_eq!(log.tick(at(61)), None);
        assert_eq!(log.failed(at(70), "d".into()).as_deref(), Some("d"));
        assert_eq!(log.failed(at(80), "e".into()), None);
        assert_eq!(
            log.failed(at(131), "f".into()).as_deref(),
            Some("1 more repair failure(s) in 60 s, the last: e\nf")
        );
        // Nothing suppressed: the interval ends without a summary.
        assert_eq!(log.tick(at(200)), None);
        assert_eq!(log.failed(at(201), "g".into()).as_deref(), Some("g"));
    }

    /// A sibling's footer is accepted only when it describes the same part of the same object
    /// and is the shard it was read from.
    #[test]
    fn part_footers_are_checked() {
        let mut unit = object(vec![durable(1), durable(2), durable(3)], Vec::new());
        unit.size = 5 << 20;
        unit.etag.md5 = [5; 16];
        let shape = policy::stored_shape(&unit.policy, unit.chunk_size);
        let good = Manifest {
            shard: 1,
            k: 2,
            n: 3,
            replica: false,
            chunk_size: 1 << 20,
            size: 5 << 20,
            version_id: 99,
            mtime_ms: 5,
            md5: [5; 16],
            etag_parts: 0,
            part_number: 2,
            checksum: None,
            bucket: "b".into(),
            key: "k".into(),
            headers: ContentHeaders::default(),
            user_metadata: Vec::new(),
            index: None,
        };
        assert!(is_part_footer(&good, &unit, &shape, 2, 1));
        assert!(!is_part_footer(&good, &unit, &shape, 3, 1));
        assert!(!is_part_footer(&good, &unit, &shape, 2, 0));
        let mut other_key = good.clone();
        other_key.key = "other".into();
        assert!(!is_part_footer(&other_key, &unit, &shape, 2, 1));
        let mut other_content = good.clone();
        other_content.md5 = [6; 16];
        assert!(!is_part_footer(&other_content, &unit, &shape, 2, 1));
        let mut whole = good;
        whole.part_number = 0;
        assert!(!is_part_footer(&whole, &unit, &shape, 2, 1));
    }
}
