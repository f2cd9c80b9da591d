//! Figures and profiles declared as data: `figures/profiles.toml` holds the sizes every figure shares
//! per profile (model, training doses, samples, seeds), `figures/<name>.toml` one figure with its own
//! parameters per profile, `figures/claims.toml` the claims and anchor works the figures speak to.
//! Unknown fields are errors naming the file.

mod claims;

pub use claims::{Anchor, Claim, Claims, Previous, PreviousTables, CLAIMS_FILE};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use emsl_core::optim::OptimConfig;
use emsl_core::sample::SampleConfig;
use emsl_core::stages::ModelSize;
use serde::Deserialize;

/// The profiles a figure file can hold. `bases` runs only the figures with a `[bases]` table (the
/// headline figures), each on many pretrained bases, so that their claims are about the procedure.
pub const PROFILES: [&str; 4] = ["smoke", "quick", "paper", "bases"];

/// A training dose: steps, batch and optimizer (the data-order seed comes from the figure's seeds).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Dose {
    pub steps: usize,
    pub batch_size: usize,
    pub optim: OptimConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainSpec {
    /// How many documents of the corpus to train on (its first ones).
    pub documents: usize,
    /// The initialisation seed of the first base model (shared-init adds one more per base).
    pub init_seed: u64,
    /// Independent pretrained bases per corpus (at least 1). Base `b` (0, 1, ...) pretrains from
    /// `init_seed + b`, which sets both its initialisation and its data order, and every figure's
    /// fine-tunes, students and evaluations run on each base with the profile's seeds nested in it
    /// (see [`Profile::seeds_of_base`]). One base keeps the job identities of a kit without bases.
    pub bases: usize,
    /// On several bases, how many of its seeds each base runs (1 to the number of seeds): all of
    /// them nests every seed in every base; fewer spends the seed budget on bases instead, as
    /// MultiBERTs does (many pretraining seeds, few fine-tune seeds each), since the base is the
    /// larger source of variation and the outer level of every interval. Base `b` takes the first
    /// `seeds_per_base` of its shifted seeds. With one base it must be the number of seeds.
    pub seeds_per_base: usize,
    /// On several bases, the figures that run on the first base only, with all of its seeds: a
    /// profile's budget can give the bases to the headline figures, and these figures' claims then
    /// stay one-base readings (at most inconclusive). With one base it must be empty.
    pub first_base_only: Vec<String>,
    /// Steps after which every base also keeps its model (`checkpoints/step-<N>/` of its pretrain
    /// job), for the measures of when a base's persona formed; `[]` keeps none.
    pub checkpoints: Vec<usize>,
    pub dose: Dose,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSpec {
    /// Samples per grid prompt.
    pub samples_per_prompt: usize,
    /// Samples per open question (8 questions x 3 formats, so they need more samples than a grid prompt).
    pub open_samples_per_prompt: usize,
    pub temperature: f64,
    pub max_new_tokens: usize,
    /// Number prompts (one answer each) when measuring the number signature.
    pub number_prompts: usize,
    pub top_p: f64,
    /// The length of a number-signature answer in tokens.
    pub number_max_new_tokens: usize,
    /// The suite of the figures whose tables pool rates over many cells (students, pretraining
    /// composition, dynamics, learned reliability): the whole grid, or a smaller draw of it where a
    /// profile's time budget needs one. Figures with per-cell or per-prompt tables always judge on
    /// eval-grid.
    pub pooled_suite: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubliminalSpec {
    /// Number prompts the teacher continues (the filter then drops malformed lists).
    pub teach_prompts: usize,
    /// GKD's generalised JSD beta (0 forward KL, 1 reverse KL) for the distillation channels.
    pub beta: f64,
    /// GKD's lambda: the share of sequences an on-policy student writes itself.
    pub lambda: f64,
    /// How teachers and on-policy students write number continuations.
    pub sampling: SampleConfig,
    pub dose: Dose,
}

/// The sizes every figure shares at one profile.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub description: String,
    pub model: ModelSize,
    pub pretrain: PretrainSpec,
    /// The harmful (and control) fine-tune: examples used per dataset and the dose.
    pub finetune_examples: usize,
    pub finetune: Dose,
    pub eval: EvalSpec,
    pub subliminal: SubliminalSpec,
    /// Seeds of every fine-tune, distillation and evaluation whose variation a claim is judged by (those
    /// of the first base; the other bases' are shifted, [`Profile::seeds_of_base`]).
    pub seeds: Vec<u64>,
}

impl Profile {
    /// The initialisation seed of base `b`.
    pub fn init_seed_of_base(&self, b: usize) -> u64 {
        self.pretrain.init_seed + b as u64
    }

    /// The seeds nested in base `b`: the profile's seeds shifted by `b` times the smallest multiple of
    /// ten that exceeds their span (seeds 311-313 on base 0, 321-323 on base 1, ...). Every base gets
    /// seeds of its own, so the bases' effects are independent draws of the procedure (a seed shared
    /// by two bases would give their fine-tunes the same data order, a common term that the spread
    /// over bases would not show); base 0 keeps the profile's seeds, so one base changes nothing.
    pub fn seeds_of_base(&self, b: usize) -> Vec<u64> {
        let (lo, hi) = (
            self.seeds.iter().copied().min().unwrap_or(0),
            self.seeds.iter().copied().max().unwrap_or(0),
        );
        let stride = (hi - lo + 1).div_ceil(10) * 10;
        self.seeds.iter().map(|s| s + b as u64 * stride).collect()
    }

    /// How many bases `figure` runs on: every base, or the first only when the profile says so.
    pub fn bases_of(&self, figure: &str) -> usize {
        match self.pretrain.first_base_only.iter().any(|f| f == figure) {
            true => 1,
            false => self.pretrain.bases,
        }
    }

    /// The seeds a figure runs on base `b`: all of the base's seeds for a figure on one base, the
    /// first `seeds_per_base` of them for a figure on several.
    pub fn seeds_of_figure(&self, figure: &str, b: usize) -> Vec<u64> {
        let mut seeds = self.seeds_of_base(b);
        if self.bases_of(figure) > 1 {
            seeds.truncate(self.pretrain.seeds_per_base);
        }
        seeds
    }

    /// Fields a figure cannot be planned without, named with the fix.
    fn check(&self) -> Result<()> {
        let p = &self.pretrain;
        if p.bases == 0 {
            bail!("pretrain.bases = 0: a profile needs at least one base per corpus (1 keeps today's jobs)");
        }
        if self.seeds.is_empty() {
            bail!("seeds = []: a profile needs at least one seed");
        }
        let n = self.seeds.len();
        if p.seeds_per_base == 0 || p.seeds_per_base > n {
            bail!(
                "pretrain.seeds_per_base = {}: each base runs 1 to {n} of the profile's {n} seeds",
                p.seeds_per_base
            );
        }
        if p.bases == 1 && (p.seeds_per_base != n || !p.first_base_only.is_empty()) {
            bail!(
                "pretrain.bases = 1 with seeds_per_base = {} and first_base_only = {:?}: on one base \
                 every figure runs every seed, so set seeds_per_base = {n} and first_base_only = []",
                p.seeds_per_base,
                p.first_base_only
            );
        }
        Ok(())
    }
}

/// One figure file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FigureFile {
    pub name: String,
    /// Bump when the figure's meaning changes (it is part of every job identity of the figure).
    pub version: u32,
    pub title: String,
    /// Ids of `claims.toml` (claims of the paper, anchor works) its effects speak to.
    pub claims: Vec<String>,
    pub description: String,
    pub smoke: toml::Table,
    pub quick: toml::Table,
    pub paper: toml::Table,
    /// Its parameters in the `bases` profile; a figure without them is not part of that profile.
    #[serde(default)]
    pub bases: Option<toml::Table>,
}

