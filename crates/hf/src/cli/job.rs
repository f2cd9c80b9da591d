//! `emsl-hf job CONFIG`: one own-model stage from its config file (`stage.rs`).

use std::path::PathBuf;

use anyhow::Result;
use emsl_hf::stage::{read_stage_config, run_stage};

#[derive(clap::Args)]
pub struct Args {
    /// A stage config: `[spec]` with its `kind` (finetune, judge, em, distil) and each model as
    /// `{ family, path }`, and `[io] out`.
    config: PathBuf,
}

pub fn run(args: &Args) -> Result<()> {
    let cfg = read_stage_config(&args.config)?;
    let out = run_stage(&cfg)?;
    eprintln!("{} stage: {}", cfg.spec.kind(), out.display());
    Ok(())
}
