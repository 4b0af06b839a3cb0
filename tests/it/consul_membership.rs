//! When a consul server of a cluster (Swarm, `consul.servers` > 1) says it is healthy: its
//! entrypoint (blueprints/consul/entrypoint.sh) writes a file once the server is a voter in
//! Raft's configuration, or at once when no other server is healthy (a new cluster), and the
//! health check stack.yaml gives the service wants that file. Swarm moves a rolling update on,
//! and names the server in DNS, only once it is healthy.
//!
//! Run here with stand-ins for what the script calls: `consul` answers `operator raft
//! list-peers` from a file this test rewrites, records each `join` and otherwise never gets a
//! leader (the rest of the entrypoint waits); `getent` answers the server's own address and
//! the addresses Swarm's DNS would name for `consul`; `hostname` names the container. The
//! loop's 2 s between looks is shortened by replacing its line. The real thing runs in
//! `e2e_swarm_nodes.rs` (`swarm_consul_servers_rolling_update_keeps_a_leader`) with consul
//! 1.8.7, whose `list-peers` columns (Node, ID, Address, State, Voter, RaftProtocol) the
//! stand-in prints.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::fixtures::render_fixture;
use crate::support::harness::{external_tool, repo_root, wait_until, write_executable};

const CHECK: &str = "a consul server is healthy once it counts";
const OWN: &str = "10.0.7.5";

/// The entrypoint with its 2 s between looks made 0.1 s.
fn entrypoint() -> String {
    let script =
        std::fs::read_to_string(repo_root().join("blueprints/consul/entrypoint.sh")).unwrap();
    let line = "      sleep 2";
    assert_eq!(
        script.lines().filter(|l| *l == line).count(),
        1,
        "the entrypoint's loop no longer has the line {line:?}: update this test"
    );
    script.replace(line, "      sleep 0.1")
}

/// The consul service's health check as stack.yaml gives it (a `CMD-SHELL` line, with
/// Swarm's `$$` for a `$`).
fn health_check() -> String {
    let stack = render_fixture("swarm-consul-cluster")
        .files
        .get("stack.yaml")
        .expect("the swarm-consul-cluster fixture renders stack.yaml")
        .clone();
    let doc: serde_yaml::Value = serde_yaml::from_str(&stack).unwrap();
    let test = &doc["services"]["consul"]["healthcheck"]["test"];
    assert_eq!(test[0].as_str(), Some("CMD-SHELL"), "{test:?}");
    test[1].as_str().unwrap().replace("$$", "$")
}

struct Server {
    dir: tempfile::TempDir,
    sh: PathBuf,
    group: Child,
}

impl Server {
    /// The entrypoint started as a cluster's server would be, with Swarm's DNS naming
    /// `others` for `consul`.
    fn start(sh: PathBuf, others: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let bin = dir.path().join("bin");
        let secrets = dir.path().join("secrets");
        std::fs::create_dir(&bin).unwrap();
        std::fs::create_dir(&secrets).unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        for name in [
            "consul_master_token",
            "consul_reader_token",
            "consul_writer_token",
        ] {
            std::fs::write(secrets.join(name), format!("{name}-value\n")).unwrap();
        }
        write_executable(
            &bin.join("consul"),
            &format!(
                "#!/bin/sh\ncase \"$1 $2\" in\n\
                 'agent -server') exec sleep 60 ;;\n\
                 'operator raft') cat {d}/peers 2>/dev/null || {{ echo 'No cluster leader' >&2; exit 1; }} ;;\n\
                 'join consul') echo join >>{d}/joins ;;\n\
                 'catalog datacenters') echo dc1 ;;\n\
                 *) exit 1 ;;\nesac\n"
            ),
        );
        write_executable(&bin.join("hostname"), "#!/bin/sh\necho server-container\n");
        write_executable(
            &bin.join("getent"),
            &format!(
                "#!/bin/sh\ncase \"$1 $2\" in\n\
                 'hosts server-container') echo '{OWN}   server-container' ;;\n\
                 'ahosts consul') cat {d}/addresses; [ -s {d}/addresses ] || exit 2 ;;\n\
                 *) exit 2 ;;\nesac\n"
            ),
        );
        let addresses: String = others
            .iter()
            .flat_map(|a| {
                [
                    format!("{a}       STREAM consul\n"),
                    format!("{a}       DGRAM  \n"),
                ]
            })
            .collect();
        std::fs::write(dir.path().join("addresses"), addresses).unwrap();
        let script = dir.path().join("entrypoint.sh");
        std::fs::write(&script, entrypoint()).unwrap();
        let group = Command::new(&sh)
            .arg(&script)
            .args(["agent", "-server", "-bootstrap-expect", "3"])
            .envs(Server::env(dir.path()))
            .env("PROVISION_SECRETS_DIR", &secrets)
            .env("PROVISION_CONSUL_NODE", "node-id-of-the-swarm-node")
            .env("PROVISION_WRITER_SERVICE", "web")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        Server { dir, sh, group }
    }

