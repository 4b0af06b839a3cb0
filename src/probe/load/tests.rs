//! The load generator against tiny HTTP servers on loopback. Bounds are generous: these run on
//! a shared 2-core machine, where a sleep can overshoot by tens of milliseconds.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::{start, FailureKind, LoadOptions, LoadReport};

/// How the test server answers its `n`th connection (from 0).
struct Reply {
    status: u16,
    delay: Duration,
    header: Option<String>,
}

impl Reply {
    fn ok() -> Self {
        Reply {
            status: 200,
            delay: Duration::ZERO,
            header: None,
        }
    }
}

/// An HTTP/1.1 server on 127.0.0.1 that answers each connection once and closes it.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    /// `threaded`: a thread per connection; otherwise one connection at a time, so a slow
    /// answer holds up every request behind it (as a stalled load balancer does).
    fn start(threaded: bool, reply: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let reply = Arc::new(reply);
        let accept = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let count = AtomicUsize::new(0);
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let answer = reply(count.fetch_add(1, Ordering::SeqCst));
                    if threaded {
                        thread::spawn(move || answer_once(stream, answer));
                    } else {
                        answer_once(stream, answer);
                    }
                }
            })
        };
        Server {
            addr,
            stop,
            accept: Some(accept),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the stop.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn answer_once(stream: TcpStream, reply: Reply) {
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    // The request head ends with an empty line.
    while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
        if line == "\r\n" {
            break;
        }
        line.clear();
    }
    thread::sleep(reply.delay);
    let header = reply
        .header
        .map(|value| format!("X-Served-By: {value}\r\n"))
        .unwrap_or_default();
    let _ = write!(
        &stream,
        "HTTP/1.1 {} Test\r\nContent-Length: 3\r\nConnection: close\r\n{header}\r\nhi\n",
        reply.status
    );
}

/// `rate` per second to `url` for `seconds`.
fn run(options: LoadOptions, seconds: f64) -> LoadReport {
    let load = start(options).unwrap();
    thread::sleep(Duration::from_secs_f64(seconds));
    load.stop()
}

/// Every request due is accounted for, exactly once.
fn assert_books_balance(report: &LoadReport) {
    assert_eq!(
        report.sent + report.not_sent,
        report.intended,
        "{report:#?}"
    );
    assert_eq!(report.succeeded + report.failed, report.sent, "{report:#?}");
}

#[test]
fn sends_every_request_due_and_counts_them() {
    let server = Server::start(true, |_| Reply::ok());
    let report = run(LoadOptions::new(server.url(), 200.0), 0.5);
    assert_books_balance(&report);
    // 0.5 s at 200/s is 100 requests (101 counting the one at 0 s), more when the sleep
    // overshot (by 150 ms on a busy machine): as many as were due in the time measured.
    assert!(report.intended >= 100, "{report:#?}");
    let due = (report.duration_secs * 200.0).floor() as u64 + 1;
    assert!(report.intended.abs_diff(due) <= 1, "{report:#?}");
    assert_eq!(report.not_sent, 0);
    assert_eq!(report.succeeded, report.sent);
    assert!(report.problems.is_empty(), "{report:#?}");
    assert!(
        (180.0..=220.0).contains(&report.achieved_rate_per_sec),
        "{report:#?}"
    );
    let lines = report.summary_lines();
    assert!(
        lines[0].starts_with(&format!("load: {} sent at ", report.sent)),
        "{lines:?}"
    );
    assert!(lines[0].contains(", 0 failed; p50 "), "{lines:?}");
}

#[test]
fn a_stall_shows_in_the_latency_of_every_request_it_delayed() {
    // One connection at a time, and the first answer takes 300 ms: the requests due in those
    // 300 ms wait behind it. A closed-loop client would have sent none of them, and would see
    // one slow request; measured from when each was due, about a third of them are slow.
    let server = Server::start(false, |n| Reply {
        delay: Duration::from_millis(if n == 0 { 300 } else { 0 }),
        ..Reply::ok()
    });
    let report = run(LoadOptions::new(server.url(), 200.0), 0.5);
    assert_books_balance(&report);
    assert!(report.intended >= 100, "{report:#?}");
    assert_eq!(report.succeeded, report.sent, "{report:#?}");
    let latency = report.latency.unwrap();
    assert!(latency.max_ms >= 290.0, "{report:#?}");
    assert!(latency.p99_ms >= 250.0, "{report:#?}");
    // Requests due in the first 150 ms waited at least 150 ms: 30 of about 100.
    assert!(latency.p90_ms >= 150.0, "{report:#?}");
    // They waited in the server's queue, each held by a worker of its own: the pool grew.
    assert!(report.workers >= 30, "{report:#?}");
}

