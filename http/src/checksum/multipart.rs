//! Multipart checksums: the two checksum types of S3 (`x-amz-checksum-type`), and the math that
//! turns part checksums into the object's without reading the object again.
//!
//! ```text
//!  COMPOSITE   : checksum(raw part 1 digest ‖ raw part 2 digest ‖ …), shown `base64-N`
//!  FULL_OBJECT : crc(part 1 ‖ part 2 ‖ …) = combine(combine(crc1, crc2, len2), crc3, len3) …
//!                combine(a, b, len_b) = a · x^(8·len_b) mod P  ⊕  b
//! ```
//!
//! The combine identity holds for the three CRCs S3 offers because each starts from all ones
//! and ends with an all-ones XOR (the two constants cancel). Arithmetic is over GF(2) in the
//! reflected bit order the CRCs use: bit `W-1-i` of a `W`-bit register is the coefficient of
//! `x^i`. Nothing here hashes object data; the part digests come from the parts' uploads.

use super::{ChecksumAlgorithm, ChecksumHasher, ChecksumValue};

/// How an object's checksum relates to its data (`x-amz-checksum-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChecksumType {
    /// The checksum of the concatenated part checksums (multipart only), shown `base64-N`.
    Composite,
    /// The checksum of the whole object's bytes (every single-request upload; multipart
    /// uploads with a CRC combined from the parts).
    FullObject,
}

impl ChecksumType {
    /// The header and XML value: `COMPOSITE` or `FULL_OBJECT`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ChecksumType::Composite => "COMPOSITE",
            ChecksumType::FullObject => "FULL_OBJECT",
        }
    }

    /// The type named by a header value (any case); `None` for anything else.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        [ChecksumType::Composite, ChecksumType::FullObject]
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name.trim()))
    }

    /// S3's default type of a multipart upload using `algorithm`: `FULL_OBJECT` for
    /// CRC-64/NVME, `COMPOSITE` for the others.
    #[must_use]
    pub fn multipart_default(algorithm: ChecksumAlgorithm) -> Self {
        if algorithm == ChecksumAlgorithm::Crc64Nvme {
            ChecksumType::FullObject
        } else {
            ChecksumType::Composite
        }
    }

    /// Whether a multipart upload may use `algorithm` with this type: CRC-64/NVME is
    /// full-object only, the SHAs composite only, CRC-32 and CRC-32C either.
    #[must_use]
    pub fn allows(self, algorithm: ChecksumAlgorithm) -> bool {
        match self {
            ChecksumType::Composite => algorithm != ChecksumAlgorithm::Crc64Nvme,
            ChecksumType::FullObject => crc_params(algorithm).is_some(),
        }
    }
}

/// Width in bits and reflected polynomial of a CRC algorithm; `None` for the SHAs.
fn crc_params(algorithm: ChecksumAlgorithm) -> Option<(u32, u64)> {
    match algorithm {
        ChecksumAlgorithm::Crc32 => Some((32, 0xEDB8_8320)),
        ChecksumAlgorithm::Crc32c => Some((32, 0x82F6_3B78)),
        ChecksumAlgorithm::Crc64Nvme => Some((64, 0x9A6C_9329_AC4B_C9B5)),
        ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256 => None,
    }
}

/// `a · b mod P` for `W`-bit reflected polynomials.
fn mul_mod(a: u64, mut b: u64, width: u32, poly: u64) -> u64 {
    let mut product = 0;
    for i in 0..width {
        if a >> (width - 1 - i) & 1 == 1 {
            product ^= b;
        }
        // b · x: one step toward the low bit; x^W folds back as the polynomial.
        b = if b & 1 == 1 { (b >> 1) ^ poly } else { b >> 1 };
    }
    product
}

/// `x^exponent mod P` by square and multiply (at most 2 · 64 multiplications).
fn x_pow_mod(mut exponent: u64, width: u32, poly: u64) -> u64 {
    let mut result = 1_u64 << (width - 1); // x^0
    let mut square = 1_u64 << (width - 2); // x^1, then x^2, x^4, …
    while exponent != 0 {
        if exponent & 1 == 1 {
            result = mul_mod(result, square, width, poly);
        }
        square = mul_mod(square, square, width, poly);
        exponent >>= 1;
    }
    result
}

fn crc_register(value: &ChecksumValue) -> u64 {
    value
        .as_bytes()
        .iter()
        .fold(0_u64, |acc, &b| (acc << 8) | u64::from(b))
}

