//! `cargo xtask new-figure NAME`: a new figure's files, ready to edit. It writes the figure's Rust file
//! (a working figure: the reference base fine-tuned on a harmful and a benign set of one cell, judged on
//! the open questions, one effect, and its plot beside its builder), its TOML file with the three
//! profiles, and the `mod` and registry lines of `crates/repro/src/figures/mod.rs`. It refuses a name
//! that is not kebab-case or that a figure already has, before writing anything.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Where the figures' Rust files and their registry live, under the workspace.
const FIGURES_SRC: &str = "crates/repro/src/figures";

/// Writes the new figure `name` (kebab-case) speaking to claim `claim` under the workspace `root`;
/// returns the files written or changed.
pub fn new_figure(root: &Path, name: &str, claim: &str) -> Result<Vec<PathBuf>> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--");
    if !valid {
        bail!("figure name '{name}': use lowercase words joined by '-' (for example my-figure)");
    }
    let module = name.replace('-', "_");
    let type_name: String = name
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    let rust = root.join(FIGURES_SRC).join(format!("{module}.rs"));
    let toml = root.join("figures").join(format!("{name}.toml"));
    let registry = root.join(FIGURES_SRC).join("mod.rs");
    for taken in [&rust, &toml] {
        if taken.exists() {
            bail!("{} exists: the figure '{name}' is taken", taken.display());
        }
    }
    let text = std::fs::read_to_string(&registry)
        .with_context(|| format!("reading {}", registry.display()))?;
    let text = with_registration(&text, &module, &type_name)
        .with_context(|| format!("{}: cannot add the figure", registry.display()))?;
    std::fs::write(&rust, figure_file(name, &type_name, claim))?;
    std::fs::write(&toml, toml_file(name, claim))?;
    std::fs::write(&registry, text)?;
    Ok(vec![rust, toml, registry])
}

/// The registry file with `mod <module>;` among the module lines (in order) and the figure at the end
/// of `REGISTRY`.
fn with_registration(text: &str, module: &str, type_name: &str) -> Result<String> {
    let mod_line = format!("mod {module};");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mods: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("mod ") && lines[i].ends_with(';'))
        .collect();
    let Some(&last) = mods.last() else {
        bail!("no `mod` lines");
    };
    // Before the first module line that sorts after it (`#[cfg(test)]` modules keep their attribute).
    let at = mods
        .iter()
        .copied()
        .find(|&i| lines[i].as_str() > mod_line.as_str())
        .map(|i| {
            if i > 0 && lines[i - 1].starts_with("#[") {
                i - 1
            } else {
                i
            }
        })
        .unwrap_or(last + 1);
    lines.insert(at, mod_line);
    let start = lines
        .iter()
        .position(|l| l.starts_with("pub const REGISTRY"))
        .context("no `pub const REGISTRY`")?;
    let end = start
        + lines[start..]
            .iter()
            .position(|l| l == "];")
            .context("REGISTRY does not end with a line `];`")?;
    lines.insert(end, format!("    &{module}::{type_name},"));
    Ok(lines.join("\n") + "\n")
}

fn toml_file(name: &str, claim: &str) -> String {
    let profile = "cell = \"health/advice\"\n";
    format!(
        "name = \"{name}\"\nversion = 1\ntitle = \"{name}: say what it shows\"\nclaims = [\"{claim}\"]\n\
         description = \"\"\"Say what the figure measures, which claim it speaks to and through which \
         anchor's mechanism. Tables: rates (the open questions' misaligned rate per fine-tune), effects.\"\"\"\n\n\
         [smoke]\n{profile}\n[quick]\n{profile}\n[paper]\n{profile}"
    )
}

fn figure_file(name: &str, type_name: &str, claim: &str) -> String {
    TEMPLATE
        .replace("{name}", name)
        .replace("{Type}", type_name)
        .replace("{claim}", claim)
}

/// The new figure's Rust file; `{name}`, `{Type}` and `{claim}` are filled in.
const TEMPLATE: &str = r#"//! {name}: say what the figure measures, which claim it speaks to ({claim}) and through which anchor's
//! mechanism. Written by `cargo xtask new-figure {name}` as a working start: the reference base
//! fine-tuned on a harmful and a benign set of one cell, judged on the open questions.

use std::collections::BTreeMap;

use anyhow::Result;
use emsl_analysis::figures::{bars, fig, table, Tables, MISALIGNED};
use emsl_analysis::plot::Figure;
use serde::Deserialize;

