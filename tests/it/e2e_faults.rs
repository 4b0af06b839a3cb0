//! Bad days, end to end: one consul-dns stack (3 replicas) on the real engine takes one fault
//! after another while an open-loop client (`provision::probe::load`, the generator behind
//! `verify --load`) sends 50 requests per second through the load balancer, and every number is
//! logged: requests sent and failed, how long until the stack is whole again, what `provision
//! verify` says during and after.
//!
//! One stack for all faults, in sequence, to keep CI's time down; each fault starts from a whole
//! stack (verify passes) and ends with one. "Whole" is judged from outside, independently of
//! verify: every web container running, HAProxy's UP servers exactly their addresses, consul's
//! passing instances exactly their addresses.
//!
//! The faults and what passes:
//! 1. a replica's PID 1 killed with SIGKILL from the host (what the OOM killer does): 0 failed
//!    requests, verify names the replica while it is away, Docker restarts it, it is routed again;
//! 2. `docker kill` of a replica (a manual stop: Docker does not restart it): 0 failed requests,
//!    verify fails (exit 1) naming it, the next `provision apply` starts it again;
//! 3. consul restarted (a `-dev` agent: its catalog is empty afterwards): 0 failed requests, every
//!    replica registers itself again, consul lists all of them within a bound;
//! 4. redis stopped and started again: only 503s while it is away (answered quickly, no stack
//!    trace), none before or after, and the counter continues (AOF);
//! 5. the lb restarted: the gap (failed requests, seconds from the first failure to the first
//!    answer after it) is measured and bounded; it comes back on its own, routing to every
//!    replica, and no request fails after it.
//!
//! The sixth fault, a full disk while rendering, needs no engine: see render_cli.rs.
//!
//! Same switches as the other e2e tests (see e2e.rs): `PROVISION_E2E=require|skip`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use provision::probe::load::{self, Load, LoadOptions, LoadReport};
use provision::probe::{registry, stats};

use crate::support::engine::{docker, rig_image, start};
use crate::support::harness::{run_program, Project, Ran};
use crate::support::stack::{
    consul_dns_spec, hits_now, verify_passes, Container, Stack, APPLY_TIMEOUT, SHORT_TIMEOUT,
    VERIFY_TIMEOUT,
};

const PROJECT: &str = "provision-e2e-faults";
const LB: u16 = 28480; // 28180-28389 are the swarm rig's (.ci/README.md)
const STATS: u16 = 28604;
const CONSUL: u16 = 28700;
const REPLICAS: usize = 3;
/// Requests per second through the load balancer during every fault (as in e2e.rs).
const RATE: f64 = 50.0;
/// How long the stack may take to become whole again after a fault it heals on its own.
const HEAL_BOUND: Duration = Duration::from_secs(45);
/// How long the lb may refuse connections when it restarts.
const LB_GAP_BOUND: Duration = Duration::from_secs(15);
/// How long consul may take to list every replica again after a restart: each replica checks
/// every 2 s that consul still knows it (entrypoint.py), then consul's first check passes; well
/// within the 30 s HAProxy keeps servers it cannot resolve (`hold nx`).
const CONSUL_RELIST_BOUND: Duration = Duration::from_secs(15);
/// How long a request may take while redis is away: HAProxy's health checks give up after 1 s,
/// and an answer should not wait longer than they do.
const REDIS_DOWN_ANSWER_BOUND: Duration = Duration::from_secs(1);
/// lb.check_interval (the spec's default): HAProxy's health checks run this often.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Load before and after a fault, so a failure just outside the fault's window is seen too.
const SETTLE: Duration = Duration::from_secs(3);

