//! A stack owned by one end-to-end test (`Stack`: cleaned before it starts and when dropped,
//! with its logs on failure), its containers as `docker inspect` sees them, the harness's own
//! probe through the load balancer, and `verify` run and read as a test reads it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::engine::{docker, note, rig_image};
use super::harness::Project;

/// Requests per second sent through the load balancer while verify scales (`--load`): modest,
/// so that 2 busy cores sustain it.
pub(crate) const LOAD_RATE: &str = "50";
pub(crate) const APPLY_TIMEOUT: Duration = Duration::from_secs(1200);
pub(crate) const VERIFY_TIMEOUT: Duration = Duration::from_secs(400);
pub(crate) const SHORT_TIMEOUT: Duration = Duration::from_secs(180);

/// One container of a Compose project, as `docker inspect` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Container {
    pub id: String,
    pub name: String,
    pub service: String,
    pub number: u32,
    pub running: bool,
    pub started_at: String,
}

impl Container {
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }
}

/// A Compose project owned by one test: cleaned before it starts (leftovers of an aborted run)
/// and when it is dropped, with plain docker commands so that cleanup does not depend on the code
/// under test.
pub(crate) struct Stack {
    pub project: String,
    t0: Instant,
}

impl Stack {
    pub fn new(project: &str) -> Stack {
        let stack = Stack {
            project: project.to_owned(),
            t0: Instant::now(),
        };
        if stack.remove_everything() {
            note(format!("removed leftovers of an earlier run of {project}"));
        }
        stack
    }

    fn label(&self) -> String {
        format!("label=com.docker.compose.project={}", self.project)
    }

    pub fn step(&self, msg: &str) {
        note(format!(
            "{:>6.1}s {}: {msg}",
            self.t0.elapsed().as_secs_f64(),
            self.project
        ));
    }

    /// `docker <kind> ls -q` of this project's objects.
    pub fn ids(&self, kind: &str) -> Vec<String> {
        let label = self.label();
        let ran = match kind {
            "container" => docker(&["ps", "-aq", "--filter", &label]),
            _ => docker(&[kind, "ls", "-q", "--filter", &label]),
        };
        ran.expect_success();
        ran.stdout.split_whitespace().map(str::to_owned).collect()
    }

    pub fn containers(&self) -> Vec<Container> {
        let ids = self.ids("container");
        if ids.is_empty() {
            return Vec::new();
        }
        let format = "{{.Id}}|{{.Name}}|{{index .Config.Labels \"com.docker.compose.service\"}}|\
                      {{index .Config.Labels \"com.docker.compose.container-number\"}}|\
                      {{.State.Running}}|{{.State.StartedAt}}";
        let mut args = vec!["inspect", "--format", format];
        args.extend(ids.iter().map(String::as_str));
        let ran = docker(&args);
        ran.expect_success();
        let mut containers: Vec<Container> = ran
            .stdout
            .lines()
            .map(|line| {
                let f: Vec<&str> = line.split('|').collect();
                assert_eq!(f.len(), 6, "unexpected docker inspect line {line:?}");
                Container {
                    id: f[0].to_owned(),
                    name: f[1].trim_start_matches('/').to_owned(),
                    service: f[2].to_owned(),
                    number: f[3].parse().unwrap_or(0),
                    running: f[4] == "true",
                    started_at: f[5].to_owned(),
                }
            })
            .collect();
        containers.sort_by(|a, b| (&a.service, a.number).cmp(&(&b.service, b.number)));
        containers
    }

    pub fn web(&self) -> Vec<Container> {
        self.containers()
            .into_iter()
            .filter(|c| c.service == "web")
            .collect()
    }

