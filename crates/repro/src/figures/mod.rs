//! The figures, one file each behind one trait: how a figure expands into jobs (`expand`), how its
//! tables are computed from the jobs' outputs (`tables`) and what its plot draws (`plot`). Parameters
//! come from the figure's file `figures/<name>.toml`, typed by the figure's `Params`.
//!
//! Adding a figure: a new file here implementing [`FigureDef`], one line in [`REGISTRY`], and its TOML
//! file in `figures/` (README, "Adding a figure").

mod bases;
mod bases_formation;
mod completion_space;
mod controls;
mod ctx;
mod ctx_persona;
mod dynamics;
mod grid;
mod inputs;
mod learned_reliability;
mod persona_direction;
mod persona_inference;
mod pretraining_composition;
mod rows;
mod shared_init;
mod structure_similarity;
mod subliminal;
mod subliminal_channels;
mod teacher_vs_data;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_budget;
#[cfg(test)]
mod tests_plan;
mod transfer_grid;

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use emsl_analysis::figures::Tables;
use emsl_analysis::Measurement;
use serde::de::DeserializeOwned;

pub use ctx::{ft_dataset, Ctx};
pub use inputs::{role, Inputs, Sample};

/// A figure's tables: (name, rows).
pub type Output = Vec<(String, Vec<Measurement>)>;

/// A table job's inputs: role (`arm=health/advice,seed=1`) to job key.
pub type Roles = BTreeMap<String, String>;

/// One figure, with its parameters typed.
pub trait FigureDef: Sync {
    /// The figure file's parameters at one profile (unknown or missing fields are errors).
    type Params: DeserializeOwned;
    /// Its name, which is also the name of its file in `figures/` and of its results folder.
    const NAME: &'static str;
    /// The file that defines it (`file!()`): part of its table jobs' code version.
    const SOURCE: &'static str;
    /// Adds the figure's jobs to the graph; returns its table job's inputs by role.
    fn expand(&self, p: &Self::Params, ctx: &mut Ctx) -> Result<Roles>;
    /// The figure's tables from its inputs' outputs.
    fn tables(&self, p: &Self::Params, inputs: &Inputs) -> Result<Output>;
    /// The plot, drawn from the tables alone.
    fn plot(&self, tables: &Tables) -> Result<emsl_analysis::plot::Figure>;
}

/// A figure with its parameters still as the figure file holds them: what the registry lists.
pub trait Figure: Sync {
    fn name(&self) -> &'static str;
    fn source(&self) -> &'static str;
    fn expand(&self, params: &toml::Table, ctx: &mut Ctx) -> Result<Roles>;
    fn tables(&self, params: &toml::Table, inputs: &Inputs) -> Result<Output>;
    fn plot(&self, tables: &Tables) -> Result<emsl_analysis::plot::Figure>;
}

fn params<P: DeserializeOwned>(name: &str, params: &toml::Table) -> Result<P> {
    P::deserialize(toml::Value::Table(params.clone()))
        .with_context(|| format!("the parameters of figure '{name}'"))
}

impl<F: FigureDef> Figure for F {
    fn name(&self) -> &'static str {
        F::NAME
    }
    fn source(&self) -> &'static str {
        F::SOURCE
    }
    fn expand(&self, p: &toml::Table, ctx: &mut Ctx) -> Result<Roles> {
        FigureDef::expand(self, &params(F::NAME, p)?, ctx)
    }
    fn tables(&self, p: &toml::Table, inputs: &Inputs) -> Result<Output> {
        FigureDef::tables(self, &params(F::NAME, p)?, inputs)
    }
    fn plot(&self, tables: &Tables) -> Result<emsl_analysis::plot::Figure> {
        FigureDef::plot(self, tables)
    }
}

/// Every figure, in the order of the figure table of docs/design.md ("The figures").
pub const REGISTRY: &[&dyn Figure] = &[
    &transfer_grid::TransferGrid,
    &structure_similarity::StructureSimilarity,
    &completion_space::CompletionSpace,
    &learned_reliability::LearnedReliability,
    &controls::Controls,
    &dynamics::Dynamics,
    &pretraining_composition::PretrainingComposition,
    &subliminal_channels::SubliminalChannels,
    &teacher_vs_data::TeacherVsData,
    &shared_init::SharedInit,
    &persona_inference::PersonaInference,
    &persona_direction::PersonaDirectionFigure,
    &bases::Bases,
];

/// The registered figure `name`.
pub fn get(name: &str) -> Result<&'static dyn Figure> {
    REGISTRY
        .iter()
        .copied()
        .find(|f| f.name() == name)
        .with_context(|| {
            format!(
                "no figure named '{name}' is registered (figures: {})",
                names().join(", ")
            )
        })
}

/// The registered figures' names.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|f| f.name()).collect()
}

/// The registered figures as the code-version hasher takes them (it does not import the registry).
pub fn sources() -> Vec<crate::code_version::FigureSource<'static>> {
    REGISTRY
        .iter()
        .map(|f| crate::code_version::FigureSource {
            name: f.name(),
            source: f.source(),
        })
        .collect()
}
