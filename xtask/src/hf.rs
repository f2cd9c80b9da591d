//! `cargo xtask hf ...`: the `emsl-hf` command of `crates/hf` (your own model: fine-tune, judge, the
//! EM protocol) run through cargo. It shells out rather than linking emsl-hf: xtask is the binary that
//! computes every result, and linking would unify candle-transformers' and tokenizers' features into
//! its dependencies.

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
    let status = Command::new("cargo")
        .current_dir(crate::project_root())
        .args([
            "run",
            "--release",
            "--quiet",
            "-p",
            "emsl-hf",
            "--bin",
            "emsl-hf",
        ])
        .arg("--")
        .args(&args.args)
        .status()
        .context("running cargo for crates/hf")?;
    if !status.success() {
        bail!("emsl-hf exited with {status}");
    }
    Ok(())
}
