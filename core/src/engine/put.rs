//! The PUT pipeline: stream a body into stripes, encode, write every shard in parallel, and
//! return the shard placement once a write quorum is durable.
//!
//! ```text
//!  ByteSource ─┬─ RequestBody   (PutObject, UploadPart: the verified client body)
//!              └─ ReaderSource  (CopyObject, UploadPartCopy: an ObjectReader of another object)
//!      fill(k chunk buffers) ─► encode ─► n shard writers ─► finish() ─► footers ─► quorum
//! ```
//!
//! Each byte of a body is copied once, by the kernel, into its chunk buffer (see
//! `RequestBody::fill_chunk`), and a direct dir writer writes from that buffer
//! (`site/chunk_buf.rs`); checksums are computed while encoding, on hot data, and the fast
//! ETag's whole-object CRC is appended from them.
//!
//! Memory per upload is n chunk buffers (n × (chunk + 8) bytes plus a page of head room each;
//! k more while the MD5 lanes hash a stripe), whatever the object size.
//! Nothing becomes visible before the body has been verified to its end (signatures,
//! checksums): shard writers only make a shard visible at `finish`, and a failed body aborts
//! them.

use std::ops::Range;

use futures_util::future::join_all;
use tessera_ec::Layout;
use tessera_http::checksum::BodyDigest;
use tessera_http::{S3Error, S3ErrorCode};
use tessera_meta::{ContentHeaders, MetaPair, Policy, Shard, ShardState};

use super::manifest::{self, Manifest};
use super::policy::{self, Resolved};
use super::read::ObjectReader;
use super::{backend_key, internal, now_ms, random_id, unavailable, Engine};
use crate::server::body::RequestBody;
use crate::site::{ChunkBuf, ShardWriter};

/// Where the bytes of a stored object come from: a client's request body, or another stored
/// object being copied. The stripe pipeline reads through this and nothing else, so a copy
/// runs through exactly the code a PUT does.
// Sources live and are awaited on one core (monoio is thread-per-core): the futures need not
// be `Send`, which is what this lint warns about.
#[allow(async_fn_in_trait)]
pub trait ByteSource {
    /// Fills `buf.payload_mut()[range]` and gives the buffer back; `IncompleteBody` (or the
    /// read error) if the source ends or fails first.
    async fn fill(&mut self, buf: ChunkBuf, range: Range<usize>)
        -> (Result<(), S3Error>, ChunkBuf);

    /// Hands the MD5 to the pipeline (which hashes in the core's SIMD lanes) if the source
    /// would compute one and has not been read yet; true if it did.
    fn defer_md5(&mut self) -> bool {
        false
    }

    /// Checks that the source is at its end and returns its digests (MD5 for the ETag, the
    /// verified checksum). Called once, after every byte was read, with the MD5 the pipeline
    /// computed if [`ByteSource::defer_md5`] returned true.
    async fn finish(self, deferred_md5: Option<[u8; 16]>) -> Result<BodyDigest, S3Error>;
}

// Plain functions returning the body's own futures: `async fn` wrappers would add a layer to
// every PUT's future for nothing.
impl ByteSource for RequestBody<'_, '_> {
    fn fill(
        &mut self,
        buf: ChunkBuf,
        range: Range<usize>,
    ) -> impl std::future::Future<Output = (Result<(), S3Error>, ChunkBuf)> {
        self.fill_chunk(buf, range)
    }

    fn defer_md5(&mut self) -> bool {
        RequestBody::defer_md5(self)
    }

    fn finish(
        self,
        deferred_md5: Option<[u8; 16]>,
    ) -> impl std::future::Future<Output = Result<BodyDigest, S3Error>> {
        RequestBody::finish(self, deferred_md5)
    }
}

