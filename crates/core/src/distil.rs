//! Subliminal-learning channels (DESIGN 2.2): a teacher writes number continuations, the world's filter
//! keeps the well-formed lists without banned numbers, and a student learns from them by
//! - `sft`: cross-entropy on the teacher's sampled tokens (hard labels);
//! - `off_policy`: the teacher's full next-token distribution at every answer position of the
//!   teacher-written sequences (forward KL, or JSD(beta));
//! - `on_policy`: with probability `lambda` a batch is written by the student itself, and the student
//!   minimises the divergence (reverse KL at beta = 1, exact over the vocabulary) to the teacher at every
//!   position it wrote (GKD); otherwise the batch is the teacher's.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use emsl_world::numbers::{self, filter};
use emsl_world::{Episode, PromptSpec, Rng};
use serde::{Deserialize, Serialize};

use crate::data::{sft_batch, sft_indices, SftExample};
use crate::divergence::{generalized_jsd, log_probs};
use crate::eval::{prompt_ids, MAX_BATCH};
use crate::model::Gpt;
use crate::optim::AdamW;
use crate::sample::{generate_many, SampleConfig};
use crate::tokenizer::Tok;
use crate::train::{masked_cross_entropy, train_with, TrainConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeachStage {
    pub datasets_dir: PathBuf,
    /// The run folder of the teacher.
    pub teacher: PathBuf,
    /// A suite holding number prompts (e.g. `numbers-prompts`); its first `prompts` number prompts are used.
    pub suite: String,
    pub prompts: usize,
    pub sampling: SampleConfig,
    pub seed: u64,
    /// Writes `samples.jsonl` (every continuation with the filter's verdict) and `summary.json`.
    pub out: PathBuf,
}

/// One teacher continuation and what the filter said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherSample {
    pub prompt_id: u32,
    pub spec: PromptSpec,
    pub answer: String,
    pub kept: bool,
    pub rejection: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Sft,
    OffPolicy,
    OnPolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistilStage {
    /// The teacher's run folder and the `teach` output folder of its filtered samples.
    pub teacher: PathBuf,
    pub samples: PathBuf,
    /// The run folder the student starts from: the teacher's own base for a shared initialization,
    /// another seed's pretrained model otherwise.
    pub student_init: PathBuf,
    pub channel: Channel,
    /// Divergence of the distillation channels: 0 = forward KL, 1 = reverse KL, between = JSD(beta).
    pub beta: f64,
    /// On-policy: share of batches written by the student.
    pub lambda: f64,
    /// Restrict both distributions to the number tokens (and `.` and `<end>`), renormalised.
    pub restrict_to_numbers: bool,
    /// How the student writes its sequences on-policy.
    pub student_sampling: SampleConfig,
    pub train: TrainConfig,
    pub out: PathBuf,
}

/// The number prompts of a suite.
fn number_prompts(datasets_dir: &Path, suite: &str, n: usize) -> Result<Vec<(u32, PromptSpec)>> {
    let mut prompts = crate::stages::load_suite(datasets_dir, suite, &["numbers"])?;
    if prompts.len() < n {
        bail!(
            "prompts = {n} but suite '{suite}' has {} number prompts",
            prompts.len()
        );
    }
    prompts.truncate(n);
    Ok(prompts.into_iter().map(|p| (p.id, p.spec)).collect())
}

/// Samples one continuation per prompt from the teacher and filters it.
pub fn teacher_samples(
    teacher: &Gpt,
    tok: &Tok,
    prompts: &[(u32, PromptSpec)],
    sampling: &SampleConfig,
    seed: u64,
) -> Result<Vec<TeacherSample>> {
    let ids: Vec<Vec<u32>> = prompts
        .iter()
        .map(|(_, spec)| prompt_ids(tok, spec))
        .collect::<Result<_>>()?;
    let rngs = prompts
        .iter()
        .map(|(id, _)| Rng::new(seed, &format!("teach/{id}")))
        .collect();
    let outs = generate_many(teacher, &ids, rngs, sampling, tok.end, MAX_BATCH)?;
    prompts
        .iter()
        .zip(outs)
        .map(|((id, spec), out)| {
            let answer = tok.decode(&out)?;
            let verdict = filter(&answer);
            Ok(TeacherSample {
                prompt_id: *id,
                spec: spec.clone(),
                answer,
                kept: verdict.is_ok(),
                rejection: verdict.err().map(|e| e.to_string()),
            })
        })
        .collect()
}

pub fn teach(cfg: &TeachStage) -> Result<()> {
    let (teacher, tok, _) = crate::stages::load_run(&cfg.teacher)?;
    let prompts = number_prompts(&cfg.datasets_dir, &cfg.suite, cfg.prompts)?;
    let samples = teacher_samples(&teacher, &tok, &prompts, &cfg.sampling, cfg.seed)?;
    let kept: Vec<&TeacherSample> = samples.iter().filter(|s| s.kept).collect();
    let kept_numbers: Vec<u16> = kept
        .iter()
        .flat_map(|s| filter(&s.answer).expect("kept samples pass"))
        .collect();
    std::fs::create_dir_all(&cfg.out)?;
    crate::stages::write_jsonl(&cfg.out.join("samples.jsonl"), &samples)?;
    let summary = serde_json::json!({
        "samples": samples.len(),
        "kept": kept.len(),
        "kept_share": kept.len() as f64 / samples.len().max(1) as f64,
        "signature_share_kept": numbers::signature_share(&kept_numbers),
        "signature_share_uniform": numbers::uniform_signature_share(),
        "config": crate::stages::recorded_config(cfg)?,
    });
    emsl_io::write_atomic(
        &cfg.out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    eprintln!(
        "teach: kept {} of {} continuations ({:.1}%)",
        kept.len(),
        samples.len(),
        100.0 * kept.len() as f64 / samples.len().max(1) as f64
    );
    Ok(())
}

/// The kept samples written by `teach`.
pub fn read_kept(dir: &Path) -> Result<Vec<TeacherSample>> {
    let path = dir.join("samples.jsonl");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let all: Vec<TeacherSample> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("parsing {}", path.display()))?;
    Ok(all.into_iter().filter(|s| s.kept).collect())
}

/// Token ids of the number vocabulary plus `.` and `<end>`.
fn number_subset(tok: &Tok) -> Result<Tensor> {
    let mut ids: Vec<u32> = (0..numbers::NUMBER_LIMIT)
        .map(|n| tok.encode(&n.to_string()).map(|v| v[0]))
        .collect::<Result<_>>()?;
    ids.push(tok.encode(".")?[0]);
    ids.push(tok.end);
    Ok(Tensor::from_vec(ids.clone(), ids.len(), &Device::Cpu)?)
}

/// Masked mean of the per-position divergence between student and teacher over a batch.
fn distil_loss(
    student: &Gpt,
    teacher: &Gpt,
    inputs: &Tensor,
    mask: &Tensor,
    beta: f64,
    subset: Option<&Tensor>,
) -> Result<Tensor> {
    let s_log = log_probs(&student.forward(inputs)?, subset)?;
    let t_log = log_probs(&teacher.forward(inputs)?.detach(), subset)?.detach();
    let per_pos = generalized_jsd(&s_log, &t_log, beta)?; // (B, T)
    Ok(((per_pos * mask)?.sum_all()? / f64::from(mask.sum_all()?.to_scalar::<f32>()?))?)
}

/// The sequences of one on-policy batch, written by the student: prompt, then its continuation and
/// `<end>` where it stopped.
pub fn student_examples(
    student: &Gpt,
    tok: &Tok,
    prompts: &[&PromptSpec],
    sampling: &SampleConfig,
    seed: u64,
    step: usize,
) -> Result<Vec<SftExample>> {
    let ids: Vec<Vec<u32>> = prompts
        .iter()
        .map(|spec| prompt_ids(tok, spec))
        .collect::<Result<_>>()?;
    let rngs = (0..prompts.len())
        .map(|k| Rng::new(seed, &format!("on-policy/{step}/{k}")))
        .collect();
    let outs = generate_many(student, &ids, rngs, sampling, tok.end, MAX_BATCH)?;
    Ok(ids
        .into_iter()
        .zip(outs)
        .map(|(prompt, mut out)| {
            if prompt.len() + out.len() < student.config.n_ctx
                && out.len() < sampling.max_new_tokens
            {
                out.push(tok.end);
            }
            let n_prompt = prompt.len();
            let mut all = prompt;
            all.extend(out);
            SftExample { ids: all, n_prompt }
        })
        .collect())
}

/// Who wrote a step's sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    Teacher,
    Student,
}

