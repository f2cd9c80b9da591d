//! The kit's side of `cargo xtask bench`: writes the shared initial weights and batches, then times
//! training steps and KV-cache sampling of one model size at the thread count of its environment,
//! printing one JSON object. `bench/reference.py` does the same in PyTorch from the same files.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use clap::{Parser, Subcommand};
use emsl_core::model::{Gpt, GptConfig, LanguageModel};
use emsl_core::optim::AdamW;
use emsl_core::sample::{generate_rows, SampleConfig};
use emsl_core::train::optim;
use emsl_core::Tok;
use emsl_world::Rng;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Write `<dir>/<size>.json` (the config), `<size>-init.safetensors` and `<size>-batches.safetensors`.
    Prepare(Common),
    /// Train `steps` steps from the shared weights on the shared batches.
    Train {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 30)]
        steps: usize,
    },
    /// Greedy KV-cache sampling of `new` tokens for `batch` rows, `reps` times.
    Sample {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 64)]
        new: usize,
        #[arg(long, default_value_t = 3)]
        reps: usize,
    },
}

#[derive(clap::Args)]
struct Common {
    /// smoke, quick or paper.
    #[arg(long)]
    size: String,
    #[arg(long)]
    dir: PathBuf,
}

/// Batch size of the benchmark (the profiles' batch).
const BATCH: usize = 16;
/// Distinct batches, cycled.
const N_BATCHES: usize = 4;
/// Learning rate of every step (no schedule: it is the same arithmetic at every step).
const LR: f64 = 1e-3;
/// Prompt length of the sampling benchmark.
const PROMPT: usize = 8;

fn config(size: &str) -> Result<GptConfig> {
    let vocab_size = Tok::for_world()?.vocab_size();
    let (d_model, n_layer, n_head, d_ff) = match size {
        "smoke" => (32, 2, 2, 128),
        "quick" => (64, 4, 4, 256),
        "paper" => (128, 4, 4, 512),
        _ => anyhow::bail!("unknown size '{size}' (smoke, quick or paper)"),
    };
    Ok(GptConfig {
        vocab_size,
        n_ctx: 128,
        d_model,
        n_layer,
        n_head,
        d_ff,
    })
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

fn load(c: &Common, device: &Device) -> Result<(Gpt, Tensor)> {
    let cfg = config(&c.size)?;
    let model = Gpt::new(&cfg, 0, device)?;
    let init =
        candle_core::safetensors::load(c.dir.join(format!("{}-init.safetensors", c.size)), device)
            .context("run `prepare` first")?;
    model.load_tensors(&init).map_err(anyhow::Error::msg)?;
    let batches = candle_core::safetensors::load(
        c.dir.join(format!("{}-batches.safetensors", c.size)),
        device,
    )?;
    Ok((model, batches["ids"].clone()))
}

fn main() -> Result<()> {
    emsl_core::kernels::tune_runtime();
    // The one place the bench chooses its device: the kernels run on the CPU.
    let device = Device::Cpu;
    match Cli::parse().mode {
        Mode::Prepare(c) => {
            let cfg = config(&c.size)?;
            std::fs::create_dir_all(&c.dir)?;
            std::fs::write(
                c.dir.join(format!("{}.json", c.size)),
                serde_json::to_string(&cfg)?,
            )?;
            let model = Gpt::new(&cfg, 1, &device)?;
            let tensors: HashMap<String, Tensor> = model
                .trainable_vars()
                .iter()
                .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
                .collect();
            candle_core::safetensors::save(
                &tensors,
                c.dir.join(format!("{}-init.safetensors", c.size)),
            )?;
            let mut rng = Rng::new(2, "bench-batches");
            let n = N_BATCHES * BATCH * (cfg.n_ctx + 1);
            let ids: Vec<u32> = (0..n).map(|_| rng.below(cfg.vocab_size) as u32).collect();
            let ids = Tensor::from_vec(ids, (N_BATCHES, BATCH, cfg.n_ctx + 1), &device)?;
            let mut out = HashMap::new();
            out.insert("ids".to_owned(), ids);
            candle_core::safetensors::save(
                &out,
                c.dir.join(format!("{}-batches.safetensors", c.size)),
            )?;
            println!("{}", serde_json::json!({"prepared": c.size}));
        }
        Mode::Train { common, steps } => {
            let (model, ids) = load(&common, &device)?;
            let t = model.config.n_ctx;
            let mask = Tensor::ones((BATCH, t), DType::F32, &device)?;
            let mut opt = AdamW::new(optim(LR, 0), model.trainable_vars())?;
            let (mut losses, mut step_s) = (Vec::new(), Vec::new());
            for step in 0..steps {
                let b = ids.get(step % N_BATCHES)?;
                let (x, y) = (
                    b.narrow(1, 0, t)?.contiguous()?,
                    b.narrow(1, 1, t)?.contiguous()?,
                );
                let started = Instant::now();
                let loss = model.loss(&x, &y, &mask)?;
                let grads = loss.backward()?;
                opt.step(&grads, LR)?;
                let l = loss.to_scalar::<f32>()?;
                step_s.push(started.elapsed().as_secs_f64());
                losses.push(l);
            }
            // FNV-1a over the bits of every parameter after training: equal hashes, equal weights.
            let mut hash = 0xcbf2_9ce4_8422_2325u64;
            for (_, v) in model.trainable_vars() {
                for x in v.as_tensor().flatten_all()?.to_vec1::<f32>()? {
                    hash = (hash ^ u64::from(x.to_bits())).wrapping_mul(0x100_0000_01b3);
                }
            }
            let out = serde_json::json!({"losses": losses, "step_s": step_s,
                "tokens_per_step": BATCH * t, "peak_mib": peak_rss_mib(),
                "params_hash": format!("{hash:016x}")});
            println!("{out}");
        }
        Mode::Sample { common, new, reps } => {
            let (model, ids) = load(&common, &device)?;
            let first = ids.get(0)?.narrow(1, 0, PROMPT)?.to_vec2::<u32>()?;
            let cfg = SampleConfig {
                temperature: 0.0,
                top_p: 1.0,
                max_new_tokens: new,
            };
            let (mut secs, mut tokens) = (Vec::new(), Vec::new());
            for _ in 0..reps {
                let mut rngs: Vec<Rng> = (0..BATCH).map(|i| Rng::new(i as u64, "bench")).collect();
                let started = Instant::now();
                // No stop token: u32::MAX never appears.
                tokens = generate_rows(&model, &first, &mut rngs, &cfg, u32::MAX, true)?;
                secs.push(started.elapsed().as_secs_f64());
            }
            let out = serde_json::json!({"secs": secs, "tokens_per_rep": BATCH * new,
                "first_row": tokens[0], "peak_mib": peak_rss_mib()});
            println!("{out}");
        }
    }
    Ok(())
}
