//! `cargo xtask own-model CONFIG...`: stages of your own model (`emsl-hf job` configs: fine-tune,
//! judge, the EM protocol, distillation) as cached jobs of the kit's graph (`emsl_repro::own`). A
//! config runs again only when what it computes changed: a setting, a byte of a model folder, data or
//! questions file, or crates/hf's code; its results are linked as `<out>/<config stem>/`. emsl-hf runs
//! as a child process and is not linked into xtask (see `hf.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use emsl_repro::exec::slurm::Mode;
use emsl_repro::exec::{self, LocalRunner, Settings};
use emsl_repro::graph::JobBinary;
use emsl_repro::{lock, own};

use crate::reproduce::Executor;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// emsl-hf job configs (configs/own-model/ has one of each kind); relative paths inside them start
    /// at the working directory.
    #[arg(required = true)]
    pub configs: Vec<PathBuf>,
    /// The results folder: job folders and their lock, and a link per config to its job's outputs.
    #[arg(long, default_value = "results-own")]
    pub out: PathBuf,
    /// Jobs run at once (default: one per core, each with one thread).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// The emsl-hf binary to run (default: `cargo build --release -p emsl-hf`'s).
    #[arg(long)]
    pub hf_binary: Option<PathBuf>,
    /// Run nothing: name each config whose results are not current (it would run), and fail if any.
    #[arg(long)]
    pub check: bool,
    /// After the run, forget the own-model jobs of the folder that no results link points at (earlier
    /// versions of a config): their folders, logs and lock entries.
    #[arg(long, conflicts_with = "check")]
    pub prune: bool,
    /// Where the jobs run: local child processes, or Slurm batch jobs (`sbatch`; nothing is recorded
    /// to size a first request from, so give --default-mem and --default-time for a real checkpoint).
    #[arg(long, value_enum, default_value_t = Executor::Local)]
    pub executor: Executor,
    #[command(flatten)]
    pub slurm: crate::reproduce_slurm::SlurmArgs,
}

pub fn run(args: &Args) -> Result<()> {
    let root = crate::project_root();
    let cwd = std::env::current_dir()?;
    let out = std::path::absolute(&args.out)?;
    let hf = match &args.hf_binary {
        Some(p) => std::path::absolute(p)?,
        None => build_hf(&root)?,
    };
    let configs: Vec<PathBuf> = args
        .configs
        .iter()
        .map(std::path::absolute)
        .collect::<std::io::Result<_>>()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = args.jobs.unwrap_or(cores).max(1);
    let slurm = match args.executor {
        Executor::Slurm => Some(args.slurm.options()?),
        Executor::Local => {
            args.slurm.refuse_without_slurm()?;
            None
        }
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let _held = match &slurm {
        Some((Mode::DryRun, _)) => None,
        _ => Some(lock::FolderLock::acquire(&out)?),
    };
    let started = std::time::Instant::now();
    let plan = own::plan_configs(&root, &out, &hf, &cwd, &configs)?;
    if args.check {
        let stale = own::not_current(&out, &plan)?;
        if !stale.is_empty() {
            bail!("not current in {}: {}", out.display(), stale.join(", "));
        }
        eprintln!(
            "own-model: every config's results are current in {}",
            out.display()
        );
        return Ok(());
    }
    let settings = Settings {
        root,
        out: out.clone(),
        jobs,
        threads: (cores / jobs).max(1),
        profile: "own-model".to_owned(),
    };
    if let Some((mode, opts)) = slurm {
        let settings = Settings {
            jobs: 1,
            threads: args.slurm.threads,
            ..settings
        };
        let binaries = BTreeMap::from([(JobBinary::OwnModel, hf)]);
        let o = exec::slurm::run(&settings, &plan.graph, &binaries, &opts)?;
        if o.complete {
            own::link_results(&out, &plan.results)?;
        }
        return crate::reproduce_slurm::report("own-model", &o, mode, &out);
    }
    let runner = LocalRunner::new().with(JobBinary::OwnModel, hf, vec!["job".to_owned()]);
    let report = exec::run(&settings, &plan.graph, &runner)?;
    own::link_results(&out, &plan.results)?;
    if args.prune {
        for key in own::prune_unlinked(&out)? {
            eprintln!("own-model: forgot {key}, which no link points at");
        }
    }
    for (name, key) in &plan.results {
        eprintln!("{name}: {} (job {key})", out.join(name).display());
    }
    eprintln!(
        "own-model: {} jobs ran, {} were up to date, in {:.1} s",
        report.ran.len(),
        report.up_to_date,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Builds emsl-hf in release mode and returns its path (from cargo's own report of it).
fn build_hf(root: &Path) -> Result<PathBuf> {
    let output = Command::new("cargo")
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "emsl-hf",
            "--bin",
            "emsl-hf",
        ])
        .args(["--message-format", "json-render-diagnostics"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo to build emsl-hf")?;
    if !output.status.success() {
        bail!("building emsl-hf failed (cargo's errors are above)");
    }
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let Some(exe) = msg.get("executable").and_then(|e| e.as_str()) {
            if msg["target"]["name"] == "emsl-hf" {
                return Ok(PathBuf::from(exe));
            }
        }
    }
    bail!("cargo built emsl-hf but did not say where its binary is")
}
