//! The GET pipeline: fetch only the stripes a range needs, from the data shards first, verify
//! every chunk, and reconstruct from parity when a shard is missing, slow to fail, or corrupt.
//!
//! ```text
//!  range ─► stripes a..b in batches of ≈ LOCAL_READ_BATCH_BYTES (all shards on dir sites)
//!          or READ_BATCH_BYTES (any shard on an s3 site)
//!        ─► per needed shard: one ranged read of the batch's chunks (+ CRC trailers)
//!        ─► verify each chunk ─ bad/missing? ─► read more shards until k are good
//!                                             ─► Codec::reconstruct per stripe
//!        ─► copy the requested bytes out, stripe by stripe ─► next batch
//! ```
//!
//! Never returns wrong bytes: a chunk is used only after its checksum matched, and with more
//! than m shards unreadable the read fails with 503.

use std::ops::Range;
use std::rc::Rc;

use futures_util::future::join_all;
use tessera_ec::{Layout, ShardSet};
use tessera_http::S3Error;
use tessera_meta::{Object, ShardState};

use super::piece::Piece;
use super::policy::{self, Resolved};
use super::{backend_key, internal, unavailable, Engine};
use crate::site::{ByteRange, SiteError};

/// Object data fetched per step when a shard lives on a remote (`s3`) site: large enough that
/// a round trip to a distant region moves megabytes. Bounds memory per GET to about this.
pub const READ_BATCH_BYTES: u64 = 8 << 20;
/// Object data fetched per step when every shard is on a local (`dir`) site, where a step costs
/// no round trip: buffers this small stay in the CPU caches and the per-core buffer pool.
/// GET 64 MiB, ec 2+1, 3 dir sites, `--cores 2`, measured against 8 MiB steps: concurrency 4,
/// 2,479 → 4,101 MiB/s, 0.38 → 0.27 gateway CPU-s/GiB, peak RSS 165 → 62 MiB; concurrency 64,
/// 2,660 → 3,288 MiB/s, 0.53 → 0.40 CPU-s/GiB, 887 → 276 MiB.
pub const LOCAL_READ_BATCH_BYTES: u64 = 2 << 20;

/// Streams the bytes of `range` of one stored unit (a whole object or one multipart part).
pub struct Segment {
    engine: Rc<Engine>,
    object: Object,
    shape: Resolved,
    layout: Layout,
    range: Range<u64>,
    next_stripe: u64,
    end_stripe: u64,
    /// Shards known bad for this read (failed or corrupt); not asked again.
    bad: ShardSet,
    /// Of those, the ones found missing or corrupt (not merely unreachable): they need repair.
    damaged: ShardSet,
    /// Object bytes per step (see [`LOCAL_READ_BATCH_BYTES`]).
    batch_bytes: u64,
    /// Flattened index (see `repair::flat_index`) of this unit's shard 0 in the object the
    /// reader was made for: 0 for a whole object, the shard count of the earlier parts for a
    /// part. Damage is reported by flattened index.
    flat_base: usize,
}

/// One shard's chunks for a batch of stripes: the verified bytes as read from the site (no
/// copy), or chunks rebuilt from parity.
#[derive(Debug, Default)]
struct Fetched {
    buffer: Vec<u8>,
    /// Where each stripe's chunk lies in `buffer`, in stripe order.
    chunks: Vec<Range<usize>>,
}

impl Fetched {
    fn chunk(&self, position: usize) -> &[u8] {
        &self.buffer[self.chunks[position].clone()]
    }

    fn push(&mut self, chunk: &[u8]) {
        let start = self.buffer.len();
        self.buffer.extend_from_slice(chunk);
        self.chunks.push(start..self.buffer.len());
    }
}

/// Why a shard could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Missing, short, or a chunk failed its checksum.
    Damaged,
    /// The site did not answer (down, timeout, connection error).
    Unavailable,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

