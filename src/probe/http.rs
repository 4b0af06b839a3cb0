//! HTTP through the load balancer: sequential requests to the web app, each asking HAProxy which
//! server answered, and small GETs for the stats page and consul. Short timeouts, so a dead endpoint costs seconds, not minutes.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::spec::Plan;

/// Error messages kept per probe; the count covers the rest.
const ERROR_SAMPLES: usize = 5;
/// A load balancer that failed this many requests in a row is not going to answer the rest:
/// stop rather than spend a timeout on each.
pub const ERRORS_IN_A_ROW: u32 = 5;

fn agent(timeout: Duration) -> ureq::Agent {
    super::tls::with_trust(ureq::AgentBuilder::new())
        .timeout_connect(Duration::from_secs(2))
        .timeout(timeout)
        // A new connection per request, so the load balancer chooses a server for each one.
        .max_idle_connections(0)
        // A redirect is the app's answer to judge, and following it would leave the probe's
        // own request.
        .redirects(0)
        .user_agent(concat!("provision/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// GET `url`, expecting 200 and a text body.
pub fn get_text(url: &str, timeout: Duration) -> anyhow::Result<String> {
    get_text_authorized(url, timeout, None)
}

/// [`get_text`] with an `Authorization` header (the stats page's login). The header's value is a
/// secret: it is never part of an error.
pub fn get_text_authorized(
    url: &str,
    timeout: Duration,
    authorization: Option<&secrecy::SecretString>,
) -> anyhow::Result<String> {
    use secrecy::ExposeSecret as _;
    let mut request = agent(timeout).get(url);
    if let Some(value) = authorization {
        request = request.set("Authorization", value.expose_secret());
    }
    match request.call() {
        Ok(response) => Ok(response.into_string()?),
        Err(ureq::Error::Status(code, response)) => {
            let body = response.into_string().unwrap_or_default();
            let body: String = body.trim().chars().take(200).collect();
            Err(RequestError::Status { code, body }.into())
        }
        Err(err) => Err(RequestError::Unreachable(describe(&err)).into()),
    }
}

/// Why a GET got no answer to read, kept typed so a report can say which (`status --json`).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The server answered with an error status.
    #[error("HTTP {code}: {body}")]
    Status { code: u16, body: String },
    /// No answer: refused, timed out, no route, DNS.
    #[error("{0}")]
    Unreachable(String),
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

/// The request header that asks the load balancer which server answered: its value must be the
/// stack's probe token (`secrets::stack::PROBE_TOKEN`), or the lb says nothing.
pub const PROBE_HEADER: &str = "X-Provision-Probe";
/// The response header the load balancer then adds: `<server name> <ip>:<port>`. The lb
/// blueprints set it only for requests that carry `PROBE_HEADER`, and remove one the app sets.
pub const SERVER_HEADER: &str = "X-Provision-Server";

/// Which HAProxy server answered a request, as HAProxy said in `SERVER_HEADER`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ServedBy {
    /// The server's name in the backend (`web3`, or a consul service ID).
    pub server: String,
    /// `ip:port` HAProxy connected to.
    pub addr: String,
}

impl ServedBy {
    /// Parses `<server name> <ip>:<port>`. The name comes first and may hold spaces (a consul
    /// service ID); the address never does, so it is the last word.
    pub fn parse(value: &str) -> anyhow::Result<ServedBy> {
        let value = value.trim();
        let malformed = || {
            anyhow::anyhow!(
                "malformed {SERVER_HEADER} header {value:?}: expected `<server> <ip>:<port>`"
            )
        };
        let (server, addr) = value.rsplit_once(' ').ok_or_else(malformed)?;
        let (ip, port) = addr.rsplit_once(':').ok_or_else(malformed)?;
        if server.trim().is_empty() || ip.is_empty() || port.parse::<u16>().is_err() {
            return Err(malformed());
        }
        Ok(ServedBy {
            server: server.trim().to_owned(),
            addr: addr.to_owned(),
        })
    }

    /// The address without the port (IPv6 addresses come bracketed or bare; either way the
    /// port is after the last colon).
    pub fn ip(&self) -> &str {
        let ip = self
            .addr
            .rsplit_once(':')
            .map_or(self.addr.as_str(), |(ip, _)| ip);
        ip.trim_start_matches('[').trim_end_matches(']')
    }
}

impl std::fmt::Display for ServedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "server {} ({})", self.server, self.addr)
    }
}