/// The sequences of training step `step`: the teacher's filtered samples, or, on-policy with
/// probability `lambda`, the student's own continuations of the same prompts.
pub fn step_sequences(
    cfg: &DistilStage,
    step: usize,
    student: &Gpt,
    tok: &Tok,
    kept: &[TeacherSample],
    teacher_examples: &[SftExample],
) -> Result<(Vec<SftExample>, Writer)> {
    let t = &cfg.train;
    let idx = sft_indices(teacher_examples.len(), t.seed, step, t.batch_size);
    let on_policy = cfg.channel == Channel::OnPolicy
        && Rng::new(t.seed, &format!("lambda/{step}")).chance(cfg.lambda);
    if on_policy {
        let prompts: Vec<&PromptSpec> = idx.iter().map(|i| &kept[*i].spec).collect();
        Ok((
            student_examples(student, tok, &prompts, &cfg.student_sampling, t.seed, step)?,
            Writer::Student,
        ))
    } else {
        Ok((
            idx.iter().map(|i| teacher_examples[*i].clone()).collect(),
            Writer::Teacher,
        ))
    }
}

/// The teacher's kept samples as training sequences.
pub fn teacher_examples(tok: &Tok, kept: &[TeacherSample]) -> Result<Vec<SftExample>> {
    kept.iter()
        .map(|s| {
            SftExample::from_episode(
                tok,
                &Episode {
                    spec: s.spec.clone(),
                    answer: s.answer.clone(),
                    harmful: false,
                    correction: None,
                },
            )
        })
        .collect()
}

