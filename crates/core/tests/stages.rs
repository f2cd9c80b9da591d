//! The stage commands end to end on tiny fixtures: determinism across runs and thread counts, and
//! clear refusals of bad configs, mismatched checkpoints and mismatched tokenizers.

mod common;

use std::path::Path;
use std::process::Command;

use candle_core::Device;
use common::{fixture, pretrain_config, run_here};
use emsl_core::checkpoint;
use emsl_core::eval::{read_probes, read_samples, read_summary};
use emsl_core::stages::{self, load_run, read_config};
use emsl_core::Tok;
use emsl_io::sha256_file;
use emsl_world::*;

/// Runs the stage config `EMSL_STAGE_CONFIG` names: the child process of [`run_in_child`].
#[test]
#[ignore = "a child of stages_are_deterministic_across_runs_and_thread_counts"]
fn stage_child() {
    let path = std::env::var_os("EMSL_STAGE_CONFIG").expect("EMSL_STAGE_CONFIG");
    let cfg = read_config(Path::new(&path)).unwrap();
    stages::run(&cfg, &Device::Cpu).unwrap();
}

/// Runs the stage `config` in a child process at `threads` rayon threads (the kernels read the
/// thread count once per process).
fn run_in_child(config: &Path, threads: &str) {
    let o = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "stage_child", "--ignored", "--nocapture"])
        .env("EMSL_STAGE_CONFIG", config)
        .env("RAYON_NUM_THREADS", threads)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}: {}\n{}",
        config.display(),
        String::from_utf8_lossy(&o.stdout),
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
        run_in_child(&cfg, threads);
    }
    for file in [
        "model.safetensors",
        "optimizer.safetensors",
        "train_log.jsonl",
        "tokenizer.json",
        "stage.toml",
    ] {
        let sha = |run: &str| sha256_file(&dir.join(run).join(file)).unwrap();
        assert_eq!(sha("a"), sha("c"), "{file}: same config twice");
        assert_eq!(sha("a"), sha("b"), "{file}: 1 vs 2 threads");
    }
    let recorded = std::fs::read_to_string(dir.join("a/stage.toml")).unwrap();
    assert!(
        recorded.contains("dataset = \"pretrain-tiny\"")
            && !recorded.contains(&*dir.to_string_lossy()),
        "stage.toml records the spec, no folder: {recorded}"
    );

    // Fine-tune and evaluate the tiny model: the pipeline runs end to end and writes its outputs.
    let ft = format!(
        "[spec]\nkind = \"finetune\"\ndatasets = [\"ft-tiny\"]\nexamples_per_dataset = 40\n\n[spec.train]\nsteps = 4\nbatch_size = 4\nseed = 1\nlog_every = 1\n\n[spec.train.optim]\nlr = 1e-2\nmin_lr_ratio = 0.1\nwarmup_steps = 1\nweight_decay = 0.0\nbeta1 = 0.9\nbeta2 = 0.95\neps = 1e-8\ngrad_clip = 1.0\n\n[io]\ndatasets_dir = \"{d}\"\nout = \"{d}/ft\"\n\n[io.inputs]\nbase = \"{d}/a\"\n",
        d = dir.display()
    );
    run_here(dir, "ft.toml", &ft);
    let (_, _, meta) = load_run(&dir.join("ft"), &Device::Cpu).unwrap();
    assert_eq!((meta.stage.as_str(), meta.step), ("finetune", 4));
    assert_eq!(
        meta.parent_sha256.unwrap(),
        sha256_file(&dir.join("a/model.safetensors")).unwrap()
    );
    let ev = format!(
        "[spec]\nkind = \"eval\"\nsuite = \"suite-tiny\"\nkinds = [\"cell\", \"open\", \"numbers\"]\nmax_prompts = 100\nprobe = true\n\n[spec.eval]\nsamples_per_prompt = 2\nsamples_per_open_prompt = 3\nseed = 1\n\n[spec.eval.sampling]\ntemperature = 1.0\ntop_p = 1.0\nmax_new_tokens = 8\n\n[io]\ndatasets_dir = \"{d}\"\nout = \"{d}/eval\"\n\n[io.inputs]\nmodel = \"{d}/ft\"\n",
        d = dir.display()
    );
    run_here(dir, "eval.toml", &ev);
    let samples = read_samples(&dir.join("eval")).unwrap();
    // two samples per cell and number prompt, three per open question
    assert_eq!(samples.len(), (1 + 8) * 2 + 8 * 3);
    let probes = read_probes(&dir.join("eval")).unwrap();
    assert_eq!(probes.len(), 1 + 8, "one probe per cell and open prompt");
    assert!(probes.iter().all(|p| p.probe.is_finite()));
    let summary = read_summary(&dir.join("eval")).unwrap();
    assert_eq!(summary.all.coherence.n, 42);
    assert_eq!(
        summary.open.coherence.n + summary.cell.coherence.n + summary.numbers.coherence.n,
        42
    );
    assert!(summary.numbers_signature.uniform_share > 0.09);
    let cfg = read_config(&dir.join("eval.toml")).unwrap();
    assert_eq!(
        stages::StageSpec::Eval(summary.config),
        cfg.spec,
        "the summary records the spec"
    );

    // A broken line is an error naming the file and the line.
    let text = std::fs::read_to_string(dir.join("eval/samples.jsonl")).unwrap();
    std::fs::write(
        dir.join("eval/samples.jsonl"),
        format!("{text}{{\"prompt_id\": 1}}\n"),
    )
    .unwrap();
    let e = format!("{:#}", read_samples(&dir.join("eval")).unwrap_err());
    assert!(e.contains("samples.jsonl, line 43"), "{e}");
}

