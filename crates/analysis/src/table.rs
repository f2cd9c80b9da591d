//! The measurement table every figure writes: one row per measured quantity, the figure's independent
//! variables as leading columns, then `metric`, `value`, `ci_low`, `ci_high`, `n` (samples behind the
//! value) and `seeds`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use emsl_io::arrow::array::{
    Array, ArrayRef, Float64Array, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use emsl_io::arrow::datatypes::{DataType, Field, Schema};

use crate::stats::Estimate;

/// The version of the measurement table's layout; stored in every table's metadata.
pub const SCHEMA_VERSION: &str = "1";

/// The value of one independent variable.
#[derive(Debug, Clone, PartialEq)]
pub enum Var {
    Str(String),
    Num(f64),
}

impl From<&str> for Var {
    fn from(s: &str) -> Var {
        Var::Str(s.to_owned())
    }
}
impl From<String> for Var {
    fn from(s: String) -> Var {
        Var::Str(s)
    }
}
impl From<f64> for Var {
    fn from(x: f64) -> Var {
        Var::Num(x)
    }
}

impl std::fmt::Display for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Var::Str(s) => f.write_str(s),
            Var::Num(x) => write!(f, "{x}"),
        }
    }
}

/// One row: the independent variables, what was measured and the estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub vars: Vec<(String, Var)>,
    pub metric: String,
    pub est: Estimate,
}

impl Measurement {
    pub fn new(vars: &[(&str, Var)], metric: &str, est: Estimate) -> Measurement {
        Measurement {
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            metric: metric.to_owned(),
            est,
        }
    }

    pub fn var(&self, name: &str) -> Option<&Var> {
        self.vars.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The value of a string variable, or "" when absent.
    pub fn str(&self, name: &str) -> &str {
        match self.var(name) {
            Some(Var::Str(s)) => s,
            _ => "",
        }
    }

    pub fn num(&self, name: &str) -> f64 {
        match self.var(name) {
            Some(Var::Num(x)) => *x,
            _ => f64::NAN,
        }
    }
}

/// The measurement columns after the independent variables.
pub const MEASUREMENT_COLUMNS: [&str; 6] = ["metric", "value", "ci_low", "ci_high", "n", "seeds"];

/// A loaded measurement table with its Parquet key-value metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub rows: Vec<Measurement>,
    pub metadata: BTreeMap<String, String>,
}

impl Table {
    /// Rows of one metric whose string variables equal the given values.
    pub fn select(&self, metric: &str, filters: &[(&str, &str)]) -> Vec<&Measurement> {
        self.rows
            .iter()
            .filter(|m| m.metric == metric && filters.iter().all(|(k, v)| m.str(k) == *v))
            .collect()
    }

    /// The one row of a metric matching the filters; an error naming them when there is not exactly one.
    pub fn one(&self, metric: &str, filters: &[(&str, &str)]) -> Result<&Measurement> {
        let found = self.select(metric, filters);
        match found.as_slice() {
            [m] => Ok(m),
            _ => bail!(
                "expected one row of metric '{metric}' with {filters:?}, found {}",
                found.len()
            ),
        }
    }
}

