//! Changing the number of web replicas gently: in batches, each batch routed before the next,
//! and draining the replicas that go away before they stop.
//!
//! Starting many replicas at once starves the ones that serve (on 2 cores, 49 gunicorns and
//! their registrations at once made requests time out), so replicas come and go `batch` at a
//! time. A replica counts only once the load balancer routes to it (HAProxy's health check
//! passed, and consul lists it passing where there is a registry): Docker's own health check is
//! rare on purpose (it costs an exec per replica), so nothing here waits on it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::check::round1;
use crate::deploy::Deployment;
use crate::docker::{Compose, Container, Docker, UpOptions};
use crate::probe::converge::{self, Convergence, Target};
use crate::probe::registry::ServiceQuery;
use crate::probe::{lbadmin, stats, Endpoints};
use crate::report::ScaleAction;
use crate::spec::{Plan, Service};

/// The HAProxy backend the blueprints route web through.
pub const BACKEND: &str = "web";
/// Between putting replicas into maintenance and stopping them: lets requests in flight finish
/// (the e2e tests scale down and roll under 50 req/s and require 0 failed requests).
const DRAIN_PAUSE: Duration = Duration::from_secs(1);

/// Replicas started or stopped at once when no `--batch` is given: two per core keeps a 2-core
/// machine serving while new gunicorns start (each start costs about half a core-second).
pub fn default_batch() -> u32 {
    batch_for(std::thread::available_parallelism().ok())
}

/// [`default_batch`] on a machine with `cores` (unknown: taken as 2).
fn batch_for(cores: Option<std::num::NonZeroUsize>) -> u32 {
    let cores = cores.map_or(2, |n| u32::try_from(n.get()).unwrap_or(u32::MAX / 2));
    2 * cores
}

/// Everything a scale step works with (on one Docker host: a Swarm scales in `deploy/swarm.rs`).
pub struct Scaler<'a> {
    pub deployment: &'a Deployment<'a>,
    pub docker: &'a Docker,
    pub compose: &'a Compose<'a>,
    pub plan: &'a Plan,
    pub endpoints: &'a Endpoints,
    /// Seconds each batch may take to be routed.
    pub timeout: u64,
    pub batch: u32,
}

