//! Rates with 95% intervals: Wilson within one run, a two-level bootstrap across seeds (resample the
//! seeds, then the samples within each), and differences of rates by the same bootstrap.

use emsl_world::Rng;

/// Successes out of trials in one run (one seed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub k: u64,
    pub n: u64,
}

impl Counts {
    pub fn new(k: u64, n: u64) -> Counts {
        assert!(k <= n, "{k} successes out of {n} trials");
        Counts { k, n }
    }

    pub fn rate(&self) -> f64 {
        if self.n == 0 {
            f64::NAN
        } else {
            self.k as f64 / self.n as f64
        }
    }
}

/// A measured quantity with its 95% interval, the number of samples behind it and of seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub n: u64,
    pub seeds: u32,
}

impl Estimate {
    /// A rate as `68.0% [65.4, 70.6]`.
    pub fn pct(&self) -> String {
        format!(
            "{:.1}% [{:.1}, {:.1}]",
            100.0 * self.value,
            100.0 * self.ci_low,
            100.0 * self.ci_high
        )
    }

    /// A difference of rates in percentage points, as `+37.4 pp [+34.2, +40.8]`.
    pub fn pp(&self) -> String {
        format!(
            "{:+.1} pp [{:+.1}, {:+.1}]",
            100.0 * self.value,
            100.0 * self.ci_low,
            100.0 * self.ci_high
        )
    }

    /// A value measured without sampling error (a loss, a setting).
    pub fn exact(value: f64, n: u64, seeds: u32) -> Estimate {
        Estimate {
            value,
            ci_low: value,
            ci_high: value,
            n,
            seeds,
        }
    }

    /// Whether the two 95% intervals overlap: `verify`'s statistical tolerance.
    pub fn overlaps(&self, other: &Estimate) -> bool {
        self.ci_low <= other.ci_high && other.ci_low <= self.ci_high
    }
}

/// How many bootstrap resamples; the generator is seeded, so intervals are reproducible to the bit.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;
const BOOTSTRAP_SEED: u64 = 20260512;

/// The Wilson score interval of k out of n. It contains the rate k/n (mathematically it always does;
/// the bounds are clamped to it so that rounding cannot put 0 out of the interval of 0 of n, which
/// computes as 1e-17).
pub fn wilson(c: Counts) -> (f64, f64) {
    if c.n == 0 {
        return (0.0, 1.0);
    }
    let (n, p, z) = (c.n as f64, c.rate(), 1.959_963_984_540_054);
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    (
        (centre - half).max(0.0).min(p),
        (centre + half).min(1.0).max(p),
    )
}

pub fn pooled(seeds: &[Counts]) -> Counts {
    seeds.iter().fold(Counts::default(), |a, c| Counts {
        k: a.k + c.k,
        n: a.n + c.n,
    })
}

/// A binomial draw by inversion of the cumulative distribution (exact, and fast enough for n in the
/// thousands).
fn binomial(rng: &mut Rng, n: u64, p: f64) -> u64 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    let u = rng.unit();
    let (q, ratio) = (1.0 - p, p / (1.0 - p));
    let mut pk = q.powf(n as f64);
    if pk == 0.0 {
        // Underflow for large n: the normal approximation is accurate there.
        let (mean, sd) = (n as f64 * p, (n as f64 * p * q).sqrt());
        let z = (-2.0 * rng.unit().max(1e-300).ln()).sqrt() * (std::f64::consts::TAU * u).cos();
        return (mean + sd * z).round().clamp(0.0, n as f64) as u64;
    }
    let (mut k, mut cdf) = (0u64, pk);
    while cdf < u && k < n {
        pk *= ratio * (n - k) as f64 / (k + 1) as f64;
        k += 1;
        cdf += pk;
    }
    k
}

/// One bootstrap replicate of a pooled rate: resample seeds with replacement, then each seed's samples.
fn replicate(rng: &mut Rng, seeds: &[Counts]) -> f64 {
    let mut total = Counts::default();
    for _ in 0..seeds.len() {
        let c = seeds[rng.below(seeds.len())];
        total.k += binomial(rng, c.n, c.rate());
        total.n += c.n;
    }
    total.rate()
}

fn percentiles(mut xs: Vec<f64>) -> (f64, f64) {
    xs.retain(|x| x.is_finite());
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    xs.sort_by(f64::total_cmp);
    let at = |q: f64| xs[((xs.len() - 1) as f64 * q).round() as usize];
    (at(0.025), at(0.975))
}

