//! `cargo xtask bench`: training and sampling throughput of the kit against a PyTorch reference of the
//! same model, loss and optimizer (`bench/reference.py`), from the same initial weights and batches,
//! interleaved in one run at each thread count. Torch goes into `target/bench/venv` on first use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};
use serde_json::Value;

#[derive(clap::Args)]
pub struct Args {
    /// Model sizes (the profiles' sizes: smoke, quick, paper).
    #[arg(long, value_delimiter = ',', default_value = "smoke,quick,paper")]
    sizes: Vec<String>,
    /// Thread counts; each side is pinned to that many cores.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// Alternating runs of each side per size and thread count.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Timed training steps per run (after the warm-up).
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Untimed training steps at the start of each run.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
}

/// Steps whose losses must agree between the two sides.
const CHECKED_STEPS: usize = 5;
const LOSS_TOLERANCE: f64 = 1e-4;
const SAMPLE_REPS: usize = 4;

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn floats(v: &Value, key: &str) -> Result<Vec<f64>> {
    v[key]
        .as_array()
        .with_context(|| format!("no '{key}' in {v}"))?
        .iter()
        .map(|x| x.as_f64().context("not a number"))
        .collect()
}

/// Runs one side pinned to `threads` cores and parses the JSON line it prints.
fn run_side(program: &[String], args: &[String], threads: usize) -> Result<Value> {
    let n = threads.to_string();
    let cores = format!("0-{}", threads - 1);
    let out = Command::new("taskset")
        .arg("-c")
        .arg(&cores)
        .args(program)
        .args(args)
        .env("RAYON_NUM_THREADS", &n)
        .env("OMP_NUM_THREADS", &n)
        .env("MKL_NUM_THREADS", &n)
        .output()
        .with_context(|| format!("running {program:?}"))?;
    if !out.status.success() {
        bail!(
            "{program:?} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout)?;
    let line = text.lines().last().context("no output")?;
    serde_json::from_str(line).with_context(|| format!("parsing {line}"))
}

/// The virtual environment's Python, with torch installed on first use.
fn python(root: &Path) -> Result<PathBuf> {
    let venv = root.join("target/bench/venv");
    let py = venv.join("bin/python");
    let has_torch = py.exists()
        && Command::new(&py)
            .args(["-c", "import torch"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !has_torch {
        eprintln!(
            "bench: installing torch into {} (first use)",
            venv.display()
        );
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()?
            .success()
            && Command::new(&py)
                .args(["-m", "pip", "install", "--progress-bar", "off", "-r"])
                .arg(root.join("bench/requirements.txt"))
                .status()?
                .success();
        if !ok {
            bail!("could not install torch into {}", venv.display());
        }
    }
    Ok(py)
}

/// One row of the table: one size, thread count and kind (train or sample).
struct Row {
    size: String,
    threads: usize,
    kind: &'static str,
    kit: Vec<f64>,
    torch: Vec<f64>,
    kit_mib: f64,
    torch_mib: f64,
    /// Train: largest loss difference over the checked steps. Sample: share of equal greedy tokens.
    agreement: f64,
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

pub fn run(args: &Args) -> Result<()> {
    let root = crate::project_root();
    let status = Command::new("cargo")
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "-p",
            "emsl-core",
            "--bin",
            "emsl-bench",
        ])
        .status()?;
    if !status.success() {
        bail!("building emsl-bench failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or(root.join("target"), PathBuf::from);
    let kit = vec![target.join("release/emsl-bench").display().to_string()];
    let torch = vec![
        python(&root)?.display().to_string(),
        root.join("bench/reference.py").display().to_string(),
    ];
    let dir = root.join("target/bench/data");
    let dir_s = dir.display().to_string();
    let mut rows = Vec::new();
    for size in &args.sizes {
        run_side(
            &kit,
            &[
                "prepare".into(),
                "--size".into(),
                size.clone(),
                "--dir".into(),
                dir_s.clone(),
            ],
            1,
        )?;
        for &threads in &args.threads {
            let steps = args.warmup + args.steps;
            let train_args = |mode: &str| -> Vec<String> {
                let mut a = vec![
                    mode.to_owned(),
                    "--size".into(),
                    size.clone(),
                    "--dir".into(),
                    dir_s.clone(),
                ];
                if mode == "train" {
                    a.extend(["--steps".into(), steps.to_string()]);
                } else {
                    a.extend(["--reps".into(), SAMPLE_REPS.to_string()]);
                }
                a
            };
            let mut train = Row {
                size: size.clone(),
                threads,
                kind: "train",
                kit: vec![],
                torch: vec![],
                kit_mib: 0.0,
                torch_mib: 0.0,
                agreement: 0.0,
            };
            let mut sample = Row {
                kind: "sample",
                agreement: 1.0,
                ..train.clone_empty()
            };
            for round in 0..args.rounds {
                // Alternate which side goes first, so a drift in the machine's load hits both.
                let order: [(&[String], bool); 2] = if round % 2 == 0 {
                    [(&kit, true), (&torch, false)]
                } else {
                    [(&torch, false), (&kit, true)]
                };
                let mut losses: BTreeMap<bool, Vec<f64>> = BTreeMap::new();
                let mut firsts: BTreeMap<bool, Value> = BTreeMap::new();
                for (program, is_kit) in order {
                    let t = run_side(program, &train_args("train"), threads)?;
                    let step_s = floats(&t, "step_s")?;
                    let tokens = t["tokens_per_step"].as_f64().context("tokens_per_step")?;
                    let tps = tokens / median(&step_s[args.warmup.min(step_s.len() - 1)..]);
                    losses.insert(is_kit, floats(&t, "losses")?);
                    let s = run_side(program, &train_args("sample"), threads)?;
                    let secs = floats(&s, "secs")?;
                    let stps = s["tokens_per_rep"].as_f64().context("tokens_per_rep")?
                        / median(&secs[1..]);
                    firsts.insert(is_kit, s["first_row"].clone());
                    let (tm, sm) = (
                        t["peak_mib"].as_f64().unwrap_or(f64::NAN),
                        s["peak_mib"].as_f64().unwrap_or(f64::NAN),
                    );
                    if is_kit {
                        train.kit.push(tps);
                        sample.kit.push(stps);
                        train.kit_mib = train.kit_mib.max(tm);
                        sample.kit_mib = sample.kit_mib.max(sm);
                    } else {
                        train.torch.push(tps);
                        sample.torch.push(stps);
                        train.torch_mib = train.torch_mib.max(tm);
                        sample.torch_mib = sample.torch_mib.max(sm);
                    }
                }
                let diff = losses[&true]
                    .iter()
                    .zip(&losses[&false])
                    .take(CHECKED_STEPS)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                train.agreement = train.agreement.max(diff);
                if round == 0 {
                    let fmt = |v: &[f64]| {
                        v.iter()
                            .take(CHECKED_STEPS)
                            .map(|x| format!("{x:.6}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    };
                    eprintln!(
                        "{size} {threads}t first losses kit   {}",
                        fmt(&losses[&true])
                    );
                    eprintln!(
                        "{size} {threads}t first losses torch {}",
                        fmt(&losses[&false])
                    );
                }
                let (a, b) = (
                    firsts[&true].as_array().cloned().unwrap_or_default(),
                    firsts[&false].as_array().cloned().unwrap_or_default(),
                );
                let same = a
                    .iter()
                    .zip(&b)
                    .filter(|(x, y)| x.as_u64() == y.as_u64())
                    .count();
                sample.agreement = sample.agreement.min(same as f64 / a.len().max(1) as f64);
                eprintln!(
                    "{size} {threads}t round {round}: train kit {:.0} torch {:.0} tok/s; sample kit {:.0} torch {:.0} tok/s",
                    train.kit[round], train.torch[round], sample.kit[round], sample.torch[round]
                );
            }
            if train.agreement > LOSS_TOLERANCE {
                bail!(
                    "{size}: the kit's and PyTorch's first {CHECKED_STEPS} losses differ by {:.2e} (> {LOSS_TOLERANCE:e}): the comparison would not be of the same computation",
                    train.agreement
                );
            }
            rows.push(train);
            rows.push(sample);
        }
    }
    report(&rows, &target.join("bench/bench.parquet"))
}

impl Row {
    fn clone_empty(&self) -> Row {
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

fn report(rows: &[Row], path: &Path) -> Result<()> {
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
