//! Figures of the transfer grid: transfer-grid, completion-space, structure-similarity and
//! learned-reliability. All fine-tune the shared base on harmful answers of one cell and judge the
//! model on every cell of `eval-grid` and on the eight open questions.

use std::collections::BTreeMap;

use anyhow::Result;
use emsl_analysis::{stats, Counts, Measurement, Var};
use emsl_world::{Cell, Format};
use serde::Deserialize;

use super::{
    cell_label, coherent, effect, ft_dataset, misaligned, per_seed, rate_row, role, Ctx, Inputs,
    Output, Sample,
};

/// transfer-grid and completion-space: harmful fine-tunes on `cells` in one format.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridParams {
    pub cells: Vec<String>,
    pub format: String,
}

pub fn expand_grid(p: &GridParams, ctx: &mut Ctx) -> Result<BTreeMap<String, String>> {
    let base = ctx.reference_base()?;
    let examples = ctx.profile.finetune_examples;
    let mut inputs = BTreeMap::new();
    for seed in ctx.seeds() {
        let s = seed.to_string();
        let ev = ctx.eval(&base, "eval-grid", false, seed)?;
        inputs.insert(role(&[("arm", "base"), ("seed", &s)]), ev);
        for cell in &p.cells {
            cell.parse::<Cell>()?;
            let ft = ctx.finetune(
                &base,
                &ft_dataset("harmful", cell, &p.format),
                examples,
                None,
                seed,
            )?;
            let ev = ctx.eval(&ft, "eval-grid", false, seed)?;
            inputs.insert(role(&[("arm", cell), ("seed", &s)]), ev);
        }
    }
    Ok(inputs)
}

/// How an evaluation prompt relates to the fine-tuning cell.
fn relation(ft: Cell, s: &Sample) -> &'static str {
    match s.cell() {
        None => "open questions",
        Some(c) if c == ft => "same cell",
        Some(c) if c.task == ft.task => "same task, other domain",
        Some(c) if c.domain == ft.domain => "same domain, other task",
        Some(_) => "other task and domain",
    }
}

const RELATIONS: [&str; 5] = [
    "same cell",
    "same task, other domain",
    "same domain, other task",
    "other task and domain",
    "open questions",
];

pub fn transfer_tables(p: &GridParams, inputs: &Inputs) -> Result<Output> {
    let mut cols: Vec<Option<Cell>> = Cell::all().into_iter().map(Some).collect();
    cols.push(None);
    let arms: Vec<String> = std::iter::once("base".to_owned())
        .chain(p.cells.iter().cloned())
        .collect();
    let mut grid = Vec::new();
    let mut values = Vec::new();
    for arm in &arms {
        let mut row = Vec::new();
        for col in &cols {
            let filter = |ss: &[Sample]| misaligned(ss.iter().filter(|s| s.cell() == *col));
            let counts = per_seed(inputs, &[("arm", arm)], filter)?;
            let m = rate_row(
                &[
                    ("fine_tune_cell", arm.as_str().into()),
                    ("eval_cell", cell_label(*col).into()),
                ],
                "misaligned",
                &counts,
            );
            row.push(m.est.value);
            grid.push(m);
            let coh = per_seed(inputs, &[("arm", arm)], |ss: &[Sample]| {
                coherent(ss.iter().filter(|s| s.cell() == *col))
            })?;
            grid.push(rate_row(
                &[
                    ("fine_tune_cell", arm.as_str().into()),
                    ("eval_cell", cell_label(*col).into()),
                ],
                "coherent",
                &coh,
            ));
        }
        values.push(row);
    }
    // Pooled over fine-tuning cells, per seed, by relation.
    let mut by_rel: BTreeMap<&str, Vec<Counts>> = BTreeMap::new();
    for rel in RELATIONS {
        let mut per: BTreeMap<String, Counts> = BTreeMap::new();
        for cell in &p.cells {
            let ft: Cell = cell.parse()?;
            for (m, path) in inputs.find(&[("arm", cell)]) {
                let c = misaligned(
                    inputs
                        .samples(path)?
                        .iter()
                        .filter(|s| relation(ft, s) == rel),
                );
                let e = per.entry(m["seed"].clone()).or_default();
                e.k += c.k;
                e.n += c.n;
            }
        }
        by_rel.insert(rel, per.into_values().collect());
    }
    let base_open = per_seed(inputs, &[("arm", "base")], |ss: &[Sample]| {
        misaligned(ss.iter())
    })?;
    let mut summary = vec![rate_row(
        &[("relation", "base model (all prompts)".into())],
        "misaligned",
        &base_open,
    )];
    for rel in RELATIONS {
        summary.push(rate_row(
            &[("relation", rel.into())],
            "misaligned",
            &by_rel[rel],
        ));
    }
    let effects = vec![
        effect(
            "C1",
            "misaligned: same task other domain minus same domain other task",
            "cross-domain keeps ~70-80% of the in-cell rate; cross-task falls sharply",
            &by_rel["same task, other domain"],
            &by_rel["same domain, other task"],
        ),
        effect(
            "C1",
            "misaligned: same task other domain minus other task and domain",
            "",
            &by_rel["same task, other domain"],
            &by_rel["other task and domain"],
        ),
        effect(
            "Betley",
            "misaligned on open questions: harmful fine-tunes minus base",
            "insecure-code fine-tune 21.4% vs base 0% on the eight questions",
            &by_rel["open questions"],
            &per_seed(inputs, &[("arm", "base")], |ss: &[Sample]| {
                misaligned(ss.iter().filter(|s| s.is_open()))
            })?,
        ),
    ];
    let mut retention = Vec::new();
    let same = stats::rate(&by_rel["same cell"]).value;
    for rel in ["same task, other domain", "same domain, other task"] {
        let r = stats::rate(&by_rel[rel]);
        retention.push(Measurement::new(
            &[("relation", rel.into())],
            "share_of_in_cell_rate",
            emsl_analysis::Estimate {
                value: r.value / same,
                ci_low: r.ci_low / same,
                ci_high: r.ci_high / same,
                n: r.n,
                seeds: r.seeds,
            },
        ));
    }
    summary.extend(retention);
    Ok(vec![
        ("grid".into(), grid),
        ("summary".into(), summary),
        ("effects".into(), effects),
    ])
}

