//! Open-loop HTTP load through the load balancer, for `verify --load RATE`: GETs at a constant
//! arrival rate for as long as a scale step and its convergence wait take, so a dropped or
//! stalled request during the change shows up.
//!
//! Open loop: request `i` is due at `t0 + i / rate` whether or not earlier requests have
//! finished, and its latency is measured from that due time, not from when it actually went
//! out. A stall in the load balancer, or a queue in this generator, therefore shows as latency
//! of every request it delayed, instead of silently lowering the rate (the "coordinated
//! omission" of closed-loop clients that wait for one answer before sending the next).
//!
//! Shape: [`start`] spawns a scheduler thread that hands each request, at its due time, to a
//! pool of blocking worker threads; [`Load::stop`] ends the sending, lets the requests already
//! due go out and finish (each is bounded by the timeout) and returns a [`LoadReport`].
//!
//! Why threads with blocking I/O rather than an async runtime: the rates verify needs (hundreds
//! per second, answered in milliseconds on loopback) keep tens of requests in flight at most
//! (12 to 21 workers at 500/s on a busy 2-core machine, for about 0.2 ms of CPU per request),
//! so a few threads suffice; a thread that blocks on a stalled server costs nothing but its
//! stack, and the pool grows on demand (up to [`LoadOptions::max_workers`]) exactly when the
//! server stalls. `ureq` (already used by the other probes) does the HTTP; it retries nothing
//! on a fresh connection, so every failure is seen.
//!
//! Why a new connection per request, not keep-alive: each request then stands for an
//! independent client, goes through the load balancer's accept path, and is balanced on its
//! own; a reload that refuses or resets new connections (the thing a scale step risks) is seen,
//! where a warm keep-alive pool would hide it. On loopback a connect costs tens of
//! microseconds. Linux recycles client ports in TIME_WAIT to loopback addresses (default
//! `net.ipv4.tcp_tw_reuse = 2`), so long runs at hundreds per second do not run out of ports.

mod results;
mod series;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub use results::{FailureKind, FailureSample, Failures, Latency, LoadReport, SendLag, ServedBy};
use results::{Header, Outcome, Tally, Timing};
pub use series::Second;

use crate::UsageError;

/// Rates above this are a typo, not a load test of one laptop's stack.
const MAX_RATE: f64 = 10_000.0;
/// Bytes of a response body read (and timed); a larger body is cut off, not a failure.
const MAX_BODY: u64 = 1 << 20;

/// What load to send, and what counts as passing.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// An `http://` URL, normally the load balancer's front page.
    pub url: String,
    /// Requests per second (arrival rate, kept regardless of answers).
    pub rate_per_sec: f64,
    /// Deadline of one request from when it goes out: connect, send, and read the answer.
    pub timeout: Duration,
    /// A response header whose values are counted, e.g. `X-Served-By` set by HAProxy to the
    /// replica that answered.
    pub header: Option<String>,
    /// A request header sent with every request, e.g. the one that asks HAProxy to say which
    /// server answered.
    pub request_header: Option<(String, String)>,
    /// The most requests in flight at once. When all are busy, a due request waits for a free
    /// worker (the wait counts in its latency and is reported); it is never dropped unseen:
    /// one still waiting a timeout after the stop is counted as not sent.
    pub max_workers: usize,
    pub tolerance: Tolerance,
}

/// What the report may show and still pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Tolerance {
    /// Fraction of sent requests that may fail (0 = none).
    pub failed_fraction: f64,
    /// Highest acceptable p99 latency, if any.
    pub p99: Option<Duration>,
}

impl LoadOptions {
    /// `rate_per_sec` GETs of `url`, a 2 s timeout, up to 256 in flight, no failure tolerated.
    pub fn new(url: impl Into<String>, rate_per_sec: f64) -> Self {
        LoadOptions {
            url: url.into(),
            rate_per_sec,
            timeout: Duration::from_secs(2),
            header: None,
            request_header: None,
            max_workers: 256,
            tolerance: Tolerance {
                failed_fraction: 0.0,
                p99: None,
            },
        }
    }
}

/// Load being sent; [`Load::stop`] ends it. Dropping it without `stop` also ends the sending
/// (the workers finish what they hold and exit), but reports nothing.
#[derive(Debug)]
pub struct Load {
    shared: Arc<Shared>,
    scheduler: Option<JoinHandle<()>>,
    options: LoadOptions,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Workers wait here for a job (or the end).
    work: Condvar,
    /// The scheduler waits here for the next due time (or the end).
    wake: Condvar,
    agent: ureq::Agent,
    url: String,
    header: Option<String>,
    request_header: Option<(String, String)>,
    /// How long after the end requests already queued may still be sent.
    grace: Duration,
    t0: Instant,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Job>,
    /// Workers waiting for a job.
    idle: usize,
    workers: Vec<JoinHandle<Tally>>,
    closed_at: Option<Instant>,
    /// Jobs the scheduler queued: every request due before the end.
    queued: u64,
    /// The scheduler has queued the last request due before the end.
    all_queued: bool,
    /// Jobs queued while every worker was busy and the pool could not grow.
    waited_for_worker: u64,
}

