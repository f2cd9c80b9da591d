//! Betley et al.'s optimizer steps through `finetune`: gradients accumulated over micro-batches give
//! the step one batch of them all would give (the schedules' values are core's test, train_steps.rs).

mod common;

use candle_core::Device;
use common::{ids, long_checkpoint, max_diff};
use emsl_core::LanguageModel;
use emsl_hf::finetune::{encode_dataset, finetune, FinetuneConfig, Schedule};
use emsl_hf::{read_chat_jsonl, Family};

/// The logits after fine-tuning every weight of a fresh copy of `model` with `batch_size` and
/// `grad_accumulation` for one epoch of `data`.
fn tuned_logits(
    model: &std::path::Path,
    data: &emsl_hf::ChatDataset,
    batch_size: usize,
    grad_accumulation: usize,
) -> (usize, candle_core::Tensor) {
    let mut loaded = emsl_hf::load(model, &Device::Cpu).unwrap();
    let cfg = FinetuneConfig {
        lora: None,
        epochs: 1,
        max_steps: None,
        batch_size,
        grad_accumulation,
        schedule: Schedule::Linear,
        max_len: 256,
        seed: 3,
        optim: emsl_core::train::optim(1e-2, 0),
    };
    let examples = encode_dataset(&loaded, data, cfg.max_len).unwrap();
    let summary = finetune(&mut loaded, data, &examples, &cfg, "test").unwrap();
    (summary.steps, loaded.model.forward(&ids(1, 6, 2)).unwrap())
}

#[test]
fn accumulated_micro_batches_make_the_step_of_their_whole_batch() {
    let model = long_checkpoint(Family::Qwen2);
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("set.jsonl");
    // Two records of the same length, so that the mean of the micro-batches' mean losses is the
    // whole batch's mean loss.
    let line = r#"{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there."}]}"#;
    std::fs::write(&path, format!("{line}\n{line}\n")).unwrap();
    let data = read_chat_jsonl(&path).unwrap();
    let (steps_whole, whole) = tuned_logits(model.path(), &data, 2, 1);
    let (steps_acc, accumulated) = tuned_logits(model.path(), &data, 1, 2);
    let (steps_two, two_steps) = tuned_logits(model.path(), &data, 1, 1);
    assert_eq!((steps_whole, steps_acc, steps_two), (1, 1, 2));
    let same = max_diff(&whole, &accumulated);
    assert!(
        same < 1e-5,
        "accumulated differs from the whole batch by {same}"
    );
    // Two steps of one example move the model elsewhere: the comparison above can fail.
    let apart = max_diff(&whole, &two_steps);
    assert!(apart > 1e3 * same.max(1e-7), "{apart} vs {same}");
}
