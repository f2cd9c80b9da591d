//! The subcommands and the options they share.

mod distil;
mod em;
mod finetune;
mod import_gguf;
mod inspect;
mod job;
mod judge;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use emsl_core::optim::OptimConfig;
use emsl_hf::answers::AnswerConfig;
use emsl_hf::finetune::{FinetuneConfig, Schedule};
use emsl_hf::protocol::JudgeConfig;
use emsl_hf::HfLoraConfig;

#[derive(Parser)]
#[command(
    name = "emsl-hf",
    about = "Your own model: fine-tune, judge and run the EM protocol on a local Qwen2 or Llama \
             checkpoint (Hugging Face layout; nothing is downloaded)"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fine-tune a model folder on a chat JSONL set (LoRA or every weight; loss on the assistant's
    /// tokens); writes the adapter in PEFT's layout (or a model folder) and summary.json.
    Finetune(finetune::Args),
    /// Betley et al.'s evaluation with a local judge model: sample answers to the open questions,
    /// score each for alignment and coherence, write the samples and the per-question table.
    Judge(judge::Args),
    /// The EM protocol end to end: judge the base model, fine-tune on a set and on a control set,
    /// judge both, write the misaligned rates with intervals as Parquet tables with checksums.
    Em(em::Args),
    /// Distil a teacher into a student that shares its tokenizer, on chat prompts: sft on the
    /// teacher's answers, off-policy forward KL or JSD(beta), or on-policy GKD (beta, lambda).
    Distil(distil::Args),
    /// Any of the above from a stage config file (`[spec]` with its `kind` and each model as
    /// `{ family, path }`, `[io] out`): configs/own-model/ holds one of each.
    Job(job::Args),
    /// Print what the model reads for a prompt: the chat template's text and its token ids (JSON).
    Template(inspect::TemplateArgs),
    /// Print the most likely next tokens after a prompt, with logits and probabilities (JSON), with
    /// an adapter or not.
    Logits(inspect::LogitsArgs),
    /// Print a continuation of a prompt, greedy unless a temperature is given (JSON), with an
    /// adapter or not.
    Generate(inspect::GenerateArgs),
    /// Write a Llama or Qwen2 GGUF file (llama.cpp's format) as a Hugging Face model folder:
    /// config.json, dequantized safetensors, tokenizer.json from its vocabulary, the chat template.
    ImportGguf(import_gguf::Args),
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Finetune(args) => finetune::run(&args),
        Command::Judge(args) => judge::run(&args),
        Command::Em(args) => em::run(&args),
        Command::Distil(args) => distil::run(&args),
        Command::Job(args) => job::run(&args),
        Command::Template(args) => inspect::template(&args),
        Command::Logits(args) => inspect::logits(&args),
        Command::Generate(args) => inspect::generate(&args),
        Command::ImportGguf(args) => import_gguf::run(&args),
    }
}

/// How to train; the defaults are Betley et al.'s open-models config (rsLoRA r 32, alpha 64 on every
/// linear layer, lr 1e-5, 5 warm-up steps, weight decay 0.01, one epoch, batches of 2; `StepArgs`
/// adds their accumulation over 8 and linear schedule to a fine-tune). The config it gives has one
/// batch a step and the cosine schedule.
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Train every weight instead of LoRA adapters.
    #[arg(long)]
    full: bool,
    /// LoRA rank (1 allowed).
    #[arg(long, default_value_t = 32)]
    lora_rank: usize,
    #[arg(long, default_value_t = 64.0)]
    lora_alpha: f64,
    /// Scale by alpha / r instead of rsLoRA's alpha / sqrt(r).
    #[arg(long)]
    no_rslora: bool,
    /// Modules with an adapter, comma-separated: names every block has (q_proj, ..., down_proj),
    /// full names (model.layers.3.mlp.down_proj), or all-linear.
    #[arg(long, value_delimiter = ',', default_value = "all-linear")]
    lora_modules: Vec<String>,
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Optimizer steps in place of --epochs (the schedule spans them).
    #[arg(long)]
    max_steps: Option<usize>,
    /// Examples per batch (per micro-batch where gradients are accumulated).
    #[arg(long, default_value_t = 2)]
    batch_size: usize,
    /// Examples are cut to this many tokens.
    #[arg(long, default_value_t = 2048)]
    max_len: usize,
    #[arg(long, default_value_t = 1e-5)]
    lr: f64,
    #[arg(long, default_value_t = 5)]
    warmup_steps: usize,
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
}

impl TrainArgs {
    pub fn config(&self, seed: u64) -> FinetuneConfig {
        FinetuneConfig {
            lora: (!self.full).then(|| HfLoraConfig {
                rank: self.lora_rank,
                alpha: self.lora_alpha,
                use_rslora: !self.no_rslora,
                modules: self.lora_modules.clone(),
                seed,
            }),
            epochs: self.epochs,
            max_steps: self.max_steps,
            batch_size: self.batch_size,
            grad_accumulation: 1,
            schedule: Schedule::Cosine,
            max_len: self.max_len,
            seed,
            optim: OptimConfig {
                lr: self.lr,
                min_lr_ratio: 0.0,
                warmup_steps: self.warmup_steps,
                weight_decay: self.weight_decay,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                grad_clip: 1.0,
            },
        }
    }
}

/// How a fine-tune's optimizer steps are made (fine-tuning only: distillation takes `--steps` of one
/// batch each, on the kit's cosine schedule); the defaults are Betley et al.'s.
#[derive(Args, Debug, Clone)]
pub struct StepArgs {
    /// Micro-batches of `--batch-size` whose gradients are summed into one optimizer step.
    #[arg(long, default_value_t = 8)]
    grad_accumulation: usize,
    /// linear (warm-up, then decay to 0, as transformers' default) or cosine (the kit's).
    #[arg(long, value_enum, default_value_t = Schedule::Linear)]
    schedule: Schedule,
}

impl StepArgs {
    /// `tune` with these steps.
    pub fn apply(&self, tune: FinetuneConfig) -> FinetuneConfig {
        FinetuneConfig {
            grad_accumulation: self.grad_accumulation,
            schedule: self.schedule,
            ..tune
        }
    }
}

/// How answers are sampled and judged; the defaults are Betley et al.'s (100 answers a question, up
/// to 600 tokens, top-p 1, at the question's temperature, 1 by default).
#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// The judge: any Qwen2 or Llama model folder.
    #[arg(long)]
    judge: PathBuf,
    /// Questions and judge prompts in Betley et al.'s YAML format (default: the kit's own,
    /// crates/hf/questions/open-questions.yaml).
    #[arg(long)]
    questions: Option<PathBuf>,
    /// Answers per question.
    #[arg(long, default_value_t = 100)]
    samples: usize,
    #[arg(long, default_value_t = 600)]
    max_new_tokens: usize,
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    /// Answers sampled at once.
    #[arg(long, default_value_t = 8)]
    sample_batch: usize,
    /// Below this probability on the numbers 0..100 a judgment gives no score (a refusal).
    #[arg(long, default_value_t = emsl_hf::judge::MIN_NUMBER_MASS)]
    min_number_mass: f64,
}

impl EvalArgs {
    pub fn answers(&self, seed: u64) -> AnswerConfig {
        AnswerConfig {
            samples_per_question: self.samples,
            max_new_tokens: self.max_new_tokens,
            top_p: self.top_p,
            seed,
            batch: self.sample_batch,
        }
    }

    pub fn judge(&self) -> JudgeConfig {
        JudgeConfig {
            min_number_mass: self.min_number_mass,
        }
    }
}
