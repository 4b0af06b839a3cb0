//! consul's view: the web instances whose health checks pass, read through `docker exec` in
//! the lb container with the stack's reader token, on both targets (consul's API is published
//! only when the spec asks).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use secrecy::{ExposeSecret as _, SecretString};

use crate::check::{Check, Numbers};
use crate::docker::Docker;
use crate::poll::poll_until;

/// How many times consul's name is resolved before its servers count as none, and the pause
/// between tries.
const RESOLVE_TRIES: u32 = 3;
const RESOLVE_PAUSE: Duration = Duration::from_millis(300);

/// One passing instance of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    pub id: String,
    pub address: String,
    pub port: u16,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    service: EntryService,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EntryService {
    #[serde(rename = "ID")]
    id: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    port: u16,
}

/// Parses `GET /v1/health/service/<name>?passing`.
pub fn parse_passing(json: &str) -> anyhow::Result<Vec<Instance>> {
    let entries: Vec<Entry> =
        serde_json::from_str(json).context("reading consul's health answer")?;
    let mut instances: Vec<Instance> = entries
        .into_iter()
        .map(|e| Instance {
            id: e.service.id,
            address: e.service.address,
            port: e.service.port,
        })
        .collect();
    instances.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(instances)
}

/// Which instances are the project's own: the web service's name, and the tag every one of its
/// registrations carries (registrator registers other projects' containers in this consul too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceQuery {
    pub name: String,
    pub tag: String,
}

impl ServiceQuery {
    pub fn web(web: &crate::spec::plan::PlanWeb) -> ServiceQuery {
        ServiceQuery {
            name: web.service.clone(),
            tag: web.registry_tag.clone(),
        }
    }

    /// `/v1/health/service/<name>?passing&tag=<tag>`: passing instances carrying the tag.
    fn path(&self) -> String {
        format!("/v1/health/service/{}?passing&tag={}", self.name, self.tag)
    }
}

/// consul's HTTP API as provision reaches it on either target: a request from inside the lb
/// container (`docker exec <lb> socat - TCP:consul:8500`, raw HTTP/1.0 on stdin), with the
/// stack's reader token. consul's port is published only when the spec asks, and consul runs
/// with ACLs (default deny): the token is what lets provision read the web instances.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    pub docker: &'a Docker,
    /// The lb container (on the network consul is on; its image carries socat), None while
    /// none runs: consul cannot be asked then.
    pub container: Option<String>,
    /// The reader token (`secrets::stack`), None for a stack applied before consul had ACLs.
    pub token: Option<SecretString>,
}

