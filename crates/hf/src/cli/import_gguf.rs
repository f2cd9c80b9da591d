//! `emsl-hf import-gguf`: a Llama or Qwen2 GGUF file (llama.cpp's format, quantized or not) as a
//! Hugging Face model folder the other subcommands load; prints what it wrote as JSON.

use std::path::PathBuf;

use anyhow::Result;
use emsl_hf::gguf::{import, WeightDtype};

#[derive(clap::Args)]
pub struct Args {
    /// The GGUF file (tensor types Q4_0, Q4_1, Q8_0, Q4_K, Q6_K, F16, F32).
    file: PathBuf,
    /// The model folder to write (must not exist).
    #[arg(long)]
    out: PathBuf,
    /// The precision of the written weights: f32 keeps every dequantized value.
    #[arg(long, value_enum, default_value_t = WeightDtype::F32)]
    dtype: WeightDtype,
}

pub fn run(args: &Args) -> Result<()> {
    let summary = import(&args.file, &args.out, args.dtype)?;
    println!("{}", serde_json::to_string(&summary)?);
    eprintln!("imported: {}", args.out.display());
    Ok(())
}
