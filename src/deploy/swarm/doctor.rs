//! `provision doctor` on a Swarm target, and the one question it shares with apply: whether the
//! engine docker talks to is a swarm manager.

use std::time::Duration;

use crate::docker::preflight::{Finding, Status};
use crate::docker::Docker;
use crate::spec::plan::SwarmTarget;

/// `manager_state` of an engine that is a swarm manager.
pub(super) const MANAGER: &str = "active true";

/// The engine's swarm state and whether it is a manager: `active true` on a manager.
pub(super) fn manager_state(docker: &Docker) -> anyhow::Result<String> {
    let out = docker
        .call(
            "asking the engine whether it is a swarm manager",
            [
                "info",
                "--format",
                "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
            ],
        )
        .timeout(Duration::from_secs(20))
        .output()?;
    Ok(out.trim().to_owned())
}

/// `provision doctor` on a Swarm target: the engine is a manager, its nodes are Ready (counted),
/// and the registry answers. (Whether each node can pull is seen at deploy time: a task that
/// cannot pull stays `preparing`/`rejected`, and apply names it.)
pub fn doctor(docker: &Docker, target: &SwarmTarget) -> Vec<Finding> {
    let mut findings = Vec::new();
    match manager_state(docker).as_deref() {
        Ok(MANAGER) => findings.push(Finding::ok("swarm", "this engine is a swarm manager")),
        Ok(state) => findings.push(Finding::fail(
            "swarm",
            format!("the spec's target is a swarm, but this engine is not a manager (swarm state: {state})"),
            "point DOCKER_HOST at a swarm manager, or create a swarm with `docker swarm init`",
        )),
        Err(err) => findings.push(Finding::fail("swarm", format!("{err:#}"), "check the engine")),
    }
    if findings.iter().all(|f| f.status == Status::Ok) {
        let nodes = docker
            .call(
                "listing the swarm's nodes",
                [
                    "node",
                    "ls",
                    "--format",
                    "{{.Hostname}} {{.Status}} {{.Availability}}",
                ],
            )
            .timeout(Duration::from_secs(20))
            .output()
            .unwrap_or_default();
        let (ready, not_ready): (Vec<&str>, Vec<&str>) = nodes
            .lines()
            .filter(|l| !l.trim().is_empty())
            .partition(|l| l.ends_with(" Ready Active"));
        let detail = format!(
            "{} node{} Ready{}",
            ready.len(),
            if ready.len() == 1 { "" } else { "s" },
            if not_ready.is_empty() {
                String::new()
            } else {
                format!("; not ready or not active: {}", not_ready.join(", "))
            }
        );
        findings.push(if not_ready.is_empty() {
            Finding::ok("nodes", detail)
        } else {
            Finding::warn(
                "nodes",
                detail,
                "tasks are placed on Ready, Active nodes only",
            )
        });
    }
    let registry = &target.registry;
    let host = registry.split('/').next().unwrap_or(registry);
    let url = if host.starts_with("127.") || host.starts_with("localhost") {
        format!("http://{host}/v2/")
    } else {
        format!("https://{host}/v2/")
    };
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    findings.push(match agent.get(&url).call() {
        Ok(_) | Err(ureq::Error::Status(401, _)) => {
            Finding::ok("registry", format!("{registry} answers at {url}"))
        }
        Err(err) => Finding::fail(
            "registry",
            format!("{registry} does not answer at {url}: {err}"),
            "start the registry, or set target.registry to one every node can pull from",
        ),
    });
    findings
}