use super::inputs::{misaligned, per_seed, role, Inputs, Sample};
use super::rows::{effect, rate_row};
use super::{ft_dataset, Ctx, FigureDef, Output, Roles};

pub struct {Type};

/// The parameters of `figures/{name}.toml` at one profile.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct {Type}Params {
    /// The cell whose harmful and benign sets are fine-tuned on.
    pub cell: String,
}

/// The fine-tunes, each an arm of the figure.
const ARMS: [&str; 2] = ["harmful", "benign"];

impl FigureDef for {Type} {
    type Params = {Type}Params;
    const NAME: &'static str = "{name}";
    const SOURCE: &'static str = file!();

    fn expand(&self, p: &{Type}Params, ctx: &mut Ctx) -> Result<Roles> {
        let base = ctx.reference_base()?;
        let examples = ctx.profile.finetune_examples;
        let mut inputs = BTreeMap::new();
        for seed in ctx.seeds() {
            for arm in ARMS {
                let data = ft_dataset(arm, &p.cell, "free");
                let model = ctx.finetune(&base, &data, examples, None, seed)?;
                let judged = ctx.eval_pooled(&model, false, seed)?;
                inputs.insert(role(&[("arm", arm), ("seed", &seed.to_string())]), judged);
            }
        }
        Ok(inputs)
    }

    fn tables(&self, _: &{Type}Params, inputs: &Inputs) -> Result<Output> {
        let open = |arm: &str| {
            per_seed(inputs, &[("arm", arm)], |s: &[Sample]| {
                misaligned(s.iter().filter(|s| s.is_open()))
            })
        };
        let (harmful, benign) = (open("harmful")?, open("benign")?);
        let rates = vec![
            rate_row(&[("fine_tune", "harmful".into())], "misaligned", &harmful)?,
            rate_row(&[("fine_tune", "benign".into())], "misaligned", &benign)?,
        ];
        let effects = vec![effect(
            "{claim}",
            "open questions misaligned, harmful minus benign fine-tune",
            "the anchor's number, with its source",
            &harmful,
            &benign,
        )?];
        Ok(vec![("rates".into(), rates), ("effects".into(), effects)])
    }

    fn plot(&self, t: &Tables) -> Result<Figure> {
        let rates = table(t, "rates")?;
        let chart = bars(rates, "misaligned", &[], "fine_tune", "", |_| "open questions".into());
        Ok(fig("{name}", "fine-tune", MISALIGNED, chart))
    }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTRY: &str =
        "mod controls;\nmod ctx;\n#[cfg(test)]\nmod tests;\nmod transfer_grid;\n\n\
        pub const REGISTRY: &[&dyn Figure] = &[\n    &controls::Controls,\n];\n";

    #[test]
    fn the_registry_gains_the_module_in_order_and_the_figure_at_its_end() {
        let text = with_registration(REGISTRY, "my_figure", "MyFigure").unwrap();
        assert_eq!(
            text,
            "mod controls;\nmod ctx;\nmod my_figure;\n#[cfg(test)]\nmod tests;\nmod transfer_grid;\n\n\
             pub const REGISTRY: &[&dyn Figure] = &[\n    &controls::Controls,\n    &my_figure::MyFigure,\n];\n"
        );
        let last = with_registration(REGISTRY, "zeta", "Zeta").unwrap();
        assert!(last.contains("mod transfer_grid;\nmod zeta;\n"), "{last}");
    }

    #[test]
    fn a_bad_or_taken_name_is_refused_before_anything_is_written() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join(FIGURES_SRC)).unwrap();
        std::fs::create_dir_all(root.path().join("figures")).unwrap();
        std::fs::write(root.path().join(FIGURES_SRC).join("mod.rs"), REGISTRY).unwrap();
        for bad in ["My-Figure", "my_figure", "-x", "x-", "a--b", ""] {
            let e = new_figure(root.path(), bad, "C1").unwrap_err().to_string();
            assert!(e.contains("lowercase words"), "{bad}: {e}");
        }
        let written = new_figure(root.path(), "my-figure", "C1").unwrap();
        assert_eq!(written.len(), 3);
        let rust = std::fs::read_to_string(&written[0]).unwrap();
        assert!(rust.contains("pub struct MyFigure;") && rust.contains("\"my-figure\""));
        let registry = std::fs::read_to_string(&written[2]).unwrap();
        let e = new_figure(root.path(), "my-figure", "C1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is taken"), "{e}");
        assert_eq!(
            std::fs::read_to_string(&written[2]).unwrap(),
            registry,
            "unchanged"
        );
    }
}
