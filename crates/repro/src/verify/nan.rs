//! verify's check that no table of a results folder holds a NaN.

use std::path::Path;

use anyhow::Result;

use super::{figure_folders, Report};
use crate::store::files_under;

/// Every float cell of every table of the figure folders: a NaN is a defect (a value with nothing
/// behind it is written as null; the weights of a diverged training are never evaluated). Frozen
/// folders of earlier worlds are not checked: they were written when a missing rate was NaN.
pub(super) fn check_no_nan(dir: &Path, r: &mut Report) -> Result<()> {
    use emsl_io::arrow::array::{Array, Float64Array};
    for fig in figure_folders(dir)? {
        for f in files_under(&dir.join(&fig), &dir.join(&fig))? {
            if !f.ends_with(".parquet") {
                continue;
            }
            let (batch, _) = emsl_io::read_parquet(&dir.join(&fig).join(&f))?;
            for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
                let Some(xs) = col.as_any().downcast_ref::<Float64Array>() else {
                    continue;
                };
                let nan = (0..xs.len()).find(|&i| !xs.is_null(i) && xs.value(i).is_nan());
                if let Some(row) = nan {
                    r.fail(format!(
                        "{fig}/{f}: column {} holds NaN (first at row {row}); a missing value \
                         is written as null, so a NaN is a defect",
                        field.name()
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nan_in_a_table_fails_and_a_null_does_not() {
        use emsl_analysis::table::{write, Measurement};
        let tmp = tempfile::tempdir().unwrap();
        let fig = tmp.path().join("controls");
        let none = emsl_analysis::stats::Estimate {
            value: f64::NAN,
            ci_low: f64::NAN,
            ci_high: f64::NAN,
            n: 0,
            seeds: 1,
        };
        let rows = vec![Measurement::new(&[("cell", "a".into())], "m", none)];
        write(&fig.join("effects.parquet"), &rows, &Default::default()).unwrap();
        let mut r = Report::default();
        check_no_nan(tmp.path(), &mut r).unwrap();
        assert!(r.failures.is_empty(), "{:?}", r.failures);

        // A table written with a NaN cell, as tables were before missing values became null.
        use emsl_io::arrow::array::{Float64Array, RecordBatch};
        use emsl_io::arrow::datatypes::{DataType, Field, Schema};
        let schema = Schema::new(vec![Field::new("value", DataType::Float64, false)]);
        let col = Float64Array::from(vec![0.5, f64::NAN]);
        let batch =
            RecordBatch::try_new(std::sync::Arc::new(schema), vec![std::sync::Arc::new(col)])
                .unwrap();
        emsl_io::write_parquet(&fig.join("old.parquet"), &batch, &Default::default()).unwrap();
        check_no_nan(tmp.path(), &mut r).unwrap();
        assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
        assert!(
            r.failures[0].contains("controls/old.parquet") && r.failures[0].contains("row 1"),
            "{:?}",
            r.failures
        );
    }
}