/// Builds the Arrow batch of a table; every row must have the same variables in the same order.
pub fn to_batch(rows: &[Measurement]) -> Result<RecordBatch> {
    let names: Vec<&str> = rows
        .first()
        .map(|r| r.vars.iter().map(|(k, _)| k.as_str()).collect())
        .unwrap_or_default();
    for (i, r) in rows.iter().enumerate() {
        let these: Vec<&str> = r.vars.iter().map(|(k, _)| k.as_str()).collect();
        if these != names {
            bail!("row {i} has variables {these:?}, the first row {names:?}");
        }
    }
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (j, name) in names.iter().enumerate() {
        match rows.first().map(|r| &r.vars[j].1) {
            Some(Var::Num(_)) => {
                // A quantity with nothing to compute it from (the share of variance between bases
                // on one base) is NaN in memory and null in the table, as an estimate is; the column
                // is nullable only when it holds one.
                let vals: Result<Vec<Option<f64>>> = rows
                    .iter()
                    .enumerate()
                    .map(|(i, r)| match &r.vars[j].1 {
                        Var::Num(x) => missing_as_null(*x, name, i),
                        Var::Str(s) => bail!("variable {name}: '{s}' in a numeric column"),
                    })
                    .collect();
                let vals = vals?;
                let nullable = vals.iter().any(Option::is_none);
                fields.push(Field::new(*name, DataType::Float64, nullable));
                arrays.push(Arc::new(Float64Array::from(vals)));
            }
            _ => {
                let vals: Vec<String> = rows.iter().map(|r| r.vars[j].1.to_string()).collect();
                fields.push(Field::new(*name, DataType::Utf8, false));
                arrays.push(Arc::new(StringArray::from(vals)));
            }
        }
    }
    fields.push(Field::new("metric", DataType::Utf8, false));
    arrays.push(Arc::new(StringArray::from(
        rows.iter().map(|r| r.metric.clone()).collect::<Vec<_>>(),
    )));
    type Get = fn(&Estimate) -> f64;
    let f64s: [(&str, Get); 3] = [
        ("value", |e| e.value),
        ("ci_low", |e| e.ci_low),
        ("ci_high", |e| e.ci_high),
    ];
    for (name, get) in f64s {
        let vals: Result<Vec<Option<f64>>> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| missing_as_null(get(&r.est), name, i))
            .collect();
        fields.push(Field::new(name, DataType::Float64, true));
        arrays.push(Arc::new(Float64Array::from(vals?)));
    }
    fields.push(Field::new("n", DataType::UInt64, false));
    arrays.push(Arc::new(UInt64Array::from(
        rows.iter().map(|r| r.est.n).collect::<Vec<_>>(),
    )));
    fields.push(Field::new("seeds", DataType::UInt32, false));
    arrays.push(Arc::new(UInt32Array::from(
        rows.iter().map(|r| r.est.seeds).collect::<Vec<_>>(),
    )));
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

/// An estimate's value as a table cell: NaN, what a rate with no answers behind it (or any quantity
/// with nothing to compute it from) holds in memory, is written as null, so a table never holds a
/// NaN; an infinity is a defect, refused naming the column and row.
fn missing_as_null(x: f64, column: &str, row: usize) -> Result<Option<f64>> {
    if x.is_nan() {
        Ok(None)
    } else if x.is_infinite() {
        bail!("column {column}, row {row}: {x} is not an estimate")
    } else {
        Ok(Some(x))
    }
}

/// Reads rows back from a batch written by [`to_batch`]; a null estimate is NaN in memory.
pub fn from_batch(batch: &RecordBatch) -> Result<Vec<Measurement>> {
    use emsl_io::{column_f64, column_str, column_u32, column_u64};
    let schema = batch.schema();
    let var_names: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .take_while(|n| n != "metric")
        .collect();
    for c in MEASUREMENT_COLUMNS {
        if schema.index_of(c).is_err() {
            bail!("not a measurement table: no column '{c}'");
        }
    }
    let (metric, value) = (column_str(batch, "metric")?, column_f64(batch, "value")?);
    let (lo, hi) = (column_f64(batch, "ci_low")?, column_f64(batch, "ci_high")?);
    let (n, seeds) = (column_u64(batch, "n")?, column_u32(batch, "seeds")?);
    let cell = |c: &Float64Array, i: usize| if c.is_null(i) { f64::NAN } else { c.value(i) };
    let mut rows = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let mut vars = Vec::new();
        for name in &var_names {
            let col = batch.column_by_name(name).expect("column listed in schema");
            let v = if let Some(s) = col.as_any().downcast_ref::<StringArray>() {
                Var::Str(s.value(i).to_owned())
            } else if let Some(x) = col.as_any().downcast_ref::<Float64Array>() {
                Var::Num(cell(x, i))
            } else {
                bail!("variable column '{name}' is neither text nor float");
            };
            vars.push((name.clone(), v));
        }
        rows.push(Measurement {
            vars,
            metric: metric.value(i).to_owned(),
            est: Estimate {
                value: cell(value, i),
                ci_low: cell(lo, i),
                ci_high: cell(hi, i),
                n: n.value(i),
                seeds: seeds.value(i),
            },
        });
    }
    Ok(rows)
}

