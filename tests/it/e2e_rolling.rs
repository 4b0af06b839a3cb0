//! Rolling deploys end to end (consul-dns, 3 web replicas, 50 requests per second through the
//! load balancer from this process the whole time): a changed web app is applied replica by
//! replica, then another two at a time, without a failed request; a new version whose health
//! check never passes is rolled back, the old version serving throughout, and `verify` passes
//! after; a new lb.balance is reloaded in place (same container, a new HAProxy worker, no failed
//! request); a redis change is refused without a terminal unless `--yes`. The app is changed the way
//! an operator would: a local blueprint override `blueprints/web/app.py.j2` beside the spec. After
//! the first rolling apply, `e2e_releases.rs` rolls back, reads logs and switches maintenance
//! mode on this same stack. Same
//! switches as `e2e.rs`, the engine lock and drop guard of `support/`; own project name and host
//! ports (2868x).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use provision::probe::load::{self, LoadOptions, LoadReport};

use crate::support::deploys::{
    app_version, app_with, json_through_lb, load_line, version_of, worker_pid, ANSWER, LOAD_LEAD,
    SHOW_INFO,
};
use crate::support::engine::{note, rig_image, start};
use crate::support::harness::{Project, Ran};
use crate::support::stack::{consul_dns_spec, Stack, APPLY_TIMEOUT, SHORT_TIMEOUT, VERIFY_TIMEOUT};

const PROJECT: &str = "provision-e2e-roll";
pub(crate) const LB: u16 = 28680;
pub(crate) const RATE: f64 = 50.0;
/// `--timeout` of the apply that must roll back: the routed wait gives up after it. A healthy
/// replica is routed 0.8-1.6 s after it starts here (bench/runs/2026-12-06-rollout.md, part 5:
/// the 1 s check interval), so 10 s leaves a busy machine six times that, and keeps each failing
/// apply short (each of the two waits its whole timeout).
const ROLLBACK_TIMEOUT: u64 = 10;

/// What `apply_under_load` saw.
pub(crate) struct Applied {
    pub ran: Ran,
    /// How long apply ran.
    pub seconds: f64,
    /// The load from 2 s before apply to 2 s after.
    pub report: LoadReport,
    /// The web replicas running during the apply, sampled every 200 ms.
    pub running: Running,
}

/// `provision ARGS` with RATE requests per second through the lb from `LOAD_LEAD` before to 2 s
/// after.
pub(crate) fn apply_under_load(project: &Project, args: &[&str]) -> Applied {
    let load = load::start(LoadOptions::new(format!("http://127.0.0.1:{LB}/"), RATE))
        .expect("starting load");
    std::thread::sleep(LOAD_LEAD);
    let watch = RunningWatch::start();
    let t = Instant::now();
    let ran = project.run(args, &[], APPLY_TIMEOUT);
    let seconds = t.elapsed().as_secs_f64();
    let running = watch.stop();
    std::thread::sleep(Duration::from_secs(2));
    let report = load.stop();
    if let Err(problem) = load_covered(&report, seconds) {
        panic!("{problem}\n{report:#?}\n{ran}");
    }
    Applied {
        ran,
        seconds,
        report,
        running,
    }
}

/// The load of `apply_under_load` was sent: some requests, each one accounted for, as many as
/// were due at RATE over a time that covers the whole apply (`apply_seconds`). Without this a
/// load generator that sent nothing would pass every "0 failed" below.
fn load_covered(report: &LoadReport, apply_seconds: f64) -> Result<(), String> {
    if report.sent == 0 {
        return Err("no request was sent during the apply".into());
    }
    if report.succeeded + report.failed != report.sent {
        return Err(format!(
            "{} succeeded and {} failed of {} sent",
            report.succeeded, report.failed, report.sent
        ));
    }
    if report.sent + report.not_sent != report.intended {
        return Err(format!(
            "{} sent and {} not sent of {} due",
            report.sent, report.not_sent, report.intended
        ));
    }
    if report.duration_secs < apply_seconds {
        return Err(format!(
            "the load ran {:.1} s, the apply {apply_seconds:.1} s",
            report.duration_secs
        ));
    }
    // One request at 0 s, then one every 1/RATE s; a tick more or less at the edges.
    let due = (report.duration_secs * RATE).floor() as u64 + 1;
    if report.intended.abs_diff(due) > 1 {
        return Err(format!(
            "{} requests due over {:.1} s, {due} at {RATE}/s",
            report.intended, report.duration_secs
        ));
    }
    Ok(())
}

