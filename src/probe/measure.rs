//! A measured run: the load through the load balancer, HAProxy's servers UP sampled beside it,
//! and the deploy's events recorded, all on one time axis (the load's start). What `verify
//! --load` and `apply --load` keep for `--json` and draw with `--report`.

use std::time::Instant;

use serde::Serialize;

use super::load::{self, Load, LoadOptions, LoadReport};
use super::up_watch::{UpSeries, UpWatch};
use crate::timeline::{PlacedEvent, Recording};

/// A measurement under way.
#[derive(Debug)]
pub struct Measuring {
    load: Load,
    watch: Option<UpWatch>,
    recording: Recording,
}

/// The events and the servers UP of a run, in seconds from the start of its load.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timeline {
    pub events: Vec<PlacedEvent>,
    pub servers_up: UpSeries,
}

/// Starts the load, the recording of events, and (with a stats page over HTTP) the sampling of
/// the servers UP in `backend`.
pub fn start(
    options: LoadOptions,
    stats_csv: Option<&str>,
    backend: &str,
    authorization: Option<secrecy::SecretString>,
) -> anyhow::Result<Measuring> {
    let recording = Recording::start();
    let load = load::start(options)?;
    let watch = match stats_csv {
        Some(url) => Some(UpWatch::start(
            url,
            backend,
            load.started_at(),
            authorization,
        )?),
        None => None,
    };
    Ok(Measuring {
        load,
        watch,
        recording,
    })
}

impl Measuring {
    /// When the load started: the origin of every time in the result.
    pub fn started_at(&self) -> Instant {
        self.load.started_at()
    }

    /// Stops everything; the load's report and the timeline.
    pub fn stop(self) -> (LoadReport, Timeline) {
        let origin = self.load.started_at();
        let servers_up = self.watch.map(UpWatch::stop).unwrap_or_default();
        let report = self.load.stop();
        let events = self
            .recording
            .finish()
            .iter()
            .map(|e| e.placed(origin))
            .collect();
        (report, Timeline { events, servers_up })
    }
}