/// A rate over one or more seeds: the pooled rate, with Wilson's interval for one seed and the
/// two-level bootstrap for several.
pub fn rate(seeds: &[Counts]) -> Estimate {
    let total = pooled(seeds);
    let (ci_low, ci_high) = if seeds.len() <= 1 {
        wilson(total)
    } else {
        let mut rng = Rng::new(BOOTSTRAP_SEED, "bootstrap-rate");
        percentiles(
            (0..BOOTSTRAP_RESAMPLES)
                .map(|_| replicate(&mut rng, seeds))
                .collect(),
        )
    };
    Estimate {
        value: total.rate(),
        ci_low,
        ci_high,
        n: total.n,
        seeds: seeds.len() as u32,
    }
}

/// The difference of two pooled rates `a - b` with a bootstrap interval (arms resampled independently).
pub fn difference(a: &[Counts], b: &[Counts]) -> Estimate {
    let mut rng = Rng::new(BOOTSTRAP_SEED, "bootstrap-difference");
    let reps: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| replicate(&mut rng, a) - replicate(&mut rng, b))
        .collect();
    let (ci_low, ci_high) = percentiles(reps);
    Estimate {
        value: pooled(a).rate() - pooled(b).rate(),
        ci_low,
        ci_high,
        n: pooled(a).n + pooled(b).n,
        seeds: a.len().max(b.len()) as u32,
    }
}

/// The difference of two changes, `(a1 - a0) - (b1 - b0)` (a difference in differences: did a treatment
/// move arm a more than arm b?), with a bootstrap interval; the four arms are resampled independently.
pub fn difference_in_differences(
    a1: &[Counts],
    a0: &[Counts],
    b1: &[Counts],
    b0: &[Counts],
) -> Estimate {
    let mut rng = Rng::new(BOOTSTRAP_SEED, "bootstrap-difference-in-differences");
    let reps: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            let a = replicate(&mut rng, a1) - replicate(&mut rng, a0);
            a - (replicate(&mut rng, b1) - replicate(&mut rng, b0))
        })
        .collect();
    let (ci_low, ci_high) = percentiles(reps);
    let r = |x: &[Counts]| pooled(x).rate();
    Estimate {
        value: (r(a1) - r(a0)) - (r(b1) - r(b0)),
        ci_low,
        ci_high,
        n: [a1, a0, b1, b0].iter().map(|x| pooled(x).n).sum(),
        seeds: [a1, a0, b1, b0].iter().map(|x| x.len()).max().unwrap_or(0) as u32,
    }
}

/// The mean of per-seed values with a bootstrap interval over seeds (for values that are not rates).
pub fn mean_over_seeds(values: &[f64], n_per_seed: u64) -> Estimate {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let (ci_low, ci_high) = if values.len() <= 1 {
        (mean, mean)
    } else {
        let mut rng = Rng::new(BOOTSTRAP_SEED, "bootstrap-mean");
        percentiles(
            (0..BOOTSTRAP_RESAMPLES)
                .map(|_| {
                    (0..values.len())
                        .map(|_| values[rng.below(values.len())])
                        .sum::<f64>()
                        / values.len() as f64
                })
                .collect(),
        )
    };
    Estimate {
        value: mean,
        ci_low,
        ci_high,
        n: n_per_seed * values.len() as u64,
        seeds: values.len() as u32,
    }
}

/// A least-squares line `y = intercept + slope * x`, with a bootstrap interval of the slope.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub slope: f64,
    /// 95% percentile interval of the slope over resampled (x, y) pairs.
    pub slope_ci: (f64, f64),
    pub intercept: f64,
    /// The share of the variance of y the line explains.
    pub r2: f64,
    pub n: usize,
}

fn ols(xs: &[f64], ys: &[f64]) -> (f64, f64, f64) {
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in xs.iter().zip(ys) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    let slope = sxy / sxx;
    let r2 = if syy > 0.0 {
        sxy * sxy / (sxx * syy)
    } else {
        f64::NAN
    };
    (slope, my - slope * mx, r2)
}

