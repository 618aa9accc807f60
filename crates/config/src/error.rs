//! Configuration errors: every problem names the field path it is about.

use std::fmt;

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted field path, like `load.max_batch_bytes`.
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid TOML{}: {message}", line.map(|l| format!(" at line {l}")).unwrap_or_default())]
    Syntax {
        message: String,
        line: Option<usize>,
    },
    #[error("{}", join(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The problems, one per field (a syntax error counts as one, at the file).
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            ConfigError::Syntax { .. } => vec![Problem::new("(file)", self.to_string())],
            ConfigError::Invalid(p) => p.clone(),
        }
    }
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
