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
pub mod images;
pub mod inputs;
pub mod json;
pub mod lb_tls;
pub mod lock;
pub mod picture;
pub mod poll;
pub mod printer;
pub mod probe;
pub mod releases;
pub mod render;
pub mod report;
pub mod secrets;
#[doc(hidden)]
pub mod skip_rule;
pub mod spec;
pub mod state;
pub mod timeline;

use std::process::ExitCode;

pub use error::{CheckFailed, ToolError, UsageError};

/// Exit codes, documented in `provision --help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything worked and every check passed.
    Success = 0,
    /// A check or probe failed (verify, render --check, doctor): their report says which, and
    /// the command returns this status after printing it.
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

/// The spec when none is named: `init` writes it in the current directory; every other
/// command looks upward from there (spec/find.rs), and those that cannot work without it say
/// where they looked.
fn find_spec(command: &cli::Command) -> anyhow::Result<std::path::PathBuf> {
    use cli::Command;
    let here = std::path::PathBuf::from(spec::DEFAULT_FILE);
    let needs_one = match command {
        Command::Init(_) => return Ok(here),
        Command::Doctor(_) | Command::Images(_) | Command::Completions(_) | Command::Man(_) => {
            false
        }
        Command::Render(_)
        | Command::Apply(_)
        | Command::Verify(_)
        | Command::Status(_)
        | Command::Destroy(_)
        | Command::History(_)
        | Command::Rollback(_)
        | Command::Logs(_)
        | Command::Maintenance(_) => true,
        Command::Secrets(_) => true,
    };
    let cwd = std::env::current_dir().map_err(|err| {
        UsageError(format!(
            "cannot read the current directory ({err}); name the spec with -f FILE"
        ))
    })?;
    match spec::find::upward(&cwd) {
        // Shown as found; in the current directory that is the plain name.
        Some(found) => Ok(found
            .strip_prefix(&cwd)
            .map(std::path::Path::to_path_buf)
            .unwrap_or(found)),
        None if needs_one => Err(UsageError(spec::find::not_found(&cwd)).into()),
        None => Ok(here),
    }
}

/// Runs one command line: builds the one [`printer::Printer`], dispatches, and with `--json`
/// answers an error with an envelope on stdout too (`ok: false`), so a script reading stdout
/// always gets JSON.
pub fn run(cli: cli::Cli) -> anyhow::Result<ExitStatus> {
    use cli::Command;
    let name = cli.command.name();
    let json = cli.command.json();
    let before = cli.before_command();
    let common = match cli.command.common() {
        Some(on_command) => on_command.over(&before),
        None => before,
    };
    // With --json the result is the envelope; progress would be noise for the reading script.
    let printer = printer::Printer::detect(common.quiet || json);
    let result = match common.spec {
        Some(path) => Ok((path, true)),
        None => find_spec(&cli.command).map(|found| (found, false)),
    }
    .and_then(|(spec, spec_given)| {
        let global = commands::Global {
            spec,
            spec_given,
            lock_timeout: cli.command.lock_timeout().unwrap_or_default(),
            printer,
        };
        match cli.command {
            Command::Init(args) => commands::init::run(&global, args),
            Command::Render(args) => commands::render::run(&global, args),
            Command::Apply(args) => commands::apply::run(&global, args),
            Command::Verify(args) => commands::verify::run(&global, args),
            Command::Status(args) => commands::status::run(&global, args),
            Command::Destroy(args) => commands::destroy::run(&global, args),
            Command::Doctor(args) => commands::doctor::run(&global, args),
            Command::History(args) => commands::history::run(&global, args),
            Command::Rollback(args) => commands::rollback::run(&global, args),
            Command::Logs(args) => commands::logs::run(&global, args),
            Command::Maintenance(args) => commands::maintenance::run(&global, args),
            Command::Images(command) => commands::images::run(&global, command),
            Command::Secrets(args) => commands::secrets::run(&global, args),
            Command::Completions(args) => commands::completions::completions(&printer, args),
            Command::Man(args) => commands::completions::man(&printer, args),
        }
    });
    match result {
        Err(err) if json && !printer::is_closed_pipe(&err) => {
            // Best effort: the error itself is what main reports, whatever happens here.
            let _ = json::print_error(&printer, name, &err);
            Err(err)
        }
        other => other,
    }
}
