//! A canary, whatever the target: `--canary PERCENT[:SECONDS]` parsed, the HAProxy weights that
//! give one new server that share of the traffic, and the judgement of the new servers against
//! the old ones from HAProxy's counters over the window (`deploy.max_error_rate`,
//! `deploy.max_latency_ratio`). The procedure on one host is `compose/canary.rs`.
//!
//! Why HAProxy's counters and not the load generator: they count every request the stack
//! served, from any client, per server, so the judgement needs no `--load` and sees real
//! traffic. `rtime` is HAProxy's average response time over a server's last 1024 answers (a
//! p99 per server is not kept by HAProxy), hence a latency *ratio* of averages.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::probe::stats::Counters;
use crate::spec::plan::PlanDeploy;

/// The window when `--canary` names none.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// The fewest requests the canary must have answered before it can be judged: below that, one
/// unlucky error is a rate of several percent.
pub const MIN_REQUESTS: u64 = 20;
/// Response times closer than this are equal: `rtime` is in whole milliseconds, and a few ms
/// more on a fast app is noise, not a slower version.
pub const LATENCY_FLOOR_MS: u64 = 5;
/// HAProxy's weights run from 0 to 256.
const MAX_WEIGHT: u32 = 256;

/// `--canary PERCENT[:SECONDS]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanaryArg {
    /// The new server's share of the requests, 1 to 99.
    pub percent: u8,
    /// How long it is watched before it is promoted.
    pub window: Duration,
}

impl FromStr for CanaryArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (percent, window) = match text.split_once(':') {
            Some((p, w)) => (p, Some(w)),
            None => (text, None),
        };
        let percent: u8 = percent
            .trim_end_matches('%')
            .parse()
            .ok()
            .filter(|p| (1..=99).contains(p))
            .ok_or_else(|| {
                format!("{percent:?} is not a share of the traffic from 1 to 99 (percent)")
            })?;
        let window = match window {
            None => DEFAULT_WINDOW,
            Some(w) => w
                .parse::<u64>()
                .ok()
                .filter(|s| (1..=3600).contains(s))
                .map(Duration::from_secs)
                .ok_or_else(|| format!("{w:?} is not a window from 1 to 3600 seconds"))?,
        };
        Ok(CanaryArg { percent, window })
    }
}

impl fmt::Display for CanaryArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}% for {} s", self.percent, self.window.as_secs())
    }
}

/// The weights that give one canary `percent` of the requests beside `old` servers of equal
/// weight: `(old_weight, canary_weight)`, each from 1 to 256.
pub fn weights(percent: u8, old: u32) -> (u32, u32) {
    let p = f64::from(percent) / 100.0;
    let old = f64::from(old.max(1));
    // canary / (canary + old × w) = p  ⇒  canary = w × old × p / (1 − p).
    let per_old = old * p / (1.0 - p);
    let base = 100.0_f64.min(f64::from(MAX_WEIGHT) / per_old);
    let old_weight = base.round().max(1.0);
    let canary = (old_weight * per_old)
        .round()
        .clamp(1.0, f64::from(MAX_WEIGHT));
    (old_weight as u32, canary as u32)
}

/// Requests and errors of a group of servers over the window, and their response time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Seen {
    pub requests: u64,
    pub errors: u64,
    /// The servers' average response times, weighted by their requests (ms).
    pub response_ms: f64,
}

impl Seen {
    /// What the servers did between `before` and `after` (their counters at the window's ends).
    pub fn between<'a>(pairs: impl IntoIterator<Item = (&'a Counters, &'a Counters)>) -> Self {
        let mut seen = Seen::default();
        let mut weighted = 0.0;
        for (before, after) in pairs {
            let requests = after.requests().saturating_sub(before.requests());
            seen.requests += requests;
            seen.errors += after.errors().saturating_sub(before.errors());
            weighted += requests as f64 * after.response_ms as f64;
        }
        if seen.requests > 0 {
            seen.response_ms = weighted / seen.requests as f64;
        }
        seen
    }

    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.1}% errors ({} of {} requests), {:.0} ms average response time",
            100.0 * self.error_rate(),
            self.errors,
            self.requests,
            self.response_ms
        )
    }
}

/// What the window says of the new version.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Too few requests reached the canary to judge it.
    TooFew,
    /// No worse than the old version by the thresholds.
    Healthy,
    /// Worse: why, with the numbers.
    Worse(String),
}

