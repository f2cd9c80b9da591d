//! The distil stage: a student trained on a teacher's filtered samples through one channel.

use anyhow::{bail, Result};
use candle_core::Device;

use super::run_folder::{load_run, optimizer, recorded_toml, write_run, RunRecord};
use super::{Channel, DistilSpec, StageIo};
use crate::data::{sft_batch, SftExample};
use crate::distil::{distil_loss, number_subset, read_kept, step_sequences, teacher_examples};
use crate::model::{masked_cross_entropy, LanguageModel};
use crate::prompted::{teacher_prompts, TeacherView};
use crate::train::train_with;

/// Trains the student of role `student_init` on the samples of role `samples` from the teacher of
/// role `teacher`; writes the run folder `io.out`.
pub(super) fn run(spec: &DistilSpec, io: &StageIo, device: &Device) -> Result<()> {
    let (teacher_dir, samples_dir, student_dir) = (
        io.input("teacher")?,
        io.input("samples")?,
        io.input("student_init")?,
    );
    let (teacher, tok, teacher_meta) = load_run(teacher_dir, device)?;
    let (student, student_tok, _) = load_run(student_dir, device)?;
    if student_tok.hash != tok.hash {
        bail!(
            "teacher {} and student {} use different tokenizers",
            teacher_dir.display(),
            student_dir.display()
        );
    }
    let kept = read_kept(samples_dir)?;
    if kept.is_empty() {
        bail!("{} holds no kept teacher samples", samples_dir.display());
    }
    let teacher_examples = teacher_examples(&tok, &kept)?;
    // A prompted teacher guides after its own context on each sample's prompt.
    let prompts: Vec<_> = kept.iter().map(|s| (s.prompt_id, s.spec.clone())).collect();
    let max_new = spec.student_sampling.max_new_tokens;
    let contexts: Vec<Vec<u32>> = teacher_prompts(
        &tok,
        &prompts,
        spec.teacher_context.as_ref(),
        teacher.context_length(),
        max_new,
    )?
    .into_iter()
    .map(|p| p.context)
    .collect();
    let subset = if spec.restrict_to_numbers {
        Some(number_subset(&tok, device)?)
    } else {
        None
    };
    let mut opt = optimizer(&spec.train, &student)?;
    let t = &spec.train;
    let n_ctx = student.context_length();
    let logs = train_with(&mut opt, t, &format!("distil {:?}", spec.channel), |step| {
        let (written, _, rows) =
            step_sequences(spec, step, &student, &tok, &kept, &teacher_examples)?;
        let refs: Vec<&SftExample> = written.iter().collect();
        let batch = sft_batch(&refs, tok.pad, n_ctx, device)?;
        let loss = match spec.channel {
            // Cross-entropy of the logits (not the fused head loss): the recorded runs used this.
            Channel::Sft => masked_cross_entropy(
                &student.forward(&batch.inputs)?,
                &batch.targets,
                &batch.mask,
            )?,
            Channel::OffPolicy | Channel::OnPolicy => {
                // Only the channels that use the teacher's distributions read its view.
                let row_contexts: Vec<&[u32]> =
                    rows.iter().map(|i| contexts[*i].as_slice()).collect();
                let t = batch.inputs.dim(1)?;
                let view = TeacherView::of_batch(&refs, &row_contexts, t, tok.pad, n_ctx, device)?;
                distil_loss(
                    &student,
                    &teacher,
                    &batch.inputs,
                    &batch.mask,
                    spec.beta,
                    subset.as_ref(),
                    view.as_ref(),
                )?
            }
        };
        Ok((loss, batch.inputs.elem_count()))
    })?;
    let mut config = serde_json::json!({ "channel": spec.channel, "beta": spec.beta, "lambda": spec.lambda,
        "restrict_to_numbers": spec.restrict_to_numbers, "student_sampling": spec.student_sampling, "train": spec.train,
        "teacher_sha256": emsl_io::sha256_file(&teacher_dir.join("model.safetensors"))?, "teacher_stage": teacher_meta.stage });
    if let Some(c) = &spec.teacher_context {
        config["teacher_context"] = serde_json::to_value(c)?;
    }
    let record = RunRecord {
        stage: format!("distil-{:?}", spec.channel).to_lowercase(),
        data_sha256: emsl_io::sha256_file(&samples_dir.join("samples.jsonl"))?,
        parent_sha256: Some(emsl_io::sha256_file(
            &student_dir.join("model.safetensors"),
        )?),
        config,
    };
    write_run(
        &io.out,
        &student,
        &opt,
        &tok,
        record,
        recorded_toml(spec)?,
        &logs,
    )
}
