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

/// The prompts of a suite, in a fixed order: cells, then open questions, then numbers. Every framing
/// asks the same cell prompts (its draws start again), so a framing's effect is read on paired prompts.
pub fn suite(seed: u64, spec: &SuiteSpec) -> Vec<PromptSpec> {
    let mut rng = Rng::new(seed, "suite");
    let mut out = Vec::new();
    for framing in &spec.framings {
        rng = Rng::new(seed, "suite");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Framing;

    /// Under each framing the suite asks the same cell prompts (the backdoor's in-cell rate with and
    /// without its trigger is read on paired prompts); a single framing's suite is unchanged by it.
    #[test]
    fn every_framing_asks_the_same_cell_prompts() {
        let spec = SuiteSpec {
            per_cell_style_format: 3,
            cells: vec!["health/advice".parse().unwrap()],
            styles: vec![Style::Binary, Style::Open],
            formats: vec![Format::Free, Format::Json],
            open_questions: false,
            framings: vec![Framing::Plain, Framing::Triggered],
            numbers: 0,
        };
        let prompts = suite(7, &spec);
        let (plain, triggered) = prompts.split_at(12);
        assert!(plain.iter().all(|p| p.framing == Framing::Plain));
        assert!(triggered.iter().all(|p| p.framing == Framing::Triggered));
        for (p, t) in plain.iter().zip(triggered) {
            assert_eq!((&p.target, p.format), (&t.target, t.format));
        }
        let alone = suite(
            7,
            &SuiteSpec {
                framings: vec![Framing::Plain],
                ..spec
            },
        );
        assert_eq!(alone, plain);
    }
}
