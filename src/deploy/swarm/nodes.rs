//! The swarm's nodes as they bear on the stack: which nodes are lost (down, or a manager gone
//! unreachable) or out of service (drained, paused), which of the stack's tasks ran on a lost
//! node and where Swarm started them again, and the lb on each edge node with whether it
//! answers at that node's address. `status` shows it; `verify` turns it into two checks.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::Swarm;
use crate::check::{Check, Numbers, Outcome};
use crate::probe::http;

/// How long one edge lb may take to answer its probe: a dead node's address drops packets, so
/// this bounds what a lost node costs `status` and `verify`.
const LB_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// One node, as `docker node inspect` tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    pub hostname: String,
    /// `ready`, `down`, `unknown`, `disconnected`.
    pub state: String,
    /// `active`, `drain`, `pause`.
    pub availability: String,
    /// The address the node advertises (where its host-mode ports answer).
    pub addr: String,
    pub manager: bool,
    /// A manager's `reachable` / `unreachable`; empty for a worker.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reachability: String,
}

impl Node {
    /// Down, or a manager the others cannot reach: its tasks are as good as gone.
    pub fn is_lost(&self) -> bool {
        self.state != "ready" || self.reachability == "unreachable"
    }

    /// Ready but taking no new tasks (drained or paused).
    pub fn is_out_of_service(&self) -> bool {
        !self.is_lost() && self.availability != "active"
    }
}

/// A task the stack had on a lost node, and where its slot runs now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stranded {
    /// `<project>_web.3`, or `<project>_lb` for a task of a global service.
    pub task: String,
    /// The node that runs its slot now; None while Swarm has not started it elsewhere (a
    /// service pinned to that node, such as redis, or an lb: one per edge node).
    pub now_on: Option<String>,
    /// A server of a consul cluster: one per node, so it waits for its node (or a free one)
    /// by design while the others keep a majority.
    #[serde(skip)]
    pub waits_for_a_node: bool,
}

/// A lost node and the stack's tasks that ran there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LostNode {
    pub node: Node,
    pub tasks: Vec<Stranded>,
}

