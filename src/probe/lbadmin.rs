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

/// The runtime command that gives drained `servers` of `backend` back, each marked down once
/// ready: a slot that a new replica's address fills later then needs a passing check (`rise`)
/// before it is UP. Set back to `ready` alone, it took its old UP state with the new address
/// ("resolves again") before any check, and a replica not yet reachable was routed and counted
/// UP (seen as an `L4TOUT` right after a `verify --scale` had converged). The order matters:
/// with HAProxy 2.6, `health down` before `state ready` left the server `UP 1/2`, after it
/// `DOWN` until the next passing check.
pub fn release_line(backend: &str, servers: &[String]) -> String {
    servers
        .iter()
        .map(|s| {
            format!("set server {backend}/{s} state ready; set server {backend}/{s} health down")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Gives drained servers back ([`release_line`]); the refusals as [`set_state`] returns them.
pub fn release(
    docker: &Docker,
    lb_container: &str,
    backend: &str,
    servers: &[String],
) -> anyhow::Result<Vec<String>> {
    refusals(
        docker,
        lb_container,
        servers,
        &release_line(backend, servers),
        "give back",
    )
}

/// Sends `line` (one runtime command per server of `servers`, none when there are none) and
/// returns HAProxy's refusals: it answers nothing on success and a sentence per refused command.
fn refusals(
    docker: &Docker,
    lb_container: &str,
    servers: &[String],
    line: &str,
    what: &str,
) -> anyhow::Result<Vec<String>> {
    if servers.is_empty() {
        return Ok(Vec::new());
    }
    let answer = command(docker, lb_container, line)
        .with_context(|| format!("asking HAProxy to {what} servers {}", servers.join(", ")))?;
    Ok(answer
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

/// The runtime command that sets each server's weight in `backend`: a number from 0 to 256, or
/// a percentage of its configured weight (`100%` puts it back). Weights set this way live in
/// the running HAProxy only; a reload forgets them.
pub fn set_weight_line<'a>(
    backend: &str,
    weights: impl IntoIterator<Item = (&'a str, String)>,
) -> String {
    weights
        .into_iter()
        .map(|(server, weight)| format!("set weight {backend}/{server} {weight}"))
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
    refusals(
        docker,
        lb_container,
        servers,
        &set_state_line(backend, servers, state),
        &format!("set to {state} the"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_servers_are_marked_down_before_ready() {
        assert_eq!(
            release_line("web", &["web3".into(), "web4".into()]),
            "set server web/web3 state ready; set server web/web3 health down; \
             set server web/web4 state ready; set server web/web4 health down"
        );
    }

    #[test]
    fn weights_in_one_line() {
        assert_eq!(
            set_weight_line(
                "web",
                [("web1", "100".to_owned()), ("web4", "75".to_owned())]
            ),
            "set weight web/web1 100; set weight web/web4 75"
        );
        assert_eq!(set_weight_line("web", []), "");
    }

    #[test]
    fn one_line_for_several_servers() {
        assert_eq!(
            set_state_line("web", &["web3".into(), "web4".into()], "maint"),
            "set server web/web3 state maint; set server web/web4 state maint"
        );
    }
}
