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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    pub claim: Vec<Claim>,
    pub anchor: Vec<Anchor>,
}

impl Claims {
    pub fn load(dir: &Path) -> Result<Claims> {
        let path = dir.join(CLAIMS_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{}", path.display()))
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
