//! `cargo xtask job KIND CONFIG`: runs one compute job of the reproduce graph in its own process (the
//! unit a cluster scheduler would run). The config is the stage's TOML with its folders filled in.

use std::path::PathBuf;

use anyhow::{bail, Result};
use emsl_core::{distil, stages};

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
    let c = &args.config;
    match args.kind.as_str() {
        "pretrain" => stages::pretrain(&stages::read_config(c)?),
        "finetune" => stages::finetune(&stages::read_config(c)?),
        "eval" => stages::eval(&stages::read_config(c)?),
        "teach" => distil::teach(&stages::read_config(c)?),
        "distil" => distil::distil(&stages::read_config(c)?),
        other => bail!("unknown job kind '{other}' (pretrain, finetune, teach, distil, eval)"),
    }
}