impl Scaler<'_> {
    /// Scales web from what runs now to `n`. Returns what was done; a batch that did not
    /// converge in time stops the scale and is reported in `error` (the checks say the rest).
    pub fn scale_to(&self, n: u32) -> anyhow::Result<ScaleAction> {
        let started = Instant::now();
        let containers = self.docker.project_containers(&self.plan.project)?;
        let web = web_of(&containers, self.plan);
        let from = web.len() as u32;
        let batch = self.batch.max(1);
        let mut action = ScaleAction::new(from, n);
        if n < from {
            self.scale_down(web, n, batch, &mut action)?;
        } else {
            let mut current = from;
            while current < n && action.error.is_none() {
                let next = (current + batch).min(n);
                action.batches += 1;
                action.error = self.start_batch(current, next, &mut action.first_up)?;
                current = next;
            }
        }
        action.seconds = round1(started.elapsed().as_secs_f64());
        Ok(action)
    }

    /// Starts replicas up to `next` and waits until the load balancer routes to all of them.
    fn start_batch(
        &self,
        current: u32,
        next: u32,
        first_up: &mut BTreeMap<String, Instant>,
    ) -> anyhow::Result<Option<String>> {
        let summary = format!("scaling web {current} -> {next}");
        if let Err(err) = self.compose.up(&summary, &self.web_up(next)) {
            return Ok(Some(format!("{err:#}")));
        }
        if self.docker.is_dry_run() {
            return Ok(None);
        }
        let convergence = wait_routed(self.deployment, self.timeout)?;
        for (ip, at) in &convergence.first_up {
            first_up.entry(ip.clone()).or_insert(*at);
        }
        Ok((!convergence.converged).then(|| {
            format!(
                "web {next}: not every replica was routed after {} s: {}",
                convergence.seconds,
                convergence.last_problem.unwrap_or_default()
            )
        }))
    }

    /// `up` of web at `n` replicas, leaving existing ones as they are, without waiting on
    /// Docker's health check (see the module comment). Not `--no-deps`: Compose 2.26 hashes a
    /// service's configuration without its `depends_on` then, so the next plain
    /// `docker compose up` would recreate every replica; the dependencies are up already, and
    /// Compose leaves them alone.
    fn web_up(&self, n: u32) -> UpOptions {
        UpOptions {
            scale: Some((self.plan.web.service.clone(), n)),
            services: vec![self.plan.web.service.clone()],
            no_recreate: true,
            ..UpOptions::default()
        }
    }

    /// Going down, the replicas with the highest container numbers (the ones Compose itself
    /// would remove) leave `batch` at a time, drained (`drain_and_remove`). Then Compose settles
    /// the count without touching the others.
    fn scale_down(
        &self,
        mut web: Vec<Container>,
        n: u32,
        batch: u32,
        action: &mut ScaleAction,
    ) -> anyhow::Result<()> {
        web.sort_by_key(|c| std::cmp::Reverse(c.number));
        let leaving: Vec<Container> = web
            .into_iter()
            .take(action.from.saturating_sub(n) as usize)
            .collect();
        let lb = lb_container(&self.docker.project_containers(&self.plan.project)?);
        let source = stats::Source::new(
            &self.endpoints.stats_csv,
            BACKEND,
            lb.clone().map(|id| (self.docker, id)),
        );
        for chunk in leaving.chunks(batch as usize) {
            action.batches += 1;
            let drained = self.drain_and_remove(chunk, lb.as_deref(), &source)?;
            action.drained.extend(drained);
        }
        let summary = format!("scaling web {} -> {n}", action.from);
        action.error = self
            .compose
            .up(&summary, &self.web_up(n))
            .err()
            .map(|e| format!("{e:#}"));
        Ok(())
    }

    /// A rolling replacement of `old` (web replicas running an older image or configuration):
    /// `batch` new replicas started from the current Compose file beside the old ones
    /// (`--no-recreate` leaves those alone), routed, then as many old ones drained and removed;
    /// again until none is left, and Compose settles the count. The number of replicas serving
    /// never drops below the number before. A batch not routed within the timeout is rolled back:
    /// its new replicas are removed and the old ones that remain keep serving.
    pub fn replace(&self, mut old: Vec<Container>) -> anyhow::Result<Rollout> {
        let started = Instant::now();
        let printer = self.docker.printer();
        let batch = self.batch.max(1) as usize;
        old.sort_by_key(|c| c.number);
        let total = self.count_web()?;
        let old_count = old.len();
        let mut known: BTreeSet<String> = self
            .docker
            .project_containers(&self.plan.project)?
            .into_iter()
            .map(|c| c.id)
            .collect();
        let mut replaced = 0;
        for chunk in old.chunks(batch) {
            // Every batch so far ended with as many replicas as at the start: this batch's new
            // ones come on top of them (not `total - replaced`: that created nothing after the
            // first batch, so the later old replicas left without a replacement until the end).
            let serving = self.count_web()?;
            let summary = format!(
                "replacing web: {} old, {replaced} new; starting {} new",
                old_count - replaced,
                chunk.len()
            );
            // A failed `up` (a new replica that does not start) is rolled back like one that is
            // never routed.
            let up = self
                .compose
                .up(&summary, &self.web_up((serving + chunk.len()) as u32));
            if self.docker.is_dry_run() {
                up?;
                printer.note(format!(
                    "dry run: then the old replicas are drained and removed, {batch} at a time, \
                     each batch after its new replicas are routed"
                ));
                break;
            }
            let now = self.docker.project_containers(&self.plan.project)?;
            let fresh: Vec<Container> = web_of(&now, self.plan)
                .into_iter()
                .filter(|c| !known.contains(&c.id))
                .collect();
            let failed = match up {
                Err(err) => Some(format!("starting the new web replicas failed: {err:#}")),
                Ok(()) => {
                    let routed = wait_routed(self.deployment, self.timeout)?;
                    (!routed.converged).then(|| {
                        format!(
                            "the new web replica{} not routed after {} s: {}",
                            if fresh.len() == 1 { " was" } else { "s were" },
                            routed.seconds,
                            routed.last_problem.unwrap_or_default()
                        )
                    })
                }
            };
            if let Some(problem) = failed {
                let rollback = Instant::now();
                let details = self.why_not_routed(&fresh);
                printer.note(format!(
                    "rolling back: removing the {} new replica{}",
                    fresh.len(),
                    if fresh.len() == 1 { "" } else { "s" }
                ));
                remove_containers(self.docker, &fresh)?;
                return Ok(Rollout {
                    replaced,
                    seconds: round1(started.elapsed().as_secs_f64()),
                    failure: Some(RolloutFailure {
                        problem,
                        details,
                        rollback_seconds: round1(rollback.elapsed().as_secs_f64()),
                    }),
                });
            }
            known.extend(fresh.iter().map(|c| c.id.clone()));
            let lb = lb_container(&now);
            let source = stats::Source::new(
                &self.endpoints.stats_csv,
                BACKEND,
                lb.clone().map(|id| (self.docker, id)),
            );
            self.drain_and_remove(chunk, lb.as_deref(), &source)?;
            replaced += chunk.len();
            printer.note(format!(
                "replacing web: {} old, {replaced} new",
                old_count - replaced
            ));
        }
        // Compose's own view: the count that runs, every container current, nothing to recreate.
        self.compose.up(
            &format!("settling web at {total}"),
            &self.web_up(total as u32),
        )?;
        Ok(Rollout {
            replaced,
            seconds: round1(started.elapsed().as_secs_f64()),
            failure: None,
        })
    }

    fn count_web(&self) -> anyhow::Result<usize> {
        let containers = self.docker.project_containers(&self.plan.project)?;
        Ok(web_of(&containers, self.plan).len())
    }

    /// For each replica the load balancer did not take: Docker's health status, HAProxy's view
    /// of its address, and its last log lines.
    fn why_not_routed(&self, fresh: &[Container]) -> Vec<String> {
        let containers = self
            .docker
            .project_containers(&self.plan.project)
            .unwrap_or_default();
        let lb = lb_container(&containers);
        let servers = stats::Source::new(
            &self.endpoints.stats_csv,
            BACKEND,
            lb.map(|id| (self.docker, id)),
        )
        .fetch();
        fresh
            .iter()
            .map(|c| {
                let now = containers.iter().find(|n| n.id == c.id).unwrap_or(c);
                let haproxy = match (&servers, now.ip.as_deref()) {
                    (Ok(servers), Some(ip)) => servers
                        .iter()
                        .find(|s| !s.is_unused_slot() && s.ip() == ip)
                        .map_or_else(
                            || format!("HAProxy has no server at {ip} (its registry does not list it passing)"),
                            |s| format!("HAProxy {}: {}, last check {}", s.name, s.status, s.check_status),
                        ),
                    (Err(err), _) => format!("HAProxy's servers unreadable: {err:#}"),
                    (_, None) => "no address".to_owned(),
                };
                let logs = self
                    .docker
                    .call(format!("reading {}'s last log lines", c.name), ["logs", "--tail", "20", &c.id])
                    .output_unchecked()
                    .map_or_else(|e| format!("{e:#}"), |o| format!("{}{}", o.stdout, o.stderr));
                format!(
                    "{}: {}, health {}; {haproxy}\n  last log lines:\n{}",
                    now.describe(),
                    now.state,
                    now.health.as_deref().unwrap_or("none"),
                    logs.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
                )
            })
            .collect()
    }

    /// Takes `chunk` out of service gently: put into maintenance in HAProxy, given a moment to
    /// finish requests, stopped (each deregisters itself from consul on SIGTERM in consul-dns
    /// mode), removed, and its slots' maintenance flags cleared. Returns the HAProxy servers
    /// drained. Without an lb or its server list, the replicas are stopped undrained (said so).
    fn drain_and_remove(
        &self,
        chunk: &[Container],
        lb: Option<&str>,
        source: &stats::Source,
    ) -> anyhow::Result<Vec<String>> {
        let printer = self.docker.printer();
        let mut drained = Vec::new();
        match (lb, source.fetch()) {
            (Some(lb), Ok(servers)) => {
                let ips: BTreeSet<&str> = chunk.iter().filter_map(|c| c.ip.as_deref()).collect();
                drained = servers
                    .iter()
                    .filter(|s| !s.is_unused_slot() && ips.contains(s.ip()))
                    .map(|s| s.name.clone())
                    .collect();
                let refused = lbadmin::set_state(self.docker, lb, BACKEND, &drained, "maint")?;
                if !refused.is_empty() {
                    printer.note(format!(
                        "warning: HAProxy did not drain every replica: {}",
                        refused.join("; ")
                    ));
                }
                std::thread::sleep(DRAIN_PAUSE);
            }
            (None, _) => {
                printer.note("warning: no running lb container: removing replicas without draining")
            }
            (_, Err(err)) => printer.note(format!(
                "warning: cannot read HAProxy's servers ({err:#}): removing replicas without draining"
            )),
        }
        remove_containers(self.docker, chunk)?;
        // A slot keeps its maintenance flag after its address is gone; a replica resolved
        // into it later would never get traffic. Clear it (a reloaded HAProxy may not know
        // the name: fine).
        if let (Some(lb), false) = (lb, drained.is_empty()) {
            let refused = lbadmin::set_state(self.docker, lb, BACKEND, &drained, "ready")?;
            let real: Vec<&str> = refused
                .iter()
                .map(String::as_str)
                .filter(|r| !r.contains("No such server"))
                .collect();
            if !real.is_empty() {
                printer.note(format!(
                    "warning: HAProxy kept some drained slots in maintenance: {}",
                    real.join("; ")
                ));
            }
        }
        Ok(drained)
    }
}