impl Segment {
    /// A reader of `range` (non-empty, within the object) of `object`.
    pub fn new(engine: Rc<Engine>, object: Object, range: Range<u64>) -> Result<Self, S3Error> {
        let shape = policy::stored_shape(&object.policy, object.chunk_size);
        let layout = Layout::new(object.size, shape.k, object.chunk_size)
            .map_err(|e| internal(format!("layout: {e}")))?;
        let stripe_bytes = layout.stripe_data_size();
        let (next_stripe, end_stripe) = if range.is_empty() {
            (0, 0)
        } else {
            (
                range.start / stripe_bytes,
                (range.end - 1) / stripe_bytes + 1,
            )
        };
        let mut bad = ShardSet::EMPTY;
        for (index, shard) in object.shards.iter().enumerate() {
            if shard.state == ShardState::Pending || usize::from(shard.site) >= engine.sites.len() {
                bad = bad.with(index);
            }
        }
        let all_local = object.shards.iter().all(|shard| {
            engine
                .sites
                .get(usize::from(shard.site))
                .is_none_or(|site| matches!(site, crate::site::Site::Dir(_)))
        });
        let batch_bytes = if all_local {
            LOCAL_READ_BATCH_BYTES
        } else {
            READ_BATCH_BYTES
        };
        Ok(Segment {
            engine,
            object,
            shape,
            layout,
            range,
            next_stripe,
            end_stripe,
            bad,
            damaged: ShardSet::EMPTY,
            batch_bytes,
            flat_base: 0,
        })
    }

    /// The next piece of the range, `None` when all of it has been returned.
    pub async fn next(&mut self) -> Result<Option<Piece>, S3Error> {
        if self.next_stripe >= self.end_stripe {
            return Ok(None);
        }
        let per_batch = (self.batch_bytes / self.layout.stripe_data_size()).max(1);
        let stripes = self.next_stripe..(self.next_stripe + per_batch).min(self.end_stripe);
        self.next_stripe = stripes.end;
        let chunks = self.fetch_batch(stripes.clone()).await?;
        Ok(Some(self.assemble(&stripes, chunks)))
    }

    /// Data shards whose chunks hold requested bytes in `stripes`.
    fn needed_data_shards(&self, stripes: &Range<u64>) -> ShardSet {
        let mut needed = ShardSet::EMPTY;
        for index in stripes.clone() {
            let stripe = self.layout.stripe(index);
            for i in 0..self.shape.k {
                let chunk = stripe.data_chunk_range(i);
                if chunk.start < self.range.end
                    && chunk.end > self.range.start
                    && chunk.start < chunk.end
                {
                    needed = needed.with(i);
                }
            }
        }
        needed
    }

    /// Fetches `stripes` from shard `index` and verifies every chunk; returns the chunks
    /// (without trailers), one per stripe.
    async fn fetch_shard(&self, index: usize, stripes: Range<u64>) -> Result<Fetched, Fault> {
        let shard = &self.object.shards[index];
        let stored = self.layout.stored_range(stripes.clone());
        let len = stored.end - stored.start;
        let site = &self.engine.sites[usize::from(shard.site)];
        let buffer = self.engine.take_buffer(len as usize);
        let key = backend_key(&shard.backend_id);
        let (result, buffer) = site
            .get_range(
                &key,
                ByteRange {
                    start: stored.start,
                    len,
                },
                buffer,
            )
            .await;
        match result {
            Ok(read) if read as u64 == len => {}
            // A shard that is gone or shorter than its layout is damaged for good; anything
            // else (site down, timeout) may pass.
            Ok(_) | Err(SiteError::NotFound) => return Err(Fault::Damaged),
            Err(_) => return Err(Fault::Unavailable),
        }
        let mut chunks = Vec::with_capacity((stripes.end - stripes.start) as usize);
        for stripe in stripes {
            let offset = (self.layout.stored_chunk_offset(stripe) - stored.start) as usize;
            let chunk_len = self.layout.stripe(stripe).chunk_len as usize;
            let stored_chunk = buffer
                .get(offset..offset + chunk_len + tessera_ec::CHECKSUM_LEN)
                .ok_or(Fault::Damaged)?;
            let chunk =
                tessera_ec::verify_stored_chunk(stored_chunk).map_err(|_| Fault::Damaged)?;
            debug_assert_eq!(chunk.len(), chunk_len);
            chunks.push(offset..offset + chunk_len);
        }
        Ok(Fetched { buffer, chunks })
    }

    /// Notes that shard `index` failed this read.
    fn mark_bad(&mut self, index: usize, fault: Fault) {
        self.bad = self.bad.with(index);
        if fault == Fault::Damaged {
            self.damaged = self.damaged.with(index);
        }
    }