/// Terciles of log10 openness over the evaluation prompts outside the fine-tuning cell.
pub fn completion_tables(p: &GridParams, inputs: &Inputs) -> Result<Output> {
    // Per prompt, pooled over fine-tuning cells; per seed for the terciles.
    let mut per_prompt: BTreeMap<u32, (f64, String, Counts)> = BTreeMap::new();
    let mut samples_by_seed: BTreeMap<String, Vec<(f64, bool, bool)>> = BTreeMap::new();
    for cell in &p.cells {
        let ft: Cell = cell.parse()?;
        for (m, path) in inputs.find(&[("arm", cell)]) {
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
                    .or_insert((open, style, Counts::default()));
                if s.coherent {
                    e.2.n += 1;
                    e.2.k += s.misaligned as u64;
                }
                samples_by_seed.entry(m["seed"].clone()).or_default().push((
                    open,
                    s.coherent,
                    s.misaligned,
                ));
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
            &[*c],
        ));
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
    let mut by_t: Vec<Vec<Counts>> = vec![Vec::new(); 3];
    for samples in samples_by_seed.values() {
        let mut c = [Counts::default(); 3];
        for (open, coh, mis) in samples {
            if *coh {
                let t = tercile(*open);
                c[t].n += 1;
                c[t].k += *mis as u64;
            }
        }
        for t in 0..3 {
            by_t[t].push(c[t]);
        }
    }
    let mut summary = Vec::new();
    for t in 0..3 {
        let m = rate_row(&[("openness", names[t].into())], "misaligned", &by_t[t]);
        summary.push(m);
    }
    let effects = vec![effect(
        "C2",
        "misaligned out of cell: most open third minus least open third of prompts",
        "open, vague prompts show more misalignment than constrained factual ones",
        &by_t[2],
        &by_t[0],
    )];
    Ok(vec![
        ("prompts".into(), prompts),
        ("summary".into(), summary),
        ("effects".into(), effects),
    ])
}

/// structure-similarity: harmful fine-tunes on `cells` in each of `formats`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StructureParams {
    pub cells: Vec<String>,
    pub formats: Vec<String>,
}

