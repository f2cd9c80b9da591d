//! Stage configs for your own model: `emsl-hf job CONFIG` runs a fine-tune, a judged evaluation, the
//! EM protocol or a distillation from one TOML file, as `cargo xtask job` runs the kit's own stages.
//! The file holds what the stage computes (`[spec]`, with `kind`, every model as
//! `{ family = "qwen2", path = "..." }`) and where it writes (`[io] out`). Every field must be present
//! (no hidden defaults; an optional one may be left out where it says so); paths are relative to the
//! working directory. A model's `family` must be the `model_type` of its folder's `config.json`, so a
//! config says what it loads and a wrong folder is refused before anything runs.
//!
//! Outputs record each input by the sha256 of its files, never by its path (`runs.rs`,
//! `protocol.rs`): the same stage on the same files in other folders writes the same bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::answers::AnswerConfig;
use crate::distil::DistilConfig;
use crate::finetune::FinetuneConfig;
use crate::protocol::{run_em, run_judge, EmInputs, JudgeConfig, JudgeInputs};
use crate::runs::{distil_run, finetune_run};
use crate::{Family, HfFolder};

/// A model folder in the Hugging Face layout and the family it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRef {
    pub family: Family,
    pub path: PathBuf,
}

impl ModelRef {
    /// An error naming the folder when it lacks a file the kit reads or holds another family.
    fn check(&self) -> Result<()> {
        let folder = HfFolder::open(&self.path)?;
        let found = folder.config()?.family;
        if found != self.family {
            bail!(
                "family = \"{}\", but {} has model_type \"{}\": set family = \"{}\" or name the {} folder",
                self.family.name(),
                folder.config_path().display(),
                found.name(),
                found.name(),
                self.family.name(),
            );
        }
        Ok(())
    }
}

/// One own-model stage, tagged by `kind` in TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HfStageSpec {
    Finetune(FinetuneStage),
    Judge(JudgeStage),
    Em(EmStage),
    Distil(DistilStage),
}

/// `emsl-hf finetune`: the model or its LoRA adapter trained on a chat JSONL set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneStage {
    pub model: ModelRef,
    /// Chat JSONL: one `{"messages": [...]}` a line.
    pub data: PathBuf,
    pub finetune: FinetuneConfig,
}

/// `emsl-hf judge`: Betley et al.'s judged open questions on one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeStage {
    pub model: ModelRef,
    /// A LoRA adapter in PEFT's layout to attach to the model (may be left out).
    #[serde(default)]
    pub adapter: Option<PathBuf>,
    pub judge: ModelRef,
    /// Questions and judge prompts in Betley et al.'s YAML format (left out: the kit's own).
    #[serde(default)]
    pub questions: Option<PathBuf>,
    pub answers: AnswerConfig,
    pub scoring: JudgeConfig,
}

/// `emsl-hf em`: the EM protocol end to end (base, fine-tuned and control arms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmStage {
    pub model: ModelRef,
    pub judge: ModelRef,
    /// The set whose effect is measured (chat JSONL).
    pub train: PathBuf,
    /// The control set (chat JSONL), fine-tuned the same way.
    pub control: PathBuf,
    /// As [`JudgeStage::questions`].
    #[serde(default)]
    pub questions: Option<PathBuf>,
    pub finetune: FinetuneConfig,
    pub answers: AnswerConfig,
    pub scoring: JudgeConfig,
}

/// `emsl-hf distil`: a student learns from a teacher that shares its tokenizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistilStage {
    pub teacher: ModelRef,
    pub student: ModelRef,
    /// Chat JSONL whose messages before the first assistant message are the prompts.
    pub prompts: PathBuf,
    pub distil: DistilConfig,
}

impl HfStageSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            HfStageSpec::Finetune(_) => "finetune",
            HfStageSpec::Judge(_) => "judge",
            HfStageSpec::Em(_) => "em",
            HfStageSpec::Distil(_) => "distil",
        }
    }

    /// The models the stage loads, by their field in `[spec]`.
    pub fn models(&self) -> Vec<(&'static str, &ModelRef)> {
        match self {
            HfStageSpec::Finetune(s) => vec![("model", &s.model)],
            HfStageSpec::Judge(s) => vec![("model", &s.model), ("judge", &s.judge)],
            HfStageSpec::Em(s) => vec![("model", &s.model), ("judge", &s.judge)],
            HfStageSpec::Distil(s) => vec![("teacher", &s.teacher), ("student", &s.student)],
        }
    }
}

/// Where an own-model stage writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HfStageIo {
    /// The output folder (must not exist; written whole or not at all).
    pub out: PathBuf,
}

/// One own-model stage's config file: `[spec]` and `[io]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HfStageConfig {
    pub spec: HfStageSpec,
    pub io: HfStageIo,
    /// Per input (`[spec]` field), the sha256 of each of its files when the job was planned, by the
    /// file's path inside the input (`cargo xtask own-model` writes it; left out by hand). A job whose
    /// inputs changed since is refused before it writes anything (`stage_plan::check_planned`): its
    /// outputs would be filed under the identity of the files it did not read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, BTreeMap<String, String>>,
}

impl HfStageConfig {
    /// An error naming the `[spec]` field of the first model whose folder is incomplete or holds
    /// another family.
    pub fn check_models(&self) -> Result<()> {
        for (field, model) in self.spec.models() {
            model
                .check()
                .with_context(|| format!("[spec.{field}] of the {} stage", self.spec.kind()))?;
        }
        Ok(())
    }
}

/// Reads an own-model stage config. Unknown or missing fields are errors naming the file and field.
pub fn read_stage_config(path: &Path) -> Result<HfStageConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config {}", path.display()))
}

/// Runs the stage of `cfg` on the CPU; returns its output folder.
pub fn run_stage(cfg: &HfStageConfig) -> Result<PathBuf> {
    cfg.check_models()?;
    let out = &cfg.io.out;
    match &cfg.spec {
        HfStageSpec::Finetune(s) => finetune_run(&s.model.path, &s.data, &s.finetune, out),
        HfStageSpec::Judge(s) => {
            let inputs = JudgeInputs {
                model: &s.model.path,
                adapter: s.adapter.as_deref(),
                judge: &s.judge.path,
                questions: s.questions.as_deref(),
            };
            run_judge(&inputs, &s.answers, &s.scoring, out)
        }
        HfStageSpec::Em(s) => {
            let inputs = EmInputs {
                model: &s.model.path,
                judge: &s.judge.path,
                train: &s.train,
                control: &s.control,
                questions: s.questions.as_deref(),
            };
            run_em(&inputs, &s.answers, &s.finetune, &s.scoring, out)
        }
        HfStageSpec::Distil(s) => {
            distil_run(&s.teacher.path, &s.student.path, &s.prompts, &s.distil, out)
        }
    }
}
