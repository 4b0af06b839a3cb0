//! What a change of web's replica count did, on either target, and how many replicas change at
//! once. Compose scales in `compose/scale.rs`, a Swarm in `swarm/scale.rs`.
//!
//! Starting many replicas at once starves the ones that serve (on 2 cores, 49 gunicorns and
//! their registrations at once made requests time out), so replicas come and go `batch` at a
//! time, and a replica counts only once the load balancer routes to it.

use serde::Serialize;

/// What verify did to the stack before checking it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScaleAction {
    pub from: u32,
    pub to: u32,
    /// HAProxy servers put into maintenance before their containers stopped.
    pub drained: Vec<String>,
    /// Steps the change was made in, each routed (or drained) before the next.
    pub batches: u32,
    pub seconds: f64,
    /// When each replica address was first seen UP in HAProxy while scaling (not reported:
    /// verify measures the time from there to the replica's first answer under `--load`).
    #[serde(skip)]
    pub first_up: std::collections::BTreeMap<String, std::time::Instant>,
    /// What Compose said when the scaled stack did not become healthy in time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ScaleAction {
    /// A scale from `from` to `to` replicas, before any step of it.
    pub fn new(from: u32, to: u32) -> Self {
        ScaleAction {
            from,
            to,
            drained: Vec::new(),
            batches: 0,
            seconds: 0.0,
            first_up: Default::default(),
            error: None,
        }
    }
}

/// Replicas started or stopped at once when no `--batch` is given, scaling `from` → `to`: two
/// per core at least, and otherwise half the change, so that any scale takes at most two
/// batches. Each batch waits until HAProxy routes its replicas; with small batches a big scale
/// paid that wait many times (1 → 50 on 2 cores: 60.2 s at 4 per batch, 30.6 s at 25, with no
/// failed request either way, bench/runs/2026-12-06-lb-cost.md). Past a few replicas the time
/// goes into starting containers, which the engine does one after another anyway.
pub fn default_batch(from: u32, to: u32) -> u32 {
    batch_for(std::thread::available_parallelism().ok(), from.abs_diff(to))
}

/// [`default_batch`] on a machine with `cores` (unknown: taken as 2) for a change of `change`.
fn batch_for(cores: Option<std::num::NonZeroUsize>, change: u32) -> u32 {
    let cores = cores.map_or(2, |n| u32::try_from(n.get()).unwrap_or(u32::MAX / 2));
    (2 * cores).max(change.div_ceil(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_batch_is_two_per_core_or_half_the_change() {
        let cores = |n: usize| std::num::NonZeroUsize::new(n);
        assert_eq!(batch_for(cores(1), 1), 2);
        assert_eq!(batch_for(cores(2), 3), 4);
        assert_eq!(batch_for(cores(3), 4), 6);
        assert_eq!(batch_for(cores(64), 10), 128);
        assert_eq!(batch_for(None, 1), 4, "unknown cores count as 2");
        // Large changes: two batches.
        assert_eq!(batch_for(cores(2), 49), 25);
        assert_eq!(batch_for(cores(2), 48), 24);
        assert_eq!(batch_for(cores(2), 255), 128);
    }
}