#[test]
fn non_2xx_answers_are_failures_with_their_status() {
    let server = Server::start(true, |n| Reply {
        status: if n % 2 == 0 { 503 } else { 200 },
        ..Reply::ok()
    });
    let report = run(LoadOptions::new(server.url(), 100.0), 0.3);
    assert_books_balance(&report);
    assert!(report.failed >= 10, "{report:#?}");
    assert_eq!(report.failures.status.get(&503), Some(&report.failed));
    assert_eq!(report.failures.total(), report.failed);
    let sample = &report.failure_samples[0];
    assert_eq!(sample.kind, FailureKind::Status { code: 503 });
    assert_eq!(sample.reason, "HTTP 503");
    assert_eq!(report.failure_samples.len(), 5);
    let offsets: Vec<f64> = report.failure_samples.iter().map(|s| s.at_secs).collect();
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");
    assert!(offsets[0] < 0.05, "{offsets:?}");
    assert!(
        report.problems[0].contains("requests failed"),
        "{report:#?}"
    );
    let lines = report.summary_lines().join("\n");
    assert!(lines.contains("load failures: HTTP 503 ×"), "{lines}");
}

#[test]
fn a_closed_port_is_a_connection_failure() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let report = run(
        LoadOptions::new(format!("http://127.0.0.1:{port}/"), 100.0),
        0.2,
    );
    assert_books_balance(&report);
    assert!(report.sent >= 10, "{report:#?}");
    assert_eq!(report.failures.connection, report.sent, "{report:#?}");
    let reason = &report.failure_samples[0].reason;
    assert!(reason.contains("refused"), "{reason}");
}

#[test]
fn an_answer_later_than_the_timeout_is_a_timeout() {
    let server = Server::start(true, |_| Reply {
        delay: Duration::from_secs(1),
        ..Reply::ok()
    });
    let mut options = LoadOptions::new(server.url(), 50.0);
    options.timeout = Duration::from_millis(200);
    let report = run(options, 0.2);
    assert_books_balance(&report);
    assert!(report.sent >= 5, "{report:#?}");
    assert_eq!(report.failures.timeout, report.sent, "{report:#?}");
    let latency = report.latency.unwrap();
    assert!(latency.p50_ms >= 190.0, "{report:#?}");
}

#[test]
fn answers_are_counted_per_header_value() {
    let server = Server::start(true, |n| Reply {
        header: match n % 3 {
            0 => Some("web-1".into()),
            1 => Some("web-2".into()),
            _ => None,
        },
        ..Reply::ok()
    });
    let mut options = LoadOptions::new(server.url(), 150.0);
    options.header = Some("x-served-by".into());
    let report = run(options, 0.3);
    assert_books_balance(&report);
    let served = report.served_by.clone().unwrap();
    assert_eq!(served.header, "x-served-by");
    let web1 = served.counts["web-1"];
    let web2 = served.counts["web-2"];
    assert_eq!(served.counts.len(), 2, "{served:?}");
    assert_eq!(web1 + web2 + served.missing, report.sent);
    // Connection n gets value n % 3: the three counts differ by at most one.
    assert!(
        web1.abs_diff(web2) <= 1 && web1.abs_diff(served.missing) <= 1,
        "{served:?}"
    );
    let lines = report.summary_lines().join("\n");
    assert!(
        lines.contains(&format!(
            "load by x-served-by: web-1 {web1}, web-2 {web2}, without the header"
        )),
        "{lines}"
    );
}

