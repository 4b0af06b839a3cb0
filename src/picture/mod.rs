//! A picture of a run: one self-contained HTML page (`--report FILE.html`) with an inline SVG
//! plot of the load second by second, the servers UP, and the deploy's events, and the same
//! events and numbers as tables below it. No script and no external resource: the page opens
//! offline, from a CI artifact or a mail attachment, as it was written.

pub mod svg;

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::probe::load::LoadReport;
use crate::probe::up_watch::UpSeries;
use crate::timeline::PlacedEvent;

/// The page template: escaped as HTML (minijinja escapes by the `.html` name); the SVG alone
/// is inserted as is, being our own drawing.
const PAGE: &str = include_str!("report.html");

/// What one report shows.
#[derive(Debug)]
pub struct Picture<'a> {
    /// E.g. `provision verify --scale 10 --load 100`.
    pub title: String,
    /// The project.
    pub project: &'a str,
    /// Whether the run passed, and its closing lines (check results, a rollback's reason).
    pub passed: bool,
    pub verdict: Vec<String>,
    pub load: &'a LoadReport,
    pub up: &'a UpSeries,
    pub events: &'a [PlacedEvent],
}

impl Picture<'_> {
    /// The end of the time axis: the load's, or a later sample or event.
    pub fn end_secs(&self) -> f64 {
        let last_second = self
            .load
            .per_second
            .last()
            .map_or(0.0, |s| s.at_secs as f64 + 1.0);
        [
            self.load.duration_secs,
            last_second,
            self.up.samples.last().map_or(0.0, |s| s.at_secs),
            self.events.last().map_or(0.0, |e| e.at_secs),
        ]
        .into_iter()
        .fold(1.0, f64::max)
    }

    /// The whole page.
    pub fn to_html(&self) -> anyhow::Result<String> {
        let svg = svg::render(self)?;
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.add_template("report.html", PAGE)
            .context("loading the report page template")?;
        #[derive(Serialize)]
        struct Row<'r> {
            label: &'r str,
            value: String,
        }
        let load = self.load;
        let mut numbers = vec![
            Row {
                label: "requests sent",
                value: format!(
                    "{} at {:.0}/s over {:.1} s",
                    load.sent, load.achieved_rate_per_sec, load.duration_secs
                ),
            },
            Row {
                label: "failed",
                value: load.failed.to_string(),
            },
        ];
        if let Some(latency) = load.latency {
            numbers.push(Row {
                label: "latency",
                value: format!(
                    "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                    latency.p50_ms, latency.p99_ms, latency.max_ms
                ),
            });
        }
        if self.up.unread > 0 {
            numbers.push(Row {
                label: "HAProxy stats unread",
                value: format!(
                    "{} times ({})",
                    self.up.unread,
                    self.up.first_error.as_deref().unwrap_or("")
                ),
            });
        }
        let events: Vec<_> = self
            .events
            .iter()
            .map(|e| {
                minijinja::context! {
                    at => format!("{:.2}", e.at_secs),
                    kind => e.kind.label(),
                    what => &e.what,
                    colour => format!("#{:02x}{:02x}{:02x}", svg::event_colour(e.kind).0, svg::event_colour(e.kind).1, svg::event_colour(e.kind).2),
                }
            })
            .collect();
        let html = env
            .get_template("report.html")?
            .render(minijinja::context! {
                title => &self.title,
                project => self.project,
                passed => self.passed,
                verdict => &self.verdict,
                svg => minijinja::Value::from_safe_string(svg),
                numbers => numbers,
                events => events,
                generator => concat!("provision ", env!("CARGO_PKG_VERSION")),
            })
            .context("rendering the report page")?;
        Ok(html)
    }

    /// Writes the page to `path` whole or not at all (a temporary file beside it, renamed).
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let html = self.to_html()?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let mut file = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("writing the report {}", path.display()))?;
        std::io::Write::write_all(&mut file, html.as_bytes())
            .with_context(|| format!("writing the report {}", path.display()))?;
        file.persist(path)
            .with_context(|| format!("writing the report {}", path.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
