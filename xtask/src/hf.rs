//! `cargo xtask hf ...`: the `emsl-hf` command of `crates/hf` (your own model: fine-tune, judge, the
//! EM protocol) run through cargo. `crates/hf` is a workspace of its own so that its dependencies stay
//! out of the root lock that every result's identity hashes; this only shells out to it, with the
//! root target folder, and adds no dependency here.

use std::process::Command;

use anyhow::{bail, Context, Result};

#[derive(clap::Args)]
// `--help` goes to emsl-hf, which knows its commands.
#[command(disable_help_flag = true)]
pub struct Args {
    /// Everything after `hf`, passed to `emsl-hf` as is (`cargo xtask hf --help` lists its commands).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

pub fn run(args: &Args) -> Result<()> {
    let root = crate::project_root();
    // The root's target folder (or the one CARGO_TARGET_DIR names), not crates/hf/target: one build
    // cache for the checkout.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let status = Command::new("cargo")
        .current_dir(&root)
        .args([
            "run",
            "--release",
            "--quiet",
            "--manifest-path",
            "crates/hf/Cargo.toml",
        ])
        .args(["--bin", "emsl-hf", "--target-dir"])
        .arg(&target)
        .arg("--")
        .args(&args.args)
        .status()
        .context("running cargo for crates/hf")?;
    if !status.success() {
        bail!("emsl-hf exited with {status}");
    }
    Ok(())
}
