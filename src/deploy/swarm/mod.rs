//! The Swarm target: `docker stack deploy` of `stack.yaml` against a manager (the engine docker
//! talks to, `DOCKER_HOST`), with the images built there from compose.yaml and pushed to the
//! spec's registry, from which every node pulls them.
//!
//! Tasks run on any node, and the manager's engine sees only its own containers, so the stack's
//! containers are read as tasks (`docker service ps` + `docker inspect` of each task: its node,
//! its container, its address on the stack's network). consul is pinned to the manager by
//! default and an lb runs on every edge node (every manager by default), so `docker exec` in the
//! manager's lb reaches HAProxy's runtime API and, through the lb's socat, consul's API: neither
//! is published on a Swarm.

pub mod destroy;
pub mod doctor;
pub mod in_place;
pub mod nodes;
pub mod policy;
pub mod push;
pub mod scale;
pub mod state;
pub mod tasks;
pub mod update;

use std::path::PathBuf;
use std::time::Duration;

use crate::docker::{Container, Docker};
use crate::probe::converge::Routed;
use crate::probe::{stats, Endpoints};
use crate::render::RenderedStack;
use crate::secrets::Flavour;
use crate::spec::plan::SwarmTarget;
use crate::spec::Plan;

pub use destroy::DestroyOutcome;
pub use tasks::Task;

/// The label `docker stack deploy` puts on every service, network and volume of a stack.
const NAMESPACE: &str = "com.docker.stack.namespace";
/// The variable the stack file reads web's replica count from, so that apply keeps the count
/// that runs (`replicas: ${PROVISION_WEB_REPLICAS:-N}`).
pub const REPLICAS_VARIABLE: &str = "PROVISION_WEB_REPLICAS";
/// The variable the stack file reads web's update batch from (`apply --batch`): Swarm's
/// `update_config.parallelism`.
pub const BATCH_VARIABLE: &str = "PROVISION_WEB_BATCH";
/// The variable that, set, overrides the lb's image in the stack file: the image the lb runs,
/// when only HAProxy's configuration changed and it is reloaded in place instead. provision
/// always sets it (empty otherwise, which `${VAR:-default}` reads as unset), so a value in the
/// operator's environment never replaces the lb image.
pub const LB_IMAGE_VARIABLE: &str = "PROVISION_LB_IMAGE";
const POLL: Duration = Duration::from_millis(500);

/// Every variable the stack file reads, with provision's value: none is left to the operator's
/// environment.
fn stack_variables(
    replicas: u32,
    batch: u32,
    lb_image: Option<&str>,
) -> [(&'static str, String); 3] {
    [
        (REPLICAS_VARIABLE, replicas.to_string()),
        (BATCH_VARIABLE, batch.max(1).to_string()),
        (LB_IMAGE_VARIABLE, lb_image.unwrap_or_default().to_owned()),
    ]
}

/// One stack on a Swarm.
#[derive(Debug, Clone)]
pub struct Swarm<'a> {
    pub docker: &'a Docker,
    pub plan: &'a Plan,
    pub target: &'a SwarmTarget,
    pub stack_file: PathBuf,
    /// The node id of the engine docker talks to, once asked (`local_node_id`).
    local_node: std::sync::OnceLock<String>,
}

