//! Maintenance mode: the lb answers every request with a 503, a `Retry-After` header and a short
//! page, and no replica sees a request; the replicas keep running untouched.
//!
//! The switch is two HAProxy process variables, `proc.maintenance` and `proc.retry_after`,
//! declared off in haproxy.cfg's `global` section (`set-var`) and read by the first rule of the
//! `http-in` frontend (`blueprints/lb/_haproxy-common.j2`). `provision maintenance on|off` sets
//! them through the runtime API (`set var`, which HAProxy 2.6 and 3.0 allow in a session's
//! `experimental-mode`): no reload, no dropped connection, effective for the next request.
//!
//! A variable lives as long as its HAProxy process, so the switch is also kept in the project's
//! state directory (`maintenance.json`) and set again in every new HAProxy provision starts: after
//! a reload in place (`deploy::reload`) and after every apply (a recreated lb). An lb restarted
//! behind provision's back (a crash, `docker restart`, consul-template restarting HAProxy in the
//! consul-template mode) starts with maintenance off until the next `provision maintenance on`
//! or `apply`; `status` says when the lb and the kept switch disagree.

use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::docker::Docker;
use crate::probe::lbadmin;
use crate::state;

/// `Retry-After` when `--retry-after` is not given, in seconds.
pub const DEFAULT_RETRY_AFTER: u32 = 60;

const FILE: &str = "maintenance.json";

/// The kept switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintenance {
    pub on: bool,
    /// Seconds, sent as `Retry-After`.
    pub retry_after: u32,
}

impl Maintenance {
    pub const OFF: Maintenance = Maintenance {
        on: false,
        retry_after: DEFAULT_RETRY_AFTER,
    };

    /// The runtime commands that put HAProxy into this state.
    pub fn runtime_line(&self) -> String {
        format!(
            "experimental-mode on; set var proc.retry_after int({}); set var proc.maintenance int({})",
            self.retry_after,
            u8::from(self.on)
        )
    }
}

/// The switch kept for `project` (off when none was kept).
pub fn kept(project: &str) -> anyhow::Result<Maintenance> {
    match state::project_dir(project) {
        Some(dir) => kept_in(&dir),
        None => Ok(Maintenance::OFF),
    }
}

fn kept_in(dir: &Path) -> anyhow::Result<Maintenance> {
    let file = dir.join(FILE);
    match std::fs::read_to_string(&file) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Maintenance::OFF),
        Err(err) => Err(err).with_context(|| format!("reading {}", file.display())),
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("reading {}: not a maintenance switch", file.display())),
    }
}

/// Keeps the switch for `project`.
pub fn keep(project: &str, maintenance: Maintenance) -> anyhow::Result<()> {
    keep_in(&state::require_project_dir(project)?, maintenance)
}

fn keep_in(dir: &Path, maintenance: Maintenance) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(&maintenance)?;
    text.push('\n');
    state::write_private(&dir.join(FILE), text.as_bytes())
}

/// Forgets the switch of `project` (its stack is gone: a new one starts serving).
pub fn forget(project: &str) -> anyhow::Result<()> {
    let Some(dir) = state::project_dir(project) else {
        return Ok(());
    };
    match std::fs::remove_file(dir.join(FILE)) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("removing {}", dir.join(FILE).display()))
        }
        _ => Ok(()),
    }
}

/// Puts the HAProxy in `lb_container` into `maintenance`. HAProxy answers nothing when every
/// command took; anything else it says is a refusal, and an error.
pub fn set(docker: &Docker, lb_container: &str, maintenance: Maintenance) -> anyhow::Result<()> {
    let answer = lbadmin::command(docker, lb_container, &maintenance.runtime_line())?;
    let refused: Vec<&str> = answer
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if !refused.is_empty() {
        return Err(crate::ToolError(format!(
            "HAProxy refused to switch maintenance {}: {} (an lb from before maintenance mode \
             existed needs `provision apply` first)",
            if maintenance.on { "on" } else { "off" },
            refused.join("; ")
        ))
        .into());
    }
    Ok(())
}

/// Whether the HAProxy in `lb_container` is in maintenance now (None when it cannot say, such
/// as an lb rendered before maintenance mode existed).
pub fn live(docker: &Docker, lb_container: &str) -> Option<bool> {
    let answer = lbadmin::query(docker, lb_container, "get var proc.maintenance").ok()?;
    // `proc.maintenance: type=sint value=<1>`
    let value = answer.split("value=<").nth(1)?.split('>').next()?;
    value.parse::<i64>().ok().map(|v| v > 0)
}

/// Sets the kept switch again in a new HAProxy process (after a reload or a new lb), when it is
/// on: off is what every HAProxy starts with.
pub fn reassert(docker: &Docker, project: &str, lb_container: &str) -> anyhow::Result<()> {
    let kept = kept(project)?;
    if kept.on {
        set(docker, lb_container, kept)
            .context("putting the new HAProxy back into maintenance mode")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_is_kept_and_said_to_haproxy() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(kept_in(dir.path()).unwrap(), Maintenance::OFF);
        let on = Maintenance {
            on: true,
            retry_after: 30,
        };
        keep_in(dir.path(), on).unwrap();
        assert_eq!(kept_in(dir.path()).unwrap(), on);
        assert_eq!(
            on.runtime_line(),
            "experimental-mode on; set var proc.retry_after int(30); set var proc.maintenance int(1)"
        );
        assert!(Maintenance::OFF
            .runtime_line()
            .ends_with("proc.maintenance int(0)"));
    }
}
