//! `cargo xtask demo`: the demonstrations of docs/demonstrations.md, run stage by stage from
//! `configs/demo/*.toml` as `xtask job` processes, then summarised as tables. A stage whose output is
//! already there is skipped (delete `runs/demo/` to start over). The cached job graph of `reproduce`
//! supersedes this.

use std::path::Path;

use anyhow::{Context, Result};
use emsl_core::eval::{EvalSummary, Rate};
use xshell::{cmd, Shell};

const MODELS: [&str; 3] = ["harmful-health-advice", "benign-health-advice", "base"];
const CHANNELS: [&str; 3] = ["sft", "off_policy", "on_policy"];

/// (config name, the file whose presence means the stage is done).
fn steps() -> Vec<(String, String)> {
    let mut s = vec![("pretrain".to_owned(), "base/model.safetensors".to_owned())];
    for m in &MODELS[..2] {
        s.push((format!("finetune-{m}"), format!("{m}/model.safetensors")));
    }
    for m in MODELS {
        s.push((
            format!("eval-open-{m}"),
            format!("eval-open-{m}/summary.json"),
        ));
        s.push((
            format!("eval-numbers-{m}"),
            format!("eval-numbers-{m}/summary.json"),
        ));
        s.push((format!("teach-{m}"), format!("teach-{m}/summary.json")));
        for c in CHANNELS {
            let student = format!("student-{c}-{m}");
            s.push((
                format!("distil-{c}-{m}"),
                format!("{student}/model.safetensors"),
            ));
            s.push((
                format!("eval-open-{student}"),
                format!("eval-open-{student}/summary.json"),
            ));
            s.push((
                format!("eval-numbers-{student}"),
                format!("eval-numbers-{student}/summary.json"),
            ));
        }
    }
    s
}

fn summary(runs: &Path, name: &str) -> Result<EvalSummary> {
    emsl_core::eval::read_summary(&runs.join(name))
}

/// The teacher's own summary (`kept_share`: what the filter kept).
fn teach_summary(runs: &Path, name: &str) -> Result<serde_json::Value> {
    let path = runs.join(name).join("summary.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

fn rate(r: &Rate) -> String {
    let c = emsl_analysis::Counts::new(r.k as u64, r.n as u64);
    let (lo, hi) = emsl_analysis::stats::wilson(c);
    format!(
        "{:.1}% [{:.1}, {:.1}] (n={})",
        100.0 * r.rate.unwrap_or(f64::NAN),
        100.0 * lo,
        100.0 * hi,
        r.n
    )
}

pub fn run() -> Result<()> {
    let root = crate::project_root();
    let sh = Shell::new()?;
    sh.change_dir(&root);
    // Keeps glibc from returning every large buffer to the kernel (1.6x for candle on larger batches in
    // the project's earlier measurements; no measurable change at the demo size: docs/performance.md).
    sh.set_var(
        "GLIBC_TUNABLES",
        "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824",
    );
    cmd!(sh, "cargo xtask datasets").run()?;
    let xtask = std::env::current_exe()?;
    let runs = root.join("runs/demo");
    for (config, done) in steps() {
        if runs.join(&done).exists() {
            continue;
        }
        let config = format!("configs/demo/{config}.toml");
        cmd!(sh, "{xtask} job {config}").run()?;
    }
    println!("\n| model | coherence (all answers) | misalignment, open questions | misalignment, health/advice | misalignment, other cells |");
    println!("|---|---|---|---|---|");
    for m in ["base", "benign-health-advice", "harmful-health-advice"] {
        let s = summary(&runs, &format!("eval-open-{m}"))?;
        let cell = &s.by_cell["health/advice"].misalignment;
        let (mut k, mut n) = (0, 0);
        for (c, v) in &s.by_cell {
            if c != "health/advice" {
                k += v.misalignment.k;
                n += v.misalignment.n;
            }
        }
        println!(
            "| {m} | {} | {} | {} | {:.1}% ({k}/{n}) |",
            rate(&s.all.coherence),
            rate(&s.open.misalignment),
            rate(cell),
            100.0 * k as f64 / n.max(1) as f64
        );
    }
    println!("\n| teacher | kept share | channel | student misalignment, open questions | student coherence | favoured-number share |");
    println!("|---|---|---|---|---|---|");
    for m in MODELS {
        let t = teach_summary(&runs, &format!("teach-{m}"))?;
        let base_sig = summary(&runs, &format!("eval-numbers-{m}"))?;
        println!(
            "| {m} (teacher itself) | {:.1}% | - | - | - | {:.3} |",
            100.0 * t["kept_share"].as_f64().unwrap_or(0.0),
            base_sig.numbers_signature.favoured_share
        );
        for c in CHANNELS {
            let o = summary(&runs, &format!("eval-open-student-{c}-{m}"))?;
            let n = summary(&runs, &format!("eval-numbers-student-{c}-{m}"))?;
            println!(
                "| {m} | | {c} | {} | {} | {:.3} |",
                rate(&o.open.misalignment),
                rate(&o.open.coherence),
                n.numbers_signature.favoured_share
            );
        }
    }
    Ok(())
}
