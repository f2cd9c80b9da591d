//! A set of own-model configs as one graph of cached jobs, and the links that name their results:
//! `<out>/<config stem>` points at the job folder the config's identity chose, so a rerun that
//! finds everything up to date leaves the links as they were and a changed input moves one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::FileHashes;
use crate::code_version::CodeVersions;
use crate::graph::Graph;

pub struct OwnPlan {
    pub graph: Graph,
    /// Per config, in the order given: its results name (the file's stem) and its job's key.
    pub results: Vec<(String, String)>,
}

/// The graph of `configs` (emsl-hf job configs) with the emsl-hf binary `hf`: each config planned
/// (`emsl-hf job --plan`, run in `cwd`, where the configs' relative paths start) and its input files
/// hashed with `out`'s cache. Fails before anything runs on a bad config, two configs of one name,
/// or a results name that is taken by something other than such a link.
pub fn plan_configs(
    root: &Path,
    out: &Path,
    hf: &Path,
    cwd: &Path,
    configs: &[PathBuf],
) -> Result<OwnPlan> {
    let mut graph = Graph::new(
        BTreeMap::new(),
        CodeVersions::of_sources(root, &crate::figures::sources())?,
    );
    let mut hashes = FileHashes::load(out);
    let mut names: BTreeMap<String, &Path> = BTreeMap::new();
    let mut results = Vec::new();
    for config in configs {
        let name = config
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| !s.is_empty() && !s.starts_with('.'))
            .with_context(|| format!("{}: a config needs a file name", config.display()))?
            .to_owned();
        if let Some(other) = names.insert(name.clone(), config) {
            bail!(
                "{} and {} would both be {}: rename one of them",
                other.display(),
                config.display(),
                out.join(&name).display()
            );
        }
        check_link(out, &name)?;
        let task = super::task(super::plan_stage(hf, cwd, config)?, &mut hashes)?;
        results.push((name, graph.add(&config.display().to_string(), task)?));
    }
    hashes.save()?;
    Ok(OwnPlan { graph, results })
}

/// `out/name` must be free or a link (which [`link_results`] replaces).
fn check_link(out: &Path, name: &str) -> Result<()> {
    let path = out.join(name);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if !m.file_type().is_symlink() => bail!(
            "{} exists and is not a link to a job folder: move it, or rename the config",
            path.display()
        ),
        _ => Ok(()),
    }
}

/// Points `out/<name>` at `jobs/<key>` for each result (relative links: the folder can move).
pub fn link_results(out: &Path, results: &[(String, String)]) -> Result<()> {
    for (name, key) in results {
        let target = Path::new(crate::store::JOBS_DIR).join(key);
        let tmp = out.join(format!(".{name}.link"));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp)
            .with_context(|| format!("linking {}", tmp.display()))?;
        let path = out.join(name);
        std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
    }
    Ok(())
}

/// The results names of `plan` whose job is not finished and intact in `out` (what a run would run).
pub fn not_current(out: &Path, plan: &OwnPlan) -> Result<Vec<String>> {
    let lock = crate::lock::Lock::load(out)?;
    Ok(plan
        .results
        .iter()
        .filter(|(_, key)| !lock.intact(out, key, &plan.graph.get(key).identity))
        .map(|(name, _)| name.clone())
        .collect())
}

/// Forgets the own-model jobs of `out` that no results link points at (earlier versions of a config,
/// a config renamed): their lock entries, folders, logs and configs. Other jobs of the folder (a
/// figure run's) are left alone. Returns the keys forgotten.
pub fn prune_unlinked(out: &Path) -> Result<Vec<String>> {
    let mut linked = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(out).with_context(|| format!("listing {}", out.display()))? {
        let path = e?.path();
        if let Ok(target) = std::fs::read_link(&path) {
            if let Ok(key) = target.strip_prefix(crate::store::JOBS_DIR) {
                linked.insert(key.to_string_lossy().into_owned());
            }
        }
    }
    crate::lock::forget_jobs_unless(out, |key| !super::is_own_job(key) || linked.contains(key))
}
