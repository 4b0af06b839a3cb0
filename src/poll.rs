//! The one wait loop: look, and look again every so often, until the answer is there or the
//! time is up. Each wait (a lock, Swarm's tasks, the stack's networks going, the load balancer
//! routing) says what it looks for and what a timeout means; this says how long and how often.

use std::time::{Duration, Instant};

/// Calls `look` until it returns `Some`, then returns that value; `None` once `timeout` has
/// passed since the first look (there is always at least one). An error from `look` ends the
/// wait at once. Sleeps `every` between looks.
pub fn poll_until<T>(
    timeout: Duration,
    every: Duration,
    mut look: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<Option<T>> {
    let started = Instant::now();
    loop {
        if let Some(value) = look()? {
            return Ok(Some(value));
        }
        if started.elapsed() >= timeout {
            return Ok(None);
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_answer_and_looks_no_more() {
        let mut looks = 0;
        let found = poll_until(Duration::from_secs(5), Duration::ZERO, || {
            looks += 1;
            Ok((looks == 3).then_some(looks))
        })
        .unwrap();
        assert_eq!((found, looks), (Some(3), 3));
    }

    #[test]
    fn gives_up_after_the_timeout_having_looked_at_least_once() {
        let mut looks = 0;
        let started = Instant::now();
        let found: Option<()> = poll_until(Duration::ZERO, Duration::from_secs(5), || {
            looks += 1;
            Ok(None)
        })
        .unwrap();
        assert_eq!((found, looks), (None, 1));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "no sleep after the last look"
        );

        let found: Option<()> =
            poll_until(Duration::from_millis(50), Duration::from_millis(10), || {
                Ok(None)
            })
            .unwrap();
        assert_eq!(found, None);
    }

    #[test]
    fn an_error_ends_the_wait() {
        let err = poll_until::<()>(Duration::from_secs(5), Duration::ZERO, || {
            anyhow::bail!("gone")
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "gone");
    }
}