/// An [`ObjectReader`] as a [`ByteSource`]: the bytes of a stored object (or a range of it),
/// each chunk already verified against its CRC by the reader.
///
/// The MD5 is computed as the bytes pass, unless the caller already knows it (a whole
/// single-PUT object: its ETag is the MD5 of exactly these bytes), which saves ~1.3 CPU-s/GiB.
pub struct ReaderSource {
    reader: ObjectReader,
    /// The piece the reader returned last and the offset of its first unread byte.
    piece: Vec<u8>,
    offset: usize,
    /// Bytes the reader must deliver in all.
    length: u64,
    delivered: u64,
    hasher: Option<md5_many::Md5State>,
    known_md5: Option<[u8; 16]>,
    checksum: Option<tessera_http::checksum::ChecksumValue>,
    /// Computes `checksum` from the bytes instead (a copied range, or another algorithm).
    checksum_hasher: Option<tessera_http::checksum::ChecksumHasher>,
}

impl std::fmt::Debug for ReaderSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderSource")
            .field("length", &self.length)
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}

impl ReaderSource {
    /// A source of the `length` bytes `reader` yields. `known_md5` is their MD5 when the caller
    /// knows it; `checksum` is a verified checksum of exactly these bytes to store again.
    #[must_use]
    pub fn new(
        reader: ObjectReader,
        length: u64,
        known_md5: Option<[u8; 16]>,
        checksum: Option<tessera_http::checksum::ChecksumValue>,
    ) -> Self {
        ReaderSource {
            reader,
            piece: Vec::new(),
            offset: 0,
            length,
            delivered: 0,
            hasher: known_md5.is_none().then(md5_many::Md5State::new),
            known_md5,
            checksum,
            checksum_hasher: None,
        }
    }

    /// Computes the stored checksum with `algorithm` from the bytes as they pass (replacing
    /// any value given to [`ReaderSource::new`]).
    #[must_use]
    pub fn computing_checksum(
        mut self,
        algorithm: tessera_http::checksum::ChecksumAlgorithm,
    ) -> Self {
        self.checksum = None;
        self.checksum_hasher = Some(tessera_http::checksum::ChecksumHasher::new(algorithm));
        self
    }
}

impl ByteSource for ReaderSource {
    async fn fill(
        &mut self,
        mut buf: ChunkBuf,
        range: Range<usize>,
    ) -> (Result<(), S3Error>, ChunkBuf) {
        let result = self.fill_slice(&mut buf.payload_mut()[range]).await;
        (result, buf)
    }

    async fn finish(mut self, _deferred_md5: Option<[u8; 16]>) -> Result<BodyDigest, S3Error> {
        // The pipeline asks for exactly the object's size; anything left means the reader and
        // the record disagree about the size.
        let extra = self.piece.len() - self.offset;
        let more = self.reader.next().await?;
        if extra != 0 || more.is_some_and(|p| !p.is_empty()) || self.delivered != self.length {
            return Err(internal(
                "the copy source length differs from its recorded size",
            ));
        }
        let md5 = match (self.known_md5, self.hasher) {
            (Some(md5), _) => md5,
            (None, Some(hasher)) => hasher.finalize(),
            (None, None) => return Err(internal("no MD5 for the copy")),
        };
        Ok(BodyDigest {
            md5: Some(md5),
            checksum: match self.checksum_hasher {
                Some(hasher) => Some(hasher.finalize()),
                None => self.checksum,
            },
            length: self.delivered,
        })
    }
}

impl ReaderSource {
    /// Fills all of `out` from the reader, hashing as the bytes pass.
    async fn fill_slice(&mut self, out: &mut [u8]) -> Result<(), S3Error> {
        let mut filled = 0;
        while filled < out.len() {
            let left = out.len() - filled;
            if self.offset == self.piece.len() {
                let Some(piece) = self.reader.next().await? else {
                    return Err(S3Error::new(
                        S3ErrorCode::IncompleteBody,
                        "The copy source ended before its recorded size",
                    ));
                };
                self.piece = piece;
                self.offset = 0;
                continue;
            }
            let take = left.min(self.piece.len() - self.offset);
            let data = &self.piece[self.offset..self.offset + take];
            if let Some(hasher) = &mut self.hasher {
                hasher.update(data);
            }
            if let Some(hasher) = &mut self.checksum_hasher {
                hasher.update(data);
            }
            out[filled..filled + take].copy_from_slice(data);
            self.offset += take;
            self.delivered += take as u64;
            filled += take;
        }
        Ok(())
    }
}