    fn env(dir: &Path) -> Vec<(&'static str, String)> {
        vec![
            (
                "PATH",
                format!(
                    "{}:{}",
                    dir.join("bin").display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            ),
            ("TMPDIR", dir.join("tmp").display().to_string()),
        ]
    }

    /// Raft's configuration as this server's `list-peers -stale` shows it; `voter` is this
    /// server's Voter column, None when it is not in the configuration.
    fn set_peers(&self, voter: Option<bool>) {
        let mut text = "Node      ID    Address          State     Voter  RaftProtocol\n\
                        server-1  id-1  10.0.7.2:8300    leader    true   3\n\
                        server-2  id-2  10.0.7.3:8300    follower  true   3\n"
            .to_owned();
        if let Some(voter) = voter {
            text.push_str(&format!(
                "server-3  id-3  {OWN}:8300    follower  {voter}  3\n"
            ));
        }
        let tmp = self.dir.path().join("peers.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(tmp, self.dir.path().join("peers")).unwrap();
    }

    fn joins(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("joins"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// Whether the health check stack.yaml gives the service passes now.
    fn healthy(&self) -> bool {
        Command::new(&self.sh)
            .arg("-c")
            .arg(health_check())
            .envs(Server::env(self.dir.path()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signals the process group this test started; no memory is involved.
        unsafe {
            libc::kill(-(self.group.id() as i32), libc::SIGKILL);
        }
        let _ = self.group.wait();
    }
}

#[test]
fn a_server_joining_a_cluster_is_healthy_only_once_it_is_a_voter() {
    let Some(sh) = external_tool("sh", CHECK) else {
        return;
    };
    // Two servers healthy (a rolling update replaces the third): this one is not in Raft.
    let server = Server::start(sh, &["10.0.7.2", "10.0.7.3"]);
    wait_until("joins while not in Raft's configuration", || {
        server.joins() >= 3
    });
    assert!(!server.healthy(), "healthy before it is in the cluster");

    // Added as a non-voter: it stops joining and is still not healthy.
    server.set_peers(Some(false));
    std::thread::sleep(Duration::from_millis(400));
    let joins = server.joins();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        server.joins(),
        joins,
        "joins again while in Raft's configuration"
    );
    assert!(!server.healthy(), "healthy before it is a voter");

    // Promoted: healthy.
    server.set_peers(Some(true));
    wait_until("healthy once a voter", || server.healthy());
}

#[test]
fn a_server_of_a_new_cluster_is_healthy_before_there_is_a_leader() {
    let Some(sh) = external_tool("sh", CHECK) else {
        return;
    };
    // Swarm's DNS names no server yet (none is healthy): the servers find each other by that
    // name, so each must be healthy before any is a voter.
    let server = Server::start(sh.clone(), &[]);
    wait_until("healthy with no other server healthy", || server.healthy());
    // The same round of the entrypoint's loop writes the file, then joins: on a loaded machine
    // the health check can pass in between (ci-run-22 failed on that), so wait for the join.
    wait_until("a try to join", || server.joins() >= 1);
    drop(server);

    // Its own address alone (another look of Swarm's DNS): the same.
    let server = Server::start(sh, &[OWN]);
    wait_until("healthy with only itself in DNS", || server.healthy());
}
