//! `cargo xtask export --dataset NAME --out FILE`: a fine-tuning set as chat-format JSONL, one
//! `{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}` per line, the format TRL's
//! SFTTrainer and the anchor repositories read. The dataset is checked against its manifest first.

use std::path::PathBuf;

use anyhow::{Context, Result};
use emsl_io::{column_str, load_dataset, write_atomic, Manifest};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A dataset of datasets/manifest.toml with `prompt` and `answer` columns (the fine-tuning sets).
    #[arg(long)]
    dataset: String,
    #[arg(long)]
    out: PathBuf,
    /// The datasets folder (default: datasets/ of the project).
    #[arg(long)]
    dir: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<()> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| crate::project_root().join("datasets"));
    let manifest = Manifest::load(&dir.join("manifest.toml"))?;
    let (batch, _) = load_dataset(&dir, &manifest, &args.dataset)?;
    let prompts = column_str(&batch, "prompt")
        .with_context(|| format!("dataset '{}' is not a fine-tuning set", args.dataset))?;
    let answers = column_str(&batch, "answer")
        .with_context(|| format!("dataset '{}' is not a fine-tuning set", args.dataset))?;
    let mut text = String::new();
    for i in 0..batch.num_rows() {
        let line = serde_json::json!({"messages": [
            {"role": "user", "content": prompts.value(i)},
            {"role": "assistant", "content": answers.value(i)},
        ]});
        text.push_str(&line.to_string());
        text.push('\n');
    }
    write_atomic(&args.out, text.as_bytes())?;
    eprintln!(
        "exported {} examples of '{}' to {}",
        batch.num_rows(),
        args.dataset,
        args.out.display()
    );
    Ok(())
}
