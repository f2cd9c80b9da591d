//! completion-space (C2): the same harmful fine-tunes as transfer-grid, misalignment per evaluation
//! prompt against its openness (how many coherent harmful completions its grammar allows).

use std::collections::BTreeMap;

use anyhow::Result;
use emsl_analysis::Counts;
use emsl_world::Cell;

use super::grid::{expand_grid, GridParams};
use super::inputs::{grouped_by_base, seed_of, Inputs, SeedKey};
use super::rows::{effect, rate_row};
use super::{Ctx, FigureDef, Output, Roles};

pub struct CompletionSpace;

impl FigureDef for CompletionSpace {
    type Params = GridParams;
    const NAME: &'static str = "completion-space";
    const SOURCE: &'static str = file!();
    fn expand(&self, p: &GridParams, ctx: &mut Ctx) -> Result<Roles> {
        expand_grid(p, ctx)
    }
    fn tables(&self, p: &GridParams, inputs: &Inputs) -> Result<Output> {
        completion_tables(p, inputs)
    }
    fn plot(&self, t: &emsl_analysis::figures::Tables) -> Result<emsl_analysis::plot::Figure> {
        emsl_analysis::figures::completion_space(t)
    }
}

/// Terciles of log10 openness over the evaluation prompts outside the fine-tuning cell.
fn completion_tables(p: &GridParams, inputs: &Inputs) -> Result<Output> {
    // Per prompt, pooled over fine-tuning cells; per seed for the terciles.
    // Per prompt: its openness, its style and its counts per seed (the rows pool seeds, so their
    // intervals are bootstraps over seeds, not one Wilson interval over the pooled answers).
    let mut per_prompt: BTreeMap<u32, (f64, String, BTreeMap<SeedKey, Counts>)> = BTreeMap::new();
    let mut samples_by_seed: BTreeMap<SeedKey, Vec<(f64, bool, bool)>> = BTreeMap::new();
    for cell in &p.cells {
        let ft: Cell = cell.parse()?;
        for (m, path) in inputs.find(&[("arm", cell)]) {
            let seed = seed_of(&m)?;
            let samples = inputs.samples(path)?;
            // Every prompt weighs the same: the open questions, sampled more often than a grid prompt
            // (for the controls' precision), contribute only as many samples as a grid prompt has.
            let mut per_id: BTreeMap<u32, u32> = BTreeMap::new();
            for s in samples.iter() {
                *per_id.entry(s.prompt_id).or_default() += 1;
            }
            let each = per_id.values().copied().min().unwrap_or(0);
            for s in samples
                .iter()
                .filter(|s| s.cell() != Some(ft) && s.sample < each)
            {
                let open = (s.spec.openness() as f64).max(1.0).log10();
                let style = match &s.spec.target {
                    emsl_world::Target::Cell { style, .. } => style.to_string(),
                    _ => "open question".to_owned(),
                };
                let e = per_prompt
                    .entry(s.prompt_id)
                    .or_insert((open, style, BTreeMap::new()));
                let c = e.2.entry(seed).or_default();
                if s.coherent {
                    c.n += 1;
                    c.k += s.misaligned as u64;
                }
                samples_by_seed
                    .entry(seed)
                    .or_default()
                    .push((open, s.coherent, s.misaligned));
            }
        }
    }
    let mut prompts = Vec::new();
    for (id, (open, style, c)) in &per_prompt {
        prompts.push(rate_row(
            &[
                ("prompt_id", (*id as f64).into()),
                ("style", style.as_str().into()),
                ("openness_log10", (*open).into()),
            ],
            "misaligned",
            &grouped_by_base(c.clone()),
        )?);
    }
    let mut opens: Vec<f64> = per_prompt.values().map(|v| v.0).collect();
    opens.sort_by(f64::total_cmp);
    let cut = |q: f64| {
        opens
            .get(((opens.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let (t1, t2) = (cut(1.0 / 3.0), cut(2.0 / 3.0));
    let tercile = |x: f64| {
        if x <= t1 {
            0
        } else if x <= t2 {
            1
        } else {
            2
        }
    };
    let names = ["least open third", "middle third", "most open third"];
    let mut by_t: Vec<BTreeMap<SeedKey, Counts>> = vec![BTreeMap::new(); 3];
    for (seed, samples) in &samples_by_seed {
        let mut c = [Counts::default(); 3];
        for (open, coh, mis) in samples {
            if *coh {
                let t = tercile(*open);
                c[t].n += 1;
                c[t].k += *mis as u64;
            }
        }
        for t in 0..3 {
            by_t[t].insert(*seed, c[t]);
        }
    }
    let by_t: Vec<_> = by_t.into_iter().map(grouped_by_base).collect();
    let mut summary = Vec::new();
    for t in 0..3 {
        let m = rate_row(&[("openness", names[t].into())], "misaligned", &by_t[t])?;
        summary.push(m);
    }
    let effects = vec![effect(
        "C2",
        "misaligned out of cell: most open third minus least open third of prompts",
        "open, vague prompts show more misalignment than constrained factual ones",
        &by_t[2],
        &by_t[0],
    )?];
    Ok(vec![
        ("prompts".into(), prompts),
        ("summary".into(), summary),
        ("effects".into(), effects),
    ])
}
