//! Multi-buffer MD5 for the uploads of one core: the ETag hashing of many concurrent uploads
//! runs in SIMD lanes (16 streams per AVX-512 instruction, 8 per AVX2) instead of one stream at
//! a time. MD5 is a serial chain within one stream, so this is the only way to make it cheaper
//! per byte; it pays off from about 8 concurrent uploads per core.
//!
//! ```text
//!  upload A: fill stripe i ─► encode, write ─► submit(data i) ─► reclaim(data i-1) ─► fill i+1
//!  upload B:          fill ─► encode, write ─► submit ─┐            │ not hashed yet?
//!  upload C:   ... submit ─────────────────────────────┴─► queue ◄──┘ hash every queued job
//!                                                                      at once (update_many)
//! ```
//!
//! Mid-object nobody waits for a batch to fill: an upload submits a stripe's data buffers and
//! carries on with a second set of buffers; only when it needs the first set back (one stripe
//! later) is the queue hashed — by then the other uploads of the core have queued their stripes
//! too. The cost is one extra set of k data buffers per upload. An upload's *last* stripe is
//! different: its digest is needed at once (for the shard footers), so [`Md5Stream::finish`]
//! waits up to a bound (`engine.md5_finish_wait_ms`, [`FINISH_WAIT_DEFAULT`]) for other live
//! uploads of the core to queue a stripe beside it — without that, an object of one stripe
//! (1 MiB at 2+1) would always be hashed alone. It never waits when every other live upload
//! already has a stripe queued (a lone upload never waits).
//! Jobs own their buffers, so an upload dropped mid-way leaves nothing dangling.
//! Single-threaded by design (one per core, `!Sync`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use md5_many::{Md5Many, Md5State};

use crate::site::ChunkBuf;

/// One core's MD5 lanes.
pub struct Md5Lanes {
    kernel: Md5Many,
    queue: RefCell<Vec<Rc<Job>>>,
    /// Batches hashed and jobs they held (the mean batch size tells how full the lanes ran).
    batches: Cell<u64>,
    jobs: Cell<u64>,
    /// Stream updates that ran in SIMD lanes (the rest ran one at a time).
    in_lanes: Cell<u64>,
    /// Input of the throwaway lanes that pad a group to the kernel's width.
    zeros: RefCell<Vec<u8>>,
    /// Streams started and not yet finished or dropped.
    live: Cell<usize>,
    /// Finishing streams waiting for company, woken whenever a job is queued or hashed.
    waiting: RefCell<Vec<Waker>>,
    /// Longest a finishing stream waits for company.
    finish_wait: Duration,
}

/// Default of the longest a finishing upload waits for other uploads' stripes to share the
/// lanes with; the wait costs latency, not CPU. How often company comes in time depends on how
/// often the core's other uploads queue a stripe. 1 MiB PUTs, MD5 ETags, concurrency 16 over
/// 2 cores (Zen 3 EPYC, fsync on): uploads per batch 1.00 without waiting, 1.32 with 2 ms,
/// 1.45 with 6 ms (gateway CPU 3.54 → 3.26 s/GiB, same MiB/s). Bulk ingest that values CPU
/// over per-request latency can raise it (`engine.md5_finish_wait_ms`).
pub const FINISH_WAIT_DEFAULT: Duration = Duration::from_millis(2);

impl std::fmt::Debug for Md5Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Md5Lanes")
            .field("lanes", &self.kernel.lanes())
            .field("batches", &self.batches.get())
            .field("jobs", &self.jobs.get())
            .finish_non_exhaustive()
    }
}

/// A stripe's data waiting to be hashed into one upload's MD5.
struct Job {
    state: Cell<Md5State>,
    /// The data buffers and how many leading bytes of each belong to the object.
    buffers: RefCell<Vec<ChunkBuf>>,
    lengths: Vec<usize>,
    done: Cell<bool>,
}

/// One upload's MD5 through the lanes: submit stripes in order, reclaim each submitted set of
/// buffers before submitting the next, then [`Md5Stream::finish`].
pub struct Md5Stream<'a> {
    lanes: &'a Md5Lanes,
    state: Md5State,
    pending: Option<Rc<Job>>,
}

