//! `cargo xtask job CONFIG`: runs one stage from its config (`[spec]` and `[io]`): the job binary the
//! reproduce graph's runner starts for each compute job (the unit a cluster scheduler would run), and
//! the way to run a stage by hand (`configs/demo/`).

use std::path::PathBuf;

use anyhow::{bail, Result};
use candle_core::Device;
use emsl_core::stages;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A stage config (`[spec]` with its `kind`, and `[io]`).
    pub config: PathBuf,
}

/// Ties this process's life to the process that started it (`reproduce`, or a shell): when that one is
/// killed (even with SIGKILL), the kernel kills this job too, so no orphan keeps writing into the job
/// store.
fn die_with_parent() -> Result<()> {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag of the calling process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    if std::os::unix::process::parent_id() == 1 {
        bail!("the process that started this job has already exited");
    }
    Ok(())
}

/// The job binary the local runner starts: this one. /proc/self/exe still reaches it after a rebuild
/// replaced its file (the path would not).
pub fn binary() -> Result<PathBuf> {
    Ok(match std::path::Path::new("/proc/self/exe") {
        p if p.exists() => p.to_path_buf(),
        _ => std::env::current_exe()?,
    })
}

pub fn run(args: &Args) -> Result<()> {
    die_with_parent()?;
    let cfg = stages::read_config(&args.config)?;
    // The one place a job chooses its device: the kit's kernels run on the CPU.
    stages::run(&cfg, &Device::Cpu)?;
    // Into the log, never an output: a cluster executor sizes the job's memory request from it.
    if let Some(mib) = peak_resident_mib() {
        eprintln!("{} {mib} MiB", emsl_repro::timings::PEAK_MEMORY_PREFIX);
    }
    Ok(())
}

/// This process's peak resident set (`VmHWM` of /proc/self/status), in MiB, where Linux gives it.
fn peak_resident_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.div_ceil(1024))
}
