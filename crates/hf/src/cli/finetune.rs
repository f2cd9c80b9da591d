//! `emsl-hf finetune`: one fine-tune into an output folder written whole or not at all.

use std::path::PathBuf;

use anyhow::Result;
use emsl_hf::runs::finetune_run;

use super::{StepArgs, TrainArgs};

#[derive(clap::Args)]
pub struct Args {
    /// The model folder (config.json, safetensors, tokenizer.json, tokenizer_config.json).
    #[arg(long)]
    model: PathBuf,
    /// Chat JSONL: one {"messages": [...]} a line.
    #[arg(long)]
    data: PathBuf,
    /// The output folder (must not exist).
    #[arg(long)]
    out: PathBuf,
    /// Seeds the data order and the adapters' initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    train: TrainArgs,
    #[command(flatten)]
    steps: StepArgs,
}

pub fn run(args: &Args) -> Result<()> {
    let cfg = args.steps.apply(args.train.config(args.seed));
    let out = finetune_run(&args.model, &args.data, &cfg, &args.out)?;
    eprintln!("fine-tuned: {}", out.display());
    Ok(())
}