/// The host the lb's host-mode port answers on: the manager's (an edge node by default), which
/// is this machine unless DOCKER_HOST names another over TCP.
pub fn manager_host(docker_host: Option<&str>) -> String {
    docker_host
        .and_then(|h| {
            h.strip_prefix("tcp://")
                .or_else(|| h.strip_prefix("ssh://"))
        })
        .map(|rest| {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            let host = if rest.starts_with('[') {
                rest.split_inclusive(']').next().unwrap_or(rest)
            } else {
                rest.split(':').next().unwrap_or(rest)
            };
            host.trim_end_matches('/').to_owned()
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "127.0.0.1".to_owned())
}

impl<'a> Swarm<'a> {
    pub fn new(docker: &'a Docker, stack: &'a RenderedStack, target: &'a SwarmTarget) -> Self {
        Swarm {
            docker,
            plan: &stack.plan,
            target,
            stack_file: stack.out_dir.join("stack.yaml"),
            local_node: std::sync::OnceLock::new(),
        }
    }

    /// The swarm node id of the engine docker talks to: only its containers are reachable with
    /// `docker exec`.
    pub fn local_node_id(&self) -> anyhow::Result<&str> {
        if let Some(id) = self.local_node.get() {
            return Ok(id);
        }
        let id = self
            .docker
            .call(
                "reading this engine's swarm node id",
                ["info", "--format", "{{.Swarm.NodeID}}"],
            )
            .timeout(Duration::from_secs(30))
            .output()?;
        Ok(self.local_node.get_or_init(|| id.trim().to_owned()))
    }

    /// The full name of one of the stack's services (`hits_web`).
    pub fn service_name(&self, service: &str) -> String {
        format!("{}_{service}", self.plan.project)
    }

    fn namespace_filter(&self) -> String {
        format!("label={NAMESPACE}={}", self.plan.project)
    }

    /// `docker service logs` of one of the stack's services, each line prefixed by its task
    /// and node, handed to `each` as it comes.
    pub fn logs(
        &self,
        service: &str,
        options: &[String],
        each: impl FnMut(&str) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut args = vec!["service".to_owned(), "logs".to_owned()];
        args.extend(options.iter().cloned());
        args.push(self.service_name(service));
        self.docker
            .call(format!("reading the logs of service {service}"), args)
            .each_line(each)
    }

    /// Removes the versions of the app's secrets (`crate::inputs`) that the stack's current
    /// override no longer names: Swarm secrets cannot change, so every new value was a new one,
    /// and an old value should not outlive the apply that replaced it. A secret still in use (a
    /// task not yet replaced) is refused by docker and left for the next apply. Returns how many
    /// were removed.
    pub fn prune_app_secrets(&self) -> anyhow::Result<usize> {
        let current: Vec<String> = crate::inputs::override_file(&self.plan.project, Flavour::Swarm)
            .and_then(|file| std::fs::read_to_string(file).ok())
            .and_then(|text| serde_yaml::from_str::<serde_yaml::Value>(&text).ok())
            .and_then(|doc| doc.get("secrets").and_then(|s| s.as_mapping()).cloned())
            .map(|secrets| {
                secrets
                    .values()
                    .filter_map(|s| s["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let filter = self.namespace_filter();
        let listed = self
            .docker
            .call(
                format!("listing the secrets of stack {}", self.plan.project),
                ["secret", "ls", "--filter", &filter, "--format", "{{.Name}}"],
            )
            .timeout(Duration::from_secs(30))
            .output()?;
        let prefixes = crate::inputs::swarm_secret_prefixes(&self.plan.project);
        let mut removed = 0;
        for name in listed.lines().map(str::trim) {
            if !prefixes.iter().any(|p| name.starts_with(p.as_str()))
                || current.iter().any(|c| c == name)
            {
                continue;
            }
            let out = self
                .docker
                .call(
                    format!("removing the replaced secret {name}"),
                    ["secret", "rm", name],
                )
                .timeout(Duration::from_secs(30))
                .changes_state()
                .output_unchecked()?;
            removed += usize::from(out.success);
        }
        Ok(removed)
    }

    /// Fails unless docker talks to a Swarm manager that, with this docker CLI, can deploy stack.yaml.
    pub fn require_manager(&self) -> anyhow::Result<()> {
        let out = doctor::manager_state(self.docker)?;
        if out != doctor::MANAGER {
            return Err(crate::ToolError(format!(
                "the spec's target is a swarm, but the engine docker talks to is not a swarm \
                 manager (swarm state: {out}): point DOCKER_HOST at a manager, or run `docker swarm init`"
            ))
            .into());
        }
        if let Some(problem) = doctor::stack_file_problem(self.docker)? {
            return Err(crate::ToolError(problem).into());
        }
        Ok(())
    }

    /// Where the lb answers: its host-mode port on the manager.
    pub fn endpoints(&self) -> Endpoints {
        let host = manager_host(std::env::var("DOCKER_HOST").ok().as_deref());
        let runtime = "not published on a swarm: provision reads it with `docker exec` in the lb";
        Endpoints {
            lb: crate::probe::lb_url(self.plan, &host),
            stats_csv: String::new(),
            stats_page: runtime.to_owned(),
            consul: None,
        }
    }

    /// `docker stack deploy --prune` with web at `replicas`, updated `batch` tasks at a time.
    /// Returns at once (detached: CLI 26 and later; older CLIs do not wait anyway);
    /// `wait_updates` and `wait_running` wait.
    pub fn deploy(&self, replicas: u32, batch: u32, lb_image: Option<&str>) -> anyhow::Result<()> {
        let mut args: Vec<String> = [
            "stack",
            "deploy",
            "--prune",
            "--resolve-image",
            "always",
            "--compose-file",
        ]
        .map(str::to_owned)
        .to_vec();
        args.push(self.stack_file.display().to_string());
        // The stack's secrets (`secrets::stack`), merged over stack.yaml: a rotated secret is a
        // new Swarm secret and a changed label, so Swarm updates the services that read it.
        if let Some(overrides) = crate::secrets::stack::Overrides::existing(&self.plan.project) {
            args.push("--compose-file".to_owned());
            args.push(overrides.stack.display().to_string());
        }
        // The app's env file and secrets, from the state directory (`crate::inputs`).
        if let Some(file) = crate::inputs::override_file(&self.plan.project, Flavour::Swarm) {
            args.extend(["--compose-file".to_owned(), file.display().to_string()]);
        }
        args.push(self.plan.project.clone());
        let mut call = self
            .docker
            .call(format!("deploying stack {}", self.plan.project), args)
            .changes_state();
        for (name, value) in stack_variables(replicas, batch, lb_image) {
            call = call.env(name, &value);
        }
        call.run_with_progress()
    }

    /// The image a service's tasks are specified to run (as Swarm resolved it, with its digest).
    pub fn service_image(&self, service: &str) -> anyhow::Result<Option<String>> {
        let out = self
            .docker
            .call(
                format!(
                    "reading the image of service {}",
                    self.service_name(service)
                ),
                [
                    "service",
                    "inspect",
                    "--format",
                    "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
                    self.service_name(service).as_str(),
                ],
            )
            .timeout(Duration::from_secs(30))
            .output_unchecked()?;
        let image = out.stdout.trim();
        Ok((out.success && !image.is_empty()).then(|| image.to_owned()))
    }
}

impl Routed for Swarm<'_> {
    fn plan(&self) -> &Plan {
        self.plan
    }

    fn docker(&self) -> &Docker {
        self.docker
    }

    /// The tasks as containers.
    fn containers(&self) -> anyhow::Result<Vec<Container>> {
        Ok(self
            .tasks()?
            .iter()
            .map(|t| t.to_container(&self.plan.project))
            .collect())
    }

    /// The runtime API in the lb container (nothing is published on a Swarm).
    fn haproxy(&self, lb: Option<String>) -> stats::Source<'_> {
        stats::Source::runtime_only(stats::WEB_BACKEND, self.docker, lb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manager_host_comes_from_a_tcp_docker_host() {
        assert_eq!(manager_host(None), "127.0.0.1");
        assert_eq!(
            manager_host(Some("unix:///var/run/docker.sock")),
            "127.0.0.1"
        );
        assert_eq!(manager_host(Some("tcp://10.1.2.3:2376")), "10.1.2.3");
        assert_eq!(manager_host(Some("ssh://me@mgr.example")), "mgr.example");
        assert_eq!(manager_host(Some("tcp://[fd00::1]:2376")), "[fd00::1]");
    }

    /// The stack file's variables all come from provision: the operator's environment (a stale
    /// `PROVISION_LB_IMAGE`, say) cannot replace the lb image or web's replica count.
    #[test]
    fn every_variable_of_the_stack_file_is_set_by_provision() {
        let stack = include_str!("../../../blueprints/stack.yaml.j2");
        // `$${` is Swarm's escape of a literal `$` (a shell's variable in a health check).
        let read: std::collections::BTreeSet<&str> = stack
            .match_indices("${")
            .filter(|(at, _)| !stack[..*at].ends_with('$'))
            .filter_map(|(at, _)| stack[at + 2..].split([':', '}']).next())
            .collect();
        let set = stack_variables(3, 0, None);
        let names: std::collections::BTreeSet<&str> = set.iter().map(|(n, _)| *n).collect();
        assert_eq!(read, names);
        assert_eq!(
            set[2],
            (LB_IMAGE_VARIABLE, String::new()),
            "empty: the default"
        );
        assert_eq!(set[1].1, "1");
        assert_eq!(stack_variables(3, 2, Some("r/lb:1"))[2].1, "r/lb:1");
    }
}
