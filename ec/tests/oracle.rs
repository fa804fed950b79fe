//! Cross-checks the ISA-L codec against an independent GF(2^8) Reed-Solomon written here from
//! the field's definition (polynomial x^8 + x^4 + x^3 + x^2 + 1 = 0x11d, generator 2) and the
//! systematic Cauchy construction `[I; 1/(i ^ j)]`: the same parity bytes, and data recovered
//! by Gaussian elimination from shards ISA-L produced.

use tessera_ec::{Codec, ShardSet};

/// Log and antilog tables of GF(2^8) built by repeated multiplication by the generator 2.
struct Field {
    exp: [u8; 512],
    log: [u8; 256],
}

impl Field {
    fn new() -> Field {
        let mut exp = [0u8; 512];
        let mut log = [0u8; 256];
        let mut x: u16 = 1;
        for (i, e) in exp.iter_mut().take(255).enumerate() {
            *e = x as u8;
            log[x as usize] = i as u8;
            x <<= 1;
            if x & 0x100 != 0 {
                x ^= 0x11d;
            }
        }
        for i in 255..512 {
            exp[i] = exp[i - 255];
        }
        Field { exp, log }
    }

    fn mul(&self, a: u8, b: u8) -> u8 {
        if a == 0 || b == 0 {
            0
        } else {
            self.exp[self.log[a as usize] as usize + self.log[b as usize] as usize]
        }
    }

    fn inv(&self, a: u8) -> u8 {
        assert_ne!(a, 0);
        self.exp[255 - self.log[a as usize] as usize]
    }

    /// The systematic Cauchy generator: identity rows, then row i, column j = 1 / (i ^ j).
    fn generator(&self, k: usize, m: usize) -> Vec<Vec<u8>> {
        (0..k + m)
            .map(|i| {
                (0..k)
                    .map(|j| {
                        if i < k {
                            u8::from(i == j)
                        } else {
                            self.inv((i ^ j) as u8)
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// `rows · data`, one output per row, byte by byte.
    fn apply(&self, rows: &[Vec<u8>], data: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let len = data[0].len();
        rows.iter()
            .map(|row| {
                (0..len)
                    .map(|b| {
                        row.iter()
                            .zip(data)
                            .fold(0u8, |acc, (&c, d)| acc ^ self.mul(c, d[b]))
                    })
                    .collect()
            })
            .collect()
    }

    /// Solves `a · x = rhs` by Gauss-Jordan elimination; `a` is k × k, rhs is k shards.
    fn solve(&self, mut a: Vec<Vec<u8>>, mut rhs: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let k = a.len();
        for col in 0..k {
            let pivot = (col..k).find(|&r| a[r][col] != 0).expect("singular");
            a.swap(col, pivot);
            rhs.swap(col, pivot);
            let scale = self.inv(a[col][col]);
            for v in &mut a[col] {
                *v = self.mul(*v, scale);
            }
            for v in &mut rhs[col] {
                *v = self.mul(*v, scale);
            }
            let pivot_row = a[col].clone();
            let pivot_rhs = rhs[col].clone();
            for r in 0..k {
                let factor = a[r][col];
                if r == col || factor == 0 {
                    continue;
                }
                for (v, &p) in a[r].iter_mut().zip(&pivot_row) {
                    *v ^= self.mul(factor, p);
                }
                for (v, &p) in rhs[r].iter_mut().zip(&pivot_rhs) {
                    *v ^= self.mul(factor, p);
                }
            }
        }
        rhs
    }
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn field_tables_are_sane() {
    // Checks the reference field itself: 2 generates all 255 non-zero elements and every
    // element times its inverse is 1, so a bug in the oracle cannot mirror one in ISA-L.
    let field = Field::new();
    let mut seen = [false; 256];
    for i in 0..255 {
        seen[field.exp[i] as usize] = true;
    }
    assert_eq!(seen.iter().filter(|&&s| s).count(), 255);
    for a in 1..=255u8 {
        assert_eq!(field.mul(a, field.inv(a)), 1);
    }
    assert_eq!(field.mul(0x80, 2), 0x1d);
}

#[test]
fn parity_matches_reference_encoder() {
    // Checks that ISA-L parity equals the reference encoder's, byte for byte, for many
    // geometries and lengths, including unaligned buffer starts.
    let field = Field::new();
    for (k, m) in [
        (1, 1),
        (2, 1),
        (3, 1),
        (4, 2),
        (6, 3),
        (8, 4),
        (10, 4),
        (12, 4),
        (5, 11),
        (16, 16),
    ] {
        let codec = Codec::new(k, m).expect("codec");
        let generator = field.generator(k, m);
        let flat: Vec<u8> = generator.iter().flatten().copied().collect();
        assert_eq!(codec.matrix(), &flat[..], "generator k={k} m={m}");
        for (len, offset) in [
            (0, 0),
            (1, 3),
            (31, 1),
            (64, 0),
            (100, 7),
            (1000, 63),
            (4099, 17),
        ] {
            let backing: Vec<Vec<u8>> = (0..k)
                .map(|i| pseudo_random(len + offset, (k * 1000 + i * 10 + len) as u64))
                .collect();
            let data: Vec<&[u8]> = backing.iter().map(|b| &b[offset..]).collect();
            let mut parity_backing = vec![vec![0u8; len + offset]; m];
            let mut parity: Vec<&mut [u8]> = parity_backing
                .iter_mut()
                .map(|p| &mut p[offset..])
                .collect();
            codec.encode(&data, &mut parity).expect("encode");
            let owned: Vec<Vec<u8>> = data.iter().map(|d| d.to_vec()).collect();
            let expected = field.apply(&generator[k..], &owned);
            for (p, e) in parity.iter().zip(&expected) {
                assert_eq!(&p[..], &e[..], "k={k} m={m} len={len} offset={offset}");
            }
        }
    }
}

#[test]
fn reference_decoder_recovers_isal_shards() {
    // Checks the other direction: from any k of the shards ISA-L wrote, Gaussian elimination in
    // the reference field recovers the data, and the codec's own reconstruct agrees with it.
    let field = Field::new();
    for (k, m) in [(2, 1), (4, 2), (6, 3), (8, 4)] {
        let mut codec = Codec::new(k, m).expect("codec");
        let generator = field.generator(k, m);
        let data: Vec<Vec<u8>> = (0..k).map(|i| pseudo_random(257, 77 + i as u64)).collect();
        let mut parity = vec![vec![0u8; 257]; m];
        codec.encode(&data, &mut parity).expect("encode");
        let shards: Vec<Vec<u8>> = data.iter().chain(&parity).cloned().collect();
        // Keep the last k shards: every parity shard and the tail of the data.
        let kept: Vec<usize> = (m..k + m).collect();
        let rows: Vec<Vec<u8>> = kept.iter().map(|&s| generator[s].clone()).collect();
        let rhs: Vec<Vec<u8>> = kept.iter().map(|&s| shards[s].clone()).collect();
        assert_eq!(field.solve(rows, rhs), data, "k={k} m={m}");

        let mut work = shards.clone();
        for shard in work.iter_mut().take(m) {
            shard.fill(0);
        }
        let present = ShardSet(kept.iter().fold(0, |b, &s| b | 1 << s));
        codec
            .reconstruct(&mut work, present, ShardSet::first(m))
            .expect("reconstruct");
        assert_eq!(work, shards);
    }
}
