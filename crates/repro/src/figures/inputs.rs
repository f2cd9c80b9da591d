//! What a table builder reads: the outputs of its figure's jobs by role, the judged samples of each
//! evaluation joined with its prompt, and the counts every figure takes of them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use emsl_analysis::{Counts, PerSeed};
use emsl_world::{Cell, PromptSpec, Target};

/// A role of a table input: `k=v` pairs joined by `,` (`arm=health/advice,seed=1,what=eval`).
pub fn role(pairs: &[(&str, &str)]) -> String {
    for (k, v) in pairs {
        assert!(
            !format!("{k}{v}").contains([',', '=']),
            "a role's keys and values hold no ',' or '=' ('{k}' = '{v}')"
        );
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The role of an input on the same base as the input whose parsed role is `beside`: `pairs`, after
/// `beside`'s base when it names one (as the plan names each base's roles).
pub fn role_on_base(beside: &BTreeMap<String, String>, pairs: &[(&str, &str)]) -> String {
    let mut all: Vec<(&str, &str)> = Vec::new();
    if let Some(b) = beside.get("base") {
        all.push(("base", b));
    }
    all.extend_from_slice(pairs);
    role(&all)
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

    /// Inputs whose judged samples are given, not read from eval folders (tests of the table builders
    /// on synthetic inputs): each role gets a folder name of its own that no file backs.
    #[cfg(test)]
    pub fn synthetic(samples: BTreeMap<String, Vec<Sample>>) -> Inputs {
        let inputs = Inputs::new(BTreeMap::new(), PathBuf::from("/nonexistent/datasets"));
        let mut roles = BTreeMap::new();
        for (i, (role, ss)) in samples.into_iter().enumerate() {
            let dir = PathBuf::from(format!("/nonexistent/synthetic-{i}"));
            inputs
                .samples
                .lock()
                .expect("not poisoned")
                .insert(dir.clone(), std::sync::Arc::new(ss));
            roles.insert(role, dir);
        }
        Inputs { roles, ..inputs }
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

    pub fn suite(&self, name: &str) -> Result<std::sync::Arc<Vec<std::sync::Arc<PromptSpec>>>> {
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
        let suite = emsl_core::eval::read_summary(dir)?.config.suite;
        let specs = self.suite(&suite)?;
        emsl_core::eval::read_samples(dir)?
            .into_iter()
            .map(|r| {
                let spec = specs.get(r.prompt_id as usize).with_context(|| {
                    format!(
                        "{}: prompt {} is not in suite {suite}",
                        dir.display(),
                        r.prompt_id
                    )
                })?;
                Ok(Sample {
                    prompt_id: r.prompt_id,
                    sample: r.sample,
                    spec: spec.clone(),
                    answer: r.answer,
                    coherent: r.verdict.coherent,
                    misaligned: r.verdict.misaligned,
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
/// The seeds' counts of `f` applied to the samples of every input matching `filter`, per seed, grouped
/// by the base the seed ran on (the role's `base`, which a profile of one base leaves out).
pub fn per_seed(
    inputs: &Inputs,
    filter: &[(&str, &str)],
    f: impl Fn(&[Sample]) -> Counts,
) -> Result<PerSeed> {
    let mut by_seed: BTreeMap<SeedKey, Counts> = BTreeMap::new();
    let found = inputs.find(filter);
    if found.is_empty() {
        bail!("no inputs match {filter:?}");
    }
    for (m, path) in found {
        let c = f(&inputs.samples(path)?);
        let e = by_seed.entry(seed_of(&m)?).or_default();
        e.k += c.k;
        e.n += c.n;
    }
    Ok(grouped_by_base(by_seed))
}

/// `f` of every input matching `filter`, `[base][seed]` (one base when the roles name none), in the
/// order of the bases' init seeds and, within a base, of the seeds: for a quantity that is not a
/// rate, what [`super::rows::mean_row`] takes. Two inputs of one seed are an error: a value per seed
/// needs one.
pub fn values_by_base<T>(
    inputs: &Inputs,
    filter: &[(&str, &str)],
    f: impl Fn(&Path) -> Result<T>,
) -> Result<Vec<Vec<T>>> {
    let found = inputs.find(filter);
    if found.is_empty() {
        bail!("no inputs match {filter:?}");
    }
    let mut by_seed: BTreeMap<SeedKey, T> = BTreeMap::new();
    for (m, path) in found {
        if by_seed.insert(seed_of(&m)?, f(path)?).is_some() {
            bail!("two inputs of one seed match {filter:?} ({m:?}): a value per seed needs one");
        }
    }
    Ok(into_bases(by_seed))
}

/// Values keyed by (base, seed) as `[base][seed]`, in key order.
fn into_bases<T>(by_seed: BTreeMap<SeedKey, T>) -> Vec<Vec<T>> {
    let mut by_base: BTreeMap<u64, Vec<T>> = BTreeMap::new();
    for ((base, _), v) in by_seed {
        by_base.entry(base).or_default().push(v);
    }
    by_base.into_values().collect()
}

/// The loss of every logged step of a training job's `train_log.jsonl`, in order (a line without a
/// loss is passed over, as the figures that read the log always did).
pub fn train_losses(dir: &Path) -> Result<Vec<f64>> {
    let path = dir.join("train_log.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["loss"].as_f64())
        .collect())
}

/// Which seed of which base an input ran on: (base's init seed, seed), 0 for what its role does not name.
pub type SeedKey = (u64, u64);

/// The (base, seed) a role's input ran on: its `base` and `seed`, 0 for one it does not name.
pub fn seed_of(role: &BTreeMap<String, String>) -> Result<SeedKey> {
    let number = |key: &str| {
        role.get(key)
            .map_or(Ok(0), |s| s.parse::<u64>())
            .with_context(|| format!("the {key} of role {role:?}"))
    };
    Ok((number("base")?, number("seed")?))
}

/// Counts keyed by (base, seed) as per-seed counts grouped by base.
pub fn grouped_by_base(by_seed: BTreeMap<SeedKey, Counts>) -> PerSeed {
    PerSeed::from_bases(into_bases(by_seed))
}

pub fn cell_label(c: Option<Cell>) -> String {
    c.map_or_else(|| "open questions".to_owned(), |c| c.to_string())
}
