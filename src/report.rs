//! Check results as readable text, JSON and JUnit XML.
//!
//! A `Report` is plain data (checks built by `probe::evaluate` from observations), so each format is a
//! pure function of it and can be snapshot-tested with a fixed fake report.

use std::time::Duration;

use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;
use serde_json::Value;

pub use crate::check::{round1, Check, Numbers, Outcome};
use crate::deploy::scale::ScaleAction;
use crate::json::Envelope;
use crate::printer::Palette;
use crate::probe::load::LoadReport;
use crate::probe::measure::Timeline;

/// The outcome of one `verify`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub project: String,
    pub discovery: String,
    /// Web replicas the stack should have (the --scale target, or the containers that exist).
    pub expected_replicas: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<ScaleAction>,
    pub passed: bool,
    pub seconds: f64,
    pub checks: Vec<Check>,
    /// What `--load` sent and saw, in full (its `load` check has the main numbers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadReport>,
    /// With `--load`: the scale step's events and HAProxy's servers UP, on the load's time axis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Timeline>,
}

impl Report {
    pub fn new(
        project: &str,
        discovery: &str,
        expected: u32,
        scale: Option<ScaleAction>,
        checks: Vec<Check>,
        elapsed: Duration,
    ) -> Self {
        Report {
            project: project.to_owned(),
            discovery: discovery.to_owned(),
            expected_replicas: expected,
            scale,
            passed: checks.iter().all(|c| c.outcome != Outcome::Fail),
            seconds: round1(elapsed.as_secs_f64()),
            checks,
            load: None,
            timeline: None,
        }
    }

    fn count(&self, outcome: Outcome) -> usize {
        self.checks.iter().filter(|c| c.outcome == outcome).count()
    }

    pub fn failures(&self) -> usize {
        self.count(Outcome::Fail)
    }

    /// Readable text for a terminal or a log; `palette` colours PASS and FAIL on a terminal.
    pub fn to_text(&self, palette: &Palette) -> String {
        let mut out = format!(
            "verify {} ({} discovery): {} web replica{}\n",
            self.project,
            self.discovery,
            self.expected_replicas,
            plural(self.expected_replicas as usize)
        );
        if let Some(scale) = &self.scale {
            out.push_str(&format!(
                "  scaled web {} -> {} in {:.1} s",
                scale.from, scale.to, scale.seconds
            ));
            if scale.batches > 1 {
                out.push_str(&format!(", {} batches", scale.batches));
            }
            if !scale.drained.is_empty() {
                out.push_str(&format!(" (drained first: {})", scale.drained.join(", ")));
            }
            out.push('\n');
        }
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for check in &self.checks {
            out.push_str(&format!(
                "  {}  {:width$}  {}\n",
                label(check.outcome, palette),
                check.name,
                check
                    .message
                    .replace('\n', &format!("\n  {:width$}        ", ""))
            ));
            if !check.numbers.0.is_empty() {
                out.push_str(&format!(
                    "  {:width$}        {}\n",
                    "",
                    inline(&check.numbers)
                ));
            }
        }
        out.push_str(&format!(
            "result: {} ({} passed, {} failed, {} skipped) in {:.1} s\n",
            if self.passed {
                palette.pass("PASS")
            } else {
                palette.fail("FAIL")
            },
            self.count(Outcome::Pass),
            self.count(Outcome::Fail),
            self.count(Outcome::Skip),
            self.seconds
        ));
        out
    }

    /// The report in the JSON envelope (docs/json.md): `ok` is `passed`.
    pub fn to_json(&self) -> String {
        Envelope::new("verify", self.passed, self)
            .to_text()
            .expect("a report serializes")
    }