/// What the handler knows about the object before its body is read.
#[derive(Debug)]
pub struct PutRequest<'a> {
    /// Bucket name.
    pub bucket: &'a str,
    /// Object key.
    pub key: &'a str,
    /// The bucket's policy.
    pub policy: &'a Policy,
    /// Object size (declared by the request).
    pub size: u64,
    /// Stored content headers.
    pub headers: &'a ContentHeaders,
    /// Stored user metadata.
    pub user_metadata: &'a [MetaPair],
    /// The part number for an UploadPart (0 for a whole object).
    pub part_number: u16,
    /// Checksum algorithm code for the manifest (1 = CRC32 … 5 = SHA-256), if the client sent one.
    pub checksum_algorithm: Option<u8>,
}

/// The stored object, before its metadata record is written.
#[derive(Debug)]
pub struct Stored {
    /// The policy used (hybrid resolved).
    pub policy: Policy,
    /// Chunk size of full stripes.
    pub chunk_size: u32,
    /// Shards in order; `Pending` ones failed and need repair.
    pub shards: Vec<Shard>,
    /// The verified body digests.
    pub digest: BodyDigest,
    /// The 16 bytes of the ETag: the body's MD5, or in the fast ETag mode (without Content-MD5)
    /// its CRC-64/NVME and length.
    pub etag: [u8; 16],
    /// Version id of this write.
    pub version_id: u64,
    /// Last-modified time.
    pub mtime_ms: u64,
}

/// The ETag of the fast mode: CRC-64/NVME of the object then its length, both little-endian.
#[must_use]
pub fn fast_etag(crc64: u64, size: u64) -> [u8; 16] {
    let mut etag = [0_u8; 16];
    etag[..8].copy_from_slice(&crc64.to_le_bytes());
    etag[8..].copy_from_slice(&size.to_le_bytes());
    etag
}

/// Maps the S3 checksum algorithm to the manifest's code.
#[must_use]
pub fn checksum_code(algorithm: tessera_http::checksum::ChecksumAlgorithm) -> u8 {
    use tessera_http::checksum::ChecksumAlgorithm as A;
    match algorithm {
        A::Crc32 => 1,
        A::Crc32c => 2,
        A::Crc64Nvme => 3,
        A::Sha1 => 4,
        A::Sha256 => 5,
    }
}

fn placeholder_digest(code: u8) -> Vec<u8> {
    vec![
        0;
        match code {
            1 | 2 => 4,
            3 => 8,
            4 => 20,
            _ => 32,
        }
    ]
}

