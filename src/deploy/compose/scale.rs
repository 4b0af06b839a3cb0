//! Changing the number of web replicas on one host gently: in batches, each batch routed before
//! the next, and draining the replicas that go away before they stop.
//!
//! A replica counts only once the load balancer routes to it (HAProxy's health check passed,
//! and consul lists it passing where there is a registry): Docker's own health check is rare on
//! purpose (it costs an exec per replica), so nothing here waits on it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::ComposeHost;
use crate::check::round1;
use crate::deploy::scale::ScaleAction;
use crate::docker::{of_service, Compose, Container, Docker, UpOptions};
use crate::poll::poll_until;
use crate::probe::converge::{lb_container, wait_routed, Routed};
use crate::probe::{lbadmin, stats};
use crate::render::DRAINED_SIGNAL;
use crate::timeline::{self, EventKind};

/// Between putting replicas into maintenance and stopping them, when HAProxy's count of their
/// requests in flight cannot be read: lets those requests finish (bench/README.md, scale-down
/// under load: no request failed with this pause).
const DRAIN_PAUSE: Duration = Duration::from_secs(1);

/// How often HAProxy's count of the drained replicas' requests in flight is read, and how long
/// after the maintenance command the first reading may count: a request HAProxy had already
/// given one of them shows in the count by then.
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// Waits until HAProxy has no request in flight on any of the servers `names` (just put into
/// maintenance, so no new one comes): two readings in a row, [`DRAIN_POLL`] apart, the first
/// one [`DRAIN_POLL`] after the call. Gives up after gunicorn's graceful timeout, which would
/// end those requests anyway. `Err` when HAProxy's servers cannot be read.
fn wait_idle(source: &stats::Source, names: &[String]) -> anyhow::Result<bool> {
    let limit = Duration::from_secs(crate::render::Tuning::standard().graceful_timeout_seconds);
    let mut idle_before = false;
    std::thread::sleep(DRAIN_POLL);
    let idle = poll_until(limit, DRAIN_POLL, || {
        let servers = source.fetch()?;
        let idle_now = servers
            .iter()
            .filter(|s| names.contains(&s.name))
            .all(|s| s.counters.in_flight == 0);
        let twice = idle_before && idle_now;
        idle_before = idle_now;
        Ok(twice.then_some(()))
    })?;
    Ok(idle.is_some())
}

/// How long HAProxy may take to drop a stopped replica's address from its slot (its DNS
/// resolution runs every `timeout resolve`, a second or less).
pub(super) const SLOT_RELEASE: Duration = Duration::from_secs(10);

/// Waits until none of the servers `names` holds one of `ips` any more (the slot is free, or
/// DNS put another replica in it); false when that took longer than [`SLOT_RELEASE`].
pub(super) fn wait_released(
    source: &stats::Source,
    names: &[String],
    ips: &BTreeSet<String>,
) -> bool {
    let released = poll_until(SLOT_RELEASE, Duration::from_millis(250), || {
        let servers = source.fetch()?;
        Ok(servers
            .iter()
            .filter(|s| names.contains(&s.name))
            .all(|s| s.is_unused_slot() || !ips.contains(s.ip()))
            .then_some(()))
    });
    matches!(released, Ok(Some(())))
}

/// Everything a scale step works with (on one Docker host: a Swarm scales in `swarm/scale.rs`).
pub struct Scaler<'a> {
    pub host: &'a ComposeHost<'a>,
    /// The Compose file new replicas start from: the host's, or the kept one a rollback returns to.
    pub compose: &'a Compose<'a>,
    /// How long each batch may take to be routed.
    pub timeout: Duration,
    pub batch: u32,
}

