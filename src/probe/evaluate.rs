//! From observations of a stack to named checks. Pure functions, so every rule is unit-tested on
//! fake observations; `verify` only gathers the observations.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::converge::Convergence;
use super::http::{Expect, Probe, ServedBy};
use super::registry::Instance;
use super::stats::Server;
use crate::check::{Check, Numbers, Outcome};
use crate::docker::Container;
use crate::spec::plan::{Balance, Discovery};
use crate::spec::Service;

/// Everything verify saw.
#[derive(Debug, Clone)]
pub struct Observations {
    /// Web replicas the stack should have.
    pub expected: u32,
    pub discovery: Discovery,
    /// HAProxy's balance algorithm (`source` pins one client to one server).
    pub balance: Balance,
    /// Every web container of the project, running or not.
    pub replicas: Vec<Container>,
    /// The other services the stack must run (consul, registrator, redis, lb, as the plan says).
    pub services: Vec<Service>,
    /// Their containers.
    pub others: Vec<Container>,
    /// consul's servers (`consul.servers`): with several, consul is up while a majority runs.
    pub consul_servers: u32,
    pub convergence: Convergence,
    /// What counts as an answer: the hit counter's JSON, or what the spec says of your app.
    pub expect: Expect,
    pub probe: Probe,
    /// HAProxy's servers in the web backend, after probing.
    pub haproxy: Vec<Server>,
    /// consul's passing web instances; None when discovery has no registry.
    pub registry: Option<Vec<Instance>>,
}

impl Observations {
    fn running(&self) -> impl Iterator<Item = &Container> {
        self.replicas.iter().filter(|c| c.running)
    }

    fn running_ips(&self) -> BTreeSet<String> {
        self.running().filter_map(|c| c.ip.clone()).collect()
    }

    /// The replica with this address, for messages.
    fn by_ip(&self, ip: &str) -> Option<&Container> {
        self.running().find(|c| c.ip.as_deref() == Some(ip))
    }

    /// The replica HAProxy connected to: the running web container with that address.
    fn replica_of(&self, served: &ServedBy) -> Option<&Container> {
        self.by_ip(served.ip())
    }
}

/// Every check, in the order they are reported.
pub fn evaluate(obs: &Observations) -> Vec<Check> {
    vec![
        services_running(obs),
        replicas_running(obs),
        converged(obs),
        replicas_answered(obs),
        requests_answered(obs),
        counter_increasing(obs),
        registry(obs),
        haproxy(obs),
    ]
}

