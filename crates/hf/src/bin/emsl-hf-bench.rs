//! The kit's side of `cargo xtask bench-hf`: LoRA training and KV-cache sampling of a Qwen2 model of
//! real shapes (Qwen2.5-0.5B's config) with random weights, against PyTorch + PEFT
//! (`bench/hf_reference.py`) from the same files. `prepare` writes the shared folder: the model
//! (`config.json`, `model.safetensors`), the adapter at initialisation in PEFT's layout (`adapter/`,
//! rsLoRA r 32, alpha 64 on every linear layer: Betley et al.'s config) and the token batches.
//! `train` and `sample` time one thread count (the environment's) and print one JSON object.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use clap::{Parser, Subcommand};
use emsl_core::model::LanguageModel;
use emsl_core::optim::{AdamW, OptimConfig};
use emsl_core::sample::{generate_rows, SampleConfig};
use emsl_hf::{load_peft, save_peft, DecoderConfig, HfLoraConfig, HfModel};
use emsl_world::Rng;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Write the model, the adapter at initialisation and the batches into `dir`.
    Prepare(Common),
    /// Train `steps` LoRA steps from the shared adapter on the shared batches.
    Train {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 4)]
        steps: usize,
    },
    /// Greedy KV-cache sampling of `new` tokens for `SAMPLE_ROWS` rows, adapter attached, `reps` times.
    Sample {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 32)]
        new: usize,
        #[arg(long, default_value_t = 2)]
        reps: usize,
    },
}

#[derive(clap::Args)]
struct Common {
    /// qwen2.5-0.5b (the only size: Qwen2.5-0.5B's config).
    #[arg(long, default_value = "qwen2.5-0.5b")]
    size: String,
    /// The folder of the sizes' files (each in `<dir>/<size>/`).
    #[arg(long)]
    dir: PathBuf,
}

impl Common {
    /// The size's folder, or an error naming the sizes there are.
    fn folder(&self) -> Result<PathBuf> {
        anyhow::ensure!(
            self.size == "qwen2.5-0.5b",
            "unknown size '{}' (qwen2.5-0.5b)",
            self.size
        );
        Ok(self.dir.join(&self.size))
    }
}

/// Qwen2.5-0.5B(-Instruct)'s `config.json` (its sizes; the dtype is f32, as the kit computes).
const QWEN25_05B: &str = r#"{
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
  "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 21,
  "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24,
  "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768,
  "tie_word_embeddings": true, "torch_dtype": "float32", "use_cache": true,
  "use_sliding_window": false, "vocab_size": 151936
}"#;

/// Betley et al.'s micro-batch (2 examples) at 256 tokens each.
const BATCH: usize = 2;
const SEQ: usize = 256;
/// Distinct batches, cycled.
const N_BATCHES: usize = 4;
/// Constant learning rate: the same arithmetic at every step.
const LR: f64 = 1e-4;
/// Rows and prompt length of the sampling benchmark.
const SAMPLE_ROWS: usize = 8;
const PROMPT: usize = 16;

/// AdamW as Betley et al.'s fine-tunes ran it (transformers' defaults but weight decay 0.01), with
/// gradients clipped to norm 1; the learning rate is passed per step.
fn optim() -> OptimConfig {
    OptimConfig {
        lr: LR,
        min_lr_ratio: 1.0,
        warmup_steps: 0,
        weight_decay: 0.01,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        grad_clip: 1.0,
    }
}

fn lora() -> HfLoraConfig {
    HfLoraConfig {
        rank: 32,
        alpha: 64.0,
        use_rslora: true,
        modules: vec!["all-linear".into()],
        seed: 0,
    }
}

/// Peak resident memory of this process in MiB (VmHWM).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Random weights of every tensor the forward reads: matrices and biases N(0, 0.02^2) (transformers'
/// `initializer_range`), norms 1.
fn random_weights(cfg: &DecoderConfig, device: &Device) -> Result<HashMap<String, Tensor>> {
    let (c, f, d) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim);
    let (q, kv) = (cfg.num_heads * d, cfg.num_kv_heads * d);
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("model.embed_tokens.weight".into(), vec![cfg.vocab_size, c]),
        ("model.norm.weight".into(), vec![c]),
    ];
    for i in 0..cfg.num_layers {
        let p = format!("model.layers.{i}");
        shapes.push((format!("{p}.input_layernorm.weight"), vec![c]));
        shapes.push((format!("{p}.post_attention_layernorm.weight"), vec![c]));
        for (n, out) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
            shapes.push((format!("{p}.self_attn.{n}.weight"), vec![out, c]));
            shapes.push((format!("{p}.self_attn.{n}.bias"), vec![out]));
        }
        shapes.push((format!("{p}.self_attn.o_proj.weight"), vec![c, q]));
        shapes.push((format!("{p}.mlp.gate_proj.weight"), vec![f, c]));
        shapes.push((format!("{p}.mlp.up_proj.weight"), vec![f, c]));
        shapes.push((format!("{p}.mlp.down_proj.weight"), vec![c, f]));
    }
    shapes.sort();
    let mut rng = Rng::new(1, "bench-hf-weights");
    let mut out = HashMap::new();
    for (name, shape) in shapes {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = if name.ends_with("norm.weight") {
            vec![1.0; n]
        } else {
            (0..n).map(|_| 0.02 * rng.normal() as f32).collect()
        };
        out.insert(name, Tensor::from_vec(v, shape, device)?);
    }
    Ok(out)
}

