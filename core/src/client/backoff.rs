//! Reconnect delays: exponential backoff with full jitter, on a small seeded
//! generator so tests are repeatable and no OS randomness is needed.

/// xorshift64*: tiny, seedable, good enough for jitter (not for secrets).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is replaced by a fixed odd constant).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// Backoff bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Shortest delay, and the base of the exponential ceiling.
    pub min_ms: u64,
    /// Longest delay.
    pub max_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            min_ms: 500,
            max_ms: 20_000,
        }
    }
}

impl Backoff {
    /// The ceiling for the `attempt`-th retry (0-based): `min * 2^(attempt+1)`,
    /// capped at `max`, so even the first retry is spread over `min..=2·min`.
    pub fn ceiling(&self, attempt: u32) -> u64 {
        let exp = self.min_ms.saturating_mul(1u64 << (attempt.min(32) + 1));
        exp.min(self.max_ms).max(self.min_ms)
    }

    /// The delay before the `attempt`-th retry: uniform between `min` and the
    /// ceiling ("full jitter" above the floor), so many clients cut at once
    /// spread their reconnects instead of stampeding.
    pub fn delay(&self, attempt: u32, rng: &mut Rng) -> u64 {
        rng.between(self.min_ms, self.ceiling(attempt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_bounds_and_grow() {
        let b = Backoff::default();
        let mut rng = Rng::new(7);
        assert_eq!(b.ceiling(0), 1000);
        assert_eq!(b.ceiling(1), 2000);
        assert_eq!(b.ceiling(4), 16_000);
        assert_eq!(b.ceiling(5), 20_000);
        assert_eq!(b.ceiling(1000), 20_000);
        for attempt in 0..50 {
            for _ in 0..200 {
                let d = b.delay(attempt, &mut rng);
                assert!(
                    (500..=b.ceiling(attempt)).contains(&d),
                    "attempt {attempt}: {d}"
                );
            }
        }
    }

    #[test]
    fn jitter_is_spread_evenly() {
        // Over many draws at the cap, the mean is near the middle and every
        // tenth of the range is used about equally: no clustering.
        let b = Backoff {
            min_ms: 1,
            max_ms: 10_000,
        };
        let mut rng = Rng::new(42);
        let n = 100_000u64;
        let mut buckets = [0u64; 10];
        let mut sum = 0u64;
        for _ in 0..n {
            let d = b.delay(20, &mut rng);
            sum += d;
            buckets[(d.min(9_999) / 1000) as usize] += 1;
        }
        let mean = sum / n;
        assert!((4_850..=5_150).contains(&mean), "mean {mean}");
        for (i, c) in buckets.iter().enumerate() {
            assert!((9_000..=11_000).contains(c), "bucket {i}: {c}");
        }
    }

    #[test]
    fn different_seeds_give_different_sequences() {
        let b = Backoff::default();
        let (mut a, mut c) = (Rng::new(1), Rng::new(2));
        let x: Vec<u64> = (0..8).map(|_| b.delay(6, &mut a)).collect();
        let y: Vec<u64> = (0..8).map(|_| b.delay(6, &mut c)).collect();
        assert_ne!(x, y);
    }
}
