//! `emsl-hf finetune`: one fine-tune into an output folder written whole or not at all.

use std::path::PathBuf;

use anyhow::Result;
use candle_core::Device;
use emsl_hf::finetune::{finetune, save_finetuned};
use emsl_hf::output::{folder_inputs, write_json, Staged};
use emsl_hf::read_chat_jsonl;
use serde_json::json;

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
    let data = read_chat_jsonl(&args.data)?;
    let mut loaded = emsl_hf::load(&args.model, &Device::Cpu)?;
    emsl_hf::finetune::encode_dataset(&loaded, &data, cfg.max_len)?;
    let staged = Staged::new(&args.out)?;
    let summary = finetune(&mut loaded, &data, &cfg, "finetune")?;
    save_finetuned(staged.path(), &loaded, cfg.lora.as_ref())?;
    let record = json!({
        "command": "emsl-hf finetune",
        "model": folder_inputs(&args.model)?,
        "summary": summary,
    });
    write_json(&staged.path().join("summary.json"), &record)?;
    let out = staged.finish()?;
    let last = summary.losses.last().map_or(f32::NAN, |l| l.loss);
    eprintln!(
        "{} steps on {} examples, last loss {last:.4}: {}",
        summary.steps,
        summary.examples,
        out.display()
    );
    Ok(())
}
