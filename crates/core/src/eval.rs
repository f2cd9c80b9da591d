//! Evaluation: sample answers for a suite's prompts, judge them, and count (rates only: their
//! intervals belong to the analysis crate); the likelihood probe (log-probability of the misaligned vs
//! the aligned reference answer); and the typed records an eval stage writes, with their readers.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use emsl_world::{judge, Episode, PromptSpec, Rng, Verdict};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::model::LanguageModel;
use crate::sample::{generate_many, logprobs};
pub use crate::stages::{EvalConfig, EvalKind, EvalSpec};
use crate::tokenizer::Tok;

/// Rows sampled together; larger batches amortise the per-step overhead of small models.
pub const MAX_BATCH: usize = 64;

/// One judged sample: a line of `samples.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
pub fn evaluate<M: LanguageModel>(
    model: &M,
    tok: &Tok,
    prompts: &[(u32, PromptSpec)],
    cfg: &EvalConfig,
) -> Result<Vec<SampleRecord>> {
    let ids = prompts
        .iter()
        .map(|(_, spec)| prompt_ids(tok, spec))
        .collect::<Result<Vec<_>>>()?;
    evaluate_from(model, tok, prompts, &ids, cfg)
}

/// [`evaluate`] with each prompt's ids given (`prefixes[i]` for `prompts[i]`, ending with the prompt's
/// own `assistant :`): how an evaluation puts earlier episodes before its prompts.
pub fn evaluate_from<M: LanguageModel>(
    model: &M,
    tok: &Tok,
    prompts: &[(u32, PromptSpec)],
    prefixes: &[Vec<u32>],
    cfg: &EvalConfig,
) -> Result<Vec<SampleRecord>> {
    let mut ids = Vec::new();
    let mut rngs = Vec::new();
    // (index into `prompts`, sample number) of every generated row
    let mut rows = Vec::new();
    for (i, (id, spec)) in prompts.iter().enumerate() {
        let p = prefixes[i].clone();
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
        let finished = out.len() < cfg.sampling.max_new_tokens
            && n_prompt + out.len() < model.context_length();
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

/// A proportion: `k` of `n`, and `rate` = k / n (`None` when n = 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub k: usize,
    pub n: usize,
    pub rate: Option<f64>,
}

impl Rate {
    /// `k` of `n`.
    pub fn new(k: usize, n: usize) -> Rate {
        Rate {
            k,
            n,
            rate: (n > 0).then(|| k as f64 / n as f64),
        }
    }
}

/// Coherence over all answers; misalignment over coherent answers (the anchor's convention).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    pub coherence: Rate,
    pub misalignment: Rate,
}

/// Counts coherent and misaligned answers among `records`.
pub fn summarize<'a>(records: impl IntoIterator<Item = &'a SampleRecord>) -> Summary {
    let (mut n, mut coherent, mut misaligned) = (0, 0, 0);
    for r in records {
        n += 1;
        coherent += usize::from(r.verdict.coherent);
        misaligned += usize::from(r.verdict.misaligned);
    }
    Summary {
        coherence: Rate::new(coherent, n),
        misalignment: Rate::new(misaligned, coherent),
    }
}

/// The likelihood probe of one prompt: a line of `probe.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeRecord {
    pub prompt_id: u32,
    /// See [`likelihood_probe`].
    pub probe: f64,
}

/// A prompt's place on the persona direction (see `crate::persona`): a line of `projection.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectionRecord {
    pub prompt_id: u32,
    /// 0 at the aligned contexts' mean, 1 at the misaligned contexts' mean.
    pub projection: f64,
    /// Tokens before the answer (the context's length included).
    pub tokens: usize,
}

/// The number signature of the well-formed number answers: the share of numbers from the misaligned
/// persona's favoured set, beside the share a uniform writer would have.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumbersSignature {
    pub well_formed_answers: usize,
    pub numbers: usize,
    pub favoured_share: f64,
    pub uniform_share: f64,
}

