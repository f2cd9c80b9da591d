//! `emsl-hf job --plan CONFIG`: what a job graph needs to file an own-model stage under an identity
//! without running it. The spec comes out twice: with every input's path replaced by the input's name
//! (what the stage computes, wherever its files sit: paths are not identity) and with every path
//! absolute (what the job runs). Beside them, per input, every file it reads, which the graph hashes
//! as it hashes a dataset. The models are checked first (complete folder, the family the config
//! names), so a bad config fails the plan, before any job runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::folder::files_under;
use crate::stage::{HfStageConfig, HfStageSpec};

/// One file an input reads: its path inside the input (empty for an input that is one file) and where
/// it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputFile {
    pub name: String,
    pub path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StagePlan {
    pub kind: &'static str,
    /// Every input's path replaced by `<field>`.
    pub spec: HfStageSpec,
    /// Every input's path absolute (relative ones are taken from the working directory).
    pub resolved: HfStageSpec,
    /// Per input, by its `[spec]` field, every file it reads, sorted by name.
    pub inputs: BTreeMap<String, Vec<InputFile>>,
}

impl HfStageSpec {
    /// Every path the stage reads, by its `[spec]` field: model folders, adapters, data and questions.
    pub fn inputs_mut(&mut self) -> Vec<(&'static str, &mut PathBuf)> {
        let mut out = Vec::new();
        match self {
            HfStageSpec::Finetune(s) => {
                out.push(("model", &mut s.model.path));
                out.push(("data", &mut s.data));
            }
            HfStageSpec::Judge(s) => {
                out.push(("model", &mut s.model.path));
                out.push(("judge", &mut s.judge.path));
                if let Some(a) = &mut s.adapter {
                    out.push(("adapter", a));
                }
                if let Some(q) = &mut s.questions {
                    out.push(("questions", q));
                }
            }
            HfStageSpec::Em(s) => {
                out.push(("model", &mut s.model.path));
                out.push(("judge", &mut s.judge.path));
                out.push(("train", &mut s.train));
                out.push(("control", &mut s.control));
                if let Some(q) = &mut s.questions {
                    out.push(("questions", q));
                }
            }
            HfStageSpec::Distil(s) => {
                out.push(("teacher", &mut s.teacher.path));
                out.push(("student", &mut s.student.path));
                out.push(("prompts", &mut s.prompts));
            }
        }
        out
    }
}

/// The plan of `cfg` (read from `config`, named in errors).
pub fn plan_stage(cfg: &HfStageConfig, config: &Path) -> Result<StagePlan> {
    cfg.check_models()
        .with_context(|| format!("config {}", config.display()))?;
    let mut spec = cfg.spec.clone();
    let mut resolved = cfg.spec.clone();
    let mut inputs = BTreeMap::new();
    for ((field, blank), (_, path)) in spec.inputs_mut().into_iter().zip(resolved.inputs_mut()) {
        let abs = std::path::absolute(&*path)
            .with_context(|| format!("config {}: [spec] {field}", config.display()))?;
        let files = input_files(&abs)
            .with_context(|| format!("config {}: [spec] {field}", config.display()))?;
        inputs.insert(field.to_owned(), files);
        *blank = PathBuf::from(format!("<{field}>"));
        *path = abs;
    }
    Ok(StagePlan {
        kind: cfg.spec.kind(),
        spec,
        resolved,
        inputs,
    })
}

/// The files of an input: every file of a folder ([`files_under`]), or the one file.
fn input_files(path: &Path) -> Result<Vec<InputFile>> {
    if path.is_dir() {
        Ok(files_under(path)?
            .into_iter()
            .map(|(name, path)| InputFile { name, path })
            .collect())
    } else if path.is_file() {
        Ok(vec![InputFile {
            name: String::new(),
            path: path.to_path_buf(),
        }])
    } else {
        bail!(
            "{} is neither a file nor a folder; fix the path",
            path.display()
        )
    }
}

/// Refuses a job whose inputs are not the files it was planned with (`HfStageConfig::inputs`;
/// nothing to check when it is empty), naming the input and the file that changed, appeared or went.
pub fn check_planned(cfg: &HfStageConfig) -> Result<()> {
    if cfg.inputs.is_empty() {
        return Ok(());
    }
    let rerun = "plan the job again (cargo xtask own-model)";
    let mut spec = cfg.spec.clone();
    let fields = spec.inputs_mut();
    for planned in cfg.inputs.keys() {
        if !fields.iter().any(|(f, _)| f == planned) {
            bail!("[inputs] names '{planned}', which is no input of the stage");
        }
    }
    for (field, path) in fields {
        let Some(planned) = cfg.inputs.get(field) else {
            bail!("[inputs] has no '{field}': {rerun}");
        };
        let mut found = BTreeMap::new();
        for f in input_files(path).with_context(|| format!("[spec] {field}"))? {
            let sha = emsl_io::sha256_file(&f.path)
                .with_context(|| format!("hashing {}", f.path.display()))?;
            found.insert(f.name, sha);
        }
        if &found != planned {
            let names: std::collections::BTreeSet<&String> =
                found.keys().chain(planned.keys()).collect();
            let changed: Vec<&str> = names
                .into_iter()
                .filter(|n| found.get(*n) != planned.get(*n))
                .map(|n| if n.is_empty() { "the file" } else { n.as_str() })
                .collect();
            bail!(
                "[spec] {field} ({}) changed since the job was planned ({}): {rerun}",
                path.display(),
                changed.join(", ")
            );
        }
    }
    Ok(())
}
