//! The table of `cargo xtask bench`: each row's medians and ratios, printed as Markdown and written as
//! Parquet with the machine in its metadata.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use emsl_io::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt32Array};
use emsl_io::arrow::datatypes::{DataType, Field, Schema};

use super::median;

/// One row of the table: one size, thread count and kind (train or sample).
pub struct Row {
    pub size: String,
    pub threads: usize,
    pub kind: &'static str,
    pub kit: Vec<f64>,
    pub torch: Vec<f64>,
    pub kit_mib: f64,
    pub torch_mib: f64,
    /// Train: largest loss difference over the checked steps. Sample: share of equal greedy tokens.
    pub agreement: f64,
}

impl Row {
    fn ratios(&self) -> Vec<f64> {
        self.kit
            .iter()
            .zip(&self.torch)
            .map(|(k, t)| k / t)
            .collect()
    }
}

impl Row {
    pub fn clone_empty(&self) -> Row {
        Row {
            size: self.size.clone(),
            threads: self.threads,
            kind: self.kind,
            kit: vec![],
            torch: vec![],
            kit_mib: 0.0,
            torch_mib: 0.0,
            agreement: 0.0,
        }
    }
}

/// The CPU model and core count, for the record.
fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let flags = info.lines().find(|l| l.starts_with("flags")).unwrap_or("");
    let simd: Vec<&str> = ["avx2", "fma", "avx512f"]
        .into_iter()
        .filter(|f| flags.split_whitespace().any(|x| x == *f))
        .collect();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores, {}", simd.join("/"))
}

pub fn report(rows: &[Row], path: &Path) -> Result<()> {
    let machine = machine();
    println!("\nmachine: {machine}");
    println!(
        "\n| size | threads | what | kit tok/s | torch tok/s | ratio kit/torch median [min, max] | peak MiB kit / torch | agreement |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut cols: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for r in rows {
        let ratios = r.ratios();
        let (lo, hi) = (
            ratios.iter().cloned().fold(f64::INFINITY, f64::min),
            ratios.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        );
        let agreement = if r.kind == "train" {
            format!("max loss diff {:.1e}", r.agreement)
        } else {
            format!("greedy tokens equal {:.0}%", 100.0 * r.agreement)
        };
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.2} [{:.2}, {:.2}] | {:.0} / {:.0} | {agreement} |",
            r.size,
            r.threads,
            r.kind,
            median(&r.kit),
            median(&r.torch),
            median(&ratios),
            lo,
            hi,
            r.kit_mib,
            r.torch_mib
        );
        for (k, v) in [
            ("kit_tokens_per_s", median(&r.kit)),
            ("torch_tokens_per_s", median(&r.torch)),
            ("ratio_median", median(&ratios)),
            ("ratio_min", lo),
            ("ratio_max", hi),
            ("kit_peak_mib", r.kit_mib),
            ("torch_peak_mib", r.torch_mib),
            ("agreement", r.agreement),
        ] {
            cols.entry(k).or_default().push(v);
        }
    }
    let mut fields = vec![
        Field::new("size", DataType::Utf8, false),
        Field::new("threads", DataType::UInt32, false),
        Field::new("kind", DataType::Utf8, false),
    ];
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.size.clone()).collect::<Vec<_>>(),
        )),
        Arc::new(UInt32Array::from(
            rows.iter().map(|r| r.threads as u32).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.kind).collect::<Vec<_>>(),
        )),
    ];
    for (k, v) in cols {
        fields.push(Field::new(k, DataType::Float64, false));
        arrays.push(Arc::new(Float64Array::from(v)));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?;
    let mut meta = BTreeMap::new();
    meta.insert("machine".to_owned(), machine);
    meta.insert(
        "note".to_owned(),
        "agreement: train = max |loss diff| over the first steps; sample = share of equal greedy tokens".to_owned(),
    );
    emsl_io::write_parquet(path, &batch, &meta)?;
    println!("\nwrote {}", path.display());
    let slowest = rows
        .iter()
        .filter(|r| r.kind == "train")
        .map(|r| median(&r.ratios()))
        .fold(f64::INFINITY, f64::min);
    println!("slowest ratio kit/pytorch: {slowest:.2}");
    Ok(())
}
