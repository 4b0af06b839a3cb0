//! What Swarm says about the stack's services and tasks, for following an update: each
//! service's task template and last `UpdateStatus` (`docker service inspect`), the tasks'
//! lines of `docker service ps`, and one task's log (`docker service logs`, from any node).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use super::Swarm;

/// `UpdateStatus.State` of a service (docker's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    Updating,
    Paused,
    Completed,
    RollbackStarted,
    RollbackPaused,
    RollbackCompleted,
    #[serde(other)]
    Unknown,
}

impl UpdateState {
    /// Swarm is still replacing tasks, forwards or back.
    pub fn in_progress(self) -> bool {
        matches!(self, UpdateState::Updating | UpdateState::RollbackStarted)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UpdateState::Updating => "updating",
            UpdateState::Paused => "paused",
            UpdateState::Completed => "completed",
            UpdateState::RollbackStarted => "rolling back",
            UpdateState::RollbackPaused => "rollback paused",
            UpdateState::RollbackCompleted => "rolled back",
            UpdateState::Unknown => "in an unknown update state",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateStatus {
    pub state: UpdateState,
    #[serde(default)]
    pub started_at: String,
    #[serde(default)]
    pub message: String,
}

/// One service as `docker service inspect` has it: what its tasks run, and its last update.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceState {
    pub(super) task_template: serde_json::Value,
    pub update: Option<UpdateStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawService {
    spec: RawServiceSpec,
    #[serde(default)]
    update_status: Option<UpdateStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawServiceSpec {
    name: String,
    #[serde(default)]
    pub(super) task_template: serde_json::Value,
}

/// Full service name → its state, from `docker service inspect` of the stack's services.
pub fn parse_services(json: &str) -> anyhow::Result<BTreeMap<String, ServiceState>> {
    if json.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let raw: Vec<RawService> =
        serde_json::from_str(json).context("reading `docker service inspect`")?;
    Ok(raw
        .into_iter()
        .map(|s| {
            (
                s.spec.name,
                ServiceState {
                    task_template: s.spec.task_template,
                    update: s.update_status,
                },
            )
        })
        .collect())
}

/// A task line of `docker service ps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLine {
    pub id: String,
    pub name: String,
    pub node: String,
    /// The first word of CURRENT STATE: `Running`, `Starting`, `Failed`, ...
    pub state: String,
    pub error: String,
}

const TASK_FORMAT: &str = "{{.ID}}\t{{.Name}}\t{{.Node}}\t{{.CurrentState}}\t{{.Error}}";

pub(super) fn parse_task_lines(text: &str) -> Vec<TaskLine> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let id = fields.next()?.trim();
            if id.is_empty() {
                return None;
            }
            let name = fields.next().unwrap_or_default();
            let node = fields.next().unwrap_or_default();
            let state = fields.next().unwrap_or_default();
            let error = fields.next().unwrap_or_default();
            Some(TaskLine {
                id: id.to_owned(),
                name: name.to_owned(),
                node: node.to_owned(),
                state: state
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                // `service ps` quotes an error with --no-trunc.
                error: error.trim().trim_matches('"').to_owned(),
            })
        })
        .collect()
}

impl Swarm<'_> {
    /// `docker service inspect` of the stack's services.
    pub(super) fn service_states(&self) -> anyhow::Result<BTreeMap<String, ServiceState>> {
        let names: Vec<String> = self.services()?.into_keys().collect();
        if names.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut args = vec!["service".to_owned(), "inspect".into()];
        args.extend(names);
        let json = self
            .docker
            .call("inspecting the stack's services", args)
            .timeout(Duration::from_secs(30))
            .output()?;
        parse_services(&json)
    }

    /// `docker service ps` of `services`, every task or only those meant to run.
    pub(super) fn task_lines(
        &self,
        services: &[String],
        desired_running: bool,
    ) -> anyhow::Result<Vec<TaskLine>> {
        if services.is_empty() {
            return Ok(Vec::new());
        }
        let mut args: Vec<String> = ["service", "ps", "--no-trunc", "--format", TASK_FORMAT]
            .map(str::to_owned)
            .to_vec();
        if desired_running {
            args.extend(["--filter".to_owned(), "desired-state=running".to_owned()]);
        }
        args.extend(services.iter().cloned());
        let out = self
            .docker
            .call("listing the services' tasks", args)
            .timeout(Duration::from_secs(30))
            .output()?;
        Ok(parse_task_lines(&out))
    }

    /// The last lines of one task's log, wherever it ran (none when the log cannot be read).
    pub(super) fn task_log(&self, task_id: &str) -> Vec<String> {
        let out = self
            .docker
            .call(
                format!("reading the log of task {task_id}"),
                ["service", "logs", "--tail", "12", "--raw", task_id],
            )
            .timeout(Duration::from_secs(20))
            .output_unchecked();
        match out {
            // gunicorn and the health check write to stderr, kept after stdout.
            Ok(out) if out.success => format!("{}{}", out.stdout, out.stderr)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_lines_keep_the_error_without_quotes() {
        let text = "tspm6\thits_web.1\tnode2\tFailed 5 seconds ago\t\"task: non-zero exit (137): dockerexec: unhealthy container\"\n\
                    909d8\thits_web.1\tnode1\tRunning 22 seconds ago\t\n";
        let lines = parse_task_lines(text);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].state, "Failed");
        assert_eq!(
            lines[0].error,
            "task: non-zero exit (137): dockerexec: unhealthy container"
        );
        assert_eq!(
            (lines[1].state.as_str(), lines[1].error.as_str()),
            ("Running", "")
        );
    }
}