fn note_load(what: &str, report: &LoadReport) {
    note(load_line(what, report));
}

/// Which version each replica answers with, by hostname (the container's short id), from 8 GETs
/// per running replica through the round-robin lb.
fn versions(stack: &Stack) -> BTreeMap<String, String> {
    let replicas = stack.web().into_iter().filter(|c| c.running).count();
    let mut seen = BTreeMap::new();
    for _ in 0..replicas * 8 {
        let answer = json_through_lb(LB);
        let host = answer["hostname"].as_str().unwrap_or_default().to_owned();
        seen.insert(host, version_of(&answer));
    }
    seen
}

/// Every running replica (by short id) answers, each with `version`.
pub(crate) fn assert_all_on(stack: &Stack, version: &str) {
    let running: Vec<String> = stack
        .web()
        .into_iter()
        .filter(|c| c.running)
        .map(|c| c.id[..12].to_owned())
        .collect();
    let seen = versions(stack);
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        {
            let mut r = running.clone();
            r.sort();
            r
        },
        "the replicas that answered are not the running ones: {seen:?}"
    );
    assert!(
        seen.values().all(|v| v == version),
        "not every replica answers as {version}: {seen:?}"
    );
    note(format!(
        "all {} replicas answer as version {version}",
        running.len()
    ));
}

