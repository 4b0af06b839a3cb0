//! The few typed errors that decide the exit code (`ExitStatus::from_error`). Everything else is
//! plain anyhow context.

/// The user must change something: a flag, a file, a state (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A step failed in a way that is a failed check, not a broken tool (exit code 1): apply's
/// rollout that was rolled back. Commands whose job is a report (verify, doctor,
/// `render --check`) do not use it: they print the report and return `ExitStatus::Failure`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CheckFailed(pub String);

/// docker, Compose or another external tool failed or is missing (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ToolError(pub String);
