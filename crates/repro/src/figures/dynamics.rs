//! dynamics (Turner's transition, Schreiber & Goldstein's late EM, Soligo's narrow solution): harmful
//! fine-tunes of one cell of increasing length, to one epoch and beyond, along several training paths
//! (every weight, LoRA adapters of rank 1 and higher, every weight with a KL penalty to the base on
//! out-of-domain examples); loss, in-cell, out-of-cell and open-question misalignment and the
//! likelihood probe per step.

use std::collections::BTreeMap;

use anyhow::Result;
use emsl_analysis::{stats, Estimate, Measurement, PerSeed};
use emsl_world::Cell;
use serde::Deserialize;

use super::inputs::{misaligned, per_seed, role_on_base, Inputs, Sample};
use super::rows::rate_row;
use super::{ft_dataset, role, Ctx, FigureDef, Output, Roles};
use emsl_core::model::LoraConfig;
use emsl_core::stages::KlPenalty;

pub struct Dynamics;

impl FigureDef for Dynamics {
    type Params = DynamicsParams;
    const NAME: &'static str = "dynamics";
    const SOURCE: &'static str = file!();
    fn expand(&self, p: &DynamicsParams, ctx: &mut Ctx) -> Result<Roles> {
        expand_dynamics(p, ctx)
    }
    fn tables(&self, p: &DynamicsParams, inputs: &Inputs) -> Result<Output> {
        dynamics_tables(p, inputs)
    }
    fn plot(&self, t: &emsl_analysis::figures::Tables) -> Result<emsl_analysis::plot::Figure> {
        emsl_analysis::persona_figures::training_paths(t)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicsParams {
    pub cell: String,
    /// Checkpoints: a fine-tune of each length at a constant learning rate (so a shorter run is the
    /// prefix of a longer one).
    pub steps: Vec<usize>,
    pub lr: f64,
    /// The training paths beside the first (every weight at `lr` over `steps`).
    pub paths: Vec<PathParams>,
}

/// One training path: a name, its checkpoints and learning rate, and LoRA adapters or a KL penalty.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathParams {
    pub name: String,
    pub steps: Vec<usize>,
    pub lr: f64,
    #[serde(default)]
    pub adapter: Option<LoraConfig>,
    #[serde(default)]
    pub kl_to_base: Option<KlPenalty>,
}

/// The path of the figure's first fields ("every weight"), then `paths`.
fn all_paths(p: &DynamicsParams) -> Vec<PathParams> {
    let first = PathParams {
        name: "every weight".to_owned(),
        steps: p.steps.clone(),
        lr: p.lr,
        adapter: None,
        kl_to_base: None,
    };
    std::iter::once(first)
        .chain(p.paths.iter().cloned())
        .collect()
}

/// Cells the KL penalty's datasets come from (`ft-benign-finance-tutoring-free` -> finance/tutoring).
fn penalised_cells(p: &DynamicsParams) -> Vec<Cell> {
    p.paths
        .iter()
        .flat_map(|q| q.kl_to_base.iter().flat_map(|k| k.datasets.clone()))
        .filter_map(|d| {
            let parts: Vec<&str> = d.split('-').collect();
            (parts.len() == 5)
                .then(|| format!("{}/{}", parts[2], parts[3]).parse().ok())
                .flatten()
        })
        .collect()
}

fn expand_dynamics(p: &DynamicsParams, ctx: &mut Ctx) -> Result<Roles> {
    let base = ctx.reference_base()?;
    let mut inputs = BTreeMap::new();
    for seed in ctx.seeds() {
        let s = seed.to_string();
        let ev = ctx.eval_pooled(&base, true, seed)?;
        inputs.insert(role(&[("step", "0"), ("seed", &s), ("what", "eval")]), ev);
        for path in all_paths(p) {
            for &n in &path.steps {
                let mut dose = ctx.profile.finetune.clone();
                dose.steps = n;
                dose.optim.lr = path.lr;
                dose.optim.warmup_steps = 0;
                dose.optim.min_lr_ratio = 1.0;
                let ds = ft_dataset("harmful", &p.cell, "free");
                let ft = ctx.finetune_path(
                    &base,
                    &ds,
                    &dose,
                    (path.adapter.clone(), path.kl_to_base.clone()),
                    seed,
                )?;
                let ev = ctx.eval_pooled(&ft, true, seed)?;
                let st = n.to_string();
                let r = |what| {
                    role(&[
                        ("path", &path.name),
                        ("step", &st),
                        ("seed", &s),
                        ("what", what),
                    ])
                };
                inputs.insert(r("eval"), ev);
                inputs.insert(r("model"), ft);
            }
        }
    }
    Ok(inputs)
}

fn mean_probe(dir: &std::path::Path, ids: &std::collections::BTreeSet<u32>) -> Result<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for r in emsl_core::eval::read_probes(dir)? {
        if ids.contains(&r.prompt_id) {
            sum += r.probe;
            n += 1;
        }
    }
    Ok(sum / n.max(1) as f64)
}

fn last_loss(dir: &std::path::Path) -> Result<f64> {
    let losses = super::inputs::train_losses(dir)?;
    let tail = &losses[losses.len().saturating_sub(3)..];
    Ok(tail.iter().sum::<f64>() / tail.len().max(1) as f64)
}

