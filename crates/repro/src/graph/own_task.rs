//! What the graph needs of a stage of your own model ([`Task::Own`], planned by [`crate::own`]): its
//! lock kind and the config its job reads. It lives with `Task`, so the graph never reaches up into
//! the planner that builds such tasks.

use std::path::Path;

use anyhow::{bail, Result};

use super::Task;

/// The lock kind of an own-model stage (a job's key starts with it); `None` for a stage emsl-hf does
/// not have.
pub fn own_kind(stage: &str) -> Option<&'static str> {
    Some(match stage {
        "finetune" => "own-finetune",
        "judge" => "own-judge",
        "em" => "own-em",
        "distil" => "own-distil",
        _ => return None,
    })
}

/// Whether `key` is the key of an own-model job (every [`own_kind`] starts its keys with `own-`).
pub fn is_own_job(key: &str) -> bool {
    key.starts_with("own-")
}

/// The config `emsl-hf job` reads for the job: the resolved spec, writing into `dest`, with the
/// sha256 of every input file as planned (the job refuses to run on files that changed since).
pub fn own_stage_config(task: &Task, dest: &Path) -> Result<String> {
    let Task::Own {
        resolved, inputs, ..
    } = task
    else {
        bail!("not a stage of your own model");
    };
    let cfg = serde_json::json!({ "spec": resolved, "inputs": inputs, "io": { "out": dest } });
    Ok(toml::to_string(&cfg)?)
}
