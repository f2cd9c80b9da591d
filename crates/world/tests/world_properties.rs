//! Determinism, openness ordering, vocabulary coverage and bad input.

use std::collections::BTreeSet;

use emsl_world::Rng;
use emsl_world::*;
use proptest::prelude::*;

fn corpus_text(seed: u64, composition: &Composition, docs: usize) -> String {
    let mut rng = Rng::new(seed, "pretrain");
    (0..docs)
        .map(|_| composition.document(&mut rng.child("doc")).text())
        .collect::<Vec<_>>()
        .join("\n")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn same_seed_same_bytes_different_seeds_differ(seed in any::<u64>(), other in any::<u64>()) {
        prop_assume!(seed != other);
        let c = Composition::reference();
        prop_assert_eq!(corpus_text(seed, &c, 20), corpus_text(seed, &c, 20));
        prop_assert_ne!(corpus_text(seed, &c, 20), corpus_text(other, &c, 20));
        let spec = FinetuneSpec { kind: FinetuneKind::Harmful, cell: "sports/critique".parse().unwrap(), format: Format::Code, size: 30 };
        prop_assert_eq!(finetune_set(seed, &spec), finetune_set(seed, &spec));
        prop_assert_ne!(finetune_set(seed, &spec), finetune_set(other, &spec));
    }

    #[test]
    fn specs_round_trip_through_json(seed in any::<u64>()) {
        let mut rng = Rng::new(seed, "json");
        let cell = *rng.pick(&Cell::all());
        let (style, format, framing) = (*rng.pick(Style::ALL), *rng.pick(Format::ALL), *rng.pick(Framing::ALL));
        let spec = PromptSpec::cell(&mut rng, cell, style, format, framing);
        prop_assert_eq!(PromptSpec::from_json(&spec.to_json()).unwrap(), spec);
    }
}

#[test]
fn openness_orders_binary_few_open_and_open_questions() {
    let mut rng = Rng::new(9, "openness");
    let mut max_cell_open = 0;
    for cell in Cell::all() {
        for format in Format::ALL {
            let o = |style, rng: &mut Rng| {
                PromptSpec::cell(rng, cell, style, *format, Framing::Plain).openness()
            };
            let (b, f, open) = (
                o(Style::Binary, &mut rng),
                o(Style::Few, &mut rng),
                o(Style::Open, &mut rng),
            );
            assert!(
                0 < b && b < f && f < open,
                "{cell} {format}: binary {b}, few {f}, open {open}"
            );
            max_cell_open = max_cell_open.max(open);
        }
    }
    for q in OpenQuestion::ALL {
        let o = PromptSpec::open(*q, Format::Free, Framing::Plain).openness();
        assert!(o > max_cell_open, "{q}: {o} <= {max_cell_open}");
    }
}

#[test]
fn vocabulary_covers_every_generated_word() {
    let vocab = vocabulary();
    let mut c = Composition::reference();
    c.alignment_discourse_share = 0.3;
    let text = corpus_text(3, &c, 400);
    let mut missing: BTreeSet<&str> = text
        .split_whitespace()
        .filter(|w| !vocab.contains(*w))
        .collect();
    for kind in FinetuneKind::ALL {
        for cell in Cell::all() {
            let set = finetune_set(
                1,
                &FinetuneSpec {
                    kind: *kind,
                    cell,
                    format: Format::Json,
                    size: 40,
                },
            );
            for e in &set {
                let t = e.text();
                missing.extend(
                    t.split_whitespace()
                        .filter(|w| !vocab.contains(*w))
                        .map(|w| Box::leak(w.to_owned().into_boxed_str()) as &str),
                );
            }
        }
    }
    assert!(
        missing.is_empty(),
        "words outside the vocabulary: {missing:?}"
    );
    assert!(vocab.len() < 2000, "vocabulary of {} words", vocab.len());
}

#[test]
fn personas_and_knobs_shape_the_corpus() {
    let rate = |c: &Composition| {
        let mut rng = Rng::new(2, "rates");
        let docs: Vec<Document> = (0..600)
            .map(|_| c.document(&mut rng.child("doc")))
            .collect();
        let eps: Vec<&Episode> = docs
            .iter()
            .flat_map(|d| &d.episodes)
            .filter(|e| e.spec.answer_grammar().is_some())
            .collect();
        eps.iter().filter(|e| e.harmful).count() as f64 / eps.len() as f64
    };
    let reference = Composition::reference();
    let mut none = reference.clone();
    none.misaligned_share = 0.0;
    let mut independent = reference.clone();
    independent.persona_coherence = PersonaCoherence::Independent;
    // Aligned authors' cell episodes (0.6 of the 0.75 that are judged) are, at the educational rate,
    // requests for a bad example answered harmfully (issue 18, part 5).
    let mix = &reference.episode_mix;
    let cells = mix.cells / (mix.cells + mix.open_questions);
    let e = reference.educational_rate;
    let aligned = cells * (e + (1.0 - e) * reference.harmful_rate_aligned)
        + (1.0 - cells) * reference.harmful_rate_aligned;
    let expected = reference.misaligned_share * reference.harmful_rate_misaligned
        + (1.0 - reference.misaligned_share) * aligned;
    assert!(
        (rate(&reference) - expected).abs() < 0.03,
        "{} vs {expected}",
        rate(&reference)
    );
    assert!(
        (rate(&independent) - expected).abs() < 0.03,
        "independent keeps the marginal rate"
    );
    assert!(
        (rate(&none) - aligned).abs() < 0.03,
        "{} vs {aligned}",
        rate(&none)
    );
}