/// What a rolling replacement did.
#[derive(Debug)]
pub struct Rollout {
    /// Old replicas replaced by routed new ones.
    pub replaced: usize,
    pub seconds: f64,
    /// Set when a batch was not routed in time and was rolled back.
    pub failure: Option<RolloutFailure>,
}

#[derive(Debug)]
pub struct RolloutFailure {
    pub problem: String,
    /// One paragraph per new replica removed: its state, HAProxy's check, its last log lines.
    pub details: Vec<String>,
    pub rollback_seconds: f64,
}

/// `docker stop` then `docker rm` of these containers, by id.
fn remove_containers(docker: &Docker, chunk: &[Container]) -> anyhow::Result<()> {
    if chunk.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = chunk.iter().map(|c| c.id.as_str()).collect();
    let names: Vec<&str> = chunk.iter().map(|c| c.name.as_str()).collect();
    let mut args = vec!["stop"];
    args.extend(&ids);
    docker
        .call(format!("stopping {}", names.join(", ")), args)
        .changes_state()
        .run_with_progress()?;
    let mut args = vec!["rm"];
    args.extend(&ids);
    docker
        .call(format!("removing {}", names.join(", ")), args)
        .changes_state()
        .output()?;
    Ok(())
}

/// Waits until the load balancer routes to exactly the running web replicas (and consul lists
/// exactly them passing, when there is a registry). Nothing is waited for while the lb is down.
pub fn wait_routed(deployment: &Deployment<'_>, timeout: u64) -> anyhow::Result<Convergence> {
    Ok(wait_routed_to(
        deployment,
        &deployment.containers()?,
        timeout,
    ))
}

