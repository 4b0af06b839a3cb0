//! Removing a stack from a Swarm: `docker stack rm`, then a wait until its services, networks and
//! containers are gone, and its volumes on the manager when asked.

use std::time::{Duration, Instant};

use super::{Swarm, POLL};
use crate::check::round1;
use crate::poll::poll_until;

impl Swarm<'_> {
    /// `docker stack rm`, then waits until the stack's services, networks and tasks are gone
    /// on every node (its tasks stop a few seconds after `rm` returns). Named volumes stay unless `volumes`; they
    /// live on the nodes that ran the tasks (redis: the node it is pinned to, by default the
    /// manager, whose volumes are listed and removed here).
    pub fn destroy(&self, volumes: bool, timeout: Duration) -> anyhow::Result<DestroyOutcome> {
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
        // `docker stack rm` removes the services, then at once the networks: a network whose
        // tasks are still stopping (on any node) is "in use by task" and left behind, and the
        // CLI exits 1 (seen in a CI run after a rolled-back update). The stack is still going
        // away, so the leftover is removed below once its services are gone, and only a stack
        // that is not gone within the timeout is an error.
        let first_rm = self
            .docker
            .call(
                format!("removing stack {}", self.plan.project),
                ["stack", "rm", self.plan.project.as_str()],
            )
            .changes_state()
            .run_with_progress();
        if let Err(err) = &first_rm {
            self.docker.printer().note(format!(
                "`docker stack rm` left something behind ({err:#}); removing it again once the \
                 services are gone"
            ));
        }
        let started = Instant::now();
        let step = self
            .docker
            .printer()
            .step("waiting for the stack's networks to go");
        let filter = self.namespace_filter();
        let gone = poll_until(timeout, POLL, || {
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
            let services_gone = self.services()?.is_empty();
            // A task stopping on another node stays in the swarm's task list until that node
            // says it ended (a replica deregistering from a consul that is gone waits for its
            // request's timeout): the stack is gone when no task is listed on any node.
            // `docker stack ps` exits 1 once nothing is left ("nothing found in stack").
            let tasks = self
                .docker
                .call(
                    "listing the stack's tasks on every node",
                    ["stack", "ps", "--quiet", self.plan.project.as_str()],
                )
                .timeout(Duration::from_secs(30))
                .output_unchecked()?;
            let tasks_gone = tasks.stdout.trim().is_empty();
            if first_rm.is_err() && services_gone && !networks.trim().is_empty() {
                // Idempotent: with the services gone it removes what is left, the networks.
                // A network still in use fails again, and the next poll tries again.
                let _ = self
                    .docker
                    .call(
                        format!("removing what is left of stack {}", self.plan.project),
                        ["stack", "rm", self.plan.project.as_str()],
                    )
                    .changes_state()
                    .timeout(Duration::from_secs(30))
                    .output();
            }
            Ok((self.docker.is_dry_run()
                || (networks.trim().is_empty()
                    && containers.trim().is_empty()
                    && services_gone
                    && tasks_gone))
                .then_some(()))
        })?;
        if gone.is_none() {
            step.fail();
            let first = first_rm
                .err()
                .map(|e| format!(": {e:#}"))
                .unwrap_or_default();
            anyhow::bail!(
                "stack {}: networks, containers or tasks still there {} s after `docker stack rm`{first}",
                self.plan.project,
                timeout.as_secs()
            );
        }
        step.finish();
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

/// What `destroy` removed.
#[derive(Debug, Clone, PartialEq)]
pub struct DestroyOutcome {
    pub tasks: usize,
    pub volumes: Vec<String>,
    /// From `stack rm` until its networks were gone.
    pub seconds: f64,
}
