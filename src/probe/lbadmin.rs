//! HAProxy's runtime API, reached through `docker exec <lb> socat stdio /run/haproxy/admin.sock`
//! (the lb image carries socat; the socket is not published). Used to drain replicas before
//! Compose stops them.

use std::time::Duration;

use anyhow::Context;

use crate::docker::Docker;

/// The stats socket inside the lb container (fixed by the lb blueprint).
pub const ADMIN_SOCKET: &str = "/run/haproxy/admin.sock";

/// Sends one line of runtime commands (several may be joined with `;`) and returns the answer.
pub fn command(docker: &Docker, lb_container: &str, line: &str) -> anyhow::Result<String> {
    docker
        .call(
            format!("sending `{line}` to HAProxy's runtime API"),
            ["exec", "-i", lb_container, "socat", "stdio", ADMIN_SOCKET],
        )
        .stdin(format!("{line}\n"))
        .timeout(Duration::from_secs(10))
        .changes_state()
        .output()
}

/// A read-only runtime command (`show stat`, `show servers state web`).
pub fn query(docker: &Docker, lb_container: &str, line: &str) -> anyhow::Result<String> {
    docker
        .call(
            format!("asking HAProxy's runtime API for `{line}`"),
            ["exec", "-i", lb_container, "socat", "stdio", ADMIN_SOCKET],
        )
        .stdin(format!("{line}\n"))
        .timeout(Duration::from_secs(10))
        .output()
}

/// The runtime command that puts `servers` of `backend` into `state` (`maint`, `drain`, `ready`).
pub fn set_state_line(backend: &str, servers: &[String], state: &str) -> String {
    servers
        .iter()
        .map(|s| format!("set server {backend}/{s} state {state}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Puts servers into `state`. HAProxy answers nothing on success and a sentence per refused
/// command (such as "No such server."); those sentences are returned for the caller to judge.
pub fn set_state(
    docker: &Docker,
    lb_container: &str,
    backend: &str,
    servers: &[String],
    state: &str,
) -> anyhow::Result<Vec<String>> {
    if servers.is_empty() {
        return Ok(Vec::new());
    }
    let line = set_state_line(backend, servers, state);
    let answer = command(docker, lb_container, &line)
        .with_context(|| format!("setting HAProxy servers {} to {state}", servers.join(", ")))?;
    Ok(answer
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_for_several_servers() {
        assert_eq!(
            set_state_line("web", &["web3".into(), "web4".into()], "maint"),
            "set server web/web3 state maint; set server web/web4 state maint"
        );
    }
}
