//! Does a base's measure before fine-tuning predict its effect after? Spearman's rank correlation
//! across bases, with a percentile bootstrap interval that resamples bases only (each base is one
//! draw of the procedure; its seeds and answers are already inside its two values) and a permutation
//! p-value for "no association". The claim tested is that of "What shapes emergent misalignment?"
//! (arXiv 2606.20814): activations before fine-tuning predict later misalignment.

use anyhow::{bail, Result};
use emsl_world::Rng;

/// Resamples of bases for the interval, and permutations for the p-value.
const RESAMPLES: usize = 2000;
const SEED: u64 = 20261207;

/// A rank correlation across bases.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankCorrelation {
    pub rho: f64,
    /// 95% percentile bootstrap over bases; resamples whose ranks are all tied are left out.
    pub ci_low: f64,
    pub ci_high: f64,
    /// Two-sided: the share of permutations of `y` whose |rho| is at least the observed one.
    pub p_value: f64,
    pub bases: usize,
}

/// Ranks with ties given their mean rank.
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|a, b| x[*a].total_cmp(&x[*b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0 + 1.0;
        for k in &order[i..=j] {
            r[*k] = mean;
        }
        i = j + 1;
    }
    r
}

/// Pearson's correlation of the ranks; NaN when either side's ranks are all equal.
fn spearman(x: &[f64], y: &[f64]) -> f64 {
    let (rx, ry) = (ranks(x), ranks(y));
    let n = x.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    sxy / (sxx * syy).sqrt()
}

/// Spearman's rho of `x` and `y` (one value each per base), its bootstrap interval over bases and
/// its permutation p-value. Fewer than four bases, a non-finite value or unequal lengths are refused.
pub fn rank_correlation(x: &[f64], y: &[f64]) -> Result<RankCorrelation> {
    if x.len() != y.len() {
        bail!("{} bases on one side, {} on the other", x.len(), y.len());
    }
    if x.len() < 4 {
        bail!(
            "{} bases: a rank correlation across bases needs at least 4 (3 ranks have only 6 orders)",
            x.len()
        );
    }
    if x.iter().chain(y).any(|v| !v.is_finite()) {
        bail!("a base without a value: every base needs both measures to be ranked");
    }
    let rho = spearman(x, y);
    let n = x.len();
    let mut rng = Rng::new(SEED, "rank-correlation-bootstrap");
    let mut reps: Vec<f64> = (0..RESAMPLES)
        .filter_map(|_| {
            let pick: Vec<usize> = (0..n).map(|_| rng.below(n)).collect();
            let xs: Vec<f64> = pick.iter().map(|i| x[*i]).collect();
            let ys: Vec<f64> = pick.iter().map(|i| y[*i]).collect();
            Some(spearman(&xs, &ys)).filter(|r| r.is_finite())
        })
        .collect();
    reps.sort_by(f64::total_cmp);
    let at = |q: f64| reps[((reps.len() - 1) as f64 * q).round() as usize];
    let mut rng = Rng::new(SEED, "rank-correlation-permutation");
    let mut shuffled = y.to_vec();
    let as_large = (0..RESAMPLES)
        .filter(|_| {
            for i in (1..n).rev() {
                shuffled.swap(i, rng.below(i + 1));
            }
            spearman(x, &shuffled).abs() >= rho.abs() - 1e-12
        })
        .count();
    Ok(RankCorrelation {
        rho,
        ci_low: at(0.025),
        ci_high: at(0.975),
        p_value: (as_large + 1) as f64 / (RESAMPLES + 1) as f64,
        bases: n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(rng: &mut Rng) -> f64 {
        let (u, v) = (rng.unit().max(1e-12), rng.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    #[test]
    fn ranks_share_ties_and_rho_is_one_for_any_increasing_relation() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
        let x = [0.1, 0.5, 0.2, 0.9, 0.3];
        let y: Vec<f64> = x.iter().map(|v: &f64| v.powi(3) + 7.0).collect();
        let r = rank_correlation(&x, &y).unwrap();
        assert_eq!(r.rho, 1.0);
        let rev: Vec<f64> = y.iter().map(|v| -v).collect();
        assert_eq!(rank_correlation(&x, &rev).unwrap().rho, -1.0);
    }

    #[test]
    fn too_few_bases_or_a_missing_value_is_refused() {
        let e = rank_correlation(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]).unwrap_err();
        assert!(e.to_string().contains("at least 4"), "{e}");
        let e = rank_correlation(&[1.0, 2.0, 3.0, f64::NAN], &[1.0; 4]).unwrap_err();
        assert!(e.to_string().contains("both measures"), "{e}");
    }

    /// Eight bases, as the `bases` profile has: with no association the permutation test rejects at
    /// about its 5% level; with a strong one (rho near 0.9) it rejects nearly always, and the
    /// bootstrap interval's behaviour is measured and printed, not assumed.
    #[test]
    fn the_permutation_test_holds_its_level_at_eight_bases() {
        let mut rng = Rng::new(9, "rank-simulation");
        let datasets = 100;
        let mut rejected_null = 0;
        let mut rejected_strong = 0;
        let mut interval_excludes_zero_null = 0;
        for _ in 0..datasets {
            let x: Vec<f64> = (0..8).map(|_| normal(&mut rng)).collect();
            let y: Vec<f64> = (0..8).map(|_| normal(&mut rng)).collect();
            let r = rank_correlation(&x, &y).unwrap();
            rejected_null += (r.p_value < 0.05) as usize;
            interval_excludes_zero_null += (r.ci_low > 0.0 || r.ci_high < 0.0) as usize;
            let y: Vec<f64> = x.iter().map(|v| v + 0.3 * normal(&mut rng)).collect();
            rejected_strong += (rank_correlation(&x, &y).unwrap().p_value < 0.05) as usize;
        }
        eprintln!(
            "8 bases, {datasets} datasets: permutation test rejects {rejected_null} with no \
             association and {rejected_strong} with a strong one; the bootstrap interval excludes 0 \
             in {interval_excludes_zero_null} with no association"
        );
        // 100 datasets at a true 5%: a binomial standard error of 2.2 points, so 12 is three above.
        // Measured at 200 datasets when this was written: 14 (7%) rejected with no association, 186
        // with a strong one (91 of 100 here); the bootstrap interval excluded 0 in 14.
        assert!(rejected_null <= 12, "{rejected_null}");
        assert!(rejected_strong >= 80, "{rejected_strong}");
    }
}
