//! A new configuration file for a running container, reloaded in place instead of recreating the
//! container (`spec::LiveConfig`: HAProxy's haproxy.cfg in the DNS modes). The file goes in on
//! the standard input of the image's own reload command (`docker exec -i`), which checks it,
//! installs it beside the live one and reloads (lb/haproxy-reload.sh: a new HAProxy worker takes
//! over the listening sockets). Not `docker cp`: the container's root file system is read-only
//! and the live file is on a tmpfs, which `docker cp` cannot write to.
//!
//! The container keeps the labels it was created with, so Compose would still recreate it on its
//! next `up`: `apply` recognizes a container that already runs the file by the file itself (its
//! hash inside the container) and leaves it out of Compose's `up`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use crate::docker::{Container, Docker};
use crate::render::sha256_hex;
use crate::spec::{LiveConfig, Plan};
use crate::timeline::{self, EventKind};
use crate::ToolError;

/// A live configuration (`Plan::live_config`) and where its rendered file is.
pub struct LiveFile {
    pub config: LiveConfig,
    pub rendered: PathBuf,
}

impl LiveFile {
    /// The plan's live configuration, if it has one, rendered in `out_dir`.
    pub fn of(plan: &Plan, out_dir: &Path) -> Option<LiveFile> {
        plan.live_config().map(|config| LiveFile {
            config,
            rendered: out_dir.join(config.file),
        })
    }

    /// Whether `container` reads this file already (its hash inside the container is the file's).
    pub fn is_current_in(&self, docker: &Docker, container: &Container) -> anyhow::Result<bool> {
        let file = file_hash(&self.rendered)?;
        Ok(live_hash(docker, container, &self.config).as_deref() == Some(file.as_str()))
    }

    /// Delivers the file to `container` and reloads it there (`reload`).
    pub fn reload(&self, docker: &Docker, container: &Container) -> anyhow::Result<Reloaded> {
        reload(docker, container, &self.config, &self.rendered)
    }
}

/// The rendered file's hash, as `live_hash` reports the container's.
pub fn file_hash(rendered: &Path) -> anyhow::Result<String> {
    let bytes =
        std::fs::read(rendered).with_context(|| format!("reading {}", rendered.display()))?;
    Ok(sha256_hex(&bytes))
}

/// The sha256 of the file the container reads now (None when it cannot be read: say the
/// container is not running, or its image has no such file).
pub fn live_hash(docker: &Docker, container: &Container, live: &LiveConfig) -> Option<String> {
    let out = docker
        .call(
            format!("reading {}'s {}", container.describe(), live.path),
            ["exec", container.id.as_str(), "sha256sum", live.path],
        )
        .timeout(Duration::from_secs(10))
        .output_unchecked()
        .ok()?;
    if !out.success {
        return None;
    }
    out.stdout
        .split_whitespace()
        .next()
        .filter(|hash| hash.len() == 64)
        .map(str::to_owned)
}

/// What a reload in place did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    pub service: String,
    /// The reload command's last line (`worker 7 replaced by worker 31`).
    pub said: String,
}

/// Runs the image's reload command in the container with `rendered` on its standard input, as
/// the container's own user. Its refusal (an invalid file: nothing changed) or failure (no new process: the old
/// file is put back) is an error carrying what it printed.
pub fn reload(
    docker: &Docker,
    container: &Container,
    live: &LiveConfig,
    rendered: &Path,
) -> anyhow::Result<Reloaded> {
    let contents =
        std::fs::read(rendered).with_context(|| format!("reading {}", rendered.display()))?;
    let out = docker
        .call(
            format!(
                "reloading {} in place with the new {} ({})",
                container.describe(),
                live.file,
                live.reload
            ),
            ["exec", "-i", container.id.as_str(), live.reload, "-"],
        )
        .stdin(contents)
        .changes_state()
        // The command gives up after 10 s of waiting for the new process.
        .timeout(Duration::from_secs(30))
        .output_unchecked()?;
    if !out.success {
        return Err(ToolError(format!(
            "{} in {} failed; the container keeps serving with the configuration it had:\n{}{}",
            live.reload,
            container.describe(),
            out.stdout,
            out.stderr
        ))
        .into());
    }
    // A new HAProxy starts with maintenance off (see `maintenance`).
    if container.service == crate::spec::Service::Lb.name() {
        super::maintenance::reassert(docker, &container.project, &container.id)?;
    }
    timeline::mark(EventKind::Reloaded, container.service.clone());
    Ok(Reloaded {
        service: container.service.clone(),
        said: out
            .stdout
            .lines()
            .last()
            .unwrap_or_default()
            .trim_start_matches(&format!("{}: ", live.reload))
            .to_owned(),
    })
}
