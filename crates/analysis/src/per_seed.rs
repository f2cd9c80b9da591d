//! Counts per seed with the base each seed ran on, and the estimates a table takes of them: over seeds
//! (the two-level bootstrap of [`crate::stats`]) when every seed ran on one base, over bases
//! ([`crate::over_bases`]) when there are several. The seeds of a base are nested in it, so the unit a
//! claim is about, the procedure, is the outer level of every interval as soon as there is more than
//! one base.

use std::ops::Deref;

use anyhow::Result;

use crate::over_bases::{changes_over_bases, difference_over_bases, rate_over_bases, OverBases};
use crate::stats::{self, Counts, Estimate};

/// Counts per seed, in order of base then seed, and how many seeds each base holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PerSeed {
    counts: Vec<Counts>,
    seeds_per_base: Vec<usize>,
}

impl PerSeed {
    /// Seeds that all ran on one base.
    pub fn one_base(counts: Vec<Counts>) -> PerSeed {
        let seeds_per_base = vec![counts.len()];
        PerSeed {
            counts,
            seeds_per_base,
        }
    }

    /// `by_base[base][seed]`.
    pub fn from_bases(by_base: Vec<Vec<Counts>>) -> PerSeed {
        PerSeed {
            seeds_per_base: by_base.iter().map(Vec::len).collect(),
            counts: by_base.into_iter().flatten().collect(),
        }
    }

    /// How many bases the seeds ran on.
    pub fn bases(&self) -> usize {
        self.seeds_per_base.len()
    }

    /// The counts as `[base][seed]`.
    pub fn by_base(&self) -> Vec<Vec<Counts>> {
        let mut rest = self.counts.as_slice();
        self.seeds_per_base
            .iter()
            .map(|n| {
                let (this, next) = rest.split_at(*n);
                rest = next;
                this.to_vec()
            })
            .collect()
    }

    /// The same seeds with `f` applied to each one's counts.
    pub fn map(&self, f: impl Fn(Counts) -> Counts) -> PerSeed {
        PerSeed {
            counts: self.counts.iter().map(|c| f(*c)).collect(),
            seeds_per_base: self.seeds_per_base.clone(),
        }
    }
}

impl Deref for PerSeed {
    type Target = [Counts];
    fn deref(&self) -> &[Counts] {
        &self.counts
    }
}

/// A rate: over seeds on one base (`None` beside it), over bases on several (the estimate, with each
/// base's own value and the share of variance between bases), as [`difference`] is.
pub fn rate(x: &PerSeed) -> Result<(Estimate, Option<OverBases>)> {
    Ok(match x.bases() {
        1 => (stats::rate(x), None),
        _ => {
            let o = rate_over_bases(&x.by_base())?;
            (o.est, Some(o))
        }
    })
}

/// The difference `a - b`: over seeds on one base (`None` beside it), over bases on several (the
/// estimate, with each base's own value and the share of variance between bases).
pub fn difference(a: &PerSeed, b: &PerSeed) -> Result<(Estimate, Option<OverBases>)> {
    Ok(match (a.bases(), b.bases()) {
        (1, 1) => (stats::difference(a, b), None),
        _ => {
            let o = difference_over_bases(&a.by_base(), &b.by_base())?;
            (o.est, Some(o))
        }
    })
}

/// The difference in differences `(a1 - a0) - (b1 - b0)`, as [`difference`] is.
pub fn changes(
    (a1, a0): (&PerSeed, &PerSeed),
    (b1, b0): (&PerSeed, &PerSeed),
) -> Result<(Estimate, Option<OverBases>)> {
    Ok(match [a1, a0, b1, b0].iter().all(|x| x.bases() == 1) {
        true => (stats::difference_in_differences(a1, a0, b1, b0), None),
        false => {
            let o = changes_over_bases(
                (&a1.by_base(), &a0.by_base()),
                (&b1.by_base(), &b0.by_base()),
            )?;
            (o.est, Some(o))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(k: u64) -> Counts {
        Counts::new(k, 100)
    }

    #[test]
    fn one_base_is_todays_estimate_and_several_are_over_bases() {
        let (a, b) = (vec![c(40), c(44), c(42)], vec![c(30), c(31), c(29)]);
        let one = difference(&PerSeed::one_base(a.clone()), &PerSeed::one_base(b.clone())).unwrap();
        assert_eq!(one, (stats::difference(&a, &b), None));
        let a2 = PerSeed::from_bases(vec![a.clone(), vec![c(50), c(52), c(48)]]);
        let b2 = PerSeed::from_bases(vec![b.clone(), vec![c(30), c(28), c(32)]]);
        assert_eq!((a2.bases(), a2.len()), (2, 6));
        assert_eq!(a2.by_base()[1], vec![c(50), c(52), c(48)]);
        let (est, over) = difference(&a2, &b2).unwrap();
        let over = over.expect("two bases give an estimate over bases");
        // Base 0: 42% - 30% = 12 points; base 1: 50% - 30% = 20 points; their mean is the estimate.
        assert!((over.per_base[0] - 0.12).abs() < 1e-12 && (over.per_base[1] - 0.20).abs() < 1e-12);
        assert!((est.value - 0.16).abs() < 1e-12, "{est:?}");
        // Two bases: t(1) = 12.706 times the standard error of the mean, |0.20 - 0.12| / 2.
        assert!(
            (est.ci_high - est.value - 12.706 * 0.04).abs() < 1e-9,
            "{est:?}"
        );
        assert_eq!(est.seeds, 6);
    }

    #[test]
    fn changes_over_bases_take_each_bases_own_difference_in_differences() {
        let arm = |x: u64, y: u64| PerSeed::from_bases(vec![vec![c(x); 2], vec![c(y); 2]]);
        let (est, over) =
            changes((&arm(50, 60), &arm(40, 40)), (&arm(30, 30), &arm(30, 30))).unwrap();
        let over = over.unwrap();
        assert!((over.per_base[0] - 0.10).abs() < 1e-12 && (over.per_base[1] - 0.20).abs() < 1e-12);
        assert!((est.value - 0.15).abs() < 1e-12);
    }
}