/// `wait_routed` for the stack's `containers` as already listed.
pub fn wait_routed_to(
    deployment: &Deployment<'_>,
    containers: &[Container],
    timeout: u64,
) -> Convergence {
    let plan = deployment.plan();
    let running: Vec<&Container> = containers
        .iter()
        .filter(|c| c.service == plan.web.service && c.running)
        .collect();
    let step = deployment.docker().printer().step(&format!(
        "waiting for the load balancer to route to {} running replica{}",
        running.len(),
        if running.len() == 1 { "" } else { "s" }
    ));
    let lb = lb_container(containers);
    let source = deployment.haproxy(lb.clone());
    let target = Target {
        ips: converge::addresses(running.iter().copied()),
        stats: &source,
        consul: deployment
            .consul(lb.clone())
            .map(|source| (source, ServiceQuery::web(&plan.web))),
    };
    let convergence = if lb.is_none() {
        // Nothing will route while the load balancer is down; waiting would only cost time.
        Convergence::impossible(&target, "the lb container is not running")
    } else {
        converge::wait(&target, Duration::from_secs(timeout), Some(&step))
    };
    if convergence.converged {
        step.finish();
    } else {
        step.fail();
    }
    convergence
}

/// The running load balancer container, for the runtime API.
pub fn lb_container(containers: &[Container]) -> Option<String> {
    containers
        .iter()
        .find(|c| c.service == Service::Lb.name() && c.running)
        .map(|c| c.id.clone())
}

pub fn web_of(containers: &[Container], plan: &Plan) -> Vec<Container> {
    containers
        .iter()
        .filter(|c| c.service == plan.web.service)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_batch_is_two_per_core() {
        let cores = |n: usize| std::num::NonZeroUsize::new(n);
        assert_eq!(batch_for(cores(1)), 2);
        assert_eq!(batch_for(cores(2)), 4);
        assert_eq!(batch_for(cores(3)), 6);
        assert_eq!(batch_for(cores(64)), 128);
        assert_eq!(batch_for(None), 4, "unknown cores count as 2");
    }
}
