//! End-to-end: the Swarm target loses a node and loses nothing, on the rig of `.ci/swarm-rig.sh`
//! (node1 the manager, node2 and node3 workers). One consul-dns stack, shared by the scenarios
//! below: three consul servers (`consul.servers: 3`, one per node), an lb on two edge nodes
//! (node1, node2), web spread over all three; 100 requests per second from this test's own
//! client (`provision::probe::load`) through node1's lb. Each scenario is its own test, and
//! each starts from the same state (every node Ready and active, 6 web tasks, on the node it
//! kills or drains among others, consul's three servers voters, `verify` passing):
//!
//! - `consul_server_node_killed`: node3's Docker-in-Docker container killed (two web tasks
//!   and a consul server holding registrations on it): failed requests counted and at most
//!   the requests in flight at once, HAProxy takes its servers out within one check interval,
//!   Swarm back to the desired count (both timed); consul keeps a majority, the replicas its
//!   server held are registered and passing on the others, `verify` passes, `verify --scale
//!   8` converges while node3 is down, and the server is a voter again once node3 is back.
//! - `consul_servers_rolling_update`: Swarm replaces the three consul servers one at a time
//!   (`service update --force`): a server that has seen a leader loses it for an election at
//!   most (the replaced leader's), all three are voters at their new addresses after, the lbs
//!   reload HAProxy for the new addresses, and `verify` passes.
//! - `lb_node_killed`: node2 (an lb, web tasks, a consul server) killed: the load through
//!   node1's lb loses at most what was in flight, `status` names node2's lb as not answering
//!   and node2 as lost.
//! - `node_drained`: node3 drained: 0 failed requests, its web tasks move, its consul server
//!   stops (one per node) and the replicas it held register elsewhere, `verify` passes;
//!   `active` again, and the next scale puts new tasks on it.
//!
//! The stack is made by the first scenario that runs and destroyed when the test process
//! exits (`atexit`), so a run of one scenario (a name filter) costs one stack too. The redis
//! scenario runs a stack of its own and destroys the shared one first (see there). The names
//! order a full run (libtest starts tests in name order, and they take the engine lock in that
//! order): the redis scenario last, so the shared stack is made and destroyed once, not twice;
//! the node loss first, on the fresh stack's spread, and each scenario after it on what the
//! one before left where that holds what it needs (the reset redoes only the rest). The order
//! changes no result, only how long a full run takes.
//!
//! A measurement run (bench/README.md) may replace the lb's blueprints to try HAProxy settings:
//! with `PROVISION_E2E_NODES_LB_BLUEPRINTS=<dir>` each file in that directory stands in for the
//! blueprint of its name in `blueprints/lb/` (local blueprint overrides, e.g.
//! `_haproxy-common.j2` or `haproxy.cfg.j2`), and what the settings bound (the failed requests,
//! how soon a dead node's servers are out of HAProxy) is printed instead of asserted; everything
//! else is still checked.
//!
//! Every change to the rig happens under the engine lock and is undone before it is released,
//! also when an assertion fails (`RigGuard`): nodes started again, node3 `active`, all Ready.
//! Skips as e2e_swarm.rs does, and also on a swarm without the rig's three nodes (the rig makes
//! two on a machine with less than 3 GiB of free memory).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use provision::probe::load::{self, FailureKind, LoadOptions, LoadReport};
use serde_json::Value;

use crate::support::deploys::load_line;
use crate::support::engine::{engine_lock, EngineLock};
use crate::support::harness::{report_skip, Project, Ran};

const CHECK: &str = "a Swarm stack losing a node on a real swarm";
const TIMEOUT: Duration = Duration::from_secs(400);
/// Requests per second through the lb, as issue 20's acceptance asks.
const RATE: f64 = 100.0;
const LB_PORT: u16 = 28184;
/// Where node K's published ports appear on this machine (`.ci/swarm-rig.sh`).
const NODE_PORT_STEP: u16 = 100;
/// HAProxy's health check interval (`lb.check_interval`'s default).
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// `lb.server_timeout`: a GET in flight to a node that dies is retried on another replica
/// after this, well within the load client's timeout (`CLIENT_TIMEOUT`).
const SERVER_TIMEOUT: &str = "2s";
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
const NODE1: &str = "provision-swarm-node1";
const NODE2: &str = "provision-swarm-node2";
const NODE3: &str = "provision-swarm-node3";

fn note(msg: impl AsRef<str>) {
    crate::support::engine::note(format!("[nodes] {}", msg.as_ref()));
}

/// docker against the manager.
fn manager(host: &str, args: &[&str]) -> Ran {
    crate::e2e_swarm::docker_on(host, args, Duration::from_secs(60))
}

/// docker against the outer engine (where the nodes are containers).
fn outer(args: &[&str]) -> Ran {
    let mut cmd = assert_cmd::Command::new("docker");
    cmd.env_remove("DOCKER_HOST").args(args);
    Ran::capture(
        format!("docker {}", args.join(" ")),
        None,
        &mut cmd,
        Duration::from_secs(60),
    )
}

/// Polls `f` every 200 ms until it returns Some, or panics after `limit` saying `what`.
fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> (T, f64) {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return (v, started.elapsed().as_secs_f64());
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// node hostname → (state, availability), as the manager sees them.
fn node_states(host: &str) -> BTreeMap<String, (String, String)> {
    let ls = manager(
        host,
        &[
            "node",
            "ls",
            "--format",
            "{{.Hostname}} {{.Status}} {{.Availability}}",
        ],
    );
    ls.stdout
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((
                f.next()?.to_owned(),
                (f.next()?.to_lowercase(), f.next()?.to_lowercase()),
            ))
        })
        .collect()
}

/// Undoes what the scenarios do to the rig: every node container running, node3 active, every
/// node Ready. Runs on drop, so also after a failed assertion.
struct RigGuard {
    host: String,
}

