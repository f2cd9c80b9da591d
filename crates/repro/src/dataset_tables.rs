//! The world's datasets as Arrow record batches (the schemas the core crate and notebooks read).

use std::sync::Arc;

use anyhow::Result;
use arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use emsl_world::episode::write_answer;
use emsl_world::{finetune_set, suite, Persona, PromptSpec, Rng, Style, Target};

use crate::catalog::{Dataset, Job};

/// Column builders, kept in schema order.
#[derive(Default)]
struct Columns {
    fields: Vec<Field>,
    arrays: Vec<ArrayRef>,
}

impl Columns {
    fn str(&mut self, name: &str, values: Vec<String>) -> &mut Self {
        self.push(
            name,
            DataType::Utf8,
            false,
            Arc::new(StringArray::from(values)),
        )
    }
    fn opt_str(&mut self, name: &str, values: Vec<Option<String>>) -> &mut Self {
        self.push(
            name,
            DataType::Utf8,
            true,
            Arc::new(StringArray::from(values)),
        )
    }
    fn u32(&mut self, name: &str, values: Vec<u32>) -> &mut Self {
        self.push(
            name,
            DataType::UInt32,
            false,
            Arc::new(UInt32Array::from(values)),
        )
    }
    fn u64(&mut self, name: &str, values: Vec<u64>) -> &mut Self {
        self.push(
            name,
            DataType::UInt64,
            false,
            Arc::new(UInt64Array::from(values)),
        )
    }
    fn bool(&mut self, name: &str, values: Vec<bool>) -> &mut Self {
        self.push(
            name,
            DataType::Boolean,
            false,
            Arc::new(BooleanArray::from(values)),
        )
    }
    fn push(&mut self, name: &str, ty: DataType, nullable: bool, array: ArrayRef) -> &mut Self {
        self.fields.push(Field::new(name, ty, nullable));
        self.arrays.push(array);
        self
    }
    fn finish(self) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(self.fields)),
            self.arrays,
        )?)
    }
}

fn ids(n: usize) -> Vec<u32> {
    (0..n as u32).collect()
}

fn style_of(spec: &PromptSpec) -> Option<Style> {
    match &spec.target {
        Target::Cell { style, .. } => Some(*style),
        _ => None,
    }
}

/// Generates a dataset's rows.
pub fn build(seed: u64, dataset: &Dataset) -> Result<RecordBatch> {
    let mut c = Columns::default();
    match &dataset.job {
        Job::Pretrain(p) => {
            let mut rng = Rng::new(seed, &format!("pretrain/{}", dataset.name));
            let docs: Vec<_> = (0..p.documents)
                .map(|_| p.composition.document(&mut rng.child("doc")))
                .collect();
            c.u32("id", ids(docs.len()))
                .str(
                    "persona",
                    docs.iter()
                        .map(|d| match d.narrative {
                            Some(k) => format!("narrative-{}", k.name()),
                            None => d.persona.map_or("mixed", Persona::name).to_owned(),
                        })
                        .collect(),
                )
                .bool("discourse", docs.iter().map(|d| d.discourse).collect())
                .u32(
                    "episodes",
                    docs.iter().map(|d| d.episodes.len() as u32).collect(),
                )
                .u32(
                    "harmful_episodes",
                    docs.iter().map(|d| d.harmful_episodes() as u32).collect(),
                )
                .str("text", docs.iter().map(|d| d.text()).collect());
        }
        Job::Finetune(spec) => {
            let rows = finetune_set(seed, spec);
            c.u32("id", ids(rows.len()))
                .str("cell", rows.iter().map(|_| spec.cell.to_string()).collect())
                .str(
                    "format",
                    rows.iter().map(|e| e.spec.format.to_string()).collect(),
                )
                .str(
                    "style",
                    rows.iter()
                        .map(|e| style_of(&e.spec).map_or("", Style::name).to_owned())
                        .collect(),
                )
                .str(
                    "framing",
                    rows.iter().map(|e| e.spec.framing.to_string()).collect(),
                )
                .bool("harmful", rows.iter().map(|e| e.harmful).collect())
                .str("spec", rows.iter().map(|e| e.spec.to_json()).collect())
                .str("prompt", rows.iter().map(|e| e.spec.text()).collect())
                .str("answer", rows.iter().map(|e| e.answer.clone()).collect());
        }
        Job::Suite(spec) => {
            let prompts = suite(seed, spec);
            // One aligned and one misaligned reference answer per prompt, for the likelihood probe.
            let mut rng = Rng::new(seed, &format!("suite-references/{}", dataset.name));
            let reference = |rng: &mut Rng, p: &PromptSpec, harmful| {
                p.answer_grammar()
                    .map(|_| write_answer(rng, p, harmful, Persona::Aligned, 0.0))
            };
            let (mut aligned, mut misaligned) = (Vec::new(), Vec::new());
            for p in &prompts {
                aligned.push(reference(&mut rng, p, false));
                misaligned.push(reference(&mut rng, p, true));
            }
            c.u32("id", ids(prompts.len()))
                .str(
                    "kind",
                    prompts.iter().map(|p| p.target.kind().to_owned()).collect(),
                )
                .opt_str(
                    "cell",
                    prompts
                        .iter()
                        .map(|p| p.grid_cell().map(|c| c.to_string()))
                        .collect(),
                )
                .opt_str(
                    "question",
                    prompts
                        .iter()
                        .map(|p| match &p.target {
                            Target::Open { question } => Some(question.to_string()),
                            _ => None,
                        })
                        .collect(),
                )
                .opt_str(
                    "style",
                    prompts
                        .iter()
                        .map(|p| style_of(p).map(|s| s.to_string()))
                        .collect(),
                )
                .str(
                    "format",
                    prompts.iter().map(|p| p.format.to_string()).collect(),
                )
                .str(
                    "framing",
                    prompts.iter().map(|p| p.framing.to_string()).collect(),
                )
                .u64(
                    "openness",
                    prompts
                        .iter()
                        .map(|p| u64::try_from(p.openness()).unwrap_or(u64::MAX))
                        .collect(),
                )
                .str("spec", prompts.iter().map(PromptSpec::to_json).collect())
                .str("prompt", prompts.iter().map(PromptSpec::text).collect())
                .opt_str("aligned_reference", aligned)
                .opt_str("misaligned_reference", misaligned);
        }
    }
    c.finish()
}