    /// Fetches the batch: the needed data shards first (for replicas, the first good copy);
    /// if any fails, more shards until k are good, then reconstructs. Returns, per shard
    /// index, its chunks (one per stripe) when they were fetched or rebuilt.
    async fn fetch_batch(&mut self, stripes: Range<u64>) -> Result<Vec<Option<Fetched>>, S3Error> {
        let n = self.shape.n;
        let mut have: Vec<Option<Fetched>> = (0..n).map(|_| None).collect();
        if self.shape.replica {
            for index in 0..n {
                if self.bad.contains(index) {
                    continue;
                }
                match self.fetch_shard(index, stripes.clone()).await {
                    Ok(chunks) => {
                        have[0] = Some(chunks);
                        return Ok(have);
                    }
                    Err(fault) => self.mark_bad(index, fault),
                }
            }
            return Err(unavailable("no copy of the object could be read"));
        }
        let needed = self.needed_data_shards(&stripes);
        let mut want: Vec<usize> = needed.iter().filter(|&i| !self.bad.contains(i)).collect();
        let mut good = ShardSet::EMPTY;
        loop {
            let fetched = join_all(
                want.iter()
                    .map(|&index| self.fetch_shard(index, stripes.clone())),
            )
            .await;
            for (&index, chunks) in want.iter().zip(fetched) {
                match chunks {
                    Ok(chunks) => {
                        have[index] = Some(chunks);
                        good = good.with(index);
                    }
                    Err(fault) => self.mark_bad(index, fault),
                }
            }
            if needed.iter().all(|i| good.contains(i)) {
                return Ok(have);
            }
            // Degraded: read other shards (remaining data first, then parity) until k are good.
            let missing = self.shape.k.saturating_sub(good.len());
            want = (0..n)
                .filter(|&i| !good.contains(i) && !self.bad.contains(i))
                .take(missing)
                .collect();
            if good.len() >= self.shape.k {
                break;
            }
            if want.is_empty() {
                return Err(unavailable(format!(
                    "only {} of {} shards are readable; {} are needed",
                    good.len(),
                    n,
                    self.shape.k
                )));
            }
        }
        self.reconstruct(&stripes, &mut have, good, needed)?;
        Ok(have)
    }

    /// Rebuilds the needed data chunks that are missing from the `good` shards, stripe by stripe.
    fn reconstruct(
        &self,
        stripes: &Range<u64>,
        have: &mut [Option<Fetched>],
        good: ShardSet,
        needed: ShardSet,
    ) -> Result<(), S3Error> {
        let (k, n) = (self.shape.k, self.shape.n);
        let rebuild: Vec<usize> = needed.iter().filter(|&i| !good.contains(i)).collect();
        let mut rebuild_set = ShardSet::EMPTY;
        for &i in &rebuild {
            rebuild_set = rebuild_set.with(i);
            have[i] = Some(Fetched::default());
        }
        // Use exactly k good shards: ISA-L decodes from any k.
        let present = good.iter().take(k).fold(ShardSet::EMPTY, ShardSet::with);
        for (position, stripe) in stripes.clone().enumerate() {
            let chunk_len = self.layout.stripe(stripe).chunk_len as usize;
            let mut shards: Vec<Vec<u8>> = (0..n)
                .map(|i| match (&have[i], present.contains(i)) {
                    (Some(fetched), true) => fetched.chunk(position).to_vec(),
                    _ => vec![0; chunk_len],
                })
                .collect();
            self.engine
                .with_codec(k, n - k, |codec| {
                    codec.reconstruct(&mut shards, present, rebuild_set)
                })?
                .map_err(|e| internal(format!("reconstruct: {e}")))?;
            for &i in &rebuild {
                if let Some(fetched) = &mut have[i] {
                    fetched.push(&shards[i]);
                }
            }
        }
        Ok(())
    }

    /// The requested bytes of `stripes`: ranges of the data chunks, in object order, over the
    /// buffers they were read into (no copy); parity buffers go back to the pool.
    fn assemble(&self, stripes: &Range<u64>, have: Vec<Option<Fetched>>) -> Piece {
        let mut piece = Piece::default();
        // Per data shard: its buffer's index in `piece` and its chunks' ranges in the buffer.
        let mut data = Vec::with_capacity(self.shape.k);
        for (i, fetched) in have.into_iter().enumerate() {
            match fetched {
                Some(f) if i < self.shape.k => {
                    data.push(Some((piece.add_buffer(f.buffer), f.chunks)));
                }
                Some(f) => self.engine.give_buffer(f.buffer),
                None if i < self.shape.k => data.push(None),
                None => {}
            }
        }
        for (position, index) in stripes.clone().enumerate() {
            let stripe = self.layout.stripe(index);
            for (i, slot) in data.iter().enumerate() {
                let chunk_range = stripe.data_chunk_range(i);
                let start = chunk_range.start.max(self.range.start);
                let end = chunk_range.end.min(self.range.end);
                if start >= end {
                    continue;
                }
                // `fetch_batch` returned every needed shard's chunks (fetched or rebuilt).
                let Some((buffer, chunks)) = slot else {
                    continue;
                };
                let chunk = chunks[position].start;
                let from = chunk + (start - chunk_range.start) as usize;
                piece.push_slice(*buffer, from..from + (end - start) as usize);
            }
        }
        piece
    }
}