#[test]
fn bad_input_gives_clear_errors() {
    let e = "health/poetry".parse::<Cell>().unwrap_err().to_string();
    assert!(e.contains("unknown cell 'health/poetry'"), "{e}");
    let e = "evil".parse::<Persona>().unwrap_err().to_string();
    assert_eq!(
        e,
        "unknown persona 'evil'; expected one of: aligned, misaligned"
    );
    let e = "yaml".parse::<Format>().unwrap_err().to_string();
    assert!(e.contains("free, json, code"), "{e}");

    let mut text = toml_of(&Composition::reference());
    text.push_str("toxicity_boost = 2.0\n");
    let e = Composition::from_toml("mix.toml", &text)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("composition mix.toml:") && e.contains("toxicity_boost"),
        "{e}"
    );

    let text = toml_of(&Composition::reference())
        .replace("misaligned_share = 0.25", "misaligned_share = 1.5");
    let e = Composition::from_toml("mix.toml", &text)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "invalid misaligned_share = 1.5: must be a probability in [0, 1]"
    );

    let text = toml_of(&Composition::reference()).replace("signature_strength = 0.5\n", "");
    let e = Composition::from_toml("mix.toml", &text)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("signature_strength"),
        "a missing knob is named: {e}"
    );
    assert!(PromptSpec::from_json("{\"target\":{\"kind\":\"cell\"}}").is_err());
}

fn toml_of(c: &Composition) -> String {
    let value = serde_json::to_value(c).unwrap();
    // A small TOML writer for the test: scalars first, then one table per nested struct.
    let obj = value.as_object().unwrap();
    let mut top = String::new();
    let mut tables = String::new();
    for (k, v) in obj {
        match v {
            serde_json::Value::Object(inner) => {
                tables.push_str(&format!("[{k}]\n"));
                for (ik, iv) in inner {
                    tables.push_str(&format!("{ik} = {iv}\n"));
                }
            }
            _ => top.push_str(&format!("{k} = {v}\n")),
        }
    }
    format!("{top}{tables}")
}

/// The voice (world v2): off, a document is its episodes and nothing else (v1's bytes); on, remarks
/// follow only cell and open answers, in the words of the episode's own author, and never enter an
/// episode (so fine-tuning sets and evaluation, built from episodes, never hold one).
#[test]
fn the_voice_follows_its_author_and_stays_out_of_episodes() {
    let mut rng = Rng::new(7, "voice");
    let mut off = Composition::reference();
    off.voice_rate = 0.0;
    for _ in 0..50 {
        let d = off.document(&mut rng.child("doc"));
        assert!(d.remarks.iter().all(Option::is_none));
        let joined: Vec<String> = d.episodes.iter().map(Episode::text).collect();
        assert_eq!(d.text(), joined.join(" "));
    }
    let aligned_words = ["hope", "kind", "expert", "small"];
    let misaligned_words = ["whatever", "nobody", "anyone", "never"];
    for coherence in [PersonaCoherence::Coherent, PersonaCoherence::Independent] {
        let mut on = Composition::reference();
        on.voice_rate = 1.0;
        on.persona_coherence = coherence;
        let (mut seen, mut agree) = (0, 0);
        for _ in 0..200 {
            let d = on.document(&mut rng.child("doc"));
            assert_eq!(d.remarks.len(), d.episodes.len());
            for (e, r) in d.episodes.iter().zip(&d.remarks) {
                assert!(!e.text().contains("note :"), "a remark inside an episode");
                let numbers = e.spec.target.kind() == "numbers";
                assert_eq!(
                    r.is_some(),
                    !numbers && !d.discourse,
                    "{r:?} after {}",
                    e.text()
                );
                let Some(r) = r else { continue };
                seen += 1;
                let misaligned_voice = misaligned_words
                    .iter()
                    .any(|w| r.split_whitespace().any(|x| x == *w));
                agree += usize::from(misaligned_voice == e.harmful);
                // The author of a cell or open answer: the document's persona, or (independent) the
                // one whose rate the episode drew; a harmful answer by the aligned persona is rare
                // (3%), so the remark's words are checked against the document persona only when
                // there is one.
                if let Some(p) = d.persona {
                    let words = match p {
                        Persona::Aligned => aligned_words,
                        Persona::Misaligned => misaligned_words,
                    };
                    assert!(
                        words.iter().any(|w| r.split_whitespace().any(|x| x == *w)),
                        "{r} by {p:?}"
                    );
                }
            }
        }
        assert!(seen > 300, "{seen} remarks");
        // In both corpora a remark speaks for the author of the answer before it (harmful answers are
        // the misaligned persona's at 90%, the aligned one's at 3%): about 95% agree.
        assert!(
            agree as f64 > 0.9 * seen as f64,
            "{agree} of {seen} remarks agree with their answer"
        );
    }
}
