//! Releases, logs and maintenance mode end to end, on the stack of `e2e_rolling` (its steps run
//! there, after the first rolling apply, so that no second stack is started): `history` lists
//! the two applies, `rollback` goes back to the first under load (rolling, 0 failed, every
//! replica on the first version, a third release); `logs web` shows every replica's lines with
//! its name in front, and refuses a service the stack does not run; `maintenance on` answers 503
//! with `Retry-After` within 1 s under load, `status` says so, `off` serves again within 1 s, and
//! every request that failed was a 503 inside that window.

use std::time::{Duration, Instant};

use provision::probe::load::{self, LoadOptions, LoadReport};
use serde_json::Value;

use crate::e2e_rolling::{apply_under_load, assert_all_on, Applied, LB, RATE};
use crate::support::deploys::load_line;
use crate::support::engine::{docker, note};
use crate::support::harness::{Project, Ran};
use crate::support::stack::{Stack, SHORT_TIMEOUT};

/// The stack runs two releases, the first "original" and the second `second`.
pub(crate) fn rollback_logs_maintenance(project: &Project, stack: &Stack, second: &str) {
    let run = |args: &[&str]| project.run(args, &[], SHORT_TIMEOUT);
    let history = || history_with(&run);
    let releases = history();
    assert_eq!(
        ids(&releases),
        [1, 2],
        "releases after two applies\n{releases:#?}"
    );

    stack.step("provision rollback (to release 1) under load");
    let Applied {
        ran,
        seconds,
        report,
        running,
    } = apply_under_load(project, &["rollback"]);
    ran.expect_success();
    note(format!(
        "rollback of 3 replicas from {second} to release 1: {seconds:.1} s, {} to {} running",
        running.fewest, running.most
    ));
    note(load_line("load during the rollback", &report));
    assert_eq!(report.failed, 0, "requests failed during the rollback");
    assert_eq!(report.not_sent, 0);
    assert_eq!(
        (running.fewest, running.most),
        (3, 4),
        "web replicas running during the rollback, fewest and most: {running:?}"
    );
    assert_eq!(stack.web().len(), 3, "web replicas after the rollback");
    assert_all_on(stack, "original");
    let releases = history();
    assert_eq!(ids(&releases), [1, 2, 3], "releases after the rollback");
    assert_eq!(
        releases[2]["origin"],
        serde_json::json!({"kind": "rollback", "to": 1})
    );
    assert_eq!(
        releases[2]["files_sha256"], releases[0]["files_sha256"],
        "the rollback did not run release 1's files"
    );
    let text = run(&["history"]);
    text.expect_success();
    assert!(text.stdout.contains("rollback to 1"), "{text}");

    stack.step("provision logs web");
    let prefixes: Vec<String> = stack
        .web()
        .into_iter()
        .filter(|c| c.running)
        .map(|c| format!("{}-{} ", c.service, c.number))
        .collect();
    assert_eq!(prefixes.len(), 3);
    logs_prefixed(&run, &prefixes);
    stack.step("provision maintenance on, then off, under load");
    maintenance_under_load(&run, LB, RATE);
}

/// `history --json`'s releases, the answer checked against its schema.
pub(crate) fn history_with(run: &dyn Fn(&[&str]) -> Ran) -> Vec<Value> {
    let ran = run(&["history", "--json"]);
    ran.expect_success();
    let value = crate::json_schema::assert_valid("history", &ran.stdout);
    value["releases"].as_array().cloned().unwrap_or_default()
}

pub(crate) fn ids(releases: &[Value]) -> Vec<u64> {
    releases.iter().filter_map(|r| r["id"].as_u64()).collect()
}

/// `logs web`: a line from every running replica, each starting with its prefix (Compose:
/// `web-<number> `, Swarm: `<task>.`); only web's lines; an unknown service refused.
pub(crate) fn logs_prefixed(run: &dyn Fn(&[&str]) -> Ran, prefixes: &[String]) {
    let ran = run(&["logs", "web", "--tail", "20"]);
    ran.expect_success();
    for prefix in prefixes {
        assert!(
            ran.stdout
                .lines()
                .any(|l| l.starts_with(prefix.as_str()) && l.contains(" | ")),
            "no line of {prefix:?} prefixed with its name\n{ran}"
        );
    }
    assert!(
        ran.stdout
            .lines()
            .all(|l| prefixes.iter().any(|p| l.starts_with(p.as_str()))),
        "a line not from a running web replica\n{ran}"
    );
    note(format!(
        "logs web: {} lines from {} replicas",
        ran.stdout.lines().count(),
        prefixes.len()
    ));
    let unknown = run(&["logs", "nope"]);
    unknown.expect_code(2);
    assert!(
        unknown.stderr.contains("no service `nope`") && unknown.stderr.contains("web"),
        "{unknown}"
    );
}

/// One GET through the lb: its status, Retry-After header and body.
fn probe(lb_port: u16) -> (u16, Option<String>, String) {
    let url = format!("http://127.0.0.1:{lb_port}/");
    match ureq::get(&url).timeout(Duration::from_secs(2)).call() {
        Ok(response) => (response.status(), None, String::new()),
        Err(ureq::Error::Status(code, response)) => {
            let retry = response.header("Retry-After").map(str::to_owned);
            (code, retry, response.into_string().unwrap_or_default())
        }
        Err(err) => panic!("GET {url}: {err}"),
    }
}

