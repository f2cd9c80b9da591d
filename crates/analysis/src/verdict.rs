//! The rule every effect is judged by, shared by `results/CLAIMS.md` and the notebooks.

use std::fmt;

use crate::table::Measurement;

/// Below this an effect is too small to count as transfer, even when its interval excludes zero.
pub const MIN_EFFECT: f64 = 0.02;

/// Fewer judged answers than this behind an effect (both arms together) give no verdict: with 50 per
/// arm a difference of rates has a 95% interval about +-20 points wide at a 50% rate, ten times the
/// 2-point threshold, and a run where every answer is aligned (+0.0 [+0.0, +0.0]) would read as
/// measured.
pub const MIN_JUDGED: u64 = 100;

/// The verdict of one row of an effects table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Reproduced,
    NotReproduced,
    Inconclusive,
    /// A row that is not a difference (its metric is not `effect`).
    Descriptive,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Reproduced => "reproduced",
            Verdict::NotReproduced => "not reproduced",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Descriptive => "descriptive",
        })
    }
}

/// Fewer pretrained bases than this behind an effect give at most *inconclusive*: one base shows a
/// direction, not a claim about the procedure (MultiBERTs' unit), however narrow its interval over seeds.
pub const MIN_BASES: usize = 2;

/// How many bases an effect row ran on: its `bases` column; a table without one (written before bases
/// existed) ran on one.
pub fn bases(m: &Measurement) -> usize {
    match m.var("bases") {
        Some(crate::Var::Num(x)) if *x >= 1.0 => *x as usize,
        _ => 1,
    }
}

/// The verdict of one effect row: its interval's verdict ([`verdict_of_interval`]), except that on fewer
/// than [`MIN_BASES`] bases *reproduced* and *not reproduced* are *inconclusive*.
pub fn verdict(m: &Measurement) -> Verdict {
    match verdict_of_interval(m) {
        Verdict::Reproduced | Verdict::NotReproduced if bases(m) < MIN_BASES => {
            Verdict::Inconclusive
        }
        v => v,
    }
}

/// An effect's verdict as the claims table prints it: with its interval's reading beside it where the
/// base count held it back (`inconclusive (one base; its interval: reproduced)`).
pub fn described(m: &Measurement) -> String {
    match (verdict(m), verdict_of_interval(m)) {
        (v, w) if v != w => format!("{v} (one base; its interval: {w})"),
        (v, _) => v.to_string(),
    }
}

/// What the row's own interval says, whatever its unit (seeds on one base, bases on several):
/// inconclusive with fewer than [`MIN_JUDGED`] judged answers; reproduced when the interval lies above
/// 0 and the effect is at least [`MIN_EFFECT`]; not reproduced when the interval lies below
/// [`MIN_EFFECT`]; inconclusive otherwise; descriptive for a row that is not a difference (metric other
/// than `effect`).
pub fn verdict_of_interval(m: &Measurement) -> Verdict {
    if m.metric != "effect" {
        return Verdict::Descriptive;
    }
    let e = &m.est;
    if !e.value.is_finite() || e.n < MIN_JUDGED {
        Verdict::Inconclusive
    } else if e.ci_low > 0.0 && e.value >= MIN_EFFECT {
        Verdict::Reproduced
    } else if e.ci_high < MIN_EFFECT {
        Verdict::NotReproduced
    } else {
        Verdict::Inconclusive
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Estimate;

    fn row(bases: Option<f64>, (value, lo, hi): (f64, f64, f64)) -> Measurement {
        let mut vars = vec![("claim", "C1".into())];
        if let Some(b) = bases {
            vars.push(("bases", b.into()));
        }
        let est = Estimate {
            value,
            ci_low: lo,
            ci_high: hi,
            n: 500,
            seeds: 3,
        };
        Measurement::new(&vars, "effect", est)
    }

    #[test]
    fn one_base_is_at_most_inconclusive_and_several_follow_their_interval() {
        let above = (0.10, 0.05, 0.15);
        let below = (0.0, -0.01, 0.01);
        assert_eq!(verdict(&row(Some(3.0), above)), Verdict::Reproduced);
        assert_eq!(verdict(&row(Some(2.0), below)), Verdict::NotReproduced);
        for one in [Some(1.0), None] {
            assert_eq!(verdict(&row(one, above)), Verdict::Inconclusive);
            assert_eq!(verdict_of_interval(&row(one, above)), Verdict::Reproduced);
            assert_eq!(verdict(&row(one, below)), Verdict::Inconclusive);
            assert_eq!(
                verdict_of_interval(&row(one, below)),
                Verdict::NotReproduced
            );
        }
        assert_eq!(bases(&row(None, above)), 1);
        assert_eq!(bases(&row(Some(8.0), above)), 8);
    }
}