#[test]
fn e2e_faults_under_load_crash_kill_consul_redis_lb() {
    let images = [rig_image("debian:trixie"), rig_image("consul:1.8.7")];
    let Some(_engine) = start(&images) else {
        return;
    };
    let project = Project::new();
    project.write(
        "provision.yaml",
        &consul_dns_spec(PROJECT, REPLICAS as u32, LB, STATS, CONSUL),
    );
    let stack = Stack::new(PROJECT);
    stack.step("provision apply");
    let ran = project.run(&["apply"], &[], APPLY_TIMEOUT);
    ran.expect_success();
    stack.step(&format!("apply done in {:.1}s", ran.elapsed.as_secs_f64()));
    verify_passes(&stack, &project, &[], REPLICAS, LB);
    // The stats page's password (the stack's secret, read from the state directory as an
    // operator would); no fault below rotates it.
    STATS_PASSWORD
        .set(crate::support::secrets::stack_secret(
            &project.state_base(),
            PROJECT,
            "lb_stats_password",
        ))
        .expect("the password is read once");

    let faults = Faults {
        stack: &stack,
        project: &project,
    };
    faults.replica_crashes();
    faults.replica_killed_by_hand();
    faults.consul_restarts();
    faults.redis_restarts();
    faults.lb_restarts();
    faults.two_commands_at_once();

    stack.step("provision destroy --volumes");
    project
        .run(&["destroy", "--volumes"], &[], SHORT_TIMEOUT)
        .expect_success();
    stack.step("done");
}

/// The stack's stats password, read once after the first apply (see the test).
static STATS_PASSWORD: std::sync::OnceLock<String> = std::sync::OnceLock::new();

struct Faults<'a> {
    stack: &'a Stack,
    project: &'a Project,
}