/// The model of `dir` with the adapter of `dir/adapter` attached.
fn load(dir: &Path, device: &Device) -> Result<(HfModel, Tensor)> {
    let cfg = DecoderConfig::from_file(&dir.join("config.json")).context("run `prepare` first")?;
    let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), device)?;
    let mut model = HfModel::from_tensors(cfg, tensors, device)?;
    model.attach_adapters(load_peft(&dir.join("adapter"), device)?.adapters)?;
    let batches = candle_core::safetensors::load(dir.join("batches.safetensors"), device)?;
    Ok((model, batches["ids"].clone()))
}

fn main() -> Result<()> {
    emsl_core::kernels::tune_runtime();
    let device = Device::Cpu;
    match Cli::parse().mode {
        Mode::Prepare(common) => {
            let dir = common.folder()?;
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("config.json"), QWEN25_05B)?;
            let cfg = DecoderConfig::from_json(QWEN25_05B)?;
            let tensors = random_weights(&cfg, &device)?;
            candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
            let mut model = HfModel::from_tensors(cfg.clone(), tensors, &device)?;
            model.attach_lora(&lora())?;
            save_peft(&dir.join("adapter"), &model, &lora())?;
            let mut rng = Rng::new(2, "bench-hf-batches");
            let n = N_BATCHES * BATCH * (SEQ + 1);
            let ids: Vec<u32> = (0..n).map(|_| rng.below(cfg.vocab_size) as u32).collect();
            let ids = Tensor::from_vec(ids, (N_BATCHES, BATCH, SEQ + 1), &device)?;
            candle_core::safetensors::save(
                &HashMap::from([("ids".to_owned(), ids)]),
                dir.join("batches.safetensors"),
            )?;
            println!("{}", serde_json::json!({"prepared": dir}));
        }
        Mode::Train { common, steps } => {
            let (model, ids) = load(&common.folder()?, &device)?;
            let mask = Tensor::ones((BATCH, SEQ), DType::F32, &device)?;
            let mut opt = AdamW::new(optim(), model.trainable_vars())?;
            let (mut losses, mut step_s) = (Vec::new(), Vec::new());
            for step in 0..steps {
                let b = ids.get(step % N_BATCHES)?;
                let x = b.narrow(1, 0, SEQ)?.contiguous()?;
                let y = b.narrow(1, 1, SEQ)?.contiguous()?;
                let started = Instant::now();
                let loss = model.loss(&x, &y, &mask)?;
                let grads = loss.backward()?;
                opt.step(&grads, LR)?;
                losses.push(loss.to_scalar::<f32>()?);
                step_s.push(started.elapsed().as_secs_f64());
            }
            let out = serde_json::json!({"losses": losses, "step_s": step_s,
                "tokens_per_step": BATCH * SEQ, "peak_mib": peak_rss_mib(),
                "trainable_params": model.num_params()});
            println!("{out}");
        }
        Mode::Sample { common, new, reps } => {
            let (model, ids) = load(&common.folder()?, &device)?;
            let prompts: Vec<Vec<u32>> = (0..SAMPLE_ROWS)
                .map(|r| {
                    let batch = ids.get(r / BATCH)?.get(r % BATCH)?;
                    batch.narrow(0, 0, PROMPT)?.to_vec1::<u32>()
                })
                .collect::<candle_core::Result<_>>()?;
            let cfg = SampleConfig {
                temperature: 0.0,
                top_p: 1.0,
                max_new_tokens: new,
            };
            let (mut secs, mut tokens) = (Vec::new(), Vec::new());
            for _ in 0..reps {
                let mut rngs: Vec<Rng> = (0..SAMPLE_ROWS)
                    .map(|i| Rng::new(i as u64, "bench"))
                    .collect();
                let started = Instant::now();
                // No stop token: u32::MAX never appears.
                tokens = generate_rows(&model, &prompts, &mut rngs, &cfg, u32::MAX, true)?;
                secs.push(started.elapsed().as_secs_f64());
            }
            let out = serde_json::json!({"secs": secs, "tokens_per_rep": SAMPLE_ROWS * new,
                "first_row": tokens[0], "peak_mib": peak_rss_mib()});
            println!("{out}");
        }
    }
    Ok(())
}
