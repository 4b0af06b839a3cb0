//! HAProxy's own view of a backend, from the stats page's CSV (`/stats;csv`).

use std::cell::Cell;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::docker::Docker;

/// The HAProxy backend the blueprints route web through.
pub const WEB_BACKEND: &str = "web";

/// One server line of the CSV (FRONTEND and BACKEND summary lines are left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Server {
    pub backend: String,
    pub name: String,
    /// `UP`, `DOWN`, `MAINT`, `MAINT (resolution)`, `UP 1/3`, `no check`, ...
    pub status: String,
    /// `ip:port`; empty for an unused `server-template` slot.
    pub addr: String,
    /// Last health check result, e.g. `L7OK`, `L4CON`.
    pub check_status: String,
    /// Its traffic counters (zero where the CSV lacks a column).
    #[serde(skip)]
    pub counters: Counters,
}

/// A server's cumulative traffic counters, recent response time and requests in flight, as
/// HAProxy keeps them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Answers it gave (`hrsp_1xx` to `hrsp_5xx` and `hrsp_other`).
    pub responses: u64,
    /// Of those, 5xx (`hrsp_5xx`).
    pub status_5xx: u64,
    /// Connections to it that failed (`econ`) and answers that broke off (`eresp`).
    pub failed_connections: u64,
    pub failed_responses: u64,
    /// Average response time of its last 1024 answers, ms (`rtime`).
    pub response_ms: u64,
    /// Requests on it now, being served or queued for it (`scur` + `qcur`).
    pub in_flight: u64,
}

impl Counters {
    /// Requests it was sent: its answers and its failures.
    pub fn requests(&self) -> u64 {
        self.responses + self.failed_connections + self.failed_responses
    }

    /// Requests that failed: 5xx answers and broken connections or answers.
    pub fn errors(&self) -> u64 {
        self.status_5xx + self.failed_connections + self.failed_responses
    }
}

impl Server {
    /// Serving traffic: `UP`, including `UP 1/3` (still up while checks start failing).
    pub fn is_up(&self) -> bool {
        self.status == "UP" || self.status.starts_with("UP ")
    }

    /// UP and its last health check passed (or it has no check), at the address it has now.
    /// HAProxy's status says so: a checked server that is fully up reads `UP`; `UP 1/2` is one
    /// either failing its checks or not checked since it left maintenance. A `server-template`
    /// slot that DNS has just filled is the latter: UP at once, before any check (HAProxy 2.6
    /// and 3.0 have no `init-state`), and live traffic then met a replica not yet listening (the
    /// canary's first requests failed to connect, an e2e run in CI). Its `check_status` is no
    /// help: it still reads the last check of the slot's previous address (`L7OK` when a replica
    /// that had left made room for it; checked with HAProxy 2.6: a server put in maintenance,
    /// moved to an address nothing listened on and made ready read `UP 1/2`, `L7OK`, health 1,
    /// and `DOWN`, `L4CON` at its first check), and a CI run's verify counted such a replica
    /// routed before HAProxy had checked it, which its first check then took down. Waits for a
    /// routed replica count this, not [`Server::is_up`].
    pub fn is_up_and_checked(&self) -> bool {
        let check = self.check_status.trim_start_matches("* ");
        self.status == "UP"
            && (check.is_empty()
                || ["L4OK", "L6OK", "L7OK"]
                    .iter()
                    .any(|ok| check.starts_with(ok)))
    }

    /// A free `server-template` slot, waiting for an address from DNS.
    pub fn is_unused_slot(&self) -> bool {
        self.status.contains("(resolution)") || self.addr.is_empty()
    }

    /// The address without the port.
    pub fn ip(&self) -> &str {
        self.addr
            .rsplit_once(':')
            .map(|(ip, _)| ip)
            .unwrap_or(&self.addr)
    }
}

