//! `emsl-hf template`, `logits` and `generate`: look at a model before running a protocol on it. Each
//! renders one user turn (after an optional system prompt) with the folder's chat template, or takes
//! the text as it is with `--raw`, and prints one JSON object on standard output. `logits` and
//! `generate` take a LoRA adapter in PEFT's layout (`--adapter`), the kit's or PEFT's own.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use emsl_core::model::LanguageModel;
use emsl_core::sample::{generate_rows, SampleConfig};
use emsl_world::Rng;
use serde_json::json;

use emsl_hf::chat::Message;
use emsl_hf::Loaded;

/// The prompt every inspection takes.
#[derive(clap::Args)]
pub struct Prompt {
    /// The model folder (config.json, safetensors, tokenizer.json, the chat template).
    #[arg(long)]
    model: PathBuf,
    /// The user's turn (or, with --raw, the whole text).
    #[arg(long)]
    prompt: String,
    /// A system turn before it.
    #[arg(long, conflicts_with = "raw")]
    system: Option<String>,
    /// Take the prompt as it is, without the chat template.
    #[arg(long)]
    raw: bool,
}

impl Prompt {
    /// The text the model reads and its token ids.
    fn encode(&self, loaded: &Loaded) -> Result<(String, Vec<u32>)> {
        let text = if self.raw {
            self.prompt.clone()
        } else {
            let mut turns = Vec::new();
            if let Some(s) = &self.system {
                turns.push(Message::new("system", s));
            }
            turns.push(Message::new("user", &self.prompt));
            loaded.template.render(&turns, true)?
        };
        let ids = loaded
            .tokenizer
            .encode(text.as_str(), false)
            .map_err(anyhow::Error::msg)?
            .get_ids()
            .to_vec();
        anyhow::ensure!(!ids.is_empty(), "the prompt encodes to no token");
        anyhow::ensure!(
            ids.len() <= loaded.model.context_length(),
            "the prompt is {} tokens, the model's context {}",
            ids.len(),
            loaded.model.context_length()
        );
        Ok((text, ids))
    }

    /// The model folder, with `adapter` attached when one is given.
    fn load(&self, adapter: Option<&Path>) -> Result<Loaded> {
        emsl_hf::load_with_adapter(&self.model, adapter, &Device::Cpu)
            .with_context(|| format!("loading {}", self.model.display()))
    }
}

#[derive(clap::Args)]
pub struct TemplateArgs {
    #[command(flatten)]
    prompt: Prompt,
}

/// Prints `{"text", "ids"}`: what the model would read.
pub fn template(args: &TemplateArgs) -> Result<()> {
    let loaded = args.prompt.load(None)?;
    let (text, ids) = args.prompt.encode(&loaded)?;
    println!("{}", json!({ "text": text, "ids": ids }));
    Ok(())
}

#[derive(clap::Args)]
pub struct LogitsArgs {
    #[command(flatten)]
    prompt: Prompt,
    /// A LoRA adapter in PEFT's layout (adapter_config.json, adapter_model.safetensors) to attach.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// How many of the most likely next tokens to print.
    #[arg(long, default_value_t = 10)]
    top: usize,
}

/// Prints the prompt's ids and its most likely next tokens with their logits and probabilities.
pub fn logits(args: &LogitsArgs) -> Result<()> {
    let loaded = args.prompt.load(args.adapter.as_deref())?;
    let (_, ids) = args.prompt.encode(&loaded)?;
    let n = ids.len();
    let input = Tensor::from_vec(ids.clone(), (1, n), &Device::Cpu)?;
    let last: Vec<f32> = loaded
        .model
        .forward_hooked(&input, None)?
        .narrow(1, n - 1, 1)?
        .flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1()?;
    let max = last.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let total: f64 = last.iter().map(|l| f64::from(l - max).exp()).sum();
    let mut order: Vec<usize> = (0..last.len()).collect();
    // Highest first; ties to the lowest id, as greedy sampling takes them.
    order.sort_by(|a, b| last[*b].total_cmp(&last[*a]).then(a.cmp(b)));
    let top: Vec<_> = order
        .into_iter()
        .take(args.top)
        .map(|i| {
            let token = loaded.tokenizer.id_to_token(i as u32).unwrap_or_default();
            let prob = f64::from(last[i] - max).exp() / total;
            json!({ "id": i, "token": token, "logit": last[i], "prob": prob })
        })
        .collect();
    println!("{}", json!({ "ids": ids, "top": top }));
    Ok(())
}

#[derive(clap::Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    prompt: Prompt,
    /// A LoRA adapter in PEFT's layout (adapter_config.json, adapter_model.safetensors) to attach.
    #[arg(long)]
    adapter: Option<PathBuf>,
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    /// Seeds the draws when the temperature is above 0.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Prints the continuation's text and ids, stopping at the template's end-of-sequence token.
pub fn generate(args: &GenerateArgs) -> Result<()> {
    let loaded = args.prompt.load(args.adapter.as_deref())?;
    let (_, ids) = args.prompt.encode(&loaded)?;
    let stop = emsl_hf::answers::stop_token(&loaded)?;
    let cfg = SampleConfig {
        temperature: args.temperature,
        top_p: args.top_p,
        max_new_tokens: args.max_new_tokens,
    };
    let mut rngs = vec![Rng::new(args.seed, "generate")];
    let out = generate_rows(&loaded.model, &[ids], &mut rngs, &cfg, stop, true)?;
    let new = out.into_iter().next().unwrap_or_default();
    let text = loaded
        .tokenizer
        .decode(&new, false)
        .map_err(anyhow::Error::msg)?;
    println!("{}", json!({ "text": text, "ids": new }));
    Ok(())
}
