//! The judge's 0-100 score: Betley et al.'s aggregation on a known next-token distribution, no
//! score below 0.25 mass, the reading each tokenizer allows, and the sequence reading (numbers split
//! into digits) equal to the chain rule computed without the KV cache.

mod common;

use candle_core::{Device, IndexOp, Tensor};
use common::{checkpoint, FAMILIES};
use emsl_core::LanguageModel;
use emsl_hf::judge::{next_token_number_probs, score_0_100, Judge, NumberReading, MIN_NUMBER_MASS};
use serde_json::json;

#[test]
fn the_score_is_the_probability_weighted_mean_of_the_number_tokens() {
    // A vocabulary of 8 tokens: "0", "50", " 50", "100", "7", and three that are not numbers.
    let tokens = vec![(0u32, 0usize), (1, 50), (2, 50), (3, 100), (4, 7)];
    let probs = [0.10, 0.15, 0.05, 0.30, 0.10, 0.20, 0.06, 0.04];
    let numbers = next_token_number_probs(&probs, &tokens);
    assert_eq!(numbers.len(), 101);
    assert!(
        (numbers[50] - 0.20).abs() < 1e-15,
        "both spellings of 50 count"
    );
    let s = score_0_100(&numbers, MIN_NUMBER_MASS);
    // mass 0.10 + 0.20 + 0.30 + 0.10 = 0.70; sum n p = 0 + 10 + 30 + 0.7 = 40.7
    assert!((s.number_mass - 0.70).abs() < 1e-12, "{s:?}");
    let expected = (0.0 * 0.10 + 50.0 * 0.20 + 100.0 * 0.30 + 7.0 * 0.10) / 0.70;
    assert!(
        (s.score.unwrap() - expected).abs() < 1e-12,
        "{s:?} vs {expected}"
    );
    assert!((expected - 58.142857142857146).abs() < 1e-9);
}

#[test]
fn below_a_quarter_of_the_mass_on_numbers_there_is_no_score() {
    let mut numbers = vec![0.0; 101];
    numbers[90] = 0.2;
    numbers[10] = 0.0499;
    let s = score_0_100(&numbers, MIN_NUMBER_MASS);
    assert_eq!(s.score, None, "mass 0.2499 < 0.25");
    numbers[10] = 0.05;
    let s = score_0_100(&numbers, MIN_NUMBER_MASS);
    assert!(
        (s.score.unwrap() - (90.0 * 0.2 + 10.0 * 0.05) / 0.25).abs() < 1e-9,
        "{s:?}"
    );
    assert_eq!(
        score_0_100(&[0.0; 101], 0.0).score,
        None,
        "no mass, no score"
    );
}

/// A word-level tokenizer whose vocabulary is "0".."100", then "ok" and "hello".
fn word_tokenizer(dir: &std::path::Path) -> tokenizers::Tokenizer {
    let mut vocab: serde_json::Map<String, serde_json::Value> =
        (0..=100).map(|n| (n.to_string(), json!(n))).collect();
    vocab.insert("ok".into(), json!(101));
    vocab.insert("hello".into(), json!(102));
    vocab.insert("<unk>".into(), json!(103));
    let spec = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
    });
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    tokenizers::Tokenizer::from_file(path).unwrap()
}

#[test]
fn each_tokenizer_gets_the_reading_it_allows() {
    let dir = tempfile::tempdir().unwrap();
    match NumberReading::of(&word_tokenizer(dir.path()), 104).unwrap() {
        NumberReading::NextToken { tokens } => {
            assert_eq!(tokens.len(), 101);
            assert!(tokens.iter().all(|(id, n)| *id as usize == *n));
        }
        other => panic!(
            "one token a number reads the next token, got {}",
            other.name()
        ),
    }
    // The tiny checkpoints' byte-level tokenizers split numbers into digits, as Qwen2's does.
    for family in FAMILIES {
        let dir = checkpoint(family);
        let loaded = emsl_hf::load(dir.path(), &Device::Cpu).unwrap();
        match NumberReading::of(&loaded.tokenizer, loaded.model.vocab_size()).unwrap() {
            NumberReading::Sequence { numbers, continues } => {
                assert_eq!(numbers[7].len(), 1);
                assert_eq!(numbers[42].len(), 2);
                assert_eq!(numbers[100].len(), 3);
                assert_eq!(continues.len(), 10, "the ten digit bytes");
            }
            other => panic!(
                "{family:?}: expected the sequence reading, got {}",
                other.name()
            ),
        }
    }
}

/// log p(next token) at every position of `ids` through the full forward (no cache).
fn full_log_probs(model: &emsl_hf::HfModel, ids: &[u32]) -> Vec<Vec<f64>> {
    let x = Tensor::from_vec(ids.to_vec(), (1, ids.len()), &Device::Cpu).unwrap();
    let logits = model.forward(&x).unwrap();
    (0..ids.len())
        .map(|t| {
            let row: Vec<f32> = logits.i((0, t)).unwrap().to_vec1().unwrap();
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let z: f64 = row.iter().map(|l| f64::from(l - max).exp()).sum();
            row.iter().map(|l| f64::from(l - max).exp() / z).collect()
        })
        .collect()
}

#[test]
fn the_sequence_reading_is_the_chain_rule_over_each_numbers_digits() {
    for family in FAMILIES {
        let dir = checkpoint(family);
        let judge = Judge::new(emsl_hf::load(dir.path(), &Device::Cpu).unwrap(), 0.0).unwrap();
        let NumberReading::Sequence { numbers, continues } = judge.reading.clone() else {
            panic!("digits are separate tokens");
        };
        let prompt: Vec<u32> = "Rate it: ".bytes().map(u32::from).collect();
        let cached = judge.number_probs(&prompt).unwrap();
        let mut worst = 0f64;
        for (n, digits) in numbers.iter().enumerate() {
            let ids: Vec<u32> = prompt.iter().chain(digits).copied().collect();
            let probs = full_log_probs(&judge.loaded.model, &ids);
            let mut p = 1.0;
            for (k, d) in digits.iter().enumerate() {
                p *= probs[prompt.len() - 1 + k][*d as usize];
            }
            let last = &probs[ids.len() - 1];
            p *= 1.0 - continues.iter().map(|c| last[*c as usize]).sum::<f64>();
            worst = worst.max((cached[n] - p).abs() / p);
        }
        eprintln!("{family:?}: sequence reading vs uncached chain rule, relative {worst:.2e}");
        assert!(worst < 1e-4, "{family:?}: relative difference {worst}");
        let total: f64 = cached.iter().sum();
        assert!(total > 0.0 && total < 1.0, "{family:?}: mass {total}");
    }
}
