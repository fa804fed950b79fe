use super::*;

/// A small deterministic generator (xorshift64*), so failures reproduce without a seed file.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Every subset of `0..n` with at most `max` members, as bitmasks.
fn subsets_up_to(n: usize, max: usize) -> impl Iterator<Item = ShardSet> {
    (0u32..(1u32 << n))
        .map(ShardSet)
        .filter(move |s| s.len() <= max)
}

fn encoded_stripe(codec: &Codec, len: usize, rng: &mut Rng) -> Vec<Vec<u8>> {
    let data: Vec<Vec<u8>> = (0..codec.data_shards()).map(|_| rng.bytes(len)).collect();
    let mut parity = vec![vec![0u8; len]; codec.parity_shards()];
    codec.encode(&data, &mut parity).expect("encode");
    data.into_iter().chain(parity).collect()
}

#[test]
fn every_erasure_pattern_up_to_m_reconstructs() {
    // Checks, for each geometry of the issue and chunk lengths around SIMD widths, that every
    // pattern of up to m lost shards (data and parity) is rebuilt byte-exact from the rest.
    let mut rng = Rng(0x5eed_0001);
    for (k, m) in [(2, 1), (3, 1), (4, 2), (6, 3), (8, 4), (10, 4), (12, 4)] {
        let mut codec = Codec::new(k, m).expect("codec");
        for len in [0, 1, 63, 64, 65, 255, 1000] {
            let stripe = encoded_stripe(&codec, len, &mut rng);
            for lost in subsets_up_to(k + m, m) {
                let mut shards = stripe.clone();
                for shard in lost.iter() {
                    shards[shard].fill(0xAA);
                }
                let present = ShardSet(ShardSet::first(k + m).0 & !lost.0);
                codec
                    .reconstruct(&mut shards, present, lost)
                    .expect("reconstruct");
                assert_eq!(shards, stripe, "k={k} m={m} len={len} lost={lost:?}");
            }
        }
    }
}

#[test]
fn more_than_m_missing_is_an_error() {
    // Checks that with m + 1 shards missing reconstruct refuses with TooManyMissing and leaves
    // the buffers untouched.
    let mut rng = Rng(7);
    for (k, m) in [(2, 1), (4, 2), (12, 4)] {
        let mut codec = Codec::new(k, m).expect("codec");
        let stripe = encoded_stripe(&codec, 100, &mut rng);
        let lost = ShardSet::first(m + 1);
        let present = ShardSet(ShardSet::first(k + m).0 & !lost.0);
        let mut shards = stripe.clone();
        assert_eq!(
            codec.reconstruct(&mut shards, present, lost),
            Err(Error::TooManyMissing {
                present: k - 1,
                needed: k
            })
        );
        assert_eq!(shards, stripe);
    }
}

#[test]
fn partial_rebuild_touches_only_requested_shards() {
    // Checks that rebuilding one of two missing shards writes only that one, and that buffers of
    // shards neither present nor rebuilt may be empty.
    let mut rng = Rng(9);
    let mut codec = Codec::new(4, 2).expect("codec");
    let stripe = encoded_stripe(&codec, 500, &mut rng);
    let mut shards = stripe.clone();
    shards[1] = Vec::new();
    shards[2].fill(0);
    let present = ShardSet(0b11_1001);
    codec
        .reconstruct(&mut shards, present, ShardSet::EMPTY.with(2))
        .expect("reconstruct");
    assert_eq!(shards[2], stripe[2]);
    assert!(shards[1].is_empty());
    assert_eq!(shards[3..], stripe[3..]);
}

#[test]
fn geometry_limits_are_errors_not_panics() {
    // Checks the documented limits: 1 <= k, k + m <= 32, with both edges accepted.
    assert_eq!(Codec::new(0, 2).err(), Some(Error::Geometry { k: 0, m: 2 }));
    assert_eq!(
        Codec::new(30, 3).err(),
        Some(Error::Geometry { k: 30, m: 3 })
    );
    assert_eq!(
        Codec::new(usize::MAX, 1).err(),
        Some(Error::Geometry {
            k: usize::MAX,
            m: 1
        })
    );
    for (k, m) in [(1, 0), (32, 0), (1, 31), (16, 16), (31, 1)] {
        let codec = Codec::new(k, m).expect("within limits");
        assert_eq!((codec.data_shards(), codec.parity_shards()), (k, m));
    }
}