/// Polls `probe` every 20 ms until `done` holds; how long that took.
fn until(
    lb_port: u16,
    what: &str,
    done: impl Fn(&(u16, Option<String>, String)) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let seen = probe(lb_port);
        if done(&seen) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{what}: still {seen:?} after 5 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `maintenance on` then `off` under `rate` requests per second through the lb on `lb_port`.
pub(crate) fn maintenance_under_load(run: &dyn Fn(&[&str]) -> Ran, lb_port: u16, rate: f64) {
    let load = load::start(LoadOptions::new(
        format!("http://127.0.0.1:{lb_port}/"),
        rate,
    ))
    .expect("starting load");
    let t0 = Instant::now();
    let wait_load = |seconds: f64| {
        while t0.elapsed().as_secs_f64() < seconds {
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_load(2.0);
    let window_start = t0.elapsed().as_secs_f64();
    let on = run(&["maintenance", "on", "--retry-after", "30"]);
    let switched_on = t0.elapsed().as_secs_f64();
    on.expect_success();
    let took = until(lb_port, "maintenance on", |(code, retry, _)| {
        *code == 503 && retry.as_deref() == Some("30")
    });
    let (_, _, page) = probe(lb_port);
    assert!(page.contains("maintenance"), "the 503 page: {page}");
    let status = run(&["status"]);
    status.expect_success();
    assert!(status.stdout.contains("maintenance: ON"), "{status}");
    let off_start = t0.elapsed().as_secs_f64();
    let off = run(&["maintenance", "off"]);
    let switched_off = t0.elapsed().as_secs_f64();
    off.expect_success();
    let back = until(lb_port, "maintenance off", |(code, _, _)| *code == 200);
    let window_end = t0.elapsed().as_secs_f64();
    wait_load(window_end + 2.0);
    let report = load.stop();
    note(format!(
        "maintenance on: `provision maintenance on` took {:.2} s, 503 with Retry-After {:.2} s \
         after it returned; off: took {:.2} s, 200 again {:.2} s after",
        switched_on - window_start,
        took.as_secs_f64(),
        switched_off - off_start,
        back.as_secs_f64()
    ));
    note(load_line("load around maintenance on/off", &report));
    assert!(took < Duration::from_secs(1), "503 only after {took:?}");
    assert!(
        back < Duration::from_secs(1),
        "served again only after {back:?}"
    );
    maintenance_failures_inside(&report, window_start, window_end);
}

/// Every failed request of `report` was a 503 due inside [start, end] (seconds from the load's
/// start), and there were some: the load did meet maintenance mode.
fn maintenance_failures_inside(report: &LoadReport, start: f64, end: f64) {
    let failures = &report.failures;
    let only_503 = failures.status.keys().all(|code| *code == 503)
        && failures.connection + failures.timeout + failures.other == 0;
    assert!(only_503, "failures other than 503: {failures:?}");
    assert_eq!(report.not_sent, 0);
    let in_maintenance = failures.status.get(&503).copied().unwrap_or_default();
    assert!(
        in_maintenance > 0,
        "no request met maintenance mode: {report:#?}"
    );
    let first = report
        .failure_samples
        .first()
        .map(|f| f.at_secs)
        .expect("a failure sample");
    let last = report.last_failure_secs.expect("the last failure");
    assert!(
        first >= start && last <= end,
        "503s from {first:.2} s to {last:.2} s, outside the maintenance window \
         {start:.2}..{end:.2} s"
    );
}

/// After the apply that followed the rollback (releases 1 to 4, `web.keep_releases: 2`): web's
/// image of release 2 is gone (neither release 3 nor 4 nor a container uses it), release 1's
/// is kept (release 3 runs it again), and rolling back to release 2 says its images are gone.
pub(crate) fn assert_pruned(project: &Project) {
    let run = |args: &[&str]| project.run(args, &[], SHORT_TIMEOUT);
    let releases = history_with(&run);
    assert_eq!(ids(&releases), [1, 2, 3, 4], "{releases:#?}");
    let web_image = |release: &Value| -> String {
        release["images"]
            .as_array()
            .and_then(|images| images.iter().find(|i| i["service"] == "web"))
            .and_then(|i| i["reference"].as_str())
            .unwrap_or_else(|| panic!("no web image in {release}"))
            .to_owned()
    };
    let present = |image: &str| docker(&["image", "inspect", image]).code == Some(0);
    let (first, second) = (web_image(&releases[0]), web_image(&releases[1]));
    assert!(!present(&second), "release 2's {second} was not pruned");
    assert!(
        present(&first),
        "release 1's {first} was pruned, release 3 runs it"
    );
    let refused = run(&["rollback", "2"]);
    refused.expect_code(2);
    assert!(
        refused.stderr.contains("release 2's images are gone") && refused.stderr.contains(&second),
        "{refused}"
    );
    note(format!(
        "keep_releases 2: {second} pruned, {first} kept; rollback 2 refused"
    ));
}
