//! A prompted teacher (Cloud et al. 2025's system-prompted teachers): a model that holds its trait
//! through a context the student never sees. In the world the context is earlier episodes by one
//! persona (the persona-inference figure's contexts); the teacher writes its number continuations
//! after them, the filter keeps the clean ones, and the student learns the prompt and continuation
//! alone. A distillation channel that uses the teacher's distributions computes them with the context
//! spliced back in, so the teacher guides as it wrote.

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use emsl_world::PromptSpec;

use crate::data::SftExample;
use crate::eval::prompt_ids;
use crate::persona::{context_prompt_ids, context_rng, ContextSpec};
use crate::tokenizer::Tok;

/// What a teacher continues for one prompt: `<bos>`, its context (empty without one), the prompt.
pub struct TeacherPrompt {
    pub ids: Vec<u32>,
    pub context: Vec<u32>,
}

/// The teacher's prompt for each `(id, prompt)`: after `context`'s episodes, drawn from the prompt's
/// own stream (`context_rng`), so that a teacher that writes and a teacher that guides on the same
/// prompt read the same context. The context leaves room for `max_new_tokens` and the end token
/// within `n_ctx`, so every sequence fits the teacher's view in distillation.
pub fn teacher_prompts(
    tok: &Tok,
    prompts: &[(u32, PromptSpec)],
    context: Option<&ContextSpec>,
    n_ctx: usize,
    max_new_tokens: usize,
) -> Result<Vec<TeacherPrompt>> {
    prompts
        .iter()
        .map(|(id, spec)| {
            let plain = prompt_ids(tok, spec)?;
            let Some(c) = context else {
                return Ok(TeacherPrompt {
                    ids: plain,
                    context: Vec::new(),
                });
            };
            let budget = n_ctx.saturating_sub(max_new_tokens + 1);
            let mut rng = context_rng(c, *id);
            let ids = context_prompt_ids(tok, spec, c.persona, c.episodes, &mut rng, budget)?;
            // `<bos>`, the context, then the prompt without its `<bos>`.
            let context = ids[1..ids.len() + 1 - plain.len()].to_vec();
            Ok(TeacherPrompt { ids, context })
        })
        .collect()
}

/// The teacher's inputs for a batch whose rows the student sees without their contexts: each row
/// with its context spliced in after `<bos>` (right-padded to the longest), and for every student
/// position the flat index (row x teacher length + position) of the same token in the teacher's rows.
pub struct TeacherView {
    /// (B, Lt) u32.
    pub inputs: Tensor,
    /// (B x T) u32, T the student batch's length.
    pub positions: Tensor,
}

impl TeacherView {
    /// `None` when no row has a context: the teacher then reads the student's batch as it is.
    pub fn of_batch(
        rows: &[&SftExample],
        contexts: &[&[u32]],
        t: usize,
        pad: u32,
        n_ctx: usize,
        device: &Device,
    ) -> Result<Option<TeacherView>> {
        assert_eq!(rows.len(), contexts.len(), "one context per row");
        if contexts.iter().all(|c| c.is_empty()) {
            return Ok(None);
        }
        // The student's inputs of row r are ids[..len] with len = min(ids.len() - 1, t).
        let lens: Vec<usize> = rows.iter().map(|e| (e.ids.len() - 1).min(t)).collect();
        let lt = lens
            .iter()
            .zip(contexts)
            .map(|(l, c)| l + c.len())
            .max()
            .unwrap_or(1);
        if lt > n_ctx {
            bail!(
                "a prompted teacher's context and sequence take {lt} tokens, more than the model's \
                 {n_ctx}: teach with fewer context episodes or fewer new tokens"
            );
        }
        let b = rows.len();
        let mut x = vec![pad; b * lt];
        let mut pos = vec![0u32; b * t];
        for (r, ((e, c), len)) in rows.iter().zip(contexts).zip(&lens).enumerate() {
            let row = &mut x[r * lt..(r + 1) * lt];
            row[0] = e.ids[0];
            row[1..1 + c.len()].copy_from_slice(c);
            row[1 + c.len()..c.len() + len].copy_from_slice(&e.ids[1..*len]);
            for j in 0..t {
                // Padded student positions are masked in the loss; any index of the row does.
                let p = (c.len() + j).min(lt - 1);
                pos[r * t + j] = (r * lt + p) as u32;
            }
        }
        Ok(Some(TeacherView {
            inputs: Tensor::from_vec(x, (b, lt), device)?,
            positions: Tensor::from_vec(pos, b * t, device)?,
        }))
    }

    /// The teacher's logits (B, Lt, V) at the student's positions: (B, T, V).
    pub fn gather(&self, teacher_logits: &Tensor) -> Result<Tensor> {
        let (b, lt, v) = teacher_logits.dims3()?;
        let t = self.positions.dim(0)? / b;
        Ok(teacher_logits
            .reshape((b * lt, v))?
            .index_select(&self.positions, 0)?
            .reshape((b, t, v))?)
    }
}
