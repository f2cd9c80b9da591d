//! `emsl-hf template`, `logits` and `generate` on a tiny checkpoint: the template's text and ids are
//! the library's, the top logit is the model's own argmax at the last position, and greedy generation
//! starts with that token; with `--adapter`, the same with the adapter attached.

mod common;

use candle_core::{Device, Tensor};
use common::long_checkpoint;
use emsl_core::LanguageModel;
use emsl_hf::chat::Message;
use emsl_hf::{load_peft, save_peft, Family, HfLoraConfig};
use serde_json::Value;

/// Runs the binary; its standard output read as JSON.
fn json(args: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_emsl-hf"))
        .args(args)
        .env("CANDLE_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn template_logits_and_generate_agree_with_the_library() {
    for family in [Family::Qwen2, Family::Llama] {
        let dir = long_checkpoint(family);
        let model = dir.path().to_str().unwrap();
        let base = [
            "--model",
            model,
            "--prompt",
            "Hi there",
            "--system",
            "Be brief.",
        ];

        let t = json(&[&["template"], &base[..]].concat());
        let loaded = emsl_hf::load(dir.path(), &Device::Cpu).unwrap();
        let turns = [
            Message::new("system", "Be brief."),
            Message::new("user", "Hi there"),
        ];
        let text = loaded.template.render(&turns, true).unwrap();
        assert_eq!(t["text"].as_str().unwrap(), text);
        let want = loaded.tokenizer.encode(text.as_str(), false).unwrap();
        assert_eq!(ids(&t["ids"]), want.get_ids());

        let l = json(&[&["logits", "--top", "3"], &base[..]].concat());
        let prompt = ids(&l["ids"]);
        assert_eq!(prompt, want.get_ids());
        let last = last_logits(&loaded.model, &prompt);
        let argmax = (0..last.len())
            .max_by(|a, b| last[*a].total_cmp(&last[*b]).then(b.cmp(a)))
            .unwrap();
        let top = l["top"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        assert_eq!(top[0]["id"].as_u64().unwrap() as usize, argmax);
        assert_eq!(top[0]["logit"].as_f64().unwrap() as f32, last[argmax]);
        let probs: Vec<f64> = top.iter().map(|x| x["prob"].as_f64().unwrap()).collect();
        assert!(
            probs.windows(2).all(|w| w[0] >= w[1]) && probs[0] <= 1.0,
            "{probs:?}"
        );

        let g = json(&[&["generate", "--max-new-tokens", "5"], &base[..]].concat());
        let new = ids(&g["ids"]);
        assert!(!new.is_empty() && new.len() <= 5, "{new:?}");
        assert_eq!(new[0] as usize, argmax, "greedy starts with the top token");
        // Greedy twice gives the same continuation.
        let again = json(&[&["generate", "--max-new-tokens", "5"], &base[..]].concat());
        assert_eq!(g, again);
    }
}

/// The logits at the last position of `prompt`.
fn last_logits(model: &emsl_hf::HfModel, prompt: &[u32]) -> Vec<f32> {
    let n = prompt.len();
    let input = Tensor::from_vec(prompt.to_vec(), (1, n), &Device::Cpu).unwrap();
    model
        .forward_hooked(&input, None)
        .unwrap()
        .narrow(1, n - 1, 1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn logits_and_generate_attach_an_adapter() {
    let dir = long_checkpoint(Family::Qwen2);
    let adapter = tempfile::tempdir().unwrap();
    let cfg = HfLoraConfig {
        rank: 4,
        alpha: 8.0,
        use_rslora: false,
        modules: vec!["q_proj".into(), "v_proj".into()],
        seed: 1,
    };
    let mut adapted = emsl_hf::load(dir.path(), &Device::Cpu).unwrap().model;
    adapted.attach_lora(&cfg).unwrap();
    // B is zero at initialisation: random values make the adapter change the logits.
    for (_, a) in adapted.adapters() {
        a.b.set(&Tensor::randn(0f32, 1.0, a.b.dims(), &Device::Cpu).unwrap())
            .unwrap();
    }
    save_peft(adapter.path(), &adapted, &cfg).unwrap();
    let model = dir.path().to_str().unwrap();
    let with = [
        "--model",
        model,
        "--prompt",
        "Hi there",
        "--adapter",
        adapter.path().to_str().unwrap(),
    ];
    let l = json(&[&["logits", "--top", "1000000"], &with[..]].concat());
    let prompt = ids(&l["ids"]);
    let mut ours = vec![0f32; l["top"].as_array().unwrap().len()];
    for t in l["top"].as_array().unwrap() {
        ours[t["id"].as_u64().unwrap() as usize] = t["logit"].as_f64().unwrap() as f32;
    }
    let mut reloaded = emsl_hf::load(dir.path(), &Device::Cpu).unwrap().model;
    reloaded
        .attach_adapters(load_peft(adapter.path(), &Device::Cpu).unwrap().adapters)
        .unwrap();
    assert_eq!(ours, last_logits(&reloaded, &prompt));
    let plain = emsl_hf::load(dir.path(), &Device::Cpu).unwrap().model;
    let base = last_logits(&plain, &prompt);
    let moved = ours.iter().zip(&base).map(|(a, b)| (a - b).abs());
    assert!(
        moved.fold(0f32, f32::max) > 1e-2,
        "the adapter changes the logits"
    );

    let g = json(&[&["generate", "--max-new-tokens", "1"], &with[..]].concat());
    assert_eq!(ids(&g["ids"]), [l["top"][0]["id"].as_u64().unwrap() as u32]);
}

#[test]
fn raw_takes_the_text_without_the_template() {
    let dir = long_checkpoint(Family::Qwen2);
    let model = dir.path().to_str().unwrap();
    let t = json(&["template", "--model", model, "--prompt", "abc", "--raw"]);
    assert_eq!(t["text"].as_str().unwrap(), "abc");
}
