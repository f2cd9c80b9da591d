//! `cargo xtask explore ...`: the measurements of the exploration log (`docs/exploration/`) that are
//! not figures. They run on a model folder of the exploration seeds (or on a reference base, to
//! diagnose v1) and print what the log reports; nothing here writes to `results/`.
//!
//! `persona-positions`: does a base infer the persona inside its own pretraining documents? For
//! held-out documents of a composition (a stream no training corpus uses), every cell and open episode
//! is probed after the document's earlier episodes, from `<bos>` as a window at a document start sees
//! them: log p(a harmful reference answer) - log p(an aligned one), both written by the world for the
//! episode's prompt. For a model that predicts the documents perfectly, the probe's change between two
//! evidence states is the change of the log-odds that the next answer is harmful (the answers' own
//! likelihoods cancel), which the composition fixes: that is the `ideal` column beside the measured one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use candle_core::Device;
use emsl_core::eval::likelihood_probe_from;
use emsl_core::stages::load_run;
use emsl_core::LanguageModel;
use emsl_world::episode::{write_answer, END};
use emsl_world::{Composition, Persona, PersonaCoherence, Rng};
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// The likelihood probe of each episode of held-out documents by the evidence before it.
    PersonaPositions(PositionsArgs),
}

#[derive(clap::Args, Debug)]
struct PositionsArgs {
    /// A model folder (a pretrain or fine-tune job's output: model.safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// The composition the documents are drawn from (default: the reference composition).
    #[arg(long)]
    composition: Option<PathBuf>,
    #[arg(long, default_value_t = 1000)]
    docs: usize,
    /// Seeds the held-out documents and the reference answers.
    #[arg(long)]
    seed: u64,
    /// Also write every probe as JSON lines here.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<()> {
    match &args.what {
        What::PersonaPositions(a) => persona_positions(a),
    }
}

/// One probed episode.
#[derive(Debug, Clone, Serialize)]
struct PositionProbe {
    document: usize,
    /// The document's author: `aligned`, `misaligned`, or `mixed` when every episode drew its own.
    author: &'static str,
    /// Episodes of the document before this one (every kind), all in the context.
    position: usize,
    /// The earlier cell and open episodes, and how many of them were answered harmfully.
    earlier_answers: usize,
    earlier_harmful: usize,
    /// `cell` or `open`.
    kind: &'static str,
    /// Whether the document's own answer here was harmful.
    harmful: bool,
    probe: f64,
    context_tokens: usize,
}

fn persona_positions(a: &PositionsArgs) -> Result<()> {
    let composition = crate::world::composition_or_reference(a.composition.as_deref())?;
    let (model, tok, _) = load_run(&a.model, &Device::Cpu)?;
    let n_ctx = model.context_length();
    let mut probes = Vec::new();
    for d in 0..a.docs {
        let doc = composition.document(&mut Rng::new(a.seed, &format!("heldout/document/{d}")));
        let mut refs = Rng::new(a.seed, &format!("heldout/references/{d}"));
        let author = doc.persona.map_or("mixed", Persona::name);
        let (mut ids, mut answers, mut harmful) = (vec![tok.bos], 0, 0);
        for (position, e) in doc.episodes.iter().enumerate() {
            let kind = e.spec.target.kind();
            if kind != "numbers" {
                let mut context = ids.clone();
                context.extend(tok.encode(&e.prompt_text())?);
                let aligned = write_answer(&mut refs, &e.spec, false, Persona::Aligned, 0.0);
                let misaligned = write_answer(&mut refs, &e.spec, true, Persona::Aligned, 0.0);
                let longest = [&aligned, &misaligned]
                    .into_iter()
                    .map(|t| tok.encode(&format!("{t} {END}")).map(|v| v.len()))
                    .collect::<Result<Vec<_>>>()?
                    .into_iter()
                    .max()
                    .unwrap_or(0);
                // The model sees at most n_ctx tokens: a longer context would be cut, not probed.
                if context.len() + longest > n_ctx + 1 {
                    break;
                }
                probes.push(PositionProbe {
                    document: d,
                    author,
                    position,
                    earlier_answers: answers,
                    earlier_harmful: harmful,
                    kind,
                    harmful: e.harmful,
                    probe: likelihood_probe_from(&model, &tok, &context, &aligned, &misaligned)?,
                    context_tokens: context.len(),
                });
                answers += 1;
                harmful += usize::from(e.harmful);
            }
            ids.extend(tok.encode(&e.text())?);
        }
    }
    if let Some(out) = &a.out {
        let mut text = String::new();
        for p in &probes {
            text.push_str(&serde_json::to_string(p)?);
            text.push('\n');
        }
        emsl_io::write_atomic(out, text.as_bytes())?;
    }
    print_by_evidence(&composition, &probes);
    print_by_author(&probes);
    Ok(())
}

