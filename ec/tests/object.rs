//! Whole-object tests: objects are cut into stripes by `Layout`, encoded with checksums into
//! shard images laid out as `docs/ec-layout.md` describes, then read back through `ReadPlan`
//! (healthy: data shards only; degraded: any k shards and `Codec::reconstruct`).

use proptest::prelude::*;
use tessera_ec::{
    checksum_trailer, verify_stored_chunk, ByteRange, Codec, Error, Layout, ReadPlan, ShardSet,
    CHECKSUM_LEN,
};

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// Encodes `object` into k + m shard images: per stripe, each chunk followed by its checksum.
fn store(object: &[u8], k: usize, m: usize, chunk_size: u32) -> (Layout, Vec<Vec<u8>>) {
    let layout = Layout::new(object.len() as u64, k, chunk_size).expect("layout");
    let codec = Codec::new(k, m).expect("codec");
    let mut shards = vec![Vec::new(); k + m];
    for s in 0..layout.stripe_count() {
        let stripe = layout.stripe(s);
        let chunk_len = stripe.chunk_len as usize;
        let data: Vec<Vec<u8>> = (0..k)
            .map(|i| {
                let range = stripe.data_chunk_range(i);
                let mut chunk = object[range.start as usize..range.end as usize].to_vec();
                chunk.resize(chunk_len, 0);
                chunk
            })
            .collect();
        let mut parity = vec![vec![0u8; chunk_len]; m];
        let mut checksums = vec![0u64; k + m];
        codec
            .encode_with_checksums(&data, &mut parity, &mut checksums)
            .expect("encode");
        for (i, chunk) in data.iter().chain(&parity).enumerate() {
            assert_eq!(shards[i].len() as u64, layout.stored_chunk_offset(s));
            shards[i].extend_from_slice(chunk);
            shards[i].extend_from_slice(&checksum_trailer(checksums[i]));
        }
    }
    for shard in &shards {
        assert_eq!(shard.len() as u64, layout.shard_len());
    }
    (layout, shards)
}

/// Verifies and returns the chunk of stripe `s` from bytes fetched at `fetched_start`.
fn chunk_of<'a>(
    layout: &Layout,
    fetched: &'a [u8],
    fetched_start: u64,
    s: u64,
) -> Result<&'a [u8], Error> {
    let offset = (layout.stored_chunk_offset(s) - fetched_start) as usize;
    let len = layout.stripe(s).chunk_len as usize + CHECKSUM_LEN;
    verify_stored_chunk(&fetched[offset..offset + len])
}

/// A healthy read: fetch only what `data_fetch` asks of each data shard, verify every fetched
/// chunk, and place the pieces.
fn read_healthy(layout: &Layout, shards: &[Vec<u8>], plan: &ReadPlan) -> Result<Vec<u8>, Error> {
    let k = layout.data_shards();
    let mut out = vec![0u8; (plan.range().end - plan.range().start) as usize];
    let fetches: Vec<_> = (0..k).map(|i| plan.data_fetch(i)).collect();
    for (i, fetch) in fetches.iter().enumerate() {
        if let Some(f) = fetch {
            let bytes = &shards[i][f.bytes.start as usize..f.bytes.end as usize];
            for s in f.stripes.clone() {
                chunk_of(layout, bytes, f.bytes.start, s)?;
            }
        }
    }
    let mut next_output = 0;
    for piece in plan.pieces() {
        assert_eq!(
            piece.output_offset, next_output,
            "pieces are in output order, no gaps"
        );
        next_output += u64::from(piece.len);
        let f = fetches[piece.shard]
            .as_ref()
            .expect("a piece's shard is fetched");
        assert!(f.stripes.contains(&piece.stripe));
        assert!(piece.stored_offset >= f.bytes.start);
        assert!(piece.stored_offset + u64::from(piece.len) <= f.bytes.end);
        assert_eq!(
            piece.stored_offset,
            layout.stored_chunk_offset(piece.stripe) + u64::from(piece.chunk_offset)
        );
        let src = &shards[piece.shard][piece.stored_offset as usize..][..piece.len as usize];
        out[piece.output_offset as usize..][..piece.len as usize].copy_from_slice(src);
    }
    assert_eq!(next_output, out.len() as u64);
    // Every fetched stripe of every shard is used by at least one piece.
    for (i, fetch) in fetches.iter().enumerate() {
        if let Some(f) = fetch {
            for s in f.stripes.clone() {
                assert!(
                    plan.pieces().any(|p| p.shard == i && p.stripe == s),
                    "shard {i} stripe {s} fetched for nothing"
                );
            }
        }
    }
    Ok(out)
}