impl Faults<'_> {
    /// Fault 1, the OOM killer's way: SIGKILL to the replica's main process, from the host.
    fn replica_crashes(&self) {
        let stack = self.stack;
        let victim = stack.web().remove(1);
        let before = inspect(&victim.id);
        stack.step(&format!(
            "FAULT 1, replica crash: kill -9 of {}'s PID 1 (host PID {}) under {RATE}/s",
            victim.name, before.pid
        ));
        let load = start_load();
        std::thread::sleep(SETTLE);
        let t0 = Instant::now();
        run_program("kill", &["-9", &before.pid], SHORT_TIMEOUT).expect_success();
        // Live traffic, not the health checks (2 failed, 2 s apart), takes it out of rotation.
        let poll = Duration::from_millis(20);
        let out_of_rotation = poll_until(t0, HEAL_BOUND, poll, "HAProxy to drop it", || {
            let up = up_addresses().unwrap_or_default();
            up.contains(&before.ip)
                .then(|| format!("{} is still UP", before.ip))
        });
        stack.step(&format!(
            "HAProxy took {} ({}) out of rotation {:.0} ms after the kill",
            victim.name,
            before.ip,
            out_of_rotation * 1000.0
        ));
        assert!(
            out_of_rotation < CHECK_INTERVAL.as_secs_f64(),
            "HAProxy routed to a dead replica for {out_of_rotation:.1}s: it waited for its checks"
        );

        // While it is away, verify must say which replica. Docker restarts it within a second
        // or so, at the same address, and HAProxy's next check (rise 1) routes to it again: a
        // verify that waits (1 s here) may see the stack whole again and pass, after it
        // named the missing replica while waiting. Either way it must name it.
        let ran = self
            .project
            .run(&["verify", "--timeout", "1"], &[], VERIFY_TIMEOUT);
        let said = self.names(&ran, &victim);
        stack.step(&format!(
            "verify {:.1}s after the kill: exit {:?}, said: {said}",
            t0.elapsed().as_secs_f64(),
            ran.code
        ));
        assert!(
            matches!(ran.code, Some(0 | 1)),
            "verify neither passed nor failed its checks\n{ran}"
        );

        let healed = wait_whole(stack, t0, HEAL_BOUND);
        std::thread::sleep(SETTLE);
        let report = load.stop();
        let after = inspect(&victim.id);
        stack.step(&format!(
            "whole again {healed:.1}s after the kill; {} restarted by Docker (restart count {} -> {})",
            victim.name, before.restarts, after.restarts
        ));
        tell(stack, "FAULT 1 load", &report);
        assert!(
            after.restarts > before.restarts && after.running,
            "{} was not restarted by its restart policy: {before:?} then {after:?}",
            victim.name
        );
        assert_eq!(report.failed, 0, "failed requests: {report:#?}");
        verify_passes(stack, self.project, &[], REPLICAS, LB);
    }

    /// Fault 2, `docker kill`: a manual stop as far as Docker is concerned, so no restart;
    /// verify says so, and `apply` repairs it.
    fn replica_killed_by_hand(&self) {
        let stack = self.stack;
        let victim = stack.web().remove(0);
        stack.step(&format!(
            "FAULT 2, docker kill {} under {RATE}/s",
            victim.name
        ));
        let load = start_load();
        std::thread::sleep(SETTLE);
        let t0 = Instant::now();
        docker(&["kill", &victim.id]).expect_success();
        let ran = self
            .project
            .run(&["verify", "--timeout", "10"], &[], VERIFY_TIMEOUT);
        let said = self.names(&ran, &victim);
        stack.step(&format!("verify: exit {:?}, said: {said}", ran.code));
        ran.expect_code(1);
        assert!(
            !inspect(&victim.id).running,
            "Docker restarted a replica stopped with `docker kill`"
        );

        let ran = self.project.run(&["apply"], &[], APPLY_TIMEOUT);
        ran.expect_success();
        let reason = ran
            .stderr
            .lines()
            .find(|l| l.contains("to apply"))
            .unwrap_or("(no reason given)")
            .trim()
            .to_owned();
        stack.step(&format!(
            "provision apply in {:.1}s: {reason}",
            ran.elapsed.as_secs_f64()
        ));
        assert!(
            reason.contains(&victim.name) || reason.contains(victim.short_id()),
            "apply did not notice the killed replica\n{ran}"
        );
        let healed = wait_whole(stack, t0, APPLY_TIMEOUT);
        std::thread::sleep(SETTLE);
        let report = load.stop();
        stack.step(&format!("whole again {healed:.1}s after the kill"));
        tell(stack, "FAULT 2 load", &report);
        assert!(
            inspect(&victim.id).running,
            "apply did not start {} again",
            victim.name
        );
        assert_eq!(report.failed, 0, "failed requests: {report:#?}");
        verify_passes(stack, self.project, &[], REPLICAS, LB);
    }

    /// Fault 3, consul restarted: a dev agent forgets every registration.
    fn consul_restarts(&self) {
        let stack = self.stack;
        let consul = self.service("consul");
        stack.step(&format!(
            "FAULT 3, docker restart {} under {RATE}/s",
            consul.name
        ));
        let load = start_load();
        std::thread::sleep(SETTLE);
        let t0 = Instant::now();
        let watch = UpWatch::start();
        docker(&["restart", &consul.id]).expect_success();
        let restarted = t0.elapsed().as_secs_f64();
        let answering = wait_for(t0, HEAL_BOUND, "consul to answer", || {
            registry::passing(&consul_url(), &web_query())
                .err()
                .map(|e| format!("{e:#}"))
        });
        // Meanwhile requests are answered and counted; what may fail is consul's view, and
        // HAProxy's: the replicas register again one by one, and HAProxy drops at once a server
        // that a partial answer leaves out (`hold obsolete 0s`, which scale-down needs).
        let (code, failing) = self.verify_during();
        stack.step(&format!(
            "verify {:.1}s after the restart: exit {code:?}, failing: {failing:?}",
            t0.elapsed().as_secs_f64()
        ));
        assert!(
            matches!(code, Some(0 | 1))
                && !failing
                    .iter()
                    .any(|l| l.contains("requests answered") || l.contains("counter increasing")),
            "verify during a consul restart: exit {code:?}, failing {failing:?}"
        );
        let healed = wait_whole(stack, t0, HEAL_BOUND);
        let (fewest_up, short_for) = watch.stop();
        stack.step(&format!(
            "meanwhile HAProxy routed to as few as {fewest_up} of {REPLICAS} replicas, \
             fewer than {REPLICAS} for {:.1}s",
            short_for.as_secs_f64()
        ));
        std::thread::sleep(SETTLE);
        let report = load.stop();
        stack.step(&format!(
            "consul restarted in {restarted:.1}s, answered after {answering:.1}s, \
             listed all {REPLICAS} replicas passing after {healed:.1}s"
        ));
        tell(stack, "FAULT 3 load", &report);
        assert_eq!(report.failed, 0, "failed requests: {report:#?}");
        assert!(
            healed <= CONSUL_RELIST_BOUND.as_secs_f64(),
            "consul listed every replica only after {healed:.1}s"
        );
        verify_passes(stack, self.project, &[], REPLICAS, LB);
    }

    /// Fault 4, redis away for a while, then back: 503s only meanwhile, and the counter goes on.
    fn redis_restarts(&self) {
        let stack = self.stack;
        let redis = self.service("redis");
        let hits_before = hits_now(LB);
        stack.step(&format!(
            "FAULT 4, redis away: docker stop {}, 8 s, docker start, under {RATE}/s \
             (hits = {hits_before})",
            redis.name
        ));
        let calm = start_load();
        std::thread::sleep(SETTLE);
        let calm = calm.stop();
        tell(stack, "FAULT 4 load before", &calm);
        assert_eq!(
            calm.failed, 0,
            "failed requests before redis left: {calm:#?}"
        );

        let load = start_load();
        let t0 = Instant::now();
        docker(&["stop", &redis.id]).expect_success();
        let stopped = t0.elapsed();
        let (code, failing) = self.verify_during();
        stack.step(&format!(
            "verify while redis is away: exit {code:?}, failing: {failing:?}"
        ));
        assert!(
            code == Some(1)
                && failing
                    .iter()
                    .any(|l| l.contains("services running") && l.contains(&redis.name)),
            "verify does not say that redis is away: exit {code:?}, failing {failing:?}"
        );
        // What a client sees meanwhile, one request every half second.
        let mut answers = Vec::new();
        while t0.elapsed() < stopped + Duration::from_secs(8) {
            answers.push(get_lb());
            std::thread::sleep(Duration::from_millis(500));
        }
        let restart = Instant::now();
        docker(&["start", &redis.id]).expect_success();
        let serving = wait_for(restart, HEAL_BOUND, "the lb to answer 200 again", || {
            let answer = get_lb();
            (answer.status != 200).then(|| format!("{answer:?}"))
        });
        let healed = wait_whole(stack, restart, HEAL_BOUND);
        let report = load.stop();
        let after = start_load();
        std::thread::sleep(SETTLE);
        let after = after.stop();
        let hits_after = hits_now(LB);

        let slowest = answers.iter().map(|a| a.took).max().unwrap_or_default();
        let statuses: BTreeSet<u16> = answers.iter().map(|a| a.status).collect();
        stack.step(&format!(
            "redis stopped in {:.1}s; meanwhile {} probes answered {statuses:?}, slowest {:.2}s, \
             e.g. {:?}; after docker start the lb served again in {serving:.1}s, \
             whole in {healed:.1}s; hits {hits_before} -> {hits_after}",
            stopped.as_secs_f64(),
            answers.len(),
            slowest.as_secs_f64(),
            answers.last().map(|a| a.body.trim()).unwrap_or_default(),
        ));
        tell(stack, "FAULT 4 load while redis was away", &report);
        tell(stack, "FAULT 4 load after", &after);
        assert_eq!(
            statuses,
            BTreeSet::from([503]),
            "answers without redis: {answers:#?}"
        );
        for a in &answers {
            assert!(
                !a.body.contains("Traceback") && !a.body.contains("File \""),
                "a stack trace in the answer: {a:?}"
            );
        }
        assert!(
            slowest <= REDIS_DOWN_ANSWER_BOUND,
            "an answer without redis took {slowest:?}: {answers:#?}"
        );
        let not_503 = report.failed - report.failures.status.get(&503).copied().unwrap_or(0);
        assert_eq!(
            not_503, 0,
            "failures other than 503 while redis was away: {report:#?}"
        );
        assert!(
            report.failed > 0,
            "no 503 at all while redis was away for 8 s: {report:#?}"
        );
        assert_eq!(
            after.failed, 0,
            "failed requests after redis came back: {after:#?}"
        );
        assert!(
            hits_after > hits_before,
            "the counter did not continue: {hits_before} before redis left, {hits_after} after"
        );
        verify_passes(stack, self.project, &[], REPLICAS, LB);
    }

    /// Fault 5, the lb restarted: the one fault that cannot be hidden from clients; measure the gap.
    fn lb_restarts(&self) {
        let stack = self.stack;
        let lb = self.service("lb");
        stack.step(&format!(
            "FAULT 5, docker restart {} under {RATE}/s",
            lb.name
        ));
        let load = start_load();
        std::thread::sleep(SETTLE);
        let t0 = Instant::now();
        // The restart blocks until the container runs again; watch the port meanwhile.
        let restart = std::thread::spawn({
            let id = lb.id.clone();
            move || docker(&["restart", &id])
        });
        // From the first request that got no 200 to the first 200 after it.
        let mut failing_since = None;
        let mut gap = None;
        while gap.is_none() && t0.elapsed() < HEAL_BOUND {
            let ok = get_lb().status == 200;
            let now = t0.elapsed();
            match (ok, failing_since) {
                (false, None) => failing_since = Some(now),
                (true, Some(since)) => gap = Some((since, now)),
                // Never failed: the gap fell between two of these probes.
                (true, None) if restart.is_finished() => gap = Some((now, now)),
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let restarted = restart.join().expect("docker restart thread");
        restarted.expect_success();
        let healed = wait_whole(stack, t0, HEAL_BOUND);
        let report = load.stop();
        let after = start_load();
        std::thread::sleep(SETTLE);
        let after = after.stop();
        let Some((down, up)) = gap else {
            panic!("the lb did not answer 200 again within {HEAL_BOUND:?} of its restart");
        };
        let gap = up - down;
        stack.step(&format!(
            "lb gap: failing from {:.2}s to {:.2}s after the restart began: {:.2}s; \
             whole (every replica UP) after {healed:.1}s",
            down.as_secs_f64(),
            up.as_secs_f64(),
            gap.as_secs_f64()
        ));
        // Refused or reset while HAProxy stops and starts, timed out while Docker plumbs the
        // published port to the new container (SYNs dropped, retried after 1 s and 3 s), 503
        // before HAProxy has resolved its servers: all expected within the gap, none after.
        tell(stack, "FAULT 5 load across the restart", &report);
        tell(stack, "FAULT 5 load after", &after);
        assert!(gap <= LB_GAP_BOUND, "the lb was away for {gap:?}");
        assert_eq!(
            after.failed, 0,
            "failed requests after the lb came back: {after:#?}"
        );
        verify_passes(stack, self.project, &[], REPLICAS, LB);
    }

    /// Two provision commands on the project at once: while `verify --scale` holds the project,
    /// an `apply` with a short lock timeout gives up with exit 2 naming the holder; and the lock
    /// of a command killed with SIGKILL does not block the next one.
    fn two_commands_at_once(&self) {
        let stack = self.stack;
        let lock = self.project.lock_path(PROJECT);
        let holder_is = |command: &str| {
            std::fs::read_to_string(&lock).is_ok_and(|t| t.contains(&format!("({command})")))
        };
        let spawn = |args: &[&str]| {
            std::process::Command::new(assert_cmd::cargo::cargo_bin("provision"))
                .args(args)
                .current_dir(self.project.path())
                // As every command of this project (support/harness.rs).
                .env_remove("XDG_RUNTIME_DIR")
                .env("XDG_STATE_HOME", self.project.state_base())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("starting provision")
        };
        let wait_holder = |command: &str| {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !holder_is(command) {
                assert!(Instant::now() < deadline, "{command} never took the lock");
                std::thread::sleep(Duration::from_millis(20));
            }
        };

        stack.step("TWO COMMANDS: verify --scale 5 running, then apply --lock-timeout 1");
        let _ = std::fs::remove_file(&lock);
        let mut verify = spawn(&["verify", "--scale", "5"]);
        wait_holder("verify");
        let t = Instant::now();
        let ran = self
            .project
            .run(&["apply", "--lock-timeout", "1"], &[], SHORT_TIMEOUT);
        ran.expect_code(2);
        assert!(
            ran.stderr.contains(&format!(
                "another provision command holds project {PROJECT}"
            )) && ran.stderr.contains("(verify)"),
            "the second command does not say who holds the project\n{ran}"
        );
        assert!(t.elapsed() >= Duration::from_secs(1), "{ran}");
        let status = verify.wait().unwrap();
        assert!(
            status.success(),
            "the verify that held the lock failed: {status}"
        );
        stack.step(&format!(
            "apply gave up after {:.1} s with exit 2 while verify held the project; verify then passed",
            ran.elapsed.as_secs_f64()
        ));

        stack.step("TWO COMMANDS: a verify killed with SIGKILL while holding the lock");
        // Nobody holds it now; without the old text, the wait below sees this command's own.
        let _ = std::fs::remove_file(&lock);
        let mut killed = spawn(&["verify"]);
        wait_holder("verify");
        killed.kill().unwrap();
        killed.wait().unwrap();
        let ran = self.project.run(&["apply"], &[], APPLY_TIMEOUT);
        ran.expect_success();
        assert!(
            !ran.stderr.contains("waiting for another provision command"),
            "a killed holder still blocked the project\n{ran}"
        );
        stack.step(&format!(
            "apply after the killed holder: no wait, done in {:.1} s",
            ran.elapsed.as_secs_f64()
        ));
        verify_passes(
            stack,
            self.project,
            &["--scale", &REPLICAS.to_string()],
            REPLICAS,
            LB,
        );
    }

    /// `verify --timeout 1` in the middle of a fault: its exit code, and each failing check as
    /// one line (its FAIL line and the lines under it that are not numbers).
    fn verify_during(&self) -> (Option<i32>, Vec<String>) {
        let ran = self
            .project
            .run(&["verify", "--timeout", "1"], &[], VERIFY_TIMEOUT);
        let mut failing: Vec<String> = Vec::new();
        let mut in_failure = false;
        for line in ran.stdout.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with("FAIL") {
                failing.push(trimmed.split_whitespace().collect::<Vec<_>>().join(" "));
                in_failure = true;
            } else if trimmed.starts_with("PASS") || trimmed.starts_with("SKIP") {
                in_failure = false;
            } else if in_failure && !trimmed.contains('=') && !trimmed.is_empty() {
                if let Some(last) = failing.last_mut() {
                    last.push_str(" / ");
                    last.push_str(trimmed);
                }
            }
        }
        (ran.code, failing)
    }

    /// The one container of a singleton service.
    fn service(&self, name: &str) -> Container {
        let mut found: Vec<Container> = self
            .stack
            .containers()
            .into_iter()
            .filter(|c| c.service == name)
            .collect();
        assert_eq!(found.len(), 1, "{name} containers: {found:?}");
        found.remove(0)
    }

    /// The line of verify's output that names `victim` (its name and short id, as verify
    /// describes containers); panics if none does.
    fn names(&self, ran: &Ran, victim: &Container) -> String {
        ran.all_output()
            .lines()
            .find(|l| l.contains(&victim.name) && l.contains(victim.short_id()))
            .unwrap_or_else(|| panic!("verify does not name {}\n{ran}", victim.name))
            .trim()
            .to_owned()
    }
}