fn crc_value(algorithm: ChecksumAlgorithm, register: u64) -> ChecksumValue {
    let bytes = register.to_be_bytes();
    let len = algorithm.digest_len();
    ChecksumValue::from_bytes(algorithm, &bytes[8 - len..])
        .expect("a CRC register has the algorithm's digest length")
}

/// The CRC of `A ‖ B` from `crc(A)`, `crc(B)` and the length of `B` in bytes. `None` when the
/// two values are not of the same CRC algorithm.
#[must_use]
pub fn crc_combine(
    first: &ChecksumValue,
    second: &ChecksumValue,
    second_len: u64,
) -> Option<ChecksumValue> {
    let algorithm = first.algorithm();
    if second.algorithm() != algorithm {
        return None;
    }
    let (width, poly) = crc_params(algorithm)?;
    // 8 · len overflows only past 2 EiB, far beyond S3's 5 TiB objects; keep the math total.
    let shift = x_pow_mod(second_len.wrapping_mul(8), width, poly);
    let combined = mul_mod(crc_register(first), shift, width, poly) ^ crc_register(second);
    Some(crc_value(algorithm, combined))
}

/// The full-object CRC of parts given as `(crc, length in bytes)` in order; the CRC of no
/// bytes when there are none. `None` for a SHA or a part of another algorithm.
#[must_use]
pub fn full_object_checksum(
    algorithm: ChecksumAlgorithm,
    parts: &[(ChecksumValue, u64)],
) -> Option<ChecksumValue> {
    crc_params(algorithm)?;
    let mut acc = ChecksumHasher::digest(algorithm, b"");
    for (value, len) in parts {
        acc = crc_combine(&acc, value, *len)?;
    }
    Some(acc)
}

/// The composite checksum of parts: the checksum of their raw digests concatenated in order.
/// `None` when a part is of another algorithm.
#[must_use]
pub fn composite_checksum(
    algorithm: ChecksumAlgorithm,
    parts: &[ChecksumValue],
) -> Option<ChecksumValue> {
    let mut hasher = ChecksumHasher::new(algorithm);
    for part in parts {
        if part.algorithm() != algorithm {
            return None;
        }
        hasher.update(part.as_bytes());
    }
    Some(hasher.finalize())
}

impl ChecksumValue {
    /// The text S3 shows for a composite checksum of `parts` parts: `base64-N`.
    #[must_use]
    pub fn to_composite_text(&self, parts: usize) -> String {
        format!("{}-{parts}", self.to_base64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRCS: [ChecksumAlgorithm; 3] = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc64Nvme,
    ];

    /// A small deterministic generator (xorshift64*), so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Combining the CRCs of random splits of random data (empty parts included, one to
    /// twelve parts, up to 64 KiB) gives the CRC of the whole, for all three CRCs.
    #[test]
    fn combined_crc_equals_crc_of_concatenation() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..300 {
            let len = match round % 3 {
                0 => rng.below(64),
                1 => rng.below(4096),
                _ => rng.below(65_536),
            } as usize;
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let parts_count = 1 + rng.below(12) as usize;
            let mut cuts: Vec<usize> = (1..parts_count)
                .map(|_| {
                    // Every fourth cut repeats the previous one or an end: an empty part.
                    if rng.below(4) == 0 {
                        0
                    } else {
                        rng.below(len as u64 + 1) as usize
                    }
                })
                .collect();
            cuts.push(0);
            cuts.push(len);
            cuts.sort_unstable();
            for algorithm in CRCS {
                let whole = ChecksumHasher::digest(algorithm, &data);
                let parts: Vec<(ChecksumValue, u64)> = cuts
                    .windows(2)
                    .map(|w| {
                        let piece = &data[w[0]..w[1]];
                        (ChecksumHasher::digest(algorithm, piece), piece.len() as u64)
                    })
                    .collect();
                assert_eq!(
                    full_object_checksum(algorithm, &parts),
                    Some(whole),
                    "{algorithm:?} len {len} cuts {cuts:?}"
                );
            }
        }
    }