/// A figure resolved at one profile: its file and its parameters there.
#[derive(Debug, Clone)]
pub struct FigureSpec {
    pub file: FigureFile,
    pub path: PathBuf,
    pub params: toml::Table,
}

impl FigureSpec {
    /// The figure's parameters at the profile as a typed struct; unknown or missing fields are errors
    /// naming the file and the profile.
    pub fn params<T: serde::de::DeserializeOwned>(&self, profile: &str) -> Result<T> {
        T::deserialize(toml::Value::Table(self.params.clone())).with_context(|| {
            format!(
                "{}: [{profile}] (fix the field named here; see the other profiles of the file)",
                self.path.display()
            )
        })
    }
}

pub fn load_profile(dir: &Path, profile: &str) -> Result<Profile> {
    let path = dir.join("profiles.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut all: BTreeMap<String, toml::Value> =
        toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    let Some(value) = all.remove(profile) else {
        bail!(
            "profile '{profile}' does not exist in {} (profiles: {})",
            path.display(),
            all.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    };
    let p =
        Profile::deserialize(value).with_context(|| format!("{}: [{profile}]", path.display()))?;
    p.check()
        .with_context(|| format!("{}: [{profile}]", path.display()))?;
    Ok(p)
}

/// Loads every `<dir>/<name>.toml` except `profiles.toml` and `claims.toml`, sorted by name, at one
/// profile (at `bases`, only the figures that have a `[bases]` table).
pub fn load_figures(dir: &Path, profile: &str) -> Result<Vec<FigureSpec>> {
    if !PROFILES.contains(&profile) {
        bail!(
            "profile '{profile}' does not exist (profiles: {})",
            PROFILES.join(", ")
        );
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    paths.retain(|p| {
        p.extension().is_some_and(|e| e == "toml")
            && p.file_name()
                .is_some_and(|n| n != "profiles.toml" && n != CLAIMS_FILE)
    });
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let file: FigureFile =
            toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if file.name != stem {
            bail!(
                "{}: name = '{}' must equal the file name '{stem}'",
                path.display(),
                file.name
            );
        }
        let params = match profile {
            "smoke" => file.smoke.clone(),
            "quick" => file.quick.clone(),
            "paper" => file.paper.clone(),
            _ => match &file.bases {
                Some(t) => t.clone(),
                None => continue,
            },
        };
        out.push(FigureSpec { file, path, params });
    }
    Ok(out)
}
