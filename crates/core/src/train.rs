//! The training loop shared by pretraining and SFT: masked next-token cross-entropy, AdamW, logging.

use std::io::IsTerminal;
use std::time::Instant;

use anyhow::Result;
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::data::{sft_batch, sft_indices, stream_batch, Batch, SftExample, TokenStream};
use crate::model::LanguageModel;
pub use crate::model::{masked_cross_entropy, masked_cross_entropy_composed};
use crate::optim::{AdamW, OptimConfig, Schedule};

/// How long and on what to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub steps: usize,
    pub batch_size: usize,
    /// Seeds the data order (the model's initialisation has its own seed).
    pub seed: u64,
    /// Log a line every this many steps when stderr is not a terminal.
    pub log_every: usize,
    pub optim: OptimConfig,
}

impl TrainConfig {
    /// An error naming the first field a training run cannot use (`steps` and `batch_size` at least 1,
    /// the optimizer's values as [`OptimConfig::check`] says), so a bad config fails before any work.
    pub fn check(&self) -> Result<()> {
        anyhow::ensure!(
            self.steps >= 1,
            "steps = 0: a training run needs at least one step"
        );
        anyhow::ensure!(
            self.batch_size >= 1,
            "batch_size = 0: a step needs at least one example"
        );
        self.optim.check()
    }
}

/// What a model trains on.
pub enum TrainData<'a> {
    /// Pretraining: random windows of the context length.
    Stream(&'a TokenStream),
    /// SFT: prompt/completion pairs, loss on the completion only.
    Sft {
        examples: &'a [SftExample],
        pad: u32,
    },
}

/// The batch of `step`, on the model's device and cut to its context.
pub fn batch_at<M: LanguageModel>(
    model: &M,
    data: &TrainData,
    cfg: &TrainConfig,
    step: usize,
) -> Result<Batch> {
    let (n_ctx, device) = (model.context_length(), model.device());
    match data {
        TrainData::Stream(s) => stream_batch(s, cfg.seed, step, cfg.batch_size, n_ctx, device),
        TrainData::Sft { examples, pad } => {
            let idx = sft_indices(examples.len(), cfg.seed, step, cfg.batch_size);
            let picked: Vec<&SftExample> = idx.iter().map(|i| &examples[*i]).collect();
            sft_batch(&picked, *pad, n_ctx, device)
        }
    }
}

/// One logged step.
#[derive(Debug, Clone, Serialize)]
pub struct StepLog {
    pub step: usize,
    pub loss: f32,
    pub lr: f64,
    pub grad_norm: f64,
}

/// Trains from `opt.step` up to `cfg.steps` with the masked cross-entropy of `data`.
pub fn train<M: LanguageModel>(
    model: &M,
    opt: &mut AdamW,
    data: &TrainData,
    cfg: &TrainConfig,
    label: &str,
) -> Result<Vec<StepLog>> {
    train_until(model, opt, data, cfg, label, cfg.steps)
}

/// [`train`] from the optimizer's step up to step `until` (at most `cfg.steps`) on the schedule of
/// all `cfg.steps`: a run stopped at `until` and continued gives the weights of one run straight
/// through, step for step, so that a pretraining can keep its model at a few steps on the way.
pub fn train_until<M: LanguageModel>(
    model: &M,
    opt: &mut AdamW,
    data: &TrainData,
    cfg: &TrainConfig,
    label: &str,
    until: usize,
) -> Result<Vec<StepLog>> {
    train_steps_until(opt, cfg, Steps::ONE_COSINE, label, until, |step, _| {
        let batch = batch_at(model, data, cfg, step)?;
        let loss = model.loss(&batch.inputs, &batch.targets, &batch.mask)?;
        Ok((loss, batch.inputs.elem_count()))
    })
}

/// The loop every training stage shares: `loss_at(step)` returns the loss of that step and the tokens
/// it processed; this function does the backward pass, the update, the schedule and the logging.
pub fn train_with(
    opt: &mut AdamW,
    cfg: &TrainConfig,
    label: &str,
    mut loss_at: impl FnMut(usize) -> Result<(Tensor, usize)>,
) -> Result<Vec<StepLog>> {
    train_steps(opt, cfg, Steps::ONE_COSINE, label, |step, _| loss_at(step))
}

/// How each optimizer step is made: its learning rate's schedule, and how many micro-batches (each
/// one forward and backward pass) its gradient sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steps {
    pub schedule: Schedule,
    pub micro_batches: usize,
}

impl Steps {
    /// One batch a step on the cosine schedule: how the kit's own stages train.
    pub const ONE_COSINE: Steps = Steps {
        schedule: Schedule::Cosine,
        micro_batches: 1,
    };
}

