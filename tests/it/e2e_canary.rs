//! Canaries end to end, on one stack (docker-dns, our own app tests/fixtures/apps/canary, 2
//! replicas), with this test's own client sending 50 requests per second through the load
//! balancer the whole time: a version that answers 500 on 20% of its requests, deployed with
//! `--canary 20:15`, is rolled back by the error rule (the apply's `--report` page names both
//! versions' error rates); a version 5 times slower is rolled back by the latency rule; a good
//! version is promoted and rolled out with no failed request. After each rollback every replica
//! answers with the version before. Same switches as `e2e.rs`; own project and ports (2878x).

use std::collections::BTreeMap;
use std::time::Duration;

use provision::probe::load::{self, LoadOptions, LoadReport};

use crate::support::deploys::load_line;
use crate::support::engine::{note, rig_image, start};
use crate::support::harness::{Project, Ran};
use crate::support::stack::{Stack, APPLY_TIMEOUT};

const PROJECT: &str = "provision-e2e-canary";
const LB: u16 = 28780;
const RATE: f64 = 50.0;
const SHARE: f64 = 0.20;
const WINDOW_S: f64 = 15.0;
const REPLICAS: usize = 2;

/// The fixture app with `behaviour` (see its server.py), FROM the offline base.
fn write_app(project: &Project, base: &str, behaviour: &str) {
    crate::support::fixtures::write_fixture_app(project, "canary", "app", base);
    project.write("app/behaviour.txt", behaviour);
}

/// `provision ARGS` with RATE requests per second through the lb from this process, from just
/// before to just after.
fn apply_under_load(project: &Project, args: &[&str]) -> (Ran, LoadReport) {
    let load = load::start(LoadOptions::new(format!("http://127.0.0.1:{LB}/"), RATE))
        .expect("starting load");
    let ran = project.run(args, &[], APPLY_TIMEOUT);
    let report = load.stop();
    // A canary HAProxy took out a moment after routing it (one connection it could not make)
    // is waited for, and apply says so: kept in the test's output, where CI runs are read.
    for line in ran
        .stderr
        .lines()
        .filter(|l| l.contains("not UP a moment after"))
    {
        note(format!("apply said: {}", line.trim()));
    }
    assert!(report.sent > 0, "no request was sent\n{ran}");
    assert_eq!(report.sent, report.succeeded + report.failed);
    (ran, report)
}

/// Which version each replica answers with, by hostname, from GETs through the lb (failures
/// are retried: a bad version is what is being tested).
fn versions() -> BTreeMap<String, String> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(3))
        .build();
    let mut seen = BTreeMap::new();
    for _ in 0..REPLICAS * 10 {
        if let Ok(response) = agent.get(&format!("http://127.0.0.1:{LB}/")).call() {
            let body = response.into_string().unwrap_or_default();
            // `hello from <hostname> version <v>`
            let words: Vec<&str> = body.split_whitespace().collect();
            if let [_, _, host, _, version] = words[..] {
                seen.insert(host.to_owned(), version.to_owned());
            }
        }
    }
    seen
}

fn assert_all_on(stack: &Stack, version: &str) {
    let running = stack.web().into_iter().filter(|c| c.running).count();
    assert_eq!(running, REPLICAS, "web replicas running");
    let seen = versions();
    assert_eq!(seen.len(), REPLICAS, "replicas answering: {seen:?}");
    assert!(
        seen.values().all(|v| v == version),
        "not every replica answers as {version}: {seen:?}"
    );
}

/// Failed requests the canary may cost: the share of the window's requests it answered, times
/// the share of them that fail.
fn failure_budget(error_share: f64) -> u64 {
    (error_share * SHARE * WINDOW_S * RATE).floor() as u64
}