/// Parses the CSV HAProxy prints at `/stats;csv` or with `show stat`. Its header line starts
/// with `# `; fields may be quoted (a server's `check_desc` or `agent_desc` can hold commas), so
/// a real CSV reader reads it.
pub fn parse_csv(text: &str) -> anyhow::Result<Vec<Server>> {
    let start = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .find(|&i| text[i..].starts_with('#'))
        .context("no header line (`# pxname,svname,...`) in HAProxy's CSV")?;
    let body = text[start + 1..].trim_start_matches(' ');
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(body.as_bytes());
    let columns = reader
        .headers()
        .context("reading the header of HAProxy's CSV")?
        .clone();
    let index = |name: &str| {
        columns
            .iter()
            .position(|c| c == name)
            .with_context(|| format!("no `{name}` column in HAProxy's CSV"))
    };
    let (px, sv, status) = (index("pxname")?, index("svname")?, index("status")?);
    // `addr` and `check_status` are missing from very old versions; tolerate that.
    let addr = index("addr").ok();
    let check = index("check_status").ok();
    let counter_columns = [
        "hrsp_1xx",
        "hrsp_2xx",
        "hrsp_3xx",
        "hrsp_4xx",
        "hrsp_5xx",
        "hrsp_other",
        "econ",
        "eresp",
        "rtime",
        "scur",
        "qcur",
    ]
    .map(|name| index(name).ok());
    let mut servers = Vec::new();
    for record in reader.records() {
        let record = record.context("reading a line of HAProxy's CSV")?;
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let field = |i: usize| record.get(i).unwrap_or_default().to_owned();
        let name = field(sv);
        if name == "FRONTEND" || name == "BACKEND" {
            continue;
        }
        servers.push(Server {
            backend: field(px),
            name,
            status: field(status),
            addr: addr.map(field).unwrap_or_default(),
            check_status: check.map(field).unwrap_or_default(),
            counters: {
                // An empty field (a counter HAProxy does not keep for this line) counts as 0.
                let [c1, c2, c3, c4, c5, other, econ, eresp, rtime, scur, qcur] = counter_columns
                    .map(|i| {
                        i.and_then(|i| record.get(i)?.trim().parse::<u64>().ok())
                            .unwrap_or(0)
                    });
                Counters {
                    responses: c1 + c2 + c3 + c4 + c5 + other,
                    status_5xx: c5,
                    failed_connections: econ,
                    failed_responses: eresp,
                    response_ms: rtime,
                    in_flight: scur + qcur,
                }
            },
        });
    }
    Ok(servers)
}

/// The stats page leaves `addr` empty unless the stats section has `stats show-legends`;
/// without addresses, servers cannot be matched to containers, and waiting will not help.
#[derive(Debug, thiserror::Error)]
#[error(
    "HAProxy's stats at {0} hide the servers' addresses: the lb configuration needs \
     `stats show-legends` in its stats frontend"
)]
pub struct HiddenAddresses(pub String);

/// The servers of `backend`, read from the stats page at `url`.
pub fn fetch(url: &str, backend: &str) -> anyhow::Result<Vec<Server>> {
    fetch_authorized(url, backend, None)
}

/// [`fetch`] with the stats page's login (`secrets::stack::stats_authorization`).
pub fn fetch_authorized(
    url: &str,
    backend: &str,
    authorization: Option<&secrecy::SecretString>,
) -> anyhow::Result<Vec<Server>> {
    let text = super::http::get_text_authorized(url, Duration::from_secs(3), authorization)
        .with_context(|| format!("reading HAProxy's stats at {url}"))?;
    let mut servers =
        parse_csv(&text).with_context(|| format!("reading HAProxy's stats at {url}"))?;
    servers.retain(|s| s.backend == backend);
    check_addresses(&servers, url)?;
    Ok(servers)
}

/// Where to read a backend's servers: the stats page over HTTP, or, when that page hides the
/// servers' addresses, the runtime API's `show stat` inside the lb container (same CSV; the
/// admin-level socket always shows addresses).
#[derive(Debug)]
pub struct Source<'a> {
    pub url: String,
    pub backend: String,
    /// docker and the lb container, for the fallback.
    pub runtime: Option<(&'a Docker, String)>,
    use_runtime: Cell<bool>,
}

