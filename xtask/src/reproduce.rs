//! `cargo xtask reproduce`: every figure of `figures/` (or the named ones) at a profile, as a cached
//! job graph into a results folder (`emsl_repro::plan`).

use std::path::PathBuf;

use anyhow::Result;
use emsl_repro::exec::{LocalRunner, Settings};
use emsl_repro::graph::JobBinary;
use emsl_repro::{lock, plan, timings};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// smoke (minutes, what CI runs), quick (about an hour on 2 cores) or paper (hours).
    #[arg(long, default_value = "quick")]
    pub profile: String,
    /// Only these figures (and the jobs they need); repeatable. Default: every figure.
    #[arg(long = "figure")]
    pub figures: Vec<String>,
    /// Jobs run at once (default: one per core, each with one thread).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// The results folder.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// The folder of figure files (default: figures/ of the project).
    #[arg(long)]
    pub figures_dir: Option<PathBuf>,
    /// Run nothing: print, per figure, the compute time of its jobs in the last runs (from the job
    /// logs) and its wall time alone replayed on --jobs workers.
    #[arg(long)]
    pub timings: bool,
    /// Where compute jobs run: local child processes, or Slurm batch jobs (`sbatch`).
    #[arg(long, value_enum, default_value_t = Executor::Local)]
    pub executor: Executor,
    #[command(flatten)]
    pub slurm: crate::reproduce_slurm::SlurmArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Executor {
    Local,
    Slurm,
}

pub fn run(args: &Args) -> Result<()> {
    let root = crate::project_root();
    let out = std::path::absolute(&args.out)?;
    let figures_dir = args
        .figures_dir
        .clone()
        .unwrap_or_else(|| root.join("figures"));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = args.jobs.unwrap_or(cores).max(1);
    if args.timings {
        let plan = plan::plan(&root, &figures_dir, &args.profile, &args.figures, &out)?;
        print!(
            "{}",
            timings::report(&plan.graph, &plan.figure_jobs, &out, jobs)
        );
        return Ok(());
    }
    if args.executor == Executor::Slurm {
        return crate::reproduce_slurm::run(args, &root, &figures_dir, &out);
    }
    args.slurm.refuse_without_slurm()?;
    let _held = lock::FolderLock::acquire(&out)?;
    let started = std::time::Instant::now();
    let plan = plan::plan_after_datasets(&root, &figures_dir, &args.profile, &args.figures, &out)?;
    let settings = Settings {
        root,
        out: out.clone(),
        jobs,
        threads: (cores / jobs).max(1),
        profile: args.profile.clone(),
    };
    let runner = LocalRunner::new().with(
        JobBinary::Kit,
        crate::job::binary()?,
        vec!["job".to_owned()],
    );
    let report = plan::run(&settings, &plan, &runner, args.figures.is_empty())?;
    eprintln!(
        "reproduce: {} jobs ran, {} were up to date, in {:.1} s; results in {}",
        report.ran.len(),
        report.up_to_date,
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}
