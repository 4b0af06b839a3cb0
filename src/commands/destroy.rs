//! `provision destroy`: `docker compose down --remove-orphans`. The redis volume (the hit
//! counter) is kept unless `--volumes`, and the output says which.

use std::time::Duration;

use crate::cli::DestroyArgs;
use crate::commands::Global;
use crate::docker::{preflight, Compose, Docker};
use crate::printer::Printer;
use crate::{render, ExitStatus};

pub fn run(global: &Global, args: DestroyArgs) -> anyhow::Result<ExitStatus> {
    let printer = Printer::detect(global.quiet);
    let stack = render::rendered_stack(&global.spec, &args.out, &printer)?;
    let plan = &stack.plan;
    let _lock = global.lock(&plan.project, "destroy", &printer)?;
    let docker = Docker::new(printer);
    preflight::require_engine(&docker)?;
    let compose = Compose::new(&docker, &plan.project, &stack.compose_file);

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

    println!(
        "removed {}: {} container{}, its network",
        plan.project,
        containers.len(),
        if containers.len() == 1 { "" } else { "s" }
    );
    match (volumes.is_empty(), args.volumes) {
        (true, _) => println!("volumes: none"),
        (false, true) => println!("volumes: removed {}", volumes.join(", ")),
        (false, false) => println!(
            "volumes: kept {} (the hit counter survives; `provision destroy --volumes` removes it)",
            volumes.join(", ")
        ),
    }
    Ok(ExitStatus::Success)
}