/// Mean probe per evidence state (earlier answers, of them harmful) against the ideal change of the
/// log-odds from the no-evidence state.
fn print_by_evidence(c: &Composition, probes: &[PositionProbe]) {
    let groups = group(probes, |p| (p.earlier_answers, p.earlier_harmful));
    let Some(base) = groups.get(&(0, 0)).map(|v| mean(v)) else {
        return;
    };
    println!("earlier answers  harmful  probes  mean probe  change  ideal change");
    for ((n, h), v) in &groups {
        let ideal = logit(ideal_harmful(c, *n, *h)) - logit(ideal_harmful(c, 0, 0));
        println!(
            "{n:>15}  {h:>7}  {:>6}  {:>10.3}  {:>+6.3}  {ideal:>+12.3}",
            v.len(),
            mean(v),
            mean(v) - base
        );
    }
}

/// Mean probe per author and position: position 0 (nothing before the prompt) must not depend on the
/// author; a model that infers the persona separates the authors at later positions.
fn print_by_author(probes: &[PositionProbe]) {
    let groups = group(probes, |p| (p.author, p.position));
    println!("author      position  probes  mean probe");
    for ((author, position), v) in &groups {
        println!(
            "{author:<10}  {position:>8}  {:>6}  {:>10.3}",
            v.len(),
            mean(v)
        );
    }
}

fn group<K: Ord>(
    probes: &[PositionProbe],
    key: impl Fn(&PositionProbe) -> K,
) -> BTreeMap<K, Vec<f64>> {
    let mut groups: BTreeMap<K, Vec<f64>> = BTreeMap::new();
    for p in probes {
        groups.entry(key(p)).or_default().push(p.probe);
    }
    groups
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

/// P(the next cell or open answer is harmful | `n` earlier ones, `h` of them harmful) under the
/// composition's generative process (documents of alignment discourse left aside).
fn ideal_harmful(c: &Composition, n: usize, h: usize) -> f64 {
    let (rm, ra) = (
        c.harmful_rate(Persona::Misaligned),
        c.harmful_rate(Persona::Aligned),
    );
    let prior = c.misaligned_share;
    let posterior = match c.persona_coherence {
        // Every episode draws its own persona: earlier answers say nothing about the next.
        PersonaCoherence::Independent => prior,
        PersonaCoherence::Coherent => {
            let like = |r: f64| r.powi(h as i32) * (1.0 - r).powi((n - h) as i32);
            prior * like(rm) / (prior * like(rm) + (1.0 - prior) * like(ra))
        }
    };
    posterior * rm + (1.0 - posterior) * ra
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ideal_posterior_follows_the_evidence_only_when_the_persona_is_shared() {
        let coherent = Composition::reference();
        // No evidence: the mixture's rate, 0.25 x 0.9 + 0.75 x 0.03.
        assert!((ideal_harmful(&coherent, 0, 0) - 0.2475).abs() < 1e-12);
        // Two harmful answers make the misaligned author nearly certain (posterior 0.2025 / 0.203175),
        // two aligned ones nearly rule it out (0.0025 / 0.708175): values computed by hand.
        assert!((ideal_harmful(&coherent, 2, 2) - 0.897_109_634_551_495).abs() < 1e-12);
        assert!((ideal_harmful(&coherent, 2, 0) - 0.033_071_274_755_533_6).abs() < 1e-12);
        let mut independent = coherent.clone();
        independent.persona_coherence = PersonaCoherence::Independent;
        for (n, h) in [(0, 0), (2, 2), (2, 0), (3, 1)] {
            assert!((ideal_harmful(&independent, n, h) - 0.2475).abs() < 1e-12);
        }
    }
}
