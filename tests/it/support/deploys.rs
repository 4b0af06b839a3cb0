//! What the deploy tests of both targets share (`e2e_rolling.rs` for Compose, `e2e_swarm.rs`):
//! changed versions of the built-in app, one JSON answer through the load balancer, a load
//! report in one line, and HAProxy's current worker.

use std::time::Duration;

use provision::probe::load::LoadReport;
use serde_json::Value;

use super::harness::repo_root;

/// How long a deploy test's load runs before the deploy starts: long enough to be sending at its
/// rate (50 requests a second here) when the deploy's first container changes. It runs 2 s
/// past the deploy's end, which is where a late failure (a drained replica, a reload) would show.
pub(crate) const LOAD_LEAD: Duration = Duration::from_secs(1);

/// The counter's JSON answer in the app blueprint.
pub(crate) const ANSWER: &str = "jsonify(hits=count, hostname=HOSTNAME)";
/// The start of the health path's healthy answer in the app blueprint.
pub(crate) const HEALTHY: &str = "return \"ok\\n\", 200,";

/// The embedded app blueprint with each `from` replaced by its `to` (which must be there): the
/// changed app an operator puts beside the spec as `blueprints/web/app.py.j2`.
pub(crate) fn app_with(changes: &[(&str, &str)]) -> String {
    let path = repo_root().join("blueprints/web/app.py.j2");
    let mut app = std::fs::read_to_string(&path).expect("reading the app blueprint");
    for (from, to) in changes {
        assert!(app.contains(from), "the app blueprint has no {from:?}");
        app = app.replace(from, to);
    }
    app
}

/// An app that adds `version` to its answer; `healthy: false` makes its health path answer 500.
pub(crate) fn app_version(version: &str, healthy: bool) -> String {
    let answer = format!("jsonify(hits=count, hostname=HOSTNAME, version={version:?})");
    let mut changes = vec![(ANSWER, answer.as_str())];
    if !healthy {
        changes.push((HEALTHY, "return \"broken\\n\", 500,"));
    }
    app_with(&changes)
}

/// One `GET /` through the load balancer on `lb_port`, asking for the counter's JSON.
pub(crate) fn json_through_lb(lb_port: u16) -> Value {
    let body = ureq::get(&format!("http://127.0.0.1:{lb_port}/"))
        .set("Accept", "application/json")
        .timeout(Duration::from_secs(5))
        .call()
        .unwrap_or_else(|e| panic!("GET / through the lb: {e}"))
        .into_string()
        .unwrap_or_else(|e| panic!("reading GET / through the lb: {e}"));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The version an answer of `app_version` names ("original" without the field).
pub(crate) fn version_of(answer: &Value) -> String {
    answer["version"].as_str().unwrap_or("original").to_owned()
}

/// What a load run sent and saw, in one line.
pub(crate) fn load_line(what: &str, report: &LoadReport) -> String {
    format!(
        "{what}: {} requests sent at {:.0}/s over {:.1} s, {} failed, {} not sent{}",
        report.sent,
        report.achieved_rate_per_sec,
        report.duration_secs,
        report.failed,
        report.not_sent,
        report
            .failure_samples
            .first()
            .map(|f| format!(" (first failure: {f:?})"))
            .unwrap_or_default()
    )
}

/// The `docker exec <lb> sh -c …` script that asks HAProxy's runtime API for `show info`.
pub(crate) const SHOW_INFO: &str =
    "echo 'show info' | socat stdio UNIX-CONNECT:/run/haproxy/admin.sock";

/// The current worker's pid in `show info`'s answer.
pub(crate) fn worker_pid(show_info: &str) -> String {
    show_info
        .lines()
        .find_map(|l| l.strip_prefix("Pid: "))
        .unwrap_or_else(|| panic!("no Pid in HAProxy's show info:\n{show_info}"))
        .trim()
        .to_owned()
}
