//! provision: spec → plan → files → docker → probes → report.
//!
//! `run` dispatches one subcommand; each lives in `commands/`. Errors carry their meaning as a few
//! typed errors (see `error.rs`), from which `ExitStatus` picks the documented exit code.

pub mod blueprint;
pub mod check;
pub mod cli;
pub mod commands;
pub mod deploy;
pub mod docker;
pub mod error;
pub mod lock;
pub mod poll;
pub mod printer;
pub mod probe;
pub mod render;
pub mod report;
pub mod spec;

use std::process::ExitCode;

pub use error::{CheckFailed, ToolError, UsageError};

/// Exit codes, documented in `provision --help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything worked and every check passed.
    Success = 0,
    /// A check or probe failed (verify, render --check, doctor).
    Failure = 1,
    /// Bad input: the spec, a flag, or a state the user must resolve (such as hand-edited files).
    Usage = 2,
    /// docker, Compose or another tool failed or is missing.
    Tool = 3,
    /// A bug or an unexpected I/O error.
    Internal = 4,
}

impl ExitStatus {
    /// The exit code an error maps to: the first typed error in its chain decides.
    pub fn from_error(err: &anyhow::Error) -> Self {
        for cause in err.chain() {
            if cause.is::<spec::SpecError>() || cause.is::<UsageError>() {
                return ExitStatus::Usage;
            }
            if cause.is::<CheckFailed>() {
                return ExitStatus::Failure;
            }
            if cause.is::<ToolError>() {
                return ExitStatus::Tool;
            }
        }
        ExitStatus::Internal
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        ExitCode::from(status as u8)
    }
}

/// Runs one command line.
pub fn run(cli: cli::Cli) -> anyhow::Result<ExitStatus> {
    use cli::Command;
    let global = commands::Global {
        spec: cli.spec,
        quiet: cli.quiet,
        lock_timeout: cli.lock_timeout,
    };
    match cli.command {
        Command::Init(args) => commands::init::run(&global, args),
        Command::Render(args) => commands::render::run(&global, args),
        Command::Apply(args) => commands::apply::run(&global, args),
        Command::Verify(args) => commands::verify::run(&global, args),
        Command::Status(args) => commands::status::run(&global, args),
        Command::Destroy(args) => commands::destroy::run(&global, args),
        Command::Doctor(args) => commands::doctor::run(&global, args),
        Command::Completions(args) => commands::completions::completions(args),
        Command::Man => commands::completions::man(),
    }
}