#[test]
fn bad_configs_checkpoints_and_tokenizers_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fixture(dir);
    let cfg = dir.join("bad.toml");
    let refused = |text: String| -> String {
        std::fs::write(&cfg, text).unwrap();
        format!("{:#}", read_config(&cfg).unwrap_err())
    };
    let e = refused(pretrain_config(dir, "x").replace("d_ff = 32", "d_ff = 32\ndropout = 0.1"));
    assert!(
        e.contains("unknown field `dropout`") && e.contains("bad.toml"),
        "{e}"
    );
    let e = refused(pretrain_config(dir, "x").replace("init_seed = 3\n", ""));
    assert!(e.contains("init_seed") && e.contains("bad.toml"), "{e}");
    let e = refused(format!(
        "{}\n[io.inputs]\nbase = \"a\"\n",
        pretrain_config(dir, "x")
    ));
    assert!(e.contains("'base'") && e.contains("bad.toml"), "{e}");
    let e = refused(
        std::fs::read_to_string(root().join("configs/demo/eval-open-base.toml"))
            .unwrap()
            .replace("model = ", "modle = "),
    );
    assert!(e.contains("'model'") && e.contains("bad.toml"), "{e}");

    std::fs::write(
        &cfg,
        pretrain_config(dir, "x").replace("documents = 300", "documents = 301"),
    )
    .unwrap();
    let e = format!(
        "{:#}",
        stages::run(&read_config(&cfg).unwrap(), &Device::Cpu).unwrap_err()
    );
    assert!(
        e.contains("documents = 301 but dataset 'pretrain-tiny' has 300 rows"),
        "{e}"
    );

    run_here(dir, "ok.toml", &pretrain_config(dir, "ok"));
    let run = dir.join("ok");

    // A checkpoint whose tensors do not match the config in its metadata.
    let (model, tok, mut meta) = load_run(&run, &Device::Cpu).unwrap();
    meta.model.d_model = 32;
    meta.model.d_ff = 64;
    checkpoint::save(&dir.join("lying.safetensors"), &model, &meta).unwrap();
    let e = format!(
        "{:#}",
        checkpoint::load(&dir.join("lying.safetensors"), &tok, &Device::Cpu)
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
    let e = format!("{:#}", load_run(&run, &Device::Cpu).err().unwrap());
    assert!(
        e.contains("trained with tokenizer sha256") && e.contains("tokenizer.json"),
        "{e}"
    );
}

/// The workspace root.
fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn every_demo_config_reads_and_says_what_it_reads() {
    let mut kinds = std::collections::BTreeSet::new();
    let mut n = 0;
    for e in std::fs::read_dir(root().join("configs/demo")).unwrap() {
        let path = e.unwrap().path();
        let cfg = read_config(&path).unwrap_or_else(|e| panic!("{e:#}"));
        let roles: Vec<&str> = cfg.io.inputs.keys().map(String::as_str).collect();
        let mut want = cfg.spec.input_roles().to_vec();
        want.sort();
        assert_eq!(roles, want, "{}", path.display());
        kinds.insert(cfg.spec.kind());
        n += 1;
    }
    assert_eq!(n, 39);
    assert_eq!(kinds.len(), 5, "{kinds:?}");
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
