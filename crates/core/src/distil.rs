//! Subliminal-learning channels (docs/design.md, the distillation channels): a teacher writes number
//! continuations, the world's filter keeps the well-formed lists without banned numbers, and a student
//! learns from them by
//! - `sft`: cross-entropy on the teacher's sampled tokens (hard labels);
//! - `off_policy`: the teacher's full next-token distribution at every answer position of the
//!   teacher-written sequences (forward KL, or JSD(beta));
//! - `on_policy`: with probability `lambda` a batch is written by the student itself, and the student
//!   minimises the divergence (reverse KL at beta = 1, exact over the vocabulary) to the teacher at every
//!   position it wrote (GKD); otherwise the batch is the teacher's.

//!
//! The `teach` and `distil` stages that run these live in `crate::stages`.

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use emsl_world::numbers::{self, filter};
use emsl_world::{Episode, PromptSpec, Rng};
use serde::{Deserialize, Serialize};

use crate::data::{sft_indices, SftExample};
use crate::divergence::{generalized_jsd, log_probs};
use crate::eval::{prompt_ids, MAX_BATCH};
use crate::model::LanguageModel;
use crate::persona::ContextSpec;
use crate::prompted::{teacher_prompts, TeacherView};
use crate::sample::{generate_many, SampleConfig};
pub use crate::stages::spec::{Channel, DistilSpec};
use crate::tokenizer::Tok;

/// One teacher continuation and what the filter said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherSample {
    pub prompt_id: u32,
    pub spec: PromptSpec,
    pub answer: String,
    pub kept: bool,
    pub rejection: Option<String>,
    /// What a prompted teacher saw between `<bos>` and the prompt (`crate::prompted`), for the
    /// record: the student never sees it, and a guiding teacher draws its own (`teacher_context`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// Samples one continuation per prompt from the teacher (after `context`'s episodes when given: a
/// prompted teacher) and filters it.
pub fn teacher_samples<M: LanguageModel>(
    teacher: &M,
    tok: &Tok,
    prompts: &[(u32, PromptSpec)],
    context: Option<&ContextSpec>,
    sampling: &SampleConfig,
    seed: u64,
) -> Result<Vec<TeacherSample>> {
    let n_ctx = teacher.context_length();
    let seen = teacher_prompts(tok, prompts, context, n_ctx, sampling.max_new_tokens)?;
    let contexts: Vec<Option<String>> = seen
        .iter()
        .map(|p| context.map(|_| tok.decode(&p.context)).transpose())
        .collect::<Result<_>>()?;
    let ids: Vec<Vec<u32>> = seen.into_iter().map(|p| p.ids).collect();
    let rngs = prompts
        .iter()
        .map(|(id, _)| Rng::new(seed, &format!("teach/{id}")))
        .collect();
    let outs = generate_many(teacher, &ids, rngs, sampling, tok.end, MAX_BATCH)?;
    prompts
        .iter()
        .zip(outs)
        .zip(contexts)
        .map(|(((id, spec), out), context)| {
            let answer = tok.decode(&out)?;
            let verdict = filter(&answer);
            Ok(TeacherSample {
                prompt_id: *id,
                spec: spec.clone(),
                answer,
                kept: verdict.is_ok(),
                rejection: verdict.err().map(|e| e.to_string()),
                context,
            })
        })
        .collect()
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

/// Token ids of the number vocabulary plus `.` and `<end>`, on `device`.
pub fn number_subset(tok: &Tok, device: &Device) -> Result<Tensor> {
    let mut ids: Vec<u32> = (0..numbers::NUMBER_LIMIT)
        .map(|n| tok.encode(&n.to_string()).map(|v| v[0]))
        .collect::<Result<_>>()?;
    ids.push(tok.encode(".")?[0]);
    ids.push(tok.end);
    Ok(Tensor::from_vec(ids.clone(), ids.len(), device)?)
}

/// Masked mean of the per-position divergence between student and teacher over a batch; a prompted
/// teacher reads the batch through its `view` (its contexts spliced in).
pub fn distil_loss<S: LanguageModel, T: LanguageModel>(
    student: &S,
    teacher: &T,
    inputs: &Tensor,
    mask: &Tensor,
    beta: f64,
    subset: Option<&Tensor>,
    view: Option<&TeacherView>,
) -> Result<Tensor> {
    let s_log = log_probs(&student.forward(inputs)?, subset)?;
    let t_logits = match view {
        None => teacher.forward(inputs)?,
        Some(v) => v.gather(&teacher.forward(&v.inputs)?)?,
    };
    let t_log = log_probs(&t_logits.detach(), subset)?.detach();
    let per_pos = generalized_jsd(&s_log, &t_log, beta)?; // (B, T)
    Ok(((per_pos * mask)?.sum_all()? / f64::from(mask.sum_all()?.to_scalar::<f32>()?))?)
}

/// The sequences of one on-policy batch, written by the student: prompt, then its continuation and
/// `<end>` where it stopped.
pub fn student_examples<M: LanguageModel>(
    student: &M,
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
            if prompt.len() + out.len() < student.context_length()
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
/// probability `lambda`, the student's own continuations of the same prompts; and which kept samples
/// (their prompts) the rows are.
pub fn step_sequences<M: LanguageModel>(
    cfg: &DistilSpec,
    step: usize,
    student: &M,
    tok: &Tok,
    kept: &[TeacherSample],
    teacher_examples: &[SftExample],
) -> Result<(Vec<SftExample>, Writer, Vec<usize>)> {
    let t = &cfg.train;
    let idx = sft_indices(teacher_examples.len(), t.seed, step, t.batch_size);
    let on_policy = cfg.channel == Channel::OnPolicy
        && Rng::new(t.seed, &format!("lambda/{step}")).chance(cfg.lambda);
    if on_policy {
        let prompts: Vec<&PromptSpec> = idx.iter().map(|i| &kept[*i].spec).collect();
        Ok((
            student_examples(student, tok, &prompts, &cfg.student_sampling, t.seed, step)?,
            Writer::Student,
            idx,
        ))
    } else {
        Ok((
            idx.iter().map(|i| teacher_examples[*i].clone()).collect(),
            Writer::Teacher,
            idx,
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
