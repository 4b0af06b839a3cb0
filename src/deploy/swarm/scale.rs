//! Scaling web on a Swarm: `docker service scale` in batches, each batch's tasks running and
//! routed before the next.

use std::time::{Duration, Instant};

use super::tasks::Task;
use super::{Swarm, POLL};
use crate::check::round1;
use crate::deploy::scale::ScaleAction;
use crate::poll::poll_until;
use crate::probe::converge::wait_routed;

impl Swarm<'_> {
    /// Scales web in batches with `docker service scale`, each batch routed before the next.
    /// Going down, Swarm takes the leaving tasks out of DNS before it stops them, and each
    /// replica drains itself (HAProxy re-resolves every 500 ms and retries a refused request
    /// on another server).
    pub fn scale_web(&self, n: u32, timeout: Duration, batch: u32) -> anyhow::Result<ScaleAction> {
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
            let routed = wait_routed(self, timeout)?;
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
    fn wait_tasks(&self, service: &str, n: u32, timeout: Duration) -> anyhow::Result<()> {
        let mut running = 0;
        let done = poll_until(timeout, POLL, || {
            let tasks = self.tasks()?;
            let web: Vec<&Task> = tasks
                .iter()
                .filter(|t| t.service == self.plan.web.service)
                .collect();
            running = web.iter().filter(|t| t.state == "running").count() as u32;
            let (_, desired) = self.services()?.get(service).copied().unwrap_or_default();
            Ok((running == n && web.len() as u32 == n && desired == n).then_some(()))
        })?;
        if done.is_none() {
            anyhow::bail!(
                "{service}: {running} of {n} tasks running after {} s",
                timeout.as_secs()
            );
        }
        Ok(())
    }
}
