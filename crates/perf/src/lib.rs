//! What `cargo xtask bench` measures: training and sampling throughput of the kit against a PyTorch reference of the
//! same model, loss and optimizer, from the same initial weights and batches, interleaved in one run at
//! each thread count. Two suites:
//! - `gpt` (the default): the kit's GPT at the profiles' sizes against `bench/reference.py`;
//! - `hf`: LoRA on a Qwen2 model of Qwen2.5-0.5B's shapes (`emsl-hf-bench`, crates/hf) against
//!   transformers + PEFT (`bench/hf_reference.py`), both from the adapter the kit writes at
//!   initialisation.
//!
//! PyTorch (and for `hf` transformers and PEFT) goes into `target/bench/venv` on first use.

mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use report::{report, Row};

/// Which models a bench runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// The kit's GPT at the profiles' sizes against `bench/reference.py`.
    Gpt,
    /// LoRA on a Qwen2 model of Qwen2.5-0.5B's shapes against transformers + PEFT.
    Hf,
}

/// What to run; a `None` takes the suite's default.
#[derive(Debug, Clone)]
pub struct Args {
    pub suite: Suite,
    /// Model sizes (gpt: the profiles' sizes smoke, quick, paper; hf: qwen2.5-0.5b).
    pub sizes: Option<Vec<String>>,
    /// Thread counts; each side is pinned to that many cores.
    pub threads: Vec<usize>,
    /// Alternating runs of each side per size and thread count (gpt 3, hf 2).
    pub rounds: Option<usize>,
    /// Timed training steps per run, after the warm-up (gpt 20, hf 3).
    pub steps: Option<usize>,
    /// Untimed training steps at the start of each run (gpt 5, hf 1).
    pub warmup: Option<usize>,
}

/// What a suite runs: its two sides and their defaults.
struct Plan {
    /// `cargo build` arguments of the kit's side, and its binary's name.
    build: &'static [&'static str],
    binary: &'static str,
    script: &'static str,
    requirements: &'static str,
    /// Python modules whose absence means the requirements are not installed yet.
    imports: &'static str,
    sizes: &'static [&'static str],
    rounds: usize,
    steps: usize,
    warmup: usize,
    table: &'static str,
}

impl Suite {
    fn plan(self) -> Plan {
        match self {
            Suite::Gpt => Plan {
                build: &["-p", "emsl-core"],
                binary: "emsl-bench",
                script: "bench/reference.py",
                requirements: "bench/requirements.txt",
                imports: "import torch",
                sizes: &["smoke", "quick", "paper"],
                rounds: 3,
                steps: 20,
                warmup: 5,
                table: "bench/bench.parquet",
            },
            Suite::Hf => Plan {
                build: &["-p", "emsl-hf"],
                binary: "emsl-hf-bench",
                script: "bench/hf_reference.py",
                requirements: "bench/requirements-hf.txt",
                imports: "import torch, transformers, peft",
                sizes: &["qwen2.5-0.5b"],
                rounds: 2,
                steps: 3,
                warmup: 1,
                table: "bench/bench-hf.parquet",
            },
        }
    }
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

/// The virtual environment's Python, with `plan.requirements` installed on first use.
fn python(root: &Path, plan: &Plan) -> Result<PathBuf> {
    let venv = root.join("target/bench/venv");
    let py = venv.join("bin/python");
    let installed = py.exists()
        && Command::new(&py)
            .args(["-c", plan.imports])
            .output()
            .is_ok_and(|o| o.status.success());
    if !installed {
        eprintln!(
            "bench: installing {} into {} (first use)",
            plan.requirements,
            venv.display()
        );
        let ok = (py.exists()
            || Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()?
                .success())
            && Command::new(&py)
                .args(["-m", "pip", "install", "--progress-bar", "off", "-r"])
                .arg(root.join(plan.requirements))
                .status()?
                .success();
        if !ok {
            bail!(
                "could not install {} into {}",
                plan.requirements,
                venv.display()
            );
        }
    }
    Ok(py)
}

/// Builds the kit's side, installs the reference's on first use, runs both at every size and thread
/// count of `args`, prints the table and writes it under the target folder. `root` is the workspace.
pub fn run(root: &Path, args: &Args) -> Result<()> {
    let plan = args.suite.plan();
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or(root.join("target"), PathBuf::from);
    let status = Command::new("cargo")
        .current_dir(root)
        .args(["build", "--release"])
        .args(plan.build)
        .args(["--bin", plan.binary, "--target-dir"])
        .arg(&target)
        .status()?;
    if !status.success() {
        bail!("building {} failed", plan.binary);
    }
    let kit = vec![target
        .join("release")
        .join(plan.binary)
        .display()
        .to_string()];
    let torch = vec![
        python(root, &plan)?.display().to_string(),
        root.join(plan.script).display().to_string(),
    ];
    let sizes = args
        .sizes
        .clone()
        .unwrap_or_else(|| plan.sizes.iter().map(|s| (*s).to_owned()).collect());
    let (rounds, steps, warmup) = (
        args.rounds.unwrap_or(plan.rounds),
        args.steps.unwrap_or(plan.steps),
        args.warmup.unwrap_or(plan.warmup),
    );
    let dir = root.join("target/bench/data");
    let dir_s = dir.display().to_string();
    let mut rows = Vec::new();
    for size in &sizes {
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
            let total_steps = warmup + steps;
            let train_args = |mode: &str| -> Vec<String> {
                let mut a = vec![
                    mode.to_owned(),
                    "--size".into(),
                    size.clone(),
                    "--dir".into(),
                    dir_s.clone(),
                ];
                if mode == "train" {
                    a.extend(["--steps".into(), total_steps.to_string()]);
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
            for round in 0..rounds {
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
                    let tps = tokens / median(&step_s[warmup.min(step_s.len() - 1)..]);
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
    report(&rows, &target.join(plan.table))
}
