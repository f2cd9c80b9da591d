//! `cargo xtask reproduce --executor slurm` (and `own-model --executor slurm`): the job graph as Slurm
//! batch jobs (`emsl_repro::exec::slurm`). Without `--wait` it submits and returns, and a later call
//! collects what finished.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};
use emsl_repro::exec::slurm::{batch::Sizing, commands, Mode, Options, Outcome};
use emsl_repro::exec::Settings;
use emsl_repro::graph::JobBinary;
use emsl_repro::{lock, plan};

#[derive(clap::Args, Debug)]
pub struct SlurmArgs {
    /// Slurm: follow the run until every job finished, collecting as they do; stop at a failure.
    #[arg(long, conflicts_with_all = ["status", "dry_run"])]
    pub wait: bool,
    /// Slurm: collect what finished and report the rest; submit nothing.
    #[arg(long, conflicts_with = "dry_run")]
    pub status: bool,
    /// Slurm: print what would be submitted, with each job's request; ask Slurm nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Slurm: the partition to submit to (default: the cluster's).
    #[arg(long)]
    pub partition: Option<String>,
    /// Slurm: the account to charge.
    #[arg(long)]
    pub account: Option<String>,
    /// Slurm: a job's time limit is this times its recorded (or cost-scaled) wall time.
    #[arg(long, default_value_t = 3.0)]
    pub time_factor: f64,
    /// Slurm: the smallest time limit, in minutes.
    #[arg(long, default_value_t = 5)]
    pub min_time: u64,
    /// Slurm: the time limit (minutes) of a job with no recorded cost to size it from.
    #[arg(long, default_value_t = 120)]
    pub default_time: u64,
    /// Slurm: the memory (MiB) of a job with no recorded peak (a recorded peak asks for twice it).
    #[arg(long, default_value_t = 4096)]
    pub default_mem: u64,
    /// Slurm: threads (and cores) per job; results are bit-exact only at the same count as the
    /// reference (1, what the local executor uses on 2 cores).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Slurm: seconds between two looks at the queue with --wait.
    #[arg(long, default_value_t = 2.0)]
    pub poll: f64,
    /// Slurm: seconds a failing squeue or scancel (a controller restarting) is tried again, waiting
    /// longer after each try, before the call gives up.
    #[arg(long, default_value_t = commands::RETRY_FOR.as_secs_f64())]
    pub slurm_retry: f64,
}

impl SlurmArgs {
    /// The Slurm options mean nothing to the local executor: say so rather than ignore them.
    pub fn refuse_without_slurm(&self) -> Result<()> {
        if self.wait
            || self.status
            || self.dry_run
            || self.partition.is_some()
            || self.account.is_some()
        {
            bail!("--wait, --status, --dry-run, --partition and --account need --executor slurm");
        }
        Ok(())
    }

    /// The executor's mode and options from the arguments (checked).
    pub fn options(&self) -> Result<(Mode, Options)> {
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(self.time_factor) || self.threads == 0 || !positive(self.poll) {
            bail!("--time-factor and --poll must be above 0 and --threads at least 1");
        }
        if !(self.slurm_retry.is_finite() && self.slurm_retry >= 0.0) {
            bail!("--slurm-retry must be a number of seconds, 0 or more");
        }
        let mode = match (self.wait, self.status, self.dry_run) {
            (true, _, _) => Mode::Wait,
            (_, true, _) => Mode::Status,
            (_, _, true) => Mode::DryRun,
            _ => Mode::Submit,
        };
        let opts = Options {
            mode,
            partition: self.partition.clone(),
            account: self.account.clone(),
            sizing: Sizing {
                time_factor: self.time_factor,
                min_minutes: self.min_time,
                default_minutes: self.default_time,
                default_mem_mib: self.default_mem,
            },
            poll: Duration::from_secs_f64(self.poll),
            commands: commands::Commands {
                retry_for: Duration::from_secs_f64(self.slurm_retry),
                ..commands::Commands::default()
            },
        };
        Ok((mode, opts))
    }
}

pub fn run(
    args: &crate::reproduce::Args,
    root: &Path,
    figures_dir: &Path,
    out: &Path,
) -> Result<()> {
    let a = &args.slurm;
    let (mode, opts) = a.options()?;
    let _held = match mode {
        Mode::DryRun => None,
        _ => Some(lock::FolderLock::acquire(out)?),
    };
    let plan = if mode == Mode::DryRun {
        plan::plan(root, figures_dir, &args.profile, &args.figures, out)?
    } else {
        plan::plan_after_datasets(root, figures_dir, &args.profile, &args.figures, out)?
    };
    let settings = Settings {
        root: root.to_path_buf(),
        out: out.to_path_buf(),
        jobs: 1,
        threads: a.threads,
        profile: args.profile.clone(),
    };
    let binaries = BTreeMap::from([(JobBinary::Kit, crate::job::binary()?)]);
    let o = plan::run_on_slurm(&settings, &plan, &binaries, &opts, args.figures.is_empty())?;
    report("reproduce", &o, mode, out)
}

/// What a Slurm pass of `command` did: failures (an error after `--status`), submissions, what is
/// still queued and, once every job is done, where the results are.
pub fn report(command: &str, o: &Outcome, mode: Mode, out: &Path) -> Result<()> {
    for f in &o.failures {
        eprintln!("{f}");
    }
    if mode == Mode::Status && !o.failures.is_empty() {
        bail!(
            "{} job(s) failed on Slurm (above); `cargo xtask {command} --executor slurm` resubmits them",
            o.failures.len()
        );
    }
    if !o.failures.is_empty() {
        eprintln!(
            "{command}: resubmitted the {} failed job(s) above",
            o.failures.len()
        );
    }
    if let (Some(first), Some(last)) = (o.submitted.first(), o.submitted.last()) {
        eprintln!(
            "{command}: submitted {} job(s) to Slurm (ids {} to {})",
            o.submitted.len(),
            first.1,
            last.1
        );
    }
    if !o.complete && mode != Mode::DryRun {
        eprintln!(
            "{command}: {} job(s) queued or running on Slurm; `cargo xtask {command} --executor slurm \
             --status` collects what finished, `--wait` follows them to the end",
            o.in_flight
        );
    }
    if o.complete {
        eprintln!(
            "{command}: every job is done ({} recorded now, {} were up to date); results in {}",
            o.ran.len(),
            o.up_to_date,
            out.display()
        );
    }
    Ok(())
}