/// The hit counter's JSON answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Counter {
    pub hits: u64,
    pub hostname: String,
}

/// Parses the built-in app's JSON answer `{"hits": N, "hostname": "H"}`.
pub fn parse_counter(body: &str) -> anyhow::Result<Counter> {
    serde_json::from_str(body).map_err(|e| {
        let start: String = body.trim().chars().take(80).collect();
        anyhow::anyhow!("not the hit counter's JSON ({e}): {start:?}")
    })
}

/// What counts as an answer from the web app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// The built-in hit counter: 200 and its JSON.
    Counter,
    /// Your own app: this status (any 2xx when None), and a body holding this text, if set.
    App {
        status: Option<u16>,
        contains: Option<String>,
    },
}

impl Expect {
    /// What the plan's app must answer (`web.expect` applies to your own app only).
    pub fn of(plan: &Plan) -> Expect {
        match &plan.web.app_dir {
            None => Expect::Counter,
            Some(_) => Expect::App {
                status: plan.web.expect.status,
                contains: plan.web.expect.contains.clone(),
            },
        }
    }

    /// How an answer is told apart from an error, for messages: "by the hit counter".
    pub fn describe(&self) -> String {
        match self {
            Expect::Counter => "by the hit counter".to_owned(),
            Expect::App { status, contains } => {
                let status = status.map_or("2xx".to_owned(), |s| s.to_string());
                match contains {
                    None => format!("with HTTP {status}"),
                    Some(text) => format!("with HTTP {status} and {text:?} in the body"),
                }
            }
        }
    }

    /// Whether a response with `status` and `body` is an answer; the counter's JSON for the
    /// built-in app, or why it is not.
    pub fn judge(&self, status: u16, body: &str) -> Result<Option<Counter>, String> {
        let sample = || -> String { body.trim().chars().take(80).collect() };
        match self {
            Expect::Counter if status != 200 => Err(format!("HTTP {status}: {:?}", sample())),
            Expect::Counter => parse_counter(body).map(Some).map_err(|e| e.to_string()),
            Expect::App {
                status: want,
                contains,
            } => {
                let status_ok = match want {
                    Some(want) => status == *want,
                    None => (200..300).contains(&status),
                };
                if !status_ok {
                    return Err(format!(
                        "HTTP {status}, expected {}: {:?}",
                        want.map_or("2xx".to_owned(), |s| s.to_string()),
                        sample()
                    ));
                }
                match contains {
                    Some(text) if !body.contains(text.as_str()) => Err(format!(
                        "HTTP {status} without {text:?} in the body: {:?}",
                        sample()
                    )),
                    _ => Ok(None),
                }
            }
        }
    }
}

/// One request the app answered as expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    /// The request's number, from 1.
    pub request: u32,
    /// Which server answered, as the load balancer said; None when it did not say.
    pub served_by: Option<ServedBy>,
    /// The counter's answer (built-in app only).
    pub counter: Option<Counter>,
}

/// When to stop sending.
#[derive(Debug, Clone)]
pub struct ProbePlan {
    /// Send at least this many.
    pub min: u32,
    /// Never more than this many.
    pub max: u32,
    /// Stop (after `min`) once a server at each of these addresses answered.
    pub want_ips: BTreeSet<String>,
}

impl ProbePlan {
    /// Exactly `n` requests.
    pub fn exactly(n: u32) -> Self {
        ProbePlan {
            min: n,
            max: n,
            want_ips: BTreeSet::new(),
        }
    }