/// Judges the canary (`new`) against the old servers (`old`) by the spec's thresholds.
pub fn judge(old: &Seen, new: &Seen, limits: &PlanDeploy) -> Verdict {
    if new.requests < MIN_REQUESTS {
        return Verdict::TooFew;
    }
    let mut reasons = Vec::new();
    let excess = new.error_rate() - old.error_rate();
    if excess > limits.max_error_rate {
        reasons.push(format!(
            "error rate {:.1}% on the new version ({} of {} requests) against {:.1}% on the old \
             ({} of {}): {:.1} points more, deploy.max_error_rate allows {:.1}",
            100.0 * new.error_rate(),
            new.errors,
            new.requests,
            100.0 * old.error_rate(),
            old.errors,
            old.requests,
            100.0 * excess,
            100.0 * limits.max_error_rate
        ));
    }
    // The old servers' time, at least the floor: a ratio against 0 or 1 ms is meaningless.
    let reference = old.response_ms.max(LATENCY_FLOOR_MS as f64);
    if new.response_ms > limits.max_latency_ratio * reference
        && new.response_ms - old.response_ms > LATENCY_FLOOR_MS as f64
    {
        reasons.push(format!(
            "average response time {:.0} ms on the new version against {:.0} ms on the old: \
             {:.1} times, deploy.max_latency_ratio allows {}",
            new.response_ms,
            old.response_ms,
            new.response_ms / reference,
            limits.max_latency_ratio
        ));
    }
    if reasons.is_empty() {
        Verdict::Healthy
    } else {
        Verdict::Worse(reasons.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: PlanDeploy = PlanDeploy {
        max_error_rate: 0.05,
        max_latency_ratio: 3.0,
    };

    #[test]
    fn canary_argument() {
        assert_eq!(
            "20:15".parse::<CanaryArg>(),
            Ok(CanaryArg {
                percent: 20,
                window: Duration::from_secs(15)
            })
        );
        assert_eq!("5%".parse::<CanaryArg>().unwrap().window, DEFAULT_WINDOW);
        for bad in ["0", "100", "x", "20:", "20:0", "20:abc", "-3:10"] {
            let err = bad.parse::<CanaryArg>().unwrap_err();
            assert!(err.contains("from 1 to"), "{bad}: {err}");
        }
    }

    #[test]
    fn weights_give_the_share() {
        for (percent, old) in [
            (20u8, 3u32),
            (1, 1),
            (50, 2),
            (99, 1),
            (10, 9),
            (80, 10),
            (5, 10),
        ] {
            let (w_old, w_new) = weights(percent, old);
            assert!((1..=256).contains(&w_old) && (1..=256).contains(&w_new));
            let share = f64::from(w_new) / f64::from(w_new + old * w_old);
            assert!(
                (share - f64::from(percent) / 100.0).abs() < 0.01,
                "{percent}% of {old}: weights {w_old}/{w_new} give {share}"
            );
        }
        assert_eq!(weights(20, 3), (100, 75));
    }

    fn seen(requests: u64, errors: u64, response_ms: f64) -> Seen {
        Seen {
            requests,
            errors,
            response_ms,
        }
    }

    #[test]
    fn errors_and_slowness_are_judged_against_the_old_version() {
        let old = seen(800, 0, 20.0);
        assert_eq!(judge(&old, &seen(200, 2, 22.0), &LIMITS), Verdict::Healthy);
        let Verdict::Worse(why) = judge(&old, &seen(200, 40, 21.0), &LIMITS) else {
            panic!("20% errors passed");
        };
        assert!(
            why.contains("20.0% on the new") && why.contains("0.0% on the old"),
            "{why}"
        );
        let Verdict::Worse(why) = judge(&old, &seen(200, 0, 100.0), &LIMITS) else {
            panic!("5 times slower passed");
        };
        assert!(why.contains("100 ms") && why.contains("5.0 times"), "{why}");
        assert_eq!(judge(&old, &seen(19, 19, 900.0), &LIMITS), Verdict::TooFew);
        // Errors the old version has too are not the new version's fault.
        assert_eq!(
            judge(&seen(800, 160, 20.0), &seen(200, 40, 20.0), &LIMITS),
            Verdict::Healthy
        );
        // A fast app: 1 ms against 4 ms is not "4 times slower".
        assert_eq!(
            judge(&seen(800, 0, 1.0), &seen(200, 0, 4.0), &LIMITS),
            Verdict::Healthy
        );
    }

    #[test]
    fn seen_between_two_readings() {
        let c = |responses, status_5xx, response_ms| Counters {
            responses,
            status_5xx,
            failed_connections: 0,
            failed_responses: 0,
            response_ms,
            in_flight: 0,
        };
        let (a0, a1, b0, b1) = (c(100, 0, 10), c(200, 5, 10), c(0, 0, 0), c(300, 0, 30));
        let s = Seen::between([(&a0, &a1), (&b0, &b1)]);
        assert_eq!((s.requests, s.errors), (400, 5));
        assert!((s.response_ms - 25.0).abs() < 1e-9);
    }
}
