//! Whether a results folder is current: each figure's table job, planned from this checkout's
//! sources, figure files and datasets, has an entry of the same identity in the folder's `repro.lock`.
//! A job's identity hashes its config, its code version and its inputs' identities, so a current table
//! job means its whole graph is. `verify` checks checksums and values; this checks that the tables come
//! from what the checkout would compute now. Compute jobs' identities also hash the toolchain and the
//! CPU features the kernels dispatch on, so a folder made on another machine reads as stale here even
//! when its values are the same (verify's comparison of values says whether that matters).

use std::path::Path;

use anyhow::Result;

use crate::lock::Lock;
use crate::plan::{plan, Plan};

/// A figure whose tables the results folder holds from other code, specs or inputs than today's.
#[derive(Debug, Clone, PartialEq)]
pub struct Stale {
    pub figure: String,
    /// What today's sources plan for the figure's table job.
    pub planned: String,
    /// What the lock holds for it (`None`: no table job of the figure at all).
    pub recorded: Option<String>,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.recorded {
            Some(r) => write!(
                f,
                "{}: the results hold {r}, this checkout plans {} (rerun `cargo xtask reproduce --figure {}`)",
                self.figure, self.planned, self.figure
            ),
            None => write!(
                f,
                "{}: the results hold no table job of it (this checkout plans {})",
                self.figure, self.planned
            ),
        }
    }
}

/// The stale figures of `results` at `profile`.
pub fn stale_figures(root: &Path, profile: &str, results: &Path) -> Result<Vec<Stale>> {
    let p = plan(root, &root.join("figures"), profile, &[], results)?;
    Ok(stale_in(&p, &Lock::load(results)?))
}

/// The figures of `plan` whose table job `lock` does not hold with the planned identity.
pub fn stale_in(plan: &Plan, lock: &Lock) -> Vec<Stale> {
    plan.figure_jobs
        .iter()
        .filter_map(|(figure, key)| {
            let identity = &plan.graph.get(key).identity;
            if lock.jobs.get(key).is_some_and(|e| &e.identity == identity) {
                return None;
            }
            let label = format!("tables and plot of {figure}");
            let recorded = lock
                .jobs
                .iter()
                .find(|(_, e)| e.label == label)
                .map(|(k, _)| k.clone());
            Some(Stale {
                figure: figure.clone(),
                planned: key.clone(),
                recorded,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{Entry, LOCK_VERSION};

    fn entry(identity: &str, label: &str) -> Entry {
        Entry {
            identity: identity.into(),
            kind: "figure".into(),
            label: label.into(),
            threads: 1,
            inputs: vec![],
            config: toml::Value::Table(Default::default()),
            outputs: Default::default(),
        }
    }

    #[test]
    fn a_lock_of_the_planned_table_jobs_is_current_and_an_older_one_names_the_figure() {
        let root = crate::test_support::root();
        let out = tempfile::tempdir().unwrap();
        let p = plan(&root, &root.join("figures"), "smoke", &[], out.path()).unwrap();
        let mut lock = Lock {
            version: LOCK_VERSION,
            ..Lock::default()
        };
        for (figure, key) in &p.figure_jobs {
            let identity = &p.graph.get(key).identity;
            lock.jobs.insert(
                key.clone(),
                entry(identity, &format!("tables and plot of {figure}")),
            );
        }
        assert_eq!(stale_in(&p, &lock), vec![]);

        // The lock of an older version of one figure: its table job had another key.
        let key = p.figure_jobs["controls"].clone();
        let old = lock.jobs.remove(&key).unwrap();
        lock.jobs.insert("figure-000000000000".into(), old);
        assert_eq!(
            stale_in(&p, &lock),
            vec![Stale {
                figure: "controls".into(),
                planned: key.clone(),
                recorded: Some("figure-000000000000".into()),
            }]
        );

        // No table job of it at all.
        lock.jobs.remove("figure-000000000000");
        assert_eq!(stale_in(&p, &lock)[0].recorded, None);
    }
}
