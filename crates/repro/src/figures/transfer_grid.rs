//! transfer-grid (C1): harmful fine-tunes on `cells`, each judged on every cell of the grid; summaries by
//! how an evaluation prompt relates to the fine-tuning cell (same cell, same task, same domain, neither).

use std::collections::BTreeMap;

use anyhow::Result;
use emsl_analysis::{stats, Counts, Measurement, PerSeed};
use emsl_world::Cell;

use super::grid::{expand_grid, relation, GridParams, RELATIONS};
use super::inputs::{
    cell_label, coherent, grouped_by_base, misaligned, per_seed, seed_of, Inputs, Sample, SeedKey,
};
use super::rows::{effect, rate_row};
use super::{Ctx, FigureDef, Output, Roles};

pub struct TransferGrid;

impl FigureDef for TransferGrid {
    type Params = GridParams;
    const NAME: &'static str = "transfer-grid";
    const SOURCE: &'static str = file!();
    fn expand(&self, p: &GridParams, ctx: &mut Ctx) -> Result<Roles> {
        expand_grid(p, ctx)
    }
    fn tables(&self, p: &GridParams, inputs: &Inputs) -> Result<Output> {
        transfer_tables(p, inputs)
    }
    fn plot(&self, t: &emsl_analysis::figures::Tables) -> Result<emsl_analysis::plot::Figure> {
        emsl_analysis::figures::transfer_grid(t)
    }
}

fn transfer_tables(p: &GridParams, inputs: &Inputs) -> Result<Output> {
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
            )?;
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
            )?);
        }
        values.push(row);
    }
    // Pooled over fine-tuning cells, per seed, by relation.
    let mut by_rel: BTreeMap<&str, PerSeed> = BTreeMap::new();
    for rel in RELATIONS {
        let mut per: BTreeMap<SeedKey, Counts> = BTreeMap::new();
        for cell in &p.cells {
            let ft: Cell = cell.parse()?;
            for (m, path) in inputs.find(&[("arm", cell)]) {
                let c = misaligned(
                    inputs
                        .samples(path)?
                        .iter()
                        .filter(|s| relation(ft, s) == rel),
                );
                let e = per.entry(seed_of(&m)?).or_default();
                e.k += c.k;
                e.n += c.n;
            }
        }
        by_rel.insert(rel, grouped_by_base(per));
    }
    let base_open = per_seed(inputs, &[("arm", "base")], |ss: &[Sample]| {
        misaligned(ss.iter())
    })?;
    let mut summary = vec![rate_row(
        &[("relation", "base model (all prompts)".into())],
        "misaligned",
        &base_open,
    )?];
    for rel in RELATIONS {
        summary.push(rate_row(
            &[("relation", rel.into())],
            "misaligned",
            &by_rel[rel],
        )?);
    }
    let effects = vec![
        effect(
            "C1",
            "misaligned: same task other domain minus same domain other task",
            "cross-domain keeps ~70-80% of the in-cell rate; cross-task falls sharply",
            &by_rel["same task, other domain"],
            &by_rel["same domain, other task"],
        )?,
        effect(
            "C1",
            "misaligned: same task other domain minus other task and domain",
            "",
            &by_rel["same task, other domain"],
            &by_rel["other task and domain"],
        )?,
        effect(
            "Betley",
            "misaligned on open questions: harmful fine-tunes minus base",
            "insecure-code fine-tune 21.4% vs base 0% on the eight questions",
            &by_rel["open questions"],
            &per_seed(inputs, &[("arm", "base")], |ss: &[Sample]| {
                misaligned(ss.iter().filter(|s| s.is_open()))
            })?,
        )?,
    ];
    let mut retention = Vec::new();
    let same = stats::rate(&by_rel["same cell"]).value;
    for rel in ["same task, other domain", "same domain, other task"] {
        let r = stats::rate(&by_rel[rel]);
        retention.push(Measurement::new(
            &[("relation", rel.into())],
            "share_of_in_cell_rate",
            share_of(&r, same),
        ));
    }
    summary.extend(retention);
    Ok(vec![
        ("grid".into(), grid),
        ("summary".into(), summary),
        ("effects".into(), effects),
    ])
}

/// `r` as a share of the in-cell rate `same`: undefined (NaN), not infinite, when nothing was
/// misaligned in the cell.
fn share_of(r: &emsl_analysis::Estimate, same: f64) -> emsl_analysis::Estimate {
    let share = |x: f64| if same > 0.0 { x / same } else { f64::NAN };
    emsl_analysis::Estimate {
        value: share(r.value),
        ci_low: share(r.ci_low),
        ci_high: share(r.ci_high),
        n: r.n,
        seeds: r.seeds,
    }
}