#[test]
fn widest_codes_reconstruct() {
    // Checks the 32-shard edge (16+16 and 1+31): losing m shards still rebuilds exactly.
    let mut rng = Rng(11);
    for (k, m) in [(16, 16), (1, 31), (31, 1)] {
        let mut codec = Codec::new(k, m).expect("codec");
        let stripe = encoded_stripe(&codec, 333, &mut rng);
        for start in [0, k / 2, k] {
            let lost = ShardSet((0..m).fold(0, |bits, i| bits | 1 << ((start + i) % (k + m))));
            let present = ShardSet(ShardSet::first(k + m).0 & !lost.0);
            let mut shards = stripe.clone();
            for shard in lost.iter() {
                shards[shard].fill(0);
            }
            codec
                .reconstruct(&mut shards, present, lost)
                .expect("reconstruct");
            assert_eq!(shards, stripe, "k={k} m={m} lost={lost:?}");
        }
    }
}

#[test]
fn argument_mismatches_are_errors() {
    // Checks that wrong shard counts, unequal lengths and bad shard sets are reported as errors.
    let mut codec = Codec::new(3, 2).expect("codec");
    let data = vec![vec![0u8; 10]; 3];
    let mut parity = vec![vec![0u8; 10]; 2];
    assert!(matches!(
        codec.encode(&data[..2], &mut parity),
        Err(Error::ShardCount {
            expected: 3,
            actual: 2
        })
    ));
    assert!(matches!(
        codec.encode(&data, &mut parity[..1]),
        Err(Error::ShardCount {
            expected: 2,
            actual: 1
        })
    ));
    let mut short_parity = vec![vec![0u8; 10], vec![0u8; 9]];
    assert!(matches!(
        codec.encode(&data, &mut short_parity),
        Err(Error::ShardLength {
            shard: 4,
            expected: 10,
            actual: 9
        })
    ));
    let uneven = vec![vec![0u8; 10], vec![0u8; 11], vec![0u8; 10]];
    assert!(matches!(
        codec.encode(&uneven, &mut parity),
        Err(Error::ShardLength { shard: 1, .. })
    ));
    let mut checksums = [0u64; 4];
    assert!(matches!(
        codec.encode_with_checksums(&data, &mut parity, &mut checksums),
        Err(Error::ShardCount {
            expected: 5,
            actual: 4
        })
    ));
    let mut shards = vec![vec![0u8; 10]; 5];
    assert!(matches!(
        codec.reconstruct(&mut shards, ShardSet(0b00111), ShardSet(0b00100)),
        Err(Error::ShardSet { .. })
    ));
    assert!(matches!(
        codec.reconstruct(&mut shards, ShardSet(0b00111), ShardSet(0b10_0000)),
        Err(Error::ShardSet { .. })
    ));
    shards[3] = vec![0u8; 3];
    assert!(matches!(
        codec.reconstruct(&mut shards, ShardSet(0b00111), ShardSet(0b01000)),
        Err(Error::ShardLength {
            shard: 3,
            expected: 10,
            actual: 3
        })
    ));
}

#[test]
fn encode_with_checksums_matches_separate_passes() {
    // Checks that the fused encode produces the same parity as encode and, for lengths around
    // the step size, the same checksums as hashing each finished chunk.
    let mut rng = Rng(13);
    let codec = Codec::new(4, 2).expect("codec");
    for len in [
        0,
        1,
        100,
        CHECKSUM_STEP_BYTES - 1,
        CHECKSUM_STEP_BYTES,
        2 * CHECKSUM_STEP_BYTES + 5,
    ] {
        let data: Vec<Vec<u8>> = (0..4).map(|_| rng.bytes(len)).collect();
        let mut parity = vec![vec![0u8; len]; 2];
        let mut checksums = [0u64; 6];
        codec
            .encode_with_checksums(&data, &mut parity, &mut checksums)
            .expect("encode");
        let mut expected_parity = vec![vec![0u8; len]; 2];
        codec.encode(&data, &mut expected_parity).expect("encode");
        assert_eq!(parity, expected_parity);
        for (shard, chunk) in data.iter().chain(&parity).enumerate() {
            assert_eq!(
                checksums[shard],
                crate::chunk_checksum(chunk),
                "len={len} shard={shard}"
            );
        }
    }
}

