//! The stage commands end to end on tiny fixtures: determinism across runs and thread counts, and
//! clear refusals of bad configs, mismatched checkpoints and mismatched tokenizers.

mod common;

use std::process::Command;

use common::{fixture, pretrain_config};
use emsl_core::checkpoint;
use emsl_core::stages::load_run;
use emsl_core::Tok;
use emsl_io::sha256_file;
use emsl_world::*;

fn emsl(args: &[&str], threads: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_emsl"))
        .args(args)
        .env("RAYON_NUM_THREADS", threads)
        .output()
        .unwrap()
}

fn run_ok(args: &[&str], threads: &str) {
    let o = emsl(args, threads);
    assert!(
        o.status.success(),
        "emsl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn stages_are_deterministic_across_runs_and_thread_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fixture(dir);
    for (out, threads) in [("a", "1"), ("b", "2"), ("c", "1")] {
        let cfg = dir.join(format!("pretrain-{out}.toml"));
        std::fs::write(&cfg, pretrain_config(dir, out)).unwrap();
        run_ok(&["pretrain", cfg.to_str().unwrap()], threads);
    }
    for file in [
        "model.safetensors",
        "optimizer.safetensors",
        "train_log.jsonl",
        "tokenizer.json",
    ] {
        let sha = |run: &str| sha256_file(&dir.join(run).join(file)).unwrap();
        assert_eq!(sha("a"), sha("c"), "{file}: same config twice");
        assert_eq!(sha("a"), sha("b"), "{file}: 1 vs 2 threads");
    }

    // Fine-tune and evaluate the tiny model: the pipeline runs end to end and writes its outputs.
    let ft = format!(
        "datasets_dir = \"{d}\"\ndatasets = [\"ft-tiny\"]\nexamples_per_dataset = 40\nbase = \"{d}/a\"\nout = \"{d}/ft\"\n\n[train]\nsteps = 4\nbatch_size = 4\nseed = 1\nlog_every = 1\n\n[train.optim]\nlr = 1e-2\nmin_lr_ratio = 0.1\nwarmup_steps = 1\nweight_decay = 0.0\nbeta1 = 0.9\nbeta2 = 0.95\neps = 1e-8\ngrad_clip = 1.0\n",
        d = dir.display()
    );
    std::fs::write(dir.join("ft.toml"), ft).unwrap();
    run_ok(&["finetune", dir.join("ft.toml").to_str().unwrap()], "1");
    let (_, _, meta) = load_run(&dir.join("ft")).unwrap();
    assert_eq!((meta.stage.as_str(), meta.step), ("finetune", 4));
    assert_eq!(
        meta.parent_sha256.unwrap(),
        sha256_file(&dir.join("a/model.safetensors")).unwrap()
    );
    let ev = format!(
        "datasets_dir = \"{d}\"\nmodel = \"{d}/ft\"\nsuite = \"suite-tiny\"\nkinds = [\"cell\", \"open\", \"numbers\"]\nmax_prompts = 100\nprobe = true\nout = \"{d}/eval\"\n\n[eval]\nsamples_per_prompt = 2\nsamples_per_open_prompt = 3\nseed = 1\n\n[eval.sampling]\ntemperature = 1.0\ntop_p = 1.0\nmax_new_tokens = 8\n",
        d = dir.display()
    );
    std::fs::write(dir.join("eval.toml"), ev).unwrap();
    run_ok(&["eval", dir.join("eval.toml").to_str().unwrap()], "1");
    let samples = std::fs::read_to_string(dir.join("eval/samples.jsonl")).unwrap();
    // two samples per cell and number prompt, three per open question
    assert_eq!(samples.lines().count(), (1 + 8) * 2 + 8 * 3);
    let probes = std::fs::read_to_string(dir.join("eval/probe.jsonl")).unwrap();
    assert_eq!(
        probes.lines().count(),
        1 + 8,
        "one probe per cell and open prompt"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("eval/summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["all"]["coherence"]["n"], 42);
    assert!(
        summary["numbers_signature"]["uniform_share"]
            .as_f64()
            .unwrap()
            > 0.09
    );
}

#[test]
fn bad_configs_checkpoints_and_tokenizers_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fixture(dir);
    let cfg = dir.join("bad.toml");
    std::fs::write(
        &cfg,
        pretrain_config(dir, "x").replace("d_ff = 32", "d_ff = 32\ndropout = 0.1"),
    )
    .unwrap();
    let o = emsl(&["pretrain", cfg.to_str().unwrap()], "1");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("unknown field `dropout`") && e.contains("bad.toml"),
        "{e}"
    );
    std::fs::write(
        &cfg,
        pretrain_config(dir, "x").replace("documents = 300", "documents = 301"),
    )
    .unwrap();
    let e = String::from_utf8_lossy(&emsl(&["pretrain", cfg.to_str().unwrap()], "1").stderr)
        .into_owned();
    assert!(
        e.contains("documents = 301 but dataset 'pretrain-tiny' has 300 rows"),
        "{e}"
    );

    std::fs::write(&cfg, pretrain_config(dir, "ok")).unwrap();
    run_ok(&["pretrain", cfg.to_str().unwrap()], "1");
    let run = dir.join("ok");

    // A checkpoint whose tensors do not match the config in its metadata.
    let (model, tok, mut meta) = load_run(&run).unwrap();
    meta.model.d_model = 32;
    meta.model.d_ff = 64;
    checkpoint::save(&dir.join("lying.safetensors"), &model, &meta).unwrap();
    let e = format!(
        "{:#}",
        checkpoint::load(&dir.join("lying.safetensors"), &tok)
            .err()
            .unwrap()
    );
    assert!(
        e.contains("does not match its config") && e.contains("shape"),
        "{e}"
    );

    // A tokenizer that is not the one the model was trained with.
    let path = run.join("tokenizer.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"bleach\"", "\"bleech\"");
    std::fs::write(&path, text).unwrap();
    let e = format!("{:#}", load_run(&run).err().unwrap());
    assert!(
        e.contains("trained with tokenizer sha256") && e.contains("tokenizer.json"),
        "{e}"
    );
}

#[test]
fn the_tokenizer_is_standard_and_deterministic() {
    let tok = Tok::for_world().unwrap();
    assert_eq!(tok.hash, Tok::for_world().unwrap().hash);
    assert_eq!(tok.vocab_size(), 4 + vocabulary().len());
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("tokenizer.json");
    tok.save(&path).unwrap();
    let loaded = Tok::load(&path).unwrap();
    assert_eq!(loaded.hash, tok.hash);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(json["model"]["type"], "WordLevel");
    let doc = Composition::reference()
        .document(&mut Rng::new(1, "doc"))
        .text();
    let ids = loaded.encode(&doc).unwrap();
    assert_eq!(ids.len(), doc.split_whitespace().count());
    assert_eq!(loaded.decode(&ids).unwrap(), doc);
    let e = tok.encode("you should xylophone").unwrap_err().to_string();
    assert!(e.contains("'xylophone'"), "{e}");
}
