//! `provision status`: what runs (services, replicas, health), the load balancer's backends from
//! HAProxy's stats, and consul's view when discovery uses it. Informational: exit 0 unless docker
//! itself fails (a stopped or degraded stack is a state to report, not a failure of `status`).
//! With `--json`, the envelope (docs/json.md) carries an overall `state` and each view's error
//! as `{kind, message}`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cli::StatusArgs;
use crate::commands::Global;
use crate::deploy::swarm::nodes::Fleet;
use crate::deploy::{maintenance, Deployment};
use crate::docker::{preflight, Container, Docker, PsEntry};
use crate::probe::converge::lb_container;
use crate::probe::http::RequestError;
use crate::probe::registry::{Instance, ServiceQuery};
use crate::probe::stats::Server;
use crate::{render, ExitStatus};

#[derive(Debug, Serialize)]
struct Status {
    /// The one-word answer: is the stack up and routed?
    state: State,
    project: String,
    discovery: String,
    compose_file: String,
    containers: Vec<PsEntry>,
    web: Replicas,
    lb: View<Vec<Server>>,
    /// None when discovery uses no registry.
    consul: Option<View<Vec<Instance>>>,
    maintenance: MaintenanceView,
    /// On a Swarm: the nodes, the lost ones with the stack's tasks that ran there, and each
    /// edge node's lb with whether it answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    swarm: Option<Fleet>,
    /// The lb's certificate (`lb.tls` only): its expiry, as `status` says it in text.
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<CertificateView>,
}

/// What `status --json` says of the lb's certificate.
#[derive(Debug, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum CertificateView {
    /// Stored by apply: when it expires and for which names.
    Stored {
        /// RFC 3339, UTC.
        not_after: String,
        /// Whole days left; negative once expired.
        days_left: i64,
        names: Vec<String>,
    },
    /// `lb.tls` is set but no apply has made or stored one yet.
    NotYet,
    /// The stored certificate cannot be read.
    Unreadable { error: String },
}

impl CertificateView {
    fn of(plan: &crate::spec::Plan) -> Option<CertificateView> {
        plan.lb.tls.as_ref()?;
        Some(match crate::lb_tls::stored_info(&plan.project) {
            Ok(Some(info)) => CertificateView::Stored {
                not_after: info.not_after_rfc3339(),
                days_left: info.days_left(crate::lb_tls::now()),
                names: info.names,
            },
            Ok(None) => CertificateView::NotYet,
            Err(err) => CertificateView::Unreadable {
                error: format!("{err:#}"),
            },
        })
    }
}

/// Maintenance mode: what the lb says, and what provision keeps (`deploy/maintenance.rs`).
#[derive(Debug, Serialize)]
struct MaintenanceView {
    /// Whether the running lb answers 503 to every request; None when it cannot say (no lb).
    on: Option<bool>,
    /// The switch kept in the state directory, set again in every new HAProxy.
    kept: bool,
    /// Seconds sent as Retry-After while on.
    retry_after: u32,
}

#[derive(Debug, Serialize)]
struct Replicas {
    running: usize,
    total: usize,
}

/// The stack as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum State {
    /// No container or task of the project.
    Stopped,
    /// Every web replica runs and the load balancer routes to each (its servers are UP).
    Running,
    /// Something runs, but not all of it: a replica down, a server not UP, a view unreadable.
    Degraded,
}

impl State {
    fn of(
        up: bool,
        web: &Replicas,
        lb: &View<Vec<Server>>,
        consul: Option<&View<Vec<Instance>>>,
    ) -> Self {
        if !up {
            return State::Stopped;
        }
        let routed = lb
            .value
            .as_ref()
            .is_some_and(|servers| servers.iter().filter(|s| s.is_up()).count() == web.total);
        let consul_ok = consul.is_none_or(|c| c.error.is_none());
        if web.total > 0 && web.running == web.total && routed && consul_ok {
            State::Running
        } else {
            State::Degraded
        }
    }
}

/// A view that may be unreadable (the stack is down, a port is wrong).
#[derive(Debug, Serialize)]
struct View<T> {
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ViewError>,
}

