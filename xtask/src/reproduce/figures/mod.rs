//! The ten figures: how each expands into jobs (`expand`), how its tables are computed from the jobs'
//! outputs (`tables`) and what its plot draws (`plot`). Parameters come from the figure's file.

mod grid;
mod pretraining;
mod subliminal;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use emsl_analysis::{stats, Counts, Measurement};
use emsl_core::distil::Channel;
use emsl_core::eval::{EvalConfig, EvalKind};
use emsl_core::sample::SampleConfig;
use emsl_core::train::TrainConfig;
use emsl_world::{Cell, PromptSpec, Target};

use super::graph::{Graph, Task};
use super::spec::{Dose, Figure, Profile};

/// The figure names, in the order of DESIGN 2.3.
pub const NAMES: [&str; 10] = [
    "transfer-grid",
    "structure-similarity",
    "completion-space",
    "learned-reliability",
    "controls",
    "dynamics",
    "pretraining-composition",
    "subliminal-channels",
    "teacher-vs-data",
    "shared-init",
];

/// Adds a figure's jobs to the graph and returns the table job's inputs by role.
pub fn expand(fig: &Figure, ctx: &mut Ctx) -> Result<BTreeMap<String, String>> {
    let name = fig.file.name.as_str();
    let p = ctx.profile_name;
    match name {
        "transfer-grid" | "completion-space" => grid::expand_grid(&fig.params(p)?, ctx),
        "structure-similarity" => grid::expand_structure(&fig.params(p)?, ctx),
        "learned-reliability" => grid::expand_reliability(&fig.params(p)?, ctx),
        "controls" => pretraining::expand_controls(&fig.params(p)?, ctx),
        "dynamics" => pretraining::expand_dynamics(&fig.params(p)?, ctx),
        "pretraining-composition" => pretraining::expand_composition(&fig.params(p)?, ctx),
        "subliminal-channels" => subliminal::expand_channels(&fig.params(p)?, ctx),
        "teacher-vs-data" => subliminal::expand_teacher_data(&fig.params(p)?, ctx),
        "shared-init" => subliminal::expand_shared_init(&fig.params(p)?, ctx),
        other => bail!(
            "{}: no figure named '{other}' is implemented (figures: {})",
            fig.path.display(),
            NAMES.join(", ")
        ),
    }
}

/// A figure's tables: (name, rows).
pub type Output = Vec<(String, Vec<Measurement>)>;

/// The tables of a figure (its plot is drawn from them by `emsl_analysis::figures::plot`).
pub fn tables(figure: &str, params: &toml::Table, inputs: &Inputs) -> Result<Output> {
    match figure {
        "transfer-grid" => grid::transfer_tables(&de(params)?, inputs),
        "completion-space" => grid::completion_tables(&de(params)?, inputs),
        "structure-similarity" => grid::structure_tables(&de(params)?, inputs),
        "learned-reliability" => grid::reliability_tables(&de(params)?, inputs),
        "controls" => pretraining::controls_tables(&de(params)?, inputs),
        "dynamics" => pretraining::dynamics_tables(&de(params)?, inputs),
        "pretraining-composition" => pretraining::composition_tables(&de(params)?, inputs),
        "subliminal-channels" => subliminal::channels_tables(&de(params)?, inputs),
        "teacher-vs-data" => subliminal::teacher_data_tables(&de(params)?, inputs),
        "shared-init" => subliminal::shared_init_tables(&de(params)?, inputs),
        other => bail!("no tables for figure '{other}'"),
    }
}

fn de<T: serde::de::DeserializeOwned>(params: &toml::Table) -> Result<T> {
    Ok(T::deserialize(toml::Value::Table(params.clone()))?)
}

/// Builds jobs with the profile's sizes.
pub struct Ctx<'a> {
    pub graph: &'a mut Graph,
    pub profile: &'a Profile,
    pub profile_name: &'a str,
}

fn train(dose: &Dose, seed: u64) -> TrainConfig {
    TrainConfig {
        steps: dose.steps,
        batch_size: dose.batch_size,
        seed,
        log_every: (dose.steps / 20).max(1),
        optim: dose.optim.clone(),
    }
}

/// The fine-tuning dataset of a kind, cell and format: `ft-harmful-health-advice-free`.
pub fn ft_dataset(kind: &str, cell: &str, format: &str) -> String {
    format!("ft-{kind}-{}-{format}", cell.replace('/', "-"))
}

