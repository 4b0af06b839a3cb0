//! The Swarm target: `docker stack deploy` of `stack.yaml` against a manager (the engine docker
//! talks to, `DOCKER_HOST`), with the images built there from compose.yaml and pushed to the
//! spec's registry, from which every node pulls them.
//!
//! Tasks run on any node, and the manager's engine sees only its own containers, so the stack's
//! containers are read as tasks (`docker service ps` + `docker inspect` of each task: its node,
//! its container, its address on the stack's network). consul and the lb are pinned to the
//! manager by default, so `docker exec` reaches HAProxy's runtime API and, through the lb's socat,
//! consul's API: neither is published on a Swarm.

pub mod policy;
pub mod state;
pub mod update;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Deserialize;

use super::Deployment;
use crate::check::round1;
use crate::docker::preflight::{Finding, Status};
use crate::docker::{Container, Docker, PsEntry, RESTART_KEY_LABEL};
use crate::probe::Endpoints;
use crate::render::RenderedStack;
use crate::report::ScaleAction;
use crate::scaling::wait_routed;
use crate::spec::plan::SwarmTarget;
use crate::spec::Plan;

/// The label `docker stack deploy` puts on every service, network and volume of a stack.
const NAMESPACE: &str = "com.docker.stack.namespace";
/// The variable the stack file reads web's replica count from, so that apply keeps the count
/// that runs (`replicas: ${PROVISION_WEB_REPLICAS:-N}`).
pub const REPLICAS_VARIABLE: &str = "PROVISION_WEB_REPLICAS";
/// The variable the stack file reads web's update batch from (`apply --batch`): Swarm's
/// `update_config.parallelism`.
pub const BATCH_VARIABLE: &str = "PROVISION_WEB_BATCH";
/// The variable that, set, overrides the lb's image in the stack file: the image the lb runs,
/// when only HAProxy's configuration changed and it is reloaded in place instead.
pub const LB_IMAGE_VARIABLE: &str = "PROVISION_LB_IMAGE";
const POLL: Duration = Duration::from_millis(500);

/// One stack on a Swarm.
#[derive(Debug, Clone)]
pub struct Swarm<'a> {
    pub docker: &'a Docker,
    pub plan: &'a Plan,
    pub target: &'a SwarmTarget,
    pub stack_file: PathBuf,
}

/// One task of the stack, as the manager knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: String,
    /// The stack's service name without the stack's prefix (`web`).
    pub service: String,
    /// 0 for a global service's tasks.
    pub slot: u32,
    /// The node's hostname.
    pub node: String,
    /// `running`, `starting`, `preparing`, `shutdown`, ...
    pub state: String,
    pub container_id: String,
    pub ip: Option<String>,
    pub timestamp: String,
    pub image: String,
}

impl Task {
    /// The container id once the task has one.
    fn container_or_task_id(&self) -> &str {
        if self.container_id.is_empty() {
            &self.id
        } else {
            &self.container_id
        }
    }

    /// The task as `status` lists it, with its node.
    pub fn to_ps_entry(&self, project: &str) -> PsEntry {
        let container = self.to_container(project);
        PsEntry {
            id: container.short_id,
            name: container.name,
            service: self.service.clone(),
            state: self.state.clone(),
            health: String::new(),
            status: String::new(),
            exit_code: 0,
            node: self.node.clone(),
        }
    }