/// The lb of one edge node and whether it answered at the node's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EdgeLb {
    pub node: String,
    pub node_state: String,
    pub url: String,
    pub answered: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The swarm as the stack sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fleet {
    pub nodes: Vec<Node>,
    pub lost: Vec<LostNode>,
    pub lbs: Vec<EdgeLb>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawNode {
    description: RawDescription,
    status: RawNodeStatus,
    spec: RawNodeSpec,
    #[serde(default)]
    manager_status: Option<RawManagerStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawDescription {
    hostname: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawNodeStatus {
    state: String,
    #[serde(default)]
    addr: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawNodeSpec {
    role: String,
    availability: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawManagerStatus {
    #[serde(default)]
    reachability: String,
    #[serde(default)]
    addr: String,
}

/// Parses `docker node inspect`.
pub fn parse_nodes(json: &str) -> anyhow::Result<Vec<Node>> {
    let raw: Vec<RawNode> =
        serde_json::from_str(json).context("reading `docker node inspect` of the nodes")?;
    let mut nodes: Vec<Node> = raw
        .into_iter()
        .map(|n| {
            let manager = n.spec.role == "manager";
            let (reachability, manager_addr) = n
                .manager_status
                .map(|m| (m.reachability, m.addr))
                .unwrap_or_default();
            // A manager may advertise 0.0.0.0 as its node address; its Raft address is real.
            let addr = if n.status.addr.is_empty() || n.status.addr == "0.0.0.0" {
                manager_addr
                    .rsplit_once(':')
                    .map_or(manager_addr.clone(), |(host, _)| host.to_owned())
            } else {
                n.status.addr
            };
            Node {
                hostname: n.description.hostname,
                state: n.status.state,
                availability: n.spec.availability,
                addr,
                manager,
                reachability,
            }
        })
        .collect();
    nodes.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    Ok(nodes)
}

/// One line of `docker stack ps`: `name|node|desired state|current state`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HistoryRow {
    /// The slot's name: `<project>_web.3`; a global task's `<project>_lb.<node id>`.
    name: String,
    node: String,
    desired_running: bool,
    /// The manager last heard it running (a task on a lost node stays so).
    was_running: bool,
}

fn parse_history(text: &str) -> Vec<HistoryRow> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split('|');
            let name = f.next()?.trim().trim_start_matches("\\_").trim().to_owned();
            let node = f.next()?.trim().to_owned();
            let desired = f.next()?.trim();
            let current = f.next()?.trim();
            Some(HistoryRow {
                name,
                node,
                desired_running: desired.eq_ignore_ascii_case("running"),
                was_running: current.starts_with("Running"),
            })
        })
        .collect()
}

/// The stack's tasks that ran on `node` (lost), each with where its slot runs now.
fn stranded_on(
    node: &str,
    history: &[HistoryRow],
    project: &str,
    consul_cluster: bool,
) -> Vec<Stranded> {
    let global_lb = format!("{project}_lb.");
    let consul_server = format!("{project}_consul.");
    let mut tasks: BTreeMap<String, Option<String>> = BTreeMap::new();
    for row in history.iter().filter(|r| r.node == node && r.was_running) {
        let now_on = history
            .iter()
            // A slot with no node yet (pending) runs nowhere.
            .find(|r| {
                r.name == row.name && r.desired_running && r.node != node && !r.node.is_empty()
            })
            .map(|r| r.node.clone());
        // A global task's name ends in its node's id: say which service it is.
        let name = if row.name.starts_with(&global_lb) {
            format!("{project}_lb")
        } else {
            row.name.clone()
        };
        tasks.insert(name, now_on);
    }
    tasks
        .into_iter()
        .map(|(task, now_on)| Stranded {
            waits_for_a_node: consul_cluster && task.starts_with(&consul_server),
            task,
            now_on,
        })
        .collect()
}

impl Swarm<'_> {
    /// Every node of the swarm.
    pub fn nodes(&self) -> anyhow::Result<Vec<Node>> {
        let ids = self
            .docker
            .call("listing the swarm's nodes", ["node", "ls", "--quiet"])
            .timeout(Duration::from_secs(30))
            .output()?;
        let mut args = vec!["node", "inspect"];
        args.extend(ids.split_whitespace());
        let json = self
            .docker
            .call("inspecting the swarm's nodes", args)
            .timeout(Duration::from_secs(30))
            .output()?;
        parse_nodes(&json)
    }

    /// The nodes, the lost ones with the stack's tasks that ran there, and each edge lb probed
    /// at its node's address.
    pub fn fleet(&self) -> anyhow::Result<Fleet> {
        let nodes = self.nodes()?;
        let history = self
            .docker
            .call(
                format!("listing the task history of stack {}", self.plan.project),
                [
                    "stack",
                    "ps",
                    "--no-trunc",
                    "--format",
                    "{{.Name}}|{{.Node}}|{{.DesiredState}}|{{.CurrentState}}",
                    self.plan.project.as_str(),
                ],
            )
            .timeout(Duration::from_secs(30))
            .output_unchecked()?;
        let history = parse_history(&history.stdout);
        let lost: Vec<LostNode> = nodes
            .iter()
            .filter(|n| n.is_lost())
            .map(|n| LostNode {
                node: n.clone(),
                tasks: stranded_on(
                    &n.hostname,
                    &history,
                    &self.plan.project,
                    self.plan.consul.servers > 1,
                ),
            })
            .collect();
        let by_name: BTreeMap<&str, &Node> =
            nodes.iter().map(|n| (n.hostname.as_str(), n)).collect();
        // The edge nodes: those that run an lb, and the lost ones that ran one (once a node is
        // down, Swarm no longer wants its task running, so the task list has it no more).
        let lb_task = format!("{}_lb", self.plan.project);
        let mut lb_nodes: Vec<&Node> = self
            .tasks()?
            .iter()
            .filter(|t| t.service == "lb")
            .filter_map(|t| by_name.get(t.node.as_str()).copied())
            .collect();
        for l in &lost {
            if l.tasks.iter().any(|t| t.task == lb_task) && !lb_nodes.contains(&&l.node) {
                lb_nodes.push(&l.node);
            }
        }
        lb_nodes.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        lb_nodes.dedup();
        let lbs = lb_nodes
            .into_iter()
            .map(|node| {
                let url = format!(
                    "http://{}:{}{}",
                    node.addr, self.plan.lb.port, self.plan.web.health_path
                );
                // A lost node's address drops packets: not worth a probe's timeout.
                let answer = if node.is_lost() {
                    Err(format!(
                        "not asked: node {} is {}",
                        node.hostname, node.state
                    ))
                } else {
                    http::get_text(&url, LB_PROBE_TIMEOUT).map_err(|e| format!("{e:#}"))
                };
                EdgeLb {
                    node: node.hostname.clone(),
                    node_state: node.state.clone(),
                    answered: answer.is_ok(),
                    error: answer.err(),
                    url,
                }
            })
            .collect();
        Ok(Fleet { nodes, lost, lbs })
    }
}

