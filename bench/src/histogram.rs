//! A log-linear latency histogram in microseconds: fixed memory, O(1) record, mergeable.
//!
//! ```text
//!  value v < 128                → bucket v (exact)
//!  v in [2^e, 2^(e+1)), e ≥ 7   → 64 linear sub-buckets of width 2^(e-6)
//!  relative error of a percentile ≤ 1/64 (1.6 %); min, max and mean are exact
//! ```

/// Sub-buckets per power of two; sets the precision (1/64).
const SUB_BUCKETS: u64 = 64;
/// Values below this are stored exactly.
const EXACT_BELOW: u64 = 2 * SUB_BUCKETS;
/// Buckets needed for every `u64`: 128 exact, then 64 per octave for shifts 1..=57.
pub const BUCKET_COUNT: usize = (EXACT_BELOW + 57 * SUB_BUCKETS) as usize;

/// Latencies of one operation kind, in microseconds.
///
/// The bucket array (30 KiB) is allocated on the first sample, so the many histograms a run
/// keeps (per worker, per operation kind, latency and time to first byte) cost nothing for
/// operations a worker never performs.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

fn bucket_of(value: u64) -> usize {
    if value < EXACT_BELOW {
        return value as usize;
    }
    let exponent = 63 - u64::from(value.leading_zeros());
    let shift = exponent - 6;
    let mantissa = value >> shift;
    debug_assert!((SUB_BUCKETS..2 * SUB_BUCKETS).contains(&mantissa));
    (EXACT_BELOW + (shift - 1) * SUB_BUCKETS + (mantissa - SUB_BUCKETS)) as usize
}

/// The largest value that falls in `bucket`.
fn bucket_high(bucket: usize) -> u64 {
    let bucket = bucket as u64;
    if bucket < EXACT_BELOW {
        return bucket;
    }
    let shift = (bucket - EXACT_BELOW) / SUB_BUCKETS + 1;
    let mantissa = (bucket - EXACT_BELOW) % SUB_BUCKETS + SUB_BUCKETS;
    ((mantissa + 1) << shift).saturating_sub(1)
}

impl Histogram {
    /// An empty histogram; it allocates nothing until the first sample.
    #[must_use]
    pub fn new() -> Self {
        Histogram {
            counts: Vec::new(),
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Records one latency.
    pub fn record(&mut self, micros: u64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKET_COUNT];
        }
        self.counts[bucket_of(micros)] += 1;
        self.count += 1;
        self.sum += u128::from(micros);
        self.min = self.min.min(micros);
        self.max = self.max.max(micros);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        if other.counts.is_empty() {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKET_COUNT];
        }
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Samples recorded.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest sample (0 when empty).
    #[must_use]
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The smallest sample (0 when empty).
    #[must_use]
    pub fn min(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.min
        }
    }

    /// The mean (0 when empty).
    #[must_use]
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The value at quantile `q` (0 < q ≤ 1): the smallest recorded bucket whose cumulative
    /// count reaches `ceil(q × count)`, reported as its highest value clamped to the true
    /// min and max. 0 when empty.
    #[must_use]
    pub fn quantile(&self, q: f64) -> u64 {
        assert!(q > 0.0 && q <= 1.0, "quantile out of range");
        if self.count == 0 {
            return 0;
        }
        // q is in (0, 1], so the product is non-negative and at most `count`.
        #[allow(clippy::cast_sign_loss)]
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0u64;
        for (bucket, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return bucket_high(bucket).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact() {
        // 1..=100 recorded once each: every percentile is the exact order statistic.
        let mut h = Histogram::new();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.quantile(0.5), 50);
        assert_eq!(h.quantile(0.9), 90);
        assert_eq!(h.quantile(0.99), 99);
        assert_eq!(h.quantile(1.0), 100);
        assert_eq!(h.min(), 1);
        assert_eq!(h.max(), 100);
        assert!((h.mean() - 50.5).abs() < 1e-9);
    }

    #[test]
    fn large_values_are_within_the_relative_error() {
        // 1..=1_000_000 µs uniformly: p50, p90, p99, p99.9 are within 1/64 of the true value,
        // never below it (the bucket's high end is reported), and max is exact.
        let mut h = Histogram::new();
        for v in 1..=1_000_000u64 {
            h.record(v);
        }
        for (q, exact) in [
            (0.5, 500_000.0),
            (0.9, 900_000.0),
            (0.99, 990_000.0),
            (0.999, 999_000.0),
        ] {
            let got = h.quantile(q) as f64;
            assert!(
                got >= exact && got <= exact * (1.0 + 1.0 / 64.0),
                "q {q}: {got}"
            );
        }
        assert_eq!(h.max(), 1_000_000);
    }

    #[test]
    fn a_tail_shows_in_the_high_percentiles_only() {
        // 990 fast samples (exactly stored) and 10 slow ones: p50 to p99 stay fast, p99.9 and max see the tail.
        let mut h = Histogram::new();
        for _ in 0..990 {
            h.record(100);
        }
        for _ in 0..10 {
            h.record(50_000);
        }
        assert_eq!(h.quantile(0.5), 100);
        assert_eq!(h.quantile(0.9), 100);
        assert_eq!(h.quantile(0.99), 100);
        assert!(h.quantile(0.999) >= 50_000);
        assert_eq!(h.max(), 50_000);
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        // Two halves merged give the same percentiles and count as one histogram of all.
        let mut all = Histogram::new();
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        for v in (0..10_000u64).map(|i| i * 37 % 9_973 + 1) {
            all.record(v);
            if v % 2 == 0 {
                a.record(v);
            } else {
                b.record(v);
            }
        }
        a.merge(&b);
        assert_eq!(a.count(), all.count());
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(a.quantile(q), all.quantile(q));
        }
        assert_eq!(a.min(), all.min());
    }

    #[test]
    fn empty_and_extreme_values() {
        // An empty histogram reports zeros, holds no buckets, and merging it changes nothing;
        // u64::MAX lands in the last bucket without panic.
        let h = Histogram::new();
        assert_eq!(h.quantile(0.99), 0);
        assert_eq!(h.min(), 0);
        assert!(h.counts.is_empty());
        let mut one = Histogram::new();
        one.record(7);
        one.merge(&h);
        assert_eq!((one.count(), one.quantile(1.0)), (1, 7));
        let mut empty = Histogram::new();
        empty.merge(&one);
        assert_eq!((empty.count(), empty.quantile(0.5), empty.min()), (1, 7, 7));
        let mut h = Histogram::new();
        h.record(u64::MAX);
        assert_eq!(bucket_of(u64::MAX), BUCKET_COUNT - 1);
        assert_eq!(h.quantile(0.5), u64::MAX);
    }

    #[test]
    fn buckets_are_contiguous_and_monotonic() {
        // Every bucket's high end + 1 starts the next bucket, across the exact/log boundary.
        for bucket in 0..BUCKET_COUNT - 1 {
            let high = bucket_high(bucket);
            assert_eq!(bucket_of(high), bucket);
            assert_eq!(bucket_of(high + 1), bucket + 1);
        }
    }
}
