//! The rows of a figure's tables: rates per seed, differences, and the effects a claim is judged by.
//! On one base an interval is over seeds; on several it is over bases (`emsl_analysis::per_seed`).

use anyhow::Result;
use emsl_analysis::over_bases::OverBases;
use emsl_analysis::{per_seed, stats, Measurement, PerSeed};

/// The row of a quantity: on one base its estimate over seeds; on several, over bases, with each
/// base's own value beside it (`base_values`, in the metric's units, in the order of the bases' init
/// seeds), so that a plot can show one dot per base and a reader every base's value.
fn row(
    vars: &[(&str, emsl_analysis::Var)],
    metric: &str,
    (est, over): (stats::Estimate, Option<OverBases>),
) -> Measurement {
    let mut vars = vars.to_vec();
    if let Some(o) = &over {
        vars.push(("base_values", base_values(&o.per_base).into()));
    }
    Measurement::new(&vars, metric, est)
}

/// Values in the metric's own units, space-separated, shortest round-trip form; n/a for a value with
/// nothing behind it.
fn base_values(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| match v.is_nan() {
            true => "n/a".to_owned(),
            false => format!("{v}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A metric's rate over its seeds (and bases).
pub fn rate_row(
    vars: &[(&str, emsl_analysis::Var)],
    metric: &str,
    per_seed: &PerSeed,
) -> Result<Measurement> {
    Ok(row(vars, metric, per_seed::rate(per_seed)?))
}

pub fn diff_row(
    vars: &[(&str, emsl_analysis::Var)],
    metric: &str,
    a: &PerSeed,
    b: &PerSeed,
) -> Result<Measurement> {
    Ok(row(vars, metric, per_seed::difference(a, b)?))
}

/// A quantity that is not a rate (a probe's mean, a direction's accuracy) from its per-seed values
/// grouped by base (one group on one base): a bootstrap over seeds on one base, Student's t over the
/// bases' own means on several. `n_per_seed` is what stands behind one seed's value.
pub fn mean_row(
    vars: &[(&str, emsl_analysis::Var)],
    metric: &str,
    by_base: &[Vec<f64>],
    n_per_seed: u64,
) -> Result<Measurement> {
    Ok(row(
        vars,
        metric,
        match by_base {
            [one] => (stats::mean_over_seeds(one, n_per_seed), None),
            _ => {
                let o = emsl_analysis::over_bases::mean_over_bases(by_base, n_per_seed)?;
                (o.est, Some(o))
            }
        },
    ))
}

/// Values in percentage points, space-separated; a value with no answers behind it shows n/a, as the
/// claims table does.
fn points(values: impl Iterator<Item = f64>) -> String {
    values
        .map(|d| match d.is_nan() {
            true => "n/a".to_owned(),
            false => format!("{:+.1}", 100.0 * d),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The row of an effect: its claim, description, anchor, every seed's own value in percentage points
/// (so the spread across seeds stands beside the interval), how many bases it ran on, each base's own
/// value, and the share of the seeds' variance that lies between bases (null on one base).
fn effect_row(
    (claim, effect, anchor): (&str, &str, &str),
    per_seed: impl Iterator<Item = f64>,
    (est, over): (stats::Estimate, Option<OverBases>),
) -> Measurement {
    let (bases, per_base, between) = match &over {
        Some(o) => (
            o.per_base.len(),
            points(o.per_base.iter().copied()),
            o.between_share,
        ),
        None => (1, points(std::iter::once(est.value)), f64::NAN),
    };
    Measurement::new(
        &[
            ("claim", claim.into()),
            ("effect", effect.into()),
            ("anchor", anchor.into()),
            ("per_seed", points(per_seed).into()),
            ("bases", (bases as f64).into()),
            ("per_base", per_base.into()),
            ("between_bases", between.into()),
        ],
        "effect",
        est,
    )
}

/// An effect a claim is judged by: positive means the claim's direction.
pub fn effect(
    claim: &str,
    effect: &str,
    anchor: &str,
    a: &PerSeed,
    b: &PerSeed,
) -> Result<Measurement> {
    Ok(effect_row(
        (claim, effect, anchor),
        a.iter().zip(b.iter()).map(|(x, y)| x.rate() - y.rate()),
        per_seed::difference(a, b)?,
    ))
}

/// An effect that is a difference in differences: did the change from `a0` to `a1` exceed the change
/// from `b0` to `b1`? Positive means the claim's direction.
pub fn effect_of_changes(
    names: (&str, &str, &str),
    (a1, a0): (&PerSeed, &PerSeed),
    (b1, b0): (&PerSeed, &PerSeed),
) -> Result<Measurement> {
    let seeds = a1.len().min(a0.len()).min(b1.len()).min(b0.len());
    Ok(effect_row(
        names,
        (0..seeds).map(|i| (a1[i].rate() - a0[i].rate()) - (b1[i].rate() - b0[i].rate())),
        per_seed::changes((a1, a0), (b1, b0))?,
    ))
}