#[test]
fn a_full_pool_delays_requests_and_counts_the_ones_never_sent() {
    // One worker, answers taking 50 ms, 100 due per second: the worker manages about 20 per
    // second, the rest wait in the queue. After the stop it goes on for a grace of one
    // timeout (200 ms here); what is still queued then is counted, never dropped.
    let server = Server::start(true, |_| Reply {
        delay: Duration::from_millis(50),
        ..Reply::ok()
    });
    let mut options = LoadOptions::new(server.url(), 100.0);
    options.max_workers = 1;
    options.timeout = Duration::from_millis(200);
    let report = run(options, 0.3);
    assert_books_balance(&report);
    assert_eq!(report.workers, 1);
    // At most one request per 50 ms in 0.3 s plus the 0.2 s grace.
    assert!(report.sent <= 12, "{report:#?}");
    assert!(report.not_sent >= 15, "{report:#?}");
    assert!(report.waited_for_worker >= report.not_sent, "{report:#?}");
    assert!(
        report.problems.iter().any(|p| p.contains("never sent")),
        "{report:#?}"
    );
    // The last request sent waited for the worker, here, before it went out: its latency is
    // well above 50 ms, and the report says the generator was the one late.
    assert!(report.latency.unwrap().max_ms >= 150.0, "{report:#?}");
    assert!(report.send_lag.unwrap().max_ms >= 150.0, "{report:#?}");
    let lines = report.summary_lines().join("\n");
    assert!(lines.contains("load: requests went out up to "), "{lines}");
    assert!(lines.contains("load problem: "), "{lines}");
}

#[test]
fn refuses_a_rate_or_url_it_cannot_use() {
    for rate in [0.0, -1.0, f64::NAN, 1e9] {
        let err = start(LoadOptions::new("http://127.0.0.1:1/", rate)).unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
    }
    let err = start(LoadOptions::new("not a url", 10.0)).unwrap_err();
    assert!(err.to_string().contains("load URL"), "{err}");
}

#[test]
fn p99_above_the_tolerance_is_a_problem() {
    let server = Server::start(true, |_| Reply {
        delay: Duration::from_millis(30),
        ..Reply::ok()
    });
    let mut options = LoadOptions::new(server.url(), 50.0);
    options.tolerance.p99 = Some(Duration::from_millis(10));
    let report = run(options, 0.2);
    assert_eq!(report.failed, 0, "{report:#?}");
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.starts_with("p99 latency ")),
        "{report:#?}"
    );
}

#[test]
fn the_last_replica_to_join_is_timed_from_up_to_its_first_answer() {
    // Replica 10.0.0.2 answers from the 20th connection on; before that only 10.0.0.1 does.
    let server = Server::start(true, |n| Reply {
        header: Some(if n < 20 {
            "web1 10.0.0.1:5000".into()
        } else {
            "web2 10.0.0.2:5000".into()
        }),
        ..Reply::ok()
    });
    let mut options = LoadOptions::new(server.url(), 100.0);
    options.header = Some("x-served-by".into());
    let load = start(options).unwrap();
    let started = load.started_at();
    thread::sleep(Duration::from_millis(500));
    let mut report = load.stop();
    let served = report.served_by.clone().unwrap();
    let first_web2 = served.first_answer_secs["web2 10.0.0.2:5000"];
    assert!(served.first_answer_secs["web1 10.0.0.1:5000"] < first_web2);

    // HAProxy had web2 UP 50 ms before its first answer; web1 is not new.
    let up = started + Duration::from_secs_f64(first_web2) - Duration::from_millis(50);
    let first_up = BTreeMap::from([
        ("10.0.0.1".to_owned(), started),
        ("10.0.0.2".to_owned(), up),
    ]);
    let new_ips = BTreeSet::from(["10.0.0.2".to_owned()]);
    report.measure_joined(started, &first_up, &new_ips);
    let joined = report.joined.clone().unwrap();
    assert_eq!(joined.address, "10.0.0.2");
    let after = joined.first_answer_after_secs.unwrap();
    assert!((0.045..=0.055).contains(&after), "{after}");
    let check = report.check();
    assert!(
        check.message.contains(
            "the last replica to join (10.0.0.2) answered through the load balancer 0.05 s after"
        ),
        "{}",
        check.message
    );

    // A new replica that no load request reached is said so, not timed.
    let first_up = BTreeMap::from([("10.0.0.3".to_owned(), started)]);
    report.measure_joined(started, &first_up, &BTreeSet::from(["10.0.0.3".to_owned()]));
    assert_eq!(report.joined.unwrap().first_answer_after_secs, None);
}