fn start_load() -> Load {
    load::start(LoadOptions::new(format!("http://127.0.0.1:{LB}/"), RATE))
        .expect("starting the load")
}

/// Logs a load report's numbers, and checks that the client itself kept the rate.
fn tell(stack: &Stack, what: &str, report: &LoadReport) {
    let latency = report
        .latency
        .map(|l| {
            format!(
                "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                l.p50_ms, l.p99_ms, l.max_ms
            )
        })
        .unwrap_or_default();
    stack.step(&format!(
        "{what}: {} sent in {:.1}s, {} failed {:?}, {latency}",
        report.sent, report.duration_secs, report.failed, report.failures
    ));
    for sample in &report.failure_samples {
        stack.step(&format!(
            "  failed at {:.2}s: {}",
            sample.at_secs, sample.reason
        ));
    }
    assert!(
        report.sent as f64 >= 0.9 * RATE * report.duration_secs && report.not_sent == 0,
        "the load client fell behind: {report:#?}"
    );
}

/// What `docker inspect` says of one container's process.
#[derive(Debug)]
struct Process {
    pid: String,
    running: bool,
    restarts: u32,
    ip: String,
}

fn inspect(id: &str) -> Process {
    let ran = docker(&[
        "inspect",
        "--format",
        // The address on the stack's default network: web is on redis' network too.
        &format!(
            "{{{{.State.Pid}}}}|{{{{.State.Running}}}}|{{{{.RestartCount}}}}|\
             {{{{(index .NetworkSettings.Networks \"{PROJECT}_default\").IPAddress}}}}"
        ),
        id,
    ]);
    ran.expect_success();
    let f: Vec<&str> = ran.stdout.trim().split('|').collect();
    assert_eq!(f.len(), 4, "docker inspect said {:?}", ran.stdout);
    Process {
        pid: f[0].to_owned(),
        running: f[1] == "true",
        restarts: f[2].parse().unwrap_or(0),
        ip: f[3].to_owned(),
    }
}

