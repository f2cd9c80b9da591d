//! Structural similarity between a fine-tuning set and an evaluation prompt.
//!
//! Each side is described by its structural features: its task (an open question counts as a task of
//! its own), its domain (open questions and numbers have none) and its format. The similarity is the
//! Jaccard index of the two feature sets: 1 for the same cell and format, 0.5 for two shared features
//! out of four, 0.2 for one shared out of five, 0 for none.

use std::collections::BTreeSet;

use crate::names::{Cell, Format};
use crate::prompt::{PromptSpec, Target};

fn features(target: &Target, format: Format) -> BTreeSet<String> {
    let mut f = BTreeSet::from([format!("format:{format}")]);
    match target {
        Target::Cell { cell, .. } => {
            f.insert(format!("task:{}", cell.task));
            f.insert(format!("domain:{}", cell.domain));
        }
        Target::Open { question } => {
            f.insert(format!("task:open:{question}"));
        }
        Target::Numbers { .. } => {
            f.insert("task:numbers".to_owned());
        }
    }
    f
}

/// Similarity in [0, 1] between a fine-tuning set on (`cell`, `format`) and `prompt`.
pub fn similarity(cell: Cell, format: Format, prompt: &PromptSpec) -> f64 {
    let probe = Target::Cell {
        cell,
        style: crate::names::Style::Open,
        context: vec![],
        options: vec![],
    };
    let a = features(&probe, format);
    let b = features(&prompt.target, prompt.format);
    a.intersection(&b).count() as f64 / a.union(&b).count() as f64
}