    /// Enough to see every replica: at least 3 per replica (10 at least), until each expected
    /// address answered, at most 20 per replica; round robin needs only one round, but
    /// `random` and `leastconn` need slack.
    pub fn enough_for(ips: BTreeSet<String>) -> Self {
        let n = ips.len().max(1) as u32;
        ProbePlan {
            min: (3 * n).max(10),
            max: 20 * n + 20,
            want_ips: ips,
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
    /// The servers of the responses that were not accepted, as the load balancer named them.
    pub rejected: Vec<ServedBy>,
    /// Stopped early: this many requests in a row failed.
    pub gave_up: bool,
}

impl Probe {
    fn record_error(&mut self, message: String) {
        self.errors += 1;
        if self.error_samples.len() < ERROR_SAMPLES {
            self.error_samples
                .push(format!("request {}: {message}", self.sent));
        }
    }
}

/// Sends sequential `GET url` (with `Accept: application/json` and `PROBE_HEADER` set to
/// `probe_token`, the stack's secret) as `plan` says, and judges each response by `expect`.
pub fn probe(url: &str, plan: &ProbePlan, expect: &Expect, probe_token: &str) -> Probe {
    let agent = agent(Duration::from_secs(3));
    let mut probe = Probe::default();
    let mut seen = BTreeSet::new();
    let mut in_a_row = 0;
    while probe.sent < plan.max {
        if in_a_row >= ERRORS_IN_A_ROW {
            probe.gave_up = true;
            break;
        }
        // Enough once every address answered; also when the load balancer never names a server
        // (a configuration without the rule): more requests would not change that.
        let unnamed =
            !probe.answers.is_empty() && probe.answers.iter().all(|a| a.served_by.is_none());
        if probe.sent >= plan.min && (plan.want_ips.is_subset(&seen) || unnamed) {
            break;
        }
        probe.sent += 1;
        let response = match agent
            .get(url)
            .set("Accept", "application/json")
            .set(PROBE_HEADER, probe_token)
            .call()
        {
            Ok(r) => Ok(r),
            // Any status is the app's answer, to be judged; only transport errors are not.
            Err(ureq::Error::Status(_, r)) => Ok(r),
            Err(e) => Err(describe(&e)),
        };
        // An error keeps the server that gave it, when the load balancer named one.
        let result = response.map_err(|e| (e, None)).and_then(|r| {
            let served_by = r.header(SERVER_HEADER).map(ServedBy::parse);
            let status = r.status();
            let body = r.into_string().map_err(|e| (e.to_string(), None))?;
            let served_by = served_by.transpose().map_err(|e| (e.to_string(), None))?;
            match expect.judge(status, &body) {
                Ok(counter) => Ok(Answer {
                    request: probe.sent,
                    served_by,
                    counter,
                }),
                Err(e) => match served_by {
                    Some(s) => Err((format!("{e} from {s}"), Some(s))),
                    None => Err((e, None)),
                },
            }
        });
        match result {
            Ok(answer) => {
                in_a_row = 0;
                if let Some(s) = &answer.served_by {
                    seen.insert(s.ip().to_owned());
                }
                probe.answers.push(answer);
            }
            Err((message, served_by)) => {
                in_a_row += 1;
                probe.record_error(message);
                probe.rejected.extend(served_by);
            }
        }
    }
    probe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_answers_parse_and_garbage_is_named() {
        let a = parse_counter(r#"{"hits": 42, "hostname": "0a1b2c3d4e5f"}"#).unwrap();
        assert_eq!((a.hits, a.hostname.as_str()), (42, "0a1b2c3d4e5f"));
        let err = parse_counter("<html>503 Service Unavailable</html>").unwrap_err();
        assert!(
            err.to_string().contains("not the hit counter's JSON"),
            "{err}"
        );
    }

    #[test]
    fn the_server_header_names_server_and_address() {
        let s = ServedBy::parse("web3 172.20.0.5:5000").unwrap();
        assert_eq!(
            (s.server.as_str(), s.addr.as_str()),
            ("web3", "172.20.0.5:5000")
        );
        assert_eq!(s.ip(), "172.20.0.5");
        assert_eq!(s.to_string(), "server web3 (172.20.0.5:5000)");
        // consul-template mode names servers by consul service ID (registrator's has colons).
        let s = ServedBy::parse(" registrator:hits-web-1:5000 10.0.0.7:5000\r").unwrap();
        assert_eq!(s.server, "registrator:hits-web-1:5000");
        assert_eq!(s.ip(), "10.0.0.7");
        let v6 = ServedBy::parse("web1 [fd00::7]:5000").unwrap();
        assert_eq!(v6.ip(), "fd00::7");
        for bad in [
            "",
            "web3",
            "web3 172.20.0.5",
            " 172.20.0.5:5000",
            "web3 172.20.0.5:http",
            "web3 :5000",
        ] {
            let err = ServedBy::parse(bad).unwrap_err().to_string();
            assert!(
                err.contains("malformed X-Provision-Server"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn the_lb_blueprint_uses_these_header_names() {
        let common = include_str!("../../blueprints/lb/_haproxy-common.j2");
        assert!(
            common.contains(&format!(
                "req.hdr({PROBE_HEADER}) -m str -f /run/secrets/{}",
                crate::secrets::stack::PROBE_TOKEN
            )),
            "the probe header"
        );
        assert!(
            common.contains(&format!(
                "set-header {SERVER_HEADER} \"%[srv_name] %si:%sp\""
            )),
            "the server header, in the format ServedBy::parse reads"
        );
    }

    #[test]
    fn the_counter_needs_200_and_its_json() {
        let json = r#"{"hits": 7, "hostname": "h"}"#;
        assert_eq!(Expect::Counter.judge(200, json).unwrap().unwrap().hits, 7);
        assert_eq!(
            Expect::Counter
                .judge(503, "<html>no server</html>")
                .unwrap_err(),
            "HTTP 503: \"<html>no server</html>\""
        );
        assert!(Expect::Counter.judge(200, "hello").is_err());
    }

    #[test]
    fn your_app_needs_a_2xx_or_what_the_spec_names() {
        let any = Expect::App {
            status: None,
            contains: None,
        };
        assert_eq!(any.judge(200, "hello from abc"), Ok(None));
        assert_eq!(any.judge(204, ""), Ok(None));
        assert_eq!(
            any.judge(302, "").unwrap_err(),
            "HTTP 302, expected 2xx: \"\""
        );
        assert_eq!(any.describe(), "with HTTP 2xx");
        let named = Expect::App {
            status: Some(200),
            contains: Some("hello from".into()),
        };
        assert_eq!(named.judge(200, "hello from abc\n"), Ok(None));
        assert_eq!(
            named.judge(200, "bye").unwrap_err(),
            "HTTP 200 without \"hello from\" in the body: \"bye\""
        );
        assert!(named.judge(201, "hello from abc").is_err());
        assert_eq!(
            named.describe(),
            "with HTTP 200 and \"hello from\" in the body"
        );
        assert_eq!(Expect::Counter.describe(), "by the hit counter");
    }

    #[test]
    fn enough_requests_scale_with_replicas() {
        let ips = |n: usize| {
            (0..n)
                .map(|i| format!("10.0.0.{i}"))
                .collect::<BTreeSet<_>>()
        };
        let plan = ProbePlan::enough_for(ips(5));
        assert_eq!((plan.min, plan.max), (15, 120));
        let plan = ProbePlan::enough_for(ips(1));
        assert_eq!((plan.min, plan.max), (10, 40));
    }

    /// A one-thread HTTP server on loopback that answers each connection with the next of
    /// `responses` and hands back the request heads it read.
    fn fake_lb(responses: Vec<String>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut heads = Vec::new();
            for response in responses {
                let (mut conn, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    head.push_str(&line);
                }
                heads.push(head);
                conn.write_all(response.as_bytes()).unwrap();
            }
            heads
        });
        (url, handle)
    }

    fn response(status: &str, headers: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn the_probe_asks_and_reads_which_server_answered() {
        let json = r#"{"hits": 1, "hostname": "h1"}"#;
        let (url, lb) = fake_lb(vec![
            response("200 OK", "X-Provision-Server: web1 10.0.0.1:5000\r\n", json),
            response(
                "302 Found",
                "Location: /elsewhere\r\nX-Provision-Server: web2 10.0.0.2:5000\r\n",
                "",
            ),
            response("200 OK", "", json),
        ]);
        let probe = probe(&url, &ProbePlan::exactly(3), &Expect::Counter, "token");
        let heads = lb.join().unwrap();
        assert!(
            heads
                .iter()
                .all(|h| h.to_lowercase().contains("x-provision-probe: token")),
            "{heads:?}"
        );
        assert_eq!(probe.sent, 3);
        assert_eq!(probe.answers.len(), 2);
        assert_eq!(
            probe.answers[0].served_by,
            Some(ServedBy {
                server: "web1".into(),
                addr: "10.0.0.1:5000".into()
            })
        );
        assert_eq!(probe.answers[0].counter.as_ref().unwrap().hostname, "h1");
        // A redirect is judged, not followed, and the error names the server.
        assert_eq!(
            probe.error_samples,
            ["request 2: HTTP 302: \"\" from server web2 (10.0.0.2:5000)"]
        );
        assert_eq!(
            (probe.answers[1].request, &probe.answers[1].served_by),
            (3, &None)
        );
    }

    #[test]
    fn an_unreachable_balancer_gives_errors_and_an_early_stop() {
        // Port 9 (discard) on localhost: nothing listens there in a test environment.
        let probe = probe(
            "http://127.0.0.1:9/",
            &ProbePlan::exactly(50),
            &Expect::Counter,
            "token",
        );
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