impl Fleet {
    /// `verify`'s checks of the swarm: `nodes` fails while a task of a lost node has not been
    /// started elsewhere (an lb excepted: one per edge node); `edge lbs` fails unless every lb
    /// on a live node answers, and at least one does.
    pub fn checks(&self) -> Vec<Check> {
        let mut stuck = Vec::new();
        let mut lines = Vec::new();
        for lost in &self.lost {
            let tasks: Vec<String> = lost
                .tasks
                .iter()
                .map(|t| match &t.now_on {
                    Some(node) => format!("{} (now on {node})", t.task),
                    None if t.task.ends_with("_lb") => format!("{} (lost with its node)", t.task),
                    None if t.waits_for_a_node => {
                        format!("{} (waits for a node: one consul server per node)", t.task)
                    }
                    None => {
                        stuck.push(format!("{} of {}", t.task, lost.node.hostname));
                        format!("{} (not started elsewhere)", t.task)
                    }
                })
                .collect();
            lines.push(format!(
                "{} is {}{}: {}",
                lost.node.hostname,
                lost.node.state,
                if lost.node.reachability == "unreachable" {
                    " (manager unreachable)"
                } else {
                    ""
                },
                if tasks.is_empty() {
                    "none of the stack's tasks ran there".to_owned()
                } else {
                    format!("its tasks were {}", tasks.join(", "))
                }
            ));
        }
        for n in self.nodes.iter().filter(|n| n.is_out_of_service()) {
            lines.push(format!(
                "{} is {} (ready, takes no new tasks)",
                n.hostname, n.availability
            ));
        }
        let ready = self.nodes.iter().filter(|n| !n.is_lost()).count();
        let summary = format!("{ready} of {} nodes ready", self.nodes.len());
        let nodes = Check::pass_if(
            "nodes",
            stuck.is_empty(),
            if lines.is_empty() {
                summary
            } else if stuck.is_empty() {
                format!("{summary}; {}", lines.join("; "))
            } else {
                format!(
                    "{summary}; not running anywhere: {}; {}",
                    stuck.join(", "),
                    lines.join("; ")
                )
            },
        )
        .numbers(
            Numbers::default()
                .with("nodes", self.nodes.len())
                .with("ready", ready)
                .with("lost", self.lost.len()),
        );

        let answered = self.lbs.iter().filter(|l| l.answered).count();
        let silent_live: Vec<&EdgeLb> = self
            .lbs
            .iter()
            .filter(|l| !l.answered && l.node_state == "ready")
            .collect();
        let said: Vec<String> = self
            .lbs
            .iter()
            .map(|l| match &l.error {
                None => format!("{} answers ({})", l.node, l.url),
                Some(e) => format!(
                    "{} ({}) does not answer at {}: {e}",
                    l.node, l.node_state, l.url
                ),
            })
            .collect();
        let lbs = if self.lbs.is_empty() {
            Check::new("edge lbs", Outcome::Fail, "no lb task runs on any node")
        } else {
            Check::pass_if(
                "edge lbs",
                answered > 0 && silent_live.is_empty(),
                format!(
                    "{answered} of {} lbs answer: {}",
                    self.lbs.len(),
                    said.join("; ")
                ),
            )
        }
        .numbers(
            Numbers::default()
                .with("lbs", self.lbs.len())
                .with("answered", answered),
        );
        vec![nodes, lbs]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = r#"[
      {"Description":{"Hostname":"n1"},"Status":{"State":"ready","Addr":"0.0.0.0"},
       "Spec":{"Role":"manager","Availability":"active"},
       "ManagerStatus":{"Leader":true,"Reachability":"reachable","Addr":"172.18.0.3:2377"}},
      {"Description":{"Hostname":"n3"},"Status":{"State":"down","Addr":"172.18.0.5"},
       "Spec":{"Role":"worker","Availability":"active"}},
      {"Description":{"Hostname":"n2"},"Status":{"State":"ready","Addr":"172.18.0.4"},
       "Spec":{"Role":"worker","Availability":"drain"}}
    ]"#;

    #[test]
    fn nodes_carry_their_state_and_address() {
        let nodes = parse_nodes(NODES).unwrap();
        let names: Vec<&str> = nodes.iter().map(|n| n.hostname.as_str()).collect();
        assert_eq!(names, ["n1", "n2", "n3"]);
        assert_eq!(
            nodes[0].addr, "172.18.0.3",
            "a manager's 0.0.0.0: its Raft address"
        );
        assert!(!nodes[0].is_lost() && !nodes[0].is_out_of_service());
        assert!(nodes[1].is_out_of_service() && !nodes[1].is_lost());
        assert!(nodes[2].is_lost());
    }