impl Scaler<'_> {
    /// Scales web from what runs now to `n`. Returns what was done; a batch that did not
    /// converge in time stops the scale and is reported in `error` (the checks say the rest).
    pub fn scale_to(&self, n: u32) -> anyhow::Result<ScaleAction> {
        let started = Instant::now();
        let containers = self
            .host
            .docker
            .project_containers(&self.host.plan.project)?;
        let web = of_service(&containers, &self.host.plan.web.service);
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
        timeline::mark(EventKind::BatchStarted, format!("web {current} -> {next}"));
        if let Err(err) = self.compose.up(&summary, &self.web_up(next)) {
            return Ok(Some(format!("{err:#}")));
        }
        if self.host.docker.is_dry_run() {
            return Ok(None);
        }
        let convergence = wait_routed(self.host, self.timeout)?;
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
    pub(super) fn web_up(&self, n: u32) -> UpOptions {
        UpOptions {
            scale: Some((self.host.plan.web.service.clone(), n)),
            services: vec![self.host.plan.web.service.clone()],
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
        let lb = lb_container(
            &self
                .host
                .docker
                .project_containers(&self.host.plan.project)?,
        );
        let source = self.host.haproxy(lb.clone());
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

    /// Takes `chunk` out of service gently: put into maintenance in HAProxy, given a moment to
    /// finish requests, stopped (each deregisters itself from consul on SIGTERM in consul-dns
    /// mode), removed, and its slots' maintenance flags cleared. Returns the HAProxy servers
    /// drained. Without an lb or its server list, the replicas are stopped undrained (said so).
    pub(super) fn drain_and_remove(
        &self,
        chunk: &[Container],
        lb: Option<&str>,
        source: &stats::Source,
    ) -> anyhow::Result<Vec<String>> {
        let printer = self.host.docker.printer();
        let mut drained = Vec::new();
        // HAProxy has shown no request in flight on the drained replicas.
        let mut idle = false;
        match (lb, source.fetch()) {
            (Some(lb), Ok(servers)) => {
                let ips: BTreeSet<&str> = chunk.iter().filter_map(|c| c.ip.as_deref()).collect();
                drained = servers
                    .iter()
                    .filter(|s| !s.is_unused_slot() && ips.contains(s.ip()))
                    .map(|s| s.name.clone())
                    .collect();
                let refused = lbadmin::set_state(self.host.docker, lb, stats::WEB_BACKEND, &drained, "maint")?;
                if !refused.is_empty() {
                    printer.note(format!(
                        "warning: HAProxy did not drain every replica: {}",
                        refused.join("; ")
                    ));
                }
                timeline::mark(EventKind::Drained, drained.join(", "));
                match wait_idle(source, &drained) {
                    Ok(true) => idle = true,
                    Ok(false) => printer.note(format!(
                        "warning: HAProxy still had requests on {} after gunicorn's graceful \
                         timeout; stopping them as a plain `docker stop` does (drain wait, \
                         graceful stop)",
                        drained.join(", ")
                    )),
                    Err(err) => {
                        printer.note(format!(
                            "warning: cannot read HAProxy's requests in flight ({err:#}): \
                             waiting {} s instead",
                            DRAIN_PAUSE.as_secs()
                        ));
                        std::thread::sleep(DRAIN_PAUSE);
                    }
                }
            }
            (None, _) => {
                printer.note("warning: no running lb container: removing replicas without draining")
            }
            (_, Err(err)) => printer.note(format!(
                "warning: cannot read HAProxy's servers ({err:#}): removing replicas without draining"
            )),
        }
        // Nothing routed to them, nothing in flight: a self-registering replica need not wait
        // for HAProxy to drop it, nor finish requests it does not have.
        if idle && !drained.is_empty() && self.host.plan.features().self_registration {
            tell_drained(self.host.docker, chunk);
        }
        remove_containers(self.host.docker, chunk)?;
        // A slot keeps its maintenance flag after its address is gone; a replica resolved
        // into it later would never get traffic. Clear it (a reloaded HAProxy may not know
        // the name: fine), but only once DNS has taken the stopped replica's address out of
        // it: `ready` on the old address puts a server UP that no longer answers, and the
        // requests sent to it hang until they time out (docker-dns, whose DNS keeps the name
        // a moment after the container is gone; seen by the canary's end-to-end test).
        if let (Some(_), false) = (lb, drained.is_empty()) {
            let ips: BTreeSet<String> = chunk.iter().filter_map(|c| c.ip.clone()).collect();
            if !wait_released(source, &drained, &ips) {
                printer.note(format!(
                    "warning: HAProxy still had the stopped replicas' addresses in {} after {} s",
                    drained.join(", "),
                    SLOT_RELEASE.as_secs()
                ));
            }
        }
        if let (Some(lb), false) = (lb, drained.is_empty()) {
            let refused = lbadmin::release(self.host.docker, lb, stats::WEB_BACKEND, &drained)?;
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

/// Sends `chunk` [`DRAINED_SIGNAL`]: their entrypoints stop gunicorn at once, without their
/// own drain wait. Only for replicas nothing will send a request to and that have none in
/// flight. Best effort: a replica that did not get it drains as on a plain stop, which follows
/// anyway.
pub(super) fn tell_drained(docker: &Docker, chunk: &[Container]) {
    if chunk.is_empty() {
        return;
    }
    let mut args = vec!["kill", "--signal", DRAINED_SIGNAL];
    args.extend(chunk.iter().map(|c| c.id.as_str()));
    let names: Vec<&str> = chunk.iter().map(|c| c.name.as_str()).collect();
    if let Err(err) = docker
        .call(
            format!("telling {} they are drained", names.join(", ")),
            args,
        )
        .changes_state()
        .output()
    {
        docker.printer().note(format!(
            "warning: {err:#}; they stop after their own drain wait"
        ));
    }
}

/// `docker stop` then `docker rm` of these containers, by id.
pub(super) fn remove_containers(docker: &Docker, chunk: &[Container]) -> anyhow::Result<()> {
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
