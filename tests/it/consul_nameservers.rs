//! The lb's `consul-nameservers` (consul-dns with several consul servers, on a swarm), run as
//! generated with stand-ins for what it calls: `getent` answers from a file this test rewrites,
//! `haproxy-reload` records each call and the file HAProxy would read, and the command it hands
//! over to (HAProxy in the image) just waits. Its paths and its interval between looks are
//! moved or shortened by replacing their lines, as `lb_rules.rs` does for `haproxy-reload`.
//!
//! What it must do: write every server's address as HAProxy's first configuration file before
//! HAProxy starts; leave it (and HAProxy) alone while servers only go away; rewrite it and
//! reload HAProxy once when Swarm's DNS names a server it does not list; and end once HAProxy's
//! master has no worker left, since the master exits only when it has no child at all (the loop
//! is one). The stand-in master starts a worker named `haproxy` (a link to `sleep`), as HAProxy's
//! master forks its worker. The real thing runs in `e2e_swarm_nodes.rs`
//! (`swarm_consul_servers_rolling_update_keeps_a_leader`, and every destroy of its stack).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::fixtures::render_fixture;
use crate::support::harness::{external_tool, find_on_path, wait_until, write_executable};

const CHECK: &str = "consul-nameservers follows the consul servers";

/// The script as the swarm-consul-cluster fixture (3 servers) generates it, with its file
/// under `dir`, a tick of 0.04 s and so 0.2 s between looks.
fn script_in(dir: &Path) -> String {
    let script = render_fixture("swarm-consul-cluster")
        .files
        .get("lb/consul-nameservers.sh")
        .expect("the swarm-consul-cluster fixture renders lb/consul-nameservers.sh")
        .clone();
    let mut moved = script.clone();
    for (line, replacement) in [
        (
            "file=/run/haproxy/consul-nameservers.cfg".to_owned(),
            format!("file={}", dir.join("consul-nameservers.cfg").display()),
        ),
        ("tick=1".to_owned(), "tick=0.04".to_owned()),
    ] {
        assert!(
            script.lines().any(|l| l == line),
            "consul-nameservers.sh no longer has the line {line:?}: update this test\n{script}"
        );
        moved = moved.replace(&line, &replacement);
    }
    moved
}

/// `getent ahostsv4 consul` as glibc prints it, one address per line, from `addresses`.
fn set_addresses(dir: &Path, addresses: &[&str]) {
    let lines: String = addresses
        .iter()
        .flat_map(|a| {
            [
                format!("{a}      STREAM consul\n"),
                format!("{a}      DGRAM  \n"),
            ]
        })
        .collect();
    let tmp = dir.join("addresses.new");
    std::fs::write(&tmp, lines).unwrap();
    std::fs::rename(tmp, dir.join("addresses")).unwrap();
}

/// The addresses of the `setenv PROVISION_CONSUL_NS<n>` lines, in order.
fn nameservers(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("consul-nameservers.cfg"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("setenv PROVISION_CONSUL_NS"))
        .filter_map(|rest| rest.split_whitespace().nth(1).map(str::to_owned))
        .collect()
}

fn reloads(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("reloads"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Kills the script's process group (the handed-over command and the looking loop).
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: signals the process group this test started; no memory is involved.
        unsafe {
            libc::kill(-(self.0.id() as i32), libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

#[test]
fn consul_nameservers_writes_the_servers_and_reloads_haproxy_only_for_a_new_one() {
    let Some(sh) = external_tool("sh", CHECK) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let d = dir.path().display();
    write_executable(
        &bin.join("getent"),
        &format!("#!/bin/sh\n[ \"$1 $2\" = \"ahostsv4 consul\" ] || exit 2\ncat {d}/addresses\n"),
    );
    write_executable(
        &bin.join("haproxy-reload"),
        &format!(
            "#!/bin/sh\necho \"$* $(grep -o 'NS[0-9] [0-9.]*' {d}/consul-nameservers.cfg | \
             tr '\\n' ' ')\" >>{d}/reloads\n"
        ),
    );
    // The master: starts its worker, and once that has ended lives on (as HAProxy's master
    // does while it has a child), so that what is left of its children can be looked at.
    let sleep_path = find_on_path("sleep").expect("sleep on PATH");
    std::os::unix::fs::symlink(&sleep_path, bin.join("haproxy")).unwrap();
    write_executable(
        &bin.join("fake-haproxy"),
        &format!(
            "#!/bin/sh\nhaproxy 60 &\necho $! >{d}/worker\necho \"$*\" >{d}/started\n\
             wait\nexec sleep 60\n"
        ),
    );
    let script = dir.path().join("consul-nameservers");
    std::fs::write(&script, script_in(dir.path())).unwrap();
    set_addresses(dir.path(), &["10.0.5.3", "10.0.5.2", "10.0.5.4"]);

    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let child = Command::new(&sh)
        .arg(&script)
        .args(["fake-haproxy", "-f", "the-first-file"])
        .env("PATH", path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let group = Group(child);

    // Before HAProxy starts, the file names the three servers (sorted, one per nameserver).
    wait_until("the handed-over command started", || {
        dir.path().join("started").exists()
    });
    assert_eq!(
        std::fs::read_to_string(dir.path().join("started"))
            .unwrap()
            .trim(),
        "-f the-first-file",
        "the command was not handed its arguments"
    );
    assert_eq!(
        nameservers(dir.path()),
        ["10.0.5.2", "10.0.5.3", "10.0.5.4"]
    );

    // A server gone (its node lost): nothing changes, nothing reloads.
    set_addresses(dir.path(), &["10.0.5.2", "10.0.5.3"]);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        nameservers(dir.path()),
        ["10.0.5.2", "10.0.5.3", "10.0.5.4"]
    );
    assert!(reloads(dir.path()).is_empty(), "{:?}", reloads(dir.path()));

    // It comes back with a new address: the file lists what DNS names now, HAProxy reloads
    // once with it (`--same`: the configuration that runs), and not again while nothing is new.
    set_addresses(dir.path(), &["10.0.5.2", "10.0.5.3", "10.0.5.9"]);
    wait_until("a reload for the new server", || {
        !reloads(dir.path()).is_empty()
    });
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        nameservers(dir.path()),
        ["10.0.5.2", "10.0.5.3", "10.0.5.9"]
    );
    assert_eq!(
        reloads(dir.path()),
        ["--same NS1 10.0.5.2 NS2 10.0.5.3 NS3 10.0.5.9 "],
        "HAProxy must reload once, after the file names the new server"
    );

    // While the worker runs, the loop is the master's other child; once the worker has ended
    // (a soft stop done), the loop ends too, and the master has no child left.
    let master = group.0.id();
    let worker: u32 = std::fs::read_to_string(dir.path().join("worker"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Its living children: one that ended is a zombie until reaped, which HAProxy's master
    // does at once (SIGCHLD) and the stand-in, `sleep` by then, never does.
    let children = || -> Vec<u32> {
        std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .map(|pid| pid.parse().unwrap())
            .filter(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                // `pid (comm) state ...`
                stat.rsplit_once(") ")
                    .is_some_and(|(_, rest)| !rest.starts_with('Z'))
            })
            .collect()
    };
    let before = children();
    assert!(
        before.len() == 2 && before.contains(&worker),
        "the master's children should be its worker ({worker}) and the loop: {before:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(children().len(), 2, "the loop ended while the worker ran");
    // SAFETY: signals the stand-in worker this test started; no memory is involved.
    unsafe {
        libc::kill(worker as i32, libc::SIGTERM);
    }
    wait_until("the master with no child left", || children().is_empty());
    drop(group);
}
