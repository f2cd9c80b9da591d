//! Training through the kit's forward: every trained variable gets a gradient (full fine-tuning and
//! adapters, each family: the trap of candle-transformers' shipped models), LoRA at initialisation
//! changes nothing, a few steps of the core crate's AdamW lower the loss, and adapters saved in PEFT's
//! layout reload to the same logits.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{checkpoint, ids, max_diff, FAMILIES};
use emsl_core::optim::{AdamW, OptimConfig};
use emsl_core::LanguageModel;
use emsl_hf::{load, load_peft, save_peft, Family, HfLoraConfig, HfModel};

/// A fixed batch: inputs, next-token targets and a mask on every position (B = 2, T = 10).
fn batch() -> (Tensor, Tensor, Tensor) {
    let seq = ids(2, 11, 5);
    let mask = Tensor::ones((2, 10), DType::F32, &Device::Cpu).unwrap();
    (
        seq.narrow(1, 0, 10).unwrap(),
        seq.narrow(1, 1, 10).unwrap(),
        mask,
    )
}

fn optim(lr: f64) -> OptimConfig {
    OptimConfig {
        lr,
        min_lr_ratio: 1.0,
        warmup_steps: 0,
        weight_decay: 0.0,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        grad_clip: 1.0,
    }
}

fn lora(rank: usize, rslora: bool, modules: &[&str]) -> HfLoraConfig {
    HfLoraConfig {
        rank,
        alpha: 8.0,
        use_rslora: rslora,
        modules: modules.iter().map(|m| m.to_string()).collect(),
        seed: 3,
    }
}

/// `steps` AdamW steps on the fixed batch; the losses before each step and after the last.
fn train(m: &HfModel, steps: usize, lr: f64) -> Vec<f32> {
    let (x, y, mask) = batch();
    let mut opt = AdamW::new(optim(lr), m.trainable_vars()).unwrap();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let loss = m.loss(&x, &y, &mask).unwrap();
        losses.push(loss.to_scalar::<f32>().unwrap());
        opt.step(&loss.backward().unwrap(), lr).unwrap();
    }
    losses.push(m.loss(&x, &y, &mask).unwrap().to_scalar::<f32>().unwrap());
    losses
}

/// Every trainable variable's gradient norm on the fixed batch; panics naming one without gradient.
fn grad_norms(m: &HfModel) -> Vec<(String, f32)> {
    let (x, y, mask) = batch();
    let grads = m.loss(&x, &y, &mask).unwrap().backward().unwrap();
    for (name, var) in m.base_vars() {
        let trains = m.trainable_vars().iter().any(|(n, _)| n == name);
        if !trains {
            assert!(
                grads.get(var.as_tensor()).is_none(),
                "frozen '{name}' got a gradient"
            );
        }
    }
    m.trainable_vars()
        .iter()
        .map(|(name, var)| {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("'{name}' received no gradient"));
            let norm = g.sqr().unwrap().sum_all().unwrap().sqrt().unwrap();
            (name.clone(), norm.to_scalar::<f32>().unwrap())
        })
        .collect()
}

#[test]
fn every_variable_gets_a_gradient_in_full_fine_tuning() {
    for (family, n_vars) in [(Family::Qwen2, 26), (Family::Llama, 21)] {
        let dir = checkpoint(family);
        let m = load(dir.path(), &Device::Cpu).unwrap().model;
        let norms = grad_norms(&m);
        assert_eq!(norms.len(), n_vars, "{family:?}");
        for (name, n) in &norms {
            assert!(
                *n > 0.0 && n.is_finite(),
                "{family:?}: '{name}' gradient norm {n}"
            );
        }
        let losses = train(&m, 5, 3e-3);
        assert!(
            losses[5] < losses[0],
            "{family:?}: full fine-tuning {losses:?}"
        );
    }
}

#[test]
fn every_adapter_gets_a_gradient_and_the_base_none() {
    for family in FAMILIES {
        let dir = checkpoint(family);
        let mut m = load(dir.path(), &Device::Cpu).unwrap().model;
        m.attach_lora(&lora(1, true, &["all-linear"])).unwrap();
        assert_eq!(
            m.trainable_vars().len(),
            2 * 7 * 2,
            "{family:?}: A and B of 7 layers x 2"
        );
        // B starts at zero, so A's gradient is zero at initialisation (as in PEFT); one step moves B.
        train(&m, 1, 1e-2);
        for (name, n) in grad_norms(&m) {
            assert!(
                n > 0.0 && n.is_finite(),
                "{family:?}: '{name}' gradient norm {n}"
            );
        }
    }
}

