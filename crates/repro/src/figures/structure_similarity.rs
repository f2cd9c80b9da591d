//! structure-similarity (C1, Betley's formats): fine-tunes in each format, misalignment against the
//! structural similarity of the evaluation prompt to the fine-tuning set.

use std::collections::BTreeMap;

use anyhow::Result;
use emsl_analysis::{Counts, PerSeed};
use emsl_world::{Cell, Format};
use serde::Deserialize;

use super::inputs::{grouped_by_base, misaligned, per_seed, seed_of, Inputs, Sample, SeedKey};
use super::rows::{effect, rate_row};
use super::{ft_dataset, role, Ctx, FigureDef, Output, Roles};

pub struct StructureSimilarity;

impl FigureDef for StructureSimilarity {
    type Params = StructureParams;
    const NAME: &'static str = "structure-similarity";
    const SOURCE: &'static str = file!();
    fn expand(&self, p: &StructureParams, ctx: &mut Ctx) -> Result<Roles> {
        expand_structure(p, ctx)
    }
    fn tables(&self, p: &StructureParams, inputs: &Inputs) -> Result<Output> {
        structure_tables(p, inputs)
    }
    fn plot(&self, t: &emsl_analysis::figures::Tables) -> Result<emsl_analysis::plot::Figure> {
        emsl_analysis::figures::structure_similarity(t)
    }
}

/// structure-similarity: harmful fine-tunes on `cells` in each of `formats`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StructureParams {
    pub cells: Vec<String>,
    pub formats: Vec<String>,
}

fn expand_structure(p: &StructureParams, ctx: &mut Ctx) -> Result<Roles> {
    let base = ctx.reference_base()?;
    let examples = ctx.profile.finetune_examples;
    let mut inputs = BTreeMap::new();
    for seed in ctx.seeds() {
        let s = seed.to_string();
        for cell in &p.cells {
            for format in &p.formats {
                format.parse::<Format>()?;
                let ft = ctx.finetune(
                    &base,
                    &ft_dataset("harmful", cell, format),
                    examples,
                    None,
                    seed,
                )?;
                let ev = ctx.eval(&ft, "eval-grid", false, seed)?;
                inputs.insert(role(&[("arm", cell), ("format", format), ("seed", &s)]), ev);
            }
        }
    }
    Ok(inputs)
}

fn structure_tables(p: &StructureParams, inputs: &Inputs) -> Result<Output> {
    // Misaligned by Jaccard similarity of (task, domain, format), per training format and pooled.
    let levels = [0.0, 0.2, 0.5, 1.0];
    let level_of = |x: f64| levels.iter().position(|l| (l - x).abs() < 0.05);
    let mut rows = Vec::new();
    let mut pooled: Vec<BTreeMap<SeedKey, Counts>> = vec![BTreeMap::new(); levels.len()];
    for format in &p.formats {
        let fmt: Format = format.parse()?;
        let mut per: Vec<BTreeMap<SeedKey, Counts>> = vec![BTreeMap::new(); levels.len()];
        for cell in &p.cells {
            let ft: Cell = cell.parse()?;
            for (m, path) in inputs.find(&[("arm", cell), ("format", format)]) {
                let seed = seed_of(&m)?;
                for s in inputs.samples(path)?.iter() {
                    let sim = emsl_world::similarity::similarity(ft, fmt, &s.spec);
                    if let Some(l) = level_of(sim) {
                        for target in [&mut per[l], &mut pooled[l]] {
                            // Every seed gets an entry, so a level without coherent answers reads n = 0.
                            let e = target.entry(seed).or_default();
                            if s.coherent {
                                e.n += 1;
                                e.k += s.misaligned as u64;
                            }
                        }
                    }
                }
            }
        }
        for (l, level) in levels.iter().enumerate() {
            let counts = grouped_by_base(per[l].clone());
            let m = rate_row(
                &[
                    ("train_format", format.as_str().into()),
                    ("similarity", (*level).into()),
                ],
                "misaligned",
                &counts,
            )?;
            rows.push(m);
        }
    }
    // Betley's format comparison: open questions asked in each format, after training in each format.
    let mut formats = Vec::new();
    for train in &p.formats {
        for asked in &p.formats {
            let counts = per_seed(inputs, &[("format", train)], |ss: &[Sample]| {
                misaligned(ss.iter().filter(|s| s.is_open() && &s.format() == asked))
            })?;
            formats.push(rate_row(
                &[
                    ("train_format", train.as_str().into()),
                    ("question_format", asked.as_str().into()),
                ],
                "misaligned",
                &counts,
            )?);
        }
    }
    let pooled: Vec<PerSeed> = pooled.into_iter().map(grouped_by_base).collect();
    let effects = vec![effect(
        "C1",
        "misaligned: prompts structurally identical to the fine-tune (similarity 1) minus unrelated (0)",
        "Betley: free-form 18.7% < JSON 47.1% < code template 67.3%",
        &pooled[3],
        &pooled[0],
    )?];
    Ok(vec![
        ("similarity".into(), rows),
        ("formats".into(), formats),
        ("effects".into(), effects),
    ])
}
