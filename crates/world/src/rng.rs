//! The world's one source of randomness: ChaCha8 streams derived from a seed and a purpose.
//!
//! Every generator takes a `Rng` made for its own purpose (`Rng::new(seed, "pretrain/docs")`), so adding
//! draws to one purpose never shifts the draws of another. Integer and float draws are written here rather
//! than taken from `rand`'s distributions so that the bytes of every dataset depend only on this file and
//! ChaCha8, not on how a dependency implements uniform sampling in a given release.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// A deterministic random stream.
#[derive(Debug, Clone)]
pub struct Rng {
    inner: ChaCha8Rng,
}

/// FNV-1a, used only to turn a purpose name into a stream number.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Rng {
    /// A stream for `purpose` under `seed`. Different purposes give independent streams.
    pub fn new(seed: u64, purpose: &str) -> Self {
        let mut inner = ChaCha8Rng::seed_from_u64(seed);
        inner.set_stream(fnv1a(purpose));
        Rng { inner }
    }

    /// A child stream, for example one per document, so that documents can be generated independently.
    pub fn child(&mut self, purpose: &str) -> Self {
        let seed = self.inner.next_u64();
        Rng::new(seed, purpose)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// Uniform in `0..n` without modulo bias. Panics when `n == 0` (a caller bug, never input).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below(0)");
        let n = n as u64;
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.inner.next_u64();
            if x < zone {
                return (x % n) as usize;
            }
        }
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in `[0, 1)` with 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.inner.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal draw (Box-Muller, two uniforms per draw).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// An index drawn with probability proportional to `weights` (which must not all be zero).
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.unit() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        // Rounding can leave x just above the last bucket: return the last non-zero weight.
        weights
            .iter()
            .rposition(|w| *w > 0.0)
            .expect("weights must not all be zero")
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }

    /// `k` distinct indices of `0..n`, in random order.
    pub fn sample_indices(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut all: Vec<usize> = (0..n).collect();
        self.shuffle(&mut all);
        all.truncate(k);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_give_different_streams_and_seeds_repeat() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7, "a").next_u64()).collect();
        assert!(
            a.windows(2).all(|w| w[0] == w[1]),
            "same seed and purpose repeat"
        );
        assert_ne!(Rng::new(7, "a").next_u64(), Rng::new(7, "b").next_u64());
        assert_ne!(Rng::new(7, "a").next_u64(), Rng::new(8, "a").next_u64());
    }

    #[test]
    fn below_is_roughly_uniform() {
        let mut rng = Rng::new(1, "test");
        let mut counts = [0usize; 5];
        for _ in 0..50_000 {
            counts[rng.below(5)] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn weighted_respects_zero_weights() {
        let mut rng = Rng::new(2, "test");
        for _ in 0..1000 {
            assert_ne!(rng.weighted(&[1.0, 0.0, 2.0]), 1);
        }
    }
}
