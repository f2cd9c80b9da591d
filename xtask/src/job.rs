//! `cargo xtask job KIND CONFIG`: runs one compute job of the reproduce graph in its own process (the
//! unit a cluster scheduler would run). The config is the stage's TOML with its folders filled in.

use std::path::PathBuf;

use anyhow::{bail, Result};
use candle_core::Device;
use emsl_core::stages;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// pretrain, finetune, teach, distil or eval.
    pub kind: String,
    pub config: PathBuf,
}

/// Ties this process's life to the `reproduce` that started it: when that one is killed (even with
/// SIGKILL), the kernel kills this job too, so no orphan keeps writing into the job store.
fn die_with_parent() -> Result<()> {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag of the calling process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    if std::os::unix::process::parent_id() == 1 {
        bail!("the reproduce process that started this job has already exited");
    }
    Ok(())
}

pub fn run(args: &Args) -> Result<()> {
    die_with_parent()?;
    let cfg = stages::read_config(&args.config)?;
    if cfg.spec.kind() != args.kind {
        bail!(
            "job kind '{}' but {} is a {} config",
            args.kind,
            args.config.display(),
            cfg.spec.kind()
        );
    }
    // The one place a job chooses its device: the kit's kernels run on the CPU.
    stages::run(&cfg, &Device::Cpu)
}