/// The project's web instances in its consul (every registration carries the project's tag).
fn web_query() -> registry::ServiceQuery {
    registry::ServiceQuery {
        name: "web".to_owned(),
        tag: format!("provision-{PROJECT}"),
    }
}

fn consul_url() -> String {
    format!("http://127.0.0.1:{CONSUL}")
}

/// None when the stack is whole: every web container running, and both HAProxy (UP) and consul
/// (passing) list exactly their addresses; else what is missing.
fn problem(stack: &Stack) -> Option<String> {
    let web = stack.web();
    let ids: Vec<&str> = web.iter().map(|c| c.id.as_str()).collect();
    // The address on the stack's default network: web is on redis' network too.
    let format = format!(
        "{{{{.State.Running}}}}|{{{{(index .NetworkSettings.Networks \"{PROJECT}_default\").IPAddress}}}}"
    );
    let mut args = vec!["inspect", "--format", format.as_str()];
    args.extend(ids);
    let ran = docker(&args);
    if ran.code != Some(0) {
        return Some(format!("docker inspect: {}", ran.stderr.trim()));
    }
    let mut running = BTreeSet::new();
    for line in ran.stdout.lines() {
        match line.split_once('|') {
            Some(("true", ip)) if !ip.is_empty() => {
                running.insert(ip.to_owned());
            }
            _ => return Some(format!("a web container is not running: {line}")),
        }
    }
    if running.len() != REPLICAS {
        return Some(format!(
            "{} of {REPLICAS} web containers running",
            running.len()
        ));
    }
    let up = match up_addresses() {
        Ok(up) => up,
        Err(e) => return Some(format!("HAProxy stats: {e:#}")),
    };
    if up != running {
        return Some(format!("HAProxy has {up:?} UP, running are {running:?}"));
    }
    let passing: BTreeSet<String> = match registry::passing(&consul_url(), &web_query()) {
        Ok(instances) => instances.into_iter().map(|i| i.address).collect(),
        Err(e) => return Some(format!("consul: {e:#}")),
    };
    if passing != running {
        return Some(format!(
            "consul lists {passing:?} passing, running are {running:?}"
        ));
    }
    None
}

