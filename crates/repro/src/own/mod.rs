//! Your own model's stages as jobs of the graph (`cargo xtask own-model`): an `emsl-hf job` config
//! becomes a [`Task::Own`] whose identity is what the stage computes and the sha256 of every file its
//! inputs hold (model folders, adapters, chat JSONL, questions), never their paths, so a config runs
//! again only when a setting, a file or crates/hf's code changed. emsl-hf plans the stage
//! (`emsl-hf job --plan`: it knows which fields are inputs and checks the models); this crate hashes
//! the files, with a cache by path, size and modification time so that a plan does not re-read the
//! gigabytes of an unchanged checkpoint.

mod hashes;
mod run;

pub use hashes::{FileHashes, HASH_CACHE};
pub use run::{link_results, not_current, plan_configs, prune_unlinked, OwnPlan};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

pub use crate::graph::{is_own_job, own_stage_config as stage_config};
use crate::graph::{own_kind, Task};

/// What `emsl-hf job --plan` prints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagePlan {
    pub kind: String,
    pub spec: serde_json::Value,
    pub resolved: serde_json::Value,
    pub inputs: BTreeMap<String, Vec<InputFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputFile {
    pub name: String,
    pub path: PathBuf,
}

/// Runs `hf job --plan config` in `cwd` (where the config's relative paths start).
pub fn plan_stage(hf: &Path, cwd: &Path, config: &Path) -> Result<StagePlan> {
    let out = Command::new(hf)
        .current_dir(cwd)
        .args(["job", "--plan"])
        .arg(config)
        .output()
        .with_context(|| format!("starting {}", hf.display()))?;
    if !out.status.success() {
        bail!(
            "planning {}: {}",
            config.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("reading the plan {} printed", hf.display()))
}

/// The job of a planned stage, its inputs' files hashed through `hashes`.
pub fn task(plan: StagePlan, hashes: &mut FileHashes) -> Result<Task> {
    if own_kind(&plan.kind).is_none() {
        bail!("emsl-hf planned a stage of unknown kind '{}'", plan.kind);
    }
    let mut inputs = BTreeMap::new();
    for (input, files) in plan.inputs {
        let mut sums = BTreeMap::new();
        for f in files {
            sums.insert(f.name, hashes.sha256(&f.path)?);
        }
        inputs.insert(input, sums);
    }
    Ok(Task::Own {
        stage: plan.kind,
        spec: without_nulls(plan.spec),
        inputs,
        resolved: without_nulls(plan.resolved),
    })
}

/// A field left out is `null` in JSON and absent in TOML (the lock and the stage config are TOML).
fn without_nulls(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        v => v,
    }
}

#[cfg(test)]
mod tests {
    use super::{FileHashes, StagePlan};

    fn plan(kind: &str) -> StagePlan {
        serde_json::from_value(serde_json::json!({
            "kind": kind,
            "spec": { "kind": kind, "model": { "family": "qwen2", "path": "<model>" }, "adapter": null },
            "resolved": { "kind": kind, "model": { "family": "qwen2", "path": "/m" }, "adapter": null },
            "inputs": {},
        }))
        .unwrap()
    }

    /// A field left out (`null`) is left out of the task, so the lock and the job's config (TOML)
    /// can hold it; a stage kind emsl-hf does not have is refused.
    #[test]
    fn a_plan_becomes_a_task_without_nulls_and_an_unknown_kind_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut hashes = FileHashes::load(dir.path());
        let task = super::task(plan("judge"), &mut hashes).unwrap();
        assert_eq!(task.kind(), "own-judge");
        let crate::graph::Task::Own { spec, .. } = &task else {
            panic!("an own task")
        };
        assert!(spec.get("adapter").is_none());
        let config = super::stage_config(&task, &dir.path().join("o")).unwrap();
        let back: toml::Table = toml::from_str(&config).unwrap();
        assert_eq!(back["spec"]["model"]["path"].as_str(), Some("/m"));
        assert!(toml::Value::try_from(&task).is_ok());
        let e = super::task(plan("sing"), &mut hashes).unwrap_err();
        assert!(e.to_string().contains("'sing'"), "{e}");
    }

    /// A file whose size and modification time are unchanged is not read again; one whose size
    /// changed is. The cache survives a save and a load.
    #[test]
    fn file_hashes_are_cached_by_size_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("data.jsonl");
        std::fs::write(&f, "abc").unwrap();
        let mut hashes = FileHashes::load(dir.path());
        let first = hashes.sha256(&f).unwrap();
        assert_eq!(first, emsl_io::sha256_bytes(b"abc"));
        hashes.save().unwrap();
        // Same size, same time (restored): taken from the cache, as git and DVC would.
        let time = std::fs::metadata(&f).unwrap().modified().unwrap();
        std::fs::write(&f, "abd").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(time)
            .unwrap();
        let mut again = FileHashes::load(dir.path());
        assert_eq!(again.sha256(&f).unwrap(), first);
        std::fs::write(&f, "abcd").unwrap();
        assert_eq!(again.sha256(&f).unwrap(), emsl_io::sha256_bytes(b"abcd"));
    }
}
