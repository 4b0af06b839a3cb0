//! The load's numbers second by second: requests sent, failed, latency percentiles and how many
//! replicas answered, per second of due time. They are what the HTML report plots and `--json`
//! carries, so a failure or a stall is placed in time beside the deploy's events.
//!
//! Each second keeps its latencies raw (microseconds, 4 bytes each) and sorts them once at the
//! end: exact percentiles, and at the largest allowed rate (10,000/s) a ten-minute run holds
//! 24 MB, where a histogram per second and worker would hold more.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

/// One second of the load, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Second {
    /// Whole seconds from the start of the load: requests due in `[at_secs, at_secs + 1)`.
    pub at_secs: u64,
    /// Requests due in that second that went out.
    pub sent: u64,
    /// Of those, the ones that failed (any kind).
    pub failed: u64,
    /// Latency of those requests; None when none finished.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Distinct values of the counted response header among their answers (the replicas that
    /// answered, with `X-Provision-Server`); 0 when no header is counted.
    pub answering: u64,
}

/// One worker's per-second counts, merged at the end.
#[derive(Debug, Default)]
pub(super) struct SeriesTally {
    seconds: BTreeMap<u64, Bucket>,
}

#[derive(Debug, Default)]
struct Bucket {
    sent: u64,
    failed: u64,
    latencies_us: Vec<u32>,
    answering: BTreeSet<String>,
}

impl SeriesTally {
    /// A finished request due `at` after the start.
    pub(super) fn record(
        &mut self,
        at: Duration,
        latency: Duration,
        failed: bool,
        header: Option<&str>,
    ) {
        let bucket = self.seconds.entry(at.as_secs()).or_default();
        bucket.sent += 1;
        bucket.failed += u64::from(failed);
        bucket
            .latencies_us
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        if let Some(value) = header {
            if !bucket.answering.contains(value) {
                bucket.answering.insert(value.to_owned());
            }
        }
    }

    pub(super) fn merge(&mut self, other: SeriesTally) {
        for (second, theirs) in other.seconds {
            let mine = self.seconds.entry(second).or_default();
            mine.sent += theirs.sent;
            mine.failed += theirs.failed;
            mine.latencies_us.extend(theirs.latencies_us);
            mine.answering.extend(theirs.answering);
        }
    }

    /// Every second from 0 to the last one that saw a request, gaps included (a second with
    /// nothing sent is a stall worth seeing as a zero, not a missing point).
    pub(super) fn into_seconds(self) -> Vec<Second> {
        let Some(&last) = self.seconds.keys().next_back() else {
            return Vec::new();
        };
        let mut buckets = self.seconds;
        (0..=last)
            .map(|at_secs| {
                let mut bucket = buckets.remove(&at_secs).unwrap_or_default();
                bucket.latencies_us.sort_unstable();
                Second {
                    at_secs,
                    sent: bucket.sent,
                    failed: bucket.failed,
                    p50_ms: quantile_ms(&bucket.latencies_us, 0.50),
                    p99_ms: quantile_ms(&bucket.latencies_us, 0.99),
                    answering: bucket.answering.len() as u64,
                }
            })
            .collect()
    }
}

/// The `q` quantile of sorted microseconds, in ms (nearest rank: the smallest value with at
/// least `q` of the values at or below it).
fn quantile_ms(sorted_us: &[u32], q: f64) -> Option<f64> {
    if sorted_us.is_empty() {
        return None;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    Some(f64::from(sorted_us[rank - 1]) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn requests_land_in_the_second_they_were_due_and_gaps_are_zeros() {
        let mut a = SeriesTally::default();
        a.record(ms(100), ms(4), false, Some("web1"));
        a.record(ms(900), ms(8), true, Some("web2"));
        let mut b = SeriesTally::default();
        b.record(ms(950), ms(2), false, Some("web1"));
        b.record(ms(2_500), ms(30), false, None);
        a.merge(b);
        let seconds = a.into_seconds();
        assert_eq!(seconds.len(), 3, "{seconds:?}");
        assert_eq!(
            (seconds[0].sent, seconds[0].failed, seconds[0].answering),
            (3, 1, 2)
        );
        assert_eq!(seconds[0].p50_ms, Some(4.0));
        assert_eq!(seconds[0].p99_ms, Some(8.0));
        assert_eq!(
            seconds[1],
            Second {
                at_secs: 1,
                sent: 0,
                failed: 0,
                p50_ms: None,
                p99_ms: None,
                answering: 0
            }
        );
        assert_eq!((seconds[2].sent, seconds[2].p99_ms), (1, Some(30.0)));
    }

    #[test]
    fn nearest_rank_quantiles() {
        let values: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(quantile_ms(&values, 0.50), Some(50.0));
        assert_eq!(quantile_ms(&values, 0.99), Some(99.0));
        assert_eq!(quantile_ms(&[7000], 0.99), Some(7.0));
        assert_eq!(quantile_ms(&[], 0.5), None);
    }

    #[test]
    fn no_request_no_seconds() {
        assert!(SeriesTally::default().into_seconds().is_empty());
    }
}