impl std::fmt::Debug for Md5Stream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Md5Stream")
            .field("pending", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for Md5Lanes {
    fn default() -> Self {
        Self::new()
    }
}

impl Md5Lanes {
    /// Lanes using the best SIMD level of this CPU.
    #[must_use]
    pub fn new() -> Self {
        let kernel = Md5Many::new();
        Md5Lanes {
            live: Cell::new(0),
            waiting: RefCell::new(Vec::new()),
            finish_wait: FINISH_WAIT_DEFAULT,
            kernel,
            queue: RefCell::new(Vec::new()),
            batches: Cell::new(0),
            jobs: Cell::new(0),
            in_lanes: Cell::new(0),
            zeros: RefCell::new(Vec::new()),
        }
    }

    /// The same lanes with another bound on how long a finishing upload waits for company
    /// (zero: never waits).
    #[must_use]
    pub fn with_finish_wait(mut self, wait: Duration) -> Self {
        self.finish_wait = wait;
        self
    }

    /// Starts one upload's MD5.
    #[must_use]
    pub fn stream(&self) -> Md5Stream<'_> {
        self.live.set(self.live.get() + 1);
        Md5Stream {
            lanes: self,
            state: Md5State::new(),
            pending: None,
        }
    }

    /// (batches, jobs, stream updates in SIMD lanes) so far.
    #[must_use]
    pub fn counts(&self) -> (u64, u64, u64) {
        (self.batches.get(), self.jobs.get(), self.in_lanes.get())
    }

    /// Hashes every queued job, all streams side by side.
    fn run_batch(&self) {
        let jobs: Vec<Rc<Job>> = std::mem::take(&mut *self.queue.borrow_mut());
        if jobs.is_empty() {
            return;
        }
        self.batches.set(self.batches.get() + 1);
        self.jobs.set(self.jobs.get() + jobs.len() as u64);
        let rounds = jobs.iter().map(|j| j.lengths.len()).max().unwrap_or(0);
        let mut states: Vec<Md5State> = jobs.iter().map(|j| j.state.get()).collect();
        let buffers: Vec<std::cell::Ref<'_, Vec<ChunkBuf>>> =
            jobs.iter().map(|j| j.buffers.borrow()).collect();
        for round in 0..rounds {
            let mut members: Vec<(usize, &[u8])> = jobs
                .iter()
                .zip(&buffers)
                .enumerate()
                .filter_map(|(j, (job, buffers))| {
                    let len = *job.lengths.get(round)?;
                    Some((j, &buffers.get(round)?.payload()[..len]))
                })
                .collect();
            self.hash_round(&mut states, &mut members);
        }
        drop(buffers);
        for (job, state) in jobs.iter().zip(states) {
            job.state.set(state);
            job.done.set(true);
        }
        self.wake_waiting();
    }

    fn wake_waiting(&self) {
        let waiting = std::mem::take(&mut *self.waiting.borrow_mut());
        for waker in waiting {
            waker.wake();
        }
    }

    /// The fewest real streams worth padding to [`LANES_NARROW`] lanes on this CPU.
    fn pad_narrow(&self) -> usize {
        pad_narrow(self.kernel.lanes())
    }

    /// Whether a finishing stream whose job is queued should hash the queue now: it is full
    /// enough for the lanes, or every live stream already has a job in it.
    fn batch_ready(&self) -> bool {
        let queued = self.queue.borrow().len();
        queued >= self.pad_narrow() || queued >= self.live.get()
    }

    /// Appends `input` to `states[job]` for every member. Members whose inputs have the same
    /// whole-block length and whose streams sit on a block boundary go through the SIMD kernel
    /// in groups of exactly 8 or 16 (the only widths it runs well at), padded with throwaway
    /// lanes; the rest are hashed one at a time.
    fn hash_round(&self, states: &mut [Md5State], members: &mut Vec<(usize, &[u8])>) {
        let lockstep = |states: &[Md5State], (j, input): (usize, &[u8])| {
            !input.is_empty() && input.len() % 64 == 0 && states[j].bytes_hashed() % 64 == 0
        };
        // Lockstep members first, grouped by input length; the rest after.
        members.sort_by_key(|&member| (!lockstep(states, member), member.1.len()));
        let mut rest = &members[..];
        while let Some(&first) = rest.first() {
            let same = if lockstep(states, first) {
                rest.iter()
                    .take_while(|(_, other)| other.len() == first.1.len())
                    .count()
            } else {
                1
            };
            let take = same.min(LANES_WIDE);
            let width = match take {
                t if t >= LANES_PAD_WIDE => LANES_WIDE,
                t if t >= self.pad_narrow() => LANES_NARROW,
                _ => 0,
            };
            if width == 0 {
                states[first.0].update(first.1);
                rest = &rest[1..];
            } else {
                self.hash_lanes(states, &rest[..take], width);
                rest = &rest[take..];
            }
        }
    }

    /// Runs `group` (equal whole-block inputs) through the SIMD kernel `width` lanes wide.
    fn hash_lanes(&self, states: &mut [Md5State], group: &[(usize, &[u8])], width: usize) {
        let len = group[0].1.len();
        let mut zeros = self.zeros.borrow_mut();
        if zeros.len() < len {
            zeros.resize(len, 0);
        }
        let mut lane_states: Vec<Md5State> = group.iter().map(|&(j, _)| states[j]).collect();
        let mut inputs: Vec<&[u8]> = group.iter().map(|&(_, input)| input).collect();
        lane_states.resize(width, Md5State::new());
        inputs.resize(width, &zeros[..len]);
        self.kernel.update_many(&mut lane_states, &inputs);
        self.in_lanes.set(self.in_lanes.get() + group.len() as u64);
        for (&(j, _), state) in group.iter().zip(lane_states) {
            states[j] = state;
        }
    }
}