/// [`train_with`] with gradient accumulation and a choice of schedule: `loss_at(step, micro)` returns
/// the loss of micro-batch `micro` of `step` and its tokens. Each loss is divided by the number of
/// micro-batches before its backward pass and the gradients are summed, so a step is the mean over
/// them, as one batch of them all would be; the logged loss is that mean.
pub fn train_steps(
    opt: &mut AdamW,
    cfg: &TrainConfig,
    steps: Steps,
    label: &str,
    loss_at: impl FnMut(usize, usize) -> Result<(Tensor, usize)>,
) -> Result<Vec<StepLog>> {
    train_steps_until(opt, cfg, steps, label, cfg.steps, loss_at)
}

/// [`train_steps`] stopped after step `until` (the schedule is still that of `cfg.steps`).
fn train_steps_until(
    opt: &mut AdamW,
    cfg: &TrainConfig,
    steps: Steps,
    label: &str,
    until: usize,
    mut loss_at: impl FnMut(usize, usize) -> Result<(Tensor, usize)>,
) -> Result<Vec<StepLog>> {
    anyhow::ensure!(
        steps.micro_batches > 0,
        "a step needs at least one micro-batch"
    );
    cfg.check()?;
    let total = cfg.steps;
    anyhow::ensure!(
        until <= total,
        "training until step {until} of a run of {total} steps"
    );
    let start_step = opt.step;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(label.to_owned());
        bar.set_position(start_step as u64);
        bar
    });
    let started = Instant::now();
    let mut tokens = 0usize;
    let mut logs = Vec::new();
    for step in start_step..until {
        let mut grads: Option<GradStore> = None;
        let mut loss = 0f32;
        for micro in 0..steps.micro_batches {
            let (l, micro_tokens) = loss_at(step, micro)?;
            // One micro-batch: the loss as it is (no extra op in the graph).
            let l = if steps.micro_batches == 1 {
                l
            } else {
                (l / steps.micro_batches as f64)?
            };
            let g = l.backward()?;
            loss += l.to_scalar::<f32>()?;
            tokens += micro_tokens;
            grads = Some(match grads {
                None => g,
                Some(sum) => add_grads(sum, &g, opt.params())?,
            });
        }
        let lr = steps.schedule.lr_at(&cfg.optim, step, total);
        let diverged = |what: String| {
            anyhow::anyhow!(
                "{label}: training diverged at step {}/{total}: {what}, learning rate {lr:e}. A \
                 non-finite value is never a result, so nothing is written: lower optim.lr (or \
                 check the data) and run again",
                step + 1
            )
        };
        if !loss.is_finite() {
            return Err(diverged(format!("loss {loss}")));
        }
        let grad_norm = opt.step(&grads.expect("at least one micro-batch"), lr)?;
        if !grad_norm.is_finite() {
            return Err(diverged(format!("loss {loss}, gradient norm {grad_norm}")));
        }
        let log = StepLog {
            step,
            loss,
            lr,
            grad_norm,
        };
        let rate = tokens as f64 / started.elapsed().as_secs_f64().max(1e-9);
        match &bar {
            Some(bar) => {
                bar.set_position(step as u64 + 1);
                bar.set_message(format!("loss {:.4} {:.0} tok/s", log.loss, rate));
            }
            None if step % cfg.log_every.max(1) == 0 || step + 1 == total => {
                eprintln!(
                    "{label} step {}/{total} loss {:.4} lr {:.2e} grad {:.3} {:.0} tok/s",
                    step + 1,
                    log.loss,
                    lr,
                    grad_norm,
                    rate
                );
            }
            None => {}
        }
        logs.push(log);
    }
    if let Some(bar) = bar {
        bar.finish();
    }
    Ok(logs)
}

/// `sum` with `g` added, variable by variable (a variable `g` has no gradient for keeps its sum).
fn add_grads(mut sum: GradStore, g: &GradStore, vars: &[(String, Var)]) -> Result<GradStore> {
    for (_, var) in vars {
        let Some(new) = g.get(var.as_tensor()) else {
            continue;
        };
        let total = match sum.get(var.as_tensor()) {
            Some(old) => (old + new)?,
            None => new.clone(),
        };
        sum.insert(var.as_tensor(), total);
    }
    Ok(sum)
}

/// A default-free constructor for tests and examples: every optimizer field named.
pub fn optim(lr: f64, warmup_steps: usize) -> OptimConfig {
    OptimConfig {
        lr,
        min_lr_ratio: 0.1,
        warmup_steps,
        weight_decay: 0.1,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        grad_clip: 1.0,
    }
}
