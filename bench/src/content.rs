//! Deterministic object content: every key has its own byte stream, so a GET can be checked
//! without the generator keeping any object.
//!
//! ```text
//!  pattern P: PATTERN_BYTES pseudo-random bytes, fixed for all runs (stored twice in a row)
//!  content(key, i) = P[(key_seed(key) + i) mod PATTERN_BYTES]
//!  bytes i..i+n (n ≤ PATTERN_BYTES) are one contiguous slice of the doubled buffer
//! ```
//!
//! Sending a PUT body is a `write` straight from the pattern (no generation, no copy), and
//! checking a GET is a `memcmp`. Keys start at different offsets of the pattern, so objects
//! differ from one another, and a shifted, truncated or zero-filled body is detected.

/// Length of the repeating pattern. A prime, so that the period does not line up with any
/// power-of-two buffer or chunk size; just above 1 MiB so that one `write` can send 1 MiB.
pub const PATTERN_BYTES: usize = 1_048_583;

/// The pattern, stored twice so that any window of up to `PATTERN_BYTES` is contiguous.
pub struct Pattern {
    doubled: Box<[u8]>,
}

impl std::fmt::Debug for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pattern").finish_non_exhaustive()
    }
}

/// One step of SplitMix64: a fast, well-mixed 64-bit generator.
#[must_use]
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of a key's content: FNV-1a over the bucket-independent key bytes, then mixed.
#[must_use]
pub fn key_seed(key: &str) -> u64 {
    let mut hash: u64 = 0xCBF2_9CE4_8422_2325;
    for &b in key.as_bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
    }
    splitmix64(&mut hash)
}

impl Default for Pattern {
    fn default() -> Self {
        Self::new()
    }
}

impl Pattern {
    /// Builds the pattern (2 MiB; ~1 ms). The seed is fixed so content is the same in every run
    /// and every process: a GET run can check what an earlier prepare run uploaded.
    #[must_use]
    pub fn new() -> Self {
        let mut doubled = vec![0u8; 2 * PATTERN_BYTES].into_boxed_slice();
        let mut state = 0x7E55_E7A0_BE4C_0001;
        for word in doubled[..PATTERN_BYTES].chunks_mut(8) {
            let bytes = splitmix64(&mut state).to_le_bytes();
            word.copy_from_slice(&bytes[..word.len()]);
        }
        doubled.copy_within(..PATTERN_BYTES, PATTERN_BYTES);
        Pattern { doubled }
    }

    /// The content of `key_seed`'s object at `offset..offset + len`; `len ≤ PATTERN_BYTES`.
    #[must_use]
    pub fn slice(&self, key_seed: u64, offset: u64, len: usize) -> &[u8] {
        assert!(len <= PATTERN_BYTES, "window larger than the pattern");
        let start = (key_seed.wrapping_add(offset) % PATTERN_BYTES as u64) as usize;
        &self.doubled[start..start + len]
    }

    /// Checks that `data` is the content of `key_seed`'s object at `offset`; on a mismatch
    /// returns the object offset of the first differing byte.
    pub fn check(&self, key_seed: u64, offset: u64, data: &[u8]) -> Result<(), u64> {
        let mut done = 0usize;
        while done < data.len() {
            let n = (data.len() - done).min(PATTERN_BYTES);
            let here = offset + done as u64;
            let expected = self.slice(key_seed, here, n);
            let got = &data[done..done + n];
            if expected != got {
                let at = expected
                    .iter()
                    .zip(got)
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                return Err(here + at as u64);
            }
            done += n;
        }
        Ok(())
    }
}

/// The size of object `index` under `spec`: fixed, or uniform in `min..=max`, the same in
/// every run with the same `seed`.
#[must_use]
pub fn object_size(spec: crate::args::SizeSpec, seed: u64, index: u64) -> u64 {
    if spec.min == spec.max {
        return spec.min;
    }
    let mut state = seed ^ index.wrapping_mul(0xA24B_AED4_963E_E407);
    let span = spec.max - spec.min + 1;
    spec.min + splitmix64(&mut state) % span
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::SizeSpec;

    #[test]
    fn content_is_deterministic_per_key_and_offset() {
        // Two independently built patterns give the same bytes for the same key and offset,
        // and a window read in two halves equals the whole window.
        let a = Pattern::new();
        let b = Pattern::new();
        let seed = key_seed("bench/00000001");
        assert_eq!(a.slice(seed, 12_345, 4096), b.slice(seed, 12_345, 4096));
        let whole = a.slice(seed, 1000, 2000).to_vec();
        let mut halves = a.slice(seed, 1000, 1000).to_vec();
        halves.extend_from_slice(a.slice(seed, 2000, 1000));
        assert_eq!(whole, halves);
    }

    #[test]
    fn different_keys_have_different_content() {
        // Neighbouring keys start at different pattern offsets, so their first KiB differs.
        let p = Pattern::new();
        let s1 = key_seed("bench/00000001");
        let s2 = key_seed("bench/00000002");
        assert_ne!(s1, s2);
        assert_ne!(p.slice(s1, 0, 1024), p.slice(s2, 0, 1024));
    }

    #[test]
    fn check_accepts_the_content_across_the_pattern_period() {
        // A 3 MiB object (longer than the pattern period) checks clean in uneven pieces.
        let p = Pattern::new();
        let seed = key_seed("big");
        let total = 3 << 20;
        let mut object = Vec::with_capacity(total);
        let mut offset = 0u64;
        while object.len() < total {
            let n = (total - object.len()).min(PATTERN_BYTES);
            object.extend_from_slice(p.slice(seed, offset, n));
            offset += n as u64;
        }
        for piece in [1usize, 4096, 65_537, 1 << 20] {
            let mut at = 0usize;
            while at < total {
                let n = piece.min(total - at);
                assert_eq!(p.check(seed, at as u64, &object[at..at + n]), Ok(()));
                at += n;
            }
        }
        assert_eq!(p.check(seed, 0, &object), Ok(()));
    }

    #[test]
    fn check_reports_the_first_bad_offset() {
        // One flipped byte, a zero-filled body and a body of another key are all caught, and
        // the reported offset is the first differing byte.
        let p = Pattern::new();
        let seed = key_seed("k");
        let mut body = p.slice(seed, 100, 5000).to_vec();
        body[1234] ^= 1;
        assert_eq!(p.check(seed, 100, &body), Err(1334));
        let zeros = vec![0u8; 4096];
        assert!(p.check(seed, 0, &zeros).is_err());
        let other = p.slice(key_seed("other"), 0, 4096).to_vec();
        assert!(p.check(seed, 0, &other).is_err());
    }

    #[test]
    fn sizes_are_fixed_or_within_bounds_and_reproducible() {
        // A fixed spec always gives its size; a range gives sizes within bounds that repeat
        // for the same seed and index, and that actually vary.
        let fixed = SizeSpec {
            min: 4096,
            max: 4096,
        };
        assert_eq!(object_size(fixed, 7, 3), 4096);
        let range = SizeSpec { min: 100, max: 200 };
        let sizes: Vec<u64> = (0..1000).map(|i| object_size(range, 7, i)).collect();
        assert!(sizes.iter().all(|s| (100..=200).contains(s)));
        assert_eq!(sizes[17], object_size(range, 7, 17));
        assert!(sizes.iter().any(|&s| s < 120) && sizes.iter().any(|&s| s > 180));
    }
}