#[derive(Debug, Clone, Copy)]
struct Job {
    due: Instant,
}

/// Starts sending; the first request is due at once.
pub fn start(options: LoadOptions) -> anyhow::Result<Load> {
    let rate = options.rate_per_sec;
    if !(rate > 0.0 && rate <= MAX_RATE) {
        return Err(UsageError(format!(
            "load rate {rate} per second is out of range (more than 0, at most {MAX_RATE})"
        ))
        .into());
    }
    if options.timeout.is_zero() {
        return Err(UsageError("load needs a timeout longer than zero".into()).into());
    }
    if options.max_workers == 0 {
        return Err(UsageError("load needs at least one worker".into()).into());
    }
    let agent = super::tls::with_trust(ureq::AgentBuilder::new())
        // One deadline covers connect, send and receive; ureq sets the socket timeouts to
        // what is left of it before every read and write.
        .timeout(options.timeout)
        .max_idle_connections(0)
        // A redirect is an answer of its own (counted as non-2xx), not a second request.
        .redirects(0)
        .user_agent(concat!("provision-load/", env!("CARGO_PKG_VERSION")))
        .build();
    // Refuse a URL ureq cannot use now, rather than count every request as failed.
    agent
        .get(&options.url)
        .request_url()
        .map_err(|e| UsageError(format!("load URL {:?}: {e}", options.url)))?;

    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        work: Condvar::new(),
        wake: Condvar::new(),
        agent,
        url: options.url.clone(),
        header: options.header.clone(),
        request_header: options.request_header.clone(),
        grace: options.timeout,
        t0: Instant::now(),
    });
    let scheduler = {
        let shared = Arc::clone(&shared);
        let max_workers = options.max_workers;
        thread::Builder::new()
            .name("load-scheduler".into())
            .spawn(move || schedule(&shared, rate, max_workers))?
    };
    Ok(Load {
        shared,
        scheduler: Some(scheduler),
        options,
    })
}

impl Load {
    /// When the first request was due: the origin of the report's `*_secs` offsets.
    pub fn started_at(&self) -> Instant {
        self.shared.t0
    }

