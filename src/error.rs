//! The few typed errors that decide the exit code. Everything else is plain anyhow context.

use std::fmt;

/// The user must change something: a flag, a file, a state (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

/// A step failed in a way that is a failed check, not a broken tool (exit code 1): apply's
/// rollout that was rolled back. Commands whose job is a report (verify, doctor,
/// `render --check`) do not use it: they print the report and return `ExitStatus::Failure`.
#[derive(Debug)]
pub struct CheckFailed(pub String);

/// docker, Compose or another external tool failed or is missing (exit code 3).
#[derive(Debug)]
pub struct ToolError(pub String);

macro_rules! display_inner {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::error::Error for $t {}
    )*};
}
display_inner!(UsageError, CheckFailed, ToolError);