impl Source<'_> {
    /// Passing instances of `service`.
    pub fn passing(&self, service: &ServiceQuery) -> anyhow::Result<Vec<Instance>> {
        let path = service.path();
        parse_passing(&self.get(&path)?)
    }

    /// consul's Raft as its servers stand (several servers, `consul.servers`): the voters'
    /// addresses in the Raft configuration (`/v1/status/peers`, which needs no token) and the
    /// servers' addresses in Docker's DNS.
    ///
    /// Each server answers `/v1/status/peers` from its own copy of Raft's configuration, and a
    /// server restarted at a new address has an empty one until the leader takes it in (a CI
    /// run's `verify` asked such a server first and counted 0 of 3 voters). So the peers are
    /// the leader's, as the first server that knows one names it (`/v1/status/leader`); with
    /// no leader known anywhere, the first server's that answers.
    pub fn raft(&self) -> anyhow::Result<Raft> {
        let container = self
            .container
            .as_deref()
            .context("no lb container runs, and consul is asked from inside it")?;
        let servers = self.servers(container)?;
        let leader = servers.iter().find_map(|server| {
            let body = self.ask(container, server, "/v1/status/leader").ok()?;
            let leader: String = serde_json::from_str(&body).ok()?;
            let ip = leader.rsplit_once(':').map(|(ip, _)| ip.to_owned())?;
            (!ip.is_empty()).then_some(ip)
        });
        let body = match &leader {
            Some(leader) => self.ask(container, leader, "/v1/status/peers")?,
            None => self.get("/v1/status/peers")?,
        };
        let peers: Vec<String> = serde_json::from_str(&body)
            .with_context(|| format!("reading consul's Raft peers from {body:?}"))?;
        Ok(Raft {
            peers: peers
                .iter()
                .map(|p| {
                    p.rsplit_once(':')
                        .map_or(p.as_str(), |(ip, _)| ip)
                        .to_owned()
                })
                .collect(),
            servers: servers.into_iter().collect(),
        })
    }

    /// The body of consul's 200 answer to GET `path`.
    fn get(&self, path: &str) -> anyhow::Result<String> {
        let container = self
            .container
            .as_deref()
            .context("no lb container runs, and consul is asked from inside it")?;
        let ask = |server: &str| self.ask(container, server, path);
        // `consul` is the first address Docker's DNS gives. With several servers
        // (`consul.servers`) that one may be lost, or restarted and not yet caught up with the
        // leader (it refuses the token then): each of the others is asked in turn.
        let first = match ask("consul") {
            Ok(body) => return Ok(body),
            Err(err) => err,
        };
        let mut errors = vec![format!("consul: {first:#}")];
        for server in self.servers(container).unwrap_or_default() {
            match ask(&server) {
                Ok(body) => return Ok(body),
                Err(err) => errors.push(format!("{server}: {err:#}")),
            }
        }
        anyhow::bail!(
            "asking consul for {path} through docker exec: {}",
            errors.join("; ")
        )
    }

    /// The body of `server`'s 200 answer to GET `path`, asked from inside the lb container.
    fn ask(&self, container: &str, server: &str, path: &str) -> anyhow::Result<String> {
        // The token goes on stdin, never into a command line.
        let token = self
            .token
            .as_ref()
            .map(|t| format!("X-Consul-Token: {}\r\n", t.expose_secret().trim()))
            .unwrap_or_default();
        let request = format!("GET {path} HTTP/1.0\r\nHost: consul\r\n{token}\r\n");
        let answer = self
            .docker
            .call(
                format!("asking consul ({server}) for {path} from the lb container"),
                [
                    "exec",
                    "-i",
                    container,
                    "socat",
                    "-",
                    &format!("TCP:{server}:8500,connect-timeout=2"),
                ],
            )
            .stdin(request)
            .timeout(Duration::from_secs(10))
            .output()?;
        http_body(&answer).map(str::to_owned)
    }

    /// Every address `consul` resolves to in the lb container (each server's, with several).
    /// Asked again, up to [`RESOLVE_TRIES`] times, while the answer is an error or empty: a CI
    /// run's `verify` once found no address at all a moment after two that found three, and
    /// counted the cluster as having no live voter.
    fn servers(&self, container: &str) -> anyhow::Result<Vec<String>> {
        let mut last = None;
        let found = poll_until(RESOLVE_PAUSE * (RESOLVE_TRIES - 1), RESOLVE_PAUSE, || {
            let answer = self
                .docker
                .call(
                    "resolving consul's servers in the lb container",
                    ["exec", container, "getent", "ahostsv4", "consul"],
                )
                .timeout(Duration::from_secs(10))
                .output();
            match answer {
                Ok(text) => {
                    let addresses: BTreeSet<String> = text
                        .lines()
                        .filter_map(|l| l.split_whitespace().next())
                        .map(str::to_owned)
                        .collect();
                    if addresses.is_empty() {
                        last = Some(anyhow::anyhow!("`consul` resolved to no address"));
                        return Ok(None);
                    }
                    Ok(Some(addresses.into_iter().collect()))
                }
                Err(err) => {
                    last = Some(err);
                    Ok(None)
                }
            }
        })?;
        found.ok_or_else(|| {
            last.unwrap_or_else(|| anyhow::anyhow!("`consul` did not resolve"))
                .context(format!(
                    "resolving `consul` in the lb container ({RESOLVE_TRIES} tries)"
                ))
        })
    }

    /// Where it is read, for messages.
    pub fn describe(&self) -> String {
        match &self.container {
            Some(container) => format!(
                "consul:8500 through docker exec in {}",
                container.chars().take(12).collect::<String>()
            ),
            None => "consul:8500 through docker exec in the lb container".to_owned(),
        }
    }
}

/// consul's Raft configuration against its running servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raft {
    /// The voters' addresses, as the Raft configuration has them.
    pub peers: BTreeSet<String>,
    /// The servers' addresses, as Docker's DNS has them (the running, healthy ones).
    pub servers: BTreeSet<String>,
}

