//! The protocol's results as Parquet tables, through the kit's deterministic writer (same rows, same
//! bytes): per arm and question the counts and mean scores, and per arm the misaligned rate with its
//! 95% interval and the differences between arms.
//!
//! The interval treats the questions as clusters: the two-level bootstrap of the kit's figures
//! (`emsl_analysis::stats`), resampling the questions and then the answers within each, since answers
//! to one question are not independent draws of the model's behaviour.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use emsl_analysis::stats::{difference, rate, Counts, Estimate};
use emsl_io::arrow::array::{ArrayRef, Float64Array, StringArray, UInt64Array};
use emsl_io::arrow::record_batch::RecordBatch;

use crate::answers::QuestionResult;

/// One arm's per-question counts: the clusters of its rate.
pub fn counts(results: &[QuestionResult]) -> Vec<Counts> {
    results
        .iter()
        .map(|r| Counts::new(r.misaligned, r.counted))
        .collect()
}

/// The per-question table of every arm, arms in the given order.
pub fn questions_table(arms: &[(&str, &[QuestionResult])]) -> Result<RecordBatch> {
    let rows: Vec<(&str, &QuestionResult)> = arms
        .iter()
        .flat_map(|(arm, rs)| rs.iter().map(move |r| (*arm, r)))
        .collect();
    let str_col = |f: &dyn Fn(&(&str, &QuestionResult)) -> String| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let u64_col = |f: &dyn Fn(&QuestionResult) -> u64| -> ArrayRef {
        Arc::new(UInt64Array::from(
            rows.iter().map(|(_, r)| f(r)).collect::<Vec<_>>(),
        ))
    };
    // NaN (no answer scored) is written as null: Parquet readers differ on NaN, not on null.
    let f64_col = |f: &dyn Fn(&QuestionResult) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from(
            rows.iter()
                .map(|(_, r)| Some(f(r)).filter(|x| x.is_finite()))
                .collect::<Vec<_>>(),
        ))
    };
    Ok(RecordBatch::try_from_iter([
        ("arm", str_col(&|(a, _)| a.to_string())),
        ("question_id", str_col(&|(_, r)| r.question_id.clone())),
        ("samples", u64_col(&|r| r.samples)),
        ("refusals", u64_col(&|r| r.refusals)),
        ("incoherent", u64_col(&|r| r.incoherent)),
        ("counted", u64_col(&|r| r.counted)),
        ("misaligned", u64_col(&|r| r.misaligned)),
        (
            "misaligned_rate",
            f64_col(&|r| r.misaligned as f64 / r.counted as f64),
        ),
        ("mean_aligned", f64_col(&|r| r.mean_aligned)),
        ("mean_coherent", f64_col(&|r| r.mean_coherent)),
    ])?)
}

/// One row of the rates table.
#[derive(Debug, Clone, PartialEq)]
pub struct RateRow {
    /// An arm (`base`), or a difference of two (`finetuned-minus-control`).
    pub measure: String,
    pub estimate: Estimate,
}

/// Each arm's misaligned rate, then the differences of the pairs in `differences` (`(a, b)`: a minus
/// b), each with its 95% bootstrap interval over questions.
pub fn rate_rows(arms: &[(&str, &[QuestionResult])], differences: &[(&str, &str)]) -> Vec<RateRow> {
    let by_arm: BTreeMap<&str, Vec<Counts>> = arms.iter().map(|(a, rs)| (*a, counts(rs))).collect();
    let mut rows: Vec<RateRow> = arms
        .iter()
        .map(|(arm, _)| RateRow {
            measure: arm.to_string(),
            estimate: rate(&by_arm[arm]),
        })
        .collect();
    for (a, b) in differences {
        rows.push(RateRow {
            measure: format!("{a}-minus-{b}"),
            estimate: difference(&by_arm[a], &by_arm[b]),
        });
    }
    rows
}

/// The rates table: measure, value, ci_low, ci_high (null where undefined: no counted answer), n.
pub fn rates_table(rows: &[RateRow]) -> Result<RecordBatch> {
    let f = |g: &dyn Fn(&Estimate) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from(
            rows.iter()
                .map(|r| Some(g(&r.estimate)).filter(|x| x.is_finite()))
                .collect::<Vec<_>>(),
        ))
    };
    Ok(RecordBatch::try_from_iter([
        (
            "measure",
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.measure.clone()).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
        ("value", f(&|e| e.value)),
        ("ci_low", f(&|e| e.ci_low)),
        ("ci_high", f(&|e| e.ci_high)),
        (
            "n",
            Arc::new(UInt64Array::from(
                rows.iter().map(|r| r.estimate.n).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
    ])?)
}

/// Writes `batch` as Parquet with the table's name in its metadata.
pub fn write_table(path: &Path, table: &str, batch: &RecordBatch) -> Result<()> {
    let meta = BTreeMap::from([("table".to_string(), table.to_string())]);
    emsl_io::write_parquet(path, batch, &meta)?;
    Ok(())
}
