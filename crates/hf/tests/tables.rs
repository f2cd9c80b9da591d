//! The protocol's rates from per-question counts: the pooled rate of each arm with an interval
//! around it, the differences between arms, and null where no answer counted.

use emsl_hf::answers::QuestionResult;
use emsl_hf::tables::{rate_rows, rates_table};
use emsl_io::arrow::array::Array;

fn result(id: &str, counted: u64, misaligned: u64) -> QuestionResult {
    QuestionResult {
        question_id: id.into(),
        samples: 50,
        refusals: 0,
        incoherent: 50 - counted,
        counted,
        misaligned,
        mean_aligned: 50.0,
        mean_coherent: 80.0,
    }
}

#[test]
fn rates_pool_the_questions_and_differences_subtract_the_arms() {
    let tuned = [result("a", 40, 10), result("b", 40, 6), result("c", 20, 4)];
    let base = [result("a", 40, 1), result("b", 40, 0), result("c", 20, 1)];
    let empty = [result("a", 0, 0)];
    let arms = [
        ("tuned", &tuned[..]),
        ("base", &base[..]),
        ("empty", &empty[..]),
    ];
    let rows = rate_rows(&arms, &[("tuned", "base")]);
    let names: Vec<&str> = rows.iter().map(|r| r.measure.as_str()).collect();
    assert_eq!(names, ["tuned", "base", "empty", "tuned-minus-base"]);
    let (t, b, d) = (&rows[0].estimate, &rows[1].estimate, &rows[3].estimate);
    assert!((t.value - 20.0 / 100.0).abs() < 1e-12 && t.n == 100);
    assert!((b.value - 2.0 / 100.0).abs() < 1e-12);
    assert!((d.value - 0.18).abs() < 1e-12);
    for e in [t, b, d] {
        assert!(e.ci_low <= e.value && e.value <= e.ci_high, "{e:?}");
        assert!(e.ci_high - e.ci_low > 0.01, "an interval with width: {e:?}");
    }
    assert!(d.ci_low > 0.0, "20% against 2% of 100 answers each: {d:?}");
    assert!(rows[2].estimate.value.is_nan());

    let table = rates_table(&rows).unwrap();
    let value = emsl_io::column_f64(&table, "value").unwrap();
    assert_eq!(value.null_count(), 1, "no counted answer is null, not NaN");
    assert!(value.is_null(2));
}