impl Raft {
    /// verify's `consul raft` check for a cluster of `expected` servers: passes while the
    /// voters that run at their addresses are a majority of the configuration (there is a
    /// leader), and says how many more losses it survives. A server restarted on its node has
    /// a new address, and counts only once the leader has replaced its old one.
    pub fn check(&self, expected: u32) -> Check {
        let live: BTreeSet<&String> = self.peers.intersection(&self.servers).collect();
        let quorum = self.peers.len() / 2 + 1;
        let tolerates = live.len().saturating_sub(quorum);
        let mut message = format!(
            "{} of {expected} consul servers are voters at their addresses; {}",
            live.len(),
            if live.len() < quorum {
                "not a majority: no leader, no registrations".to_owned()
            } else if tolerates == 0 {
                "one more lost server stops discovery's changes".to_owned()
            } else {
                format!("it survives {tolerates} more lost server(s)")
            }
        );
        for gone in self.peers.difference(&self.servers) {
            message.push_str(&format!(
                "\n{gone} is a voter in Raft, and no running server has that address"
            ));
        }
        for new in self.servers.difference(&self.peers) {
            message.push_str(&format!(
                "\n{new} runs a server that is not yet a voter (a restarted one has a new address)"
            ));
        }
        Check::pass_if("consul raft", live.len() >= quorum, message).numbers(
            Numbers::default()
                .with("expected", expected)
                .with("voters", self.peers.len() as u64)
                .with("live", live.len() as u64)
                .with("tolerates", tolerates as u64),
        )
    }
}

/// The body of a raw HTTP/1.x answer whose status is 200.
fn http_body(answer: &str) -> anyhow::Result<&str> {
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .context("consul's answer has no HTTP header")?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        anyhow::bail!("consul answered `{status}`");
    }
    Ok(body)
}

/// Passing instances of `service` from the consul agent at `base` (`http://127.0.0.1:8500`, a
/// published port), asked without a token: in consul-dns mode consul answers such a request
/// with its reader token's rights (the tests read it so).
pub fn passing(base: &str, service: &ServiceQuery) -> anyhow::Result<Vec<Instance>> {
    let url = format!("{base}{}", service.path());
    let text = super::http::get_text(&url, Duration::from_secs(3))
        .with_context(|| format!("asking consul at {url}"))?;
    parse_passing(&text).with_context(|| format!("asking consul at {url}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raft(peers: &[&str], servers: &[&str]) -> Raft {
        Raft {
            peers: peers.iter().map(|s| s.to_string()).collect(),
            servers: servers.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn raft_passes_with_a_majority_of_live_voters_and_says_what_it_survives() {
        let whole = raft(&["a", "b", "c"], &["a", "b", "c"]).check(3);
        assert_eq!(whole.outcome, crate::check::Outcome::Pass);
        assert!(
            whole.message.contains("survives 1 more"),
            "{}",
            whole.message
        );
        // c came back with a new address the leader has not taken yet.
        let rejoining = raft(&["a", "b", "c"], &["a", "b", "d"]).check(3);
        assert_eq!(rejoining.outcome, crate::check::Outcome::Pass);
        assert!(
            rejoining.message.contains("one more lost server stops")
                && rejoining
                    .message
                    .contains("c is a voter in Raft, and no running server")
                && rejoining
                    .message
                    .contains("d runs a server that is not yet a voter"),
            "{}",
            rejoining.message
        );
        let lost = raft(&["a", "b", "c"], &["a"]).check(3);
        assert_eq!(lost.outcome, crate::check::Outcome::Fail);
        assert!(lost.message.contains("not a majority"), "{}", lost.message);
    }

    #[test]
    fn a_raw_answer_gives_its_body_only_when_it_is_200() {
        let ok = "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n[]";
        assert_eq!(http_body(ok).unwrap(), "[]");
        let err = http_body("HTTP/1.0 500 Internal Server Error\r\n\r\nno leader").unwrap_err();
        assert!(err.to_string().contains("500"), "{err}");
        assert!(http_body("garbage").is_err());
    }

    #[test]
    fn passing_instances_with_address_and_port() {
        let json = r#"[
          {"Node":{"Node":"d9fa33bb2809","Address":"127.0.0.1"},
           "Service":{"ID":"web-9489cd908b98","Service":"web","Tags":[],"Address":"172.20.0.5","Port":5000},
           "Checks":[{"Status":"passing"}]},
          {"Node":{"Node":"d9fa33bb2809"},
           "Service":{"ID":"web-0a1b2c3d4e5f","Service":"web","Address":"172.20.0.6","Port":5000},
           "Checks":[]}
        ]"#;
        let instances = parse_passing(json).unwrap();
        assert_eq!(instances.len(), 2);
        assert_eq!(instances[0].id, "web-0a1b2c3d4e5f");
        assert_eq!(instances[1].address, "172.20.0.5");
        assert_eq!(instances[1].port, 5000);
        assert!(parse_passing("[]").unwrap().is_empty());
    }
}