    /// The task as a container of the stack, for the checks that Compose and Swarm share.
    pub fn to_container(&self, project: &str) -> Container {
        let id = self.container_or_task_id().to_owned();
        let short: String = id.chars().take(12).collect();
        Container {
            short_id: short.clone(),
            name: if self.slot > 0 {
                format!("{project}_{}.{}", self.service, self.slot)
            } else {
                format!("{project}_{}@{}", self.service, self.node)
            },
            project: project.to_owned(),
            service: self.service.clone(),
            number: self.slot,
            oneoff: false,
            running: self.state == "running",
            state: self.state.clone(),
            health: None,
            // Swarm names a task's container host after the container's short id.
            hostname: short,
            ip: self.ip.clone(),
            started_at: self.timestamp.clone(),
            image: self.image.clone(),
            image_id: String::new(),
            config_label: None,
            restart_key: None,
            id,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawTask {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "ServiceID")]
    service_id: String,
    #[serde(default)]
    slot: u32,
    #[serde(rename = "NodeID", default)]
    node_id: String,
    status: RawStatus,
    #[serde(default)]
    networks_attachments: Option<Vec<RawAttachment>>,
    #[serde(default)]
    spec: Option<RawSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawStatus {
    #[serde(default)]
    timestamp: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    container_status: Option<RawContainerStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawContainerStatus {
    #[serde(rename = "ContainerID", default)]
    container_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawAttachment {
    network: RawNetwork,
    #[serde(default)]
    addresses: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawNetwork {
    spec: RawNetworkSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawNetworkSpec {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawSpec {
    #[serde(default)]
    container_spec: Option<RawContainerSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawContainerSpec {
    #[serde(default)]
    image: String,
}

/// Parses `docker inspect` of tasks. `services` maps service ids to full service names,
/// `nodes` node ids to hostnames; the address is the one on `<project>_default`.
pub fn parse_tasks(
    json: &str,
    project: &str,
    services: &BTreeMap<String, String>,
    nodes: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<Task>> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let raw: Vec<RawTask> =
        serde_json::from_str(json).context("reading `docker inspect` of tasks")?;
    let network = format!("{project}_default");
    let prefix = format!("{project}_");
    let mut tasks: Vec<Task> = raw
        .into_iter()
        .map(|t| {
            let service = services
                .get(&t.service_id)
                .map(|name| name.strip_prefix(&prefix).unwrap_or(name).to_owned())
                .unwrap_or_else(|| t.service_id.clone());
            let ip = t
                .networks_attachments
                .unwrap_or_default()
                .into_iter()
                .find(|a| a.network.spec.name == network)
                .and_then(|a| a.addresses.into_iter().next())
                .map(|cidr| cidr.split('/').next().unwrap_or_default().to_owned());
            Task {
                node: nodes.get(&t.node_id).cloned().unwrap_or(t.node_id),
                service,
                slot: t.slot,
                state: t.status.state,
                container_id: t
                    .status
                    .container_status
                    .map(|c| c.container_id)
                    .unwrap_or_default(),
                ip,
                timestamp: t.status.timestamp,
                image: t
                    .spec
                    .and_then(|s| s.container_spec)
                    .map(|c| c.image)
                    .unwrap_or_default(),
                id: t.id,
            }
        })
        .collect();
    tasks.sort_by(|a, b| (&a.service, a.slot, &a.node).cmp(&(&b.service, b.slot, &b.node)));
    Ok(tasks)
}

/// `ID NAME` lines (of `docker service ls` or `docker node ls`) as a map.
fn id_map(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, name)| (id.trim().to_owned(), name.trim().to_owned()))
        .collect()
}

/// The host the lb's host-mode port answers on: the manager's (the lb is pinned there), which
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

/// `3/3`, `2/3 (max 1 per node)` → (running, desired).
fn parse_replicas(text: &str) -> Option<(u32, u32)> {
    let (running, desired) = text.split_whitespace().next()?.split_once('/')?;
    Some((running.parse().ok()?, desired.parse().ok()?))
}

impl<'a> Swarm<'a> {
    pub fn new(docker: &'a Docker, stack: &'a RenderedStack, target: &'a SwarmTarget) -> Self {
        Swarm {
            docker,
            plan: &stack.plan,
            target,
            stack_file: stack.out_dir.join("stack.yaml"),
        }
    }

    /// The full name of one of the stack's services (`hits_web`).
    pub fn service_name(&self, service: &str) -> String {
        format!("{}_{service}", self.plan.project)
    }

    fn namespace_filter(&self) -> String {
        format!("label={NAMESPACE}={}", self.plan.project)
    }

    /// Fails unless docker talks to a Swarm manager.
    pub fn require_manager(&self) -> anyhow::Result<()> {
        let out = manager_state(self.docker)?;
        if out != MANAGER {
            return Err(crate::ToolError(format!(
                "the spec's target is a swarm, but the engine docker talks to is not a swarm \
                 manager (swarm state: {out}): point DOCKER_HOST at a manager, or run `docker swarm init`"
            ))
            .into());
        }
        Ok(())
    }

    /// The stack's services: full name → (running, desired) tasks.
    pub fn services(&self) -> anyhow::Result<BTreeMap<String, (u32, u32)>> {
        let filter = self.namespace_filter();
        let out = self
            .docker
            .call(
                format!("listing the services of stack {}", self.plan.project),
                [
                    "service",
                    "ls",
                    "--filter",
                    filter.as_str(),
                    "--format",
                    "{{.Name}} {{.Replicas}}",
                ],
            )
            .timeout(Duration::from_secs(30))
            .output()?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter_map(|(name, replicas)| Some((name.to_owned(), parse_replicas(replicas)?)))
            .collect())
    }

    /// The tasks meant to run (desired state `running`), with their node and address.
    pub fn tasks(&self) -> anyhow::Result<Vec<Task>> {
        let names: Vec<String> = self.services()?.into_keys().collect();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let listing = |summary: &str, head: &[&str]| -> anyhow::Result<String> {
            let mut args: Vec<String> = head.iter().map(|a| (*a).to_owned()).collect();
            args.extend(names.iter().cloned());
            self.docker
                .call(summary.to_owned(), args)
                .timeout(Duration::from_secs(30))
                .output()
        };
        // Tasks name their service by its full id, which `service ls` shortens.
        let services = id_map(&listing(
            "reading the stack's service ids",
            &["service", "inspect", "--format", "{{.ID}} {{.Spec.Name}}"],
        )?);
        let ids = listing(
            "listing the stack's tasks",
            &[
                "service",
                "ps",
                "--quiet",
                "--no-trunc",
                "--filter",
                "desired-state=running",
            ],
        )?;
        let mut ids: Vec<&str> = ids.split_whitespace().collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec!["inspect", "--type", "task"];
        args.extend(&ids);
        // A task removed between `ps` and `inspect` fails for that id only.
        let json = self
            .docker
            .call("inspecting the stack's tasks", args)
            .timeout(Duration::from_secs(30))
            .output_unchecked()?;
        let nodes = id_map(
            &self
                .docker
                .call(
                    "listing the swarm's nodes",
                    ["node", "ls", "--format", "{{.ID}} {{.Hostname}}"],
                )
                .timeout(Duration::from_secs(30))
                .output()?,
        );
        parse_tasks(&json.stdout, &self.plan.project, &services, &nodes)
    }

    /// The tasks as containers.
    pub fn containers(&self) -> anyhow::Result<Vec<Container>> {
        Ok(self
            .tasks()?
            .iter()
            .map(|t| t.to_container(&self.plan.project))
            .collect())
    }

    pub fn endpoints(&self) -> Endpoints {
        let host = manager_host(std::env::var("DOCKER_HOST").ok().as_deref());
        let runtime = "not published on a swarm: provision reads it with `docker exec` in the lb";
        Endpoints {
            lb: format!("http://{host}:{}/", self.plan.lb.port),
            stats_csv: String::new(),
            stats_page: runtime.to_owned(),
            consul: None,
        }
    }

    /// web's replica count as the running service has it, if the stack runs.
    pub fn web_replicas(&self) -> anyhow::Result<Option<u32>> {
        Ok(self
            .services()?
            .get(&self.service_name(&self.plan.web.service))
            .map(|(_, desired)| *desired))
    }

    /// Whether the registry already has `image` (`host[:port]/path:tag`), asked through its
    /// HTTP API; None when it cannot be asked (then the image is pushed, which is idempotent).
    pub fn registry_has(image: &str) -> Option<bool> {
        let (host, rest) = image.split_once('/')?;
        let (path, tag) = rest.rsplit_once(':')?;
        let url = format!("http://{host}/v2/{path}/manifests/{tag}");
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(5))
            .build();
        match agent
            .head(&url)
            .set(
                "Accept",
                "application/vnd.docker.distribution.manifest.v2+json, \
                 application/vnd.oci.image.manifest.v1+json, \
                 application/vnd.oci.image.index.v1+json, \
                 application/vnd.docker.distribution.manifest.list.v2+json",
            )
            .call()
        {
            Ok(_) => Some(true),
            Err(ureq::Error::Status(404, _)) => Some(false),
            Err(_) => None,
        }
    }

    /// Tags each built image with the registry and pushes the ones the registry lacks.
    /// Returns the pushed names.
    pub fn push(&self, built: &[(String, String)]) -> anyhow::Result<Vec<String>> {
        let mut pushed = Vec::new();
        for (_, local) in built {
            let remote = self.target.remote_image(local);
            if !self.docker.is_dry_run() && Self::registry_has(&remote) == Some(true) {
                continue;
            }
            self.docker
                .call(
                    format!("tagging {local} as {remote}"),
                    ["tag", local, &remote],
                )
                .changes_state()
                .output()?;
            self.docker
                .call(format!("pushing {remote}"), ["push", remote.as_str()])
                .changes_state()
                .run_with_progress()?;
            pushed.push(remote);
        }
        Ok(pushed)
    }

    /// `docker stack deploy --prune` with web at `replicas`, updated `batch` tasks at a time.
    /// Returns at once (detached: CLI 26 and later; older CLIs do not wait anyway);
    /// `wait_updates` and `wait_running` wait.
    pub fn deploy(&self, replicas: u32, batch: u32, lb_image: Option<&str>) -> anyhow::Result<()> {
        let file = self.stack_file.display().to_string();
        let mut call = self
            .docker
            .call(
                format!("deploying stack {}", self.plan.project),
                [
                    "stack",
                    "deploy",
                    "--prune",
                    "--resolve-image",
                    "always",
                    "--compose-file",
                    file.as_str(),
                    self.plan.project.as_str(),
                ],
            )
            .env(REPLICAS_VARIABLE, &replicas.to_string())
            .env(BATCH_VARIABLE, &batch.max(1).to_string());
        if let Some(image) = lb_image {
            call = call.env(LB_IMAGE_VARIABLE, image);
        }
        call.changes_state().run_with_progress()
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

    /// The running container of a one-task service, as this engine sees it (the lb is pinned to
    /// the manager), with its restart key; None when it runs elsewhere or not at all.
    pub fn local_container(&self, service: &str) -> anyhow::Result<Option<Container>> {
        let Some(task) = self
            .tasks()?
            .into_iter()
            .find(|t| t.service == service && t.state == "running")
        else {
            return Ok(None);
        };
        let format = format!("{{{{index .Config.Labels {RESTART_KEY_LABEL:?}}}}}");
        let out = self
            .docker
            .call(
                format!("reading the labels of {service}'s container"),
                [
                    "inspect",
                    "--format",
                    format.as_str(),
                    task.container_id.as_str(),
                ],
            )
            .timeout(Duration::from_secs(30))
            .output_unchecked()?;
        if !out.success {
            return Ok(None);
        }
        let key = out.stdout.trim();
        let mut container = task.to_container(&self.plan.project);
        container.restart_key = (!key.is_empty() && key != "<no value>").then(|| key.to_owned());
        Ok(Some(container))
    }

    /// Polls until every service of the stack runs all its desired tasks.
    pub fn wait_running(&self, timeout: u64) -> anyhow::Result<f64> {
        let started = Instant::now();
        let step = self
            .docker
            .printer()
            .step("waiting for every service's tasks to run");
        loop {
            let services = self.services()?;
            let waiting: Vec<String> = services
                .iter()
                .filter(|(_, (running, desired))| running != desired || *desired == 0)
                .map(|(name, (running, desired))| format!("{name} {running}/{desired}"))
                .collect();
            let expected = self.plan.services().len();
            if waiting.is_empty() && services.len() == expected {
                step.finish();
                return Ok(round1(started.elapsed().as_secs_f64()));
            }
            step.status(&format!(
                "{} of {expected} services running: waiting for {}",
                services.len() - waiting.len(),
                waiting.join(", ")
            ));
            if started.elapsed() >= Duration::from_secs(timeout) {
                step.fail();
                let errors = self.task_errors(&services.into_keys().collect::<Vec<_>>());
                return Err(crate::ToolError(format!(
                    "stack {}: not every service runs its tasks after {timeout} s: {}{}",
                    self.plan.project,
                    waiting.join(", "),
                    if errors.is_empty() {
                        String::new()
                    } else {
                        format!("; what the tasks said (a node that cannot pull an image shows here):\n  {}", errors.join("\n  "))
                    }
                ))
                .into());
            }
            std::thread::sleep(POLL);
        }
    }

    /// The distinct errors of the services' tasks, with the node each happened on (`docker
    /// service ps` keeps the last few tasks of each slot, failed ones included).
    fn task_errors(&self, services: &[String]) -> Vec<String> {
        let mut args = vec![
            "service".to_owned(),
            "ps".into(),
            "--no-trunc".into(),
            "--format".into(),
            "{{.Node}}: {{.Name}}: {{.Error}}".into(),
        ];
        args.extend(services.iter().cloned());
        let out = self
            .docker
            .call("reading the tasks' errors", args)
            .timeout(Duration::from_secs(30))
            .output()
            .unwrap_or_default();
        let mut errors: Vec<String> = out
            .lines()
            .filter(|l| !l.trim_end().ends_with(':'))
            .map(|l| match l.strip_prefix(": ") {
                Some(unplaced) => format!("(no node): {unplaced}"),
                None => l.to_owned(),
            })
            .collect();
        errors.sort();
        errors.dedup();
        errors
    }

    /// Scales web in batches with `docker service scale`, each batch routed before the next.
    /// Going down, Swarm takes the leaving tasks out of DNS before it stops them, and each
    /// replica drains itself (HAProxy re-resolves every second and retries a refused request
    /// on another server).
    pub fn scale_web(
        &self,
        deployment: &Deployment<'_>,
        n: u32,
        timeout: u64,
        batch: u32,
    ) -> anyhow::Result<ScaleAction> {
        let started = Instant::now();
        let from = self.web_replicas()?.unwrap_or(0);
        let mut action = ScaleAction::new(from, n);
        let service = self.service_name(&self.plan.web.service);
        let mut current = from;
        let batch = batch.max(1);
        while current != n && action.error.is_none() {
            let next = if n > current {
                (current + batch).min(n)
            } else {
                current.saturating_sub(batch).max(n)
            };
            action.batches += 1;
            let scale = format!("{service}={next}");
            if let Err(err) = self
                .docker
                .call(
                    format!("scaling web {current} -> {next}"),
                    ["service", "scale", "--detach", scale.as_str()],
                )
                .changes_state()
                .output()
            {
                action.error = Some(format!("{err:#}"));
                break;
            }
            current = next;
            if self.docker.is_dry_run() {
                continue;
            }
            if let Err(err) = self.wait_tasks(&service, next, timeout) {
                action.error = Some(format!("{err:#}"));
                break;
            }
            let routed = wait_routed(deployment, timeout)?;
            if !routed.converged {
                action.error = Some(format!(
                    "web {next}: not every replica was routed after {} s: {}",
                    routed.seconds,
                    routed.last_problem.unwrap_or_default()
                ));
            }
        }
        action.seconds = round1(started.elapsed().as_secs_f64());
        Ok(action)
    }

    /// Waits until `service` runs exactly `n` tasks and no task it is stopping is left running.
    fn wait_tasks(&self, service: &str, n: u32, timeout: u64) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let tasks = self.tasks()?;
            let web: Vec<&Task> = tasks
                .iter()
                .filter(|t| t.service == self.plan.web.service)
                .collect();
            let running = web.iter().filter(|t| t.state == "running").count() as u32;
            let (_, desired) = self.services()?.get(service).copied().unwrap_or_default();
            if running == n && web.len() as u32 == n && desired == n {
                return Ok(());
            }
            if started.elapsed() >= Duration::from_secs(timeout) {
                anyhow::bail!("{service}: {running} of {n} tasks running after {timeout} s");
            }
            std::thread::sleep(POLL);
        }
    }

    /// `docker stack rm`, then waits until the stack's services and networks are gone (its
    /// tasks stop a few seconds after `rm` returns). Named volumes stay unless `volumes`; they
    /// live on the nodes that ran the tasks (redis: the node it is pinned to, by default the
    /// manager, whose volumes are listed and removed here).
    pub fn destroy(&self, volumes: bool, timeout: u64) -> anyhow::Result<DestroyOutcome> {
        let tasks = self.tasks()?;
        let list_volumes = || -> anyhow::Result<Vec<String>> {
            let filter = self.namespace_filter();
            Ok(self
                .docker
                .call(
                    format!("listing the volumes of stack {}", self.plan.project),
                    ["volume", "ls", "--quiet", "--filter", filter.as_str()],
                )
                .timeout(Duration::from_secs(30))
                .output()?
                .split_whitespace()
                .map(str::to_owned)
                .collect())
        };
        let found_volumes = list_volumes()?;
        self.docker
            .call(
                format!("removing stack {}", self.plan.project),
                ["stack", "rm", self.plan.project.as_str()],
            )
            .changes_state()
            .run_with_progress()?;
        let started = Instant::now();
        let step = self
            .docker
            .printer()
            .step("waiting for the stack's networks to go");
        let filter = self.namespace_filter();
        loop {
            let networks = self
                .docker
                .call(
                    "listing the stack's networks",
                    ["network", "ls", "--quiet", "--filter", filter.as_str()],
                )
                .timeout(Duration::from_secs(30))
                .output()?;
            let containers = self
                .docker
                .call(
                    "listing the stack's containers on the manager",
                    ["ps", "--all", "--quiet", "--filter", filter.as_str()],
                )
                .timeout(Duration::from_secs(30))
                .output()?;
            if self.docker.is_dry_run()
                || (networks.trim().is_empty()
                    && containers.trim().is_empty()
                    && self.services()?.is_empty())
            {
                step.finish();
                break;
            }
            if started.elapsed() >= Duration::from_secs(timeout) {
                step.fail();
                anyhow::bail!(
                    "stack {}: networks or containers still there {timeout} s after `docker stack rm`",
                    self.plan.project
                );
            }
            std::thread::sleep(POLL);
        }
        if volumes && !found_volumes.is_empty() {
            let mut args = vec!["volume", "rm"];
            args.extend(found_volumes.iter().map(String::as_str));
            self.docker
                .call("removing the stack's volumes", args)
                .changes_state()
                .output()?;
        }
        Ok(DestroyOutcome {
            tasks: tasks.len(),
            volumes: found_volumes,
            seconds: round1(started.elapsed().as_secs_f64()),
        })
    }
}

/// `manager_state` of an engine that is a swarm manager.
const MANAGER: &str = "active true";

/// The engine's swarm state and whether it is a manager: `active true` on a manager.
fn manager_state(docker: &Docker) -> anyhow::Result<String> {
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

/// What `destroy` removed.
#[derive(Debug, Clone, PartialEq)]
pub struct DestroyOutcome {
    pub tasks: usize,
    pub volumes: Vec<String>,
    /// From `stack rm` until its networks were gone.
    pub seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASKS: &str = r#"[
      {"ID":"ypo26l1xbcrj","ServiceID":"ybld7gkqrm939ssy1540h7b37","Slot":2,"NodeID":"t18a",
       "Status":{"Timestamp":"2026-11-26T04:43:04.6Z","State":"running",
                 "ContainerStatus":{"ContainerID":"b1b69b62aa9abb73a3ad3dadf6a6a27b"}},
       "Spec":{"ContainerSpec":{"Image":"127.0.0.1:5000/hits-web:0123@sha256:ab"}},
       "NetworksAttachments":[
         {"Network":{"Spec":{"Name":"ingress"}},"Addresses":["10.0.0.9/24"]},
         {"Network":{"Spec":{"Name":"hits_default"}},"Addresses":["10.0.1.2/24"]}]},
      {"ID":"q1","ServiceID":"reg","NodeID":"yzev","Status":{"State":"preparing"}}
    ]"#;

    #[test]
    fn tasks_carry_their_node_container_and_address() {
        let services = BTreeMap::from([
            (
                "ybld7gkqrm939ssy1540h7b37".to_owned(),
                "hits_web".to_owned(),
            ),
            ("reg".to_owned(), "hits_registrator".to_owned()),
        ]);
        let nodes = BTreeMap::from([("t18a".to_owned(), "node1".to_owned())]);
        let tasks = parse_tasks(TASKS, "hits", &services, &nodes).unwrap();
        let web = &tasks[1];
        assert_eq!((web.service.as_str(), web.slot), ("web", 2));
        assert_eq!(web.node, "node1");
        assert_eq!(web.ip.as_deref(), Some("10.0.1.2"));
        let c = web.to_container("hits");
        assert_eq!(c.name, "hits_web.2");
        assert_eq!(c.hostname, "b1b69b62aa9a");
        assert!(c.running);
        let reg = tasks[0].to_container("hits");
        assert_eq!(
            reg.name, "hits_registrator@yzev",
            "an unknown node keeps its id"
        );
        assert_eq!(reg.id, "q1", "no container yet: the task's id");
        assert!(!reg.running && reg.ip.is_none());
    }

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

    #[test]
    fn replicas_columns() {
        assert_eq!(parse_replicas("3/3"), Some((3, 3)));
        assert_eq!(parse_replicas("1/2 (max 1 per node)"), Some((1, 2)));
        assert_eq!(parse_replicas("global"), None);
    }
}