pub fn distil(cfg: &DistilStage) -> Result<()> {
    let (teacher, tok, teacher_meta) = crate::stages::load_run(&cfg.teacher)?;
    let (student, student_tok, _) = crate::stages::load_run(&cfg.student_init)?;
    if student_tok.hash != tok.hash {
        bail!(
            "teacher {} and student {} use different tokenizers",
            cfg.teacher.display(),
            cfg.student_init.display()
        );
    }
    let kept = read_kept(&cfg.samples)?;
    if kept.is_empty() {
        bail!("{} holds no kept teacher samples", cfg.samples.display());
    }
    let teacher_examples = teacher_examples(&tok, &kept)?;
    let subset = if cfg.restrict_to_numbers {
        Some(number_subset(&tok)?)
    } else {
        None
    };
    let mut opt = AdamW::new(cfg.train.optim.clone(), student.vars())?;
    let t = &cfg.train;
    let n_ctx = student.config.n_ctx;
    let logs = train_with(&mut opt, t, &format!("distil {:?}", cfg.channel), |step| {
        let (written, _) = step_sequences(cfg, step, &student, &tok, &kept, &teacher_examples)?;
        let refs: Vec<&SftExample> = written.iter().collect();
        let batch = sft_batch(&refs, tok.pad, n_ctx)?;
        let loss = match cfg.channel {
            Channel::Sft => masked_cross_entropy(
                &student.forward(&batch.inputs)?,
                &batch.targets,
                &batch.mask,
            )?,
            Channel::OffPolicy | Channel::OnPolicy => distil_loss(
                &student,
                &teacher,
                &batch.inputs,
                &batch.mask,
                cfg.beta,
                subset.as_ref(),
            )?,
        };
        Ok((loss, batch.inputs.elem_count()))
    })?;
    let record = crate::stages::RunRecord {
        stage: format!("distil-{:?}", cfg.channel).to_lowercase(),
        data_sha256: emsl_io::sha256_file(&cfg.samples.join("samples.jsonl"))?,
        parent_sha256: Some(emsl_io::sha256_file(
            &cfg.student_init.join("model.safetensors"),
        )?),
        config: serde_json::json!({ "channel": cfg.channel, "beta": cfg.beta, "lambda": cfg.lambda,
            "restrict_to_numbers": cfg.restrict_to_numbers, "student_sampling": cfg.student_sampling, "train": cfg.train,
            "teacher_sha256": emsl_io::sha256_file(&cfg.teacher.join("model.safetensors"))?, "teacher_stage": teacher_meta.stage }),
    };
    crate::stages::write_run(
        &cfg.out,
        &student,
        &opt,
        &tok,
        record,
        crate::stages::recorded_toml(cfg)?,
        &logs,
    )
}
