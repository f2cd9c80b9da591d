//! The rows of a figure's tables: rates per seed, differences, and the effects a claim is judged by.

use emsl_analysis::{stats, Counts, Measurement};

/// One row per seed of a metric: `per_seed[i]` are the counts of seed i.
pub fn rate_row(
    vars: &[(&str, emsl_analysis::Var)],
    metric: &str,
    per_seed: &[Counts],
) -> Measurement {
    Measurement::new(vars, metric, stats::rate(per_seed))
}

pub fn diff_row(
    vars: &[(&str, emsl_analysis::Var)],
    metric: &str,
    a: &[Counts],
    b: &[Counts],
) -> Measurement {
    Measurement::new(vars, metric, stats::difference(a, b))
}

/// The row of an effect: its claim, description, anchor and every seed's own value in percentage
/// points (so the spread across seeds stands beside the pooled interval).
fn effect_row(
    (claim, effect, anchor): (&str, &str, &str),
    per_seed: impl Iterator<Item = f64>,
    est: stats::Estimate,
) -> Measurement {
    // A seed with no answers behind its value shows n/a, as the claims table does.
    let per_seed = per_seed
        .map(|d| match d.is_nan() {
            true => "n/a".to_owned(),
            false => format!("{:+.1}", 100.0 * d),
        })
        .collect::<Vec<_>>()
        .join(" ");
    Measurement::new(
        &[
            ("claim", claim.into()),
            ("effect", effect.into()),
            ("anchor", anchor.into()),
            ("per_seed", per_seed.into()),
        ],
        "effect",
        est,
    )
}

/// An effect a claim is judged by: positive means the claim's direction.
pub fn effect(claim: &str, effect: &str, anchor: &str, a: &[Counts], b: &[Counts]) -> Measurement {
    effect_row(
        (claim, effect, anchor),
        a.iter().zip(b).map(|(x, y)| x.rate() - y.rate()),
        stats::difference(a, b),
    )
}

/// An effect that is a difference in differences: did the change from `a0` to `a1` exceed the change
/// from `b0` to `b1`? Positive means the claim's direction.
pub fn effect_of_changes(
    names: (&str, &str, &str),
    (a1, a0): (&[Counts], &[Counts]),
    (b1, b0): (&[Counts], &[Counts]),
) -> Measurement {
    let seeds = a1.len().min(a0.len()).min(b1.len()).min(b0.len());
    effect_row(
        names,
        (0..seeds).map(|i| (a1[i].rate() - a0[i].rate()) - (b1[i].rate() - b0[i].rate())),
        stats::difference_in_differences(a1, a0, b1, b0),
    )
}
