//! Every `--json` answer against its JSON Schema in docs/schema/ (the envelope of docs/json.md):
//! doctor and status as the built binary prints them without a running stack, their error
//! envelopes, and a verify report serialized by the library itself (the end-to-end tests check
//! real verify reports, with scale and load, through [`assert_valid`]).

use std::time::Duration;

use serde_json::Value;

use crate::support::harness::{external_tool, repo_root, skip_or_fail, Project};
use crate::support::picture::answering_server;
use provision::deploy::scale::ScaleAction;
use provision::probe::load::LoadOptions;
use provision::probe::measure;
use provision::report::{Check, Numbers, Outcome, Report};
use provision::timeline::{self, EventKind};

/// Resolves `envelope.json` and the other schema files from docs/schema/, never the network.
struct SchemaDir;

impl jsonschema::Retrieve for SchemaDir {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri.path().as_str().rsplit('/').next().unwrap_or_default();
        let text = std::fs::read_to_string(repo_root().join("docs/schema").join(name))?;
        Ok(serde_json::from_str(&text)?)
    }
}

fn validator(command: &str) -> jsonschema::Validator {
    let path = repo_root().join(format!("docs/schema/{command}.json"));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    jsonschema::options()
        .with_retriever(SchemaDir)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{} does not compile: {e}", path.display()))
}

