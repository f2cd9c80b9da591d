//! `datasets/datasets.toml`: the datasets every figure needs, expanded into one job per dataset.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context, Result};
use emsl_world::{
    Cell, Composition, FinetuneKind, FinetuneSpec, Format, Framing, Style, SuiteSpec,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub seed: u64,
    #[serde(default)]
    pub pretrain: Vec<PretrainEntry>,
    #[serde(default)]
    pub finetune: Vec<FinetuneEntry>,
    #[serde(default)]
    pub suite: Vec<SuiteEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainEntry {
    pub name: String,
    /// A file `datasets/compositions/<composition>.toml`.
    pub composition: String,
    pub documents: usize,
}

/// `"all"` or a list of `domain/task` names.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Cells {
    Keyword(String),
    List(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneEntry {
    pub kinds: Vec<String>,
    pub cells: Cells,
    pub formats: Vec<String>,
    pub size: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteEntry {
    pub name: String,
    pub per_cell_style_format: usize,
    pub cells: Cells,
    pub styles: Vec<String>,
    pub formats: Vec<String>,
    pub open_questions: bool,
    pub framings: Vec<String>,
    pub numbers: usize,
}

/// A pretraining corpus to generate: its composition is resolved, so it goes into the manifest whole.
#[derive(Debug, Clone, Serialize)]
pub struct PretrainJob {
    pub composition_name: String,
    pub composition: Composition,
    pub documents: usize,
}

/// One dataset to generate.
#[derive(Debug, Clone)]
pub enum Job {
    Pretrain(PretrainJob),
    Finetune(FinetuneSpec),
    Suite(SuiteSpec),
}

/// A named job with its file, relative to the datasets folder.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    pub file: String,
    pub job: Job,
}

impl Dataset {
    pub fn generator(&self) -> &'static str {
        match self.job {
            Job::Pretrain(_) => "pretrain",
            Job::Finetune(_) => "finetune",
            Job::Suite(_) => "suite",
        }
    }

    /// Pretraining corpora are large and regenerated on demand; everything else is committed.
    pub fn committed(&self) -> bool {
        !matches!(self.job, Job::Pretrain(_))
    }

    /// The resolved parameters, as the manifest records them.
    pub fn params(&self) -> Result<toml::Table> {
        let table = match &self.job {
            Job::Pretrain(p) => toml::Table::try_from(p),
            Job::Finetune(f) => toml::Table::try_from(f),
            Job::Suite(s) => toml::Table::try_from(s),
        };
        table.with_context(|| format!("serializing the parameters of dataset '{}'", self.name))
    }
}

fn parse_all<T: std::str::FromStr<Err = emsl_world::WorldError>>(
    file: &Path,
    field: &str,
    names: &[String],
) -> Result<Vec<T>> {
    names
        .iter()
        .map(|n| {
            n.parse::<T>()
                .with_context(|| format!("{}: field `{field}`", file.display()))
        })
        .collect()
}

fn cells(file: &Path, field: &str, cells: &Cells) -> Result<Vec<Cell>> {
    match cells {
        Cells::Keyword(k) if k == "all" => Ok(Cell::all()),
        Cells::Keyword(k) => bail!("{}: field `{field}` is '{k}'; write \"all\" or a list of cells like [\"health/advice\"]", file.display()),
        Cells::List(list) => parse_all(file, field, list),
    }
}

/// Reads the catalog and expands it into datasets, checking names are unique.
pub fn load(datasets_dir: &Path) -> Result<(u64, Vec<Dataset>)> {
    let file = datasets_dir.join("datasets.toml");
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let catalog: Catalog =
        toml::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
    let mut out = Vec::new();
    for p in &catalog.pretrain {
        let comp_file = datasets_dir
            .join("compositions")
            .join(format!("{}.toml", p.composition));
        let comp_text = std::fs::read_to_string(&comp_file).with_context(|| {
            format!(
                "{}: dataset '{}' names composition '{}', but {} cannot be read",
                file.display(),
                p.name,
                p.composition,
                comp_file.display()
            )
        })?;
        let composition = Composition::from_toml(&comp_file.display().to_string(), &comp_text)?;
        out.push(Dataset {
            name: p.name.clone(),
            file: format!("pretrain/{}.parquet", p.name),
            job: Job::Pretrain(PretrainJob {
                composition_name: p.composition.clone(),
                composition,
                documents: p.documents,
            }),
        });
    }
    for f in &catalog.finetune {
        let kinds: Vec<FinetuneKind> = parse_all(&file, "finetune.kinds", &f.kinds)?;
        let formats: Vec<Format> = parse_all(&file, "finetune.formats", &f.formats)?;
        for kind in &kinds {
            for cell in cells(&file, "finetune.cells", &f.cells)? {
                for format in &formats {
                    let spec = FinetuneSpec {
                        kind: *kind,
                        cell,
                        format: *format,
                        size: f.size,
                    };
                    out.push(Dataset {
                        name: spec.name(),
                        file: format!("finetune/{}.parquet", spec.name()),
                        job: Job::Finetune(spec),
                    });
                }
            }
        }
    }
    for s in &catalog.suite {
        let spec = SuiteSpec {
            per_cell_style_format: s.per_cell_style_format,
            cells: cells(&file, "suite.cells", &s.cells)?,
            styles: parse_all::<Style>(&file, "suite.styles", &s.styles)?,
            formats: parse_all::<Format>(&file, "suite.formats", &s.formats)?,
            open_questions: s.open_questions,
            framings: parse_all::<Framing>(&file, "suite.framings", &s.framings)?,
            numbers: s.numbers,
        };
        out.push(Dataset {
            name: s.name.clone(),
            file: format!("eval/{}.parquet", s.name),
            job: Job::Suite(spec),
        });
    }
    let mut seen = BTreeSet::new();
    for d in &out {
        if !seen.insert(d.name.clone()) {
            bail!(
                "{}: dataset name '{}' appears twice; names must be unique",
                file.display(),
                d.name
            );
        }
    }
    Ok((catalog.seed, out))
}
