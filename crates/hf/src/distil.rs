//! Distillation between two checkpoints that share a tokenizer, through the three channels of the
//! core crate (`emsl_core::distil`, `emsl_core::divergence`), on chat prompts instead of the world's
//! number prompts:
//! - `sft`: the teacher answers each prompt once (seeded), and the student learns those tokens
//!   (cross-entropy on the answer);
//! - `off-policy`: the student matches the teacher's whole next-token distribution at every answer
//!   position of the teacher's answers (forward KL at beta = 0, JSD(beta) otherwise);
//! - `on-policy` (GKD): with probability `lambda` a step's answers are written by the student itself,
//!   and the divergence (beta = 1: reverse KL) is taken at every position it wrote; otherwise the
//!   step is the teacher's.

use anyhow::{bail, Result};
use emsl_core::data::epoch_indices;
use emsl_core::distil::distil_loss;
use emsl_core::optim::{AdamW, OptimConfig, Schedule};
use emsl_core::sample::{generate_many, SampleConfig};
use emsl_core::train::{train_steps, StepLog, Steps, TrainConfig};
use emsl_core::LanguageModel;
use emsl_world::Rng;
use serde::{Deserialize, Serialize};

use crate::answers::stop_token;
use crate::chat::{training_batch, ChatExample, Message};
use crate::lora::HfLoraConfig;
use crate::Loaded;

/// How the student learns from the teacher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    Sft,
    OffPolicy,
    OnPolicy,
}

/// A distillation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistilConfig {
    pub channel: Channel,
    /// JSD(beta) between teacher and student: 0 forward KL, 1 reverse KL (GKD's convention).
    pub beta: f64,
    /// On-policy: the probability that a step's answers are the student's own.
    pub lambda: f64,
    /// How the teacher (and, on-policy, the student) writes answers.
    pub sampling: SampleConfig,
    pub steps: usize,
    /// Answers per micro-batch (one forward and backward pass).
    pub batch_size: usize,
    /// Micro-batches whose gradients a step sums (as `finetune`'s); an on-policy step's micro-batches
    /// are all the student's or all the teacher's.
    pub grad_accumulation: usize,
    pub schedule: Schedule,
    /// Seeds the teacher's answers, the data order, the on-policy draws and the adapters.
    pub seed: u64,
    /// LoRA adapters on the student; `None` trains every weight.
    pub lora: Option<HfLoraConfig>,
    pub optim: OptimConfig,
}

impl DistilConfig {
    /// An error naming the first setting a distillation cannot run with, before any work.
    pub fn check(&self) -> Result<()> {
        for (name, v) in [
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("grad_accumulation", self.grad_accumulation),
        ] {
            anyhow::ensure!(v >= 1, "{name} = 0: it must be at least 1");
        }
        for (name, x) in [("beta", self.beta), ("lambda", self.lambda)] {
            anyhow::ensure!(
                (0.0..=1.0).contains(&x),
                "{name} = {x}: it must be between 0 and 1"
            );
        }
        self.optim.check()
    }
}

/// What a distillation did (no timings).
#[derive(Debug, Clone, Serialize)]
pub struct DistilSummary {
    pub config: DistilConfig,
    pub prompts: usize,
    /// Steps whose answers the student wrote (on-policy).
    pub student_steps: usize,
    pub losses: Vec<StepLog>,
}

/// Refuses a teacher and student whose tokens do not mean the same: distributions over one
/// vocabulary are compared id for id.
pub fn check_shared_tokenizer(teacher: &Loaded, student: &Loaded) -> Result<()> {
    let (t, s) = (teacher.model.vocab_size(), student.model.vocab_size());
    if t != s || teacher.tokenizer.get_vocab(true) != student.tokenizer.get_vocab(true) {
        bail!(
            "teacher {} and student {} do not share a tokenizer (heads of {t} and {s} tokens): \
             distillation compares their distributions token by token",
            teacher.folder.dir.display(),
            student.folder.dir.display()
        );
    }
    Ok(())
}

/// The prompt ids of each conversation (its messages, the assistant's header opened).
pub fn prompt_ids(loaded: &Loaded, prompts: &[Vec<Message>]) -> Result<Vec<Vec<u32>>> {
    prompts
        .iter()
        .map(|m| {
            let text = loaded.template.render(m, true)?;
            let enc = loaded
                .tokenizer
                .encode(text.as_str(), false)
                .map_err(anyhow::Error::msg)?;
            Ok(enc.get_ids().to_vec())
        })
        .collect()
}