/// The SIMD kernel's efficient widths, and the fewest real streams worth padding to the wide
/// one. Widths in between run far slower (12 lanes: 1.6 GB/s on the Zen 3 EPYC below, against
/// 3.4–3.7 GB/s for 8 or 16), so groups are padded up rather than run as they are.
const LANES_WIDE: usize = 16;
const LANES_NARROW: usize = 8;
const LANES_PAD_WIDE: usize = 9;

/// The fewest real streams worth padding to 8 lanes, for a kernel `native_lanes` wide. Padding
/// pays once the real streams' share of the 8 lanes beats one stream hashed alone:
/// - AVX-512 (16 native lanes; 8 run on its AVX2 path), EPYC of 2026-12-06: 8 lanes 2.5 GB/s,
///   one stream 0.8 GB/s, so 3 streams (0.94 GB/s of real input) before it pays.
/// - AVX2 (8 native lanes), Zen 3 EPYC: 8 lanes 3.4–3.7 GB/s, one stream 0.47–0.65 GB/s, so
///   2 streams (0.85–0.93 GB/s) already beat hashing them one after the other.
fn pad_narrow(native_lanes: usize) -> usize {
    if native_lanes == LANES_NARROW {
        2
    } else {
        3
    }
}

impl Md5Stream<'_> {
    /// Queues the first `lengths[i]` bytes of `buffers[i]`, in order, for hashing, and returns
    /// the buffers of the previous submission (hashing the queue first if needed), or `None`
    /// on the first call: the caller then needs a second set of buffers.
    pub fn submit(&mut self, buffers: Vec<ChunkBuf>, lengths: Vec<usize>) -> Option<Vec<ChunkBuf>> {
        debug_assert_eq!(buffers.len(), lengths.len());
        let previous = self.reclaim();
        let job = Rc::new(Job {
            state: Cell::new(self.state),
            buffers: RefCell::new(buffers),
            lengths,
            done: Cell::new(false),
        });
        self.lanes.queue.borrow_mut().push(Rc::clone(&job));
        self.pending = Some(job);
        self.lanes.wake_waiting();
        previous
    }

    /// The buffers of the pending submission once hashed (hashing the queue if needed).
    fn reclaim(&mut self) -> Option<Vec<ChunkBuf>> {
        let job = self.pending.take()?;
        if !job.done.get() {
            self.lanes.run_batch();
        }
        self.state = job.state.get();
        let buffers = std::mem::take(&mut *job.buffers.borrow_mut());
        Some(buffers)
    }

    /// The MD5 of everything submitted, and the last submission's buffers. Waits up to the
    /// lanes' finish wait for other uploads to queue stripes beside the last one (see the module
    /// docs).
    pub async fn finish(mut self) -> ([u8; 16], Option<Vec<ChunkBuf>>) {
        let wait = self.lanes.finish_wait;
        if let Some(job) = self.pending.clone().filter(|_| !wait.is_zero()) {
            let lanes = self.lanes;
            let company = std::future::poll_fn(|cx| {
                if job.done.get() || lanes.batch_ready() {
                    return Poll::Ready(());
                }
                lanes.waiting.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            });
            // Past the deadline the queue is hashed as it is.
            let _ = monoio::time::timeout(wait, company).await;
        }
        let buffers = self.reclaim();
        (self.state.finalize(), buffers)
    }
}