/// A degraded read: shards in `lost` are unavailable; every other shard fetches the plan's
/// stripes, each stripe's lost data chunks are reconstructed, and the pieces are placed.
fn read_degraded(
    layout: &Layout,
    codec: &mut Codec,
    shards: &[Vec<u8>],
    plan: &ReadPlan,
    lost: ShardSet,
) -> Result<Vec<u8>, Error> {
    let k = codec.data_shards();
    let n = codec.total_shards();
    let present = ShardSet(ShardSet::first(n).0 & !lost.0);
    let rebuild = ShardSet(lost.0 & ShardSet::first(k).0);
    let fetch = plan.stripe_fetch();
    let mut out = vec![0u8; (plan.range().end - plan.range().start) as usize];
    for s in fetch.stripes.clone() {
        let chunk_len = layout.stripe(s).chunk_len as usize;
        let mut stripe: Vec<Vec<u8>> = vec![vec![0u8; chunk_len]; n];
        for i in present.iter() {
            let bytes = &shards[i][fetch.bytes.start as usize..fetch.bytes.end as usize];
            stripe[i].copy_from_slice(chunk_of(layout, bytes, fetch.bytes.start, s)?);
        }
        codec.reconstruct(&mut stripe, present, rebuild)?;
        for piece in plan.pieces().filter(|p| p.stripe == s) {
            let src = &stripe[piece.shard][piece.chunk_offset as usize..][..piece.len as usize];
            out[piece.output_offset as usize..][..piece.len as usize].copy_from_slice(src);
        }
    }
    Ok(out)
}

#[test]
fn every_loss_pattern_reads_back_whole_objects() {
    // Checks, for each geometry of the issue and object sizes 0, 1, chunk−1, chunk, chunk+1,
    // around one stripe and with a short last stripe, that losing any set of up to m shards
    // still reads the whole object back byte-exact, and that m + 1 losses are an error.
    let chunk = 256u32;
    for (k, m) in [(2, 1), (3, 1), (4, 2), (6, 3), (8, 4), (10, 4), (12, 4)] {
        let mut codec = Codec::new(k, m).expect("codec");
        let c = chunk as usize;
        let stripe = k * c;
        let sizes = [
            0,
            1,
            c - 1,
            c,
            c + 1,
            stripe - 1,
            stripe,
            stripe + 1,
            2 * stripe + 37 * k + 5,
        ];
        for (n, &size) in sizes.iter().enumerate() {
            let object = pseudo_random(size, (k * 100 + m * 10 + n) as u64);
            let (layout, shards) = store(&object, k, m, chunk);
            let plan = layout.read_plan(ByteRange::Full).expect("plan");
            assert_eq!(
                read_healthy(&layout, &shards, &plan).expect("healthy"),
                object
            );
            for bits in 0u32..(1 << (k + m)) {
                let lost = ShardSet(bits);
                if lost.len() > m {
                    continue;
                }
                let read = read_degraded(&layout, &mut codec, &shards, &plan, lost);
                assert_eq!(
                    read.expect("degraded"),
                    object,
                    "k={k} m={m} size={size} lost={lost:?}"
                );
            }
            if layout.stripe_count() > 0 {
                let lost = ShardSet::first(m + 1);
                assert!(matches!(
                    read_degraded(&layout, &mut codec, &shards, &plan, lost),
                    Err(Error::TooManyMissing { .. })
                ));
            }
        }
    }
}