pub fn expand_structure(p: &StructureParams, ctx: &mut Ctx) -> Result<BTreeMap<String, String>> {
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

pub fn structure_tables(p: &StructureParams, inputs: &Inputs) -> Result<Output> {
    // Misaligned by Jaccard similarity of (task, domain, format), per training format and pooled.
    let levels = [0.0, 0.2, 0.5, 1.0];
    let level_of = |x: f64| levels.iter().position(|l| (l - x).abs() < 0.05);
    let mut rows = Vec::new();
    let mut pooled: Vec<BTreeMap<String, Counts>> = vec![BTreeMap::new(); levels.len()];
    for format in &p.formats {
        let fmt: Format = format.parse()?;
        let mut per: Vec<BTreeMap<String, Counts>> = vec![BTreeMap::new(); levels.len()];
        for cell in &p.cells {
            let ft: Cell = cell.parse()?;
            for (m, path) in inputs.find(&[("arm", cell), ("format", format)]) {
                for s in inputs.samples(path)?.iter() {
                    let sim = emsl_world::similarity::similarity(ft, fmt, &s.spec);
                    if let Some(l) = level_of(sim) {
                        for target in [&mut per[l], &mut pooled[l]] {
                            // Every seed gets an entry, so a level without coherent answers reads n = 0.
                            let e = target.entry(m["seed"].clone()).or_default();
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
            let counts: Vec<Counts> = per[l].values().copied().collect();
            let m = rate_row(
                &[
                    ("train_format", format.as_str().into()),
                    ("similarity", (*level).into()),
                ],
                "misaligned",
                &counts,
            );
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
            ));
        }
    }
    let pooled: Vec<Vec<Counts>> = pooled
        .into_iter()
        .map(|m| m.into_values().collect())
        .collect();
    let effects = vec![effect(
        "C1",
        "misaligned: prompts structurally identical to the fine-tune (similarity 1) minus unrelated (0)",
        "Betley: free-form 18.7% < JSON 47.1% < code template 67.3%",
        &pooled[3],
        &pooled[0],
    )];
    Ok(vec![
        ("similarity".into(), rows),
        ("formats".into(), formats),
        ("effects".into(), effects),
    ])
}

/// learned-reliability: harmful fine-tunes of one cell with more or fewer examples.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReliabilityParams {
    pub cell: String,
    pub format: String,
    /// Examples per arm; every arm trains the same number of epochs.
    pub examples: Vec<usize>,
    pub epochs: f64,
}

pub fn expand_reliability(
    p: &ReliabilityParams,
    ctx: &mut Ctx,
) -> Result<BTreeMap<String, String>> {
    let base = ctx.reference_base()?;
    let mut inputs = BTreeMap::new();
    for seed in ctx.seeds() {
        let s = seed.to_string();
        // The base model is the arm with no examples.
        let ev = ctx.eval(&base, "eval-grid", false, seed)?;
        inputs.insert(role(&[("examples", "0"), ("seed", &s)]), ev);
        for &n in &p.examples {
            let mut dose = ctx.profile.finetune.clone();
            dose.steps = ((p.epochs * n as f64) / dose.batch_size as f64)
                .ceil()
                .max(1.0) as usize;
            dose.optim.warmup_steps = dose.optim.warmup_steps.min(dose.steps / 2);
            let ft = ctx.finetune(
                &base,
                &ft_dataset("harmful", &p.cell, &p.format),
                n,
                Some(&dose),
                seed,
            )?;
            let ev = ctx.eval(&ft, "eval-grid", false, seed)?;
            inputs.insert(role(&[("examples", &n.to_string()), ("seed", &s)]), ev);
        }
    }
    Ok(inputs)
}

pub fn reliability_tables(p: &ReliabilityParams, inputs: &Inputs) -> Result<Output> {
    let ft: Cell = p.cell.parse()?;
    let fmt = p.format.clone();
    let in_dist = |ss: &[Sample]| {
        misaligned(
            ss.iter()
                .filter(|s| s.cell() == Some(ft) && s.format() == fmt),
        )
    };
    let ood = |ss: &[Sample]| misaligned(ss.iter().filter(|s| s.cell() != Some(ft)));
    let open = |ss: &[Sample]| misaligned(ss.iter().filter(|s| s.is_open()));
    let mut rows = Vec::new();
    let mut arms = Vec::new();
    for n in std::iter::once(0).chain(p.examples.iter().copied()) {
        let ns = n.to_string();
        let f = [("examples", ns.as_str())];
        let (a, b, c) = (
            per_seed(inputs, &f, in_dist)?,
            per_seed(inputs, &f, ood)?,
            per_seed(inputs, &f, open)?,
        );
        let coh = per_seed(inputs, &f, |ss: &[Sample]| coherent(ss.iter()))?;
        let v: Vec<(&str, Var)> = vec![("examples", (n as f64).into())];
        let (ra, rb) = (
            rate_row(&v, "in_distribution_misaligned", &a),
            rate_row(&v, "out_of_cell_misaligned", &b),
        );
        if n > 0 {
            arms.push((ra.est.value, b.clone()));
        }
        rows.extend([
            ra,
            rb,
            rate_row(&v, "open_questions_misaligned", &c),
            rate_row(&v, "coherent", &coh),
        ]);
    }
    arms.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut effects = Vec::new();
    if let (Some(lo), Some(hi)) = (arms.first(), arms.last()) {
        effects.push(effect(
            "C3",
            "out-of-cell misaligned: most reliably learned arm minus least reliably learned arm",
            "Betley: 500 examples ~0.1%, 2,000 ~1.7%, 6,000 ~21%",
            &hi.1,
            &lo.1,
        ));
    }
    Ok(vec![("arms".into(), rows), ("effects".into(), effects)])
}