    /// Each running web container's addresses on its networks, by container name.
    pub fn web_addresses(&self) -> BTreeMap<String, Vec<String>> {
        let running: Vec<Container> = self.web().into_iter().filter(|c| c.running).collect();
        let mut args = vec![
            "inspect",
            "--format",
            "{{.Name}}|{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
        ];
        args.extend(running.iter().map(|c| c.id.as_str()));
        let ran = docker(&args);
        ran.expect_success();
        ran.stdout
            .lines()
            .filter_map(|line| line.split_once('|'))
            .map(|(name, ips)| {
                let ips = ips.split_whitespace().map(str::to_owned).collect();
                (name.trim_start_matches('/').to_owned(), ips)
            })
            .collect()
    }

    /// Checks, with `docker inspect`, that every container of the stack runs hardened
    /// (docs/security.md): all capabilities dropped and none added, no-new-privileges, a
    /// read-only root file system, a process limit and a memory limit. Returns the services seen.
    pub fn assert_hardened(&self) -> BTreeSet<String> {
        let ids = self.ids("container");
        assert!(!ids.is_empty(), "no containers to inspect");
        let format = "{{.Name}}|{{json .HostConfig.CapDrop}}|{{json .HostConfig.CapAdd}}|\
                      {{json .HostConfig.SecurityOpt}}|{{.HostConfig.ReadonlyRootfs}}|\
                      {{.HostConfig.PidsLimit}}|{{.HostConfig.Memory}}|\
                      {{index .Config.Labels \"com.docker.compose.service\"}}";
        let mut args = vec!["inspect", "--format", format];
        args.extend(ids.iter().map(String::as_str));
        let ran = docker(&args);
        ran.expect_success();
        let mut services = BTreeSet::new();
        for line in ran.stdout.lines() {
            let f: Vec<&str> = line.split('|').collect();
            assert_eq!(f.len(), 8, "unexpected docker inspect line {line:?}");
            let cap_drop: Vec<String> = serde_json::from_str(f[1]).unwrap_or_default();
            let cap_add: Option<Vec<String>> = serde_json::from_str(f[2]).unwrap_or_default();
            let security: Vec<String> = serde_json::from_str(f[3]).unwrap_or_default();
            let pids: i64 = f[5].parse().unwrap_or(0);
            let memory: i64 = f[6].parse().unwrap_or(0);
            assert!(
                cap_drop == ["ALL"]
                    && cap_add.unwrap_or_default().is_empty()
                    && security.iter().any(|o| o == "no-new-privileges:true")
                    && f[4] == "true"
                    && pids > 0
                    && memory > 0,
                "container {} is not hardened: cap_drop {cap_drop:?}, cap_add {}, security_opt \
                 {security:?}, read-only root {}, pids limit {pids}, memory limit {memory}",
                f[0],
                f[2],
                f[4]
            );
            services.insert(f[7].to_owned());
        }
        services
    }

    /// Removes every container, volume and network of the project; true if there was any.
    fn remove_everything(&self) -> bool {
        let containers = self.ids("container");
        if !containers.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(containers.iter().map(String::as_str));
            docker(&args);
        }
        let mut any = !containers.is_empty();
        for kind in ["volume", "network"] {
            let ids = self.ids(kind);
            if !ids.is_empty() {
                let mut args = vec![kind, "rm"];
                args.extend(ids.iter().map(String::as_str));
                docker(&args);
                any = true;
            }
        }
        any
    }

    /// What a failed run needs for a diagnosis: every container's state and its last log lines.
    fn dump_diagnostics(&self) {
        for c in self.containers() {
            let logs = docker(&["logs", "--tail", "25", &c.id]);
            note(format!(
                "--- {} ({}, running: {}) last log lines:\n{}{}",
                c.name,
                c.short_id(),
                c.running,
                logs.stdout,
                logs.stderr
            ));
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_diagnostics();
        }
        if self.remove_everything() {
            note(format!("{}: removed what the test left", self.project));
        }
    }
}

/// What the load balancer answered to `requests` sequential JSON requests.
#[derive(Debug, Default)]
struct Probe {
    per_host: BTreeMap<String, u32>,
    hits: Vec<u64>,
    errors: Vec<String>,
}

