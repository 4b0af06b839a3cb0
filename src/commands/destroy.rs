//! `provision destroy`: `docker compose down --remove-orphans` (consul-dns: the lb stopped and
//! the web replicas told they are drained first), or on a Swarm `docker stack rm`
//! and a wait until the stack's networks are gone. The redis volume (the hit counter) is kept
//! unless `--volumes`, and the output says which.

use std::time::Duration;

use crate::cli::DestroyArgs;
use crate::commands::Global;
use crate::deploy::{maintenance, Deployment};
use crate::docker::{preflight, Docker};
use crate::{render, ExitStatus};

/// How long a Swarm may take to let go of the stack's networks after `docker stack rm`.
const DESTROY_TIMEOUT: Duration = Duration::from_secs(120);

pub fn run(global: &Global, args: DestroyArgs) -> anyhow::Result<ExitStatus> {
    let printer = &global.printer;
    let stack = render::rendered_stack(&global.spec, &args.out, printer)?;
    let plan = &stack.plan;
    let _lock = global.lock(&plan.project, "destroy", printer)?;
    let docker = Docker::new(*printer);
    preflight::require_engine(&docker)?;
    let gone = Deployment::new(&docker, &stack).destroy(args.volumes, DESTROY_TIMEOUT)?;
    // A new stack starts serving; the releases stay for `provision history`.
    if let Err(err) = maintenance::forget(&plan.project) {
        printer.note(format!("could not forget maintenance mode: {err:#}"));
    }
    printer.stdout().text(&format!(
        "{}
{}",
        gone.summary,
        volumes_line(&gone.volumes, args.volumes)
    ))?;
    Ok(ExitStatus::Success)
}

/// What happened to the project's volumes, and a newline.
fn volumes_line(volumes: &[String], removed: bool) -> String {
    match (volumes.is_empty(), removed) {
        (true, _) => "volumes: none\n".to_owned(),
        (false, true) => format!("volumes: removed {}\n", volumes.join(", ")),
        (false, false) => format!(
            "volumes: kept {} (the hit counter survives; `provision destroy --volumes` removes it)\n",
            volumes.join(", ")
        ),
    }
}
