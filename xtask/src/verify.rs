//! `cargo xtask verify [--results DIR] [--reference DIR]`: every checksum (datasets, each figure's
//! SHA256SUMS, the lock) and every metric against the reference results (`emsl_repro::verify`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The results folder to check.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Reference results to compare with (default: results/ as committed at git HEAD).
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// The datasets folder to check against its manifest (default: datasets/ of the project).
    #[arg(long)]
    pub datasets: Option<PathBuf>,
    /// Also fail when a figure's tables were made by other code, specs or inputs than this checkout
    /// would use now (each figure's table job against the lock), at this profile.
    #[arg(long, value_name = "PROFILE")]
    pub check_current: Option<String>,
    /// The results folder is frozen from an earlier world (e.g. `results-v1/`): check its checksums and
    /// its lock only, not this checkout's datasets, and compare it with no reference.
    #[arg(long, conflicts_with_all = ["reference", "datasets", "check_current"])]
    pub frozen: bool,
}

/// The committed `results/` at git HEAD, unpacked into a temporary folder.
fn committed_reference(root: &Path) -> Result<(tempfile::TempDir, PathBuf)> {
    let sh = xshell::Shell::new()?;
    sh.change_dir(root);
    let tar = xshell::cmd!(sh, "git archive --format=tar HEAD results")
        .quiet()
        .output()
        .context("reading results/ at git HEAD (pass --reference DIR outside a git checkout)")?;
    let tmp = tempfile::tempdir()?;
    let dest = tmp.path().to_path_buf();
    xshell::cmd!(sh, "tar -x -C {dest}")
        .stdin(&tar.stdout)
        .quiet()
        .run()?;
    Ok((tmp, dest.join("results")))
}

pub fn run(args: &Args) -> Result<()> {
    if args.frozen {
        let report = emsl_repro::verify::verify_frozen(&args.results)?;
        return finish(&report.lines, report.failures.len());
    }
    let root = crate::project_root();
    let datasets = args
        .datasets
        .clone()
        .unwrap_or_else(|| root.join("datasets"));
    let (_tmp, reference) = match &args.reference {
        Some(p) => (None, p.clone()),
        None => {
            let (t, p) = committed_reference(&root)?;
            (Some(t), p)
        }
    };
    let report = emsl_repro::verify::verify(&datasets, &args.results, &reference)?;
    for line in &report.lines {
        println!("{line}");
    }
    let mut failures = report.failures.len();
    if let Some(profile) = &args.check_current {
        let stale = emsl_repro::currency::stale_figures(&root, profile, &args.results)?;
        for s in &stale {
            println!("STALE {s}");
        }
        if stale.is_empty() {
            println!("current: every figure's tables come from this checkout at profile {profile}");
        }
        failures += stale.len();
    }
    finish(&[], failures)
}

fn finish(lines: &[String], failures: usize) -> Result<()> {
    for line in lines {
        println!("{line}");
    }
    if failures > 0 {
        bail!("verify: {failures} failures (listed above)");
    }
    println!("verify: everything matched");
    Ok(())
}