#[test]
fn e2e_canary_rolls_back_errors_and_slowness_and_promotes_a_good_version() {
    let base = rig_image("debian:trixie");
    let Some(_engine) = start(std::slice::from_ref(&base)) else {
        return;
    };
    let project = Project::new();
    write_app(&project, &base, "version v1\n");
    project.write(
        "provision.yaml",
        &format!(
            "# end-to-end test stack: canaries of our own app on docker-dns\n\
             project: {PROJECT}\n\
             discovery: docker-dns\n\
             images:\n  base: {base}\n\
             web:\n  app: app\n  port: 7000\n  health_path: /ready\n  replicas: {REPLICAS}\n  \
             expect:\n    status: 200\n    contains: \"hello from \"\n\
             lb:\n  port: {LB}\n  stats_port: 28784\n"
        ),
    );
    let stack = Stack::new(PROJECT);
    stack.step("provision apply (v1)");
    project.run(&["apply"], &[], APPLY_TIMEOUT).expect_success();
    assert_all_on(&stack, "v1");

    // (a) 500 on 20% of requests: rolled back by the error rule, the page says both rates.
    write_app(&project, &base, "version v2-errors\nerrors 20\n");
    stack.step("provision apply --canary 20:15 (20% errors) under load");
    let (ran, report) = apply_under_load(
        &project,
        &[
            "apply",
            "--canary",
            "20:15",
            "--load",
            "10",
            "--report",
            "canary-errors.html",
        ],
    );
    ran.expect_code(1);
    assert!(
        ran.stderr.contains("rolled back the canary") && ran.stderr.contains("error rate"),
        "the rollback does not say why\n{ran}"
    );
    let page = project.read("canary-errors.html");
    assert!(
        page.contains("on the new version") && page.contains("on the old"),
        "the report page does not name both versions' error rates"
    );
    note(load_line("load during the canary of 20% errors", &report));
    note(format!(
        "why: {}",
        ran.stderr
            .lines()
            .find(|l| l.contains("rolled back the canary"))
            .unwrap_or_default()
    ));
    assert!(
        report.failed <= failure_budget(0.20),
        "{} requests failed, more than 20% of the canary's share of the window ({})",
        report.failed,
        failure_budget(0.20)
    );
    assert_all_on(&stack, "v1");

    // (b) Five times slower (20 ms → 100 ms per answer): rolled back by the latency rule.
    write_app(&project, &base, "version v3-slow\ndelay_ms 100\n");
    stack.step("provision apply --canary 20:15 (5 times slower) under load");
    let (ran, report) = apply_under_load(&project, &["apply", "--canary", "20:15"]);
    ran.expect_code(1);
    assert!(
        ran.stderr.contains("rolled back the canary")
            && ran.stderr.contains("average response time")
            && ran.stderr.contains("deploy.max_latency_ratio"),
        "the rollback does not say it was slower\n{ran}"
    );
    note(load_line(
        "load during the canary of a slow version",
        &report,
    ));
    note(format!(
        "why: {}",
        ran.stderr
            .lines()
            .find(|l| l.contains("rolled back the canary"))
            .unwrap_or_default()
    ));
    assert_eq!(report.failed, 0, "requests failed during the slow canary");
    assert_all_on(&stack, "v1");

    // (c) A good version: promoted, the rollout goes on, nothing failed.
    write_app(&project, &base, "version v4\n");
    stack.step("provision apply --canary 20:15 (good) under load");
    let (ran, report) = apply_under_load(&project, &["apply", "--canary", "20:15"]);
    ran.expect_success();
    assert!(
        ran.stderr.contains("canary promoted"),
        "the canary was not promoted\n{ran}"
    );
    note(load_line(
        "load during the good canary and its rollout",
        &report,
    ));
    note(format!(
        "said: {}",
        ran.stderr
            .lines()
            .find(|l| l.contains("canary promoted"))
            .unwrap_or_default()
    ));
    assert_eq!(
        report.failed, 0,
        "requests failed during the promoted canary"
    );
    assert_eq!(report.not_sent, 0);
    assert_all_on(&stack, "v4");
}