#[test]
fn e2e_rolling_apply_then_rollback_under_load() {
    let images = [rig_image("debian:trixie"), rig_image("consul:1.8.7")];
    let Some(_engine) = start(&images) else {
        return;
    };
    let project = Project::new();
    // Two releases keep their images, so that the apply after the rollback prunes one
    // (e2e_releases::assert_pruned).
    let spec = consul_dns_spec(PROJECT, 3, LB, 28684, 28686).replace(
        "web:\n  replicas: 3\n",
        "web:\n  replicas: 3\n  keep_releases: 2\n",
    );
    assert!(spec.contains("keep_releases: 2"), "{spec}");
    project.write("provision.yaml", &spec);
    let stack = Stack::new(PROJECT);

    stack.step("provision apply (first)");
    project.run(&["apply"], &[], APPLY_TIMEOUT).expect_success();
    assert_eq!(stack.web().len(), 3, "web replicas after the first apply");
    assert_all_on(&stack, "original");

    // (a) A changed app, applied under load.
    project.write("blueprints/web/app.py.j2", &app_version("rolled", true));
    let dry = project.run(&["apply", "--dry-run"], &[], SHORT_TIMEOUT);
    dry.expect_success();
    assert!(
        dry.stdout.contains("replaced rolling"),
        "the dry run does not show a rolling replacement\n{dry}"
    );
    stack.step("provision apply (changed app) under load");
    let Applied {
        ran,
        seconds: rollout,
        report,
        running,
    } = apply_under_load(&project, &["apply"]);
    ran.expect_success();
    note(format!(
        "rolling apply of 3 replicas: {rollout:.1} s, {} to {} running ({} samples)",
        running.fewest, running.most, running.samples
    ));
    // One at a time: 3 old, then a 4th (new) beside them, never fewer than 3 serving.
    assert_eq!(
        (running.fewest, running.most),
        (3, 4),
        "web replicas running during the rollout, fewest and most: {running:?}"
    );
    note_load("load during the rolling apply", &report);
    // Each old replica was drained the quick way: HAProxy showed it without a request in flight
    // (not the fixed pause instead), and it was told so (not left to its own 2 s drain wait).
    for warned in [
        "requests in flight",
        "still had requests on",
        "their own drain wait",
    ] {
        assert!(
            !ran.stderr.contains(warned),
            "an old replica was not drained the quick way (`{warned}`)\n{ran}"
        );
    }
    assert_eq!(report.failed, 0, "requests failed during the rollout");
    assert_eq!(report.not_sent, 0);
    assert_eq!(stack.web().len(), 3, "web replicas after the rollout");
    assert_all_on(&stack, "rolled");

    stack.step("provision apply (nothing changed: the fast path)");
    let again = project.run(&["apply"], &[], SHORT_TIMEOUT);
    again.expect_success();
    assert!(
        again.all_output().contains("nothing to do"),
        "Compose's view does not match after the rollout\n{again}"
    );

    // (r) Releases, logs, maintenance mode (e2e_releases.rs): back to "original" at the end.
    crate::e2e_releases::rollback_logs_maintenance(&project, &stack, "rolled");

    // (a') Another version, two replicas at a time (batches of 2 and 1).
    project.write("blueprints/web/app.py.j2", &app_version("batched", true));
    stack.step("provision apply --batch 2 (changed app) under load");
    let Applied {
        ran,
        seconds: rollout,
        report,
        running,
    } = apply_under_load(&project, &["apply", "--batch", "2"]);
    ran.expect_success();
    note(format!(
        "rolling apply of 3 replicas, 2 at a time: {rollout:.1} s, {} to {} running ({} samples)",
        running.fewest, running.most, running.samples
    ));
    // Two at a time: 3 old and 2 new at once, never fewer than 3 serving.
    assert_eq!(
        (running.fewest, running.most),
        (3, 5),
        "web replicas running during the --batch 2 rollout, fewest and most: {running:?}"
    );
    note_load("load during the rolling apply --batch 2", &report);
    assert_eq!(report.failed, 0, "requests failed during the rollout");
    assert_eq!(report.not_sent, 0);
    assert_eq!(stack.web().len(), 3, "web replicas after the rollout");
    assert_all_on(&stack, "batched");
    crate::e2e_releases::assert_pruned(&project);

    // (b) A new version whose health check never passes, applied under load: rolled back.
    project.write("blueprints/web/app.py.j2", &app_version("broken", false));
    stack.step("provision apply (health check never passes) under load");
    let timeout = ROLLBACK_TIMEOUT.to_string();
    let Applied {
        ran,
        seconds: failed_after,
        report,
        ..
    } = apply_under_load(&project, &["apply", "--timeout", &timeout]);
    ran.expect_code(1);
    assert!(
        ran.stderr.contains("rolled back") && ran.stderr.contains("last log lines"),
        "the failure does not say what failed\n{ran}"
    );
    note(format!(
        "apply of a version that never passes its health check failed after {failed_after:.1} s \
         (--timeout {ROLLBACK_TIMEOUT})"
    ));
    note_load("load during the failed apply", &report);
    assert_eq!(report.failed, 0, "requests failed during the rollback");
    assert_eq!(report.not_sent, 0);
    assert_eq!(stack.web().len(), 3, "web replicas after the rollback");
    assert_all_on(&stack, "batched");

    note(format!(
        "what apply said:\n{}",
        ran.stderr
            .lines()
            .skip_while(|l| !l.contains("rolled back"))
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    ));

    // The stack runs the version before the failed one; the files say the failed one. verify
    // probes what runs.
    stack.step("provision verify after the rollback");
    project
        .run(&["verify"], &[], VERIFY_TIMEOUT)
        .expect_success();

    // (b') A new version only one replica of which ever passes its health check: the first
    // batch goes through, the second is never routed. Rolled back totally: the replica the
    // first batch replaced is put back on the previous version, from the kept Compose file.
    let first_key = format!("e2e-first-of-partial-{}", std::process::id());
    project.write(
        "blueprints/web/app.py.j2",
        &app_with(&[
            (
                ANSWER,
                "jsonify(hits=count, hostname=HOSTNAME, version=\"partial\")",
            ),
            (
                "        redis_call(\"ping\")\n",
                &format!(
                    "        redis_call(\"ping\")\n        \
                     redis.set({first_key:?}, HOSTNAME, nx=True)\n        \
                     if redis.get({first_key:?}) != HOSTNAME.encode():\n            \
                     return \"only the first replica of this version is healthy\\n\", 500\n"
                ),
            ),
        ]),
    );
    stack.step("provision apply (only the first new replica healthy) under load");
    let Applied {
        ran,
        seconds: failed_after,
        report,
        ..
    } = apply_under_load(&project, &["apply", "--timeout", &timeout]);
    ran.expect_code(1);
    assert!(
        ran.stderr.contains("put back on the previous version"),
        "the replica of the first batch was not put back\n{ran}"
    );
    note(format!(
        "apply failing in its second batch: failed after {failed_after:.1} s, then reverted the first"
    ));
    note_load(
        "load during the apply that failed in its second batch",
        &report,
    );
    assert_eq!(
        report.failed, 0,
        "requests failed during the total rollback"
    );
    assert_eq!(report.not_sent, 0);
    assert_eq!(
        stack.web().len(),
        3,
        "web replicas after the total rollback"
    );
    assert_all_on(&stack, "batched");
    note(format!(
        "what apply said:\n{}",
        ran.stderr
            .lines()
            .filter(|l| l.contains("rolled back")
                || l.contains("put back")
                || l.contains("rolling back"))
            .collect::<Vec<_>>()
            .join("\n")
    ));

    // (d) HAProxy's configuration alone changed (lb.balance): the running lb reloads it in place
    // under load. The app override goes back to the version that runs, so web is kept.
    project.write("blueprints/web/app.py.j2", &app_version("batched", true));
    project.write("provision.yaml", &format!("{spec}  balance: leastconn\n"));
    let lb_before = lb_container(&stack);
    let worker_before = haproxy_worker(&lb_before);
    let dry = project.run(&["apply", "--dry-run"], &[], SHORT_TIMEOUT);
    dry.expect_success();
    assert!(
        dry.stdout.contains("reloaded in place") && !dry.stdout.contains("replaced rolling"),
        "the dry run does not plan an lb reload alone\n{dry}"
    );
    stack.step("provision apply (lb.balance changed) under load");
    let Applied {
        ran,
        seconds: reload_s,
        report,
        ..
    } = apply_under_load(&project, &["apply"]);
    ran.expect_success();
    let lb_after = lb_container(&stack);
    let worker_after = haproxy_worker(&lb_after);
    note(format!(
        "apply of a new lb.balance: {reload_s:.1} s; lb container {} started at {} before and \
         {} started at {} after; HAProxy worker pid {worker_before} before, {worker_after} after",
        lb_before.short_id(),
        lb_before.started_at,
        lb_after.short_id(),
        lb_after.started_at
    ));
    note_load("load during the lb reload", &report);
    assert_eq!(report.failed, 0, "requests failed during the lb reload");
    assert_eq!(report.not_sent, 0);
    assert_eq!(
        (&lb_after.id, &lb_after.started_at),
        (&lb_before.id, &lb_before.started_at),
        "the lb container was recreated or restarted"
    );
    assert_ne!(worker_after, worker_before, "HAProxy was not reloaded");
    let live =
        crate::support::engine::docker(&["exec", &lb_after.id, "cat", "/run/haproxy/haproxy.cfg"]);
    assert!(
        live.stdout.contains("balance leastconn"),
        "the running lb does not read the new configuration\n{live}"
    );
    assert_all_on(&stack, "batched");
    stack.step("provision apply (nothing changed after the reload)");
    let again = project.run(&["apply"], &[], SHORT_TIMEOUT);
    again.expect_success();
    assert!(
        again.all_output().contains("nothing to do"),
        "apply does not see that the lb already runs its configuration\n{again}"
    );
    assert_eq!(lb_container(&stack).id, lb_after.id);

    // (c) A redis change restarts a stateful service: said in the plan, refused without a
    // terminal unless --yes.
    project.write("blueprints/web/app.py.j2", &app_version("rolled", true));
    // The lb's stats port too: a container setting, not HAProxy's configuration alone, so the lb
    // is recreated; apply measures and reports the interruption.
    let changed = consul_dns_spec(PROJECT, 3, LB, 28685, 28686);
    project.write(
        "provision.yaml",
        &format!("{changed}redis:\n  appendfsync: always\n"),
    );
    stack.step("provision apply (redis and lb's stats port changed, no terminal, no --yes)");
    let redis_before = redis_id(&stack);
    let dry = project.run(&["apply", "--dry-run"], &[], SHORT_TIMEOUT);
    dry.expect_success();
    assert!(dry.stdout.contains("RESTARTED"), "{dry}");
    assert!(
        dry.stdout
            .lines()
            .any(|l| l.trim_start().starts_with("lb") && l.contains("recreated")),
        "the dry run does not say the lb is recreated\n{dry}"
    );
    let refused = project.run(&["apply"], &[], SHORT_TIMEOUT);
    refused.expect_code(2);
    assert!(refused.stderr.contains("--yes"), "{refused}");
    assert_eq!(
        redis_id(&stack),
        redis_before,
        "a refused apply changed redis"
    );
    let lb_before = lb_container(&stack);
    let ran = project.run(&["apply", "--yes"], &[], APPLY_TIMEOUT);
    ran.expect_success();
    assert_ne!(
        redis_id(&stack),
        redis_before,
        "apply --yes left redis as it was"
    );
    assert_ne!(
        lb_container(&stack).id,
        lb_before.id,
        "the lb was not recreated"
    );
    let gap = ran
        .stdout
        .lines()
        .find(|l| l.contains("interruption:"))
        .unwrap_or_else(|| panic!("apply does not report the interruption\n{ran}"));
    assert!(gap.contains("lb") && gap.contains("redis"), "{gap}");
    note(format!(
        "apply --yes (redis restarted, lb recreated): {}",
        gap.trim()
    ));
}