impl RigGuard {
    fn restore(&self) -> f64 {
        let started = Instant::now();
        for node in [NODE1, NODE2, NODE3] {
            let running = outer(&["inspect", "--format", "{{.State.Running}}", node]);
            if running.stdout.trim() == "false" {
                outer(&["start", node]).expect_success();
            }
        }
        let ready = |states: &BTreeMap<String, (String, String)>| {
            [NODE1, NODE2, NODE3]
                .iter()
                .all(|n| states.get(*n).is_some_and(|(s, _)| s == "ready"))
        };
        let _ = wait_for("every node Ready again", TIMEOUT, || {
            ready(&node_states(&self.host)).then_some(())
        });
        if node_states(&self.host)
            .get(NODE3)
            .is_some_and(|(_, a)| a != "active")
        {
            manager(
                &self.host,
                &["node", "update", "--availability", "active", NODE3],
            );
        }
        started.elapsed().as_secs_f64()
    }
}

impl Drop for RigGuard {
    fn drop(&mut self) {
        let seconds = self.restore();
        note(format!(
            "rig restored (every node running, Ready, active) in {seconds:.1} s"
        ));
    }
}

struct Stack {
    project: Project,
    name: String,
    host: String,
}

impl Stack {
    fn run(&self, args: &[&str]) -> Ran {
        crate::e2e_swarm::provision_on(&self.project, &self.host, args, TIMEOUT)
    }

    fn ok(&self, args: &[&str]) -> Ran {
        let ran = self.run(args);
        ran.expect_success();
        ran
    }

    /// web's running tasks: node → one entry per task, its addresses on the stack's networks
    /// (web is on two: the stack's and redis' own, so a task is not an address).
    fn web_by_node(&self) -> BTreeMap<String, Vec<Vec<String>>> {
        let ps = manager(
            &self.host,
            &[
                "service",
                "ps",
                "--filter",
                "desired-state=running",
                "--no-trunc",
                "--quiet",
                &format!("{}_web", self.name),
            ],
        );
        ps.expect_success();
        let ids: Vec<&str> = ps.stdout.split_whitespace().collect();
        let mut args = vec![
            "inspect",
            "--type",
            "task",
            "--format",
            "{{.NodeID}} {{.Status.State}} {{range .NetworksAttachments}}{{range .Addresses}}{{.}} {{end}}{{end}}",
        ];
        args.extend(&ids);
        let inspected = manager(&self.host, &args);
        let names = manager(
            &self.host,
            &["node", "ls", "--format", "{{.ID}} {{.Hostname}}"],
        );
        let names: BTreeMap<&str, &str> = names
            .stdout
            .lines()
            .filter_map(|l| l.split_once(' '))
            .collect();
        let mut by_node: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
        for line in inspected.stdout.lines() {
            let mut f = line.split_whitespace();
            let (Some(node), Some("running")) = (f.next(), f.next()) else {
                continue;
            };
            let node = names.get(node).copied().unwrap_or(node).to_owned();
            // No ingress attachment (dnsrr: no VIPs): the stack's network and redis'.
            let ips = f.map(|cidr| cidr.split('/').next().unwrap_or_default().to_owned());
            by_node.entry(node).or_default().push(ips.collect());
        }
        by_node
    }

    /// Waits until web runs its tasks again, none of them on `node`; the seconds it waited.
    fn wait_for_web_off(&self, node: &str) -> f64 {
        let (_, waited) = wait_for(
            &format!("web's tasks running again off {node}"),
            TIMEOUT,
            || {
                let by_node = self.web_by_node();
                (!by_node.contains_key(node)
                    && by_node.values().map(Vec::len).sum::<usize>() == REPLICAS)
                    .then_some(())
            },
        );
        waited
    }

    /// The lb container on the manager (node1): only its engine is reachable with docker exec.
    fn manager_lb(&self) -> String {
        let ps = manager(
            &self.host,
            &[
                "ps",
                "--quiet",
                "--filter",
                &format!("label=com.docker.swarm.service.name={}_lb", self.name),
            ],
        );
        ps.expect_success();
        ps.stdout
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// HAProxy's web servers in node1's lb that are UP, by address (runtime API).
    fn up_servers(&self, lb: &str) -> Vec<String> {
        let state = manager(
            &self.host,
            &[
                "exec",
                lb,
                "sh",
                "-c",
                "echo 'show servers state web' | socat stdio UNIX-CONNECT:/run/haproxy/admin.sock",
            ],
        );
        // `be_id be_name srv_id srv_name srv_addr srv_op_state ...`; 2 is running (UP).
        state
            .stdout
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() > 5 && f[5] == "2").then(|| f[4].to_owned())
            })
            .collect()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let ran = self.run(&["destroy", "--volumes"]);
        if ran.code != Some(0) {
            note(format!(
                "cleanup: destroy failed, removing the stack by hand\n{ran}"
            ));
            manager(&self.host, &["stack", "rm", &self.name]);
        }
    }
}

fn lb_url(node: u16) -> String {
    format!(
        "http://127.0.0.1:{}/",
        LB_PORT + NODE_PORT_STEP * (node - 1)
    )
}

/// The lb blueprints a measurement run puts in place of the shipped ones: (file name, text).
/// Empty in a normal run.
fn lb_blueprint_overrides() -> Vec<(String, String)> {
    let Ok(dir) = std::env::var("PROVISION_E2E_NODES_LB_BLUEPRINTS") else {
        return Vec::new();
    };
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {dir}: {e}"));
    let mut overrides: Vec<(String, String)> = entries
        .map(|entry| {
            let path = entry
                .unwrap_or_else(|e| panic!("reading {dir}: {e}"))
                .path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            (name, text)
        })
        .collect();
    assert!(!overrides.is_empty(), "{dir} holds no blueprint");
    overrides.sort();
    overrides
}

