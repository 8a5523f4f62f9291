//! The one error type of the library API: a bad plan, bad fault rates, or a socket that failed.

use std::fmt;

/// Why a sink could not be configured or started.
#[derive(Debug)]
pub enum SinkError {
    /// The plan (a `migrate.ts` module or its `PLAN` JSON) could not be read.
    Plan(String),
    /// A fault rate outside [0, 1], or rates adding up to more than 1.
    Faults(String),
    /// Binding the listening socket or starting the server thread failed.
    Io(std::io::Error),
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkError::Plan(message) => write!(f, "plan: {message}"),
            SinkError::Faults(message) => write!(f, "faults: {message}"),
            SinkError::Io(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for SinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SinkError::Io(error) => Some(error),
            _ => None,
        }
    }
}

impl From<std::io::Error> for SinkError {
    fn from(error: std::io::Error) -> Self {
        SinkError::Io(error)
    }
}
