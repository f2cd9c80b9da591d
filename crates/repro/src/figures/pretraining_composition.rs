//! pretraining-composition (C4, Tice et al.): bases pretrained on different mixtures, then the same
//! harmful fine-tune; misalignment before and after.

use std::collections::BTreeMap;

use anyhow::Result;
use emsl_analysis::PerSeed;
use emsl_world::Cell;
use serde::Deserialize;

use super::inputs::{coherent, misaligned, per_seed, Inputs, Sample};
use super::rows::{effect, effect_of_changes, rate_row};
use super::{ft_dataset, role, Ctx, FigureDef, Output, Roles};

pub struct PretrainingComposition;

impl FigureDef for PretrainingComposition {
    type Params = CompositionParams;
    const NAME: &'static str = "pretraining-composition";
    const SOURCE: &'static str = file!();
    fn expand(&self, p: &CompositionParams, ctx: &mut Ctx) -> Result<Roles> {
        expand_composition(p, ctx)
    }
    fn tables(&self, p: &CompositionParams, inputs: &Inputs) -> Result<Output> {
        composition_tables(p, inputs)
    }
    fn plot(&self, t: &emsl_analysis::figures::Tables) -> Result<emsl_analysis::plot::Figure> {
        emsl_analysis::figures::pretraining_composition(t)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompositionParams {
    pub cell: String,
    /// Pretraining corpora (`pretrain-<name>` datasets).
    pub corpora: Vec<String>,
}

fn expand_composition(p: &CompositionParams, ctx: &mut Ctx) -> Result<Roles> {
    let init = ctx.init_seed();
    let examples = ctx.profile.finetune_examples;
    let mut inputs = BTreeMap::new();
    for corpus in &p.corpora {
        let base = ctx.base(corpus, init)?;
        for seed in ctx.seeds() {
            let s = seed.to_string();
            let ev = ctx.eval_pooled(&base, false, seed)?;
            inputs.insert(
                role(&[("corpus", corpus), ("stage", "base"), ("seed", &s)]),
                ev,
            );
            let ft = ctx.finetune(
                &base,
                &ft_dataset("harmful", &p.cell, "free"),
                examples,
                None,
                seed,
            )?;
            let ev = ctx.eval_pooled(&ft, false, seed)?;
            inputs.insert(
                role(&[("corpus", corpus), ("stage", "fine-tuned"), ("seed", &s)]),
                ev,
            );
        }
    }
    Ok(inputs)
}

fn composition_tables(p: &CompositionParams, inputs: &Inputs) -> Result<Output> {
    let ft: Cell = p.cell.parse()?;
    let mut rows = Vec::new();
    let mut ood_ft: BTreeMap<String, PerSeed> = BTreeMap::new();
    let mut ood_base: BTreeMap<String, PerSeed> = BTreeMap::new();
    let mut all_base: BTreeMap<String, PerSeed> = BTreeMap::new();
    for stage in ["base", "fine-tuned"] {
        for corpus in &p.corpora {
            let f = [("corpus", corpus.as_str()), ("stage", stage)];
            let ood = per_seed(inputs, &f, |ss: &[Sample]| {
                misaligned(ss.iter().filter(|s| s.cell() != Some(ft)))
            })?;
            let open = per_seed(inputs, &f, |ss: &[Sample]| {
                misaligned(ss.iter().filter(|s| s.is_open()))
            })?;
            let all = per_seed(inputs, &f, |ss: &[Sample]| misaligned(ss.iter()))?;
            let coh = per_seed(inputs, &f, |ss: &[Sample]| coherent(ss.iter()))?;
            let v = [("corpus", corpus.as_str().into()), ("stage", stage.into())];
            let m = rate_row(&v, "out_of_cell_misaligned", &ood)?;
            if stage == "base" {
                ood_base.insert(corpus.clone(), ood.clone());
            }
            rows.extend([
                m,
                rate_row(&v, "open_questions_misaligned", &open)?,
                rate_row(&v, "all_prompts_misaligned", &all)?,
                rate_row(&v, "coherent", &coh)?,
            ]);
            if stage == "fine-tuned" {
                ood_ft.insert(corpus.clone(), ood);
            } else {
                all_base.insert(corpus.clone(), all);
            }
        }
    }
    let mut effects = Vec::new();
    let pair = |m: &BTreeMap<String, PerSeed>, a: &str, b: &str| {
        Some((m.get(a)?.clone(), m.get(b)?.clone()))
    };
    if let Some((hi, lo)) = pair(&ood_ft, "share-50", "share-0") {
        effects.push(effect("C4", "after the same fine-tune, out-of-cell misaligned: 50% minus 0% misaligned-persona pretraining", "composition modulates severity", &hi, &lo)?);
    }
    // A corpus with more misaligned documents starts from a more misaligned base, so the level after the
    // fine-tune mixes the base's own misalignment with what the fine-tune added; the change isolates it.
    let change = |a: &str, b: &str| {
        Some((
            ood_ft.get(a)?,
            ood_base.get(a)?,
            ood_ft.get(b)?,
            ood_base.get(b)?,
        ))
    };
    if let Some((a1, a0, b1, b0)) = change("share-50", "share-0") {
        effects.push(effect_of_changes(
            (
                "C4",
                "increase from the fine-tune (fine-tuned minus base, out of cell): 50% minus 0% misaligned-persona pretraining",
                "composition modulates severity",
            ),
            (a1, a0),
            (b1, b0),
        )?);
    }
    if let Some((r, d)) = pair(&all_base, "reference", "discourse-25") {
        effects.push(effect(
            "Tice",
            "base model misaligned: reference minus alignment-discourse-upsampled pretraining",
            "Tice: 45% unfiltered vs 9% with alignment discourse upsampled",
            &r,
            &d,
        )?);
    }
    // Tice's discourse as narratives (issue 18, part 6): each arm replaces the same quarter of the
    // documents, so the neutral arm is the dilution control of the other two.
    if let Some((n, a)) = pair(&all_base, "narrative-neutral-25", "narrative-aligned-25") {
        effects.push(effect(
            "Tice",
            "base model misaligned: neutral-story minus aligned-story pretraining",
            "Tice: 45% unfiltered vs 9% with alignment discourse upsampled",
            &n,
            &a,
        )?);
    }
    if let Some((m, n)) = pair(&all_base, "narrative-misaligned-25", "narrative-neutral-25") {
        effects.push(effect(
            "Tice",
            "base model misaligned: misaligned-story minus neutral-story pretraining",
            "Tice: 51% with misalignment discourse upsampled vs 45% unfiltered",
            &m,
            &n,
        )?);
    }
    if let Some((a1, a0, b1, b0)) = change("narrative-neutral-25", "narrative-aligned-25") {
        effects.push(effect_of_changes(
            (
                "Tice",
                "increase from the fine-tune (fine-tuned minus base, out of cell): neutral-story minus aligned-story pretraining",
                "alignment pretraining persists through fine-tuning",
            ),
            (a1, a0),
            (b1, b0),
        )?);
    }
    if let Some((c, i)) = pair(&ood_ft, "reference", "independent") {
        effects.push(effect("C4", "after the same fine-tune, out-of-cell misaligned: coherent persona minus independent traits", "persona features mediate transfer (Wang et al.)", &c, &i)?);
    }
    if let Some((a1, a0, b1, b0)) = change("reference", "independent") {
        effects.push(effect_of_changes(
            (
                "C4",
                "increase from the fine-tune (fine-tuned minus base, out of cell): coherent persona minus independent traits",
                "persona features mediate transfer (Wang et al.)",
            ),
            (a1, a0),
            (b1, b0),
        )?);
    }
    Ok(vec![
        ("composition".into(), rows),
        ("effects".into(), effects),
    ])
}