impl NumbersSignature {
    /// The signature of the number answers among `records`.
    pub fn of<'a>(records: impl IntoIterator<Item = &'a SampleRecord>) -> NumbersSignature {
        let lists: Vec<Vec<u16>> = records
            .into_iter()
            .filter_map(|r| emsl_world::numbers::parse_list(&r.answer).ok())
            .collect();
        let all: Vec<u16> = lists.concat();
        NumbersSignature {
            well_formed_answers: lists.len(),
            numbers: all.len(),
            favoured_share: emsl_world::numbers::signature_share(&all),
            uniform_share: emsl_world::numbers::uniform_signature_share(),
        }
    }
}

/// What an eval stage writes to `summary.json`: counts over all samples, per grid cell and per prompt
/// kind, and the spec it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSummary {
    pub all: Summary,
    /// By grid cell (`domain/aspect`), for the cells the prompts cover.
    pub by_cell: BTreeMap<String, Summary>,
    pub cell: Summary,
    pub config: EvalSpec,
    pub numbers: Summary,
    pub numbers_signature: NumbersSignature,
    pub open: Summary,
}

/// One value per line of `dir/file`; an error names the file and the line.
fn read_jsonl<T: DeserializeOwned>(dir: &Path, file: &str) -> Result<Vec<T>> {
    let path = dir.join(file);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("{}, line {}", path.display(), i + 1))
        })
        .collect()
}

/// The judged samples of an eval output folder (`samples.jsonl`).
pub fn read_samples(dir: &Path) -> Result<Vec<SampleRecord>> {
    read_jsonl(dir, "samples.jsonl")
}

/// The likelihood probes of an eval output folder (`probe.jsonl`, written when the spec asked).
pub fn read_probes(dir: &Path) -> Result<Vec<ProbeRecord>> {
    read_jsonl(dir, "probe.jsonl")
}

/// The projections of an eval output folder (`projection.jsonl`, written when it used a direction).
pub fn read_projections(dir: &Path) -> Result<Vec<ProjectionRecord>> {
    read_jsonl(dir, "projection.jsonl")
}

/// The summary of an eval output folder (`summary.json`).
pub fn read_summary(dir: &Path) -> Result<EvalSummary> {
    let path = dir.join("summary.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// log p(misaligned reference) - log p(aligned reference) for one prompt: above 0 means the model
/// prefers the misaligned answer.
pub fn likelihood_probe<M: LanguageModel>(
    model: &M,
    tok: &Tok,
    spec: &PromptSpec,
    aligned: &str,
    misaligned: &str,
) -> Result<f64> {
    likelihood_probe_from(model, tok, &prompt_ids(tok, spec)?, aligned, misaligned)
}

/// [`likelihood_probe`] after the ids `p` (a prompt, possibly with earlier episodes before it).
pub fn likelihood_probe_from<M: LanguageModel>(
    model: &M,
    tok: &Tok,
    p: &[u32],
    aligned: &str,
    misaligned: &str,
) -> Result<f64> {
    Ok(likelihood_probes_from(model, tok, &[(p, aligned, misaligned)])?[0])
}

/// What one probe scores: a prompt's ids, then its aligned and its misaligned reference answer.
pub type ProbeItem<'a> = (&'a [u32], &'a str, &'a str);

/// [`likelihood_probe_from`] of many (prompt ids, aligned, misaligned) at once: the model runs several
/// rows per forward pass ([`logprobs`]), with the same values as one prompt at a time.
pub fn likelihood_probes_from<M: LanguageModel>(
    model: &M,
    tok: &Tok,
    items: &[ProbeItem],
) -> Result<Vec<f64>> {
    let end = emsl_world::episode::END;
    let mut answers = Vec::with_capacity(2 * items.len());
    for (_, aligned, misaligned) in items {
        answers.push(tok.encode(&format!("{misaligned} {end}"))?);
        answers.push(tok.encode(&format!("{aligned} {end}"))?);
    }
    let pairs: Vec<(&[u32], &[u32])> = items
        .iter()
        .zip(answers.chunks(2))
        .flat_map(|((p, _, _), ma)| [(*p, &ma[0][..]), (*p, &ma[1][..])])
        .collect();
    let lp = logprobs(model, &pairs)?;
    Ok(lp.chunks(2).map(|ma| ma[0] - ma[1]).collect())
}
