//! Fixtures shared by the integration tests: a tiny datasets folder and a tiny pretraining config.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use emsl_io::arrow::array::{ArrayRef, RecordBatch, StringArray};
use emsl_io::arrow::datatypes::{DataType, Field, Schema};
use emsl_io::{sha256_file, write_parquet, DatasetEntry, Manifest};
use emsl_world::episode::write_answer;
use emsl_world::*;

/// Reads and runs the stage config `text` (written to `dir/name`) in this process.
pub fn run_here(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let cfg = emsl_core::stages::read_config(&path).unwrap();
    emsl_core::stages::run(&cfg, &candle_core::Device::Cpu).unwrap();
}

pub fn table(columns: Vec<(&str, Vec<Option<String>>)>) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, _)| Field::new(*n, DataType::Utf8, true))
        .collect();
    let arrays: Vec<ArrayRef> = columns
        .into_iter()
        .map(|(_, v)| Arc::new(StringArray::from(v)) as ArrayRef)
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

/// The tiny model of the model, bit and interface tests: 50 tokens, 16 positions, 2 blocks.
pub fn tiny() -> emsl_core::GptConfig {
    emsl_core::GptConfig {
        vocab_size: 50,
        n_ctx: 16,
        d_model: 16,
        n_layer: 2,
        n_head: 2,
        d_ff: 32,
    }
}

/// A datasets folder with a 300-document corpus, a fine-tuning set and an evaluation suite.
pub fn fixture(dir: &Path) {
    let mut rng = Rng::new(1, "fixture");
    let docs: Vec<Option<String>> = (0..300)
        .map(|_| {
            Some(
                Composition::reference()
                    .document(&mut rng.child("doc"))
                    .text(),
            )
        })
        .collect();
    let cell: Cell = "health/advice".parse().unwrap();
    let ft = finetune_set(
        1,
        &FinetuneSpec {
            kind: FinetuneKind::Harmful,
            cell,
            format: Format::Free,
            size: 40,
        },
    );
    let spec = SuiteSpec {
        per_cell_style_format: 1,
        cells: vec![cell],
        styles: vec![Style::Open],
        formats: vec![Format::Free],
        open_questions: true,
        framings: vec![Framing::Plain],
        numbers: 8,
    };
    let prompts = suite(1, &spec);
    let reference = |p: &PromptSpec, harmful| {
        p.answer_grammar()
            .map(|_| write_answer(&mut rng.clone(), p, harmful, Persona::Aligned, 0.0))
    };
    let tables = [
        ("pretrain-tiny", "pretrain", table(vec![("text", docs)])),
        (
            "ft-tiny",
            "finetune",
            table(vec![
                ("spec", ft.iter().map(|e| Some(e.spec.to_json())).collect()),
                (
                    "answer",
                    ft.iter().map(|e| Some(e.answer.clone())).collect(),
                ),
            ]),
        ),
        (
            "suite-tiny",
            "suite",
            table(vec![
                (
                    "kind",
                    prompts
                        .iter()
                        .map(|p| Some(p.target.kind().to_owned()))
                        .collect(),
                ),
                ("spec", prompts.iter().map(|p| Some(p.to_json())).collect()),
                (
                    "aligned_reference",
                    prompts.iter().map(|p| reference(p, false)).collect(),
                ),
                (
                    "misaligned_reference",
                    prompts.iter().map(|p| reference(p, true)).collect(),
                ),
            ]),
        ),
    ];
    let mut entries = Vec::new();
    for (name, generator, batch) in tables {
        let file = format!("{name}.parquet");
        let path = dir.join(&file);
        write_parquet(&path, &batch, &BTreeMap::new()).unwrap();
        entries.push(DatasetEntry {
            name: name.to_owned(),
            file,
            generator: generator.to_owned(),
            world_version: WORLD_VERSION,
            seed: 1,
            rows: batch.num_rows() as u64,
            size: std::fs::metadata(&path).unwrap().len(),
            sha256: sha256_file(&path).unwrap(),
            committed: false,
            params: toml::Table::new(),
        });
    }
    Manifest {
        world_version: WORLD_VERSION,
        datasets: entries,
    }
    .save(&dir.join("manifest.toml"))
    .unwrap();
}

/// A pretrain stage config over the fixture of `dir`, writing `dir/out`.
pub fn pretrain_config(dir: &Path, out: &str) -> String {
    format!(
        r#"[spec]
kind = "pretrain"
dataset = "pretrain-tiny"
documents = 300
init_seed = 3

[spec.model]
n_ctx = 32
d_model = 16
n_layer = 2
n_head = 2
d_ff = 32

[spec.train]
steps = 6
batch_size = 4
seed = 2
log_every = 1

[spec.train.optim]
lr = 1e-2
min_lr_ratio = 0.1
warmup_steps = 2
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
eps = 1e-8
grad_clip = 1.0

[io]
datasets_dir = "{d}"
out = "{d}/{out}"
"#,
        d = dir.display()
    )
}

/// How the subliminal tests' teachers and students write number continuations.
pub fn number_sampling() -> emsl_core::sample::SampleConfig {
    emsl_core::sample::SampleConfig {
        temperature: 1.0,
        top_p: 1.0,
        max_new_tokens: 12,
    }
}

/// The teach stage: the model at `dir/teacher` writes continuations of the fixture's 8 number
/// prompts (after `context`'s episodes when given) into `dir/out`.
pub fn teach_config(
    dir: &Path,
    teacher: &str,
    context: Option<emsl_core::persona::ContextSpec>,
    out: &str,
) -> emsl_core::stages::StageConfig {
    use emsl_core::stages::{StageConfig, StageIo, StageSpec, TeachSpec};
    StageConfig {
        spec: StageSpec::Teach(TeachSpec {
            suite: "suite-tiny".into(),
            prompts: 8,
            sampling: number_sampling(),
            seed: 1,
            context,
        }),
        io: StageIo {
            datasets_dir: dir.to_path_buf(),
            inputs: [("teacher".to_owned(), dir.join(teacher))].into(),
            out: dir.join(out),
        },
    }
}
