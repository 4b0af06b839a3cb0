//! What a load run saw: per-worker tallies merged into a [`LoadReport`], judged against the
//! tolerance, and told in a few lines of text.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::check::{Check, Numbers};

use super::series::{Second, SeriesTally};
use super::LoadOptions;

/// Failures kept with their reason; the counts cover the rest.
const FAILURE_SAMPLES: usize = 5;
/// A send lag worth telling people about: well above a timer's and a thread wakeup's jitter.
const NOTABLE_LAG_MS: f64 = 10.0;
/// Latencies are recorded in microseconds, up to an hour, to 3 significant digits.
const LATENCY_MAX_US: u64 = 3_600_000_000;

/// How a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailureKind {
    /// An answer with a status other than 2xx.
    Status { code: u16 },
    /// Refused, reset or closed before a whole answer.
    Connection,
    /// No whole answer within the timeout.
    Timeout,
    /// Anything else, such as an answer that is not HTTP.
    Other,
}

/// One failed request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureSample {
    /// When the request was due, in seconds from the start of the load.
    pub at_secs: f64,
    #[serde(flatten)]
    pub kind: FailureKind,
    pub reason: String,
}

/// Failed requests by kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Failures {
    /// Per non-2xx status code.
    pub status: BTreeMap<u16, u64>,
    pub connection: u64,
    pub timeout: u64,
    pub other: u64,
}

impl Failures {
    pub fn total(&self) -> u64 {
        self.status.values().sum::<u64>() + self.connection + self.timeout + self.other
    }

    fn add(&mut self, kind: FailureKind, n: u64) {
        match kind {
            FailureKind::Status { code } => *self.status.entry(code).or_default() += n,
            FailureKind::Connection => self.connection += n,
            FailureKind::Timeout => self.timeout += n,
            FailureKind::Other => self.other += n,
        }
    }
}

/// Latency of finished requests (succeeded or failed), from when each was due.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// How late requests went out after they were due: this generator's own delay (a busy pool,
/// or a machine too busy to run its threads on time). It is part of the latency; a large one
/// says the latency measures the machine running the load as much as the load balancer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SendLag {
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Answers counted by the value of one response header.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServedBy {
    pub header: String,
    /// Answers (of any status) per header value.
    pub counts: BTreeMap<String, u64>,
    /// Per header value, seconds from the start of the load to its first answer.
    pub first_answer_secs: BTreeMap<String, f64>,
    /// Answers without the header.
    pub missing: u64,
}

/// The last replica that joined during the load, and how soon it answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Joined {
    /// Its address.
    pub address: String,
    /// Seconds from HAProxy having it UP (as polled, every 0.25 s) to its first answer under
    /// load; None when no load request reached it.
    pub first_answer_after_secs: Option<f64>,
}

/// What a load run did and saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadReport {
    pub url: String,
    pub target_rate_per_sec: f64,
    /// `sent` over `duration_secs`.
    pub achieved_rate_per_sec: f64,
    /// From the start to the stop of the sending (requests in flight then finish after it).
    pub duration_secs: f64,
    /// Requests due in that time.
    pub intended: u64,
    /// Requests that went out; each either succeeded or failed.
    pub sent: u64,
    /// Requests due but still waiting for a free worker a timeout after the sending stopped.
    pub not_sent: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub failures: Failures,
    /// The first failures, in the order they were due.
    pub failure_samples: Vec<FailureSample>,
    /// When the last failed request was due (seconds from the start): with the first sample,
    /// the span in which requests failed.
    pub last_failure_secs: Option<f64>,
    /// None when no request finished.
    pub latency: Option<Latency>,
    /// None when no request was sent.
    pub send_lag: Option<SendLag>,
    /// Worker threads used (the most requests in flight at once).
    pub workers: usize,
    /// Requests that found every worker busy and the pool at its cap, and waited.
    pub waited_for_worker: u64,
    pub served_by: Option<ServedBy>,
    /// How soon the last replica to join answered through the load balancer (verify fills it
    /// in when it scaled up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub joined: Option<Joined>,
    /// Where the run is outside the tolerance; empty when it passed.
    pub problems: Vec<String>,
    /// Second by second, from the start: what the HTML report plots.
    pub per_second: Vec<Second>,
}

/// How a request ended.
#[derive(Debug)]
pub(super) enum Outcome {
    Succeeded,
    Failed(FailureKind, String),
}

