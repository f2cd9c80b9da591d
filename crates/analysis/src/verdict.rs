//! The rule every effect is judged by, shared by `results/CLAIMS.md` and the notebooks.

use crate::table::Measurement;

/// Below this an effect is too small to count as transfer, even when its interval excludes zero.
pub const MIN_EFFECT: f64 = 0.02;

/// The verdict of one effect row: `reproduced` when its 95% interval lies above 0 and the effect is at
/// least [`MIN_EFFECT`]; `not reproduced` when the interval lies below [`MIN_EFFECT`]; `inconclusive`
/// otherwise; `descriptive` for a row that is not a difference (metric other than `effect`).
pub fn verdict(m: &Measurement) -> &'static str {
    if m.metric != "effect" {
        return "descriptive";
    }
    let e = &m.est;
    if !e.value.is_finite() {
        "inconclusive"
    } else if e.ci_low > 0.0 && e.value >= MIN_EFFECT {
        "reproduced"
    } else if e.ci_high < MIN_EFFECT {
        "not reproduced"
    } else {
        "inconclusive"
    }
}
