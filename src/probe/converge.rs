//! Waiting until the load balancer (and the registry, when there is one) sees exactly the
//! running replicas. Compares addresses, not only counts, so a drained replica that is still
//! listed, or a fresh one not yet resolved, keeps the wait going.
//!
//! `wait_routed` is the wait every target shares (apply, scaling, the rolling replacement): a
//! target says how its HAProxy and its consul are read (`Routed`), this module waits.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{registry, stats};
use crate::docker::{Container, Docker};
use crate::poll::poll_until;
use crate::printer::Step;
use crate::spec::{Plan, Service};
use crate::timeline::{self, EventKind};

const POLL: Duration = Duration::from_millis(250);

/// What the wait expects to see.
#[derive(Debug)]
pub struct Expected<'a> {
    /// IPs of the running web replicas, each with how messages name it.
    pub ips: BTreeMap<String, String>,
    pub stats: &'a stats::Source<'a>,
    /// consul's API and the service name, when discovery uses consul.
    pub consul: Option<(registry::Source<'a>, registry::ServiceQuery)>,
}

/// How the wait ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Convergence {
    pub converged: bool,
    pub seconds: f64,
    pub timeout_seconds: u64,
    pub target: u32,
    /// Servers UP at the end.
    pub up: u32,
    /// consul's passing instances at the end (None without consul).
    pub passing: Option<u32>,
    /// Why the last look was not good enough (or why it could not look).
    pub last_problem: Option<String>,
    /// The last problem cannot go away by waiting (a configuration problem).
    #[serde(skip)]
    pub fatal: bool,
    /// When each server address was first seen UP during the wait (as polled, every 0.25 s).
    #[serde(skip)]
    pub first_up: BTreeMap<String, Instant>,
}

impl Convergence {
    /// A wait that cannot succeed, for `reason`, without polling.
    pub fn impossible(target: &Expected<'_>, reason: &str) -> Self {
        Convergence {
            converged: false,
            seconds: 0.0,
            timeout_seconds: 0,
            target: target.ips.len() as u32,
            up: 0,
            passing: target.consul.as_ref().map(|_| 0),
            last_problem: Some(reason.to_owned()),
            fatal: true,
            first_up: BTreeMap::new(),
        }
    }
}

/// Polls until HAProxy has exactly `target.ips` UP (and consul lists exactly them passing).
pub fn wait(target: &Expected<'_>, timeout: Duration, step: Option<&Step>) -> Convergence {
    let started = Instant::now();
    let mut result = Convergence {
        converged: false,
        seconds: 0.0,
        timeout_seconds: timeout.as_secs(),
        target: target.ips.len() as u32,
        up: 0,
        passing: target.consul.as_ref().map(|_| 0),
        last_problem: None,
        fatal: false,
        first_up: BTreeMap::new(),
    };
    let mut first_look = None;
    // Ends early, unconverged, on a problem that waiting cannot fix (`fatal`).
    let ended = poll_until(timeout, POLL, || {
        first_look.get_or_insert_with(Instant::now);
        let problem = look(target, &mut result);
        result.seconds = crate::check::round1(started.elapsed().as_secs_f64());
        match problem {
            None => {
                result.converged = true;
                result.last_problem = None;
            }
            Some(problem) => {
                if let Some(step) = step {
                    step.status(&problem);
                }
                result.last_problem = Some(problem);
            }
        }
        Ok((result.converged || result.fatal).then_some(()))
    });
    // `look` reports its troubles in `result`; it never fails the wait.
    debug_assert!(ended.is_ok());
    // A server UP at the first look was routed before this wait: only later ones are events.
    if let Some(first_look) = first_look {
        for (ip, at) in &result.first_up {
            if *at > first_look {
                // The container's name, without the id its description adds.
                let name = target.ips.get(ip).map_or(ip.as_str(), |d| {
                    d.split_once(" (").map_or(d.as_str(), |(name, _)| name)
                });
                timeline::mark_at(*at, EventKind::Routed, name);
            }
        }
    }
    result
}

/// The running replicas' addresses for an [`Expected`], each with its description.
pub fn addresses<'c>(running: impl IntoIterator<Item = &'c Container>) -> BTreeMap<String, String> {
    running
        .into_iter()
        .filter_map(|c| Some((c.ip.clone()?, c.describe())))
        .collect()
}

/// The replicas of `target` whose address is not in `seen`, named, for a message: a replica
/// that crashed and was restarted is running again before it is routed, and the count alone
/// would not say which one is missing.
fn not_among(target: &BTreeMap<String, String>, seen: &BTreeSet<String>, what: &str) -> String {
    let missing: Vec<&str> = target
        .iter()
        .filter(|(ip, _)| !seen.contains(*ip))
        .map(|(_, name)| name.as_str())
        .collect();
    if missing.is_empty() {
        String::new()
    } else {
        format!(" (not {what}: {})", missing.join(", "))
    }
}

