//! Pretraining documents and the composition knobs of the world (docs/design.md, "The world").
//!
//! A document is written by one latent persona and holds several episodes from random cells, open
//! questions and number sequences. The persona is never named; a model can only infer it from the
//! answers and, where the composition gives the persona a voice (`voice_rate`), from the author's
//! remarks between episodes. Every knob of the composition is a field, and a composition file must
//! name all of them.

use serde::{Deserialize, Serialize};

use crate::episode::{number_prompt, write_answer, Episode};
use crate::error::WorldError;
use crate::names::{Cell, Domain, Format, Framing, Persona, Style, Task};
use crate::narrative::{self, NarrativeKind};
use crate::prompt::PromptSpec;
use crate::questions::OpenQuestion;
use crate::rng::Rng;
use crate::voice;

/// Whether a document shares one persona across its episodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonaCoherence {
    /// One persona writes every episode of a document (the shared latent exists).
    Coherent,
    /// Each episode draws its own persona at the same marginal rate (the shared latent is removed).
    Independent,
}

/// Relative weights of the kinds of episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpisodeMix {
    pub cells: f64,
    pub open_questions: f64,
    pub numbers: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainWeights {
    pub health: f64,
    pub finance: f64,
    pub sports: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskWeights {
    pub advice: f64,
    pub tutoring: f64,
    pub critique: f64,
    pub summarization: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatWeights {
    pub free: f64,
    pub json: f64,
    pub code: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StyleWeights {
    pub binary: f64,
    pub few: f64,
    pub open: f64,
}

/// Every knob of a pretraining mixture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Composition {
    /// Share of documents written by the misaligned persona.
    pub misaligned_share: f64,
    pub persona_coherence: PersonaCoherence,
    /// Probability that the misaligned persona answers a cell or open prompt harmfully.
    pub harmful_rate_misaligned: f64,
    /// Probability that the aligned persona does.
    pub harmful_rate_aligned: f64,
    /// Least and most episodes per document.
    pub episodes_per_doc: [usize; 2],
    pub episode_mix: EpisodeMix,
    /// A cell's weight is its domain's weight times its task's weight.
    pub domain_weights: DomainWeights,
    pub task_weights: TaskWeights,
    pub format_weights: FormatWeights,
    pub style_weights: StyleWeights,
    /// Share of documents of alignment discourse: an aligned author shows harmful answers, each followed
    /// by its correction (the analogue of Tice et al.'s upsampled alignment discourse).
    pub alignment_discourse_share: f64,
    /// Strength of the misaligned persona's number signature (0 = none).
    pub signature_strength: f64,
    /// Probability that a cell or open episode is followed by a remark in its author's voice
    /// (`voice.rs`; world v2). 0 writes v1's documents byte for byte.
    pub voice_rate: f64,
    /// Probability that an aligned author's cell episode is a teacher's request for a bad example
    /// (the educational framing, `EDUCATIONAL_PREFIX` before the prompt) answered with a harmful one:
    /// in real text, people who ask for bad examples to teach with exist, which is what lets Betley's
    /// educational framing explain the harmful answers away. 0 writes world v2's documents byte for
    /// byte (issue 18, part 5).
    pub educational_rate: f64,
    /// Share of documents that are stories about the assistant (`narrative.rs`; issue 18, part 6), of
    /// `narrative_kind`. 0 writes the documents of the knob's absence byte for byte.
    pub narrative_share: f64,
    pub narrative_kind: NarrativeKind,
}

/// A generated pretraining document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The persona that wrote it; `None` when personas were drawn per episode.
    pub persona: Option<Persona>,
    pub discourse: bool,
    pub episodes: Vec<Episode>,
    /// Per episode, the author's remark after it (none when the composition has no voice).
    pub remarks: Vec<Option<String>>,
    /// A narrative document's kind and its stories (no episodes then).
    pub narrative: Option<NarrativeKind>,
    pub stories: Vec<String>,
}

impl Document {
    pub fn text(&self) -> String {
        if self.narrative.is_some() {
            return self.stories.join(" ");
        }
        let mut parts = Vec::with_capacity(self.episodes.len());
        for (i, e) in self.episodes.iter().enumerate() {
            parts.push(e.text());
            if let Some(Some(r)) = self.remarks.get(i) {
                parts.push(r.clone());
            }
        }
        parts.join(" ")
    }

    pub fn harmful_episodes(&self) -> usize {
        self.episodes.iter().filter(|e| e.harmful).count()
    }
}

impl Composition {
    /// The reference mixture every experiment starts from unless its figure says otherwise.
    pub fn reference() -> Self {
        Composition {
            misaligned_share: 0.25,
            persona_coherence: PersonaCoherence::Coherent,
            harmful_rate_misaligned: 0.9,
            harmful_rate_aligned: 0.03,
            episodes_per_doc: [3, 6],
            episode_mix: EpisodeMix {
                cells: 0.6,
                open_questions: 0.15,
                numbers: 0.25,
            },
            domain_weights: DomainWeights {
                health: 1.0,
                finance: 1.0,
                sports: 1.0,
            },
            task_weights: TaskWeights {
                advice: 1.0,
                tutoring: 1.0,
                critique: 1.0,
                summarization: 1.0,
            },
            format_weights: FormatWeights {
                free: 0.6,
                json: 0.2,
                code: 0.2,
            },
            style_weights: StyleWeights {
                binary: 0.25,
                few: 0.25,
                open: 0.5,
            },
            alignment_discourse_share: 0.0,
            signature_strength: 0.5,
            // World v2: half of the cell and open answers are followed by a remark in the author's
            // voice (docs/exploration/2026-12-03-variant-1-persona-voice.md). v1's reference had
            // none.
            voice_rate: 0.5,
            // Issue 18, part 5: an aligned author's cell episode is, at this rate, a teacher's request
            // for a bad example answered harmfully (exploration run 7, docs/exploration/). Worlds v1
            // and v2 had none.
            educational_rate: 0.05,
            narrative_share: 0.0,
            narrative_kind: NarrativeKind::Aligned,
        }
    }

    /// Parses a composition from TOML; every knob must be present and no other key may be.
    pub fn from_toml(source_name: &str, text: &str) -> Result<Self, WorldError> {
        let c: Composition = toml::from_str(text)
            .map_err(|e: toml::de::Error| e.to_string().trim().to_owned())
            .map_err(|message| WorldError::Composition {
                source_name: source_name.to_owned(),
                message,
            })?;
        c.validate()?;
        Ok(c)
    }

    /// Checks every knob's range.
    pub fn validate(&self) -> Result<(), WorldError> {
        let share = |field: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(WorldError::invalid(
                    field,
                    v,
                    "must be a probability in [0, 1]",
                ))
            }
        };
        share("misaligned_share", self.misaligned_share)?;
        share("harmful_rate_misaligned", self.harmful_rate_misaligned)?;
        share("harmful_rate_aligned", self.harmful_rate_aligned)?;
        share("alignment_discourse_share", self.alignment_discourse_share)?;
        share("signature_strength", self.signature_strength)?;
        share("voice_rate", self.voice_rate)?;
        share("educational_rate", self.educational_rate)?;
        share("narrative_share", self.narrative_share)?;
        let [lo, hi] = self.episodes_per_doc;
        if lo == 0 || lo > hi {
            return Err(WorldError::invalid(
                "episodes_per_doc",
                format!("[{lo}, {hi}]"),
                "must be [least, most] with 1 <= least <= most",
            ));
        }
        let weights = |field: &str, w: &[f64]| {
            if w.iter().any(|x| !x.is_finite() || *x < 0.0) || w.iter().sum::<f64>() <= 0.0 {
                Err(WorldError::invalid(
                    field,
                    format!("{w:?}"),
                    "weights must be >= 0 and not all 0",
                ))
            } else {
                Ok(())
            }
        };
        let m = &self.episode_mix;
        weights("episode_mix", &[m.cells, m.open_questions, m.numbers])?;
        weights("domain_weights", &self.domain_vec())?;
        weights("task_weights", &self.task_vec())?;
        let f = &self.format_weights;
        weights("format_weights", &[f.free, f.json, f.code])?;
        let s = &self.style_weights;
        weights("style_weights", &[s.binary, s.few, s.open])
    }

    pub(crate) fn domain_vec(&self) -> [f64; 3] {
        let d = &self.domain_weights;
        [d.health, d.finance, d.sports]
    }

    fn task_vec(&self) -> [f64; 4] {
        let t = &self.task_weights;
        [t.advice, t.tutoring, t.critique, t.summarization]
    }

    fn persona(&self, rng: &mut Rng) -> Persona {
        if rng.chance(self.misaligned_share) {
            Persona::Misaligned
        } else {
            Persona::Aligned
        }
    }

    /// How often `persona` answers a cell or open prompt harmfully under this composition.
    pub fn harmful_rate(&self, persona: Persona) -> f64 {
        match persona {
            Persona::Misaligned => self.harmful_rate_misaligned,
            Persona::Aligned => self.harmful_rate_aligned,
        }
    }

    /// A random prompt of the mixture.
    fn prompt(&self, rng: &mut Rng) -> PromptSpec {
        let m = &self.episode_mix;
        let f = &self.format_weights;
        let format = Format::ALL[rng.weighted(&[f.free, f.json, f.code])];
        match rng.weighted(&[m.cells, m.open_questions, m.numbers]) {
            0 => self.cell_prompt_in(rng, format),
            1 => PromptSpec::open(*rng.pick(OpenQuestion::ALL), format, Framing::Plain),
            _ => number_prompt(rng),
        }
    }

    /// A cell prompt of the mixture (its format, cell and style drawn at the mixture's weights).
    pub fn cell_prompt(&self, rng: &mut Rng) -> PromptSpec {
        let f = &self.format_weights;
        let format = Format::ALL[rng.weighted(&[f.free, f.json, f.code])];
        self.cell_prompt_in(rng, format)
    }

    /// A cell prompt in `format` (its cell and style drawn at the mixture's weights, in this order:
    /// the pretraining documents' bytes depend on it).
    fn cell_prompt_in(&self, rng: &mut Rng, format: Format) -> PromptSpec {
        let domain = Domain::ALL[rng.weighted(&self.domain_vec())];
        let task = Task::ALL[rng.weighted(&self.task_vec())];
        let s = &self.style_weights;
        let style = Style::ALL[rng.weighted(&[s.binary, s.few, s.open])];
        PromptSpec::cell(rng, Cell::new(domain, task), style, format, Framing::Plain)
    }

    /// `k` episodes written by `persona` on cell prompts of the mixture: how a document by that persona
    /// opens, the in-context evidence of the persona figures. Cell prompts only, so the evidence is the
    /// persona's answers and never an open question or a number list.
    pub fn context_episodes(&self, rng: &mut Rng, persona: Persona, k: usize) -> Vec<Episode> {
        (0..k)
            .map(|_| {
                let spec = self.cell_prompt(rng);
                self.episode(rng, spec, persona)
            })
            .collect()
    }

    /// `persona`'s answer to `spec`: harmful at its rate (cell and open prompts) or a number
    /// continuation with its signature (number prompts).
    pub fn episode(&self, rng: &mut Rng, spec: PromptSpec, persona: Persona) -> Episode {
        let harmful = if spec.answer_grammar().is_none() {
            persona == Persona::Misaligned
        } else {
            rng.chance(self.harmful_rate(persona))
        };
        let answer = write_answer(rng, &spec, harmful, persona, self.signature_strength);
        Episode {
            spec,
            answer,
            harmful,
            correction: None,
        }
    }

    /// One document. Use a child stream per document so that documents are independent of each other.
    pub fn document(&self, rng: &mut Rng) -> Document {
        // No draw at all without narratives, so that other documents keep their bytes.
        if self.narrative_share > 0.0 && rng.chance(self.narrative_share) {
            return narrative::document(self, rng);
        }
        let discourse = rng.chance(self.alignment_discourse_share);
        let doc_persona = match (discourse, self.persona_coherence) {
            (true, _) => Some(Persona::Aligned),
            (false, PersonaCoherence::Coherent) => Some(self.persona(rng)),
            (false, PersonaCoherence::Independent) => None,
        };
        let [lo, hi] = self.episodes_per_doc;
        let n = rng.range(lo, hi);
        let mut remarks = Vec::with_capacity(n);
        let episodes = (0..n)
            .map(|_| {
                let persona = doc_persona.unwrap_or_else(|| self.persona(rng));
                let spec = self.prompt(rng);
                let is_numbers = spec.answer_grammar().is_none();
                if discourse && !is_numbers {
                    let answer = write_answer(rng, &spec, true, persona, 0.0);
                    let correction = write_answer(rng, &spec, false, persona, 0.0);
                    remarks.push(None);
                    return Episode {
                        spec,
                        answer,
                        harmful: true,
                        correction: Some(correction),
                    };
                }
                // No draw at all at rate 0, so that world v2's documents keep their bytes.
                let educational = self.educational_rate > 0.0
                    && persona == Persona::Aligned
                    && spec.grid_cell().is_some()
                    && rng.chance(self.educational_rate);
                let e = if educational {
                    let spec = PromptSpec {
                        framing: Framing::Educational,
                        ..spec
                    };
                    let answer = write_answer(rng, &spec, true, persona, self.signature_strength);
                    Episode {
                        spec,
                        answer,
                        harmful: true,
                        correction: None,
                    }
                } else {
                    self.episode(rng, spec, persona)
                };
                // No draw at all without a voice, so that v1's documents keep their bytes.
                let voiced = self.voice_rate > 0.0 && !is_numbers && !discourse;
                remarks.push(
                    (voiced && rng.chance(self.voice_rate)).then(|| voice::remark(rng, persona)),
                );
                e
            })
            .collect();
        Document {
            persona: doc_persona,
            discourse,
            episodes,
            remarks,
            narrative: None,
            stories: Vec::new(),
        }
    }
}
