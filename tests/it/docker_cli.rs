//! The docker commands at their edges, without needing an engine: a daemon that cannot be
//! reached, and no docker at all. Each must fail fast, with exit code 3 (doctor: 1), say what is
//! wrong and what to do, and change nothing.
//!
//! The unreachable daemon is only reached through the docker CLI, so those tests need it on PATH
//! (and skip without it, see `harness::external_tool`); the one without docker runs anywhere.

use std::time::{Duration, Instant};

use predicates::prelude::*;

use crate::support::harness::{external_tool, Project};

const SPEC: &str = "project: edges\ndiscovery: consul-dns\n";

/// Every command that talks to docker, with the exit code it must give when docker is unusable.
const COMMANDS: [(&[&str], i32); 6] = [
    (&["doctor"], 1),
    (&["apply"], 3),
    (&["apply", "--dry-run"], 3),
    (&["verify", "--scale", "2"], 3),
    (&["status"], 3),
    (&["destroy"], 3),
];

#[test]
fn an_unreachable_daemon_fails_every_command_fast() {
    if external_tool("docker", "every command against an unreachable daemon").is_none() {
        return;
    }
    let p = Project::new();
    p.write("provision.yaml", SPEC);
    for (args, code) in COMMANDS {
        let started = Instant::now();
        let out = p
            .provision(args)
            .env("DOCKER_HOST", "unix:///nonexistent/provision-test.sock")
            .timeout(Duration::from_secs(30))
            .assert()
            .code(code)
            // --dry-run must not print commands it could not check.
            .stdout(predicate::str::contains("docker compose").not())
            .get_output()
            .clone();
        let took = started.elapsed();
        // doctor reports on stdout, the others in the error on stderr.
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("cannot reach the Docker daemon"),
            "{args:?}: {text}"
        );
        assert!(
            text.contains("what to do: start the daemon"),
            "{args:?}: {text}"
        );
        assert!(
            took < Duration::from_secs(2),
            "{args:?} took {took:?} to fail"
        );
    }
}

#[test]
fn no_docker_on_path_is_said_plainly() {
    let p = Project::new();
    p.write("provision.yaml", SPEC);
    let empty = p.file("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    for (args, code) in COMMANDS {
        let out = p
            .provision(args)
            .env("PATH", &empty)
            .timeout(Duration::from_secs(30))
            .assert()
            .code(code)
            .get_output()
            .clone();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("docker is not installed or not on PATH"),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn doctor_json_reports_the_failure() {
    if external_tool("docker", "doctor --json against an unreachable daemon").is_none() {
        return;
    }
    let p = Project::new();
    p.write("provision.yaml", SPEC);
    let out = p
        .provision(&["doctor", "--json"])
        .env("DOCKER_HOST", "unix:///nonexistent/provision-test.sock")
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&out).expect("doctor --json is JSON");
    assert_eq!(json["ok"], false);
    let failed: Vec<&str> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "fail")
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["daemon"]);
}