fn redis_id(stack: &Stack) -> String {
    stack
        .containers()
        .into_iter()
        .find(|c| c.service == "redis")
        .map(|c| c.id)
        .expect("a redis container")
}

fn lb_container(stack: &Stack) -> crate::support::stack::Container {
    stack
        .containers()
        .into_iter()
        .find(|c| c.service == "lb")
        .expect("an lb container")
}

/// The pid of HAProxy's current worker, from its runtime API (`show info`).
fn haproxy_worker(lb: &crate::support::stack::Container) -> String {
    let info = crate::support::engine::docker(&["exec", &lb.id, "sh", "-c", SHOW_INFO]);
    info.expect_success();
    worker_pid(&info.stdout)
}

/// The web replicas running during an apply, from `docker ps` every 200 ms.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Running {
    /// How many times `docker ps` answered.
    pub samples: usize,
    pub fewest: usize,
    pub most: usize,
}

impl Running {
    /// None when nothing was observed: "never fewer than 3" must not follow from no sample.
    fn of(counts: &[usize]) -> Option<Running> {
        Some(Running {
            samples: counts.len(),
            fewest: *counts.iter().min()?,
            most: *counts.iter().max()?,
        })
    }
}

/// Counts the running web replicas every 200 ms from another thread; `stop` says what it saw.
struct RunningWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(Vec<usize>, Vec<String>)>,
}

