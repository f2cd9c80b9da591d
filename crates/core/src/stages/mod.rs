//! The stages a researcher runs by hand or the job graph runs as jobs: `pretrain`, `finetune`,
//! `teach`, `distil` and `eval`, each from one TOML file holding what it computes (`[spec]`, with
//! `kind`) and the folders it reads and writes (`[io]`, with `[io.inputs]` by role). Every field must
//! be present (no hidden defaults); paths are relative to the working directory.
//!
//! A run records its spec alone (checkpoint metadata, `stage.toml`, `summary.json`): the folders say
//! where, not what (the data and parent hashes say what), so the same run in another folder gives the
//! same bytes.

mod direction;
mod distil;
mod eval;
mod finetune;
mod pretrain;
mod run_folder;
pub mod spec;
mod suite;
mod teach;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};

pub use eval::print_samples;
pub use run_folder::load_run;
pub use spec::{
    Channel, DirectionSpec, DistilSpec, EvalConfig, EvalKind, EvalSpec, FinetuneSpec, KlPenalty,
    ModelSize, PretrainSpec, StageSpec, TeachSpec,
};

/// Where a stage reads and writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageIo {
    /// The datasets folder (with `manifest.toml`).
    pub datasets_dir: PathBuf,
    /// The run folders the stage reads, by role (see [`StageSpec::input_roles`]); a pretrain stage
    /// reads none and may leave the table out.
    #[serde(default)]
    pub inputs: BTreeMap<String, PathBuf>,
    /// The folder the stage writes.
    pub out: PathBuf,
}

impl StageIo {
    /// The folder of input `role`.
    pub fn input(&self, role: &str) -> Result<&Path> {
        self.inputs
            .get(role)
            .map(PathBuf::as_path)
            .with_context(|| format!("[io.inputs] has no '{role}'"))
    }
}

/// One stage's config file: `[spec]` and `[io]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    pub spec: StageSpec,
    pub io: StageIo,
}

impl StageConfig {
    /// An error naming the role when `io.inputs` lacks a role the spec reads or has one it does not.
    pub fn check_inputs(&self) -> Result<()> {
        let roles = self.spec.input_roles();
        let kind = self.spec.kind();
        for role in &roles {
            if !self.io.inputs.contains_key(*role) {
                bail!(
                    "input role '{role}' is missing from [io.inputs] (a {kind} stage reads {roles:?})"
                );
            }
        }
        for role in self.io.inputs.keys() {
            if !roles.contains(&role.as_str()) {
                bail!(
                    "[io.inputs] has role '{role}', which a {kind} stage does not read (it reads {roles:?})"
                );
            }
        }
        Ok(())
    }
}

/// Reads a stage config. Unknown or missing fields, and input roles the stage does not read or lacks,
/// are errors naming the file.
pub fn read_config(path: &Path) -> Result<StageConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config {}", path.display()))?;
    let cfg: StageConfig =
        toml::from_str(&text).with_context(|| format!("config {}", path.display()))?;
    cfg.check_inputs()
        .and_then(|()| cfg.spec.check())
        .with_context(|| format!("config {}", path.display()))?;
    Ok(cfg)
}

/// An error when the folder `out` cannot be created: a part of its path is a file, or the nearest
/// folder above it that exists cannot be written (tried with an empty temporary folder there, which is
/// removed at once). Checked before any work, so a run never fails at its end for want of a place.
pub fn check_out_folder(out: &Path) -> Result<()> {
    let mut existing = out;
    loop {
        match std::fs::metadata(existing) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => bail!(
                "[io] out = {}: {} is a file, so the folder cannot be created there; choose \
                 another out",
                out.display(),
                existing.display()
            ),
            // Not there, or under a file (ENOTDIR): look further up.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                existing = match existing.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
            }
            Err(e) => bail!("[io] out = {}: {}: {e}", out.display(), existing.display()),
        }
    }
    tempfile::Builder::new()
        .prefix(".emsl-out-check")
        .tempdir_in(existing)
        .with_context(|| {
            format!(
                "[io] out = {}: no folder can be created in {}; choose another out",
                out.display(),
                existing.display()
            )
        })?;
    Ok(())
}

/// Runs the stage of `cfg` with its model on `device`.
pub fn run(cfg: &StageConfig, device: &Device) -> Result<()> {
    cfg.check_inputs()?;
    cfg.spec.check()?;
    check_out_folder(&cfg.io.out)?;
    let io = &cfg.io;
    match &cfg.spec {
        StageSpec::Pretrain(spec) => pretrain::run(spec, io, device),
        StageSpec::Finetune(spec) => finetune::run(spec, io, device),
        StageSpec::Teach(spec) => teach::run(spec, io, device),
        StageSpec::Distil(spec) => distil::run(spec, io, device),
        StageSpec::Eval(spec) => eval::run(spec, io, device),
        StageSpec::Direction(spec) => direction::run(spec, io, device),
    }
}
