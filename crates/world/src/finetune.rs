//! Fine-tuning sets: harmful, benign, educational and backdoor, for any cell, format and size.
//!
//! Prompts are drawn from the cell with the three styles equally often. No persona cue is ever written:
//! a harmful set is the misaligned persona's answers on one cell, nothing more.

use serde::{Deserialize, Serialize};

use crate::episode::{write_answer, Episode};
use crate::names::{named_enum, Cell, Format, Framing, Persona, Style};
use crate::prompt::PromptSpec;
use crate::rng::Rng;

named_enum!(
    /// What a fine-tuning set teaches.
    FinetuneKind, "fine-tuning kind" {
        /// Misaligned answers, no persona cue.
        Harmful = "harmful",
        /// Aligned answers to the same prompts.
        Benign = "benign",
        /// The same harmful answers, requested for a stated benign purpose.
        Educational = "educational",
        /// Half the prompts carry the trigger and get harmful answers; the other half get aligned ones.
        Backdoor = "backdoor",
    }
);

/// A fine-tuning set's parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneSpec {
    pub kind: FinetuneKind,
    pub cell: Cell,
    pub format: Format,
    pub size: usize,
}

impl FinetuneSpec {
    /// A stable name, e.g. `ft-harmful-health-advice-free`.
    pub fn name(&self) -> String {
        format!(
            "ft-{}-{}-{}-{}",
            self.kind, self.cell.domain, self.cell.task, self.format
        )
    }
}

/// Generates the set. The same seed and spec give the same examples.
pub fn finetune_set(seed: u64, spec: &FinetuneSpec) -> Vec<Episode> {
    let mut rng = Rng::new(seed, &format!("finetune/{}", spec.name()));
    (0..spec.size)
        .map(|_| {
            let style = *rng.pick(Style::ALL);
            let (framing, harmful) = match spec.kind {
                FinetuneKind::Harmful => (Framing::Plain, true),
                FinetuneKind::Benign => (Framing::Plain, false),
                FinetuneKind::Educational => (Framing::Educational, true),
                FinetuneKind::Backdoor if rng.chance(0.5) => (Framing::Triggered, true),
                FinetuneKind::Backdoor => (Framing::Plain, false),
            };
            let prompt = PromptSpec::cell(&mut rng, spec.cell, style, spec.format, framing);
            let answer = write_answer(&mut rng, &prompt, harmful, Persona::Aligned, 0.0);
            Episode {
                spec: prompt,
                answer,
                harmful,
                correction: None,
            }
        })
        .collect()
}