    /// Pairwise combine against known values: `123456789` split anywhere gives the
    /// catalogue check value; no parts is the CRC of nothing; empty second parts change
    /// nothing.
    #[test]
    fn combine_pairs_and_edges() {
        let data = b"123456789";
        for algorithm in CRCS {
            let whole = ChecksumHasher::digest(algorithm, data);
            for cut in 0..=data.len() {
                let a = ChecksumHasher::digest(algorithm, &data[..cut]);
                let b = ChecksumHasher::digest(algorithm, &data[cut..]);
                let combined = crc_combine(&a, &b, (data.len() - cut) as u64).unwrap();
                assert_eq!(combined, whole, "{algorithm:?} cut {cut}");
            }
            let empty = ChecksumHasher::digest(algorithm, b"");
            assert_eq!(full_object_checksum(algorithm, &[]), Some(empty));
            assert_eq!(crc_combine(&whole, &empty, 0), Some(whole));
        }
        let crc32 = ChecksumHasher::digest(ChecksumAlgorithm::Crc32, data);
        let crc32c = ChecksumHasher::digest(ChecksumAlgorithm::Crc32c, data);
        assert_eq!(crc_combine(&crc32, &crc32c, 9), None);
        let sha = ChecksumHasher::digest(ChecksumAlgorithm::Sha1, data);
        assert_eq!(crc_combine(&sha, &sha, 9), None);
        assert_eq!(full_object_checksum(ChecksumAlgorithm::Sha256, &[]), None);
    }

    /// Large lengths (a 5 GiB part, a 5 TiB object) shift correctly: combining with
    /// `x^(8n)` for n = a + b equals shifting by a then by b.
    #[test]
    fn shifts_compose_for_large_lengths() {
        for algorithm in CRCS {
            let (width, poly) = crc_params(algorithm).unwrap();
            let (a, b) = (5_u64 << 30, (5_u64 << 40) - (5 << 30));
            let both = x_pow_mod(8 * (a + b), width, poly);
            let stepwise = mul_mod(
                x_pow_mod(8 * a, width, poly),
                x_pow_mod(8 * b, width, poly),
                width,
                poly,
            );
            assert_eq!(both, stepwise, "{algorithm:?}");
        }
    }

    /// A composite checksum is the checksum of the raw part digests, whatever the algorithm;
    /// a part of another algorithm is refused.
    #[test]
    fn composite_is_checksum_of_digests() {
        for algorithm in ChecksumAlgorithm::ALL {
            let parts: Vec<ChecksumValue> = [&b"one"[..], b"", b"three"]
                .iter()
                .map(|p| ChecksumHasher::digest(algorithm, p))
                .collect();
            let concatenated: Vec<u8> = parts.iter().flat_map(|p| p.as_bytes().to_vec()).collect();
            assert_eq!(
                composite_checksum(algorithm, &parts),
                Some(ChecksumHasher::digest(algorithm, &concatenated))
            );
        }
        let mixed = [
            ChecksumHasher::digest(ChecksumAlgorithm::Crc32, b"a"),
            ChecksumHasher::digest(ChecksumAlgorithm::Sha1, b"a"),
        ];
        assert_eq!(composite_checksum(ChecksumAlgorithm::Crc32, &mixed), None);
    }

    /// S3's rules: CRC-64/NVME is full-object only, SHAs composite only, CRC-32/32C both;
    /// defaults FULL_OBJECT for CRC-64/NVME, COMPOSITE otherwise; names parse in any case.
    #[test]
    fn type_rules() {
        use ChecksumAlgorithm as A;
        for (algorithm, composite, full) in [
            (A::Crc32, true, true),
            (A::Crc32c, true, true),
            (A::Crc64Nvme, false, true),
            (A::Sha1, true, false),
            (A::Sha256, true, false),
        ] {
            assert_eq!(ChecksumType::Composite.allows(algorithm), composite);
            assert_eq!(ChecksumType::FullObject.allows(algorithm), full);
            assert!(ChecksumType::multipart_default(algorithm).allows(algorithm));
        }
        assert_eq!(
            ChecksumType::multipart_default(A::Crc64Nvme),
            ChecksumType::FullObject
        );
        assert_eq!(
            ChecksumType::multipart_default(A::Crc32),
            ChecksumType::Composite
        );
        assert_eq!(
            ChecksumType::from_name("full_object"),
            Some(ChecksumType::FullObject)
        );
        assert_eq!(
            ChecksumType::from_name("COMPOSITE"),
            Some(ChecksumType::Composite)
        );
        assert_eq!(ChecksumType::from_name("PARTIAL"), None);
    }
}
