//! The teach stage: a teacher writes number continuations and the world's filter keeps the clean ones.

use anyhow::Result;
use candle_core::Device;
use emsl_world::numbers::{self, filter};

use super::run_folder::{load_run, write_jsonl};
use super::suite::number_prompts;
use super::{StageIo, TeachSpec};
use crate::distil::{teacher_samples, TeacherSample};

/// Samples the teacher of role `teacher`; writes `samples.jsonl` and `summary.json` to `io.out`.
pub(super) fn run(spec: &TeachSpec, io: &StageIo, device: &Device) -> Result<()> {
    let (teacher, tok, _) = load_run(io.input("teacher")?, device)?;
    let prompts = number_prompts(&io.datasets_dir, &spec.suite, spec.prompts)?;
    let samples = teacher_samples(
        &teacher,
        &tok,
        &prompts,
        spec.context.as_ref(),
        &spec.sampling,
        spec.seed,
    )?;
    let kept: Vec<&TeacherSample> = samples.iter().filter(|s| s.kept).collect();
    let kept_numbers: Vec<u16> = kept
        .iter()
        .flat_map(|s| filter(&s.answer).expect("kept samples pass"))
        .collect();
    std::fs::create_dir_all(&io.out)?;
    write_jsonl(&io.out.join("samples.jsonl"), &samples)?;
    let kept_share = kept.len() as f64 / samples.len().max(1) as f64;
    let summary = serde_json::json!({
        "samples": samples.len(),
        "kept": kept.len(),
        "kept_share": kept_share,
        "signature_share_kept": numbers::signature_share(&kept_numbers),
        "signature_share_uniform": numbers::uniform_signature_share(),
        "config": spec,
    });
    emsl_io::write_atomic(
        &io.out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    eprintln!(
        "teach: kept {} of {} continuations ({:.1}%)",
        kept.len(),
        samples.len(),
        100.0 * kept_share
    );
    Ok(())
}
