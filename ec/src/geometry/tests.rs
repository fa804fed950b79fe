use super::*;

const KIB: u64 = 1024;
const MIB: u32 = 1024 * 1024;

#[test]
fn resolve_follows_http_range_rules() {
    // Checks each Range form against RFC 9110 as S3 applies it, including clamping past the end
    // and the unsatisfiable cases that become HTTP 416.
    let size = 1000;
    let unsatisfiable = Err(Error::RangeNotSatisfiable { object_size: size });
    assert_eq!(ByteRange::Full.resolve(size), Ok(0..1000));
    assert_eq!(ByteRange::Full.resolve(0), Ok(0..0));
    assert_eq!(ByteRange::From { first: 0 }.resolve(size), Ok(0..1000));
    assert_eq!(ByteRange::From { first: 999 }.resolve(size), Ok(999..1000));
    assert_eq!(ByteRange::From { first: 1000 }.resolve(size), unsatisfiable);
    assert_eq!(
        ByteRange::Inclusive { first: 0, last: 0 }.resolve(size),
        Ok(0..1)
    );
    assert_eq!(
        ByteRange::Inclusive {
            first: 10,
            last: 5000
        }
        .resolve(size),
        Ok(10..1000)
    );
    assert_eq!(
        ByteRange::Inclusive {
            first: 10,
            last: u64::MAX
        }
        .resolve(size),
        Ok(10..1000)
    );
    assert_eq!(
        ByteRange::Inclusive {
            first: 1000,
            last: 2000
        }
        .resolve(size),
        unsatisfiable
    );
    assert_eq!(
        ByteRange::Inclusive { first: 5, last: 4 }.resolve(size),
        unsatisfiable
    );
    assert_eq!(ByteRange::Suffix { len: 1 }.resolve(size), Ok(999..1000));
    assert_eq!(ByteRange::Suffix { len: 5000 }.resolve(size), Ok(0..1000));
    assert_eq!(ByteRange::Suffix { len: 0 }.resolve(size), unsatisfiable);
    assert_eq!(
        ByteRange::Suffix { len: 5 }.resolve(0),
        Err(Error::RangeNotSatisfiable { object_size: 0 })
    );
    assert_eq!(
        ByteRange::From { first: 0 }.resolve(0),
        Err(Error::RangeNotSatisfiable { object_size: 0 })
    );
}

#[test]
fn small_object_policy_shrinks_chunks() {
    // Checks that a 4 KiB object over k = 4 gets 1 KiB chunks, sizes round up to CHUNK_ALIGN,
    // and large or unknown-size objects get the maximum.
    assert_eq!(chunk_size_for(4 * KIB, 4, MIB), 1024);
    assert_eq!(chunk_size_for(0, 4, MIB), CHUNK_ALIGN);
    assert_eq!(chunk_size_for(1, 4, MIB), CHUNK_ALIGN);
    assert_eq!(chunk_size_for(4 * 64 + 1, 4, MIB), 128);
    assert_eq!(chunk_size_for(100 * u64::from(MIB), 4, MIB), MIB);
    assert_eq!(
        chunk_size_for(OBJECT_SIZE_MAX, 1, CHUNK_SIZE_MAX),
        CHUNK_SIZE_MAX
    );
    let layout = Layout::new(4 * KIB, 4, chunk_size_for(4 * KIB, 4, MIB)).expect("layout");
    assert_eq!(layout.stripe_count(), 1);
    assert_eq!(layout.shard_len(), 1024 + CHECKSUM_LEN as u64);
}

#[test]
fn stripes_and_shard_lengths() {
    // Checks stripe counts, the short last stripe's chunk length and the stored shard length
    // for sizes around one stripe (k = 4, c = 1 KiB, so a stripe holds 4 KiB).
    let shape = |size: u64| {
        let layout = Layout::new(size, 4, 1024).expect("layout");
        let last = layout
            .stripe_count()
            .checked_sub(1)
            .map(|s| layout.stripe(s).chunk_len);
        (layout.stripe_count(), last, layout.shard_len())
    };
    assert_eq!(shape(0), (0, None, 0));
    assert_eq!(shape(1), (1, Some(1), 9));
    assert_eq!(shape(5), (1, Some(2), 10));
    assert_eq!(shape(4095), (1, Some(1024), 1032));
    assert_eq!(shape(4096), (1, Some(1024), 1032));
    assert_eq!(shape(4097), (2, Some(1), 1032 + 9));
    assert_eq!(shape(3 * 4096 + 100), (4, Some(25), 3 * 1032 + 33));
    // The short stripe's data chunks: 5 bytes over k = 4 with c' = 2 is 2, 2, 1, 0.
    let stripe = Layout::new(5, 4, 1024).expect("layout").stripe(0);
    let lens: Vec<u64> = (0..4)
        .map(|i| {
            let r = stripe.data_chunk_range(i);
            r.end - r.start
        })
        .collect();
    assert_eq!(lens, vec![2, 2, 1, 0]);
}

#[test]
fn layout_limits_are_errors() {
    // Checks that bad k, chunk sizes and object sizes are errors, not panics.
    assert_eq!(
        Layout::new(1, 0, 1024).err(),
        Some(Error::Geometry { k: 0, m: 0 })
    );
    assert_eq!(
        Layout::new(1, 33, 1024).err(),
        Some(Error::Geometry { k: 33, m: 0 })
    );
    for chunk_size in [0, 63, 100, CHUNK_SIZE_MAX + 64] {
        assert_eq!(
            Layout::new(1, 4, chunk_size).err(),
            Some(Error::ChunkSize {
                chunk_size: u64::from(chunk_size)
            })
        );
    }
    assert_eq!(
        Layout::new(OBJECT_SIZE_MAX + 1, 4, MIB).err(),
        Some(Error::ObjectSize {
            object_size: OBJECT_SIZE_MAX + 1
        })
    );
    let huge = Layout::new(OBJECT_SIZE_MAX, 32, CHUNK_ALIGN).expect("largest object");
    assert_eq!(huge.stripe_count(), OBJECT_SIZE_MAX / (32 * 64));
}

#[test]
fn plan_for_a_range_inside_one_chunk() {
    // Checks that a small range inside one data chunk fetches one chunk of one shard and maps
    // to one piece with the right offsets.
    let layout = Layout::new(10_000, 4, 1024).expect("layout");
    let plan = layout
        .read_plan(ByteRange::Inclusive {
            first: 5000,
            last: 5009,
        })
        .expect("plan");
    assert_eq!(plan.range(), 5000..5010);
    assert_eq!(plan.stripes(), 1..2);
    // Byte 5000 is stripe 1 (4096..8192), offset 904: data shard 0, chunk offset 904.
    assert_eq!(
        plan.data_fetch(0),
        Some(ShardFetch {
            stripes: 1..2,
            bytes: 1032..2064
        })
    );
    for shard in 1..4 {
        assert_eq!(plan.data_fetch(shard), None);
    }
    let pieces: Vec<Piece> = plan.pieces().collect();
    assert_eq!(
        pieces,
        vec![Piece {
            stripe: 1,
            shard: 0,
            chunk_offset: 904,
            len: 10,
            stored_offset: 1032 + 904,
            output_offset: 0
        }]
    );
    assert_eq!(
        plan.stripe_fetch(),
        ShardFetch {
            stripes: 1..2,
            bytes: 1032..2064
        }
    );
}
