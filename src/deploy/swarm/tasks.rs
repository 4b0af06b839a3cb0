//! The stack's tasks as the manager knows them: `docker service ls`/`ps` and `docker inspect` of
//! each task (its node, its container, its address on the stack's network), read as the
//! containers the checks that Compose and Swarm share work with; and the waits on them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Deserialize;

use super::{Swarm, POLL};
use crate::check::round1;
use crate::docker::{Container, PsEntry, RESTART_KEY_LABEL};
use crate::poll::poll_until;

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

/// `3/3`, `2/3 (max 1 per node)` → (running, desired).
fn parse_replicas(text: &str) -> Option<(u32, u32)> {
    let (running, desired) = text.split_whitespace().next()?.split_once('/')?;
    Some((running.parse().ok()?, desired.parse().ok()?))
}

impl Swarm<'_> {
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
        let mut tasks = parse_tasks(&json.stdout, &self.plan.project, &services, &nodes)?;
        // This engine's tasks first among a service's: the lb that `docker exec` can reach is
        // the one the checks read (an lb runs on every edge node).
        if let Some(local) = nodes.get(self.local_node_id()?) {
            tasks.sort_by_key(|t| (t.service.clone(), t.slot, &t.node != local, t.node.clone()));
        }
        Ok(tasks)
    }

    /// web's replica count as the running service has it, if the stack runs.
    pub fn web_replicas(&self) -> anyhow::Result<Option<u32>> {
        Ok(self
            .services()?
            .get(&self.service_name(&self.plan.web.service))
            .map(|(_, desired)| *desired))
    }

    /// The running container of a one-task service, as this engine sees it, with its restart
    /// key; None when it runs elsewhere, not at all, or on several nodes (an lb on each of
    /// several edge nodes: a reload in place would reach this engine's only, so Swarm updates
    /// them node by node instead).
    pub fn local_container(&self, service: &str) -> anyhow::Result<Option<Container>> {
        let running: Vec<Task> = self
            .tasks()?
            .into_iter()
            .filter(|t| t.service == service && t.state == "running")
            .collect();
        let [task] = running.as_slice() else {
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
    pub fn wait_running(&self, timeout: Duration) -> anyhow::Result<f64> {
        let started = Instant::now();
        let step = self
            .docker
            .printer()
            .step("waiting for every service's tasks to run");
        let expected = self.plan.services().len();
        let mut last = (BTreeMap::new(), Vec::new());
        let all_running = poll_until(timeout, POLL, || {
            let services = self.services()?;
            let waiting: Vec<String> = services
                .iter()
                .filter(|(_, (running, desired))| running != desired || *desired == 0)
                .map(|(name, (running, desired))| format!("{name} {running}/{desired}"))
                .collect();
            if waiting.is_empty() && services.len() == expected {
                return Ok(Some(()));
            }
            step.status(&format!(
                "{} of {expected} services running: waiting for {}",
                services.len() - waiting.len(),
                waiting.join(", ")
            ));
            last = (services, waiting);
            Ok(None)
        })?;
        if all_running.is_some() {
            step.finish();
            return Ok(round1(started.elapsed().as_secs_f64()));
        }
        step.fail();
        let (services, waiting) = last;
        let errors = self.task_errors(&services.into_keys().collect::<Vec<_>>());
        Err(crate::ToolError(format!(
            "stack {}: not every service runs its tasks after {} s: {}{}",
            self.plan.project,
            timeout.as_secs(),
            waiting.join(", "),
            if errors.is_empty() {
                String::new()
            } else {
                format!(
                    "; what the tasks said (a node that cannot pull an image shows here):\n  {}",
                    errors.join("\n  ")
                )
            }
        ))
        .into())
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
    fn replicas_columns() {
        assert_eq!(parse_replicas("3/3"), Some((3, 3)));
        assert_eq!(parse_replicas("1/2 (max 1 per node)"), Some((1, 2)));
        assert_eq!(parse_replicas("global"), None);
    }
}