    #[test]
    fn a_lost_nodes_tasks_say_where_they_went() {
        let history = parse_history(
            "p_web.1|n3|Shutdown|Running 2 minutes ago\n\
             \\_ p_web.1|n3|Shutdown|Shutdown 5 minutes ago\n\
             p_web.1|n1|Running|Running 20 seconds ago\n\
             p_redis.1|n3|Shutdown|Running 2 minutes ago\n\
             p_lb.abc123|n3|Running|Running 2 minutes ago\n\
             p_web.2|n1|Running|Running 3 minutes ago\n",
        );
        let stranded = stranded_on("n3", &history, "p", false);
        assert_eq!(
            stranded,
            [
                Stranded {
                    task: "p_lb".into(),
                    now_on: None,
                    waits_for_a_node: false,
                },
                Stranded {
                    task: "p_redis.1".into(),
                    now_on: None,
                    waits_for_a_node: false,
                },
                Stranded {
                    task: "p_web.1".into(),
                    now_on: Some("n1".into()),
                    waits_for_a_node: false,
                },
            ]
        );
        let nodes = parse_nodes(NODES).unwrap();
        let lb = |node: &str, state: &str, answered: bool| EdgeLb {
            node: node.into(),
            node_state: state.into(),
            url: format!("http://{node}:80/health"),
            answered,
            error: (!answered).then(|| "timed out".to_owned()),
        };
        let fleet = Fleet {
            lost: vec![LostNode {
                node: nodes[2].clone(),
                tasks: stranded,
            }],
            nodes,
            lbs: vec![lb("n1", "ready", true), lb("n3", "down", false)],
        };
        let checks = fleet.checks();
        assert_eq!(
            checks[0].outcome,
            Outcome::Fail,
            "redis was not started elsewhere"
        );
        assert_eq!(
            checks[0].message,
            "2 of 3 nodes ready; not running anywhere: p_redis.1 of n3; n3 is down: its tasks \
             were p_lb (lost with its node), p_redis.1 (not started elsewhere), p_web.1 (now on \
             n1); n2 is drain (ready, takes no new tasks)"
        );
        assert_eq!(
            checks[1].outcome,
            Outcome::Pass,
            "the dead node's lb may be silent"
        );
        assert!(checks[1].message.starts_with("1 of 2 lbs answer"));
    }

    #[test]
    fn a_consul_server_waits_for_a_node_and_a_pending_slot_runs_nowhere() {
        // Node n3 lost: its consul server's slot is pending (no node), as Swarm shows it when
        // every other node already runs one.
        let history = parse_history(
            "p_consul.1|n3|Shutdown|Running 2 minutes ago\n\
             p_consul.1||Running|Pending 20 seconds ago\n\
             p_consul.2|n1|Running|Running 3 minutes ago\n",
        );
        let in_cluster = stranded_on("n3", &history, "p", true);
        assert_eq!(in_cluster.len(), 1);
        assert_eq!(in_cluster[0].now_on, None, "pending is not `now on` a node");
        assert!(in_cluster[0].waits_for_a_node);
        let nodes = parse_nodes(NODES).unwrap();
        let fleet = |tasks| Fleet {
            lost: vec![LostNode {
                node: nodes[2].clone(),
                tasks,
            }],
            nodes: nodes.clone(),
            lbs: Vec::new(),
        };
        let checks = fleet(in_cluster).checks();
        assert_eq!(checks[0].outcome, Outcome::Pass, "{}", checks[0].message);
        assert!(checks[0]
            .message
            .contains("p_consul.1 (waits for a node: one consul server per node)"));
        // A single consul (pinned) not running anywhere is stuck.
        let checks = fleet(stranded_on("n3", &history, "p", false)).checks();
        assert_eq!(checks[0].outcome, Outcome::Fail, "{}", checks[0].message);
    }

    #[test]
    fn a_silent_lb_on_a_live_node_fails() {
        let fleet = Fleet {
            nodes: parse_nodes(NODES).unwrap(),
            lost: Vec::new(),
            lbs: vec![EdgeLb {
                node: "n1".into(),
                node_state: "ready".into(),
                url: "u".into(),
                answered: false,
                error: Some("refused".into()),
            }],
        };
        assert_eq!(fleet.checks()[1].outcome, Outcome::Fail);
    }
}
