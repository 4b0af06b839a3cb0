//! `provision status`: what runs (services, replicas, health), the load balancer's backends from
//! HAProxy's stats, and consul's view when discovery uses it. Informational: exit 0 unless docker
//! itself fails.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cli::StatusArgs;
use crate::commands::Global;
use crate::deploy::Deployment;
use crate::docker::{preflight, Container, Docker, PsEntry};
use crate::printer::Printer;
use crate::probe::converge::lb_container;
use crate::probe::registry::Instance;
use crate::probe::stats::Server;
use crate::{render, ExitStatus};

#[derive(Debug, Serialize)]
struct Status {
    project: String,
    discovery: String,
    compose_file: String,
    containers: Vec<PsEntry>,
    web: Replicas,
    lb: View<Vec<Server>>,
    /// None when discovery uses no registry.
    consul: Option<View<Vec<Instance>>>,
}

#[derive(Debug, Serialize)]
struct Replicas {
    running: usize,
    total: usize,
}

/// A view that may be unreadable (the stack is down, a port is wrong).
#[derive(Debug, Serialize)]
struct View<T> {
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
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
                error: Some(format!("{err:#}")),
            },
        }
    }
}

pub fn run(global: &Global, args: StatusArgs) -> anyhow::Result<ExitStatus> {
    let stack = render::rendered_stack(&global.spec, &args.out, &Printer::detect(global.quiet))?;
    let plan = &stack.plan;
    let docker = Docker::new(Printer::detect(global.quiet));
    preflight::require_engine(&docker)?;
    let deployment = Deployment::new(&docker, &stack);
    let (containers, details) = deployment.listing()?;
    let file = deployment.file();
    let lb = lb_container(&details);
    let haproxy = deployment.haproxy(lb.clone());
    let web: Vec<&Container> = details
        .iter()
        .filter(|c| c.service == plan.web.service)
        .collect();
    let up = !containers.is_empty();
    let status = Status {
        project: plan.project.clone(),
        discovery: plan.discovery.to_string(),
        compose_file: file.display().to_string(),
        web: Replicas {
            running: web.iter().filter(|c| c.running).count(),
            total: web.len(),
        },
        lb: View::of(haproxy.url.clone(), haproxy.fetch()),
        consul: deployment
            .consul(lb)
            .map(|source| View::of(source.describe(), source.passing(&plan.web.service))),
        containers,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else if !up {
        println!(
            "{} is not running: no containers (start it with `provision apply`)",
            plan.project
        );
    } else {
        print!("{}", to_text(&status, &details));
    }
    Ok(ExitStatus::Success)
}

fn to_text(status: &Status, details: &[Container]) -> String {
    let mut out = format!(
        "{} ({} discovery), {}\n",
        status.project, status.discovery, status.compose_file
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
            error.as_deref().unwrap_or("unknown error")
        )),
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
                error.as_deref().unwrap_or("unknown error")
            )),
        }
    }
    out
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
        };
        let status = Status {
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
                error: Some("connection refused".into()),
            }),
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
        hits (consul-dns discovery), /srv/hits/generated/compose.yaml
        SERVICE  CONTAINER      STATE    HEALTH
        consul   hits-consul-1  running  healthy
        web      hits-web-1     running  healthy
        web      hits-web-2     exited   -
        web replicas: 1 running of 2
        load balancer: 1 UP of 1 servers in backend web (1 free slots)
          SERVER  ADDRESS          STATUS  CONTAINER
          web1    172.20.0.5:5000  UP      hits-web-1
        consul: not readable at http://127.0.0.1:8500: connection refused
        ");
    }
}