fn measurement_run() -> bool {
    std::env::var_os("PROVISION_E2E_NODES_LB_BLUEPRINTS").is_some()
}

/// Asserts `ok` about what the HAProxy settings bound, or only says it in a measurement run.
#[track_caller]
fn bounded(ok: bool, what: &str, detail: &dyn std::fmt::Debug) {
    if measurement_run() {
        note(format!(
            "measurement run: {what}: {}",
            if ok { "holds" } else { "DOES NOT HOLD" }
        ));
    } else {
        assert!(ok, "{what}: {detail:?}");
    }
}

#[track_caller]
fn failures_within(ok: bool, what: &str, report: &LoadReport) {
    bounded(ok, what, report);
}

fn start_load() -> load::Load {
    let mut options = LoadOptions::new(lb_url(1), RATE);
    options.timeout = CLIENT_TIMEOUT;
    load::start(options).expect("starting the load")
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {report}"))
}

fn verify_passes(stack: &Stack, args: &[&str]) -> Value {
    let mut all = vec!["verify", "--json"];
    all.extend(args);
    let ran = stack.run(&all);
    let report: Value = serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}\n{ran}"));
    note(format!(
        "verify: nodes: {}; edge lbs: {}",
        check(&report, "nodes")["message"],
        check(&report, "edge lbs")["message"]
    ));
    ran.expect_success();
    report
}

/// The load's line, with its latency: how long requests caught by a kill waited shows there.
fn note_load(what: &str, report: &LoadReport) {
    let latency = report
        .latency
        .as_ref()
        .map(|l| format!("; latency p99 {:.1} ms, max {:.1} ms", l.p99_ms, l.max_ms))
        .unwrap_or_default();
    note(format!("{}{latency}", load_line(what, report)));
}

/// Waits until the manager says `node` is down.
fn wait_until_down(host: &str, node: &str) {
    wait_for(&format!("the manager says {node} is down"), TIMEOUT, || {
        (node_states(host).get(node).map(|(s, _)| s.as_str()) == Some("down")).then_some(())
    });
}

/// Asserts that verify's nodes check says `text` (a node's state).
#[track_caller]
fn assert_nodes_say(report: &Value, text: &str) {
    let message = check(report, "nodes")["message"].as_str().unwrap();
    assert!(message.contains(text), "{report}");
}

/// Kills a node's Docker-in-Docker container: its engine, tasks and addresses vanish at once,
/// as a machine that loses power.
fn kill(node: &str) -> Instant {
    let at = Instant::now();
    outer(&["kill", node]).expect_success();
    at
}

/// Web tasks every scenario starts from.
const REPLICAS: usize = 6;
const STACK_NAME: &str = "provision-e2e-swarm-nodes";

/// The stack the scenarios share: made by the first that runs, destroyed at exit.
static SHARED: Mutex<Option<Stack>> = Mutex::new(None);
static DESTROY_AT_EXIT: Once = Once::new();

/// Destroys the shared stack when the test process exits (libtest returns from main, or exits
/// with 101 after a failure: both run the C library's exit handlers). Every scenario has ended
/// by then, and restored the rig.
extern "C" fn destroy_shared_stack() {
    let _engine = engine_lock();
    let stack = SHARED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    if stack.is_some() {
        note("test process exiting: destroying the shared stack");
    }
    drop(stack);
}

/// What a scenario runs with: the engine held, the rig restored when it ends, and the shared
/// stack in its starting state.
struct Scenario {
    host: String,
    stack: std::sync::MutexGuard<'static, Option<Stack>>,
    // Fields drop in order: the rig is restored before the engine is released.
    rig: RigGuard,
    _engine: EngineLock,
}

impl Scenario {
    /// None after a skip line (no swarm, or not the rig's three nodes). `web_on`: the nodes
    /// the scenario needs web tasks on (the node it kills or drains), see `Stack::reset`.
    fn start(name: &str, web_on: &[&str]) -> Option<Scenario> {
        let host = crate::e2e_swarm::swarm_host_for(CHECK)?;
        let engine = engine_lock();
        // `.ci/swarm-rig.sh up` makes 2 nodes on a machine with less than 3 GiB of free memory:
        // too few to lose one and keep an lb and web on two others.
        let nodes = node_states(&host);
        if ![NODE1, NODE2, NODE3].iter().all(|n| nodes.contains_key(*n)) {
            report_skip(
                CHECK,
                &format!("the swarm has not the rig's three nodes ({NODE1}..3): {nodes:?}"),
            );
            return None;
        }
        note(format!("scenario {name}"));
        let rig = RigGuard { host: host.clone() };
        rig.restore();
        let mut stack = SHARED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if stack.is_none() {
            *stack = Some(Stack::create(&host));
            DESTROY_AT_EXIT.call_once(|| {
                // SAFETY: registers a plain function with no arguments; it runs once at exit.
                let registered = unsafe { libc::atexit(destroy_shared_stack) };
                assert_eq!(registered, 0, "atexit refused the stack's cleanup");
            });
        }
        let scenario = Scenario {
            host,
            stack,
            rig,
            _engine: engine,
        };
        scenario.stack().reset(web_on);
        Some(scenario)
    }

    fn stack(&self) -> &Stack {
        self.stack.as_ref().expect("the shared stack")
    }
}