/// One look; None when everything matches. HAProxy's servers and consul's passing instances
/// are read at the same time: each is a `docker exec` into the lb container (about 0.1 s), and
/// a rollout looks several times per batch.
fn look(target: &Expected<'_>, result: &mut Convergence) -> Option<String> {
    let (servers, passing) = std::thread::scope(|scope| {
        let passing = target
            .consul
            .as_ref()
            .map(|(source, service)| scope.spawn(move || source.passing(service)));
        let servers = target.stats.fetch();
        let passing = passing.map(|reading| {
            reading
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        (servers, passing)
    });
    let want = target.ips.len();
    let servers = match servers {
        Ok(servers) => servers,
        Err(err) => {
            if err.chain().any(|c| c.is::<stats::HiddenAddresses>()) {
                result.fatal = true;
            }
            return Some(format!("HAProxy stats not readable: {err:#}"));
        }
    };
    // UP with a passing check: a slot DNS has just filled is UP before HAProxy checked it.
    let up: BTreeSet<String> = servers
        .iter()
        .filter(|s| s.is_up_and_checked())
        .map(|s| s.ip().to_owned())
        .collect();
    result.up = servers.iter().filter(|s| s.is_up_and_checked()).count() as u32;
    let now = Instant::now();
    for ip in &up {
        result.first_up.entry(ip.clone()).or_insert(now);
    }
    let mut problems = Vec::new();
    if !target.ips.keys().eq(up.iter()) || result.up as usize != want {
        problems.push(format!(
            "HAProxy has {} of {want} UP{}",
            result.up,
            not_among(&target.ips, &up, "UP")
        ));
    }
    match passing {
        None => {}
        Some(Ok(instances)) => {
            result.passing = Some(instances.len() as u32);
            let addrs: BTreeSet<String> = instances.iter().map(|i| i.address.clone()).collect();
            if !target.ips.keys().eq(addrs.iter()) || instances.len() != want {
                problems.push(format!(
                    "consul lists {} of {want} passing{}",
                    instances.len(),
                    not_among(&target.ips, &addrs, "passing")
                ));
            }
        }
        Some(Err(err)) => problems.push(format!("consul not readable: {err:#}")),
    }
    if problems.is_empty() {
        None
    } else {
        Some(problems.join(", "))
    }
}

/// What a stack on its target offers for the wait until its web replicas are routed.
pub trait Routed {
    fn plan(&self) -> &Plan;
    fn docker(&self) -> &Docker;
    /// Every container of the stack (on a Swarm: the tasks meant to run, as containers).
    fn containers(&self) -> anyhow::Result<Vec<Container>>;
    /// HAProxy's servers, read through the running lb container `lb` where it must be.
    fn haproxy(&self, lb: Option<String>) -> stats::Source<'_>;
    /// consul's API, when discovery uses it: a request from inside the lb container `lb` with
    /// the stack's reader token, the same on both targets.
    fn consul(&self, lb: Option<String>) -> Option<registry::Source<'_>> {
        if !self.plan().discovery.has_registry() {
            return None;
        }
        let token = crate::secrets::stack::consul_reader_token(&self.plan().project)
            .unwrap_or_else(|err| {
                self.docker()
                    .printer()
                    .note(format!("consul's reader token cannot be read: {err:#}"));
                None
            });
        Some(registry::Source {
            docker: self.docker(),
            container: lb,
            token,
        })
    }
}

/// Waits until the load balancer routes to exactly the running web replicas (and consul lists
/// exactly them passing, when there is a registry). Nothing is waited for while the lb is down.
pub fn wait_routed(stack: &dyn Routed, timeout: Duration) -> anyhow::Result<Convergence> {
    Ok(wait_routed_to(stack, &stack.containers()?, timeout))
}

/// `wait_routed` for the stack's `containers` as already listed.
pub fn wait_routed_to(
    stack: &dyn Routed,
    containers: &[Container],
    timeout: Duration,
) -> Convergence {
    let plan = stack.plan();
    let running: Vec<&Container> = containers
        .iter()
        .filter(|c| c.service == plan.web.service && c.running)
        .collect();
    let step = stack.docker().printer().step(&format!(
        "waiting for the load balancer to route to {} running replica{}",
        running.len(),
        if running.len() == 1 { "" } else { "s" }
    ));
    let lb = lb_container(containers);
    let source = stack.haproxy(lb.clone());
    let target = Expected {
        ips: addresses(running.iter().copied()),
        stats: &source,
        consul: stack
            .consul(lb.clone())
            .map(|source| (source, registry::ServiceQuery::web(&plan.web))),
    };
    let convergence = if lb.is_none() {
        // Nothing will route while the load balancer is down; waiting would only cost time.
        Convergence::impossible(&target, "the lb container is not running")
    } else {
        wait(&target, timeout, Some(&step))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_replicas_are_named() {
        let target: BTreeMap<String, String> = [
            ("10.0.0.2", "hits-web-1 (container aaaaaaaaaaaa)"),
            ("10.0.0.3", "hits-web-2 (container bbbbbbbbbbbb)"),
        ]
        .into_iter()
        .map(|(ip, name)| (ip.to_owned(), name.to_owned()))
        .collect();
        let seen: BTreeSet<String> = ["10.0.0.2".to_owned(), "10.0.0.9".to_owned()].into();
        assert_eq!(
            not_among(&target, &seen, "UP"),
            " (not UP: hits-web-2 (container bbbbbbbbbbbb))"
        );
        let all: BTreeSet<String> = target.keys().cloned().collect();
        assert_eq!(not_among(&target, &all, "UP"), "");
    }
}
