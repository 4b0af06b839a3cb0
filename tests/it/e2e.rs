//! End-to-end tests: the built `provision` binary drives a real stack on a real Docker engine.
//!
//! The stacks use the offline rig images that `.ci/rig-images.sh` builds (a Debian base imported
//! with mmdebstrap, and consul from Debian's static binary), so they need no registry. They run one
//! stack at a time (a lock: two stacks would fight over 2 cores), with their own Compose project
//! names and host ports (28xxx: below the kernel's ephemeral range, 32768-60999, so that no
//! client connection on the machine can hold one when a stack binds it), and remove everything
//! they created in a drop guard, also when an assertion fails; a failing step dumps the command, its stdout and stderr, and the stack's logs.
//! Each step is logged to stderr as it happens (not captured by the test harness), with timings.
//! The images `apply` builds (`provision-e2e-dns-{web,lb,redis}:<hash>`, and `provision-e2e-own-…`
//! for the test of our own app) are kept as a build cache: a rerun with unchanged blueprints
//! builds nothing.
//!
//! Switches (environment variables):
//! - `PROVISION_E2E=require`: the docker CLI, the engine, Compose v2 and the rig images must be
//!   there, or these tests FAIL. This is the default when `CI` is set; `.ci/run` sets it
//!   explicitly (see `harness::every_check_required`).
//! - `PROVISION_E2E=skip`: skip them. Unset (and no `CI`): they run when an engine answers and the
//!   rig images exist, and otherwise print why they were skipped (`SKIPPED <test> ...`).
//! - `PROVISION_RIG_PREFIX`: where the rig images live (default `localhost/provision-rig`).
//! - `PROVISION_E2E_CONSUL_TEMPLATE=1`: run the reference-mode test (consul-template + registrator)
//!   even when its images are not present locally: Compose then pulls them, so a registry must be
//!   reachable. `=0` always skips it. Unset, it runs only when both images are already present
//!   locally, and otherwise prints that it was skipped and which image is missing.
//!   `PROVISION_E2E_CONSUL_TEMPLATE_IMAGE` / `PROVISION_E2E_REGISTRATOR_IMAGE` choose those images
//!   (default: the spec's defaults), and `PROVISION_E2E_CONSUL_TEMPLATE_SOURCE=download` makes the
//!   lb image download consul-template (verified) instead of copying it from the image.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{
    every_check_required, external_tool, find_on_path, report_skip, run_program, skip_or_fail,
    Project, Ran,
};

/// Requests per second sent through the load balancer while verify scales (`--load`): modest,
/// so that 2 busy cores sustain it.
const LOAD_RATE: &str = "50";
pub(crate) const APPLY_TIMEOUT: Duration = Duration::from_secs(1200);
pub(crate) const VERIFY_TIMEOUT: Duration = Duration::from_secs(400);
pub(crate) const SHORT_TIMEOUT: Duration = Duration::from_secs(180);
const DOCKER_TIMEOUT: Duration = Duration::from_secs(90);

/// One stack at a time, across every test of this binary.
static ENGINE: Mutex<()> = Mutex::new(());

/// A line on the test's stderr, written directly so that it shows while the test runs (libtest
/// captures only `print!`/`eprint!`); in CI this is the readable story of each e2e run.
pub(crate) fn note(msg: impl AsRef<str>) {
    let mut err = std::io::stderr().lock();
    for line in msg.as_ref().lines() {
        let _ = writeln!(err, "[e2e] {line}");
    }
}

/// `PROVISION_E2E=skip` (or `0`): these tests do not run, even under `CI`.
fn switched_off() -> bool {
    // Also rejects a misspelt value.
    every_check_required();
    matches!(std::env::var("PROVISION_E2E").as_deref(), Ok("skip" | "0"))
}

/// What a skipped e2e test did not check, for its `SKIPPED` line.
const STACK_CHECK: &str = "an end-to-end stack on a real engine";