impl Outcome {
    /// The outcome of an answer with status `code`.
    pub(super) fn status(code: u16) -> Self {
        if (200..300).contains(&code) {
            Outcome::Succeeded
        } else {
            Outcome::Failed(FailureKind::Status { code }, format!("HTTP {code}"))
        }
    }
}

/// The counted header of a request's answer.
#[derive(Debug)]
pub(super) enum Header {
    /// No header is counted, or no answer came.
    NotCounted,
    Missing,
    Value(String),
}

/// When a request went out and when it finished, both from when it was due.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    pub lag: Duration,
    pub latency: Duration,
}

/// One worker's results.
#[derive(Debug)]
pub(super) struct Tally {
    sent: u64,
    succeeded: u64,
    failures: Failures,
    samples: Vec<FailureSample>,
    /// When the last failed request was due.
    last_failure: Option<Duration>,
    latency_us: Histogram<u64>,
    lag_us: Histogram<u64>,
    served_by: BTreeMap<String, u64>,
    /// Per header value, when its first answer arrived (after the start).
    first_answer: BTreeMap<String, Duration>,
    missing: u64,
    series: SeriesTally,
}

impl Tally {
    pub(super) fn new() -> Self {
        Tally {
            sent: 0,
            succeeded: 0,
            failures: Failures::default(),
            samples: Vec::new(),
            last_failure: None,
            latency_us: histogram(),
            lag_us: histogram(),
            served_by: BTreeMap::new(),
            first_answer: BTreeMap::new(),
            missing: 0,
            series: SeriesTally::default(),
        }
    }

    /// A finished request, due `at` after the start.
    pub(super) fn record(
        &mut self,
        at: Duration,
        timing: Timing,
        outcome: Outcome,
        header: Header,
    ) {
        self.sent += 1;
        self.series.record(
            at,
            timing.latency,
            matches!(outcome, Outcome::Failed(..)),
            match &header {
                Header::Value(value) => Some(value),
                _ => None,
            },
        );
        self.latency_us.saturating_record(micros(timing.latency));
        self.lag_us.saturating_record(micros(timing.lag));
        match outcome {
            Outcome::Succeeded => self.succeeded += 1,
            Outcome::Failed(kind, reason) => {
                self.failures.add(kind, 1);
                self.last_failure = self.last_failure.max(Some(at));
                // A worker takes requests in due order, so its first failures are its earliest.
                if self.samples.len() < FAILURE_SAMPLES {
                    self.samples.push(FailureSample {
                        at_secs: at.as_secs_f64(),
                        kind,
                        reason,
                    });
                }
            }
        }
        match header {
            Header::NotCounted => {}
            Header::Missing => self.missing += 1,
            Header::Value(value) => {
                let answered = at + timing.latency;
                self.first_answer
                    .entry(value.clone())
                    .and_modify(|first| *first = (*first).min(answered))
                    .or_insert(answered);
                *self.served_by.entry(value).or_default() += 1;
            }
        }
    }

