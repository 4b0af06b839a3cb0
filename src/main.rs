//! Entry point: parse the command line, run, print the error chain, exit with a documented code.
//! A reader that closed stdout early (`provision status | head -1`) is not an error: exit 0,
//! quietly, as cargo and ripgrep do.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = provision::cli::parse();
    match provision::run(cli) {
        Ok(status) => status.into(),
        Err(err) if provision::printer::is_closed_pipe(&err) => {
            provision::ExitStatus::Success.into()
        }
        Err(err) => {
            provision::printer::error_line(&format!("{err:#}"));
            provision::ExitStatus::from_error(&err).into()
        }
    }
}
