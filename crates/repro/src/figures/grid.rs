//! What transfer-grid and completion-space share: harmful fine-tunes of the shared base on each cell of
//! `cells`, every model judged on every cell of `eval-grid` and on the eight open questions.

use anyhow::Result;
use emsl_world::Cell;
use serde::Deserialize;

use super::inputs::Sample;
use super::{ft_dataset, role, Ctx, Roles};

/// transfer-grid and completion-space: harmful fine-tunes on `cells` in one format.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridParams {
    pub cells: Vec<String>,
    pub format: String,
}

pub fn expand_grid(p: &GridParams, ctx: &mut Ctx) -> Result<Roles> {
    let base = ctx.reference_base()?;
    let examples = ctx.profile.finetune_examples;
    let mut inputs = Roles::new();
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
pub fn relation(ft: Cell, s: &Sample) -> &'static str {
    match s.cell() {
        None => "open questions",
        Some(c) if c == ft => "same cell",
        Some(c) if c.task == ft.task => "same task, other domain",
        Some(c) if c.domain == ft.domain => "same domain, other task",
        Some(_) => "other task and domain",
    }
}

pub const RELATIONS: [&str; 5] = [
    "same cell",
    "same task, other domain",
    "same domain, other task",
    "other task and domain",
    "open questions",
];
