//! HTTP through the load balancer: sequential JSON requests to the hit counter, and small GETs
//! for the stats page and consul. Short timeouts, so a dead endpoint costs seconds, not minutes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Error messages kept per probe; the count covers the rest.
const ERROR_SAMPLES: usize = 5;
/// A load balancer that failed this many requests in a row is not going to answer the rest:
/// stop rather than spend a timeout on each.
pub const ERRORS_IN_A_ROW: u32 = 5;

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(2))
        .timeout(timeout)
        // A new connection per request, so the load balancer chooses a server for each one.
        .max_idle_connections(0)
        .user_agent(concat!("provision/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// GET `url`, expecting 200 and a text body.
pub fn get_text(url: &str, timeout: Duration) -> anyhow::Result<String> {
    match agent(timeout).get(url).call() {
        Ok(response) => Ok(response.into_string()?),
        Err(ureq::Error::Status(code, response)) => {
            let body = response.into_string().unwrap_or_default();
            let body: String = body.trim().chars().take(200).collect();
            anyhow::bail!("HTTP {code}: {body}")
        }
        Err(err) => anyhow::bail!("{}", describe(&err)),
    }
}

/// A short account of a failed request: ureq's own text repeats the URL and nests messages.
fn describe(err: &ureq::Error) -> String {
    match err {
        ureq::Error::Status(code, _) => format!("HTTP {code}"),
        ureq::Error::Transport(t) => {
            let mut innermost = None;
            let mut source = std::error::Error::source(t);
            while let Some(s) = source {
                innermost = Some(s.to_string());
                source = s.source();
            }
            match innermost.as_deref().or(t.message()) {
                Some(detail) => format!("{}: {detail}", t.kind()),
                None => t.kind().to_string(),
            }
        }
    }
}

/// One answer of the hit counter.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Answer {
    pub hits: u64,
    pub hostname: String,
}

/// Parses the app's JSON answer `{"hits": N, "hostname": "H"}`.
pub fn parse_answer(body: &str) -> anyhow::Result<Answer> {
    serde_json::from_str(body).map_err(|e| {
        let start: String = body.trim().chars().take(80).collect();
        anyhow::anyhow!("not the hit counter's JSON ({e}): {start:?}")
    })
}

/// When to stop sending.
#[derive(Debug, Clone)]
pub struct ProbePlan {
    /// Send at least this many.
    pub min: u32,
    /// Never more than this many.
    pub max: u32,
    /// Stop (after `min`) once every one of these hostnames answered.
    pub want_hosts: BTreeSet<String>,
}

impl ProbePlan {
    /// Exactly `n` requests.
    pub fn exactly(n: u32) -> Self {
        ProbePlan {
            min: n,
            max: n,
            want_hosts: BTreeSet::new(),
        }
    }

    /// Enough to see every replica: at least 3 per replica (10 at least), until each expected
    /// host answered, at most 20 per replica; round robin needs only one round, but
    /// `random` and `leastconn` need slack.
    pub fn enough_for(hosts: BTreeSet<String>) -> Self {
        let n = hosts.len().max(1) as u32;
        ProbePlan {
            min: (3 * n).max(10),
            max: 20 * n + 20,
            want_hosts: hosts,
        }
    }
}

/// What the requests through the load balancer saw, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Probe {
    pub sent: u32,
    pub answers: Vec<Answer>,
    pub errors: u32,
    pub error_samples: Vec<String>,
    /// Stopped early: this many requests in a row failed.
    pub gave_up: bool,
}

impl Probe {
    pub fn per_host(&self) -> BTreeMap<String, u32> {
        let mut counts = BTreeMap::new();
        for answer in &self.answers {
            *counts.entry(answer.hostname.clone()).or_insert(0) += 1;
        }
        counts
    }

    fn record_error(&mut self, message: String) {
        self.errors += 1;
        if self.error_samples.len() < ERROR_SAMPLES {
            self.error_samples
                .push(format!("request {}: {message}", self.sent));
        }
    }
}

/// Sends sequential `GET url` with `Accept: application/json` as `plan` says.
pub fn probe(url: &str, plan: &ProbePlan) -> Probe {
    let agent = agent(Duration::from_secs(3));
    let mut probe = Probe::default();
    let mut seen = BTreeSet::new();
    let mut in_a_row = 0;
    while probe.sent < plan.max {
        if in_a_row >= ERRORS_IN_A_ROW {
            probe.gave_up = true;
            break;
        }
        if probe.sent >= plan.min && plan.want_hosts.is_subset(&seen) {
            break;
        }
        probe.sent += 1;
        let result = agent
            .get(url)
            .set("Accept", "application/json")
            .call()
            .map_err(|e| describe(&e))
            .and_then(|r| r.into_string().map_err(|e| e.to_string()))
            .and_then(|body| parse_answer(&body).map_err(|e| e.to_string()));
        match result {
            Ok(answer) => {
                in_a_row = 0;
                seen.insert(answer.hostname.clone());
                probe.answers.push(answer);
            }
            Err(message) => {
                in_a_row += 1;
                probe.record_error(message);
            }
        }
    }
    probe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_and_garbage_is_named() {
        let a = parse_answer(r#"{"hits": 42, "hostname": "0a1b2c3d4e5f"}"#).unwrap();
        assert_eq!((a.hits, a.hostname.as_str()), (42, "0a1b2c3d4e5f"));
        let err = parse_answer("<html>503 Service Unavailable</html>").unwrap_err();
        assert!(
            err.to_string().contains("not the hit counter's JSON"),
            "{err}"
        );
    }

    #[test]
    fn enough_requests_scale_with_replicas() {
        let hosts = |n: usize| (0..n).map(|i| format!("h{i}")).collect::<BTreeSet<_>>();
        let plan = ProbePlan::enough_for(hosts(5));
        assert_eq!((plan.min, plan.max), (15, 120));
        let plan = ProbePlan::enough_for(hosts(1));
        assert_eq!((plan.min, plan.max), (10, 40));
    }

    #[test]
    fn an_unreachable_balancer_gives_errors_and_an_early_stop() {
        // Port 9 (discard) on localhost: nothing listens there in a test environment.
        let probe = probe("http://127.0.0.1:9/", &ProbePlan::exactly(50));
        assert_eq!(probe.sent, ERRORS_IN_A_ROW);
        assert_eq!(probe.errors, ERRORS_IN_A_ROW);
        assert!(probe.gave_up);
        assert!(probe.answers.is_empty());
        assert!(
            probe.error_samples[0].starts_with("request 1: Connection Failed: "),
            "{:?}",
            probe.error_samples
        );
    }
}
