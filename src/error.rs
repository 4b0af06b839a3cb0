//! The few typed errors that decide the exit code (`ExitStatus::from_error`). Everything else is
//! plain anyhow context.

/// The user must change something: a flag, a file, a state (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A check or probe failed; the report has already been printed (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CheckFailed(pub String);

/// docker, Compose or another external tool failed or is missing (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ToolError(pub String);
