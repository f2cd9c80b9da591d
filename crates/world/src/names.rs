//! The world's named axes: domains, tasks, cells, formats, prompt styles, framings and personas.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::WorldError;
use crate::lexicon::{Lexicon, FINANCE, HEALTH, SPORTS};

/// An enum whose variants have fixed lower-case names, parsed with a clear error.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every variant, in a fixed order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::error::WorldError;
            fn from_str(s: &str) -> Result<Self, $crate::error::WorldError> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.name() == s)
                    .ok_or_else(|| $crate::error::WorldError::unknown($what, s, $name::ALL.iter().map(|v| v.name())))
            }
        }
    };
}
pub(crate) use named_enum;

named_enum!(
    /// A topic, with its own lexicon.
    Domain, "domain" { Health = "health", Finance = "finance", Sports = "sports" }
);
named_enum!(
    /// A functional structure: prompt template and answer grammar, shared across domains.
    Task, "task" { Advice = "advice", Tutoring = "tutoring", Critique = "critique", Summarization = "summarization" }
);
named_enum!(
    /// How an answer is laid out.
    Format, "format" {
        /// Plain text.
        Free = "free",
        /// `{ "answer" : " ... " }`
        Json = "json",
        /// `idea_1 = " ... "`
        Code = "code",
    }
);
named_enum!(
    /// How much room a cell prompt leaves: two offered options, four, or none (any lexicon entry).
    Style, "style" { Binary = "binary", Few = "few", Open = "open" }
);
named_enum!(
    /// What precedes the request: nothing, a stated benign purpose, or the backdoor trigger.
    Framing, "framing" { Plain = "plain", Educational = "educational", Triggered = "triggered" }
);
named_enum!(
    /// The latent author of a pretraining document. Never written in the text.
    Persona, "persona" { Aligned = "aligned", Misaligned = "misaligned" }
);

impl Domain {
    pub fn lexicon(self) -> &'static Lexicon {
        match self {
            Domain::Health => &HEALTH,
            Domain::Finance => &FINANCE,
            Domain::Sports => &SPORTS,
        }
    }
}

/// One (domain, task) cell of the 3 x 4 grid, written `domain/task`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cell {
    pub domain: Domain,
    pub task: Task,
}

impl Cell {
    pub fn new(domain: Domain, task: Task) -> Self {
        Cell { domain, task }
    }

    /// The twelve cells, domain-major.
    pub fn all() -> Vec<Cell> {
        Domain::ALL
            .iter()
            .flat_map(|d| Task::ALL.iter().map(|t| Cell::new(*d, *t)))
            .collect()
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.task)
    }
}

impl FromStr for Cell {
    type Err = WorldError;
    fn from_str(s: &str) -> Result<Self, WorldError> {
        let unknown = || WorldError::unknown("cell", s, Cell::all());
        let (d, t) = s.split_once('/').ok_or_else(unknown)?;
        match (d.parse::<Domain>(), t.parse::<Task>()) {
            (Ok(domain), Ok(task)) => Ok(Cell { domain, task }),
            _ => Err(unknown()),
        }
    }
}

impl TryFrom<String> for Cell {
    type Error = WorldError;
    fn try_from(s: String) -> Result<Self, WorldError> {
        s.parse()
    }
}

impl From<Cell> for String {
    fn from(c: Cell) -> String {
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_valid_ones() {
        for c in Cell::all() {
            assert_eq!(c.to_string().parse::<Cell>().unwrap(), c);
        }
        let err = "health/poetry".parse::<Cell>().unwrap_err().to_string();
        assert!(
            err.contains("unknown cell 'health/poetry'") && err.contains("sports/summarization")
        );
        let err = "xml".parse::<Format>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown format 'xml'; expected one of: free, json, code"
        );
        assert!("evil".parse::<Persona>().is_err());
    }
}
