//! `provision doctor` on a Swarm target, and the one question it shares with apply: whether the
//! engine docker talks to is a swarm manager.

use std::time::Duration;

use crate::docker::preflight::{parse_version, Finding, Status};
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

/// The oldest docker CLI whose stack loader reads stack.yaml's file version, 3.12 (docker/cli's
/// cli/compose/schema/data/config_schema_v3.12.json, first in CLI 25.0): it carries web's
/// `healthcheck.start_interval`, which makes a new task healthy within about a second instead of
/// a whole check interval.
const STACK_FILE_CLI: (u32, u32, u32) = (25, 0, 0);
/// The oldest engine API that runs `start_interval` (API 1.44, Docker Engine 25).
const START_INTERVAL_API: (u32, u32, u32) = (1, 44, 0);

/// Whether this docker CLI can deploy stack.yaml and the manager honours its health checks'
/// start interval: the problem and what to do, or None.
pub(super) fn stack_file_problem(docker: &Docker) -> anyhow::Result<Option<String>> {
    let out = docker
        .call(
            "asking for the docker CLI's and the engine API's versions",
            [
                "version",
                "--format",
                "{{.Client.Version}} {{.Server.APIVersion}}",
            ],
        )
        .timeout(Duration::from_secs(20))
        .output()?;
    let mut words = out.split_whitespace();
    Ok(stack_file_verdict(
        words.next().unwrap_or(""),
        words.next().unwrap_or(""),
    ))
}

/// What is too old to deploy stack.yaml, given the CLI's version and the engine's API version;
/// None when both will do (or cannot be read: docker then says what it refuses).
fn stack_file_verdict(client: &str, api: &str) -> Option<String> {
    match (parse_version(client), parse_version(api)) {
        (Some(cli), _) if cli < STACK_FILE_CLI => Some(format!(
            "docker CLI {client} cannot read stack.yaml (stack file version 3.12): \
             `docker stack deploy` needs CLI 25 or newer"
        )),
        (_, Some(found)) if found < START_INTERVAL_API => Some(format!(
            "the swarm manager's engine API {api} is older than 1.44 (Docker Engine 25): \
             it cannot run web's health check start interval; upgrade the managers' engines"
        )),
        _ => None,
    }
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
        findings.push(match stack_file_problem(docker) {
            Ok(None) => Finding::ok("stack file", "docker CLI 25+ and engine API 1.44+ (stack file 3.12)"),
            Ok(Some(problem)) => Finding::fail(
                "stack file",
                problem,
                "install a docker CLI 25 or newer (Docker's docker-ce-cli) and point it at a manager running Docker Engine 25 or newer",
            ),
            Err(err) => Finding::fail("stack file", format!("{err:#}"), "check the engine"),
        });
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

#[cfg(test)]
mod tests {
    use super::stack_file_verdict;

    #[test]
    fn stack_file_3_12_needs_cli_25_and_api_1_44() {
        assert_eq!(stack_file_verdict("28.2.2", "1.45"), None);
        assert_eq!(stack_file_verdict("25.0.0", "1.44"), None);
        let old_cli = stack_file_verdict("20.10.24+dfsg1", "1.45").unwrap();
        assert!(
            old_cli.contains("docker CLI 20.10.24+dfsg1") && old_cli.contains("CLI 25"),
            "{old_cli}"
        );
        let old_engine = stack_file_verdict("28.2.2", "1.41").unwrap();
        assert!(
            old_engine.contains("API 1.41") && old_engine.contains("Docker Engine 25"),
            "{old_engine}"
        );
        // Unreadable versions: docker itself says what it refuses.
        assert_eq!(stack_file_verdict("", ""), None);
    }
}