    pub(super) fn merge(&mut self, other: Tally) {
        self.sent += other.sent;
        self.succeeded += other.succeeded;
        for (code, n) in other.failures.status {
            self.failures.add(FailureKind::Status { code }, n);
        }
        self.failures
            .add(FailureKind::Connection, other.failures.connection);
        self.failures
            .add(FailureKind::Timeout, other.failures.timeout);
        self.failures.add(FailureKind::Other, other.failures.other);
        self.samples.extend(other.samples);
        self.last_failure = self.last_failure.max(other.last_failure);
        self.samples.sort_by(|a, b| a.at_secs.total_cmp(&b.at_secs));
        self.samples.truncate(FAILURE_SAMPLES);
        for (mine, theirs) in [
            (&mut self.latency_us, &other.latency_us),
            (&mut self.lag_us, &other.lag_us),
        ] {
            mine.add(theirs)
                .expect("histograms of the same bounds add up");
        }
        for (value, n) in other.served_by {
            *self.served_by.entry(value).or_default() += n;
        }
        for (value, at) in other.first_answer {
            self.first_answer
                .entry(value)
                .and_modify(|first| *first = (*first).min(at))
                .or_insert(at);
        }
        self.missing += other.missing;
        self.series.merge(other.series);
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("constant histogram bounds are valid")
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// What the load's threads counted outside the workers' tallies.
#[derive(Debug)]
pub(super) struct Counts {
    pub duration: Duration,
    pub intended: u64,
    pub not_sent: u64,
    pub waited_for_worker: u64,
    pub workers: usize,
}

impl LoadReport {
    pub(super) fn new(options: &LoadOptions, tally: Tally, counts: Counts) -> Self {
        let seconds = counts.duration.as_secs_f64();
        let histogram = &tally.latency_us;
        let ms = |us: u64| us as f64 / 1000.0;
        let latency = (!histogram.is_empty()).then(|| Latency {
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
        });
        let lag = &tally.lag_us;
        let send_lag = (!lag.is_empty()).then(|| SendLag {
            p99_ms: ms(lag.value_at_quantile(0.99)),
            max_ms: ms(lag.max()),
        });
        let mut report = LoadReport {
            url: options.url.clone(),
            target_rate_per_sec: options.rate_per_sec,
            achieved_rate_per_sec: if seconds > 0.0 {
                tally.sent as f64 / seconds
            } else {
                0.0
            },
            duration_secs: seconds,
            intended: counts.intended,
            sent: tally.sent,
            not_sent: counts.not_sent,
            succeeded: tally.succeeded,
            failed: tally.failures.total(),
            failures: tally.failures,
            failure_samples: tally.samples,
            last_failure_secs: tally.last_failure.map(|at| at.as_secs_f64()),
            latency,
            send_lag,
            workers: counts.workers,
            waited_for_worker: counts.waited_for_worker,
            served_by: options.header.as_ref().map(|header| ServedBy {
                header: header.clone(),
                counts: tally.served_by,
                first_answer_secs: tally
                    .first_answer
                    .into_iter()
                    .map(|(value, at)| (value, at.as_secs_f64()))
                    .collect(),
                missing: tally.missing,
            }),
            joined: None,
            problems: Vec::new(),
            per_second: tally.series.into_seconds(),
        };
        report.problems = report.judge(options);
        report
    }

    fn judge(&self, options: &LoadOptions) -> Vec<String> {
        let tolerance = &options.tolerance;
        let mut problems = Vec::new();
        if self.sent == 0 {
            problems.push("no request was sent".to_owned());
        }
        let allowed = (tolerance.failed_fraction * self.sent as f64).floor() as u64;
        if self.failed > allowed {
            problems.push(format!(
                "{} of {} requests failed (tolerated: {})",
                thousands(self.failed),
                thousands(self.sent),
                thousands(allowed)
            ));
        }
        if self.not_sent > 0 {
            problems.push(format!(
                "{} requests were due but never sent: all {} workers were still busy a timeout \
                 after the stop",
                thousands(self.not_sent),
                self.workers
            ));
        }
        if let (Some(limit), Some(latency)) = (tolerance.p99, self.latency) {
            let limit_ms = limit.as_secs_f64() * 1000.0;
            if latency.p99_ms > limit_ms {
                problems.push(format!(
                    "p99 latency {} is above the tolerated {}",
                    millis(latency.p99_ms),
                    millis(limit_ms)
                ));
            }
        }
        problems
    }

    /// Measures the convergence of the replica that joined last: `first_up` says when HAProxy
    /// was first seen with each address UP, `new_ips` which addresses are new, and the header
    /// counts (`X-Provision-Server: <server> <ip>:<port>`) when each address first answered.
    pub fn measure_joined(
        &mut self,
        started_at: Instant,
        first_up: &BTreeMap<String, Instant>,
        new_ips: &BTreeSet<String>,
    ) {
        let Some((ip, up)) = first_up
            .iter()
            .filter(|(ip, _)| new_ips.contains(*ip))
            .max_by_key(|(_, at)| **at)
        else {
            return;
        };
        let first_answer = self.served_by.as_ref().and_then(|served| {
            served
                .first_answer_secs
                .iter()
                .filter(|(value, _)| {
                    crate::probe::http::ServedBy::parse(value).is_ok_and(|s| s.ip() == ip)
                })
                .map(|(_, secs)| *secs)
                .reduce(f64::min)
        });
        self.joined = Some(Joined {
            address: ip.clone(),
            first_answer_after_secs: first_answer.map(|secs| {
                let answered = started_at + Duration::from_secs_f64(secs);
                let after = answered.saturating_duration_since(*up).as_secs_f64();
                (after * 1000.0).round() / 1000.0
            }),
        });
    }

    /// The `load` check of verify: passes when the run kept within its tolerance. The message is
    /// the summary without its `load: ` prefix; the numbers are the ones CI compares.
    pub fn check(&self) -> Check {
        let mut lines = self.summary_lines();
        if let Some(first) = lines.first_mut() {
            *first = first.trim_start_matches("load: ").to_owned();
        }
        let mut numbers = Numbers::default()
            .with("rate", self.target_rate_per_sec)
            .with("sent", self.sent)
            .with("failed", self.failed)
            .with("not_sent", self.not_sent)
            .with("seconds", (self.duration_secs * 10.0).round() / 10.0);
        if let Some(l) = self.latency {
            numbers = numbers
                .with("p50_ms", l.p50_ms)
                .with("p99_ms", l.p99_ms)
                .with("max_ms", l.max_ms);
        }
        match &self.joined {
            Some(Joined {
                address,
                first_answer_after_secs: Some(after),
            }) => {
                lines.push(format!(
                    "the last replica to join ({address}) answered through the load balancer \
                     {after:.2} s after HAProxy had it UP"
                ));
                numbers = numbers.with("joined_first_answer_s", *after);
            }
            Some(Joined { address, .. }) => lines.push(format!(
                "the last replica to join ({address}) got no load request before the load stopped"
            )),
            None => {}
        }
        Check::pass_if("load", self.problems.is_empty(), lines.join("\n")).numbers(numbers)
    }

    /// The report for people, e.g.
    /// `load: 1,200 sent at 100/s over 12.0 s, 0 failed; p50 4.1 ms, p99 18 ms, max 41 ms`.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut rate = format!("{}/s", per_sec(self.achieved_rate_per_sec));
        // The achieved rate is the one that matters; the target is named when they differ.
        if (self.achieved_rate_per_sec - self.target_rate_per_sec).abs()
            > 0.02 * self.target_rate_per_sec
        {
            rate.push_str(&format!(
                " (target {}/s)",
                per_sec(self.target_rate_per_sec)
            ));
        }
        let latency = match self.latency {
            Some(l) => format!(
                "p50 {}, p99 {}, max {}",
                millis(l.p50_ms),
                millis(l.p99_ms),
                millis(l.max_ms)
            ),
            None => "no latency: nothing finished".to_owned(),
        };
        let mut lines = vec![format!(
            "load: {} sent at {rate} over {:.1} s, {} failed; {latency}",
            thousands(self.sent),
            self.duration_secs,
            thousands(self.failed)
        )];
        if self.failed > 0 {
            let mut kinds: Vec<String> = self
                .failures
                .status
                .iter()
                .map(|(code, n)| format!("HTTP {code} ×{}", thousands(*n)))
                .collect();
            for (name, n) in [
                ("connection", self.failures.connection),
                ("timeout", self.failures.timeout),
                ("other", self.failures.other),
            ] {
                if n > 0 {
                    kinds.push(format!("{name} ×{}", thousands(n)));
                }
            }
            lines.push(format!("load failures: {}", kinds.join(", ")));
            for sample in &self.failure_samples {
                lines.push(format!("  at {:.2} s: {}", sample.at_secs, sample.reason));
            }
        }
        if self.waited_for_worker > 0 {
            lines.push(format!(
                "load: {} requests waited for a worker (all {} busy); the wait is in their latency",
                thousands(self.waited_for_worker),
                self.workers
            ));
        }
        if let Some(lag) = self.send_lag.filter(|lag| lag.p99_ms >= NOTABLE_LAG_MS) {
            lines.push(format!(
                "load: requests went out up to {} late (p99 {}): this machine was busy, and the \
                 latency includes it",
                millis(lag.max_ms),
                millis(lag.p99_ms)
            ));
        }
        if let Some(served) = &self.served_by {
            let mut counts: Vec<String> = served
                .counts
                .iter()
                .map(|(value, n)| format!("{value} {}", thousands(*n)))
                .collect();
            if served.missing > 0 {
                counts.push(format!("without the header {}", thousands(served.missing)));
            }
            if counts.is_empty() {
                counts.push("no answers".to_owned());
            }
            lines.push(format!("load by {}: {}", served.header, counts.join(", ")));
        }
        lines.extend(self.problems.iter().map(|p| format!("load problem: {p}")));
        lines
    }
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// About three significant digits, in ms below a second.
fn millis(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.2} ms")
    } else if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

/// A rate: whole numbers from 10 per second up.
fn per_sec(rate: f64) -> String {
    if rate >= 10.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.1}")
    }
}