pub(crate) fn rig_image(name: &str) -> String {
    let prefix =
        std::env::var("PROVISION_RIG_PREFIX").unwrap_or_else(|_| "localhost/provision-rig".into());
    format!("{prefix}/{name}")
}

pub(crate) fn docker(args: &[&str]) -> Ran {
    run_program("docker", args, DOCKER_TIMEOUT)
}

fn image_present(image: &str) -> bool {
    docker(&["image", "inspect", "--format", "{{.Id}}", image]).code == Some(0)
}

/// Why the engine cannot run an e2e stack, or None when it can.
fn engine_problem(images: &[String]) -> Option<String> {
    if find_on_path("docker").is_none() {
        return Some("docker not found on PATH".into());
    }
    let version = docker(&["version", "--format", "{{.Server.Version}}"]);
    if version.code != Some(0) {
        let why = version
            .stderr
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        return Some(format!(
            "no Docker engine answers (`docker version`: {why}); start one (.ci/engine.sh start)"
        ));
    }
    if docker(&["compose", "version", "--short"]).code != Some(0) {
        return Some("the Docker Compose v2 plugin is missing (.ci/install-tools.sh)".into());
    }
    let missing: Vec<&str> = images
        .iter()
        .filter(|image| !image_present(image))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Some(format!(
            "rig images missing: {} (build them with .ci/rig-images.sh)",
            missing.join(", ")
        ));
    }
    None
}

/// The engine, held by one stack test at a time: across this binary's threads (the mutex) and
/// across processes (an flock on a file in the temp directory, released by the kernel when the
/// holder exits, even killed): two test runs on one engine would remove each other's stacks.
pub struct EngineLock {
    _thread: MutexGuard<'static, ()>,
    _process: std::fs::File,
}

pub(crate) fn engine_lock() -> EngineLock {
    // A test that panicked while holding the lock cleaned up in its guard: the lock is usable.
    let thread = ENGINE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let path = std::env::temp_dir().join("provision-e2e-engine.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    if file.try_lock().is_err() {
        note(format!(
            "another test run holds the engine ({}): waiting",
            path.display()
        ));
        file.lock()
            .unwrap_or_else(|e| panic!("locking {}: {e}", path.display()));
    }
    EngineLock {
        _thread: thread,
        _process: file,
    }
}