/// Streams a byte range of an object: one segment for a single-PUT object, one per touched
/// part for a multipart object, read one after the other.
pub struct ObjectReader {
    segments: std::collections::VecDeque<Segment>,
    /// Finished segments that found damage (kept for [`ObjectReader::damaged`]).
    finished: Vec<Segment>,
    /// A piece fetched ahead by [`ObjectReader::prefetch`].
    ready: Option<Piece>,
    /// Where flattened pieces' spare buffers go back to.
    engine: Rc<Engine>,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader")
            .field("segments", &self.segments.len())
            .finish_non_exhaustive()
    }
}

/// The stored shape of one part of a multipart object: the upload's policy resolved for the
/// part's size, and the chunk size a PUT of that size chose.
#[must_use]
pub fn part_unit(object: &Object, part: &tessera_meta::ObjectPart) -> Object {
    let (policy, shape) = policy::resolve(&object.policy, part.size);
    let chunk_size = tessera_ec::chunk_size_for(part.size, shape.k, shape.chunk_size);
    Object {
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        version_id: object.version_id,
        size: part.size,
        etag: tessera_meta::ETag {
            md5: part.etag,
            parts: 0,
        },
        headers: tessera_meta::ContentHeaders::default(),
        user_metadata: Vec::new(),
        checksums: Vec::new(),
        mtime_ms: object.mtime_ms,
        policy,
        chunk_size,
        shards: part.shards.clone(),
        parts: Vec::new(),
    }
}

impl ObjectReader {
    /// A reader of `range` (within the object) of `object`.
    pub fn new(engine: Rc<Engine>, object: Object, range: Range<u64>) -> Result<Self, S3Error> {
        let mut segments = std::collections::VecDeque::new();
        if object.parts.is_empty() {
            if !range.is_empty() {
                segments.push_back(Segment::new(Rc::clone(&engine), object, range)?);
            }
        } else {
            let mut offset = 0_u64;
            let mut flat_base = object.shards.len();
            for part in &object.parts {
                let part_range = offset..offset + part.size;
                offset += part.size;
                let base = flat_base;
                flat_base += part.shards.len();
                let start = range.start.max(part_range.start);
                let end = range.end.min(part_range.end);
                if start < end {
                    let unit = part_unit(&object, part);
                    let local = start - part_range.start..end - part_range.start;
                    let mut segment = Segment::new(Rc::clone(&engine), unit, local)?;
                    segment.flat_base = base;
                    segments.push_back(segment);
                }
            }
        }
        Ok(ObjectReader {
            segments,
            finished: Vec::new(),
            ready: None,
            engine,
        })
    }

    /// Fetches the first piece now, so that an unreadable object fails before a response head
    /// promising its bytes is sent.
    pub async fn prefetch(&mut self) -> Result<(), S3Error> {
        if self.ready.is_none() {
            self.ready = self.next_piece().await?;
        }
        Ok(())
    }

    /// Shards found missing or corrupt by this read, as (bucket, key, version id, flattened
    /// shard index), for the repair queue: a whole object's shard index, or for a part's shard
    /// the index among all the object's part shards in part order (`repair::flat_index`).
    #[must_use]
    pub fn damaged(&self) -> Vec<(String, String, u64, usize)> {
        let mut out = Vec::new();
        for segment in self.finished.iter().chain(self.segments.iter()) {
            for index in segment.damaged.iter() {
                out.push((
                    segment.object.bucket.clone(),
                    segment.object.key.clone(),
                    segment.object.version_id,
                    segment.flat_base + index,
                ));
            }
        }
        out
    }

    /// The next piece of the range in one buffer, `None` when all of it has been returned.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>, S3Error> {
        let Some(piece) = self.next_piece().await? else {
            return Ok(None);
        };
        let (bytes, spare) = piece.into_vec();
        for buffer in spare {
            self.engine.give_buffer(buffer);
        }
        Ok(Some(bytes))
    }

    /// The next piece of the range as ranges of the buffers read (see [`Piece`]), `None`
    /// when all of it has been returned.
    pub async fn next_piece(&mut self) -> Result<Option<Piece>, S3Error> {
        if let Some(ready) = self.ready.take() {
            return Ok(Some(ready));
        }
        while let Some(segment) = self.segments.front_mut() {
            if let Some(piece) = segment.next().await? {
                return Ok(Some(piece));
            }
            if let Some(done) = self.segments.pop_front() {
                if !done.damaged.is_empty() {
                    self.finished.push(done);
                }
            }
        }
        Ok(None)
    }
}