impl Stack {
    fn create(host: &str) -> Stack {
        let registry =
            std::env::var("PROVISION_SWARM_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into());
        let project = Project::new();
        project.write(
            "provision.yaml",
            &format!(
                "project: {STACK_NAME}\ntarget:\n  kind: swarm\n  registry: {registry}\n  \
                 edge: node.hostname != {NODE3}\ndiscovery: consul-dns\nimages:\n  \
                 base: {registry}/provision-rig/debian:trixie\n  \
                 consul: {registry}/provision-rig/consul:1.8.7\nconsul:\n  servers: 3\n\
                 web:\n  replicas: {REPLICAS}\nlb:\n  port: {LB_PORT}\n  \
                 server_timeout: {SERVER_TIMEOUT}\n"
            ),
        );
        for (name, text) in lb_blueprint_overrides() {
            project.write(&format!("blueprints/lb/{name}"), &text);
            note(format!("measurement run: blueprints/lb/{name} replaced"));
        }
        let stack = Stack {
            project,
            name: STACK_NAME.to_owned(),
            host: host.to_owned(),
        };
        let started = Instant::now();
        stack.ok(&["apply"]);
        note(format!(
            "shared stack applied in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        stack
    }

    /// Back to the scenarios' starting state: 6 web tasks, at least one on each node of
    /// `web_on` (the node a scenario kills or drains must have some to lose), consul's three
    /// servers running, `verify` passing. Swarm moves no running task back to a node that
    /// returned; scaling down and up again places the new ones on the emptiest nodes. When the
    /// count alone is off (the node-loss scenario leaves 8), scaling to 6 is enough: Swarm
    /// removes tasks from the nodes with the most first (swarmkit's replicated orchestrator,
    /// `reconcile`, manager/orchestrator/replicated/services.go). Each round looks again, so
    /// nothing rests on that. Only what a scenario needs is redone: a spread over all three
    /// cost 10–15 s of scaling each time (issue 22: CI time).
    fn reset(&self, web_on: &[&str]) {
        let started = Instant::now();
        let ready = |by_node: &BTreeMap<String, Vec<Vec<String>>>| {
            by_node.values().map(Vec::len).sum::<usize>() == REPLICAS
                && web_on.iter().all(|n| by_node.contains_key(*n))
        };
        for round in 1..=3 {
            let by_node = self.web_by_node();
            if ready(&by_node) {
                break;
            }
            note(format!("reset, round {round}: web is {by_node:?}"));
            if !web_on.iter().all(|n| by_node.contains_key(*n)) {
                self.ok(&["verify", "--scale", "2"]);
            }
            self.ok(&["verify", "--scale", &REPLICAS.to_string()]);
        }
        let (_, _) = wait_for("web's tasks where the scenario needs them", TIMEOUT, || {
            ready(&self.web_by_node()).then_some(())
        });
        wait_for("consul's three servers running, in Raft", TIMEOUT, || {
            (self.consul_servers_running() == 3 && self.raft_whole()).then_some(())
        });
        // A node the scenario before brought back may still be starting its tasks (its lb's
        // health check "starting": a run saw verify fail 1.4 s into a reset that had nothing
        // to scale): wait for verify to pass, then check it once more with its report said.
        wait_for("verify passing", TIMEOUT, || {
            (self.run(&["verify", "--json"]).code == Some(0)).then_some(())
        });
        let report = verify_passes(self, &[]);
        assert_eq!(
            check(&report, "edge lbs")["numbers"]["answered"],
            2,
            "{report}"
        );
        note(format!(
            "stack reset in {:.1} s: web {:?}",
            started.elapsed().as_secs_f64(),
            self.web_by_node()
        ));
    }

    /// consul's server tasks that run.
    fn consul_servers_running(&self) -> usize {
        let ps = manager(
            &self.host,
            &[
                "service",
                "ps",
                "--filter",
                "desired-state=running",
                "--format",
                "{{.CurrentState}}",
                &format!("{}_consul", self.name),
            ],
        );
        ps.stdout
            .lines()
            .filter(|l| l.starts_with("Running"))
            .count()
    }

    /// consul's Raft peers are its three running servers, at their current addresses, with a
    /// leader: a server restarted on a node that came back has a new address, and until the
    /// leader has replaced the old one the cluster tolerates no further loss.
    fn raft_whole(&self) -> bool {
        let Some(consul) = self.consul_on_node1() else {
            return false;
        };
        let peers = self.raft_peers(&consul);
        let servers = manager(
            &self.host,
            &["exec", &consul, "getent", "ahostsv4", "consul"],
        );
        let mut in_dns: Vec<&str> = servers
            .stdout
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        in_dns.sort_unstable();
        in_dns.dedup();
        // `Node  ID  Address  State  Voter  RaftProtocol`, Address `ip:8300`.
        let rows: Vec<Vec<&str>> = peers
            .stdout
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect())
            .filter(|f: &Vec<&str>| f.len() >= 5)
            .collect();
        let mut in_raft: Vec<&str> = rows.iter().filter_map(|f| f[2].split(':').next()).collect();
        in_raft.sort_unstable();
        let leader = rows.iter().filter(|f| f[3] == "leader").count() == 1;
        let voters = rows.iter().all(|f| f[4] == "true");
        leader && voters && in_raft.len() == 3 && in_raft == in_dns
    }

    /// `consul operator raft list-peers` in a consul container, with the master token.
    fn raft_peers(&self, consul: &str) -> Ran {
        manager(
            &self.host,
            &[
                "exec",
                consul,
                "sh",
                "-c",
                "CONSUL_HTTP_TOKEN_FILE=/run/secrets/consul_master_token \
                 consul operator raft list-peers",
            ],
        )
    }

    /// The ids of consul's server containers that run, on every node (as the manager lists
    /// the service's tasks).
    fn consul_containers(&self) -> BTreeSet<String> {
        let ids = manager(
            &self.host,
            &[
                "service",
                "ps",
                "--quiet",
                "--no-trunc",
                "--filter",
                "desired-state=running",
                &format!("{}_consul", self.name),
            ],
        );
        let ids: Vec<&str> = ids.stdout.split_whitespace().collect();
        if ids.is_empty() {
            return BTreeSet::new();
        }
        let mut args = vec![
            "inspect",
            "--format",
            "{{.Status.ContainerStatus.ContainerID}}",
        ];
        args.extend(ids);
        manager(&self.host, &args)
            .stdout
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    fn consul_on_node1(&self) -> Option<String> {
        let ps = manager(
            &self.host,
            &[
                "ps",
                "--quiet",
                "--filter",
                &format!("label=com.docker.swarm.service.name={}_consul", self.name),
            ],
        );
        ps.stdout.split_whitespace().next().map(str::to_owned)
    }

    /// The web registrations in consul's catalog by the server that holds them (passing or
    /// not), asked of node1's consul server with its reader token (the container's own). A
    /// server is named `consul-<node>-<task>` (its host name and its task: the consul
    /// entrypoint); it is counted here as `consul-<node>`, the Swarm node it runs on.
    fn registrations_by_server(&self) -> BTreeMap<String, usize> {
        let Some(consul) = self.consul_on_node1() else {
            return BTreeMap::new();
        };
        let nodes = manager(
            &self.host,
            &[
                "exec", &consul, "consul", "catalog", "nodes", "-service", "web",
            ],
        );
        let mut by_server = BTreeMap::new();
        for line in nodes.stdout.lines().skip(1) {
            if let Some(server) = line.split_whitespace().next() {
                let (on_node, task) = server.rsplit_once('-').unwrap_or_else(|| {
                    panic!("consul server {server:?} is not named <host>-<task>")
                });
                assert_eq!(
                    task.len(),
                    6,
                    "consul server {server:?}: no task in its name"
                );
                *by_server.entry(on_node.to_owned()).or_default() += 1;
            }
        }
        by_server
    }
}

#[test]
fn swarm_node_drained_loses_no_request_and_takes_tasks_again() {
    let Some(scenario) = Scenario::start("node drained", &[NODE3]) else {
        return;
    };
    let (host, stack) = (&scenario.host, scenario.stack());
    let load = start_load();
    std::thread::sleep(Duration::from_secs(1));
    let t = Instant::now();
    manager(host, &["node", "update", "--availability", "drain", NODE3]).expect_success();
    let moved_s = stack.wait_for_web_off(NODE3);
    std::thread::sleep(Duration::from_secs(2));
    let report = load.stop();
    note_load("node drained", &report);
    note(format!(
        "node3 drained: its web tasks ran elsewhere after {moved_s:.1} s"
    ));
    assert!(report.sent > 0);
    failures_within(
        report.failed == 0,
        "no request failed while node3 drained",
        &report,
    );
    assert_eq!(report.not_sent, 0);
    // Its consul server stopped with it (one per node): the replicas it held registered with
    // the other two, which keep a majority; verify's registry check says all are passing.
    let report = verify_passes(stack, &[]);
    assert_nodes_say(&report, &format!("{NODE3} is drain"));
    assert_eq!(stack.consul_servers_running(), 2);
    manager(host, &["node", "update", "--availability", "active", NODE3]).expect_success();
    // Swarm moves no running task back; the next scale places the new ones on the emptiest node.
    verify_passes(stack, &["--scale", "8"]);
    let by_node = stack.web_by_node();
    note(format!(
        "after active and --scale 8: {by_node:?} ({:.1} s)",
        t.elapsed().as_secs_f64()
    ));
    assert_eq!(by_node.get(NODE3).map(Vec::len), Some(2), "{by_node:?}");
    drop(scenario);
}

#[test]
fn swarm_lb_node_killed_the_other_lb_loses_at_most_in_flight() {
    let Some(scenario) = Scenario::start("lb node killed", &[NODE2]) else {
        return;
    };
    let (host, stack) = (&scenario.host, scenario.stack());
    let load = start_load();
    std::thread::sleep(Duration::from_secs(2));
    let killed = kill(NODE2);
    wait_until_down(host, NODE2);
    let down_s = killed.elapsed().as_secs_f64();
    let status = stack.ok(&["status", "--json"]);
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    let text = stack.ok(&["status"]);
    stack.wait_for_web_off(NODE2);
    let back_s = killed.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(2));
    let report = load.stop();
    note_load("lb node killed (load through the other lb)", &report);
    note(format!(
        "node2 killed: the manager said it down after {down_s:.1} s, Swarm ran {REPLICAS} web \
         tasks again after {back_s:.1} s"
    ));
    note(format!("status said:\n{}", text.stdout));
    let dead_lb = status["swarm"]["lbs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["node"] == NODE2)
        .unwrap_or_else(|| panic!("status lists no lb of {NODE2}: {status}"));
    assert_eq!(dead_lb["answered"], false, "{dead_lb}");
    assert!(
        status["swarm"]["lost"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["node"]["hostname"] == NODE2),
        "status does not name {NODE2} as lost: {status}"
    );
    assert!(
        text.stdout.contains(&format!("node {NODE2} is lost")),
        "{text}"
    );
    assert_eq!(status["state"], "degraded", "{status}");
    assert!(report.sent > 0);
    // The goal is 0, and most runs get it; but a request already at one of node2's replicas
    // when the node died gets no answer in time: in one of three runs 4 of 3,034 requests timed
    // out at the client before HAProxy's retry (bench/runs/2026-12-06-losing-a-node.md). What
    // holds every time: no more failed than were in flight at once.
    failures_within(
        report.failed <= report.workers as u64,
        "no more requests through node1's lb failed when node2 died than were in flight at once",
        &report,
    );
    // node2 still down: its lb is said, not failed; web runs elsewhere.
    let report = verify_passes(stack, &[]);
    assert_eq!(
        check(&report, "edge lbs")["numbers"]["answered"],
        1,
        "{report}"
    );
    let back = scenario.rig.restore();
    wait_for("node2's lb answering again", TIMEOUT, || {
        ureq::get(&lb_url(2)).call().ok()
    });
    note(format!("node2 started again and Ready in {back:.1} s"));
    drop(scenario);
}

/// node3 holds two web tasks and a consul server: one kill, under load through node1's lb, is
/// both the loss of a worker (HAProxy takes its servers out, Swarm runs the tasks again, at most
/// the requests in flight fail) and of a consul server holding registrations (consul keeps a
/// majority, the replicas it held register with the others, scaling converges, the server comes
/// back a voter). Until 2026-12-07 these were two scenarios killing the same node the same way
/// (issue 22: CI time); every check of both is here.
#[test]
fn swarm_consul_server_node_killed_loses_at_most_in_flight_discovery_and_scaling_go_on() {
    let Some(scenario) = Scenario::start("worker node with a consul server killed", &[NODE3])
    else {
        return;
    };
    let (host, stack) = (&scenario.host, scenario.stack());
    let server = format!("consul-{NODE3}");
    // Replicas spread over the servers by slot (6 over 3: 2 each), and move to the one their
    // slot picks within 30 s of its start (web's entrypoint): wait until node3's server holds
    // some.
    let (held, _) = wait_for(
        "node3's consul server holding registrations",
        TIMEOUT,
        || {
            let by_server = stack.registrations_by_server();
            by_server.get(&server).copied().filter(|n| *n > 0)
        },
    );
    note(format!(
        "registrations by consul server before: {:?}",
        stack.registrations_by_server()
    ));
    let lb = stack.manager_lb();
    let doomed_tasks = stack.web_by_node().remove(NODE3).unwrap_or_default();
    assert!(!doomed_tasks.is_empty());
    let doomed: Vec<String> = doomed_tasks.iter().flatten().cloned().collect();
    let load = start_load();
    std::thread::sleep(Duration::from_secs(2));
    let killed = kill(NODE3);
    wait_for("HAProxy takes node3's servers out", TIMEOUT, || {
        let up = stack.up_servers(&lb);
        (!up.iter().any(|a| doomed.contains(a))).then_some(())
    });
    let out_s = killed.elapsed().as_secs_f64();
    wait_until_down(host, NODE3);
    let down_s = killed.elapsed().as_secs_f64();
    // Until the manager declares node3 down, Swarm counts its tasks as running, and verify
    // would wait for HAProxy to route them.
    stack.wait_for_web_off(NODE3);
    let back_s = killed.elapsed().as_secs_f64();
    // Every replica that runs is registered and passing on the two servers left, and HAProxy
    // routes them: verify passes (its registry check counts passing instances).
    let (down_report, _) = wait_for("verify passing with node3 down", TIMEOUT, || {
        let ran = stack.run(&["verify", "--json"]);
        let report: Value = serde_json::from_str(&ran.stdout).ok()?;
        let lost = check(&report, "nodes")["numbers"]["lost"].as_u64() == Some(1);
        (ran.code == Some(0) && lost).then_some(report)
    });
    assert_nodes_say(&down_report, &format!("{NODE3} is down"));
    // Two servers left, both voters: consul works, and survives no further loss.
    let raft = check(&down_report, "consul raft");
    note(format!(
        "verify with node3 down: consul raft: {}",
        raft["message"]
    ));
    assert_eq!(raft["numbers"]["live"], 2, "{raft}");
    assert_eq!(raft["numbers"]["tolerates"], 0, "{raft}");
    let verified_s = killed.elapsed().as_secs_f64();
    let report = load.stop();
    note_load("worker node killed (a consul server on it)", &report);
    note(format!(
        "node3 killed: HAProxy had its {} servers out after {out_s:.1} s, the manager said it \
         down after {down_s:.1} s, Swarm ran {REPLICAS} web tasks again after {back_s:.1} s",
        doomed_tasks.len()
    ));
    note(format!(
        "node3 killed with {held} registrations on its consul server: verify passed again \
         after {verified_s:.1} s; by server now: {:?}",
        stack.registrations_by_server()
    ));
    assert!(report.sent > 0);
    failures_within(
        report.failed <= report.workers as u64,
        "no more requests failed than were ever in flight at once",
        &report,
    );
    bounded(
        out_s <= CHECK_INTERVAL.as_secs_f64() + 1.0,
        &format!("HAProxy had node3's servers out within a check interval ({CHECK_INTERVAL:?})"),
        &out_s,
    );
    assert_eq!(stack.consul_servers_running(), 2);
    // Scaling still converges: new replicas register with the two servers left.
    let started = Instant::now();
    let report = verify_passes(stack, &["--scale", "8", "--load", "50"]);
    note(format!(
        "--scale 8 with node3 down: passed in {:.1} s; {}",
        started.elapsed().as_secs_f64(),
        check(&report, "registry")["message"]
    ));
    assert_eq!(
        check(&report, "registry")["numbers"]["passing"],
        8,
        "{report}"
    );
    let status = stack.ok(&["status"]);
    assert!(
        status
            .stdout
            .contains("waits for a node (one consul server per node)"),
        "{status}"
    );
    let back = scenario.rig.restore();
    // Two waits, timed apart: Swarm starting node3's consul task again, then the leader taking
    // the restarted server in as a voter at its new address (CI runs saw 64–81 s in all).
    let (_, running_s) = wait_for("node3's consul server running again", TIMEOUT, || {
        (stack.consul_servers_running() == 3).then_some(())
    });
    let (_, rejoined_s) = wait_for("node3's consul server back in Raft", TIMEOUT, || {
        (stack.consul_servers_running() == 3 && stack.raft_whole()).then_some(())
    });
    note(format!(
        "node3 started again and Ready in {back:.1} s; its consul task ran again {running_s:.1} s \
         later, and the server was a voter at its new address {rejoined_s:.1} s after that"
    ));
    // verify says so too: three live voters, one more loss survived.
    let report = verify_passes(stack, &[]);
    let raft = check(&report, "consul raft");
    assert_eq!(raft["numbers"]["live"], 3, "{raft}");
    assert_eq!(raft["numbers"]["tolerates"], 1, "{raft}");
    drop(scenario);
}

/// Swarm's rolling update of the consul servers (any change to their service: an image, a flag)
/// stops them one at a time, each at once replaced by a server at a new address. Each leaves
/// the cluster as it stops (`leave_on_terminate`), its replacement joins at once, and the
/// update's pause lets the leader make it a voter before the next one stops. Before that (seen
/// on this rig by hand, 2026-12-06): a replacement could not join for 30-60 s, the next stop
/// took the majority, and the update ended with one voter in Raft, and that one gone: consul
/// had no leader again.
/// The longest time without a leader that a consul update may cost: an election, with room
/// for a loaded 2-core machine (the samples are about a second apart).
const LEADER_ELECTION_BOUND: Duration = Duration::from_secs(10);

#[test]
fn swarm_consul_servers_rolling_update_keeps_a_leader() {
    let Some(scenario) = Scenario::start("consul servers' rolling update", &[]) else {
        return;
    };
    let stack = scenario.stack();
    let service = format!("{}_consul", stack.name);
    let before = stack.consul_containers();
    assert_eq!(before.len(), 3, "{before:?}");
    manager(
        &stack.host,
        &["service", "update", "--force", "--detach", &service],
    )
    .expect_success();
    // Until Swarm says the update completed: node1's server, asked for Raft's peers about once
    // a second (more often slowed the update on this 2-core rig). A server that has not joined
    // yet answers "No cluster leader" on its own. One that has seen a leader may lose it only
    // for an election: when the leader itself is replaced it leaves, and the two others elect
    // one (raft_multiplier 1: a 1 s election timeout; a CI run saw 2 samples, 1.1 s apart).
    // Before the fix the cluster had no leader for minutes, and then for good.
    let mut samples = 0;
    let mut led: BTreeSet<String> = BTreeSet::new();
    // Each stretch without a leader, seen by a server that had seen one: (server, from, to).
    let mut leaderless: Vec<(String, f64, f64)> = Vec::new();
    let mut open: Option<(String, f64)> = None;
    let started = Instant::now();
    let (_, update_s) = wait_for("Swarm's update of consul completed", TIMEOUT, || {
        std::thread::sleep(Duration::from_millis(800));
        if let Some(consul) = stack.consul_on_node1() {
            let peers = stack.raft_peers(&consul);
            samples += 1;
            let at = started.elapsed().as_secs_f64();
            if peers.stdout.contains("leader") {
                if let Some((server, from)) = open.take() {
                    leaderless.push((server, from, at));
                }
                led.insert(consul);
            } else if peers.stderr.contains("No cluster leader") && led.contains(&consul) {
                open.get_or_insert((consul, at));
            }
        }
        let state = manager(
            &stack.host,
            &[
                "service",
                "inspect",
                "--format",
                "{{.UpdateStatus.State}}",
                &service,
            ],
        );
        (state.stdout.trim() == "completed").then_some(())
    });
    let (_, whole_s) = wait_for(
        "consul's three servers voters again",
        Duration::from_secs(60),
        || (stack.consul_servers_running() == 3 && stack.raft_whole()).then_some(()),
    );
    if let Some((server, from)) = open.take() {
        leaderless.push((server, from, started.elapsed().as_secs_f64()));
    }
    let after = stack.consul_containers();
    // Each lb found the new servers' addresses and reloaded HAProxy with them
    // (lb/consul-nameservers.sh): without that it would ask only the servers it started with.
    let logs = manager(
        &stack.host,
        &["service", "logs", "--raw", &format!("{}_lb", stack.name)],
    );
    let reloads = logs
        .stderr
        .lines()
        .chain(logs.stdout.lines())
        .filter(|l| l.contains("consul-nameservers: consul servers at"))
        .count();
    note(format!(
        "the lbs reloaded HAProxy {reloads} times for new consul server addresses"
    ));
    assert!(
        reloads >= 2,
        "the two lbs did not follow the new servers\n{logs}"
    );
    let longest = leaderless
        .iter()
        .map(|(_, from, to)| to - from)
        .fold(0.0, f64::max);
    note(format!(
        "Swarm's rolling update of consul's 3 servers: completed in {update_s:.1} s, all three \
         voters at their new addresses {whole_s:.1} s after; node1's server asked {samples} \
         times, {} servers seen with a leader; without a leader after having one: {leaderless:?} \
         (longest {longest:.1} s)",
        led.len()
    ));
    assert!(
        longest <= LEADER_ELECTION_BOUND.as_secs_f64(),
        "consul was without a leader for longer than an election: {leaderless:?}"
    );
    assert!(
        after.is_disjoint(&before) && after.len() == 3,
        "not every server was replaced: {before:?} before, {after:?} after"
    );
    let report = verify_passes(stack, &[]);
    let raft = check(&report, "consul raft");
    assert_eq!(raft["numbers"]["live"], 3, "{raft}");
    drop(scenario);
}

/// The hit counter as node1's lb answers it (a JSON answer), or None while it cannot.
fn hits(port: u16) -> Option<u64> {
    let url = format!("http://127.0.0.1:{port}/");
    let answer = ureq::get(&url)
        .set("Accept", "application/json")
        .timeout(Duration::from_secs(2))
        .call()
        .ok()?;
    let body: Value = serde_json::from_str(&answer.into_string().ok()?).ok()?;
    body["hits"].as_u64()
}

#[test]
fn swarm_worker_node_with_redis_killed_answers_fast_503s_and_the_counter_survives() {
    // redis runs once, pinned with its volume; the rig's redis sits on the manager by default,
    // which the other scenarios never kill. This stack of its own pins redis to node3 (a
    // worker) and kills that node.
    let Some(host) = crate::e2e_swarm::swarm_host_for(CHECK) else {
        return;
    };
    let _engine = engine_lock();
    let nodes = node_states(&host);
    if ![NODE1, NODE2, NODE3].iter().all(|n| nodes.contains_key(*n)) {
        report_skip(
            CHECK,
            &format!("the swarm has not the rig's three nodes ({NODE1}..3): {nodes:?}"),
        );
        return;
    }
    // The shared stack must not live through this test's node loss unwatched: the scenario
    // after it would start from what that loss left. Two CI runs failed that way: stop 28's
    // ("5 passing of 2": killed tasks' registrations passing at addresses Swarm gave new
    // tasks, since fixed by the named check) and this stop's last ("3 of 2 passing": one
    // listed at an address no running replica had, for 120 s; not explained yet). Destroyed
    // here; a scenario after this one would create it again (none does in a full run: the
    // names sort this one last).
    if let Some(shared) = SHARED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take()
    {
        note("destroying the shared stack before killing node3 under a stack of its own");
        drop(shared);
    }
    const PORT: u16 = 28186;
    let registry =
        std::env::var("PROVISION_SWARM_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into());
    let name = "provision-e2e-swarm-redis-node".to_owned();
    let project = Project::new();
    project.write(
        "provision.yaml",
        &format!(
            "project: {name}\ntarget:\n  kind: swarm\n  registry: {registry}\n  \
             edge: node.hostname == {NODE1}\n  placement:\n    \
             redis: node.hostname == {NODE3}\ndiscovery: docker-dns\nimages:\n  \
             base: {registry}/provision-rig/debian:trixie\nweb:\n  replicas: 3\nlb:\n  \
             port: {PORT}\n  server_timeout: {SERVER_TIMEOUT}\n"
        ),
    );
    let rig = RigGuard { host: host.clone() };
    rig.restore();
    let stack = Stack {
        project,
        name,
        host: host.clone(),
    };
    stack.ok(&["apply"]);
    verify_passes(&stack, &[]);
    let before = hits(PORT).expect("the counter answers before the kill");

    let mut options = LoadOptions::new(format!("http://127.0.0.1:{PORT}/"), 50.0);
    options.timeout = CLIENT_TIMEOUT;
    let load_started = Instant::now();
    let load = load::start(options).expect("starting the load");
    std::thread::sleep(Duration::from_secs(2));
    let killed = kill(NODE3);
    let killed_at = killed.duration_since(load_started).as_secs_f64();
    wait_until_down(&host, NODE3);
    let down_s = killed.elapsed().as_secs_f64();
    // While redis is gone: the lb answers, and fast, with an error.
    std::thread::sleep(Duration::from_secs(5));
    let while_down = hits(PORT);
    let restarted = Instant::now();
    rig.restore();
    let (after, back_s) = wait_for("the counter answering again", TIMEOUT, || hits(PORT));
    std::thread::sleep(Duration::from_secs(1));
    let report = load.stop();
    note_load("redis's node killed", &report);
    note(format!(
        "redis's node killed: the manager said it down after {down_s:.1} s; node3 started \
         again {:.1} s after the kill, and the counter answered {back_s:.1} s after that: \
         {before} before, {after} after; failures {:?}, failed p99 of all {:?}",
        restarted.duration_since(killed).as_secs_f64(),
        report.failures,
        report.latency
    ));
    assert_eq!(while_down, None, "the counter answered with its redis gone");
    assert!(report.failed > 0, "no request failed with redis gone");
    // Every failure an answer, 5xx: HAProxy or the app said so at once. Except for requests in
    // flight when the node died: node3 also ran web tasks (3 replicas over 3 nodes), and a
    // request on its way to one of them may end without an answer, as in the worker scenario:
    // at most as many as were ever in flight at once, each sent within the server timeout of
    // the kill (one CI run had one such "Unexpected EOF", sent 0.04 s after the kill, in 14 runs).
    let unanswered = report.failures.connection + report.failures.timeout + report.failures.other;
    assert!(
        unanswered <= report.workers as u64,
        "{unanswered} requests failed without an answer: {report:?}"
    );
    let window = killed_at - 0.5..=killed_at + 2.5;
    for sample in &report.failure_samples {
        if !matches!(sample.kind, FailureKind::Status { .. }) {
            assert!(
                window.contains(&sample.at_secs),
                "a request sent at {:.2} s failed without an answer, outside the kill's \
                 window ({killed_at:.2} s, the load's start as 0): {report:?}",
                sample.at_secs
            );
        }
    }
    assert!(
        report.failures.status.keys().all(|code| *code >= 500),
        "{report:?}"
    );
    // The counter came back with its node and volume: it went on from where it was.
    assert!(
        after > before,
        "the counter restarted: {before} before, {after} after"
    );
    // Swarm replaced the web tasks whose health check failed while redis was gone; the new
    // ones start once it answers again.
    // Each failing verify's failing checks, said once each: what a long wait waited on (a CI
    // run waited 127.7 s here, with nothing to tell why).
    let mut said = BTreeSet::new();
    let waiting = Instant::now();
    let (_, whole_s) = wait_for("verify passing again", TIMEOUT, || {
        let ran = stack.run(&["verify"]);
        if ran.code == Some(0) {
            return Some(());
        }
        let failing: Vec<&str> = ran
            .stdout
            .lines()
            .filter(|l| l.trim_start().starts_with("FAIL"))
            .collect();
        let failing = failing.join(" | ");
        if said.insert(failing.clone()) {
            note(format!(
                "verify failed {:.1} s after node3 was started: {failing}",
                back_s + waiting.elapsed().as_secs_f64()
            ));
        }
        None
    });
    note(format!(
        "verify passed again {:.1} s after node3 was started",
        whole_s + back_s
    ));
    verify_passes(&stack, &[]);
    drop(stack);
    drop(rig);
}