fn probe_lb(port: u16, requests: u32) -> Probe {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let url = format!("http://127.0.0.1:{port}/");
    let mut probe = Probe::default();
    for _ in 0..requests {
        let answer = agent
            .get(&url)
            .set("Accept", "application/json")
            .call()
            .map_err(|e| e.to_string())
            .and_then(|resp| resp.into_string().map_err(|e| e.to_string()))
            .and_then(|body| {
                serde_json::from_str::<Value>(&body).map_err(|e| format!("{e}: {body:?}"))
            });
        match answer {
            Ok(v) => {
                let host = v["hostname"].as_str().unwrap_or("?").to_owned();
                *probe.per_host.entry(host).or_default() += 1;
                probe.hits.push(v["hits"].as_u64().unwrap_or(0));
            }
            Err(e) => probe.errors.push(e),
        }
    }
    probe
}

/// The checks of a `verify --json` report as (name, outcome): `pass`, `fail` or `skip`.
fn report_checks(report: &Value) -> Vec<(String, String)> {
    let checks = report["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no `checks` array in the verify report:\n{report:#}"));
    checks
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap_or("?").to_owned();
            let status = c["outcome"].as_str().unwrap_or("?").to_lowercase();
            (name, status)
        })
        .collect()
}

/// Runs `verify ARGS --json` and asserts it passed with every check passing (or skipped), and
/// that its `replicas answered` check names exactly the running web containers, `expect` of them,
/// as docker sees them. Returns the report and the containers' short ids.
pub(crate) fn verify_report(
    stack: &Stack,
    project: &Project,
    args: &[&str],
    expect: usize,
) -> (Value, BTreeSet<String>) {
    let mut full: Vec<&str> = vec!["verify"];
    full.extend_from_slice(args);
    full.push("--json");
    stack.step(&format!("provision {}", full.join(" ")));
    let ran = project.run(&full, &[], VERIFY_TIMEOUT);
    ran.expect_success();
    let report: Value = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("verify --json printed no JSON ({e})\n{ran}"));
    let checks = report_checks(&report);
    let bad: Vec<&(String, String)> = checks
        .iter()
        .filter(|(_, outcome)| !matches!(outcome.as_str(), "pass" | "skip"))
        .collect();
    assert!(bad.is_empty(), "checks not passing: {bad:?}\n{ran}");
    assert!(
        checks.iter().any(|(_, outcome)| outcome == "pass"),
        "no check passed\n{ran}"
    );
    assert_eq!(report["passed"], Value::Bool(true), "report.passed\n{ran}");
    if args.contains(&"--load") {
        let load = &report["load"];
        let n = |key: &str| {
            load[key]
                .as_u64()
                .unwrap_or_else(|| panic!("load.{key} missing\n{ran}"))
        };
        assert_eq!(n("failed"), 0, "failed requests under load\n{ran}");
        assert_eq!(n("sent"), n("succeeded") + n("failed"), "{ran}");
        assert_eq!(n("intended"), n("sent") + n("not_sent"), "{ran}");
        let seconds = load["duration_secs"].as_f64().unwrap();
        let rate: f64 = LOAD_RATE.parse().unwrap();
        // Every due request was sent: the count follows the rate over the run.
        assert!(
            (n("sent") as f64) >= 0.9 * rate * seconds && n("sent") > 0,
            "sent {} in {seconds} s at {rate}/s\n{ran}",
            n("sent")
        );
        stack.step(&format!(
            "under load: {} sent, 0 failed, p99 {} ms; last replica to join: {}",
            n("sent"),
            load["latency"]["p99_ms"],
            load["joined"]
        ));
    }
    assert_eq!(
        report["expected_replicas"].as_u64(),
        Some(expect as u64),
        "report.expected_replicas\n{ran}"
    );
    let per_replica: BTreeSet<String> = check_of(&report, "replicas answered")["numbers"]
        ["answers_per_replica"]
        .as_object()
        .unwrap_or_else(|| panic!("no answers_per_replica in the report\n{ran}"))
        .keys()
        .cloned()
        .collect();
    let running: Vec<Container> = stack.web().into_iter().filter(|c| c.running).collect();
    let names: BTreeSet<String> = running.iter().map(|c| c.name.clone()).collect();
    assert_eq!(
        running.len(),
        expect,
        "running web replicas after `{}`\n{ran}",
        ran.line
    );
    assert_eq!(
        per_replica, names,
        "replicas the report says answered vs running web containers (docker inspect)\n{ran}"
    );
    stack.step(&format!(
        "verify passed in {:.1}s: {}; answered: {}",
        ran.elapsed.as_secs_f64(),
        checks
            .iter()
            .map(|(n, s)| format!("{n}={s}"))
            .collect::<Vec<_>>()
            .join(", "),
        check_of(&report, "replicas answered")["message"]
            .as_str()
            .unwrap_or("?")
    ));
    let short_ids = running.iter().map(|c| c.short_id().to_owned()).collect();
    (report, short_ids)
}

