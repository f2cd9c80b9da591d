//! verify's tolerance and row identity.
use super::*;

fn est(value: f64, ci_low: f64, ci_high: f64) -> Estimate {
    Estimate {
        value,
        ci_low,
        ci_high,
        n: 1,
        seeds: 1,
    }
}

#[test]
fn intervals_must_overlap_and_points_must_agree_closely() {
    // Rates with intervals: overlapping is within tolerance, disjoint is not, however close.
    assert!(within_tolerance(
        &est(0.30, 0.25, 0.35),
        &est(0.34, 0.33, 0.40)
    ));
    assert!(!within_tolerance(
        &est(0.30, 0.29, 0.31),
        &est(0.32, 0.315, 0.33)
    ));
    // One deterministic number (zero-width interval): float noise passes, a real change fails.
    let reference = est(-8.4730, -8.4730, -8.4730);
    assert!(within_tolerance(
        &est(-8.47301, -8.47301, -8.47301),
        &reference
    ));
    assert!(!within_tolerance(&est(-8.40, -8.40, -8.40), &reference));
    assert!(!within_tolerance(
        &est(0.002, 0.002, 0.002),
        &est(0.0, 0.0, 0.0)
    ));
    assert!(within_tolerance(
        &est(f64::NAN, f64::NAN, f64::NAN),
        &est(f64::NAN, f64::NAN, f64::NAN)
    ));
    assert!(!within_tolerance(
        &est(f64::NAN, f64::NAN, f64::NAN),
        &reference
    ));
}

#[test]
fn per_seed_values_are_results_not_the_row_identity() {
    use emsl_analysis::Measurement;
    let row = |effect: &str, seeds: &str| {
        Measurement::new(
            &[("effect", effect.into()), ("per_seed", seeds.into())],
            "effect",
            est(0.01, 0.0, 0.02),
        )
    };
    assert_eq!(
        identity(&row("a", "+1.3 -0.1")),
        identity(&row("a", "+1.9 -0.2"))
    );
    assert_ne!(
        identity(&row("a", "+1.3 -0.1")),
        identity(&row("b", "+1.3 -0.1"))
    );
}

#[test]
fn per_base_values_are_results_and_a_missing_share_equals_another() {
    use emsl_analysis::Measurement;
    let row = |per_base: &str, share: f64| {
        Measurement::new(
            &[
                ("effect", "a".into()),
                ("per_base", per_base.into()),
                ("between_bases", share.into()),
            ],
            "effect",
            est(0.01, 0.0, 0.02),
        )
    };
    let (one, other) = (row("+1.0", f64::NAN), row("+1.2", f64::NAN));
    assert_eq!(identity(&one), identity(&other));
    // NaN is not equal to itself, but two missing shares are the same value.
    assert!(same_vars(&one, &row("+1.0", f64::NAN)));
    assert!(!same_vars(&one, &other));
    assert!(!same_vars(&row("+1.0", 0.5), &one));
}