/// Watches how many servers HAProxy has UP, every 100 ms, from `start` to `stop`.
struct UpWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(usize, Duration)>,
}

impl UpWatch {
    fn start() -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let (mut fewest, mut short) = (REPLICAS, Duration::ZERO);
                let tick = Duration::from_millis(100);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let up = up_addresses().map(|up| up.len()).unwrap_or(0);
                    fewest = fewest.min(up);
                    if up < REPLICAS {
                        short += tick;
                    }
                    std::thread::sleep(tick);
                }
                (fewest, short)
            }
        });
        UpWatch { stop, thread }
    }

    /// The fewest servers UP seen, and for how long there were fewer than all replicas.
    fn stop(self) -> (usize, Duration) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("the UP watch thread")
    }
}

/// The addresses of HAProxy's UP servers in the web backend.
fn up_addresses() -> anyhow::Result<BTreeSet<String>> {
    // The stats page wants its password (read after the first apply).
    let password = STATS_PASSWORD.get().expect("the stats password was read");
    let (status, csv) = crate::support::secrets::get_with_stats_login(
        &format!("http://127.0.0.1:{STATS}/stats;csv"),
        Some(password),
    )
    .map_err(anyhow::Error::msg)?;
    anyhow::ensure!(status == 200, "the stats page answered HTTP {status}");
    let mut servers = stats::parse_csv(&csv)?;
    servers.retain(|s| s.backend == "web");
    Ok(servers
        .iter()
        .filter(|s| s.is_up())
        .map(|s| s.ip().to_owned())
        .collect())
}

