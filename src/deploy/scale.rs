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

/// Replicas started or stopped at once when no `--batch` is given: two per core keeps a 2-core
/// machine serving while new gunicorns start (each start costs about half a core-second).
pub fn default_batch() -> u32 {
    batch_for(std::thread::available_parallelism().ok())
}

/// [`default_batch`] on a machine with `cores` (unknown: taken as 2).
fn batch_for(cores: Option<std::num::NonZeroUsize>) -> u32 {
    let cores = cores.map_or(2, |n| u32::try_from(n.get()).unwrap_or(u32::MAX / 2));
    2 * cores
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_batch_is_two_per_core() {
        let cores = |n: usize| std::num::NonZeroUsize::new(n);
        assert_eq!(batch_for(cores(1)), 2);
        assert_eq!(batch_for(cores(2)), 4);
        assert_eq!(batch_for(cores(3)), 6);
        assert_eq!(batch_for(cores(64)), 128);
        assert_eq!(batch_for(None), 4, "unknown cores count as 2");
    }
}
