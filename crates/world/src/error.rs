//! Errors for bad input to the world: every message names what was wrong and what is accepted.

/// An error from parsing a name or a composition knob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorldError {
    /// A name (cell, domain, task, persona, format, style, question, kind) that the world does not have.
    #[error("unknown {what} '{given}'; expected one of: {}", valid.join(", "))]
    Unknown {
        what: &'static str,
        given: String,
        valid: Vec<String>,
    },
    /// A composition or dataset parameter out of its range.
    #[error("invalid {field} = {value}: {reason}")]
    Invalid {
        field: String,
        value: String,
        reason: String,
    },
    /// A composition file that does not parse (unknown knob, missing knob, wrong type).
    #[error("composition {source_name}: {message}")]
    Composition {
        source_name: String,
        message: String,
    },
}

impl WorldError {
    pub(crate) fn unknown<S: ToString>(
        what: &'static str,
        given: &str,
        valid: impl IntoIterator<Item = S>,
    ) -> Self {
        WorldError::Unknown {
            what,
            given: given.to_owned(),
            valid: valid.into_iter().map(|v| v.to_string()).collect(),
        }
    }

    pub(crate) fn invalid(field: &str, value: impl ToString, reason: &str) -> Self {
        WorldError::Invalid {
            field: field.to_owned(),
            value: value.to_string(),
            reason: reason.to_owned(),
        }
    }
}
