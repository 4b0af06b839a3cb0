//! The preflight: is docker here, does its daemon answer (fast), which API version, is the Compose
//! v2 plugin installed and new enough, and does every image the stack needs exist or can it be
//! built or pulled. Each finding says what is wrong and what to do; commands stop on the first
//! failure before they change anything.

mod images;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use images::{check_images, hub_reach, image_needs, read_config, HubReach, ImageNeed};

use super::Docker;
use crate::ToolError;

/// `docker version` must answer within this, so a stopped or hung daemon fails fast.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(5);
/// `--wait-timeout` appeared in Compose 2.17.0.
const MIN_COMPOSE: (u32, u32, u32) = (2, 17, 0);
/// The engine API provision was tested with (Docker 20.10).
const TESTED_API: (u32, u32) = (1, 41);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One preflight check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: String,
    pub status: Status,
    pub detail: String,
    /// What to do about a warning or failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(check: &str, detail: impl Into<String>) -> Self {
        Finding {
            check: check.into(),
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }
    pub fn warn(check: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding {
            check: check.into(),
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    pub fn fail(check: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding {
            check: check.into(),
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Versions found, as far as the checks got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Engine {
    pub client_version: Option<String>,
    pub context: Option<String>,
    pub server_version: Option<String>,
    pub api_version: Option<String>,
    pub compose_version: Option<String>,
}

/// Everything the preflight found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Preflight {
    pub engine: Engine,
    pub findings: Vec<Finding>,
}

impl Preflight {
    pub fn failed(&self) -> bool {
        self.findings.iter().any(|f| f.status == Status::Fail)
    }

    /// The first failure as an error (exit code 3) with what to do; Ok when nothing failed.
    pub fn into_result(self) -> anyhow::Result<Engine> {
        match self.findings.iter().find(|f| f.status == Status::Fail) {
            None => Ok(self.engine),
            Some(f) => {
                let mut message = format!("preflight: {}", f.detail);
                if let Some(fix) = &f.fix {
                    message.push_str("\n  what to do: ");
                    message.push_str(fix);
                }
                Err(ToolError(message).into())
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VersionJson {
    client: Option<VersionSide>,
    server: Option<VersionSide>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VersionSide {
    #[serde(default)]
    version: String,
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    context: Option<String>,
}

/// The engine checks, as an error (exit code 3) on the first failure; run by every command that
/// talks to docker, before it changes anything.
pub fn require_engine(docker: &Docker) -> anyhow::Result<Engine> {
    check_engine(docker).into_result()
}

/// docker, its daemon, the API version and Compose. Stops at the first failure, since each
/// check needs the one before it.
pub fn check_engine(docker: &Docker) -> Preflight {
    let mut pre = Preflight::default();
    let out = docker
        .call(
            "asking the Docker daemon for its version",
            ["version", "--format", "{{json .}}"],
        )
        .timeout(DAEMON_TIMEOUT)
        .output_unchecked();
    let out = match out {
        Ok(out) => out,
        Err(err) => {
            let text = format!("{err:#}");
            let finding = if text.contains("not installed or not on PATH") {
                Finding::fail(
                    "docker",
                    "docker is not installed or not on PATH",
                    "install Docker Engine and its CLI (Debian: `apt-get install docker.io`), \
                     then the Compose v2 plugin",
                )
            } else if text.contains("timed out") {
                Finding::fail(
                    "daemon",
                    format!(
                        "the Docker daemon did not answer within {} s",
                        DAEMON_TIMEOUT.as_secs()
                    ),
                    "check that dockerd is running and responsive (`systemctl status docker`), \
                     or point DOCKER_HOST / `docker context use` at an engine that is",
                )
            } else {
                Finding::fail("docker", text, "check the docker installation")
            };
            pre.findings.push(finding);
            return pre;
        }
    };
    let parsed: Option<VersionJson> = serde_json::from_str(out.stdout.trim()).ok();
    let (client, server) = match parsed {
        Some(v) => (v.client, v.server),
        None => (None, None),
    };
    if let Some(client) = &client {
        pre.engine.client_version = Some(client.version.clone());
        pre.engine.context = client.context.clone();
        pre.findings.push(Finding::ok(
            "docker",
            format!("docker CLI {}", client.version),
        ));
    }
    let where_ = match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.is_empty() => format!("DOCKER_HOST={host}"),
        _ => format!(
            "docker context {}",
            pre.engine.context.as_deref().unwrap_or("default")
        ),
    };
    let Some(server) = server.filter(|_| out.success) else {
        let said = first_line(&out.stderr).unwrap_or("no answer");
        pre.findings.push(Finding::fail(
            "daemon",
            format!("cannot reach the Docker daemon ({where_}): {said}"),
            "start the daemon (`systemctl start docker`, or `dockerd &` without systemd), or \
             point DOCKER_HOST / `docker context use` at a running engine; if it runs, check \
             that this user may open its socket (the `docker` group)",
        ));
        return pre;
    };
    pre.engine.server_version = Some(server.version.clone());
    pre.engine.api_version = Some(server.api_version.clone());
    pre.findings.push(Finding::ok(
        "daemon",
        format!("engine {} reachable ({where_})", server.version),
    ));
    pre.findings.push(api_finding(&server.api_version));

    let compose = docker
        .call(
            "asking for the Compose plugin's version",
            ["compose", "version", "--short"],
        )
        .timeout(Duration::from_secs(20))
        .output_unchecked();
    let finding = match compose {
        Ok(out) if out.success => {
            let version = out.stdout.trim().to_owned();
            pre.engine.compose_version = Some(version.clone());
            compose_finding(&version)
        }
        Ok(out) => Finding::fail(
            "compose",
            format!(
                "the Compose v2 plugin is missing (`docker compose version` said: {})",
                first_line(&out.stderr).unwrap_or("nothing")
            ),
            compose_fix(),
        ),
        Err(err) => Finding::fail("compose", format!("{err:#}"), compose_fix()),
    };
    pre.findings.push(finding);
    pre
}

fn compose_fix() -> String {
    let mut fix = "install the Compose v2 plugin: Docker's `docker-compose-plugin` package, or \
                   Debian trixie's `docker-compose` (2.26) which installs it as a plugin"
        .to_owned();
    if find_on_path("docker-compose") {
        fix.push_str(
            "; a `docker-compose` command is on PATH, but provision uses `docker compose` \
             (the v1 Python tool is not supported)",
        );
    }
    fix
}

fn api_finding(api: &str) -> Finding {
    match parse_version(api) {
        Some((major, minor, _)) if (major, minor) >= TESTED_API => {
            Finding::ok("api", format!("engine API {api}"))
        }
        Some(_) => Finding::warn(
            "api",
            format!(
                "engine API {api} is older than {}.{}, the oldest provision was tested with",
                TESTED_API.0, TESTED_API.1
            ),
            "upgrade Docker Engine to 20.10 or newer if anything below fails",
        ),
        None => Finding::warn(
            "api",
            format!("cannot read the engine API version {api:?}"),
            "check `docker version`",
        ),
    }
}

fn compose_finding(version: &str) -> Finding {
    match parse_version(version) {
        Some(v) if v.0 == 2 && v >= MIN_COMPOSE => {
            Finding::ok("compose", format!("Compose plugin {version}"))
        }
        Some(v) if v.0 > 2 => Finding::ok("compose", format!("Compose plugin {version}")),
        Some(_) => Finding::fail(
            "compose",
            format!(
                "Compose {version} is too old: provision needs 2.{}.{} or newer (`up --wait-timeout`)",
                MIN_COMPOSE.1, MIN_COMPOSE.2
            ),
            compose_fix(),
        ),
        None => Finding::warn(
            "compose",
            format!("cannot read the Compose version {version:?}"),
            "check `docker compose version`",
        ),
    }
}

/// `2.26.1-4`, `v2.26.1`, `1.41` → (major, minor, patch).
pub fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let text = text.trim().trim_start_matches('v');
    let core = text
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u32>());
    let major = parts.next()?.ok()?;
    let minor = parts.next().unwrap_or(Ok(0)).ok()?;
    let patch = parts.next().unwrap_or(Ok(0)).ok()?;
    Some((major, minor, patch))
}

fn first_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|l| !l.is_empty())
}

fn find_on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_in_every_spelling() {
        assert_eq!(parse_version("2.26.1-4"), Some((2, 26, 1)));
        assert_eq!(parse_version("v2.17.0"), Some((2, 17, 0)));
        assert_eq!(parse_version("2.29.2+ds1-0ubuntu1"), Some((2, 29, 2)));
        assert_eq!(parse_version("1.41"), Some((1, 41, 0)));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn compose_versions_are_judged() {
        assert_eq!(compose_finding("2.26.1-4").status, Status::Ok);
        assert_eq!(compose_finding("2.17.0").status, Status::Ok);
        assert_eq!(compose_finding("5.0.0").status, Status::Ok);
        let old = compose_finding("2.12.2");
        assert_eq!(old.status, Status::Fail);
        assert!(old.detail.contains("2.17.0"), "{}", old.detail);
        assert_eq!(compose_finding("1.29.2").status, Status::Fail);
    }

    #[test]
    fn api_versions_are_judged() {
        assert_eq!(api_finding("1.41").status, Status::Ok);
        assert_eq!(api_finding("1.50").status, Status::Ok);
        assert_eq!(api_finding("1.39").status, Status::Warn);
    }

    #[test]
    fn the_first_failure_becomes_the_error_with_advice() {
        let pre = Preflight {
            engine: Engine::default(),
            findings: vec![
                Finding::ok("docker", "docker CLI 28"),
                Finding::fail("daemon", "cannot reach the Docker daemon", "start it"),
            ],
        };
        assert!(pre.failed());
        let err = pre.into_result().unwrap_err();
        assert_eq!(
            err.to_string(),
            "preflight: cannot reach the Docker daemon\n  what to do: start it"
        );
        assert!(err.is::<ToolError>());
    }
}
