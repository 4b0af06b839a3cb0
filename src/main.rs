//! Entry point: parse the command line, run, print the error chain, exit with a documented code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = provision::cli::Cli::parse();
    match provision::run(cli) {
        Ok(status) => status.into(),
        Err(err) => {
            eprintln!("error: {err:#}");
            provision::ExitStatus::from_error(&err).into()
        }
    }
}