#[test]
fn decode_cache_survives_eviction() {
    // Checks that cycling through more erasure patterns than there are cache slots, twice, still
    // reconstructs every time (evicted tables are recomputed, hits reuse the right tables).
    let mut rng = Rng(17);
    let mut codec = Codec::new(8, 4).expect("codec");
    let stripe = encoded_stripe(&codec, 256, &mut rng);
    let patterns: Vec<ShardSet> = subsets_up_to(12, 2)
        .filter(|s| s.len() == 2)
        .take(DECODE_CACHE_ENTRIES + 5)
        .collect();
    for _ in 0..2 {
        for &lost in &patterns {
            let mut shards = stripe.clone();
            for shard in lost.iter() {
                shards[shard].fill(0x55);
            }
            let present = ShardSet(ShardSet::first(12).0 & !lost.0);
            codec
                .reconstruct(&mut shards, present, lost)
                .expect("reconstruct");
            assert_eq!(shards, stripe, "lost={lost:?}");
        }
    }
}

#[test]
fn shard_set_operations() {
    // Checks ShardSet's bit operations and increasing iteration order.
    let set = ShardSet::EMPTY.with(3).with(0).with(31);
    assert_eq!(set.iter().collect::<Vec<_>>(), vec![0, 3, 31]);
    assert_eq!(set.len(), 3);
    assert!(set.contains(31) && !set.contains(1) && !set.contains(40));
    assert_eq!(set.without(3), ShardSet(1 | 1 << 31));
    assert_eq!(ShardSet::first(32), ShardSet(u32::MAX));
    assert_eq!(ShardSet::first(0), ShardSet::EMPTY);
    assert!(ShardSet::EMPTY.is_empty());
}

#[test]
fn packed_slabs_match_slice_api() {
    // Checks that encode_packed and reconstruct_packed on contiguous slabs give the same parity,
    // checksums and rebuilt chunks as the per-chunk API, and reject a slab of the wrong size.
    let mut rng = Rng(19);
    let mut codec = Codec::new(4, 2).expect("codec");
    for chunk_len in [0usize, 1, 77, 4096] {
        let data = rng.bytes(4 * chunk_len);
        let mut parity = vec![0u8; 2 * chunk_len];
        let mut checksums = [0u64; 6];
        codec
            .encode_packed(&data, &mut parity, chunk_len, &mut checksums)
            .expect("encode");
        let stripe = encoded_stripe_from(&codec, &data, chunk_len);
        assert_eq!(parity, stripe[4..].concat());
        for (i, chunk) in stripe.iter().enumerate() {
            assert_eq!(checksums[i], crate::chunk_checksum(chunk));
        }
        let mut packed = [data.clone(), parity.clone()].concat();
        packed[..chunk_len].fill(0);
        packed[5 * chunk_len..].fill(0);
        let lost = ShardSet::EMPTY.with(0).with(5);
        codec
            .reconstruct_packed(&mut packed, chunk_len, ShardSet(0b01_1110), lost)
            .expect("reconstruct");
        assert_eq!(packed, stripe.concat());
    }
    let mut checksums = [0u64; 6];
    assert!(matches!(
        codec.encode_packed(&[0u8; 10], &mut [0u8; 4], 2, &mut checksums),
        Err(Error::SlabLength {
            expected: 8,
            actual: 10
        })
    ));
    assert!(matches!(
        codec.reconstruct_packed(&mut [0u8; 11], 2, ShardSet(0b1111), ShardSet(0b11_0000)),
        Err(Error::SlabLength {
            expected: 12,
            actual: 11
        })
    ));
}

fn encoded_stripe_from(codec: &Codec, data: &[u8], chunk_len: usize) -> Vec<Vec<u8>> {
    let chunks: Vec<Vec<u8>> = (0..codec.data_shards())
        .map(|i| data[i * chunk_len..(i + 1) * chunk_len].to_vec())
        .collect();
    let mut parity = vec![vec![0u8; chunk_len]; codec.parity_shards()];
    codec.encode(&chunks, &mut parity).expect("encode");
    chunks.into_iter().chain(parity).collect()
}
