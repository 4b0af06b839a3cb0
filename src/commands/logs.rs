//! `provision logs [SERVICE]`: the logs of the project's own containers, each line prefixed by
//! the replica (Compose: `docker compose logs`, prefixed `web-2 | `) or the task (Swarm:
//! `docker service logs`, prefixed `hits_web.2.<task>@<node> | `). A service the stack does not
//! run is refused, naming the ones it does.

use crate::cli::LogsArgs;
use crate::commands::Global;
use crate::deploy::Deployment;
use crate::docker::{preflight, Docker};
use crate::{render, ExitStatus, UsageError};

/// The ANSI "erase line" sequence.
const CLEAR_LINE: &str = "\x1b[2K";

pub fn run(global: &Global, args: LogsArgs) -> anyhow::Result<ExitStatus> {
    let printer = &global.printer;
    let stack = render::rendered_stack(&global.spec, &args.out, printer)?;
    let plan = &stack.plan;
    let names: Vec<String> = plan
        .services()
        .iter()
        .map(|s| s.name().to_owned())
        .collect();
    let services = match &args.service {
        None => names.clone(),
        Some(service) if names.contains(service) => vec![service.clone()],
        Some(service) => {
            return Err(UsageError(format!(
                "the stack has no service `{service}`; its services are {}",
                names.join(", ")
            ))
            .into())
        }
    };
    let docker = Docker::new(*printer);
    preflight::require_engine(&docker)?;
    let mut options = Vec::new();
    if args.follow {
        options.push("--follow".to_owned());
    }
    if let Some(since) = &args.since {
        options.extend(["--since".to_owned(), since.clone()]);
    }
    if let Some(tail) = args.tail {
        options.extend(["--tail".to_owned(), tail.to_string()]);
    }
    // Compose clears the terminal line before each log line (an escape code it writes even on
    // a pipe); the text is the line without it.
    let print = |line: &str| -> anyhow::Result<()> {
        printer
            .stdout()
            .line(line.trim_start_matches(CLEAR_LINE))
            .map_err(Into::into)
    };
    let only = if args.service.is_some() {
        services
    } else {
        Vec::new()
    };
    Deployment::new(&docker, &stack).logs(&only, &options, args.follow, print)?;
    Ok(ExitStatus::Success)
}