impl Drop for Md5Stream<'_> {
    fn drop(&mut self) {
        self.lanes.live.set(self.lanes.live.get() - 1);
        // One fewer stream to wait for: a finishing stream may now have all the company left.
        self.lanes.wake_waiting();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::run as block_on;
    use md5::Digest as _;

    fn one_chunk(data: &[u8]) -> Vec<ChunkBuf> {
        let mut buffer = ChunkBuf::take(data.len());
        buffer.reset(0);
        buffer.extend_from_slice(data);
        vec![buffer]
    }

    fn pattern(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Many interleaved streams with uneven stripe and chunk sizes hash to the same digests as
    /// the reference `md-5` crate, whatever the batch composition.
    #[test]
    fn interleaved_streams_match_the_reference() {
        let lanes = Md5Lanes::new();
        let objects: Vec<Vec<u8>> = (0..20)
            .map(|i| {
                let odd_sizes = [0, 1, 63, 64, 65, 1000, 70_001, 300_000];
                let len = if i % 2 == 0 {
                    300_000 + i as usize
                } else {
                    odd_sizes[i as usize % 8]
                };
                pattern(i, len)
            })
            .collect();
        let mut streams: Vec<(Md5Stream<'_>, usize)> =
            objects.iter().map(|_| (lanes.stream(), 0)).collect();
        let mut spare: Vec<Option<Vec<ChunkBuf>>> = objects.iter().map(|_| None).collect();
        // Round-robin with a stride that varies per stream, so batches mix streams unevenly.
        for round in 0..1000 {
            for (s, object) in objects.iter().enumerate() {
                if (round + s) % (1 + s % 3) != 0 {
                    continue;
                }
                let (stream, offset) = &mut streams[s];
                if *offset >= object.len() && round > 0 {
                    continue;
                }
                let k = 1 + s % 4;
                // Half the streams use whole-block chunks of one size (the SIMD path), the rest
                // odd sizes (one at a time).
                let chunk = if s % 2 == 0 {
                    4096
                } else {
                    1 + (s * 7919 + round * 31) % 9000
                };
                let mut buffers = spare[s].take().unwrap_or_default();
                buffers.truncate(k);
                while buffers.len() < k {
                    buffers.push(ChunkBuf::take(9_005));
                }
                let mut lengths = Vec::new();
                for buffer in &mut buffers {
                    buffer.reset(s % 3);
                    let take = chunk.min(object.len() - *offset);
                    buffer.extend_from_slice(&object[*offset..*offset + take]);
                    // Padding past the object's bytes must not be hashed.
                    buffer.set_payload_len(chunk + 5);
                    buffer.payload_mut()[take..].fill(0xAA);
                    lengths.push(take);
                    *offset += take;
                }
                spare[s] = stream.submit(buffers, lengths);
            }
        }
        let (batches, jobs, in_lanes) = lanes.counts();
        assert!(
            jobs > batches,
            "batches held more than one job: {batches} / {jobs}"
        );
        assert!(in_lanes > 0, "some updates ran in SIMD lanes");
        for ((stream, offset), object) in streams.into_iter().zip(&objects) {
            assert_eq!(offset, object.len());
            let (digest, _) = block_on(stream.finish());
            assert_eq!(digest, <[u8; 16]>::from(md5::Md5::digest(object)));
        }
    }

    /// Two uploads in lockstep share the 8 lanes where that beats hashing them one at a time
    /// (AVX2 kernels), and are hashed one at a time elsewhere; the digests are right either way.
    #[test]
    fn two_lockstep_streams_use_the_lanes_where_that_pays() {
        let lanes = Md5Lanes::new();
        let objects: Vec<Vec<u8>> = (0..2).map(|i| pattern(i, 3 * 65_536)).collect();
        let mut streams: Vec<Md5Stream<'_>> = objects.iter().map(|_| lanes.stream()).collect();
        for stripe in 0..3 {
            for (stream, object) in streams.iter_mut().zip(&objects) {
                let data = &object[stripe * 65_536..(stripe + 1) * 65_536];
                // The previous stripe's buffers come back; this test has no use for them.
                let _ = stream.submit(one_chunk(data), vec![65_536]);
            }
        }
        let digests: Vec<[u8; 16]> = streams
            .into_iter()
            .map(|s| block_on(s.finish()).0)
            .collect();
        for (digest, object) in digests.iter().zip(&objects) {
            assert_eq!(*digest, <[u8; 16]>::from(md5::Md5::digest(object)));
        }
        let (_, _, in_lanes) = lanes.counts();
        let expected = if lanes.pad_narrow() <= 2 { 6 } else { 0 };
        assert_eq!(in_lanes, expected, "{} native lanes", lanes.kernel.lanes());
    }

    /// Two uploads of one stripe each: the first to finish waits for the second's stripe, and
    /// both are hashed in one batch (without the wait, each would be hashed alone).
    #[test]
    fn a_finishing_upload_waits_for_another_live_one_to_share_the_batch() {
        let lanes = Md5Lanes::new();
        let objects: Vec<Vec<u8>> = (0..2).map(|i| pattern(i + 7, 65_536)).collect();
        let (mut first, mut second) = (lanes.stream(), lanes.stream());
        let _ = first.submit(one_chunk(&objects[0]), vec![65_536]);
        let (a, b) = block_on(futures_util::future::join(first.finish(), async {
            // Polled after the first upload started waiting.
            let _ = second.submit(one_chunk(&objects[1]), vec![65_536]);
            second.finish().await
        }));
        assert_eq!(a.0, <[u8; 16]>::from(md5::Md5::digest(&objects[0])));
        assert_eq!(b.0, <[u8; 16]>::from(md5::Md5::digest(&objects[1])));
        let (batches, jobs, _) = lanes.counts();
        assert_eq!((batches, jobs), (1, 2), "both stripes in one batch");
    }

    /// With the wait set to zero the first upload to finish hashes its stripe alone.
    #[test]
    fn a_zero_finish_wait_never_waits() {
        let lanes = Md5Lanes::new().with_finish_wait(Duration::ZERO);
        let data = pattern(5, 4096);
        let (mut first, mut second) = (lanes.stream(), lanes.stream());
        let _ = first.submit(one_chunk(&data), vec![4096]);
        let _ = block_on(futures_util::future::join(first.finish(), async {
            let _ = second.submit(one_chunk(&data), vec![4096]);
            second.finish().await
        }));
        assert_eq!(lanes.counts().0, 2, "one batch per upload");
    }

    /// A live upload that queues nothing does not hold a finishing one for long, and an upload
    /// alone does not wait at all.
    #[test]
    fn finishing_waits_at_most_the_bound() {
        let lanes = Md5Lanes::new();
        let data = pattern(3, 4096);
        let idle = lanes.stream();
        let mut finishing = lanes.stream();
        let _ = finishing.submit(one_chunk(&data), vec![4096]);
        let started = std::time::Instant::now();
        let (digest, _) = block_on(finishing.finish());
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(digest, <[u8; 16]>::from(md5::Md5::digest(&data)));
        drop(idle);
        assert_eq!(lanes.live.get(), 0);
        let mut alone = lanes.stream();
        let _ = alone.submit(one_chunk(&data), vec![4096]);
        assert!(lanes.batch_ready(), "an upload alone hashes at once");
        let (digest, _) = block_on(alone.finish());
        assert_eq!(digest, <[u8; 16]>::from(md5::Md5::digest(&data)));
    }

    #[test]
    fn an_empty_stream_is_the_md5_of_nothing() {
        let lanes = Md5Lanes::new();
        let (digest, buffers) = block_on(lanes.stream().finish());
        assert!(buffers.is_none());
        assert_eq!(hex::encode(digest), "d41d8cd98f00b204e9800998ecf8427e");
    }
}
