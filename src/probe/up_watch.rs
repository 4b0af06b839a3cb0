//! HAProxy's servers UP over time, sampled from its stats CSV on another thread while a load
//! runs: the "replicas UP" line of the HTML report, beside which the load's failures and the
//! deploy's events are read.
//!
//! A sampler, not an event source: the deploy code already waits on HAProxy where it must
//! (`probe/converge.rs`); this only draws the picture, so a missed sample costs a point, and a
//! stats page that cannot be read is counted and said, never fatal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::stats;

/// How often the stats page is read: as often as the convergence wait polls it.
pub const PERIOD: Duration = Duration::from_millis(250);

/// One reading of the backend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpSample {
    /// Seconds from the origin (the start of the load).
    pub at_secs: f64,
    /// Servers UP.
    pub up: u32,
    /// Servers with an address (an unused `server-template` slot is not counted).
    pub servers: u32,
}

/// What the watch saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UpSeries {
    pub samples: Vec<UpSample>,
    /// Readings that failed; the first reason.
    pub unread: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

/// Samples `backend` at `stats_csv` every [`PERIOD`] until [`UpWatch::stop`].
#[derive(Debug)]
pub struct UpWatch {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<UpSeries>,
}

impl UpWatch {
    /// Starts sampling; times are seconds after `origin`.
    /// `authorization` is the stats page's login, if it has one.
    pub fn start(
        stats_csv: &str,
        backend: &str,
        origin: Instant,
        authorization: Option<secrecy::SecretString>,
    ) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (url, backend, flag) = (stats_csv.to_owned(), backend.to_owned(), stop.clone());
        let thread = thread::Builder::new()
            .name("up-watch".into())
            .spawn(move || {
                let mut series = UpSeries::default();
                loop {
                    let at_secs = origin.elapsed().as_secs_f64();
                    match stats::fetch_authorized(&url, &backend, authorization.as_ref()) {
                        Ok(servers) => series.samples.push(count(&servers, at_secs)),
                        Err(err) => {
                            series.unread += 1;
                            series.first_error.get_or_insert(format!("{err:#}"));
                        }
                    }
                    // Sleep in short steps so that stop answers within 50 ms.
                    let next = Instant::now() + PERIOD;
                    while Instant::now() < next {
                        if flag.load(Ordering::Relaxed) {
                            return series;
                        }
                        thread::sleep(Duration::from_millis(50));
                    }
                }
            })?;
        Ok(UpWatch { stop, thread })
    }

    /// Stops sampling and returns what was seen.
    pub fn stop(self) -> UpSeries {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

fn count(servers: &[stats::Server], at_secs: f64) -> UpSample {
    let used: Vec<&stats::Server> = servers.iter().filter(|s| !s.is_unused_slot()).collect();
    UpSample {
        at_secs,
        up: used.iter().filter(|s| s.is_up()).count() as u32,
        servers: used.len() as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unused_slots_are_not_servers_and_only_up_ones_are_up() {
        let server = |status: &str, addr: &str| stats::Server {
            backend: "web".into(),
            name: "web1".into(),
            status: status.into(),
            addr: addr.into(),
            check_status: String::new(),
            counters: stats::Counters::default(),
        };
        let servers = [
            server("UP", "10.0.0.2:5000"),
            server("DOWN", "10.0.0.3:5000"),
            server("MAINT (resolution)", ""),
            server("UP 1/3", "10.0.0.4:5000"),
        ];
        assert_eq!(
            count(&servers, 1.5),
            UpSample {
                at_secs: 1.5,
                up: 2,
                servers: 3
            }
        );
    }

    #[test]
    fn an_unreadable_page_is_counted_not_fatal() {
        // Port 9 (discard) on loopback: nothing listens, the read fails at once.
        let watch =
            UpWatch::start("http://127.0.0.1:9/stats;csv", "web", Instant::now(), None).unwrap();
        thread::sleep(Duration::from_millis(300));
        let series = watch.stop();
        assert!(series.samples.is_empty());
        assert!(series.unread >= 1, "{series:?}");
        assert!(series.first_error.is_some());
    }
}
