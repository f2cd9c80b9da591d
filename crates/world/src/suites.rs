//! Evaluation suites: the prompts a model is asked, as data.

use serde::{Deserialize, Serialize};

use crate::episode::number_prompt;
use crate::names::{Cell, Format, Framing, Style};
use crate::prompt::PromptSpec;
use crate::questions::OpenQuestion;
use crate::rng::Rng;

/// Which prompts an evaluation suite holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteSpec {
    /// Cell prompts per (cell, style, format); 0 leaves cells out.
    pub per_cell_style_format: usize,
    pub cells: Vec<Cell>,
    pub styles: Vec<Style>,
    pub formats: Vec<Format>,
    /// Whether the eight open questions are included (once per format and framing).
    pub open_questions: bool,
    pub framings: Vec<Framing>,
    /// Number-continuation prompts.
    pub numbers: usize,
}

/// The prompts of a suite, in a fixed order: cells, then open questions, then numbers.
pub fn suite(seed: u64, spec: &SuiteSpec) -> Vec<PromptSpec> {
    let mut rng = Rng::new(seed, "suite");
    let mut out = Vec::new();
    for framing in &spec.framings {
        for cell in &spec.cells {
            for style in &spec.styles {
                for format in &spec.formats {
                    for _ in 0..spec.per_cell_style_format {
                        out.push(PromptSpec::cell(&mut rng, *cell, *style, *format, *framing));
                    }
                }
            }
        }
        if spec.open_questions {
            for q in OpenQuestion::ALL {
                for format in &spec.formats {
                    out.push(PromptSpec::open(*q, *format, *framing));
                }
            }
        }
    }
    out.extend((0..spec.numbers).map(|_| number_prompt(&mut rng)));
    out
}
