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

/// The verdict of one effect row: inconclusive with fewer than [`MIN_JUDGED`] judged answers;
/// reproduced when its 95% interval lies above 0 and the effect is at least [`MIN_EFFECT`]; not
/// reproduced when the interval lies below [`MIN_EFFECT`]; inconclusive otherwise; descriptive for a
/// row that is not a difference (metric other than `effect`).
pub fn verdict(m: &Measurement) -> Verdict {
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