    /// Ends the sending and reports, once the requests already due have been sent and
    /// answered: that takes at most twice the timeout (a grace of one timeout to start them,
    /// one more to finish them).
    pub fn stop(mut self) -> LoadReport {
        self.shared.close();
        if let Some(scheduler) = self.scheduler.take() {
            join(scheduler);
        }
        // The scheduler has ended, so the pool no longer grows.
        let workers = std::mem::take(&mut self.shared.lock().workers);
        let worker_count = workers.len();
        let mut tally = Tally::new();
        for worker in workers {
            tally.merge(join(worker));
        }
        let (closed_at, queued, not_sent, waited_for_worker) = {
            let state = self.shared.lock();
            (
                state.closed_at.unwrap_or_else(Instant::now),
                state.queued,
                state.queue.len() as u64,
                state.waited_for_worker,
            )
        };
        LoadReport::new(
            &self.options,
            tally,
            results::Counts {
                duration: closed_at - self.shared.t0,
                intended: queued,
                not_sent,
                waited_for_worker,
                workers: worker_count,
            },
        )
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// A thread's result; a panic in the load's own threads is a bug, so it goes on unwinding.
fn join<T>(handle: JoinHandle<T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// When request `i` is due.
fn due(t0: Instant, rate: f64, i: u64) -> Instant {
    t0 + Duration::from_secs_f64(i as f64 / rate)
}

/// The scheduler: queues request `i` at its due time, and grows the pool when no worker is
/// free. When it runs late it queues every request already due at once, so lateness becomes
/// latency instead of a lower rate.
fn schedule(shared: &Arc<Shared>, rate: f64, max_workers: usize) {
    let mut i: u64 = 0;
    let mut state = shared.lock();
    loop {
        let due = due(shared.t0, rate, i);
        match state.closed_at {
            // What was due before the end is queued even when this thread ran late, so that
            // the count of requests due is exact.
            Some(closed_at) if due > closed_at => {
                state.all_queued = true;
                shared.work.notify_all();
                return;
            }
            Some(_) => {}
            None => {
                let now = Instant::now();
                if now < due {
                    state = shared
                        .wake
                        .wait_timeout(state, due - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    continue;
                }
            }
        }
        state.queue.push_back(Job { due });
        state.queued += 1;
        i += 1;
        if state.queue.len() > state.idle {
            // Spawned while holding the lock: this happens at most `max_workers` times.
            let spawned = state.workers.len() < max_workers && {
                let worker = Arc::clone(shared);
                thread::Builder::new()
                    .name("load-worker".into())
                    .spawn(move || work(&worker))
                    .map(|handle| state.workers.push(handle))
                    .is_ok()
            };
            if !spawned {
                state.waited_for_worker += 1;
            }
        }
        shared.work.notify_one();
    }
}

/// A worker: takes due requests until the end, and keeps its own tally (merged at the end,
/// so workers never contend on shared counters).
fn work(shared: &Shared) -> Tally {
    let mut tally = Tally::new();
    loop {
        let job = {
            let mut state = shared.lock();
            loop {
                // Requests queued before the end were due, so they still go out; but not a
                // backlog that a full pool could not clear within a grace period (a dead load
                // balancer at a high rate), which would hold `stop` for minutes.
                if let (true, Some(closed_at)) = (state.all_queued, state.closed_at) {
                    if state.queue.is_empty() || closed_at.elapsed() > shared.grace {
                        return tally;
                    }
                }
                if let Some(job) = state.queue.pop_front() {
                    break job;
                }
                state.idle += 1;
                state = shared.work.wait(state).unwrap_or_else(|e| e.into_inner());
                state.idle -= 1;
            }
        };
        let lag = job.due.elapsed();
        let (outcome, header) = shared.fetch();
        tally.record(
            job.due - shared.t0,
            Timing {
                lag,
                latency: job.due.elapsed(),
            },
            outcome,
            header,
        );
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking holder cannot leave the counters half-updated in a way that matters more
        // than losing the whole report.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the sending (once): nothing due later is queued, and every thread is woken to see
    /// the end.
    fn close(&self) {
        let mut state = self.lock();
        if state.closed_at.is_some() {
            return;
        }
        state.closed_at = Some(Instant::now());
        drop(state);
        self.wake.notify_all();
        self.work.notify_all();
    }

    /// One GET, read to the end: its outcome, and the counted header of its answer (of any
    /// status: a 5xx from a replica says which replica failed).
    fn fetch(&self) -> (Outcome, Header) {
        // The server may close right after answering, instead of holding an idle connection
        // that this client would never use again.
        let mut request = self.agent.get(&self.url).set("Connection", "close");
        if let Some((name, value)) = &self.request_header {
            request = request.set(name, value);
        }
        let response = match request.call() {
            Ok(response) => response,
            Err(ureq::Error::Status(code, response)) => {
                let header = self.header_of(&response);
                return (Outcome::status(code), header);
            }
            Err(ureq::Error::Transport(err)) => {
                return (transport_failure(&err), Header::NotCounted)
            }
        };
        let code = response.status();
        let header = self.header_of(&response);
        let mut body = response.into_reader().take(MAX_BODY);
        if let Err(err) = io::copy(&mut body, &mut io::sink()) {
            return (io_failure(&err, "reading the body"), header);
        }
        (Outcome::status(code), header)
    }

    fn header_of(&self, response: &ureq::Response) -> Header {
        match self.header.as_deref() {
            None => Header::NotCounted,
            Some(name) => match response.header(name) {
                Some(value) => Header::Value(value.to_owned()),
                None => Header::Missing,
            },
        }
    }
}

/// A failure before any answer: which kind, and the innermost reason (ureq's own text repeats
/// the URL).
fn transport_failure(err: &ureq::Transport) -> Outcome {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io_err) = cause.downcast_ref::<io::Error>() {
            return io_failure(io_err, &err.kind().to_string());
        }
        source = cause.source();
    }
    let kind = match err.kind() {
        ureq::ErrorKind::ConnectionFailed => FailureKind::Connection,
        _ => FailureKind::Other,
    };
    let reason = match err.message() {
        Some(message) => format!("{}: {message}", err.kind()),
        None => err.kind().to_string(),
    };
    Outcome::Failed(kind, reason)
}

fn io_failure(err: &io::Error, context: &str) -> Outcome {
    use io::ErrorKind as K;
    let kind = match err.kind() {
        // ureq reports a passed deadline as TimedOut; a socket timeout can surface as
        // WouldBlock.
        K::TimedOut | K::WouldBlock => FailureKind::Timeout,
        K::ConnectionRefused
        | K::ConnectionReset
        | K::ConnectionAborted
        | K::NotConnected
        | K::BrokenPipe
        | K::UnexpectedEof
        | K::AddrNotAvailable => FailureKind::Connection,
        _ => FailureKind::Other,
    };
    Outcome::Failed(kind, format!("{context}: {}", innermost(err)))
}

/// The deepest message in an error chain (ureq wraps io errors in its own).
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut deepest = err;
    while let Some(next) = deepest.source() {
        deepest = next;
    }
    deepest.to_string()
}