impl RunningWatch {
    fn start() -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut counts, mut errors) = (Vec::new(), Vec::new());
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let ps = crate::support::engine::docker(&[
                    "ps",
                    "-q",
                    "--filter",
                    &format!("label=com.docker.compose.project={PROJECT}"),
                    "--filter",
                    "label=com.docker.compose.service=web",
                ]);
                if ps.code == Some(0) {
                    counts.push(ps.stdout.lines().filter(|l| !l.trim().is_empty()).count());
                } else {
                    errors.push(ps.stderr.trim().to_owned());
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            (counts, errors)
        });
        RunningWatch { stop, thread }
    }

    /// What the watch saw; fails the test when `docker ps` never answered.
    fn stop(self) -> Running {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (counts, errors) = self.thread.join().expect("the watch thread");
        Running::of(&counts).unwrap_or_else(|| {
            panic!(
                "the watch of running replicas observed nothing ({} failed `docker ps`, first: {:?})",
                errors.len(),
                errors.first()
            )
        })
    }
}

/// The checks of a rollout's witnesses can fail: fed what a broken watch or a silent load
/// generator would give, they refuse it. Runs without an engine.
#[test]
fn rollout_witnesses_refuse_no_observation() {
    assert_eq!(Running::of(&[]), None, "a watch with no sample");
    assert_eq!(
        Running::of(&[3, 4, 4, 3]),
        Some(Running {
            samples: 4,
            fewest: 3,
            most: 4
        })
    );
    let silent = LoadReport {
        url: String::new(),
        target_rate_per_sec: RATE,
        achieved_rate_per_sec: 0.0,
        duration_secs: 20.0,
        intended: 1001,
        sent: 0,
        not_sent: 1001,
        succeeded: 0,
        failed: 0,
        failures: Default::default(),
        failure_samples: Vec::new(),
        last_failure_secs: None,
        latency: None,
        send_lag: None,
        workers: 0,
        waited_for_worker: 0,
        served_by: None,
        joined: None,
        problems: Vec::new(),
        per_second: Vec::new(),
    };
    assert!(load_covered(&silent, 16.0).is_err());
    let sent = LoadReport {
        sent: 1001,
        not_sent: 0,
        succeeded: 1001,
        ..silent
    };
    assert_eq!(load_covered(&sent, 16.0), Ok(()));
    assert!(
        load_covered(&sent, 25.0).is_err(),
        "a load shorter than the apply"
    );
    let short = LoadReport {
        intended: 500,
        sent: 500,
        succeeded: 500,
        ..sent
    };
    assert!(load_covered(&short, 16.0).is_err(), "half the requests due");
}
