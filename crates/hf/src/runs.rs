//! A fine-tune or a distillation into an output folder, written whole or not at all: the model (or
//! adapter) it trained and `summary.json` with the sha256 of every input file. What `emsl-hf
//! finetune`, `emsl-hf distil` and their stage configs (`stage.rs`) run.

use std::path::{Path, PathBuf};

use anyhow::Result;
use candle_core::Device;
use serde_json::json;

use crate::chat::Message;
use crate::distil::{distil, DistilConfig};
use crate::finetune::{encode_dataset, file_name, finetune, save_finetuned, FinetuneConfig};
use crate::output::{folder_inputs, write_json, Staged};
use crate::read_chat_jsonl;

/// Fine-tunes the model folder `model` on the chat JSONL `data` into `out` (which must not exist).
pub fn finetune_run(
    model: &Path,
    data: &Path,
    cfg: &FinetuneConfig,
    out: &Path,
) -> Result<PathBuf> {
    cfg.check()?;
    let data = read_chat_jsonl(data)?;
    let mut loaded = crate::load(model, &Device::Cpu)?;
    // Every example is encoded (and a bad one named) before the output folder exists.
    let examples = encode_dataset(&loaded, &data, cfg.max_len)?;
    let staged = Staged::new(out)?;
    let summary = finetune(&mut loaded, &data, &examples, cfg, "finetune")?;
    save_finetuned(staged.path(), &loaded, cfg.lora.as_ref())?;
    let record = json!({
        "command": "emsl-hf finetune",
        "model": folder_inputs(model)?,
        "summary": summary,
    });
    write_json(&staged.path().join("summary.json"), &record)?;
    let last = summary.losses.last().map_or(f32::NAN, |l| l.loss);
    eprintln!(
        "{} steps on {} examples, last loss {last:.4}",
        summary.steps, summary.examples
    );
    staged.finish()
}

/// Distils the model folder `teacher` into `student` on the prompts of the chat JSONL `prompts` (each
/// record's messages before its first assistant message; the file's answers are not used: the
/// teacher writes its own), into `out` (which must not exist).
pub fn distil_run(
    teacher: &Path,
    student: &Path,
    prompts: &Path,
    cfg: &DistilConfig,
    out: &Path,
) -> Result<PathBuf> {
    cfg.check()?;
    let data = read_chat_jsonl(prompts)?;
    let prompt_messages: Vec<Vec<Message>> = data
        .records
        .iter()
        .map(|m| {
            m.iter()
                .take_while(|m| m.role != "assistant")
                .cloned()
                .collect()
        })
        .collect();
    let teacher_model = crate::load(teacher, &Device::Cpu)?;
    let mut student_model = crate::load(student, &Device::Cpu)?;
    let staged = Staged::new(out)?;
    let summary = distil(&mut student_model, &teacher_model, &prompt_messages, cfg)?;
    save_finetuned(staged.path(), &student_model, cfg.lora.as_ref())?;
    let record = json!({
        "command": "emsl-hf distil",
        "teacher": folder_inputs(teacher)?,
        "student": folder_inputs(student)?,
        "prompts": {"file": file_name(&data.path), "sha256": data.sha256},
        "summary": summary,
    });
    write_json(&staged.path().join("summary.json"), &record)?;
    staged.finish()
}