#[test]
fn lora_at_initialisation_leaves_the_logits_unchanged_and_steps_lower_the_loss() {
    for (family, rank, rslora) in [(Family::Qwen2, 1, true), (Family::Llama, 4, false)] {
        let dir = checkpoint(family);
        let mut m = load(dir.path(), &Device::Cpu).unwrap().model;
        let x = ids(2, 9, 8);
        let before = m.forward(&x).unwrap();
        let cfg = lora(
            rank,
            rslora,
            &[
                "q_proj",
                "k_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj",
            ],
        );
        m.attach_lora(&cfg).unwrap();
        assert_eq!(
            max_diff(&before, &m.forward(&x).unwrap()),
            0.0,
            "{family:?}"
        );
        let scale = m.adapters()[0].1.scale;
        let expected = if rslora {
            8.0 / (rank as f64).sqrt()
        } else {
            8.0 / rank as f64
        };
        assert!(
            (scale - expected).abs() < 1e-12,
            "{family:?}: scale {scale}"
        );
        let losses = train(&m, 10, 1e-2);
        eprintln!("{family:?} LoRA r={rank}: losses {losses:?}");
        assert!(losses[10] < 0.97 * losses[0], "{family:?}: {losses:?}");
    }
}

#[test]
fn adapters_saved_in_peft_layout_reload_to_the_same_logits() {
    for family in FAMILIES {
        let dir = checkpoint(family);
        let cfg = lora(2, true, &["q_proj", "v_proj", "mlp.down_proj"]);
        let mut m = load(dir.path(), &Device::Cpu).unwrap().model;
        m.attach_lora(&cfg).unwrap();
        train(&m, 3, 1e-2);
        let x = ids(2, 7, 9);
        let trained = m.forward(&x).unwrap();
        let out = tempfile::tempdir().unwrap();
        save_peft(out.path(), &m, &cfg).unwrap();

        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.path().join("adapter_config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(config["peft_type"], "LORA");
        assert_eq!(config["r"], 2);
        assert_eq!(config["use_rslora"], true);
        let targets = config["target_modules"].as_array().unwrap();
        assert_eq!(targets.len(), 2 * 3);
        assert!(targets.iter().any(|t| t == "model.layers.1.mlp.down_proj"));
        let tensors = candle_core::safetensors::load(
            out.path().join("adapter_model.safetensors"),
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(tensors.len(), 2 * 3 * 2);
        let a = &tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"];
        let b = &tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"];
        assert_eq!((a.dims(), b.dims()), (&[2, 32][..], &[32, 2][..]));

        let mut again = load(dir.path(), &Device::Cpu).unwrap().model;
        let peft = load_peft(out.path(), &Device::Cpu).unwrap();
        assert_eq!((peft.rank, peft.alpha, peft.use_rslora), (2, 8.0, true));
        again.attach_adapters(peft.adapters).unwrap();
        let diff = max_diff(&trained, &again.forward(&x).unwrap());
        assert!(
            diff < 1e-6,
            "{family:?}: reloaded adapter logits differ by {diff}"
        );
        assert!(
            max_diff(
                &trained,
                &load(dir.path(), &Device::Cpu)
                    .unwrap()
                    .model
                    .forward(&x)
                    .unwrap()
            ) > 1e-4
        );
    }
}

#[test]
fn adapter_configs_that_build_nothing_are_refused() {
    let dir = checkpoint(Family::Llama);
    let mut m = load(dir.path(), &Device::Cpu).unwrap().model;
    let err = m
        .attach_lora(&lora(2, false, &["c_attn"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("c_attn") && err.contains("q_proj"), "{err}");
    let err = m
        .attach_lora(&lora(0, false, &["q_proj"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("rank"), "{err}");
    assert!(m.adapters().is_empty());
    m.attach_lora(&lora(1, false, &["model.layers.1.mlp.down_proj"]))
        .unwrap();
    let names: Vec<String> = m.adapters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["model.layers.1.mlp.down_proj"]);
    let err = m
        .attach_lora(&lora(1, false, &["q_proj"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("already"), "{err}");
}