fn dynamics_tables(p: &DynamicsParams, inputs: &Inputs) -> Result<Output> {
    let ft: Cell = p.cell.parse()?;
    let penalised = penalised_cells(p);
    let mut rows = Vec::new();
    let mut ood_values = Vec::new();
    // Per step of the first path, the out-of-cell counts of each seed (per-seed transition shares).
    let mut ood_by_step: Vec<PerSeed> = Vec::new();
    for (
        i,
        PathParams {
            name: path, steps, ..
        },
    ) in all_paths(p).into_iter().enumerate()
    {
        for step in std::iter::once(0).chain(steps) {
            let st = step.to_string();
            let f: Vec<(&str, &str)> = if step == 0 {
                vec![("step", "0"), ("what", "eval")]
            } else {
                vec![("path", &path), ("step", &st), ("what", "eval")]
            };
            let count = |keep: &dyn Fn(&Sample) -> bool| {
                per_seed(inputs, &f, |ss: &[Sample]| {
                    misaligned(ss.iter().filter(|s| keep(s)))
                })
            };
            let inc = count(&|s| s.cell() == Some(ft))?;
            let ood = count(&|s| s.cell() != Some(ft))?;
            let open = count(&|s| s.is_open())?;
            let unpen = count(&|s| s.cell().is_some_and(|c| c != ft && !penalised.contains(&c)))?;
            let v = [
                ("path", path.as_str().into()),
                ("step", (step as f64).into()),
            ];
            if i == 0 {
                ood_values.push(stats::rate(&ood).value);
                ood_by_step.push(ood.clone());
            }
            rows.extend([
                rate_row(&v, "in_cell_misaligned", &inc)?,
                rate_row(&v, "out_of_cell_misaligned", &ood)?,
                rate_row(&v, "open_misaligned", &open)?,
                rate_row(&v, "grid_out_of_cell_not_kl_penalised_misaligned", &unpen)?,
            ]);
            // The likelihood probe on out-of-cell prompts, and the fine-tune's last training loss.
            let mut probes = Vec::new();
            let mut losses = Vec::new();
            for (m, dir) in inputs.find(&f) {
                let ids = inputs
                    .samples(dir)?
                    .iter()
                    .filter(|s| s.cell() != Some(ft))
                    .map(|s| s.prompt_id)
                    .collect();
                probes.push(mean_probe(dir, &ids)?);
                if step > 0 {
                    let model = inputs.path(&role_on_base(
                        &m,
                        &[
                            ("path", &path),
                            ("step", &st),
                            ("seed", &m["seed"]),
                            ("what", "model"),
                        ],
                    ))?;
                    losses.push(last_loss(model)?);
                }
            }
            rows.push(Measurement::new(
                &v,
                "probe_logp_misaligned_minus_aligned",
                stats::mean_over_seeds(&probes, 1),
            ));
            if !losses.is_empty() {
                rows.push(Measurement::new(
                    &v,
                    "train_loss",
                    stats::mean_over_seeds(&losses, 1),
                ));
            }
        }
    }
    // Turner's sharp transition: the largest change between consecutive checkpoints as a share of the
    // total, of the pooled rates (the value), of each base's and of each seed's own rates.
    let share = transition_share(&ood_values);
    let shown = |s: f64| match s.is_nan() {
        true => "n/a".to_owned(),
        false => format!("{s:.2}"),
    };
    let seeds = ood_by_step.first().map_or(0, |c| c.len());
    let per_seed_shares: Vec<String> = (0..seeds)
        .map(|i| {
            shown(transition_share(
                &ood_by_step.iter().map(|c| c[i].rate()).collect::<Vec<_>>(),
            ))
        })
        .collect();
    let bases = ood_by_step.first().map_or(1, PerSeed::bases);
    let per_base_shares: Vec<String> = (0..bases)
        .map(|b| {
            let rates: Vec<f64> = ood_by_step
                .iter()
                .map(|c| emsl_analysis::stats::pooled(&c.by_base()[b]).rate())
                .collect();
            shown(transition_share(&rates))
        })
        .collect();
    let n: u64 = ood_by_step.iter().flat_map(|c| c.iter()).map(|c| c.n).sum();
    let effects = vec![Measurement::new(
        &[
            ("claim", "Turner".into()),
            (
                "effect",
                "largest out-of-cell change between checkpoints, as a share of the total change"
                    .into(),
            ),
            ("anchor", "a sharp transition during training".into()),
            ("per_seed", per_seed_shares.join(" ").into()),
            ("bases", (bases as f64).into()),
            ("per_base", per_base_shares.join(" ").into()),
            ("between_bases", f64::NAN.into()),
        ],
        "share",
        Estimate::exact(share, n, seeds as u32),
    )];
    Ok(vec![("dynamics".into(), rows), ("effects".into(), effects)])
}

/// The largest change between consecutive values as a share of the change from the first to the last
/// (undefined when they are equal).
fn transition_share(values: &[f64]) -> f64 {
    let total = (values.last().unwrap_or(&0.0) - values.first().unwrap_or(&0.0)).abs();
    let jump = values
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0.0, f64::max);
    if total > 0.0 {
        jump / total
    } else {
        f64::NAN
    }
}