fn services_running(obs: &Observations) -> Check {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let mut up = 0;
    for service in &obs.services {
        let containers: Vec<&Container> = obs
            .others
            .iter()
            .filter(|c| c.service == service.name())
            .collect();
        let before = problems.len();
        if containers.is_empty() {
            problems.push(format!("{service} has no container"));
        }
        let mut down = Vec::new();
        for c in &containers {
            if !c.running {
                down.push(format!("{} is {}", c.describe(), c.state));
            } else if c.health.as_deref() == Some("unhealthy") {
                down.push(format!("{} is unhealthy", c.describe()));
            }
        }
        // A consul cluster serves while a majority of its servers runs (Raft's quorum).
        let quorum = (*service == Service::Consul && obs.consul_servers > 1).then(|| {
            let running = containers.len() - down.len();
            (running, obs.consul_servers as usize / 2 + 1)
        });
        match quorum {
            Some((running, majority)) if running >= majority => {
                notes.extend(down.into_iter().map(|d| {
                    format!(
                        "{d} ({running} of {} consul servers run: a majority)",
                        obs.consul_servers
                    )
                }))
            }
            _ => problems.extend(down),
        }
        if problems.len() == before {
            up += 1;
        }
    }
    let mut message = format!(
        "{up} of {} services up: {}",
        obs.services.len(),
        obs.services
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for p in problems.iter().chain(&notes) {
        message.push_str(&format!("\n{p}"));
    }
    Check::pass_if("services running", problems.is_empty(), message)
}

fn replicas_running(obs: &Observations) -> Check {
    let running = obs.running().count();
    let total = obs.replicas.len();
    let ok = running == obs.expected as usize && total == obs.expected as usize;
    let mut message = format!("{running} of {} web containers running", obs.expected);
    if total != obs.expected as usize {
        message.push_str(&format!(" ({total} exist)"));
    }
    for c in obs.replicas.iter().filter(|c| !c.running) {
        message.push_str(&format!("\n{} is {}", c.describe(), c.state));
    }
    Check::pass_if("replicas running", ok, message).numbers(
        Numbers::default()
            .with("expected", obs.expected)
            .with("running", running as u64)
            .with("total", total as u64),
    )
}

fn converged(obs: &Observations) -> Check {
    let c = &obs.convergence;
    let consul = c
        .passing
        .map(|p| format!(", consul lists {p} passing"))
        .unwrap_or_default();
    let message = if c.converged {
        format!(
            "HAProxy has {} server{} UP{consul}, one per running replica, after {:.1} s",
            c.up,
            if c.up == 1 { "" } else { "s" },
            c.seconds
        )
    } else if c.fatal {
        format!(
            "stopped waiting after {:.1} s: {}",
            c.seconds,
            c.last_problem.as_deref().unwrap_or("unknown problem")
        )
    } else {
        format!(
            "gave up after {} s waiting for {} running replica{} to be routed: last seen: {}",
            c.timeout_seconds,
            c.target,
            if c.target == 1 { "" } else { "s" },
            c.last_problem.as_deref().unwrap_or("nothing")
        )
    };
    let mut numbers = Numbers::default()
        .with("seconds", c.seconds)
        .with("target", c.target)
        .with("up", c.up);
    if let Some(p) = c.passing {
        numbers = numbers.with("passing", p);
    }
    Check::pass_if("converged", c.converged, message).numbers(numbers)
}

/// Which replicas answered, as the load balancer named them (`X-Provision-Server`, mapped to a
/// container by address). For the built-in app, the hostname in the counter's answer is a second,
/// independent witness: both must name the same container.
fn replicas_answered(obs: &Observations) -> Check {
    const NAME: &str = "replicas answered";
    let mut per_replica: BTreeMap<&str, u64> = BTreeMap::new();
    let mut unnamed = Vec::new();
    let mut strangers: BTreeMap<&ServedBy, u64> = BTreeMap::new();
    let mut disagreements = Vec::new();
    for answer in &obs.probe.answers {
        let Some(served) = &answer.served_by else {
            unnamed.push(answer.request);
            continue;
        };
        let Some(replica) = obs.replica_of(served) else {
            *strangers.entry(served).or_insert(0) += 1;
            continue;
        };
        *per_replica.entry(replica.name.as_str()).or_insert(0) += 1;
        if let Some(counter) = &answer.counter {
            if counter.hostname != replica.hostname {
                let claimed = obs
                    .replicas
                    .iter()
                    .find(|c| c.hostname == counter.hostname)
                    .map(|c| format!(" ({})", c.name))
                    .unwrap_or_default();
                disagreements.push(format!(
                    "request {}: HAProxy says {served}, that is {}, answered, but the app says hostname {}{claimed}",
                    answer.request,
                    replica.describe(),
                    counter.hostname
                ));
            }
        }
    }
    let numbers = Numbers::default()
        .with("requests", obs.probe.sent)
        .with("answers", obs.probe.answers.len() as u64)
        .with("answers_per_replica", json!(per_replica));
    if obs.balance == Balance::Source {
        return Check::new(
            NAME,
            Outcome::Skip,
            "lb.balance is `source`: every request from this host goes to the same replica",
        )
        .numbers(numbers);
    }
    let expected: BTreeSet<&str> = obs.replicas.iter().map(|c| c.name.as_str()).collect();
    let seen: BTreeSet<&str> = per_replica.keys().copied().collect();
    let ok = seen.len() == obs.expected as usize
        && seen == expected
        && unnamed.is_empty()
        && strangers.is_empty()
        && disagreements.is_empty();
    let mut message = format!(
        "{} of {} replicas answered in {} requests",
        seen.intersection(&expected).count(),
        obs.expected,
        obs.probe.sent
    );
    if obs.expect == Expect::Counter && !seen.is_empty() && disagreements.is_empty() {
        message.push_str(", HAProxy and the app's hostname agree on each");
    }
    for c in &obs.replicas {
        if seen.contains(c.name.as_str()) {
            continue;
        }
        let rejected = obs
            .probe
            .rejected
            .iter()
            .filter(|s| c.running && c.ip.as_deref() == Some(s.ip()))
            .count();
        if rejected > 0 {
            message.push_str(&format!(
                "\n{} responded {rejected} time{}, never as expected (see requests answered)",
                c.describe(),
                if rejected == 1 { "" } else { "s" }
            ));
        } else if c.running {
            message.push_str(&format!("\n{} is running but did not answer", c.describe()));
        } else {
            message.push_str(&format!(
                "\n{} is not running and did not answer",
                c.describe()
            ));
        }
    }
    for (served, n) in &strangers {
        // HAProxy's own view, read after the probe, says whether that server has moved since.
        let now = match obs.haproxy.iter().find(|s| s.name == served.server) {
            Some(s) if s.addr != served.addr => format!(
                " (HAProxy now lists {} at {}, {})",
                s.name,
                if s.addr.is_empty() {
                    "no address"
                } else {
                    &s.addr
                },
                s.status
            ),
            Some(_) => String::new(),
            None => format!(" (HAProxy no longer lists {})", served.server),
        };
        message.push_str(&format!(
            "\n{served} answered {n} request{} but no running web container of this project has that address{now}",
            if *n == 1 { "" } else { "s" }
        ));
    }
    for d in disagreements.iter().take(3) {
        message.push_str(&format!("\n{d}"));
    }
    if disagreements.len() > 3 {
        message.push_str(&format!(
            "\n... and {} more disagreements",
            disagreements.len() - 3
        ));
    }
    if !unnamed.is_empty() {
        message.push_str(&format!(
            "\n{} answer{} did not say which server answered (no {} header, first at request {}): the lb configuration lacks provision's rule (an old or overridden blueprint?); render and apply",
            unnamed.len(),
            if unnamed.len() == 1 { "" } else { "s" },
            super::http::SERVER_HEADER,
            unnamed[0]
        ));
    }
    if expected.len() < obs.expected as usize {
        message.push_str(&format!("\nonly {} web containers exist", expected.len()));
    }
    Check::pass_if(NAME, ok, message).numbers(numbers)
}

fn requests_answered(obs: &Observations) -> Check {
    let p = &obs.probe;
    let ok = p.errors == 0 && !p.answers.is_empty();
    let mut message = format!(
        "{} of {} requests answered {}",
        p.answers.len(),
        p.sent,
        obs.expect.describe()
    );
    if p.gave_up {
        message.push_str(&format!(
            " (stopped after {} failures in a row)",
            super::http::ERRORS_IN_A_ROW
        ));
    }
    for sample in &p.error_samples {
        message.push_str(&format!("\n{sample}"));
    }
    if p.errors as usize > p.error_samples.len() {
        message.push_str(&format!(
            "\n... and {} more errors",
            p.errors as usize - p.error_samples.len()
        ));
    }
    Check::pass_if("requests answered", ok, message).numbers(
        Numbers::default()
            .with("requests", p.sent)
            .with("errors", p.errors),
    )
}

/// The built-in app's counter only grows; your own app has none to follow.
fn counter_increasing(obs: &Observations) -> Check {
    const NAME: &str = "counter increasing";
    if obs.expect != Expect::Counter {
        return Check::new(
            NAME,
            Outcome::Skip,
            "web.app is your own app: only the built-in app has a hit counter",
        );
    }
    let answers: Vec<(u32, &super::http::Counter)> = obs
        .probe
        .answers
        .iter()
        .filter_map(|a| a.counter.as_ref().map(|c| (a.request, c)))
        .collect();
    let numbers = Numbers::default().with("answers", answers.len() as u64);
    if answers.len() < 2 {
        return Check::new(
            NAME,
            Outcome::Fail,
            format!(
                "{} answers: at least 2 are needed to compare",
                answers.len()
            ),
        )
        .numbers(numbers);
    }
    let (first, last) = (answers[0].1.hits, answers[answers.len() - 1].1.hits);
    let numbers = numbers.with("first", first).with("last", last);
    for pair in answers.windows(2) {
        let ((_, before), (request, after)) = (pair[0], pair[1]);
        if after.hits <= before.hits {
            return Check::new(
                NAME,
                Outcome::Fail,
                format!(
                    "request {request} (from {}) said {} after {} (from {}): the counter went back or stood still",
                    after.hostname, after.hits, before.hits, before.hostname
                ),
            )
            .numbers(numbers);
        }
    }
    Check::new(
        NAME,
        Outcome::Pass,
        format!(
            "hits went {first} -> {last} over {} answers, each higher than the one before",
            answers.len()
        ),
    )
    .numbers(numbers)
}

fn registry(obs: &Observations) -> Check {
    let Some(instances) = &obs.registry else {
        return Check::new(
            "registry",
            Outcome::Skip,
            format!("{} discovery has no registry", obs.discovery),
        );
    };
    let listed: BTreeSet<String> = instances.iter().map(|i| i.address.clone()).collect();
    let running = obs.running_ips();
    let ok = instances.len() == obs.expected as usize && listed == running;
    let mut message = format!(
        "consul lists {} of {} web instances passing",
        instances.len(),
        obs.expected
    );
    for c in obs.replicas.iter() {
        let listed_here = c.ip.as_ref().is_some_and(|ip| listed.contains(ip));
        if !listed_here {
            message.push_str(&format!("\n{} is not listed as passing", c.describe()));
        }
    }
    for i in instances {
        if !running.contains(&i.address) {
            message.push_str(&format!(
                "\n{} ({}:{}) is listed but no running replica has that address",
                i.id, i.address, i.port
            ));
        }
    }
    Check::pass_if("registry", ok, message).numbers(
        Numbers::default()
            .with("passing", instances.len() as u64)
            .with("expected", obs.expected),
    )
}

/// Why running replicas have no server in HAProxy, when it is a matter of room: more replicas
/// than server slots (`lb.max_replicas`), or slots left empty while replicas wait, which is what
/// a DNS answer that holds fewer records than there are replicas looks like.
fn missing_servers_reason(obs: &Observations) -> Option<String> {
    let running = obs.running().count();
    let slots = obs.haproxy.len();
    let filled = obs.haproxy.iter().filter(|s| !s.is_unused_slot()).count();
    let ceiling = obs.discovery.replica_ceiling();
    if slots > 0 && running > slots {
        Some(format!(
            "{running} replicas run but HAProxy has {slots} server slots (lb.max_replicas): \
             {} replica{} get no traffic; raise lb.max_replicas (at most {ceiling} with {} \
             discovery) or scale down",
            running - slots,
            if running - slots == 1 { "" } else { "s" },
            obs.discovery
        ))
    } else if filled < running && filled < slots {
        Some(format!(
            "HAProxy filled {filled} of its {slots} slots for {running} running replicas: \
             {} discovery told it of fewer replicas than run (this mode routes to at most \
             {ceiling}; a discovery answer that stops short looks like this)",
            obs.discovery
        ))
    } else {
        None
    }
}

fn haproxy(obs: &Observations) -> Check {
    let up: Vec<&Server> = obs.haproxy.iter().filter(|s| s.is_up()).collect();
    let up_ips: BTreeSet<&str> = up.iter().map(|s| s.ip()).collect();
    let running = obs.running_ips();
    let running_refs: BTreeSet<&str> = running.iter().map(String::as_str).collect();
    let ok = up.len() == obs.expected as usize && up_ips == running_refs;
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    for s in &obs.haproxy {
        let key = if s.is_unused_slot() {
            "unused".to_owned()
        } else {
            s.status
                .split(' ')
                .next()
                .unwrap_or_default()
                .to_lowercase()
        };
        *by_status.entry(key).or_insert(0) += 1;
    }
    let backend = obs
        .haproxy
        .first()
        .map(|s| s.backend.as_str())
        .unwrap_or("web");
    let mut message = format!(
        "{} of {} servers UP in backend {backend} ({} slots)",
        up.len(),
        obs.expected,
        obs.haproxy.len()
    );
    for c in obs.replicas.iter().filter(|c| c.running) {
        if !c.ip.as_deref().is_some_and(|ip| up_ips.contains(ip)) {
            let server = obs
                .haproxy
                .iter()
                .find(|s| !s.is_unused_slot() && Some(s.ip()) == c.ip.as_deref());
            match server {
                Some(s) => message.push_str(&format!(
                    "\n{} is server {} in state {} (check {})",
                    c.describe(),
                    s.name,
                    s.status,
                    if s.check_status.is_empty() {
                        "-"
                    } else {
                        &s.check_status
                    }
                )),
                None => message.push_str(&format!("\n{} has no server in HAProxy", c.describe())),
            }
        }
    }
    for c in obs.replicas.iter().filter(|c| !c.running) {
        message.push_str(&format!("\n{} is not running", c.describe()));
    }
    if let Some(why) = missing_servers_reason(obs) {
        message.push_str(&format!("\n{why}"));
    }
    for s in &up {
        if obs.by_ip(s.ip()).is_none() {
            message.push_str(&format!(
                "\nserver {} ({}) is UP but no running replica has that address",
                s.name, s.addr
            ));
        }
    }
    let mut numbers = Numbers::default().with("up", up.len() as u64);
    for (status, n) in by_status {
        if status != "up" {
            numbers = numbers.with(&status, n);
        }
    }
    Check::pass_if("haproxy", ok, message).numbers(numbers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::http::{Answer, Counter};

    fn container(n: u32, running: bool) -> Container {
        let short = format!("{n:012x}");
        Container {
            id: format!("{short}{}", "0".repeat(52)),
            short_id: short.clone(),
            name: format!("hits-web-{n}"),
            project: "hits".into(),
            service: "web".into(),
            number: n,
            oneoff: false,
            state: if running { "running" } else { "exited" }.into(),
            running,
            health: Some("healthy".into()),
            hostname: short,
            ip: running.then(|| format!("172.20.0.{}", 10 + n)),
            started_at: "2026-11-25T09:17:19Z".into(),
            image: "hits-web:0123456789ab".into(),
            image_id: String::new(),
            config_label: None,
            restart_key: None,
        }
    }

    fn server(i: u32, ip: Option<String>) -> Server {
        let used = ip.is_some();
        Server {
            backend: "web".into(),
            name: format!("web{i}"),
            status: if used { "UP" } else { "MAINT (resolution)" }.into(),
            addr: ip.map(|ip| format!("{ip}:5000")).unwrap_or_default(),
            check_status: if used { "L7OK" } else { "" }.into(),
            counters: Default::default(),
        }
    }

    /// A healthy stack of `n` replicas where `stopped` of them were stopped by hand.
    fn stack(n: u32, stopped: &[u32]) -> Observations {
        let replicas: Vec<Container> = (1..=n)
            .map(|i| container(i, !stopped.contains(&i)))
            .collect();
        let running: Vec<&Container> = replicas.iter().filter(|c| c.running).collect();
        let mut haproxy: Vec<Server> = running
            .iter()
            .enumerate()
            .map(|(i, c)| server(i as u32 + 1, c.ip.clone()))
            .collect();
        // Round robin: HAProxy names each server, and the counter's answer carries the
        // container's hostname.
        let answers: Vec<Answer> = (0..3 * n as usize)
            .map(|i| {
                let k = i % running.len();
                Answer {
                    request: i as u32 + 1,
                    served_by: Some(ServedBy {
                        server: haproxy[k].name.clone(),
                        addr: haproxy[k].addr.clone(),
                    }),
                    counter: Some(Counter {
                        hits: 100 + i as u64,
                        hostname: running[k].hostname.clone(),
                    }),
                }
            })
            .collect();
        haproxy.push(server(10, None));
        let registry = running
            .iter()
            .map(|c| Instance {
                id: format!("web-{}", c.hostname),
                address: c.ip.clone().unwrap(),
                port: 5000,
            })
            .collect();
        let services = vec![Service::Consul, Service::Redis, Service::Lb];
        let mut others: Vec<Container> = Vec::new();
        for (i, service) in services.iter().enumerate() {
            let mut c = container(100 + i as u32, true);
            c.service = service.name().to_owned();
            c.name = format!("hits-{service}-1");
            others.push(c);
        }
        Observations {
            expected: n,
            services,
            others,
            consul_servers: 1,
            discovery: Discovery::ConsulDns,
            balance: Balance::Roundrobin,
            convergence: Convergence {
                converged: true,
                seconds: 1.5,
                timeout_seconds: 120,
                target: running.len() as u32,
                up: running.len() as u32,
                passing: Some(running.len() as u32),
                last_problem: None,
                fatal: false,
                first_up: Default::default(),
            },
            expect: Expect::Counter,
            probe: Probe {
                sent: answers.len() as u32,
                answers,
                errors: 0,
                error_samples: vec![],
                rejected: vec![],
                gave_up: false,
            },
            haproxy,
            registry: Some(registry),
            replicas,
        }
    }

    fn outcome(checks: &[Check], name: &str) -> Outcome {
        checks.iter().find(|c| c.name == name).unwrap().outcome
    }

    fn message<'a>(checks: &'a [Check], name: &str) -> &'a str {
        &checks.iter().find(|c| c.name == name).unwrap().message
    }

    #[test]
    fn a_healthy_stack_passes_everything() {
        let checks = evaluate(&stack(5, &[]));
        for c in &checks {
            assert_eq!(c.outcome, Outcome::Pass, "{}: {}", c.name, c.message);
        }
        assert_eq!(
            message(&checks, "replicas answered"),
            "5 of 5 replicas answered in 15 requests, HAProxy and the app's hostname agree on each"
        );
        let per_replica = &checks[3].numbers.0[2];
        assert_eq!(per_replica.0, "answers_per_replica");
        assert_eq!(per_replica.1["hits-web-4"], 3);
    }

    #[test]
    fn a_stopped_replica_fails_and_is_named() {
        let checks = evaluate(&stack(3, &[3]));
        let missing = "hits-web-3 (container 000000000003) is not running and did not answer";
        assert!(message(&checks, "replicas answered").contains(missing));
        assert_eq!(outcome(&checks, "replicas answered"), Outcome::Fail);
        assert_eq!(outcome(&checks, "replicas running"), Outcome::Fail);
        assert!(message(&checks, "replicas running")
            .contains("hits-web-3 (container 000000000003) is exited"));
        assert_eq!(outcome(&checks, "registry"), Outcome::Fail);
        assert_eq!(outcome(&checks, "haproxy"), Outcome::Fail);
        assert!(message(&checks, "haproxy")
            .contains("hits-web-3 (container 000000000003) is not running"));
        // What still works, passes: the two running replicas answered and counted.
        assert_eq!(outcome(&checks, "counter increasing"), Outcome::Pass);
        assert_eq!(outcome(&checks, "requests answered"), Outcome::Pass);
    }

    #[test]
    fn a_stopped_or_missing_service_fails_and_is_named() {
        let mut obs = stack(2, &[]);
        obs.others[2].running = false;
        obs.others[2].state = "exited".into();
        obs.others.remove(0);
        let checks = evaluate(&obs);
        assert_eq!(outcome(&checks, "services running"), Outcome::Fail);
        let m = message(&checks, "services running");
        assert!(m.contains("consul has no container"), "{m}");
        assert!(
            m.contains("hits-lb-1 (container 000000000066) is exited"),
            "{m}"
        );
        assert!(m.starts_with("1 of 3 services up"), "{m}");
    }

    #[test]
    fn a_consul_cluster_is_up_while_a_majority_of_its_servers_runs() {
        let mut obs = stack(2, &[]);
        obs.consul_servers = 3;
        let consul = obs.others[0].clone();
        for i in 1..3 {
            let mut server = consul.clone();
            server.name = format!("hits-consul-{}", i + 1);
            obs.others.push(server);
        }
        obs.others[0].running = false;
        obs.others[0].state = "pending".into();
        let checks = evaluate(&obs);
        let m = message(&checks, "services running");
        assert_eq!(outcome(&checks, "services running"), Outcome::Pass, "{m}");
        assert!(
            m.contains("is pending (2 of 3 consul servers run: a majority)"),
            "{m}"
        );
        // Two of three lost: no leader, no writes, no registrations.
        let last = obs.others.len() - 1;
        obs.others[last].running = false;
        obs.others[last].state = "pending".into();
        let checks = evaluate(&obs);
        assert_eq!(outcome(&checks, "services running"), Outcome::Fail);
        // A single server that is not running is consul down.
        let mut single = stack(2, &[]);
        single.others[0].running = false;
        single.others[0].state = "pending".into();
        assert_eq!(
            outcome(&evaluate(&single), "services running"),
            Outcome::Fail
        );
    }

    #[test]
    fn a_counter_that_stands_still_fails() {
        let mut obs = stack(2, &[]);
        let before = obs.probe.answers[2].counter.as_ref().unwrap().hits;
        obs.probe.answers[3].counter.as_mut().unwrap().hits = before;
        let checks = evaluate(&obs);
        assert_eq!(outcome(&checks, "counter increasing"), Outcome::Fail);
        assert_eq!(
            message(&checks, "counter increasing"),
            "request 4 (from 000000000002) said 102 after 102 (from 000000000001): the counter went back or stood still"
        );
    }

    #[test]
    fn too_few_answers_cannot_prove_the_counter() {
        let mut obs = stack(1, &[]);
        obs.probe.answers.truncate(1);
        obs.probe.sent = 1;
        assert_eq!(
            outcome(&evaluate(&obs), "counter increasing"),
            Outcome::Fail
        );
    }

    #[test]
    fn errors_are_counted_and_sampled() {
        let mut obs = stack(2, &[]);
        obs.probe.errors = 7;
        obs.probe.error_samples = vec!["request 3: HTTP 503".into()];
        let checks = evaluate(&obs);
        assert_eq!(outcome(&checks, "requests answered"), Outcome::Fail);
        let m = message(&checks, "requests answered");
        assert!(
            m.contains("request 3: HTTP 503") && m.contains("6 more errors"),
            "{m}"
        );
    }

    #[test]
    fn an_address_of_no_replica_fails_and_is_named() {
        let mut obs = stack(2, &[]);
        for i in [0, 2] {
            obs.probe.answers[i].served_by = Some(ServedBy {
                server: "web7".into(),
                addr: "172.20.0.99:5000".into(),
            });
        }
        obs.probe.answers[1].served_by = Some(ServedBy {
            server: "web2".into(),
            addr: "172.20.0.98:5000".into(),
        });
        let checks = evaluate(&obs);
        assert_eq!(outcome(&checks, "replicas answered"), Outcome::Fail);
        let m = message(&checks, "replicas answered");
        assert!(
            m.contains("server web2 (172.20.0.98:5000) answered 1 request but no running web container of this project has that address (HAProxy now lists web2 at 172.20.0.12:5000, UP)"),
            "{m}"
        );
        assert!(
            m.contains("server web7 (172.20.0.99:5000) answered 2 requests but no running web container of this project has that address (HAProxy no longer lists web7)"),
            "{m}"
        );
        // hits-web-1 answered requests 1, 3 and 5: one of them still counts.
        assert!(m.starts_with("2 of 2 replicas answered"), "{m}");
    }

    #[test]
    fn the_two_witnesses_must_agree_for_the_built_in_app() {
        let mut obs = stack(3, &[]);
        // HAProxy says web1 (hits-web-1) answered request 4; the body claims hits-web-3's host.
        obs.probe.answers[3].counter.as_mut().unwrap().hostname = "000000000003".into();
        let checks = evaluate(&obs);
        assert_eq!(outcome(&checks, "replicas answered"), Outcome::Fail);
        let m = message(&checks, "replicas answered");
        assert!(
            m.contains("request 4: HAProxy says server web1 (172.20.0.11:5000), that is hits-web-1 (container 000000000001), answered, but the app says hostname 000000000003 (hits-web-3)"),
            "{m}"
        );
        assert!(!m.contains("agree on each"), "{m}");
    }

    #[test]
    fn answers_the_load_balancer_did_not_name_fail_with_advice() {
        let mut obs = stack(2, &[]);
        for a in &mut obs.probe.answers {
            a.served_by = None;
        }
        let checks = evaluate(&obs);
        assert_eq!(outcome(&checks, "replicas answered"), Outcome::Fail);
        let m = message(&checks, "replicas answered");
        assert!(
            m.starts_with("0 of 2 replicas answered in 6 requests"),
            "{m}"
        );
        assert!(
            m.contains("6 answers did not say which server answered (no X-Provision-Server header, first at request 1)"),
            "{m}"
        );
    }

    /// The case: a Flask app on docker-dns, answering `hello from <hostname>`.
    fn own_app(n: u32, stopped: &[u32]) -> Observations {
        let mut obs = stack(n, stopped);
        obs.discovery = Discovery::DockerDns;
        obs.registry = None;
        obs.convergence.passing = None;
        obs.services = vec![Service::Redis, Service::Lb];
        obs.others.remove(0);
        obs.expect = Expect::App {
            status: None,
            contains: None,
        };
        for a in &mut obs.probe.answers {
            a.counter = None;
        }
        obs
    }

    #[test]
    fn your_own_app_passes_with_the_counter_skipped() {
        let checks = evaluate(&own_app(3, &[]));
        for c in &checks {
            let want = match c.name.as_str() {
                "counter increasing" | "registry" => Outcome::Skip,
                _ => Outcome::Pass,
            };
            assert_eq!(c.outcome, want, "{}: {}", c.name, c.message);
        }
        assert_eq!(
            message(&checks, "replicas answered"),
            "3 of 3 replicas answered in 9 requests"
        );
        assert_eq!(
            message(&checks, "requests answered"),
            "9 of 9 requests answered with HTTP 2xx"
        );
        assert_eq!(
            message(&checks, "counter increasing"),
            "web.app is your own app: only the built-in app has a hit counter"
        );
    }

    #[test]
    fn a_replica_that_answers_wrongly_is_told_apart_from_a_silent_one() {
        let mut obs = own_app(2, &[]);
        // hits-web-2 answered requests 2, 4 and 6, each without the expected text.
        let wrong: Vec<Answer> = obs
            .probe
            .answers
            .iter()
            .skip(1)
            .step_by(2)
            .cloned()
            .collect();
        obs.probe.answers.retain(|a| a.request % 2 == 1);
        obs.probe.errors = wrong.len() as u32;
        obs.probe.rejected = wrong.into_iter().filter_map(|a| a.served_by).collect();
        let checks = evaluate(&obs);
        assert_eq!(outcome(&checks, "replicas answered"), Outcome::Fail);
        assert!(
            message(&checks, "replicas answered").contains(
                "hits-web-2 (container 000000000002) responded 3 times, never as expected (see requests answered)"
            ),
            "{}",
            message(&checks, "replicas answered")
        );
        assert_eq!(outcome(&checks, "requests answered"), Outcome::Fail);
    }

    #[test]
    fn your_own_app_with_a_stopped_replica_fails_and_names_it() {
        let checks = evaluate(&own_app(3, &[2]));
        assert_eq!(outcome(&checks, "replicas answered"), Outcome::Fail);
        assert!(message(&checks, "replicas answered")
            .contains("hits-web-2 (container 000000000002) is not running and did not answer"));
        assert_eq!(outcome(&checks, "counter increasing"), Outcome::Skip);
    }

    #[test]
    fn a_stale_up_server_fails_haproxy() {
        let mut obs = stack(2, &[]);
        obs.haproxy[1].addr = "172.20.0.99:5000".into();
        let checks = evaluate(&obs);
        assert_eq!(outcome(&checks, "haproxy"), Outcome::Fail);
        let m = message(&checks, "haproxy");
        assert!(
            m.contains("server web2 (172.20.0.99:5000) is UP but no running replica"),
            "{m}"
        );
        assert!(
            m.contains("hits-web-2 (container 000000000002) has no server in HAProxy"),
            "{m}"
        );
    }

    #[test]
    fn a_down_server_is_described() {
        let mut obs = stack(2, &[]);
        obs.haproxy[0].status = "DOWN".into();
        obs.haproxy[0].check_status = "L4CON".into();
        let m = evaluate(&obs)
            .into_iter()
            .find(|c| c.name == "haproxy")
            .unwrap();
        assert_eq!(m.outcome, Outcome::Fail);
        assert!(
            m.message
                .contains("is server web1 in state DOWN (check L4CON)"),
            "{}",
            m.message
        );
    }

    #[test]
    fn too_few_slots_are_named_as_the_reason() {
        let mut obs = stack(3, &[]);
        // Two slots for three running replicas: the third has no server.
        obs.haproxy.retain(|s| !s.is_unused_slot());
        obs.haproxy.truncate(2);
        let checks = evaluate(&obs);
        let m = message(&checks, "haproxy");
        assert!(
            m.contains("3 replicas run but HAProxy has 2 server slots (lb.max_replicas)"),
            "{m}"
        );

        // Slots free but not filled: discovery told HAProxy of fewer replicas than run.
        let mut obs = stack(3, &[]);
        let last = obs
            .haproxy
            .iter()
            .rposition(|s| !s.is_unused_slot())
            .unwrap();
        obs.haproxy[last].addr.clear();
        obs.haproxy[last].status = "MAINT (resolution)".into();
        let checks = evaluate(&obs);
        let m = message(&checks, "haproxy");
        assert!(m.contains("HAProxy filled 2 of its"), "{m}");
    }

    #[test]
    fn no_registry_is_a_skip_and_source_balance_skips_hostnames() {
        let mut obs = stack(2, &[]);
        obs.registry = None;
        obs.discovery = Discovery::DockerDns;
        obs.balance = Balance::Source;
        let checks = evaluate(&obs);
        assert_eq!(outcome(&checks, "registry"), Outcome::Skip);
        assert_eq!(
            message(&checks, "registry"),
            "docker-dns discovery has no registry"
        );
        assert_eq!(outcome(&checks, "replicas answered"), Outcome::Skip);
    }

    #[test]
    fn a_timed_out_wait_says_what_it_saw() {
        let mut obs = stack(2, &[]);
        obs.convergence.converged = false;
        obs.convergence.last_problem = Some("HAProxy has 1 of 2 UP".into());
        let checks = evaluate(&obs);
        assert_eq!(outcome(&checks, "converged"), Outcome::Fail);
        assert_eq!(
            message(&checks, "converged"),
            "gave up after 120 s waiting for 2 running replicas to be routed: last seen: HAProxy has 1 of 2 UP"
        );
    }
}