/// Why a view could not be read, as fields a script can branch on.
#[derive(Debug, Serialize)]
struct ViewError {
    kind: ErrorKind,
    /// The HTTP status, for `kind: http_status`.
    #[serde(skip_serializing_if = "Option::is_none")]
    http_status: Option<u16>,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum ErrorKind {
    /// No answer: connection refused, timeout, no route.
    Unreachable,
    /// An answer with an error status.
    HttpStatus,
    /// An answer that could not be read, or no way to ask (no lb container to exec into).
    Unreadable,
}

impl ViewError {
    fn of(err: &anyhow::Error) -> Self {
        let request = err.chain().find_map(|c| c.downcast_ref::<RequestError>());
        let (kind, http_status) = match request {
            Some(RequestError::Status { code, .. }) => (ErrorKind::HttpStatus, Some(*code)),
            Some(RequestError::Unreachable(_)) => (ErrorKind::Unreachable, None),
            None => (ErrorKind::Unreadable, None),
        };
        ViewError {
            kind,
            http_status,
            message: format!("{err:#}"),
        }
    }
}

impl<T> View<T> {
    fn of(url: String, result: anyhow::Result<T>) -> Self {
        match result {
            Ok(value) => View {
                url,
                value: Some(value),
                error: None,
            },
            Err(err) => View {
                url,
                value: None,
                error: Some(ViewError::of(&err)),
            },
        }
    }
}

pub fn run(global: &Global, args: StatusArgs) -> anyhow::Result<ExitStatus> {
    let printer = &global.printer;
    let stack = render::rendered_stack(&global.spec, &args.out, printer)?;
    let plan = &stack.plan;
    let docker = Docker::new(*printer);
    preflight::require_engine(&docker)?;
    let deployment = Deployment::new(&docker, &stack);
    let (containers, details) = deployment.listing()?;
    let file = deployment.file();
    let lb_id = lb_container(&details);
    let haproxy = deployment.haproxy(lb_id.clone());
    let web: Vec<&Container> = details
        .iter()
        .filter(|c| c.service == plan.web.service)
        .collect();
    let up = !containers.is_empty();
    let web = Replicas {
        running: web.iter().filter(|c| c.running).count(),
        total: web.len(),
    };
    let lb = View::of(haproxy.url.clone(), haproxy.fetch());
    let kept = maintenance::kept(&plan.project)?;
    let maintenance = MaintenanceView {
        on: lb_id
            .as_deref()
            .and_then(|lb| maintenance::live(&docker, lb)),
        kept: kept.on,
        retry_after: kept.retry_after,
    };
    let consul = deployment.consul(lb_id).map(|source| {
        View::of(
            source.describe(),
            source.passing(&ServiceQuery::web(&plan.web)),
        )
    });
    let swarm = deployment.fleet()?;
    let mut state = State::of(up, &web, &lb, consul.as_ref());
    if state == State::Running
        && swarm
            .as_ref()
            .is_some_and(|f| !f.lost.is_empty() || f.lbs.iter().any(|l| !l.answered))
    {
        state = State::Degraded;
    }
    let status = Status {
        state,
        swarm,
        project: plan.project.clone(),
        discovery: plan.discovery.to_string(),
        compose_file: file.display().to_string(),
        web,
        lb,
        consul,
        containers,
        maintenance,
        certificate: CertificateView::of(plan),
    };
    if args.json {
        crate::json::print(printer, "status", true, &status)?;
    } else if !up {
        printer.stdout().line(format!(
            "{} is not running: no containers (start it with `provision apply`)",
            plan.project
        ))?;
    } else {
        printer.stdout().text(&to_text(&status, &details))?;
        if plan.lb.tls.is_some() {
            let line = match crate::lb_tls::stored_info(&plan.project) {
                Ok(Some(info)) => info.describe(crate::lb_tls::now()),
                Ok(None) => "certificate: none stored yet (run `provision apply`)".to_owned(),
                Err(err) => format!("certificate: cannot be read: {err:#}"),
            };
            printer.stdout().line(line)?;
        }
    }
    Ok(ExitStatus::Success)
}

fn to_text(status: &Status, details: &[Container]) -> String {
    let mut out = format!(
        "{} ({} discovery, {}), {}\n",
        status.project,
        status.discovery,
        status.state.as_str(),
        status.compose_file
    );
    let rows: Vec<[String; 4]> = status
        .containers
        .iter()
        .map(|c| {
            [
                c.service.clone(),
                c.name.clone(),
                c.state.clone(),
                if c.health.is_empty() {
                    "-".into()
                } else {
                    c.health.clone()
                },
            ]
        })
        .collect();
    if status.containers.iter().any(|c| !c.node.is_empty()) {
        // On a Swarm: the node that runs each task instead of a health column.
        let rows: Vec<[String; 4]> = rows
            .into_iter()
            .zip(&status.containers)
            .map(|([service, name, state, _], c)| [service, name, state, c.node.clone()])
            .collect();
        out.push_str(&table(&["SERVICE", "TASK", "STATE", "NODE"], &rows));
    } else {
        out.push_str(&table(&["SERVICE", "CONTAINER", "STATE", "HEALTH"], &rows));
    }
    out.push_str(&format!(
        "web replicas: {} running of {}\n",
        status.web.running, status.web.total
    ));
    let by_ip: BTreeMap<&str, &Container> = details
        .iter()
        .filter_map(|c| Some((c.ip.as_deref()?, c)))
        .collect();
    match (&status.lb.value, &status.lb.error) {
        (Some(servers), _) => {
            let used: Vec<&Server> = servers.iter().filter(|s| !s.is_unused_slot()).collect();
            let up = used.iter().filter(|s| s.is_up()).count();
            out.push_str(&format!(
                "load balancer: {up} UP of {} servers in backend web ({} free slots)\n",
                used.len(),
                servers.len() - used.len()
            ));
            let rows: Vec<[String; 4]> = used
                .iter()
                .map(|s| {
                    [
                        s.name.clone(),
                        s.addr.clone(),
                        s.status.clone(),
                        by_ip
                            .get(s.ip())
                            .map(|c| c.name.clone())
                            .unwrap_or_else(|| "?".into()),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                out.push_str(&indent(&table(
                    &["SERVER", "ADDRESS", "STATUS", "CONTAINER"],
                    &rows,
                )));
            }
        }
        (None, error) => out.push_str(&format!(
            "load balancer: stats not readable at {}: {}\n",
            status.lb.url,
            error
                .as_ref()
                .map_or("unknown error", |e| e.message.as_str())
        )),
    }
    if let Some(fleet) = &status.swarm {
        out.push_str(&fleet_text(fleet));
    }
    if let Some(consul) = &status.consul {
        match (&consul.value, &consul.error) {
            (Some(instances), _) => {
                let list: Vec<String> = instances
                    .iter()
                    .map(|i| format!("{} ({}:{})", i.id, i.address, i.port))
                    .collect();
                out.push_str(&format!(
                    "consul: {} passing web instance{}{}{}\n",
                    instances.len(),
                    if instances.len() == 1 { "" } else { "s" },
                    if list.is_empty() { "" } else { ": " },
                    list.join(", ")
                ));
            }
            (None, error) => out.push_str(&format!(
                "consul: not readable at {}: {}\n",
                consul.url,
                error
                    .as_ref()
                    .map_or("unknown error", |e| e.message.as_str())
            )),
        }
    }
    let m = &status.maintenance;
    match (m.on, m.kept) {
        (Some(true), _) => out.push_str(&format!(
            "maintenance: ON: the load balancer answers 503 (Retry-After: {}) to every request \
             (`provision maintenance off` serves again)\n",
            m.retry_after
        )),
        (_, true) => out.push_str(
            "maintenance: kept on, but the load balancer is not in maintenance (restarted \
             outside provision?): `provision maintenance on` switches it again\n",
        ),
        _ => {}
    }
    out
}

/// The swarm's part of `status`: each edge lb, then the lost and out-of-service nodes.
fn fleet_text(fleet: &Fleet) -> String {
    let mut out = format!(
        "edge lbs: {} of {} answer\n",
        fleet.lbs.iter().filter(|l| l.answered).count(),
        fleet.lbs.len()
    );
    let rows: Vec<[String; 4]> = fleet
        .lbs
        .iter()
        .map(|l| {
            [
                l.node.clone(),
                l.node_state.clone(),
                l.url.clone(),
                match &l.error {
                    None => "answers".to_owned(),
                    Some(e) => format!("no answer: {e}"),
                },
            ]
        })
        .collect();
    if !rows.is_empty() {
        out.push_str(&indent(&table(&["NODE", "NODE STATE", "URL", "LB"], &rows)));
    }
    for lost in &fleet.lost {
        out.push_str(&format!(
            "node {} is lost ({}{}): ",
            lost.node.hostname,
            lost.node.state,
            if lost.node.reachability.is_empty() {
                String::new()
            } else {
                format!(", manager {}", lost.node.reachability)
            }
        ));
        if lost.tasks.is_empty() {
            out.push_str("none of the stack's tasks ran there\n");
        } else {
            let tasks: Vec<String> = lost
                .tasks
                .iter()
                .map(|t| match &t.now_on {
                    Some(node) => format!("{} now on {node}", t.task),
                    None if t.waits_for_a_node => {
                        format!("{} waits for a node (one consul server per node)", t.task)
                    }
                    None => format!("{} not running elsewhere", t.task),
                })
                .collect();
            out.push_str(&format!("its tasks: {}\n", tasks.join(", ")));
        }
    }
    for n in fleet.nodes.iter().filter(|n| n.is_out_of_service()) {
        out.push_str(&format!(
            "node {} is ready but {} (takes no new tasks)\n",
            n.hostname, n.availability
        ));
    }
    out
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Stopped => "stopped",
            State::Running => "running",
            State::Degraded => "degraded",
        }
    }
}

fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_shows_services_backends_and_consul() {
        let entry = |service: &str, name: &str, state: &str, health: &str| PsEntry {
            id: "x".into(),
            name: name.into(),
            service: service.into(),
            state: state.into(),
            health: health.into(),
            status: String::new(),
            exit_code: 0,
            node: String::new(),
        };
        let server = |name: &str, addr: &str, status: &str| Server {
            backend: "web".into(),
            name: name.into(),
            status: status.into(),
            addr: addr.into(),
            check_status: String::new(),
            counters: Default::default(),
        };
        let status = Status {
            state: State::Degraded,
            project: "hits".into(),
            discovery: "consul-dns".into(),
            compose_file: "/srv/hits/generated/compose.yaml".into(),
            containers: vec![
                entry("consul", "hits-consul-1", "running", "healthy"),
                entry("web", "hits-web-1", "running", "healthy"),
                entry("web", "hits-web-2", "exited", ""),
            ],
            web: Replicas {
                running: 1,
                total: 2,
            },
            lb: View {
                url: "u".into(),
                value: Some(vec![
                    server("web1", "172.20.0.5:5000", "UP"),
                    server("web2", "", "MAINT (resolution)"),
                ]),
                error: None,
            },
            consul: Some(View {
                url: "http://127.0.0.1:8500".into(),
                value: None,
                error: Some(ViewError {
                    kind: ErrorKind::Unreachable,
                    http_status: None,
                    message: "connection refused".into(),
                }),
            }),
            maintenance: MaintenanceView {
                on: Some(true),
                kept: true,
                retry_after: 30,
            },
            swarm: None,
            certificate: None,
        };
        let web1 = Container {
            id: "a".into(),
            short_id: "a".into(),
            name: "hits-web-1".into(),
            project: "hits".into(),
            service: "web".into(),
            number: 1,
            oneoff: false,
            state: "running".into(),
            running: true,
            health: None,
            hostname: "a".into(),
            ip: Some("172.20.0.5".into()),
            started_at: String::new(),
            image: String::new(),
            image_id: String::new(),
            config_label: None,
            restart_key: None,
        };
        insta::assert_snapshot!(to_text(&status, &[web1]), @r"
        hits (consul-dns discovery, degraded), /srv/hits/generated/compose.yaml
        SERVICE  CONTAINER      STATE    HEALTH
        consul   hits-consul-1  running  healthy
        web      hits-web-1     running  healthy
        web      hits-web-2     exited   -
        web replicas: 1 running of 2
        load balancer: 1 UP of 1 servers in backend web (1 free slots)
          SERVER  ADDRESS          STATUS  CONTAINER
          web1    172.20.0.5:5000  UP      hits-web-1
        consul: not readable at http://127.0.0.1:8500: connection refused
        maintenance: ON: the load balancer answers 503 (Retry-After: 30) to every request (`provision maintenance off` serves again)
        ");
    }
}
