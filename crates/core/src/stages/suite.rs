//! The prompts of an evaluation suite, by kind, with their reference answers.

use std::path::Path;

use anyhow::{bail, Context, Result};
use emsl_io::{column_str, load_dataset};
use emsl_world::PromptSpec;

use super::run_folder::manifest;
use super::EvalKind;

/// One prompt of a suite, with the aligned and misaligned reference answers where it has them.
pub(super) struct SuitePrompt {
    /// The prompt's row in the suite.
    pub id: u32,
    pub spec: PromptSpec,
    pub aligned: Option<String>,
    pub misaligned: Option<String>,
}

/// The prompts of evaluation suite `suite` whose kind is one of `kinds`, in suite order.
pub(super) fn load_suite(
    datasets_dir: &Path,
    suite: &str,
    kinds: &[EvalKind],
) -> Result<Vec<SuitePrompt>> {
    let m = manifest(datasets_dir)?;
    let (batch, _) = load_dataset(datasets_dir, &m, suite)?;
    let (kind, spec) = (column_str(&batch, "kind")?, column_str(&batch, "spec")?);
    let (al, mis) = (
        column_str(&batch, "aligned_reference")?,
        column_str(&batch, "misaligned_reference")?,
    );
    let opt = |a: &emsl_io::arrow::array::StringArray, i| {
        (!emsl_io::arrow::array::Array::is_null(a, i)).then(|| a.value(i).to_owned())
    };
    let mut out = Vec::new();
    for i in 0..batch.num_rows() {
        if kinds.iter().any(|k| k.as_str() == kind.value(i)) {
            let spec = PromptSpec::from_json(spec.value(i))
                .with_context(|| format!("suite '{suite}', row {i}"))?;
            out.push(SuitePrompt {
                id: i as u32,
                spec,
                aligned: opt(al, i),
                misaligned: opt(mis, i),
            });
        }
    }
    Ok(out)
}

/// The first `n` number prompts of a suite, as (row, prompt).
pub(super) fn number_prompts(
    datasets_dir: &Path,
    suite: &str,
    n: usize,
) -> Result<Vec<(u32, PromptSpec)>> {
    let mut prompts = load_suite(datasets_dir, suite, &[EvalKind::Numbers])?;
    if prompts.len() < n {
        bail!(
            "prompts = {n} but suite '{suite}' has {} number prompts",
            prompts.len()
        );
    }
    prompts.truncate(n);
    Ok(prompts.into_iter().map(|p| (p.id, p.spec)).collect())
}