/// Seconds from `since` until the stack is whole; panics after `bound`.
fn wait_whole(stack: &Stack, since: Instant, bound: Duration) -> f64 {
    wait_for(since, bound, "the stack to be whole", || problem(stack))
}

/// Seconds from `since` until `problem` returns None, polling every 250 ms; panics with the
/// last problem after `bound`.
fn wait_for(
    since: Instant,
    bound: Duration,
    what: &str,
    problem: impl FnMut() -> Option<String>,
) -> f64 {
    poll_until(since, bound, Duration::from_millis(250), what, problem)
}

/// [`wait_for`], polling every `poll`.
fn poll_until(
    since: Instant,
    bound: Duration,
    poll: Duration,
    what: &str,
    mut problem: impl FnMut() -> Option<String>,
) -> f64 {
    loop {
        let Some(last) = problem() else {
            return since.elapsed().as_secs_f64();
        };
        if since.elapsed() > bound {
            panic!("waited {bound:?} for {what}; last seen: {last}");
        }
        std::thread::sleep(poll);
    }
}

/// One GET of the lb's front page: status (0 = no answer), body, time taken.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
    took: Duration,
}

fn get_lb() -> Answer {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .max_idle_connections(0)
        .build();
    let started = Instant::now();
    let (status, body) = match agent.get(&format!("http://127.0.0.1:{LB}/")).call() {
        Ok(resp) => (resp.status(), resp.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, resp)) => (code, resp.into_string().unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    };
    Answer {
        status,
        body,
        took: started.elapsed(),
    }
}
