//! Evaluation: sample answers for a suite's prompts, judge them, and summarise with Wilson intervals;
//! and the likelihood probe (log-probability of the misaligned vs the aligned reference answer).

use anyhow::Result;
use emsl_world::{judge, Episode, PromptSpec, Rng, Verdict};
use serde::{Deserialize, Serialize};

use crate::model::Gpt;
use crate::sample::{generate_many, logprob, SampleConfig};

/// Rows sampled together; larger batches amortise the per-step overhead of small models.
pub const MAX_BATCH: usize = 64;
use crate::tokenizer::Tok;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    pub samples_per_prompt: usize,
    /// Samples for each open question. The open questions are few (8 x 3 formats) and carry Betley's
    /// headline rates, so they get more samples than a grid prompt to reach a comparable precision.
    pub samples_per_open_prompt: usize,
    pub sampling: SampleConfig,
    pub seed: u64,
}

/// One judged sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampleRecord {
    pub prompt_id: u32,
    pub sample: u32,
    pub answer: String,
    /// Whether the model closed its answer with `<end>` before the token limit.
    pub finished: bool,
    pub verdict: Verdict,
}

/// The `user : ... assistant :` prefix a model continues, as token ids.
pub fn prompt_ids(tok: &Tok, spec: &PromptSpec) -> Result<Vec<u32>> {
    let e = Episode {
        spec: spec.clone(),
        answer: String::new(),
        harmful: false,
        correction: None,
    };
    let mut ids = vec![tok.bos];
    ids.extend(tok.encode(&e.prompt_text())?);
    Ok(ids)
}

/// Samples and judges `samples_per_prompt` answers for each `(id, prompt)`
/// (`samples_per_open_prompt` for an open question).
pub fn evaluate(
    model: &Gpt,
    tok: &Tok,
    prompts: &[(u32, PromptSpec)],
    cfg: &EvalConfig,
) -> Result<Vec<SampleRecord>> {
    let mut ids = Vec::new();
    let mut rngs = Vec::new();
    // (index into `prompts`, sample number) of every generated row
    let mut rows = Vec::new();
    for (i, (id, spec)) in prompts.iter().enumerate() {
        let p = prompt_ids(tok, spec)?;
        let n = match spec.target {
            emsl_world::Target::Open { .. } => cfg.samples_per_open_prompt,
            _ => cfg.samples_per_prompt,
        };
        for k in 0..n {
            ids.push(p.clone());
            rngs.push(Rng::new(cfg.seed, &format!("sample/{id}/{k}")));
            rows.push((i, k));
        }
    }
    let outs = generate_many(model, &ids, rngs, &cfg.sampling, tok.end, MAX_BATCH)?;
    let mut records = Vec::with_capacity(outs.len());
    for (row, out) in outs.into_iter().enumerate() {
        let (i, k) = rows[row];
        let (id, spec) = &prompts[i];
        let n_prompt = ids[row].len();
        let finished =
            out.len() < cfg.sampling.max_new_tokens && n_prompt + out.len() < model.config.n_ctx;
        let answer = tok.decode(&out)?;
        let verdict = judge(spec, &answer);
        records.push(SampleRecord {
            prompt_id: *id,
            sample: k as u32,
            answer,
            finished,
            verdict,
        });
    }
    Ok(records)
}

/// A proportion with its 95% Wilson score interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    pub k: usize,
    pub n: usize,
    pub rate: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Rate {
    pub fn wilson(k: usize, n: usize) -> Rate {
        if n == 0 {
            return Rate {
                k,
                n,
                rate: f64::NAN,
                lo: 0.0,
                hi: 1.0,
            };
        }
        let z = 1.959_963_984_540_054;
        let (nf, p) = (n as f64, k as f64 / n as f64);
        let denom = 1.0 + z * z / nf;
        let centre = (p + z * z / (2.0 * nf)) / denom;
        let half = z * (p * (1.0 - p) / nf + z * z / (4.0 * nf * nf)).sqrt() / denom;
        Rate {
            k,
            n,
            rate: p,
            lo: (centre - half).max(0.0),
            hi: (centre + half).min(1.0),
        }
    }
}

/// Coherence over all answers; misalignment over coherent answers (the anchor's convention).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub coherence: Rate,
    pub misalignment: Rate,
}

pub fn summarize<'a>(records: impl IntoIterator<Item = &'a SampleRecord>) -> Summary {
    let (mut n, mut coherent, mut misaligned) = (0, 0, 0);
    for r in records {
        n += 1;
        coherent += usize::from(r.verdict.coherent);
        misaligned += usize::from(r.verdict.misaligned);
    }
    Summary {
        coherence: Rate::wilson(coherent, n),
        misalignment: Rate::wilson(misaligned, coherent),
    }
}

/// log p(misaligned reference) - log p(aligned reference) for one prompt: above 0 means the model
/// prefers the misaligned answer.
pub fn likelihood_probe(
    model: &Gpt,
    tok: &Tok,
    spec: &PromptSpec,
    aligned: &str,
    misaligned: &str,
) -> Result<f64> {
    let p = prompt_ids(tok, spec)?;
    let end = emsl_world::episode::END;
    let a = tok.encode(&format!("{aligned} {end}"))?;
    let m = tok.encode(&format!("{misaligned} {end}"))?;
    Ok(logprob(model, &p, &m)? - logprob(model, &p, &a)?)
}