/// Ordinary least squares of `ys` on `xs` (pairs with a non-finite value are left out); the slope's
/// interval resamples the pairs with replacement (seeded, so the same data give the same interval).
pub fn regression(xs: &[f64], ys: &[f64]) -> Fit {
    let (xs, ys): (Vec<f64>, Vec<f64>) = xs
        .iter()
        .zip(ys)
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|(x, y)| (*x, *y))
        .unzip();
    let (slope, intercept, r2) = ols(&xs, &ys);
    let mut rng = Rng::new(BOOTSTRAP_SEED, "bootstrap-regression");
    let reps = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            let idx: Vec<usize> = (0..xs.len()).map(|_| rng.below(xs.len())).collect();
            let bx: Vec<f64> = idx.iter().map(|&i| xs[i]).collect();
            let by: Vec<f64> = idx.iter().map(|&i| ys[i]).collect();
            ols(&bx, &by).0
        })
        .collect();
    Fit {
        slope,
        slope_ci: percentiles(reps),
        intercept,
        r2,
        n: xs.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_difference_in_differences_separates_a_larger_change_from_an_equal_one() {
        let c = |k| vec![Counts::new(k, 1000); 3];
        // a moves from 10% to 40%, b from 10% to 15%: +25 points more.
        let e = difference_in_differences(&c(400), &c(100), &c(150), &c(100));
        assert!(
            (e.value - 0.25).abs() < 1e-12 && e.ci_low > 0.2 && e.ci_high < 0.3,
            "{e:?}"
        );
        // Equal changes from different levels: no difference, the interval covers 0.
        let f = difference_in_differences(&c(500), &c(400), &c(200), &c(100));
        assert!(
            f.value.abs() < 1e-12 && f.ci_low < 0.0 && f.ci_high > 0.0,
            "{f:?}"
        );
        assert_eq!((e.n, e.seeds), (12000, 3));
    }

    #[test]
    fn regression_recovers_a_line() {
        let xs: Vec<f64> = (0..50).map(f64::from).collect();
        let exact: Vec<f64> = xs.iter().map(|x| 2.0 + 0.5 * x).collect();
        let f = regression(&xs, &exact);
        assert!((f.slope - 0.5).abs() < 1e-12 && (f.intercept - 2.0).abs() < 1e-9);
        assert!((f.r2 - 1.0).abs() < 1e-12 && f.n == 50);
        // Noise around the line: the interval covers the true slope and excludes 0.
        let mut rng = Rng::new(7, "test-noise");
        let noisy: Vec<f64> = exact.iter().map(|y| y + rng.unit() - 0.5).collect();
        let g = regression(&xs, &noisy);
        assert!(
            g.slope_ci.0 < 0.5 && 0.5 < g.slope_ci.1 && g.slope_ci.0 > 0.0,
            "{g:?}"
        );
        assert_eq!(
            g,
            regression(&xs, &noisy),
            "seeded: same data, same interval"
        );
        // Non-finite pairs are left out.
        let mut with_nan = noisy.clone();
        with_nan[3] = f64::NAN;
        assert_eq!(regression(&xs, &with_nan).n, 49);
    }

    #[test]
    fn wilson_contains_its_rate_at_the_extremes() {
        for n in [1, 9, 36, 1000] {
            let (lo, hi) = wilson(Counts::new(0, n));
            assert_eq!(lo, 0.0, "0 of {n}");
            assert!(hi > 0.0);
            let (lo, hi) = wilson(Counts::new(n, n));
            assert_eq!(hi, 1.0, "{n} of {n}");
            assert!(lo < 1.0);
        }
    }

    #[test]
    fn wilson_matches_a_textbook_value() {
        // 10 of 100: Wilson 95% interval (0.0552, 0.1744).
        let (lo, hi) = wilson(Counts::new(10, 100));
        assert!(
            (lo - 0.0552).abs() < 1e-3 && (hi - 0.1744).abs() < 1e-3,
            "{lo} {hi}"
        );
    }

    #[test]
    fn bootstrap_covers_the_pooled_rate_and_is_reproducible() {
        let seeds = [
            Counts::new(10, 100),
            Counts::new(20, 100),
            Counts::new(15, 100),
        ];
        let a = rate(&seeds);
        assert_eq!(a, rate(&seeds));
        assert!(a.ci_low < 0.15 && 0.15 < a.ci_high, "{a:?}");
        assert_eq!((a.n, a.seeds), (300, 3));
    }

    #[test]
    fn a_difference_of_clearly_different_rates_excludes_zero() {
        let hi = [Counts::new(60, 100), Counts::new(55, 100)];
        let lo = [Counts::new(10, 100), Counts::new(12, 100)];
        let d = difference(&hi, &lo);
        assert!(d.ci_low > 0.2 && (d.value - 0.465).abs() < 1e-9, "{d:?}");
        let same = difference(&lo, &lo);
        assert!(same.ci_low < 0.0 && same.ci_high > 0.0, "{same:?}");
    }

    #[test]
    fn binomial_draws_have_the_right_mean() {
        let mut rng = Rng::new(1, "t");
        let m: f64 = (0..4000)
            .map(|_| binomial(&mut rng, 50, 0.3) as f64)
            .sum::<f64>()
            / 4000.0;
        assert!((m - 15.0).abs() < 0.3, "{m}");
    }
}