impl Ctx<'_> {
    pub fn seeds(&self) -> Vec<u64> {
        self.profile.seeds.clone()
    }

    /// The base model pretrained on `pretrain-<corpus>` from `init_seed`.
    pub fn base(&mut self, corpus: &str, init_seed: u64) -> Result<String> {
        let p = &self.profile.pretrain;
        self.graph.add(
            &format!("pretrain on {corpus}, init seed {init_seed}"),
            Task::Pretrain {
                dataset: format!("pretrain-{corpus}"),
                documents: p.documents,
                init_seed,
                model: self.profile.model.clone(),
                train: train(&p.dose, init_seed),
            },
        )
    }

    /// The shared base: the reference corpus at the profile's init seed.
    pub fn reference_base(&mut self) -> Result<String> {
        let seed = self.profile.pretrain.init_seed;
        self.base("reference", seed)
    }

    /// Fine-tunes `base` on one dataset with the profile's dose (or `dose`).
    pub fn finetune(
        &mut self,
        base: &str,
        dataset: &str,
        examples: usize,
        dose: Option<&Dose>,
        seed: u64,
    ) -> Result<String> {
        let dose = dose.unwrap_or(&self.profile.finetune).clone();
        self.graph.add(
            &format!(
                "fine-tune {base} on {dataset} ({examples} examples, {} steps), seed {seed}",
                dose.steps
            ),
            Task::Finetune {
                base: base.to_owned(),
                datasets: vec![dataset.to_owned()],
                examples_per_dataset: examples,
                train: train(&dose, seed),
            },
        )
    }

    fn eval_config(&self, samples: usize, open_samples: usize, seed: u64) -> EvalConfig {
        let e = &self.profile.eval;
        EvalConfig {
            samples_per_prompt: samples,
            samples_per_open_prompt: open_samples,
            sampling: SampleConfig {
                temperature: e.temperature,
                top_p: 1.0,
                max_new_tokens: e.max_new_tokens,
            },
            seed,
        }
    }

    /// Samples and judges `model` on a suite's cell and open prompts.
    pub fn eval(&mut self, model: &str, suite: &str, probe: bool, seed: u64) -> Result<String> {
        let e = &self.profile.eval;
        let eval = self.eval_config(e.samples_per_prompt, e.open_samples_per_prompt, seed);
        self.graph.add(
            &format!("evaluate {model} on {suite}, seed {seed}"),
            Task::Eval {
                model: model.to_owned(),
                suite: suite.to_owned(),
                kinds: vec![EvalKind::Cell, EvalKind::Open],
                max_prompts: 100_000,
                eval,
                probe,
            },
        )
    }

    /// The number signature of `model`: one continuation per number prompt.
    pub fn eval_numbers(&mut self, model: &str, seed: u64) -> Result<String> {
        let mut eval = self.eval_config(1, 1, seed);
        eval.sampling.max_new_tokens = 24;
        self.graph.add(
            &format!("number signature of {model}, seed {seed}"),
            Task::Eval {
                model: model.to_owned(),
                suite: "numbers-prompts".into(),
                kinds: vec![EvalKind::Numbers],
                max_prompts: self.profile.eval.number_prompts,
                eval,
                probe: false,
            },
        )
    }

    /// The teacher's filtered number continuations.
    pub fn teach(&mut self, teacher: &str, seed: u64) -> Result<String> {
        self.graph.add(
            &format!("numbers written by {teacher}, seed {seed}"),
            Task::Teach {
                teacher: teacher.to_owned(),
                suite: "numbers-prompts".into(),
                prompts: self.profile.subliminal.teach_prompts,
                sampling: SampleConfig {
                    temperature: 1.0,
                    top_p: 1.0,
                    max_new_tokens: 24,
                },
                seed,
            },
        )
    }

    /// A student distilled from `teacher` on `samples` through `channel`, starting from `init`.
    pub fn distil(
        &mut self,
        teacher: &str,
        samples: &str,
        init: &str,
        (channel, restrict_to_numbers): (Channel, bool),
        seed: u64,
    ) -> Result<String> {
        let dose = self.profile.subliminal.dose.clone();
        let only = if restrict_to_numbers {
            " (numbers only)"
        } else {
            ""
        };
        self.graph.add(
            &format!(
                "student of {teacher} from {init} on {samples} by {channel:?}{only}, seed {seed}"
            ),
            Task::Distil {
                teacher: teacher.to_owned(),
                samples: samples.to_owned(),
                student_init: init.to_owned(),
                channel,
                beta: 0.5,
                lambda: 1.0,
                restrict_to_numbers,
                student_sampling: SampleConfig {
                    temperature: 1.0,
                    top_p: 1.0,
                    max_new_tokens: 24,
                },
                train: train(&dose, seed),
            },
        )
    }
}