/// Takes the engine lock and decides whether the calling test runs: None means skipped (reason
/// printed), and a missing engine fails the test where every check is required.
pub(crate) fn start(images: &[String]) -> Option<EngineLock> {
    if switched_off() {
        report_skip(STACK_CHECK, "PROVISION_E2E=skip");
        return None;
    }
    // Without docker there is no engine to wait for.
    if find_on_path("docker").is_none() {
        skip_or_fail(STACK_CHECK, "docker not found on PATH");
        return None;
    }
    let lock = engine_lock();
    match engine_problem(images) {
        None => Some(lock),
        Some(problem) => {
            skip_or_fail(STACK_CHECK, &problem);
            None
        }
    }
}

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
    project: String,
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
    fn web_addresses(&self) -> BTreeMap<String, Vec<String>> {
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
fn verify_report(
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
    // A real report, with scale and load, against docs/schema/verify.json.
    crate::json_schema::assert_valid("verify", &ran.stdout);
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
fn check_of<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in the report:\n{report:#}"))
}

/// `verify_report` for the built-in app: both witnesses (HAProxy's server header and the
/// counter's hostname) agreed, and, independent of the report, the load balancer answers from
/// exactly the running replicas with a growing counter.
pub(crate) fn verify_passes(
    stack: &Stack,
    project: &Project,
    args: &[&str],
    expect: usize,
    lb_port: u16,
) {
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
}

pub(crate) fn hits_now(lb_port: u16) -> u64 {
    let probe = probe_lb(lb_port, 1);
    assert!(probe.errors.is_empty(), "GET / through the lb: {probe:?}");
    probe.hits[0]
}

/// `hits_now` right after `apply`: apply waits until the containers are healthy, and HAProxy
/// routes to them only after its next DNS resolution and health check (a 503 `<NOSRV>` for a
/// moment, seen in a run), so this retries for a while.
fn hits_once_routed(lb_port: u16) -> u64 {
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

/// The offline mode, the whole life of a stack: apply, verify at 5, 2 and as it stands, an
/// idempotent re-apply, a replica stopped by hand, the counter surviving destroy, destroy --volumes.
#[test]
fn e2e_consul_dns_apply_verify_5_2_reapply_stop_destroy() {
    const PROJECT: &str = "provision-e2e-dns";
    const LB: u16 = 28080;
    let images = [rig_image("debian:trixie"), rig_image("consul:1.8.7")];
    let Some(_engine) = start(&images) else {
        return;
    };
    let project = Project::new();
    project.write(
        "provision.yaml",
        &consul_dns_spec(PROJECT, 2, LB, 28404, 28500),
    );
    let stack = Stack::new(PROJECT);

    stack.step("provision doctor; provision apply --dry-run");
    project
        .run(&["doctor"], &[], SHORT_TIMEOUT)
        .expect_success();
    let ran = project.run(&["apply", "--dry-run"], &[], SHORT_TIMEOUT);
    ran.expect_success();
    assert!(
        ran.stdout.contains("docker compose"),
        "no commands shown\n{ran}"
    );
    assert!(
        stack.containers().is_empty(),
        "apply --dry-run started containers\n{ran}"
    );

    stack.step("provision apply (first: builds the images)");
    let ran = project.run(&["apply"], &[], APPLY_TIMEOUT);
    ran.expect_success();
    stack.step(&format!("apply done in {:.1}s", ran.elapsed.as_secs_f64()));
    assert_eq!(stack.web().len(), 2, "web replicas after apply (spec: 2)");
    let ran = project.run(&["status"], &[], SHORT_TIMEOUT);
    ran.expect_success();
    assert!(
        ran.stdout.contains("web"),
        "status does not show web\n{ran}"
    );

    // Under steady load: not one request may fail while replicas come and go.
    verify_passes(
        &stack,
        &project,
        &["--scale", "5", "--load", LOAD_RATE],
        5,
        LB,
    );
    verify_passes(
        &stack,
        &project,
        &["--scale", "2", "--load", LOAD_RATE],
        2,
        LB,
    );
    each_consul_lists_its_own_replicas_beside_another_project(&stack, 28500);

    // The JUnit report of the same run, as CI systems consume it.
    let ran = project.run(&["verify", "--junit", "verify.xml"], &[], VERIFY_TIMEOUT);
    ran.expect_success();
    let junit = project.read("verify.xml");
    assert!(
        junit.contains("<testsuite") && !junit.contains("<failure"),
        "{junit}\n{ran}"
    );
    verify_passes(&stack, &project, &[], 2, LB);

    // A second apply with nothing changed must not restart (or replace) any container.
    let before = stack.containers();
    stack.step("provision apply (second, nothing changed)");
    let ran = project.run(&["apply"], &[], APPLY_TIMEOUT);
    ran.expect_success();
    let after = stack.containers();
    assert_eq!(
        before, after,
        "containers (id, StartedAt) changed across a no-change apply\n{ran}"
    );
    stack.step(&format!(
        "second apply in {:.1}s restarted none of {} containers",
        ran.elapsed.as_secs_f64(),
        after.len()
    ));

    // A replica stopped by hand: verify fails and names it.
    let victim = stack.web().into_iter().next().expect("a web replica");
    stack.step(&format!(
        "docker stop {} ({})",
        victim.name,
        victim.short_id()
    ));
    docker(&["stop", &victim.id]).expect_success();
    let ran = project.run(&["verify", "--timeout", "20"], &[], VERIFY_TIMEOUT);
    ran.expect_code(1);
    let out = ran.all_output();
    assert!(
        out.contains(&victim.name) || out.contains(victim.short_id()),
        "verify does not name the stopped replica {} ({})\n{ran}",
        victim.name,
        victim.short_id()
    );
    let naming = out
        .lines()
        .find(|l| l.contains(&victim.name) || l.contains(victim.short_id()))
        .unwrap_or_default();
    stack.step(&format!(
        "verify failed (exit 1) and said: {}",
        naming.trim()
    ));

    // The counter lives in the redis volume: destroy without --volumes keeps it.
    let hits = hits_now(LB);
    stack.step(&format!("hits = {hits}; provision destroy"));
    project
        .run(&["destroy"], &[], SHORT_TIMEOUT)
        .expect_success();
    assert!(stack.containers().is_empty(), "containers left by destroy");
    assert!(
        !stack.ids("volume").is_empty(),
        "destroy without --volumes removed the redis volume"
    );
    stack.step("provision apply (after destroy)");
    project.run(&["apply"], &[], APPLY_TIMEOUT).expect_success();
    let hits_after = hits_once_routed(LB);
    assert!(
        hits_after > hits,
        "hit counter did not survive destroy + apply: {hits} then {hits_after}"
    );
    stack.step(&format!("hits = {hits_after} after destroy + apply"));

    stack.step("provision destroy --volumes");
    project
        .run(&["destroy", "--volumes"], &[], SHORT_TIMEOUT)
        .expect_success();
    assert!(stack.containers().is_empty(), "containers left");
    assert!(stack.ids("volume").is_empty(), "volumes left");
    stack.step("done");
}

/// Two projects on one engine: a second, one-replica stack started beside `stack` (whose
/// consul publishes its API on `consul_port`); each consul lists only its own web replicas.
fn each_consul_lists_its_own_replicas_beside_another_project(stack: &Stack, consul_port: u16) {
    const BESIDE: &str = "provision-e2e-dns-beside";
    const BESIDE_CONSUL: u16 = 28096;
    let t0 = Instant::now();
    let beside = Stack::new(BESIDE);
    let project = Project::new();
    project.write(
        "provision.yaml",
        &consul_dns_spec(BESIDE, 1, 28090, 28094, BESIDE_CONSUL),
    );
    stack.step(&format!("a second project beside: {BESIDE}, apply"));
    project.run(&["apply"], &[], APPLY_TIMEOUT).expect_success();
    for (stack, port) in [(stack, consul_port), (&beside, BESIDE_CONSUL)] {
        let own: BTreeSet<String> = stack.web_addresses().into_values().flatten().collect();
        let url = format!("http://127.0.0.1:{port}/v1/catalog/service/web");
        let listed: BTreeSet<String> = wait_for_catalog(&url)
            .iter()
            .map(|entry| entry["ServiceAddress"].as_str().unwrap_or("").to_owned())
            .collect();
        assert!(
            !listed.is_empty() && listed.is_subset(&own),
            "{}'s consul lists {listed:?}, its own web replicas are {own:?}",
            stack.project
        );
    }
    project
        .run(&["destroy", "--volumes"], &[], SHORT_TIMEOUT)
        .expect_success();
    stack.step(&format!(
        "each consul listed only its own replicas; the second project cost {:.1}s",
        t0.elapsed().as_secs_f64()
    ));
}

/// consul's `/v1/catalog/service/web` answer, once it lists at least one instance (10 s at most).
fn wait_for_catalog(url: &str) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let entries: Vec<Value> = ureq::get(url)
            .timeout(Duration::from_secs(3))
            .call()
            .ok()
            .and_then(|answer| answer.into_string().ok())
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        if !entries.is_empty() || start.elapsed() > Duration::from_secs(10) {
            return entries;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The reference mode (registrator + consul-template). Its images cannot be had offline, so it
/// runs only when they are present locally or PROVISION_E2E_CONSUL_TEMPLATE=1 (see the top).
#[test]
fn e2e_consul_template_apply_verify_3_1_destroy() {
    const PROJECT: &str = "provision-e2e-ct";
    const LB: u16 = 28190; // 28180-28389 are the swarm rig's (.ci/README.md)
    use provision::spec::model::defaults;
    let env = |key: &str, default: &str| std::env::var(key).unwrap_or_else(|_| default.into());
    let ct_image = env(
        "PROVISION_E2E_CONSUL_TEMPLATE_IMAGE",
        defaults::CONSUL_TEMPLATE_IMAGE,
    );
    let registrator = env(
        "PROVISION_E2E_REGISTRATOR_IMAGE",
        defaults::REGISTRATOR_IMAGE,
    );
    let source = env("PROVISION_E2E_CONSUL_TEMPLATE_SOURCE", "image");
    let forced = std::env::var("PROVISION_E2E_CONSUL_TEMPLATE").ok();
    if forced.as_deref() == Some("0") {
        report_skip("the reference mode", "PROVISION_E2E_CONSUL_TEMPLATE=0");
        return;
    }
    let rig = [rig_image("debian:trixie"), rig_image("consul:1.8.7")];
    let Some(_engine) = start(&rig) else {
        return;
    };
    if forced.as_deref() != Some("1") {
        let mut needed = vec![registrator.clone()];
        if source == "image" {
            needed.push(ct_image.clone());
        }
        let missing: Vec<String> = needed.into_iter().filter(|i| !image_present(i)).collect();
        if !missing.is_empty() {
            // Never a failure, not even in CI: no offline machine can have these images.
            report_skip(
                "the reference mode",
                &format!(
                    "image(s) not present locally: {}; no registry is reachable to pull them. \
                     Load them (docker load) or set PROVISION_E2E_CONSUL_TEMPLATE=1 to let \
                     Compose pull them.",
                    missing.join(", ")
                ),
            );
            return;
        }
    }

    let project = Project::new();
    project.write(
        "provision.yaml",
        &format!(
            "# end-to-end test stack: the reference mode (registrator + consul-template)\n\
             project: {PROJECT}\n\
             discovery: consul-template\n\
             images:\n  base: {base}\n  consul: {consul}\n  \
             consul_template: {ct_image}\n  registrator: {registrator}\n\
             consul:\n  http_port: 28600\n\
             lb:\n  port: {LB}\n  stats_port: 28504\n  consul_template: {source}\n",
            base = rig_image("debian:trixie"),
            consul = rig_image("consul:1.8.7"),
        ),
    );
    let stack = Stack::new(PROJECT);
    stack.step("provision apply");
    project.run(&["apply"], &[], APPLY_TIMEOUT).expect_success();
    verify_passes(&stack, &project, &["--scale", "3"], 3, LB);
    verify_passes(&stack, &project, &["--scale", "1"], 1, LB);
    stack.step("provision destroy --volumes");
    project
        .run(&["destroy", "--volumes"], &[], SHORT_TIMEOUT)
        .expect_success();
    assert!(stack.containers().is_empty(), "containers left");
    stack.step("done");
}

/// A GET through the load balancer, with or without the probe header: the status, the
/// `X-Provision-Server` header if any, and the body.
fn get_lb(port: u16, probe_header: bool) -> Result<(u16, Option<String>, String), String> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .max_idle_connections(0)
        .build();
    let mut request = agent.get(&format!("http://127.0.0.1:{port}/"));
    if probe_header {
        request = request.set("X-Provision-Probe", "e2e");
    }
    let response = request.call().map_err(|e| e.to_string())?;
    let status = response.status();
    let server = response.header("X-Provision-Server").map(str::to_owned);
    let body = response.into_string().map_err(|e| e.to_string())?;
    Ok((status, server, body))
}

/// Our own app (tests/fixtures/apps/hello, not the hit counter) on docker-dns: verify at 3 names
/// the three containers that answered, a replica stopped by hand fails verify by name, verify at
/// 1 passes, destroy. Checked independently: the app's own `hello from <hostname>` answers, and
/// the load balancer's server header (only when asked) against docker's addresses.
#[test]
fn e2e_custom_app_docker_dns_verify_3_stop_1_destroy() {
    const PROJECT: &str = "provision-e2e-own";
    const LB: u16 = 28980;
    let base = rig_image("debian:trixie");
    let Some(_engine) = start(std::slice::from_ref(&base)) else {
        return;
    };
    let project = Project::new();
    // The fixture app as a user would have it, but FROM the offline base: provision passes no
    // build arguments to your own Dockerfile, so the test writes the FROM line itself.
    let fixture = crate::harness::repo_root().join("tests/fixtures/apps/hello");
    let dockerfile = std::fs::read_to_string(fixture.join("Dockerfile")).unwrap();
    let from = dockerfile
        .lines()
        .find(|l| l.starts_with("FROM "))
        .expect("a FROM line in the fixture's Dockerfile");
    project.write(
        "hello/Dockerfile",
        &dockerfile.replacen(from, &format!("FROM {base}"), 1),
    );
    project.write(
        "hello/server.py",
        &std::fs::read_to_string(fixture.join("server.py")).unwrap(),
    );
    project.write(
        "provision.yaml",
        &format!(
            "# end-to-end test stack: our own app (not the counter) on docker-dns\n\
             project: {PROJECT}\n\
             discovery: docker-dns\n\
             images:\n  base: {base}\n\
             web:\n  app: hello\n  port: 7000\n  health_path: /ready\n  replicas: 2\n  \
             expect:\n    status: 200\n    contains: \"hello from \"\n\
             lb:\n  port: {LB}\n  stats_port: 28904\n"
        ),
    );
    let stack = Stack::new(PROJECT);
    stack.step("provision apply (builds the app's image from its own Dockerfile)");
    let ran = project.run(&["apply"], &[], APPLY_TIMEOUT);
    ran.expect_success();
    stack.step(&format!("apply done in {:.1}s", ran.elapsed.as_secs_f64()));

    let (report, running) = verify_report(&stack, &project, &["--scale", "3"], 3);
    assert_eq!(
        check_of(&report, "counter increasing")["outcome"],
        "skip",
        "{report:#}"
    );
    let requests = check_of(&report, "requests answered")["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        requests.contains("with HTTP 200 and \"hello from \" in the body"),
        "{requests}"
    );

    // Independent of the report: the app's own word, and the header only when asked for.
    let addresses = stack.web_addresses();
    let mut hosts = BTreeSet::new();
    let mut servers = BTreeSet::new();
    for _ in 0..12 {
        let (status, header, body) = get_lb(LB, false).expect("GET / through the lb");
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            header, None,
            "X-Provision-Server leaked without the probe header"
        );
        let host = body
            .trim()
            .strip_prefix("hello from ")
            .unwrap_or_else(|| panic!("not the hello app: {body:?}"));
        hosts.insert(host.to_owned());
        let (_, header, _) = get_lb(LB, true).expect("GET / with the probe header");
        let header = header.expect("no X-Provision-Server with the probe header");
        let (server, addr) = header.rsplit_once(' ').expect("`<server> <ip>:<port>`");
        let ip = addr.rsplit_once(':').map(|(ip, _)| ip).unwrap_or(addr);
        let name = addresses
            .iter()
            .find(|(_, ips)| ips.iter().any(|i| i == ip))
            .map(|(name, _)| name.clone())
            .unwrap_or_else(|| {
                panic!("{header}: no running web container has {ip}: {addresses:?}")
            });
        servers.insert(format!("{server}={name}"));
    }
    assert_eq!(
        hosts, running,
        "hosts saying hello vs running web containers"
    );
    stack.step(&format!(
        "our own probe: hello from {hosts:?}; with the probe header HAProxy named {servers:?}"
    ));

    // A replica stopped by hand (a middle one, so that scaling to 1 keeps a running one).
    let victim = stack
        .web()
        .into_iter()
        .find(|c| c.number == 2)
        .expect("web replica 2");
    stack.step(&format!(
        "docker stop {} ({})",
        victim.name,
        victim.short_id()
    ));
    docker(&["stop", &victim.id]).expect_success();
    let ran = project.run(&["verify", "--timeout", "20"], &[], VERIFY_TIMEOUT);
    ran.expect_code(1);
    let naming: Vec<&str> = ran
        .stdout
        .lines()
        .filter(|l| l.contains(&victim.name))
        .map(str::trim)
        .collect();
    assert!(
        naming
            .iter()
            .any(|l| l.contains("is not running and did not answer")),
        "verify does not say that {} did not answer\n{ran}",
        victim.name
    );
    stack.step(&format!(
        "verify failed (exit 1) and said: {}",
        naming.join(" | ")
    ));

    verify_report(&stack, &project, &["--scale", "1"], 1);
    stack.step("provision destroy --volumes");
    project
        .run(&["destroy", "--volumes"], &[], SHORT_TIMEOUT)
        .expect_success();
    assert!(stack.containers().is_empty(), "containers left");
    stack.step("done");
}

/// With the daemon unreachable (gone, or hung), every docker-facing command stops quickly and says what is wrong:
/// exit code 3 (a tool failed), except `doctor`, whose job is to report problems: its report goes
/// to stdout and it exits 1 like any failed check (see `ExitStatus`). Needs no engine, only the
/// docker CLI (without it provision stops before it would talk to a daemon).
#[test]
fn e2e_every_docker_command_fails_fast_without_a_daemon() {
    if external_tool("docker", "every command against a gone or hung daemon").is_none() {
        return;
    }
    let project = Project::new();
    project.write(
        "provision.yaml",
        &consul_dns_spec("provision-e2e-dead", 2, 28280, 28704, 28800),
    );
    // A daemon that is gone (no socket), and one that hangs: its socket accepts connections and
    // never answers (a wedged dockerd), which only a timeout in provision can get out of.
    let hung = project.file("hung-docker.sock");
    let listener = std::os::unix::net::UnixListener::bind(&hung).expect("bind a unix socket");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept() {
            held.push(conn);
        }
    });
    let hung_host = format!("unix://{}", hung.display());
    // The bounds README states: a gone daemon fails at once (about 0.1 s measured; 2 s leaves
    // room for a loaded CI machine), a hung one after the preflight's 5 s wait for an answer.
    for (daemon, host, bound) in [
        (
            "gone",
            "unix:///nonexistent/provision-e2e/docker.sock",
            Duration::from_secs(2),
        ),
        ("hung", hung_host.as_str(), Duration::from_secs(7)),
    ] {
        fails_fast_everywhere(&project, daemon, host, bound);
    }
}

fn fails_fast_everywhere(project: &Project, daemon: &str, host: &str, bound: Duration) {
    let dead = [("DOCKER_HOST", host)];
    for (command, code) in [
        ("apply", 3),
        ("verify", 3),
        ("status", 3),
        ("destroy", 3),
        ("doctor", 1),
    ] {
        let ran = project.run(&[command], &dead, Duration::from_secs(60));
        ran.expect_code(code);
        assert!(
            ran.elapsed < bound,
            "`{command}` took {:.1?} to give up against a {daemon} daemon (at most {bound:?})\n{ran}",
            ran.elapsed
        );
        let out = ran.all_output().to_lowercase();
        assert!(
            out.contains("docker")
                && ["daemon", "reach", "connect"]
                    .iter()
                    .any(|w| out.contains(w)),
            "`{command}` does not say clearly that the docker daemon is unreachable\n{ran}"
        );
        let said = ran
            .all_output()
            .lines()
            .find(|l| l.starts_with("error:") || l.contains("FAIL"))
            .unwrap_or_default()
            .to_owned();
        note(format!(
            "{daemon} daemon: `provision {command}` exit {code} after {:.2}s: {}",
            ran.elapsed.as_secs_f64(),
            said.trim()
        ));
    }
}