/// One check of a verify report, by name.
pub(crate) fn check_of<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in the report:\n{report:#}"))
}

/// `verify_report` for the built-in app: both witnesses (HAProxy's server header and the
/// counter's hostname) agreed, and, independent of the report, the load balancer answers from
/// exactly the running replicas with a growing counter. Returns the JSON report.
pub(crate) fn verify_passes(
    stack: &Stack,
    project: &Project,
    args: &[&str],
    expect: usize,
    lb_port: u16,
) -> Value {
    let (report, running) = verify_report(stack, project, args, expect);
    let answered_check = check_of(&report, "replicas answered");
    assert!(
        answered_check["message"]
            .as_str()
            .is_some_and(|m| m.contains("HAProxy and the app's hostname agree on each")),
        "the built-in app's two witnesses did not agree: {answered_check:#}"
    );
    assert_eq!(check_of(&report, "counter increasing")["outcome"], "pass");
    let probe = probe_lb(lb_port, 4 * expect as u32);
    let answered: BTreeSet<String> = probe.per_host.keys().cloned().collect();
    assert!(probe.errors.is_empty(), "errors through the lb: {probe:?}");
    assert_eq!(
        answered, running,
        "hosts answering through the lb vs running web containers"
    );
    assert!(
        probe.hits.windows(2).all(|w| w[0] < w[1]),
        "hit counter not strictly increasing: {:?}",
        probe.hits
    );
    stack.step(&format!(
        "our own probe: lb answered from {} hosts {:?}",
        answered.len(),
        probe.per_host
    ));
    report
}

pub(crate) fn hits_now(lb_port: u16) -> u64 {
    let probe = probe_lb(lb_port, 1);
    assert!(probe.errors.is_empty(), "GET / through the lb: {probe:?}");
    probe.hits[0]
}

/// `hits_now` right after `apply`: apply waits until the containers are healthy, and HAProxy
/// routes to them only after its next DNS resolution and health check (a 503 `<NOSRV>` for a
/// moment, seen in a run), so this retries for a while.
pub(crate) fn hits_once_routed(lb_port: u16) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let probe = probe_lb(lb_port, 1);
        if probe.errors.is_empty() {
            return probe.hits[0];
        }
        assert!(
            Instant::now() < deadline,
            "GET / through the lb, 30 s after apply: {probe:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A consul-dns spec on the rig images, with a test's project name, replicas and host ports.
pub(crate) fn consul_dns_spec(
    project: &str,
    replicas: u32,
    lb_port: u16,
    stats_port: u16,
    consul_port: u16,
) -> String {
    format!(
        "# end-to-end test stack: consul-dns discovery on the offline rig images\n\
         project: {project}\n\
         discovery: consul-dns\n\
         images:\n  base: {base}\n  consul: {consul}\n\
         web:\n  replicas: {replicas}\n\
         consul:\n  http_port: {consul_port}\n\
         lb:\n  port: {lb_port}\n  stats_port: {stats_port}\n",
        base = rig_image("debian:trixie"),
        consul = rig_image("consul:1.8.7"),
    )
}