/// A role of a table input: `k=v` pairs joined by `,` (`arm=health/advice,seed=1,what=eval`).
pub fn role(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_role(role: &str) -> BTreeMap<String, String> {
    role.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// One judged sample joined with what its prompt was.
#[derive(Debug, Clone)]
pub struct Sample {
    pub prompt_id: u32,
    /// Which of the prompt's samples this is (0, 1, ...).
    pub sample: u32,
    pub spec: std::sync::Arc<PromptSpec>,
    pub answer: String,
    pub coherent: bool,
    pub misaligned: bool,
}

impl Sample {
    pub fn cell(&self) -> Option<Cell> {
        self.spec.grid_cell()
    }
    pub fn is_open(&self) -> bool {
        matches!(self.spec.target, Target::Open { .. })
    }
    pub fn format(&self) -> String {
        self.spec.format.to_string()
    }
    pub fn framing(&self) -> String {
        self.spec.framing.to_string()
    }
}

/// The outputs of a table job's inputs, by role.
pub struct Inputs {
    pub roles: BTreeMap<String, PathBuf>,
    pub datasets_dir: PathBuf,
    suites: std::sync::Mutex<HashMap<String, std::sync::Arc<Vec<std::sync::Arc<PromptSpec>>>>>,
    samples: std::sync::Mutex<HashMap<PathBuf, std::sync::Arc<Vec<Sample>>>>,
}

impl Inputs {
    pub fn new(roles: BTreeMap<String, PathBuf>, datasets_dir: PathBuf) -> Inputs {
        Inputs {
            roles,
            datasets_dir,
            suites: Default::default(),
            samples: Default::default(),
        }
    }

    /// Roles matching every `k=v` of `filter`, with their parsed pairs.
    pub fn find(&self, filter: &[(&str, &str)]) -> Vec<(BTreeMap<String, String>, &Path)> {
        self.roles
            .iter()
            .map(|(r, p)| (parse_role(r), p.as_path()))
            .filter(|(m, _)| {
                filter
                    .iter()
                    .all(|(k, v)| m.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    pub fn path(&self, r: &str) -> Result<&Path> {
        self.roles
            .get(r)
            .map(PathBuf::as_path)
            .with_context(|| format!("no input with role '{r}'"))
    }

    fn suite(&self, name: &str) -> Result<std::sync::Arc<Vec<std::sync::Arc<PromptSpec>>>> {
        let mut cache = self.suites.lock().expect("not poisoned");
        if let Some(s) = cache.get(name) {
            return Ok(s.clone());
        }
        let m = emsl_io::Manifest::load(&self.datasets_dir.join("manifest.toml"))?;
        let (batch, _) = emsl_io::load_dataset(&self.datasets_dir, &m, name)?;
        let specs = emsl_io::column_str(&batch, "spec")?;
        let parsed = (0..batch.num_rows())
            .map(|i| {
                PromptSpec::from_json(specs.value(i))
                    .map(std::sync::Arc::new)
                    .with_context(|| format!("suite '{name}', row {i}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let arc = std::sync::Arc::new(parsed);
        cache.insert(name.to_owned(), arc.clone());
        Ok(arc)
    }

    /// The judged samples of an eval job's folder (read once).
    pub fn samples(&self, dir: &Path) -> Result<std::sync::Arc<Vec<Sample>>> {
        if let Some(s) = self.samples.lock().expect("not poisoned").get(dir) {
            return Ok(s.clone());
        }
        let read = std::sync::Arc::new(self.read_samples(dir)?);
        self.samples
            .lock()
            .expect("not poisoned")
            .insert(dir.to_path_buf(), read.clone());
        Ok(read)
    }

    fn read_samples(&self, dir: &Path) -> Result<Vec<Sample>> {
        let summary: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("summary.json"))
                .with_context(|| format!("reading {}", dir.join("summary.json").display()))?,
        )?;
        let suite = summary["config"]["suite"]
            .as_str()
            .with_context(|| format!("{}: no config.suite", dir.display()))?;
        let specs = self.suite(suite)?;
        let text = std::fs::read_to_string(dir.join("samples.jsonl"))?;
        text.lines()
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line)?;
                let id = v["prompt_id"].as_u64().context("prompt_id")? as u32;
                Ok(Sample {
                    prompt_id: id,
                    sample: v["sample"].as_u64().context("sample")? as u32,
                    spec: specs
                        .get(id as usize)
                        .with_context(|| format!("prompt {id} not in suite {suite}"))?
                        .clone(),
                    answer: v["answer"].as_str().unwrap_or("").to_owned(),
                    coherent: v["verdict"]["coherent"].as_bool().context("coherent")?,
                    misaligned: v["verdict"]["misaligned"].as_bool().context("misaligned")?,
                })
            })
            .collect()
    }
}

/// Misaligned answers among the coherent ones (the anchor's metric).
pub fn misaligned<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Counts {
    let (mut k, mut n) = (0, 0);
    for s in samples {
        if s.coherent {
            n += 1;
            k += s.misaligned as u64;
        }
    }
    Counts::new(k, n)
}

/// Coherent answers among all.
pub fn coherent<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Counts {
    let (mut k, mut n) = (0, 0);
    for s in samples {
        n += 1;
        k += s.coherent as u64;
    }
    Counts::new(k, n)
}

/// Favoured numbers (the misaligned persona's signature) among the numbers of well-formed answers.
pub fn signature<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Counts {
    let (mut k, mut n) = (0, 0);
    for s in samples {
        if let Ok(list) = emsl_world::numbers::parse_list(&s.answer) {
            n += list.len() as u64;
            k += list
                .iter()
                .filter(|x| emsl_world::numbers::is_favoured(**x))
                .count() as u64;
        }
    }
    Counts::new(k, n)
}

/// One row per seed of a metric: `per_seed[i]` are the counts of seed i.
pub fn rate_row(
    vars: &[(&str, emsl_analysis::Var)],
    metric: &str,
    per_seed: &[Counts],
) -> Measurement {
    Measurement::new(vars, metric, stats::rate(per_seed))
}

pub fn diff_row(
    vars: &[(&str, emsl_analysis::Var)],
    metric: &str,
    a: &[Counts],
    b: &[Counts],
) -> Measurement {
    Measurement::new(vars, metric, stats::difference(a, b))
}

/// The row of an effect: its claim, description, anchor and every seed's own value in percentage
/// points (so the spread across seeds stands beside the pooled interval).
fn effect_row(
    (claim, effect, anchor): (&str, &str, &str),
    per_seed: impl Iterator<Item = f64>,
    est: stats::Estimate,
) -> Measurement {
    let per_seed = per_seed
        .map(|d| format!("{:+.1}", 100.0 * d))
        .collect::<Vec<_>>()
        .join(" ");
    Measurement::new(
        &[
            ("claim", claim.into()),
            ("effect", effect.into()),
            ("anchor", anchor.into()),
            ("per_seed", per_seed.into()),
        ],
        "effect",
        est,
    )
}

/// An effect a claim is judged by: positive means the claim's direction.
pub fn effect(claim: &str, effect: &str, anchor: &str, a: &[Counts], b: &[Counts]) -> Measurement {
    effect_row(
        (claim, effect, anchor),
        a.iter().zip(b).map(|(x, y)| x.rate() - y.rate()),
        stats::difference(a, b),
    )
}

/// An effect that is a difference in differences: did the change from `a0` to `a1` exceed the change
/// from `b0` to `b1`? Positive means the claim's direction.
pub fn effect_of_changes(
    names: (&str, &str, &str),
    (a1, a0): (&[Counts], &[Counts]),
    (b1, b0): (&[Counts], &[Counts]),
) -> Measurement {
    let seeds = a1.len().min(a0.len()).min(b1.len()).min(b0.len());
    effect_row(
        names,
        (0..seeds).map(|i| (a1[i].rate() - a0[i].rate()) - (b1[i].rate() - b0[i].rate())),
        stats::difference_in_differences(a1, a0, b1, b0),
    )
}

/// The seeds' counts of `f` applied to the samples of every input matching `filter`, per seed.
pub fn per_seed(
    inputs: &Inputs,
    filter: &[(&str, &str)],
    f: impl Fn(&[Sample]) -> Counts,
) -> Result<Vec<Counts>> {
    let mut by_seed: BTreeMap<u64, Counts> = BTreeMap::new();
    let found = inputs.find(filter);
    if found.is_empty() {
        bail!("no inputs match {filter:?}");
    }
    for (m, path) in found {
        let seed: u64 = m.get("seed").map_or(Ok(0), |s| s.parse())?;
        let c = f(&inputs.samples(path)?);
        let e = by_seed.entry(seed).or_default();
        e.k += c.k;
        e.n += c.n;
    }
    Ok(by_seed.into_values().collect())
}

pub fn cell_label(c: Option<Cell>) -> String {
    c.map_or_else(|| "open questions".to_owned(), |c| c.to_string())
}