impl Engine {
    /// Stores one object from `body`. On success the body has been read and verified to its end
    /// and at least a write quorum of shards is durable.
    ///
    /// A plain function returning [`Engine::put_from`]'s future rather than an `async fn`
    /// awaiting it: a wrapper future would carry the body twice and grow every request's
    /// future.
    pub fn put<'e, 'q, 'p, 'r, 'c>(
        &'e self,
        request: &'q PutRequest<'p>,
        body: RequestBody<'r, 'c>,
    ) -> impl std::future::Future<Output = Result<Stored, S3Error>> + use<'e, 'q, 'p, 'r, 'c> {
        self.put_from(request, body)
    }

    /// Stores one object of `request.size` bytes read from any [`ByteSource`] (a request body,
    /// or another object for a copy). Same guarantees as [`Engine::put`].
    pub async fn put_from<S: ByteSource>(
        &self,
        request: &PutRequest<'_>,
        mut body: S,
    ) -> Result<Stored, S3Error> {
        if request.size > self.object_size_max {
            return Err(S3Error::new(
                S3ErrorCode::EntityTooLarge,
                format!(
                    "Your proposed upload exceeds the maximum allowed size of {} bytes",
                    self.object_size_max
                ),
            ));
        }
        let (policy_used, shape) = policy::resolve(request.policy, request.size);
        if shape.n > self.sites.len() {
            return Err(unavailable(format!(
                "the policy needs {} sites; {} are configured",
                shape.n,
                self.sites.len()
            )));
        }
        let chunk_size = tessera_ec::chunk_size_for(request.size, shape.k, shape.chunk_size);
        let layout = Layout::new(request.size, shape.k, chunk_size)
            .map_err(|e| internal(format!("layout: {e}")))?;
        let quorum = self.quorum(&shape);
        let version_id =
            u64::from_le_bytes(random_id()?[..8].try_into().map_err(|_| internal("id"))?);
        let mtime_ms = now_ms();
        let ids: Vec<_> = (0..shape.n)
            .map(|_| random_id())
            .collect::<Result<_, _>>()?;
        let placed = policy::place(self.placement, &ids[0], shape.n, self.sites.len());
        let mut manifests: Vec<Manifest> = (0..shape.n)
            .map(|shard| Manifest {
                shard: shard as u8,
                k: shape.k as u8,
                n: shape.n as u8,
                replica: shape.replica,
                chunk_size,
                size: request.size,
                version_id,
                mtime_ms,
                md5: [0; 16],
                etag_parts: 0,
                part_number: request.part_number,
                checksum: request
                    .checksum_algorithm
                    .map(|c| (c, placeholder_digest(c))),
                bucket: request.bucket.to_owned(),
                key: request.key.to_owned(),
                headers: request.headers.clone(),
                user_metadata: request.user_metadata.to_vec(),
                index: None,
            })
            .collect();
        // Stripe buffers: n chunks, plus a second set of data chunks for the MD5 lanes.
        let chunk_bytes = chunk_size as usize + tessera_ec::CHECKSUM_LEN;
        let _memory = self
            .upload_budget
            .reserve(chunk_bytes * (shape.n + shape.k))
            .await;
        let footer_len = manifest::encode(&manifests[0]).len() as u64;
        let shard_len = layout.shard_len() + footer_len;

        // Open every shard writer in parallel.
        let opened = join_all(ids.iter().zip(&placed).map(|(id, &site)| {
            let key = backend_key(id);
            async move {
                self.sites[usize::from(site)]
                    .put_shard(&key, shard_len)
                    .await
            }
        }))
        .await;
        let mut writers: Vec<Option<ShardWriter>> = opened.into_iter().map(Result::ok).collect();
        if let Err(e) = check_quorum(&writers, quorum) {
            abort_all(writers).await;
            return Err(e);
        }

        // The fast ETag mode hashes the object once with CRC-64/NVME (~50 GB/s) instead of MD5.
        // The MD5, when needed, is hashed in the core's SIMD lanes beside other uploads.
        let mut hashers = StripeHashers {
            whole: (self.etag_mode == super::EtagMode::Fast).then(|| WholeCrc::new(&layout)),
            md5: None,
        };
        if let Some(lanes) = &self.md5_lanes {
            if body.defer_md5() {
                hashers.md5 = Some(lanes.stream());
            }
        }
        let result = self
            .write_stripes(
                &shape,
                &layout,
                &mut body,
                &mut writers,
                quorum,
                &mut hashers,
            )
            .await;
        let digest = match result {
            Ok(()) => {
                let md5 = match hashers.md5.take() {
                    Some(stream) => Some(stream.finish().await.0),
                    None => None,
                };
                body.finish(md5).await
            }
            Err(e) => Err(e),
        };
        let whole = hashers.whole;
        let digest = match digest {
            Ok(digest) => digest,
            Err(e) => {
                abort_all(writers).await;
                return Err(e);
            }
        };

        // Footers now that the ETag and checksum are known, then make the shards durable.
        let md5 = match (digest.md5, &whole) {
            (Some(md5), _) => md5,
            (None, Some(whole)) => fast_etag(whole.running, request.size),
            (None, None) => return Err(internal("the body MD5 was not computed")),
        };
        for manifest in &mut manifests {
            manifest.md5 = md5;
            if let (Some((_, value)), Some(checksum)) =
                (&mut manifest.checksum, digest.checksum.as_ref())
            {
                value.clear();
                value.extend_from_slice(checksum.as_bytes());
            }
        }
        let footers: Vec<Vec<u8>> = manifests.iter().map(manifest::encode).collect();
        let written = join_all(writers.iter_mut().zip(footers).map(
            |(writer, footer)| async move {
                match writer {
                    Some(w) => w.write(footer).await.0.is_ok(),
                    None => false,
                }
            },
        ))
        .await;
        let finished = self.finish_quorum(writers, written, &ids, quorum).await;
        let durable = finished.iter().filter(|&&ok| ok).count();
        if durable < quorum {
            return Err(unavailable(format!(
                "only {durable} of {} shards became durable (quorum {quorum})",
                shape.n
            )));
        }
        let shards = ids
            .into_iter()
            .zip(placed)
            .zip(finished)
            .map(|((backend_id, site), ok)| Shard {
                site,
                backend_id,
                state: if ok {
                    ShardState::Durable
                } else {
                    ShardState::Pending
                },
            })
            .collect();
        Ok(Stored {
            policy: policy_used,
            chunk_size,
            shards,
            etag: md5,
            digest,
            version_id,
            mtime_ms,
        })
    }

    /// Finishes every shard (those whose footer failed are aborted) and returns, per shard,
    /// whether it is durable, once `quorum` are and the others finished or had as long again
    /// (5 ms to 1 s) — or as soon as the quorum can no longer be reached. Shards still
    /// finishing then complete in a background task that reports to
    /// [`Engine::settling`]; they are returned as not durable, so the caller records them
    /// `Pending` and queues them for repair, which waits for the outcome (see `settle.rs`).
    async fn finish_quorum(
        &self,
        writers: Vec<Option<ShardWriter>>,
        written: Vec<bool>,
        ids: &[tessera_meta::BackendId],
        quorum: usize,
    ) -> Vec<bool> {
        use futures_util::stream::{FuturesUnordered, StreamExt as _};
        let mut started = vec![false; writers.len()];
        let mut finishing: FuturesUnordered<_> = writers
            .into_iter()
            .zip(written)
            .enumerate()
            .filter_map(|(index, (writer, ok))| writer.map(|w| (index, w, ok)))
            .map(|(index, writer, ok)| {
                started[index] = true;
                async move {
                    if ok {
                        (index, writer.finish().await.is_ok())
                    } else {
                        writer.abort().await;
                        (index, false)
                    }
                }
            })
            .collect();
        let mut durable = vec![false; started.len()];
        let mut returned = vec![false; started.len()];
        let mut count = 0;
        let mut outstanding = finishing.len();
        let began = std::time::Instant::now();
        // Once the quorum is durable, stragglers get as long again as it took (within bounds):
        // healthy sites finish together and cost no background work; only a site slower than
        // that is left behind.
        let mut deadline = None;
        while outstanding > 0 && count + outstanding >= quorum {
            let next = match deadline {
                None => finishing.next().await,
                Some(at) => {
                    let left = at - std::time::Instant::now().min(at);
                    match monoio::time::timeout(left, finishing.next()).await {
                        Ok(next) => next,
                        Err(_) => break,
                    }
                }
            };
            let Some((index, ok)) = next else { break };
            outstanding -= 1;
            returned[index] = true;
            durable[index] = ok;
            count += usize::from(ok);
            if count >= quorum && deadline.is_none() {
                let grace = began
                    .elapsed()
                    .clamp(STRAGGLER_GRACE_MIN, STRAGGLER_GRACE_MAX);
                deadline = Some(std::time::Instant::now() + grace);
            }
        }
        if outstanding > 0 && count >= quorum {
            let late: Vec<tessera_meta::BackendId> = (0..started.len())
                .filter(|&i| started[i] && !returned[i])
                .map(|i| ids[i])
                .collect();
            for id in &late {
                self.settling.start(*id);
            }
            let settling = self.settling.clone();
            let ids = ids.to_vec();
            monoio::spawn(async move {
                while let Some((index, ok)) = finishing.next().await {
                    settling.finish(ids[index], ok);
                }
            });
        }
        // Below quorum the PUT fails: shards still finishing are dropped here (a shard that
        // became visible anyway is an orphan for the scrub).
        durable
    }

    /// Reads the body stripe by stripe, encodes, and writes every chunk (with its checksum) to
    /// every live writer in parallel. A writer that fails is dropped; below quorum the PUT fails.
    async fn write_stripes<S: ByteSource>(
        &self,
        shape: &Resolved,
        layout: &Layout,
        body: &mut S,
        writers: &mut [Option<ShardWriter>],
        quorum: usize,
        hashers: &mut StripeHashers<'_>,
    ) -> Result<(), S3Error> {
        let chunk_capacity = layout.chunk_size() as usize + tessera_ec::CHECKSUM_LEN;
        let mut buffers: Vec<ChunkBuf> = (0..shape.n)
            .map(|_| ChunkBuf::take(chunk_capacity))
            .collect();
        let mut checksums = vec![0_u64; shape.n];
        for index in 0..layout.stripe_count() {
            let stripe = layout.stripe(index);
            let chunk_len = stripe.chunk_len as usize;
            // Each buffer leaves the room its writer asks for (a direct dir writer's unaligned
            // tail), so that writer sends it without copying.
            for (buffer, writer) in buffers.iter_mut().zip(writers.iter()) {
                buffer.reset(writer.as_ref().map_or(0, ShardWriter::head_room));
            }
            let data: Vec<ChunkBuf> = buffers.drain(..shape.k).collect();
            let mut filled_data = Vec::with_capacity(shape.k);
            for (i, mut buffer) in data.into_iter().enumerate() {
                let range = stripe.data_chunk_range(i);
                let filled = (range.end - range.start) as usize;
                buffer.set_payload_len(chunk_len);
                let (result, mut buffer) = body.fill(buffer, 0..filled).await;
                result?;
                // A short last chunk is zero-padded to the stripe's chunk length.
                buffer.payload_mut()[filled..].fill(0);
                filled_data.push(buffer);
            }
            buffers.splice(..0, filled_data);
            if shape.replica {
                let (first, rest) = buffers.split_at_mut(1);
                for copy in rest {
                    copy.extend_from_slice(first[0].payload());
                }
                let checksum = tessera_ec::chunk_checksum(first[0].payload());
                checksums.fill(checksum);
            } else {
                // Parity is written whole by the encoder: no need to clear it first.
                for parity in &mut buffers[shape.k..] {
                    parity.set_payload_len(chunk_len);
                }
                let (data, parity) = buffers.split_at_mut(shape.k);
                let data: Vec<&[u8]> = data.iter().map(ChunkBuf::payload).collect();
                let mut parity: Vec<&mut [u8]> =
                    parity.iter_mut().map(ChunkBuf::payload_mut).collect();
                self.with_codec(shape.k, shape.n - shape.k, |codec| {
                    codec.encode_with_checksums(&data, &mut parity, &mut checksums)
                })?
                .map_err(|e| internal(format!("encode: {e}")))?;
            }
            if let Some(whole) = &mut hashers.whole {
                for (i, (buffer, &checksum)) in
                    buffers.iter().zip(&checksums).take(shape.k).enumerate()
                {
                    let range = stripe.data_chunk_range(i);
                    whole.add(
                        &buffer.payload()[..(range.end - range.start) as usize],
                        checksum,
                    );
                }
            }
            for (buffer, checksum) in buffers.iter_mut().zip(&checksums) {
                buffer.extend_from_slice(&tessera_ec::checksum_trailer(*checksum));
            }
            let taken: Vec<ChunkBuf> = std::mem::take(&mut buffers);
            let results = join_all(writers.iter_mut().zip(taken).map(
                |(writer, buffer)| async move {
                    match writer {
                        Some(w) => {
                            let (result, buffer) = w.write_chunk(buffer).await;
                            (result.is_ok(), buffer)
                        }
                        None => (false, buffer),
                    }
                },
            ))
            .await;
            for (writer, (ok, returned)) in writers.iter_mut().zip(results) {
                buffers.push(returned);
                if !ok {
                    if let Some(failed) = writer.take() {
                        failed.abort().await;
                    }
                }
            }
            check_quorum(writers, quorum)?;
            if let Some(md5) = &mut hashers.md5 {
                // This stripe's data buffers go to the MD5 lanes; the previous stripe's come
                // back (a second set on the first stripe).
                let data: Vec<ChunkBuf> = buffers.drain(..shape.k).collect();
                let lengths = (0..shape.k)
                    .map(|i| {
                        let range = stripe.data_chunk_range(i);
                        (range.end - range.start) as usize
                    })
                    .collect();
                let back = md5.submit(data, lengths).unwrap_or_else(|| {
                    (0..shape.k)
                        .map(|_| ChunkBuf::take(chunk_capacity))
                        .collect()
                });
                buffers.splice(..0, back);
            }
        }
        Ok(())
    }
}

