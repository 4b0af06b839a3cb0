//! web's entrypoint (consul-dns with several consul servers), driven by Python against two fake
//! consul agents (tests/it/support/py/left_behind.py): a server that answers too late still
//! takes the registration, so the replica that moved away stood twice in consul. That happened
//! in the node-loss e2e when the killed node's server was the Raft leader: while the others
//! elected a new one, they answered the replicas after the entrypoint's 2 s timeout. And a
//! second registration the replica does not remember is removed by its sweep of the catalog.

use std::process::Command;

use serde_json::{json, Value};

use crate::support::fixtures::render_fixture;
use crate::support::harness::external_tool;

#[test]
fn a_replica_that_moved_removes_the_registration_a_slow_server_kept() {
    let Some(python) = external_tool("python3", "web's entrypoint against fake consul agents")
    else {
        return;
    };
    let rendered = render_fixture("swarm-consul-cluster");
    let dir = tempfile::tempdir().unwrap();
    let entrypoint = dir.path().join("entrypoint.py");
    std::fs::write(&entrypoint, &rendered.files["web/entrypoint.py"]).unwrap();
    let driver =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/py/left_behind.py");
    let out = Command::new(python)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(&driver)
        .arg(&entrypoint)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let seen: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    let (slow, other) = ("127.0.0.1", "127.0.0.2");
    let step = |name: &str| {
        seen["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s[0] == name)
            .unwrap_or_else(|| panic!("no step {name}: {seen}\n{stderr}"))[1]
            .clone()
    };
    assert_eq!(step("registered")[slow], json!(["replica-1"]), "{seen}");
    // The slow server took the registration after the replica had moved: twice in consul.
    assert_eq!(
        step("moved")[slow],
        json!(["replica-1"]),
        "{seen}\n{stderr}"
    );
    assert_eq!(
        step("moved")[other],
        json!(["replica-1"]),
        "{seen}\n{stderr}"
    );
    // Once the slow server answers, the registration it kept is gone; the new one stays.
    assert_eq!(step("cleaned")[slow], json!([]), "{seen}\n{stderr}");
    assert_eq!(
        step("cleaned")[other],
        json!(["replica-1"]),
        "{seen}\n{stderr}"
    );
    assert_eq!(seen["agent"], other, "{seen}");
    assert!(
        stderr.contains("removed the registration left on consul server 127.0.0.1"),
        "{stderr}"
    );
    // A move to the server the name picks that timed out: the late registration there is
    // removed once that server answers, and the replica stays on its agent.
    assert_eq!(
        step("spread timed out")[slow],
        json!(["replica-1"]),
        "{seen}\n{stderr}"
    );
    assert_eq!(step("spread cleaned")[slow], json!([]), "{seen}\n{stderr}");
    assert_eq!(
        step("spread cleaned")[other],
        json!(["replica-1"]),
        "{seen}\n{stderr}"
    );
    // A server no longer in consul's DNS is forgotten (it took its registrations with it).
    assert_eq!(step("left"), json!([]), "{seen}");
    // A second registration the replica does not remember stays until the catalog's sweep:
    // then only the agent's is left.
    assert_eq!(
        step("unknown second")[slow],
        json!(["replica-1"]),
        "{seen}\n{stderr}"
    );
    assert_eq!(step("swept")[slow], json!([]), "{seen}\n{stderr}");
    assert_eq!(
        step("swept")[other],
        json!(["replica-1"]),
        "{seen}\n{stderr}"
    );
    assert!(
        stderr.contains("removed a second registration, held by consul server 127.0.0.1"),
        "{stderr}"
    );
}
