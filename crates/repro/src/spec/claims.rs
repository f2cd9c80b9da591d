//! `figures/claims.toml`: the paper's claims the claims table judges and the anchor works whose
//! effects the figures also measure. Every figure file lists the ids its effects speak to.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::FigureSpec;

pub const CLAIMS_FILE: &str = "claims.toml";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    pub id: String,
    pub statement: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anchor {
    pub id: String,
    pub work: String,
}

/// An earlier run's frozen results at one profile (`[[previous]]`), whose verdicts that profile's
/// CLAIMS.md sets beside this world's, effect by effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Previous {
    pub profile: String,
    /// The column's name in CLAIMS.md, e.g. `world v1`.
    pub label: String,
    /// The frozen folder, relative to the project root, e.g. `results-v1`.
    pub results: String,
}

/// A `Previous` as a claims job reads it: the sha256 of each of the folder's `effects.parquet` by
/// figure, part of the job's identity like its own tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviousTables {
    pub label: String,
    pub results: String,
    pub effects: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    pub claim: Vec<Claim>,
    pub anchor: Vec<Anchor>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous: Vec<Previous>,
}

impl Claims {
    pub fn load(dir: &Path) -> Result<Claims> {
        let path = dir.join(CLAIMS_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{}", path.display()))
    }

    /// Takes the `[[previous]]` entries out of the claims (so that a profile without one keeps its
    /// claims job's identity) and returns the one of `profile`, with its effects' hashes, read from
    /// `root`. A named folder that is missing is an error.
    pub fn take_previous(
        &mut self,
        root: &Path,
        dir: &Path,
        profile: &str,
        figures: &[FigureSpec],
    ) -> Result<Option<PreviousTables>> {
        let Some(p) = std::mem::take(&mut self.previous)
            .into_iter()
            .find(|p| p.profile == profile)
        else {
            return Ok(None);
        };
        let folder = root.join(&p.results);
        if !folder.is_dir() || p.results.contains("..") {
            bail!(
                "{}: [[previous]] for profile {profile} names results = '{}', which is not a folder \
                 of the project ({}): restore it or remove the entry",
                dir.join(CLAIMS_FILE).display(),
                p.results,
                folder.display()
            );
        }
        let mut effects = std::collections::BTreeMap::new();
        for f in figures {
            let path = folder.join(&f.file.name).join("effects.parquet");
            if path.exists() {
                effects.insert(f.file.name.clone(), emsl_io::sha256_file(&path)?);
            }
        }
        Ok(Some(PreviousTables {
            label: p.label,
            results: p.results,
            effects,
        }))
    }

    pub fn knows(&self, id: &str) -> bool {
        self.claim.iter().any(|c| c.id == id) || self.anchor.iter().any(|a| a.id == id)
    }

    /// Every id a figure file lists must be declared here.
    pub fn check(&self, figures: &[FigureSpec], dir: &Path) -> Result<()> {
        for f in figures {
            for id in &f.file.claims {
                if !self.knows(id) {
                    bail!(
                        "{}: claims lists '{id}', which {} does not declare (add it there as a \
                         [[claim]] or an [[anchor]], or fix the id)",
                        f.path.display(),
                        dir.join(CLAIMS_FILE).display()
                    );
                }
            }
        }
        Ok(())
    }
}