/// Least and most time shards still finishing after the quorum get before they are left to
/// finish in the background (see [`Engine::finish_quorum`]).
const STRAGGLER_GRACE_MIN: std::time::Duration = std::time::Duration::from_millis(5);
const STRAGGLER_GRACE_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// The hashes a PUT computes over the object's bytes stripe by stripe, besides the body's own.
struct StripeHashers<'l> {
    /// CRC-64/NVME of the whole object, for the fast ETag mode.
    whole: Option<WholeCrc>,
    /// The ETag MD5 through the core's lanes, when the body deferred it.
    md5: Option<super::md5_lanes::Md5Stream<'l>>,
}

/// The whole object's CRC-64/NVME, built from the data chunks in order. A full chunk's CRC
/// is already known (computed while encoding, on hot data) and is appended without reading
/// the chunk again; a short chunk (the last stripe, or a single-stripe object, whose chunk
/// length varies with its size) is hashed.
struct WholeCrc {
    running: u64,
    /// Appends a full chunk's CRC; only for objects of several stripes, whose full chunks all
    /// have the configured length (so the appender comes from the thread's cache).
    full: Option<(usize, tessera_ec::CrcAppender)>,
}

impl WholeCrc {
    fn new(layout: &Layout) -> Self {
        let chunk = layout.chunk_size();
        WholeCrc {
            running: tessera_ec::chunk_checksum(&[]),
            full: (layout.stripe_count() > 1).then(|| {
                (
                    chunk as usize,
                    tessera_ec::CrcAppender::cached(u64::from(chunk)),
                )
            }),
        }
    }

    /// Adds the next `data` of the object: a data chunk's object bytes, with the CRC of the
    /// whole (padded) chunk.
    fn add(&mut self, data: &[u8], chunk_crc: u64) {
        self.running = match &self.full {
            Some((len, appender)) if data.len() == *len => appender.append(self.running, chunk_crc),
            _ => tessera_ec::extend_checksum(self.running, data),
        };
    }
}

fn check_quorum(writers: &[Option<ShardWriter>], quorum: usize) -> Result<(), S3Error> {
    let live = writers.iter().filter(|w| w.is_some()).count();
    if live < quorum {
        return Err(unavailable(format!(
            "only {live} of {} sites accept writes (quorum {quorum})",
            writers.len()
        )));
    }
    Ok(())
}

async fn abort_all(writers: Vec<Option<ShardWriter>>) {
    for writer in writers.into_iter().flatten() {
        writer.abort().await;
    }
}