impl<'a> Source<'a> {
    pub fn new(url: &str, backend: &str, runtime: Option<(&'a Docker, String)>) -> Self {
        Source {
            url: url.to_owned(),
            backend: backend.to_owned(),
            runtime,
            use_runtime: Cell::new(false),
        }
    }

    /// Only the runtime API (on a Swarm, where the stats page is never published).
    pub fn runtime_only(backend: &str, docker: &'a Docker, lb: Option<String>) -> Self {
        Source {
            url: "HAProxy's runtime API (`show stat`)".to_owned(),
            backend: backend.to_owned(),
            runtime: lb.map(|lb| (docker, lb)),
            use_runtime: Cell::new(true),
        }
    }

    pub fn fetch(&self) -> anyhow::Result<Vec<Server>> {
        if !self.use_runtime.get() {
            match fetch(&self.url, &self.backend) {
                Err(err)
                    if self.runtime.is_some() && err.chain().any(|c| c.is::<HiddenAddresses>()) =>
                {
                    self.use_runtime.set(true);
                }
                other => return other,
            }
        }
        let (docker, lb) = self
            .runtime
            .as_ref()
            .context("the lb container is not running")?;
        let text = super::lbadmin::query(docker, lb, "show stat")?;
        let mut servers =
            parse_csv(&text).context("reading `show stat` from HAProxy's runtime API")?;
        servers.retain(|s| s.backend == self.backend);
        Ok(servers)
    }
}

fn check_addresses(servers: &[Server], url: &str) -> Result<(), HiddenAddresses> {
    // A server that is UP has an address; an empty one means the page hides it.
    if servers.iter().any(|s| s.is_up() && s.addr.is_empty()) {
        return Err(HiddenAddresses(url.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Trimmed from HAProxy 2.6's real output (the columns after `addr` are cut short).
    const CSV: &str = "\
# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,
http-in,FRONTEND,,,0,1,9980,3,285,486,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,3,0,3,,,,0,3,0,0,0,0,,3,3,3,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,
web,web1,0,0,0,1,,3,285,486,,0,,0,0,0,0,UP,1,1,0,0,1,8,0,,1,4,1,,3,,2,3,,3,L7OK,200,1,0,3,0,0,0,0,,,,3,0,0,,,,,0,,,0,0,1,1,,,,Layer7 check passed,,1,2,2,,,,172.20.0.5:5000,,http,,
web,web2,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT (resolution),1,1,0,0,1,9,9,,1,4,2,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,,,http,,
web,web3,1,0,2,1,,3,285,486,,0,,0,0,0,0,DOWN,1,1,0,0,1,8,0,,1,4,1,,3,,2,3,,3,L4CON,,1,0,3,0,0,0,0,,,,3,0,0,,,,,0,,,0,0,1,1,,,,Layer7 check passed,,1,2,2,,,,172.20.0.9:5000,,http,,
web,BACKEND,0,0,0,1,1000,3,285,486,0,0,,0,0,0,0,UP,1,1,0,,0,9,0,,1,4,0,,3,,1,3,,3,,,,0,3,0,0,0,0,,,,3,0,0,0,0,0,0,0,,,0,0,1,1,,,,,,,,,,,,,http,roundrobin,
";

    #[test]
    fn server_lines_with_status_and_address() {
        let servers = parse_csv(CSV).unwrap();
        assert_eq!(
            servers.len(),
            3,
            "frontend and backend summaries are skipped"
        );
        let web1 = &servers[0];
        assert_eq!((web1.backend.as_str(), web1.name.as_str()), ("web", "web1"));
        assert!(web1.is_up());
        assert_eq!(web1.ip(), "172.20.0.5");
        assert_eq!(web1.check_status, "L7OK");
        assert!(servers[1].is_unused_slot() && !servers[1].is_up());
        assert_eq!(servers[2].status, "DOWN");
        assert_eq!(
            web1.counters,
            Counters {
                responses: 3,
                status_5xx: 0,
                failed_connections: 0,
                failed_responses: 0,
                response_ms: 1,
                in_flight: 0,
            }
        );
        assert_eq!(web1.counters.requests(), 3);
        // qcur 1 and scur 2.
        assert_eq!(servers[2].counters.in_flight, 3);
        assert_eq!(servers[2].addr, "172.20.0.9:5000");
    }

    #[test]
    fn transitional_states_count_as_up_only_while_up() {
        let server = |status: &str| Server {
            backend: "web".into(),
            name: "web1".into(),
            status: status.into(),
            addr: "10.0.0.2:5000".into(),
            check_status: String::new(),
            counters: Counters::default(),
        };
        assert!(server("UP 1/3").is_up());
        let checked = |status: &str, check: &str| Server {
            check_status: check.into(),
            ..server(status)
        };
        assert!(checked("UP", "L7OK").is_up_and_checked());
        assert!(checked("UP", "* L7OK").is_up_and_checked());
        assert!(checked("UP", "").is_up_and_checked(), "no check configured");
        assert!(
            !checked("UP 1/2", "INI").is_up_and_checked(),
            "resolved, never checked"
        );
        assert!(!checked("UP 1/2", "L4CON").is_up_and_checked());
        assert!(
            !checked("UP 1/2", "L7OK").is_up_and_checked(),
            "a reused slot at its new address: the previous address's check, not its own"
        );
        assert!(!checked("DOWN", "L7OK").is_up_and_checked());
        assert!(!server("DOWN 1/2").is_up());
        assert!(!server("MAINT").is_up());
        assert!(!server("no check").is_up());
    }

    #[test]
    fn hidden_addresses_are_explained() {
        let hidden = CSV.replace("172.20.0.5:5000", "");
        let servers = parse_csv(&hidden).unwrap();
        let err = check_addresses(&servers, "http://127.0.0.1:8404/stats;csv").unwrap_err();
        assert!(err.to_string().contains("stats show-legends"), "{err}");
        assert!(check_addresses(&parse_csv(CSV).unwrap(), "u").is_ok());
    }

    #[test]
    fn quoted_fields_with_commas_stay_one_field() {
        let quoted = CSV.replace(
            ",,,,Layer7 check passed,,1,2,2,,,,172.20.0.5:5000",
            ",,,,\"Layer7 check passed, code 200\",,1,2,2,,,,172.20.0.5:5000",
        );
        assert_ne!(quoted, CSV, "the fixture line changed");
        let servers = parse_csv(&format!("\n{quoted}")).unwrap();
        assert_eq!(servers[0].addr, "172.20.0.5:5000");
        assert!(servers[0].is_up());
    }

    #[test]
    fn missing_header_is_an_error() {
        let err = parse_csv("web,web1,UP\n").unwrap_err();
        assert!(err.to_string().contains("no header line"), "{err}");
    }
}
