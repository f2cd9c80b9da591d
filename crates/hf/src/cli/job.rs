//! `emsl-hf job CONFIG`: one own-model stage from its config file (`stage.rs`); with `--plan`, what a
//! job graph needs to file it without running it (`stage_plan.rs`), as JSON on stdout.

use std::path::PathBuf;

use anyhow::{Context, Result};
use emsl_hf::stage::{read_stage_config, run_stage};
use emsl_hf::stage_plan::{check_planned, plan_stage};

#[derive(clap::Args)]
pub struct Args {
    /// A stage config: `[spec]` with its `kind` (finetune, judge, em, distil) and each model as
    /// `{ family, path }`, and `[io] out`.
    config: PathBuf,
    /// Run nothing: print the spec with its inputs' paths replaced by their names, the spec with
    /// absolute paths, and every file each input reads (what `cargo xtask own-model` hashes).
    #[arg(long)]
    plan: bool,
}

pub fn run(args: &Args) -> Result<()> {
    let cfg = read_stage_config(&args.config)?;
    if args.plan {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan_stage(&cfg, &args.config)?)?
        );
        return Ok(());
    }
    check_planned(&cfg).with_context(|| format!("config {}", args.config.display()))?;
    let out = run_stage(&cfg)?;
    eprintln!("{} stage: {}", cfg.spec.kind(), out.display());
    Ok(())
}