    /// JUnit XML: one suite per verify run, one test case per check.
    pub fn to_junit(&self) -> anyhow::Result<String> {
        let mut suite = TestSuite::new(format!("provision verify {}", self.project));
        suite.set_time(Duration::from_secs_f64(self.seconds));
        suite.add_property(("discovery", self.discovery.as_str()));
        suite.add_property((
            "expected_replicas",
            self.expected_replicas.to_string().as_str(),
        ));
        for check in &self.checks {
            let mut status = match check.outcome {
                Outcome::Pass => TestCaseStatus::success(),
                Outcome::Fail => TestCaseStatus::non_success(NonSuccessKind::Failure),
                Outcome::Skip => TestCaseStatus::skipped(),
            };
            if check.outcome != Outcome::Pass {
                // An attribute cannot keep line breaks: the first line there, all of it inside.
                let first = check.message.lines().next().unwrap_or_default();
                status.set_message(first);
                if first.len() < check.message.len() {
                    status.set_description(check.message.as_str());
                }
            }
            let mut case = TestCase::new(check.name.as_str(), status);
            case.set_classname(format!("verify.{}", self.project));
            let mut out = format!("{}\n", check.message);
            if !check.numbers.0.is_empty() {
                out.push_str(&inline(&check.numbers));
                out.push('\n');
            }
            case.set_system_out(out);
            suite.add_test_case(case);
        }
        let mut report = quick_junit::Report::new("provision");
        report.add_test_suite(suite);
        Ok(report.to_string()?)
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn label(outcome: Outcome, palette: &Palette) -> String {
    match outcome {
        Outcome::Pass => palette.pass("PASS"),
        Outcome::Fail => palette.fail("FAIL"),
        Outcome::Skip => palette.warn("skip"),
    }
}

/// Numbers as `key=value` words on one line.
fn inline(numbers: &Numbers) -> String {
    numbers
        .0
        .iter()
        .map(|(k, v)| format!("{k}={}", compact(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn compact(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}:{}", compact(v)))
            .collect::<Vec<_>>()
            .join(","),
        Value::Array(items) => items.iter().map(compact).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A fixed report: a scale-down where one replica was stopped by hand.
    fn fake() -> Report {
        let checks = vec![
            Check::new(
                "replicas running",
                Outcome::Fail,
                "1 of 2 web containers running; hits-web-2 (container 1a2b3c4d5e6f) is exited",
            )
            .numbers(Numbers::default().with("running", 1).with("total", 2)),
            Check::new(
                "converged",
                Outcome::Pass,
                "HAProxy routes to the 1 running replica after 1.2 s",
            )
            .numbers(Numbers::default().with("seconds", 1.2).with("up", 1)),
            Check::new(
                "replicas answered",
                Outcome::Fail,
                "1 of 2 replicas answered\nhits-web-2 (container 1a2b3c4d5e6f) is not running and did not answer",
            )
            .numbers(
                Numbers::default()
                    .with("requests", 20)
                    .with("answers_per_replica", json!({"hits-web-1": 20})),
            ),
            Check::new("registry", Outcome::Skip, "docker-dns discovery has no registry"),
        ];
        Report::new(
            "hits",
            "docker-dns",
            2,
            Some(ScaleAction {
                from: 5,
                to: 2,
                drained: vec!["web3".into(), "web4".into(), "web5".into()],
                batches: 1,
                first_up: Default::default(),
                seconds: 3.4,
                error: None,
            }),
            checks,
            Duration::from_millis(4321),
        )
    }

    #[test]
    fn text() {
        insta::assert_snapshot!(fake().to_text(&Palette::plain()));
    }

    #[test]
    fn json() {
        insta::assert_snapshot!(fake().to_json());
    }

    #[test]
    fn junit() {
        insta::assert_snapshot!(fake().to_junit().unwrap());
    }

    #[test]
    fn passed_ignores_skips() {
        let report = Report::new(
            "hits",
            "docker-dns",
            1,
            None,
            vec![
                Check::new("a", Outcome::Pass, "ok"),
                Check::new("b", Outcome::Skip, "n/a"),
            ],
            Duration::ZERO,
        );
        assert!(report.passed);
        assert_eq!(report.failures(), 0);
        assert!(!fake().passed);
    }
}