/// Writes a measurement table atomically and deterministically, with `metadata` both in its footer and
/// in its Arrow schema: pyarrow's `read_table(f).schema.metadata`, DuckDB and polars show the schema's,
/// and a reader of the table should see its provenance without knowing where Parquet keeps it.
pub fn write(path: &Path, rows: &[Measurement], metadata: &BTreeMap<String, String>) -> Result<()> {
    let batch = to_batch(rows).with_context(|| format!("building {}", path.display()))?;
    let schema = batch
        .schema()
        .as_ref()
        .clone()
        .with_metadata(metadata.clone().into_iter().collect());
    let batch = RecordBatch::try_new(Arc::new(schema), batch.columns().to_vec())
        .with_context(|| format!("building {}", path.display()))?;
    emsl_io::write_parquet(path, &batch, metadata)?;
    Ok(())
}

/// Reads a measurement table.
pub fn read(path: &Path) -> Result<Table> {
    let (batch, metadata) = emsl_io::read_parquet(path)?;
    let rows = from_batch(&batch).with_context(|| format!("reading {}", path.display()))?;
    Ok(Table { rows, metadata })
}

/// Loads table `name` of figure `figure` from a results folder (`<results>/<figure>/<name>.parquet`).
pub fn load(results: &Path, figure: &str, name: &str) -> Result<Table> {
    read(&results.join(figure).join(format!("{name}.parquet")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_a_round_trip() {
        let est = Estimate {
            value: 0.25,
            ci_low: 0.1,
            ci_high: 0.4,
            n: 80,
            seeds: 3,
        };
        let rows = vec![
            Measurement::new(
                &[("cell", "health/advice".into()), ("size", 500.0.into())],
                "misaligned",
                est,
            ),
            Measurement::new(
                &[("cell", "sports/critique".into()), ("size", 2000.0.into())],
                "coherent",
                est,
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let meta = BTreeMap::from([("figure".to_owned(), "x".to_owned())]);
        write(&path, &rows, &meta).unwrap();
        let t = read(&path).unwrap();
        assert_eq!(t.rows, rows);
        assert_eq!(t.metadata, meta);
        assert_eq!(t.one("coherent", &[]).unwrap().num("size"), 2000.0);
    }

    #[test]
    fn a_rate_with_no_answers_is_null_and_an_infinity_is_refused() {
        use emsl_io::arrow::array::Array;
        let none = Estimate {
            value: f64::NAN,
            ci_low: f64::NAN,
            ci_high: f64::NAN,
            n: 0,
            seeds: 3,
        };
        let rows = vec![Measurement::new(
            &[("cell", "a".into())],
            "misaligned",
            none,
        )];
        let batch = to_batch(&rows).unwrap();
        for c in ["value", "ci_low", "ci_high"] {
            let col = emsl_io::column_f64(&batch, c).unwrap();
            assert!(col.is_null(0), "{c} holds {}", col.value(0));
        }
        let back = from_batch(&batch).unwrap();
        assert!(back[0].est.value.is_nan() && back[0].est.n == 0);

        let inf = Estimate {
            ci_high: f64::INFINITY,
            ..none
        };
        let rows = vec![Measurement::new(&[("cell", "a".into())], "m", inf)];
        let e = format!("{:#}", to_batch(&rows).unwrap_err());
        assert!(e.contains("ci_high") && e.contains("row 0"), "{e}");
        // A numeric variable with nothing behind it (the share between bases on one base) is null too,
        // and reads back as NaN; an infinite one is refused.
        let rows = vec![
            Measurement::new(&[("share", 0.5.into())], "m", none),
            Measurement::new(&[("share", f64::NAN.into())], "m", none),
        ];
        let batch = to_batch(&rows).unwrap();
        let col = emsl_io::column_f64(&batch, "share").unwrap();
        assert!(!col.is_null(0) && col.is_null(1));
        let back = from_batch(&batch).unwrap();
        assert!(matches!(back[1].vars[0].1, Var::Num(x) if x.is_nan()));
        let rows = vec![Measurement::new(
            &[("size", f64::INFINITY.into())],
            "m",
            none,
        )];
        let e = format!("{:#}", to_batch(&rows).unwrap_err());
        assert!(e.contains("column size") && e.contains("row 0"), "{e}");
    }
}
