//! Training data: a token stream for pretraining, prompt/completion pairs for SFT, and their batches.
//!
//! Batches are a pure function of (seed, step), so a run resumed from a checkpoint at step s sees
//! exactly the batches an uninterrupted run would have seen.

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use emsl_io::arrow::array::RecordBatch;
use emsl_io::column_str;
use emsl_world::{Episode, PromptSpec, Rng};

use crate::tokenizer::Tok;

/// Documents concatenated as `<bos> text <eos>`.
pub struct TokenStream {
    pub ids: Vec<u32>,
}

impl TokenStream {
    pub fn from_texts<'a>(tok: &Tok, texts: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let mut ids = Vec::new();
        for text in texts {
            ids.push(tok.bos);
            ids.extend(tok.encode(text)?);
            ids.push(tok.eos);
        }
        Ok(TokenStream { ids })
    }
}

/// One SFT example: `<bos> prompt completion`; the loss covers only the completion's tokens.
#[derive(Debug, Clone)]
pub struct SftExample {
    pub ids: Vec<u32>,
    /// Tokens before the completion (`<bos>` and the prompt).
    pub n_prompt: usize,
}

impl SftExample {
    pub fn new(tok: &Tok, prompt: &str, completion: &str) -> Result<Self> {
        let mut ids = vec![tok.bos];
        ids.extend(tok.encode(prompt)?);
        let n_prompt = ids.len();
        ids.extend(tok.encode(completion)?);
        Ok(SftExample { ids, n_prompt })
    }

    pub fn from_episode(tok: &Tok, e: &Episode) -> Result<Self> {
        Self::new(tok, &e.prompt_text(), &e.completion_text())
    }
}

/// Inputs (B, T) u32, targets (B, T) u32 and loss mask (B, T) f32.
pub struct Batch {
    pub inputs: Tensor,
    pub targets: Tensor,
    pub mask: Tensor,
    /// Tokens that count in the loss.
    pub tokens: usize,
}

/// Random windows of `t + 1` tokens for pretraining step `step`, on `device`.
pub fn stream_batch(
    stream: &TokenStream,
    seed: u64,
    step: usize,
    b: usize,
    t: usize,
    device: &Device,
) -> Result<Batch> {
    anyhow::ensure!(
        stream.ids.len() > t + 1,
        "the corpus has {} tokens, fewer than one window of {}",
        stream.ids.len(),
        t + 1
    );
    let mut rng = Rng::new(seed, &format!("data/step/{step}"));
    let (mut x, mut y) = (Vec::with_capacity(b * t), Vec::with_capacity(b * t));
    for _ in 0..b {
        let start = rng.below(stream.ids.len() - t);
        x.extend_from_slice(&stream.ids[start..start + t]);
        y.extend_from_slice(&stream.ids[start + 1..start + t + 1]);
    }
    Ok(Batch {
        inputs: Tensor::from_vec(x, (b, t), device)?,
        targets: Tensor::from_vec(y, (b, t), device)?,
        mask: Tensor::ones((b, t), candle_core::DType::F32, device)?,
        tokens: b * t,
    })
}

/// The examples of SFT step `step`: epochs are shuffled independently, and steps walk through them.
pub fn sft_indices(n: usize, seed: u64, step: usize, b: usize) -> Vec<usize> {
    epoch_indices(n, seed, "data", step, b)
}

/// The `b` examples of `step` when every epoch visits the `n` examples once in an order drawn from the
/// stream `<stream>/epoch/<epoch>`: one stream name per purpose, so two data sets of one run draw
/// independent orders from one seed.
pub fn epoch_indices(n: usize, seed: u64, stream: &str, step: usize, b: usize) -> Vec<usize> {
    (step * b..(step + 1) * b)
        .map(|k| {
            let (epoch, pos) = (k / n, k % n);
            let mut order: Vec<usize> = (0..n).collect();
            Rng::new(seed, &format!("{stream}/epoch/{epoch}")).shuffle(&mut order);
            order[pos]
        })
        .collect()
}

/// A padded batch of SFT examples, cut to the context `n_ctx`.
pub fn sft_batch(
    examples: &[&SftExample],
    pad: u32,
    n_ctx: usize,
    device: &Device,
) -> Result<Batch> {
    let t = examples
        .iter()
        .map(|e| e.ids.len() - 1)
        .max()
        .unwrap_or(1)
        .min(n_ctx);
    let b = examples.len();
    let (mut x, mut y, mut m) = (vec![pad; b * t], vec![pad; b * t], vec![0f32; b * t]);
    let mut tokens = 0;
    for (r, e) in examples.iter().enumerate() {
        let len = (e.ids.len() - 1).min(t);
        for j in 0..len {
            x[r * t + j] = e.ids[j];
            y[r * t + j] = e.ids[j + 1];
            // Position j predicts token j + 1: it counts when that token is part of the completion.
            if j + 1 >= e.n_prompt {
                m[r * t + j] = 1.0;
                tokens += 1;
            }
        }
    }
    Ok(Batch {
        inputs: Tensor::from_vec(x, (b, t), device)?,
        targets: Tensor::from_vec(y, (b, t), device)?,
        mask: Tensor::from_vec(m, (b, t), device)?,
        tokens,
    })
}

/// The episodes of a fine-tuning dataset (columns `spec` and `answer`).
pub fn episodes(batch: &RecordBatch, dataset: &str) -> Result<Vec<Episode>> {
    let specs = column_str(batch, "spec")?;
    let answers = column_str(batch, "answer")?;
    (0..batch.num_rows())
        .map(|i| {
            let spec = PromptSpec::from_json(specs.value(i))
                .with_context(|| format!("dataset '{dataset}', row {i}, column `spec`"))?;
            Ok(Episode {
                spec,
                answer: answers.value(i).to_owned(),
                harmful: false,
                correction: None,
            })
        })
        .collect()
}