#[test]
fn corrupted_chunk_is_detected_and_repaired() {
    // Checks that flipping one byte of a stored chunk makes the healthy read fail its checksum,
    // and that treating that shard as lost reads the right bytes through reconstruction.
    let (k, m) = (4, 2);
    let object = pseudo_random(10_000, 42);
    let (layout, mut shards) = store(&object, k, m, 1024);
    let plan = layout.read_plan(ByteRange::Full).expect("plan");
    let victim = layout.stored_chunk_offset(1) as usize + 500;
    shards[1][victim] ^= 0x04;
    assert!(matches!(
        read_healthy(&layout, &shards, &plan),
        Err(Error::ChecksumMismatch { .. })
    ));
    let mut codec = Codec::new(k, m).expect("codec");
    let read = read_degraded(&layout, &mut codec, &shards, &plan, ShardSet::EMPTY.with(1));
    assert_eq!(read.expect("repaired"), object);
    // A corrupt parity chunk is caught the same way when parity is read.
    shards[5][layout.stored_chunk_offset(2) as usize] ^= 0x80;
    assert!(matches!(
        read_degraded(
            &layout,
            &mut codec,
            &shards,
            &plan,
            ShardSet::EMPTY.with(1).with(0)
        ),
        Err(Error::ChecksumMismatch { .. })
    ));
}

fn byte_range() -> impl Strategy<Value = ByteRange> {
    prop_oneof![
        Just(ByteRange::Full),
        (0u64..6000).prop_map(|first| ByteRange::From { first }),
        (0u64..6000, 0u64..6000).prop_map(|(first, len)| ByteRange::Inclusive {
            first,
            last: first + len
        }),
        (1u64..6000).prop_map(|len| ByteRange::Suffix { len }),
    ]
}

/// The bytes a range selects, computed from the HTTP rules directly rather than `resolve`.
fn expected(object: &[u8], range: ByteRange) -> Option<&[u8]> {
    let size = object.len();
    let (first, end) = match range {
        ByteRange::Full => return Some(object),
        ByteRange::From { first } => (first as usize, size),
        ByteRange::Inclusive { first, last } => (first as usize, (last as usize + 1).min(size)),
        ByteRange::Suffix { len } => (size.saturating_sub(len as usize), size),
    };
    if first >= size {
        return None;
    }
    Some(&object[first..end])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_range_assembles_exactly(
        k in 1usize..=10,
        m in 0usize..=4,
        chunk_units in 1u32..=8,
        size in 0usize..5000,
        range in byte_range(),
        lost_seed in any::<u32>(),
    ) {
        // Checks, for random geometries, sizes and ranges, that the per-shard fetches and pieces
        // assemble exactly the requested bytes, healthy and with up to m random shards lost.
        let object = pseudo_random(size, u64::from(lost_seed) ^ size as u64);
        let (layout, shards) = store(&object, k, m, 64 * chunk_units);
        let plan = layout.read_plan(range);
        match expected(&object, range) {
            None => prop_assert!(
                matches!(plan, Err(Error::RangeNotSatisfiable { .. })),
                "expected 416, got {:?}",
                plan
            ),
            Some(want) => {
                let plan = plan.expect("satisfiable");
                prop_assert_eq!(read_healthy(&layout, &shards, &plan).expect("healthy"), want);
                let mut lost = ShardSet::EMPTY;
                let mut seed = lost_seed;
                while lost.len() < (seed as usize % (m + 1)) {
                    lost = lost.with((seed >> 8) as usize % (k + m));
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                }
                let mut codec = Codec::new(k, m).expect("codec");
                let read = read_degraded(&layout, &mut codec, &shards, &plan, lost).expect("degraded");
                prop_assert_eq!(read, want);
            }
        }
    }
}
