//! The repair worker: re-creates shards that did not become durable at write time (a site was
//! down or failed mid-PUT), so that every acknowledged object returns to full redundancy.
//!
//! ```text
//!  repair queue entry (bucket, key, version, shard i)
//!    ─► current record from the owning core (gone or replaced? drop the entry)
//!    ─► read the object through ObjectReader (verified, reconstructing as needed)
//!    ─► re-split into stripes, re-encode, keep chunk i (+ CRC) ─► write shard i + manifest
//!    ─► commit the record with shard i durable (owning core) ─► drop the entry
//! ```
//!
//! Runs as bounded steps on each core; an entry whose site is still failing stays queued and
//! is retried after a pause.

use std::rc::Rc;
use std::time::Duration;

use tessera_ec::Layout;
use tessera_http::S3Error;
use tessera_meta::{Object, Op, QueueEntry, QueueKind, ShardState};

use super::manifest::{self, Manifest};
use super::policy::{self, Resolved};
use super::read::ObjectReader;
use super::{backend_key, internal, Engine};
use crate::handlers::object::{commit_owned, lookup};
use crate::mesh::MetaClient;

/// Entries handled per step.
pub const REPAIR_BATCH_MAX: usize = 8;
/// Pause between steps when nothing could be repaired.
pub const REPAIR_IDLE: Duration = Duration::from_secs(1);

/// Runs forever on this core.
pub async fn run(engine: Rc<Engine>, meta: MetaClient) {
    loop {
        if !step(&engine, &meta).await {
            monoio::time::sleep(REPAIR_IDLE).await;
        }
    }
}

/// One batch; true when at least one entry left the queue.
pub async fn step(engine: &Rc<Engine>, meta: &MetaClient) -> bool {
    let entries = meta
        .local
        .queue_page(QueueKind::Repair, 0, REPAIR_BATCH_MAX);
    let mut progressed = false;
    for entry in entries {
        let done = match repair(engine, meta, &entry).await {
            Ok(done) => done,
            Err(e) => {
                crate::runtime::log(format_args!(
                    "repair of shard {} of {}/{}: {e}",
                    entry.shard_index, entry.bucket, entry.key
                ));
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
    progressed
}

/// Repairs one shard; `Ok(true)` when the entry is finished (repaired or obsolete).
async fn repair(
    engine: &Rc<Engine>,
    meta: &MetaClient,
    entry: &QueueEntry,
) -> Result<bool, S3Error> {
    let Some(object) = lookup(meta, &entry.bucket, &entry.key).await? else {
        return Ok(true);
    };
    let index = usize::from(entry.shard_index);
    let current = object.shards.get(index);
    if object.version_id != entry.version_id
        || current
            .is_none_or(|s| s.backend_id != entry.backend_id || s.state == ShardState::Durable)
    {
        return Ok(true);
    }
    let shape = policy::stored_shape(&object.policy, object.chunk_size);
    rebuild_shard(engine, &object, &shape, index).await?;
    // Commit only if the object was not replaced meanwhile.
    let Some(mut latest) = lookup(meta, &entry.bucket, &entry.key).await? else {
        return Ok(true);
    };
    if latest.version_id != object.version_id {
        return Ok(true);
    }
    latest.shards[index].state = ShardState::Durable;
    commit_owned(meta, &entry.bucket, &entry.key, vec![Op::PutObject(latest)]).await?;
    Ok(true)
}

/// Writes shard `index` of `object` again from the other shards.
async fn rebuild_shard(
    engine: &Rc<Engine>,
    object: &Object,
    shape: &Resolved,
    index: usize,
) -> Result<(), S3Error> {
    let layout = Layout::new(object.size, shape.k, object.chunk_size)
        .map_err(|e| internal(format!("layout: {e}")))?;
    let shard = object.shards[index];
    let footer = manifest::encode(&Manifest {
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
    });
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
        .map_err(|e| super::unavailable(format!("site {}: {e}", site.name())))?;
    let mut reader = ObjectReader::new(Rc::clone(engine), object.clone(), 0..object.size)?;
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
                Ok(None) => return Err(internal("the object ended early while repairing")),
                Err(e) => {
                    writer.abort().await;
                    return Err(e);
                }
            }
        }
        let data = &pending[consumed..consumed + data_len];
        consumed += data_len;
        let chunk = encode_chunk(engine, shape, &stripe, data, index)?;
        let (result, _) = writer.write(chunk).await;
        if let Err(e) = result {
            writer.abort().await;
            return Err(super::unavailable(format!("site {}: {e}", site.name())));
        }
    }
    let (result, _) = writer.write(footer).await;
    if let Err(e) = result {
        writer.abort().await;
        return Err(super::unavailable(format!("site {}: {e}", site.name())));
    }
    writer
        .finish()
        .await
        .map_err(|e| super::unavailable(format!("site {}: {e}", site.name())))
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
