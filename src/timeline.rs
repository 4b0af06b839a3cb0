//! What a deploy did, and when: the events (a batch started, a replica routed, drained,
//! reloaded, a rollback) that the HTML report marks on its plots and `--json` lists.
//!
//! Why a process-wide recorder instead of a value passed down: the events happen deep in the
//! deploy code (`deploy/compose/scale.rs`, `roll.rs`, `reload.rs`), several calls below the
//! command that wants them, and threading a recorder through every signature would make each of
//! those layers know about reports. One command runs per process; the recorder is off (and
//! [`mark`] costs a lock and nothing else) unless that command started a [`Recording`].

use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

/// The kinds of event a report marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// New replicas were started (a scale step or a rolling batch).
    BatchStarted,
    /// The load balancer routes to a new replica.
    Routed,
    /// Replicas were taken out of the load balancer before they stopped.
    Drained,
    /// A service's configuration was reloaded in place.
    Reloaded,
    /// A canary was given its share of the traffic.
    CanaryStarted,
    /// A canary passed its window and the rollout went on.
    Promoted,
    /// A new version was taken away again.
    RolledBack,
}

impl EventKind {
    /// A short label, drawn beside the mark.
    pub fn label(self) -> &'static str {
        match self {
            EventKind::BatchStarted => "batch started",
            EventKind::Routed => "routed",
            EventKind::Drained => "drained",
            EventKind::Reloaded => "reloaded",
            EventKind::CanaryStarted => "canary started",
            EventKind::Promoted => "promoted",
            EventKind::RolledBack => "rolled back",
        }
    }
}

/// One event, at an instant of this process.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub at: Instant,
    pub kind: EventKind,
    /// What it was about, e.g. `web 1 -> 4` or a server name.
    pub what: String,
}

/// An event placed on a report's time axis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlacedEvent {
    /// Seconds from the origin of the report (the start of its load).
    pub at_secs: f64,
    pub kind: EventKind,
    pub what: String,
}

impl Event {
    /// This event, `at_secs` after `origin` (0 for an event before it).
    pub fn placed(&self, origin: Instant) -> PlacedEvent {
        PlacedEvent {
            at_secs: self.at.saturating_duration_since(origin).as_secs_f64(),
            kind: self.kind,
            what: self.what.clone(),
        }
    }
}

/// `None` while nothing records.
static EVENTS: Mutex<Option<Vec<Event>>> = Mutex::new(None);

fn events() -> std::sync::MutexGuard<'static, Option<Vec<Event>>> {
    // A panic elsewhere while holding the lock leaves a list that is still a list.
    EVENTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Notes an event now, when a recording runs.
pub fn mark(kind: EventKind, what: impl Into<String>) {
    mark_at(Instant::now(), kind, what);
}

/// Notes an event seen at `at` (e.g. when a poll first saw a replica UP).
pub fn mark_at(at: Instant, kind: EventKind, what: impl Into<String>) {
    if let Some(list) = events().as_mut() {
        list.push(Event {
            at,
            kind,
            what: what.into(),
        });
    }
}

/// Records every [`mark`] from [`Recording::start`] to [`Recording::finish`].
#[derive(Debug)]
#[must_use = "a recording that is not finished records for nobody"]
pub struct Recording(());

impl Recording {
    pub fn start() -> Self {
        *events() = Some(Vec::new());
        Recording(())
    }

    /// The events recorded, in time order; recording stops.
    pub fn finish(self) -> Vec<Event> {
        let mut list = events().take().unwrap_or_default();
        list.sort_by_key(|e| e.at);
        list
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        events().take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn marks_are_kept_only_while_recording_and_come_back_in_time_order() {
        // One test touches the global list, so no other test can race it.
        mark(EventKind::Routed, "before");
        let recording = Recording::start();
        let t = Instant::now();
        mark_at(t + Duration::from_secs(2), EventKind::Drained, "web3");
        mark_at(t, EventKind::BatchStarted, "web 3 -> 4");
        let recorded = recording.finish();
        mark(EventKind::Routed, "after");
        assert_eq!(
            recorded.iter().map(|e| e.what.as_str()).collect::<Vec<_>>(),
            ["web 3 -> 4", "web3"]
        );
        let placed = recorded[1].placed(t);
        assert_eq!((placed.at_secs, placed.kind), (2.0, EventKind::Drained));
        assert!(events().is_none(), "recording did not stop");
    }
}