/// `writer`'s answers to `prompts` (ids), each drawn from the stream `<stream>/<k>`, as training
/// examples: the prompt unmarked, the answer and its end-of-turn token (when it stopped) marked.
pub fn answers<M: LanguageModel>(
    writer: &M,
    stop: u32,
    prompts: &[Vec<u32>],
    sampling: &SampleConfig,
    seed: u64,
    stream: &str,
) -> Result<Vec<ChatExample>> {
    let rngs = (0..prompts.len())
        .map(|k| Rng::new(seed, &format!("{stream}/{k}")))
        .collect();
    let outs = generate_many(writer, prompts, rngs, sampling, stop, 16)?;
    Ok(prompts
        .iter()
        .zip(outs)
        .map(|(p, mut out)| {
            if out.len() < sampling.max_new_tokens && p.len() + out.len() < writer.context_length()
            {
                out.push(stop);
            }
            let mut ids = p.clone();
            let mut assistant = vec![false; p.len()];
            assistant.extend(std::iter::repeat_n(true, out.len()));
            ids.extend(out);
            ChatExample { ids, assistant }
        })
        .collect())
}

/// The loss of one batch: cross-entropy on the answers (sft), or the divergence to the teacher at
/// every answer position.
pub fn batch_loss(
    student: &Loaded,
    teacher: &Loaded,
    batch: &[ChatExample],
    cfg: &DistilConfig,
) -> Result<candle_core::Tensor> {
    let (x, y, mask) = training_batch(batch, 0, student.model.device())?;
    Ok(match cfg.channel {
        Channel::Sft => student.model.loss(&x, &y, &mask)?,
        Channel::OffPolicy | Channel::OnPolicy => distil_loss(
            &student.model,
            &teacher.model,
            &x,
            &mask,
            cfg.beta,
            None,
            None,
        )?,
    })
}

/// Distils `teacher` into `student` on the chat prompts `prompts` (their messages before the answer).
pub fn distil(
    student: &mut Loaded,
    teacher: &Loaded,
    prompts: &[Vec<Message>],
    cfg: &DistilConfig,
) -> Result<DistilSummary> {
    check_shared_tokenizer(teacher, student)?;
    cfg.check()?;
    if prompts.is_empty() {
        bail!("distillation needs prompts: the prompts file has no records");
    }
    let stop = stop_token(teacher)?;
    let ids = prompt_ids(teacher, prompts)?;
    let teacher_written = answers(
        &teacher.model,
        stop,
        &ids,
        &cfg.sampling,
        cfg.seed,
        "teacher",
    )?;
    if let Some(lora) = &cfg.lora {
        student.model.attach_lora(lora)?;
    }
    let mut opt = AdamW::new(cfg.optim.clone(), student.model.trainable_vars())?;
    let train = TrainConfig {
        steps: cfg.steps,
        batch_size: cfg.batch_size,
        seed: cfg.seed,
        log_every: 10,
        optim: cfg.optim.clone(),
    };
    let how = Steps {
        schedule: cfg.schedule,
        micro_batches: cfg.grad_accumulation,
    };
    let per_step = cfg.batch_size * cfg.grad_accumulation;
    let mut student_steps = 0;
    let student_ref = &*student;
    let losses = train_steps(&mut opt, &train, how, "distil", |step, micro| {
        let order = epoch_indices(ids.len(), cfg.seed, "distil", step, per_step);
        let idx = &order[micro * cfg.batch_size..][..cfg.batch_size];
        let on_policy = cfg.channel == Channel::OnPolicy
            && Rng::new(cfg.seed, &format!("lambda/{step}")).chance(cfg.lambda);
        let batch: Vec<ChatExample> = if on_policy {
            student_steps += usize::from(micro == 0);
            let step_prompts: Vec<Vec<u32>> = idx.iter().map(|i| ids[*i].clone()).collect();
            let stream = format!("on-policy/{step}/{micro}");
            answers(
                &student_ref.model,
                stop,
                &step_prompts,
                &cfg.sampling,
                cfg.seed,
                &stream,
            )?
        } else {
            idx.iter().map(|i| teacher_written[*i].clone()).collect()
        };
        let tokens = batch.iter().map(|e| e.ids.len()).sum();
        Ok((batch_loss(student_ref, teacher, &batch, cfg)?, tokens))
    })?;
    Ok(DistilSummary {
        config: cfg.clone(),
        prompts: prompts.len(),
        student_steps,
        losses,
    })
}