/// Parses `text` and checks it against docs/schema/<command>.json; the parsed value.
#[track_caller]
pub(crate) fn assert_valid(command: &str, text: &str) -> Value {
    let value: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"));
    let errors: Vec<String> = validator(command)
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{command}: {errors:#?}\n{text}");
    assert_eq!(value["schema"], 1, "{text}");
    assert_eq!(value["command"], command, "{text}");
    value
}

#[test]
fn every_schema_refuses_what_is_not_its_envelope() {
    for command in ["verify", "status", "doctor", "history"] {
        let v = validator(command);
        for wrong in [
            serde_json::json!({"command": command, "ok": true}),
            serde_json::json!({"schema": 2, "command": command, "ok": false,
                               "error": {"message": "x", "exit_code": 2}}),
            serde_json::json!({"schema": 1, "command": command, "ok": true,
                               "error": {"message": "x", "exit_code": 2}}),
        ] {
            assert!(!v.is_valid(&wrong), "{command} accepted {wrong}");
        }
    }
}

#[test]
fn a_verify_report_matches_its_schema() {
    let checks = vec![
        Check::new("replicas running", Outcome::Pass, "2 of 2 running")
            .numbers(Numbers::default().with("running", 2).with("total", 2)),
        Check::new("replicas answered", Outcome::Fail, "1 of 2 answered").numbers(
            Numbers::default().with("answers_per_replica", serde_json::json!({"web-1": 20})),
        ),
        Check::new(
            "registry",
            Outcome::Skip,
            "docker-dns discovery has no registry",
        ),
    ];
    let mut scale = ScaleAction::new(1, 2);
    scale.seconds = 2.5;
    scale.batches = 1;
    let report = Report::new(
        "hits",
        "docker-dns",
        2,
        Some(scale),
        checks,
        Duration::from_secs(3),
    );
    let value = assert_valid("verify", &report.to_json());
    assert_eq!(value["ok"], false);
    assert_eq!(value["passed"], false);
}

/// A verify report with a real --load run and its timeline (per-second series, an event).
#[test]
fn a_verify_report_with_load_and_timeline_matches_its_schema() {
    let mut options = LoadOptions::new(answering_server(), 40.0);
    options.header = Some("X-Provision-Server".into());
    let measuring = measure::start(options, None, "web", None).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    timeline::mark(EventKind::BatchStarted, "web 1 -> 2");
    std::thread::sleep(Duration::from_millis(700));
    let (load, seen) = measuring.stop();
    assert_eq!(load.failed, 0, "{load:#?}");
    let mut report = Report::new(
        "hits",
        "docker-dns",
        1,
        None,
        vec![load.check()],
        Duration::from_secs(2),
    );
    report.load = Some(load);
    report.timeline = Some(seen);
    let value = assert_valid("verify", &report.to_json());
    let seconds = value["load"]["per_second"].as_array().expect("per_second");
    assert_eq!(seconds.len(), 2, "{seconds:?}");
    assert!(seconds
        .iter()
        .all(|s| s["sent"].as_u64() > Some(0) && s["answering"] == 1));
    let events = value["timeline"]["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["kind"], "batch_started");
    let at = events[0]["at_secs"].as_f64().unwrap();
    assert!((0.5..1.0).contains(&at), "the event at {at} s");
}

#[test]
fn errors_with_json_still_answer_an_envelope_on_stdout() {
    // No spec here: every command fails before it needs an engine (exit 2).
    let p = Project::new();
    for command in ["verify", "status", "doctor", "history"] {
        let spec = if command == "doctor" {
            // doctor without a spec is fine; a broken one is the error.
            p.write("broken.yaml", "project: [\n");
            "broken.yaml"
        } else {
            "missing.yaml"
        };
        let out = p
            .provision(&["-f", spec, command, "--json"])
            .assert()
            .code(2)
            .get_output()
            .clone();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let value = assert_valid(command, &stdout);
        assert_eq!(value["ok"], false);
        assert_eq!(value["error"]["exit_code"], 2);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let message = value["error"]["message"].as_str().unwrap();
        assert!(stderr.contains(message), "{stderr}\nvs {message}");
    }
}

#[test]
fn doctor_json_matches_its_schema() {
    if external_tool("docker", "doctor --json against its schema").is_none() {
        return;
    }
    let p = Project::new();
    // An unreachable daemon: a failing report (exit 1), still an envelope.
    let out = p
        .provision(&["doctor", "--json"])
        .env("DOCKER_HOST", "unix:///nonexistent/provision-test.sock")
        .assert()
        .code(1)
        .get_output()
        .clone();
    let value = assert_valid("doctor", &String::from_utf8_lossy(&out.stdout));
    assert_eq!(value["ok"], false);
    // The engine docker talks to, whatever it finds.
    let ran = p.run(&["doctor", "--json"], &[], Duration::from_secs(120));
    let value = assert_valid("doctor", &ran.stdout);
    assert_eq!(value["ok"], ran.code == Some(0), "{ran}");
}

#[test]
fn status_json_against_no_stack_matches_its_schema() {
    if external_tool("docker", "status --json against its schema").is_none() {
        return;
    }
    let p = Project::new();
    p.write(
        "provision.yaml",
        &format!(
            "project: schema-{}\ndiscovery: consul-dns\n",
            std::process::id()
        ),
    );
    p.provision(&["render", "-q"]).assert().success();
    let ran = p.run(&["status", "--json"], &[], Duration::from_secs(60));
    if ran.code == Some(3) {
        skip_or_fail(
            "status --json against its schema",
            "no Docker engine answers",
        );
        return;
    }
    ran.expect_success();
    let value = assert_valid("status", &ran.stdout);
    assert_eq!(value["state"], "stopped", "{ran}");
    // HAProxy is read through its runtime API in the lb container (the stats page wants a
    // password): with no lb container there is no way to ask (docs/json.md: `unreadable`).
    assert_eq!(value["lb"]["error"]["kind"], "unreadable", "{ran}");
    // consul too is asked from inside the lb container (its port is not published).
    assert_eq!(value["consul"]["error"]["kind"], "unreadable", "{ran}");
}

#[test]
fn history_json_matches_its_schema_with_and_without_releases() {
    use provision::releases::{NewRelease, Origin, ReleaseImage, Releases};
    let p = Project::new();
    p.write("provision.yaml", "project: hist\n");
    let state = p.path().join("state");
    let state_env = state.display().to_string();
    let history = |p: &Project| {
        let ran = p.run(
            &["history", "--json"],
            &[("XDG_STATE_HOME", state_env.as_str())],
            Duration::from_secs(30),
        );
        assert_eq!(ran.code, Some(0), "{ran}");
        assert_valid("history", &ran.stdout)
    };
    let empty = history(&p);
    assert_eq!(empty["releases"], serde_json::json!([]));
    assert_eq!(empty["keep_releases"], 5);
    // Two releases as apply and rollback write them.
    p.write("generated/compose.yaml", "services: {}\n");
    p.write("generated/.provision-manifest", "0  compose.yaml\n");
    let releases = Releases::at(&state.join("provision/hist"));
    for origin in [Origin::Apply, Origin::Rollback { to: 1 }] {
        releases
            .record(NewRelease {
                origin,
                changes: vec!["web: replaced rolling".into()],
                images: vec![ReleaseImage {
                    service: "web".into(),
                    reference: "hist-web:0123456789ab".into(),
                    id: None,
                    built: true,
                }],
                spec_text: "project: hist\n",
                files: &p.path().join("generated"),
                target: "compose",
            })
            .unwrap();
    }
    let two = history(&p);
    assert_eq!(two["releases"][0]["id"], 1);
    assert_eq!(
        two["releases"][1]["origin"],
        serde_json::json!({"kind": "rollback", "to": 1})
    );
}
