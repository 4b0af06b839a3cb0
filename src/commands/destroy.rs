//! `provision destroy`: `docker compose down --remove-orphans`, or on a Swarm `docker stack rm`
//! and a wait until the stack's networks are gone. The redis volume (the hit counter) is kept
//! unless `--volumes`, and the output says which.

use std::time::Duration;

use crate::applied;
use crate::cli::DestroyArgs;
use crate::commands::Global;
use crate::deploy::Deployment;
use crate::docker::{preflight, Docker};
use crate::{render, ExitStatus};

pub fn run(global: &Global, args: DestroyArgs) -> anyhow::Result<ExitStatus> {
    let printer = &global.printer;
    let stack = render::rendered_stack(&global.spec, &args.out, printer)?;
    let plan = &stack.plan;
    let _lock = global.lock(&plan.project, "destroy", printer)?;
    let docker = Docker::new(*printer);
    preflight::require_engine(&docker)?;
    let compose = match Deployment::new(&docker, &stack) {
        Deployment::Compose { compose, .. } => compose,
        Deployment::Swarm(swarm) => {
            let gone = swarm.destroy(args.volumes, 120)?;
            printer.stdout().text(&format!(
                "removed stack {}: {} task{}, its services and network (gone {} s after `docker stack rm`)\n{}",
                plan.project,
                gone.tasks,
                if gone.tasks == 1 { "" } else { "s" },
                gone.seconds,
                volumes_line(&gone.volumes, args.volumes)
            ))?;
            return Ok(ExitStatus::Success);
        }
    };

    let containers = docker.project_containers(&plan.project)?;
    let label = format!("label=com.docker.compose.project={}", plan.project);
    let volumes: Vec<String> = docker
        .call(
            format!("listing the volumes of project {}", plan.project),
            ["volume", "ls", "--quiet", "--filter", label.as_str()],
        )
        .timeout(Duration::from_secs(30))
        .output()?
        .split_whitespace()
        .map(str::to_owned)
        .collect();

    compose.down(args.volumes)?;
    // Nothing runs from it any more (see `applied`).
    if let Err(err) = applied::forget(&plan.project) {
        printer.note(format!(
            "could not remove the kept copy of the last applied Compose file: {err:#}"
        ));
    }

    printer.stdout().text(&format!(
        "removed {}: {} container{}, its network\n{}",
        plan.project,
        containers.len(),
        if containers.len() == 1 { "" } else { "s" },
        volumes_line(&volumes, args.volumes)
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
