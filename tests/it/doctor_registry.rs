//! `provision doctor` asks the registry about every image the stack needs and this engine lacks
//! (`docker manifest inspect`: the CLI speaks the Registry HTTP API v2, Docker Hub's token flow
//! included), and says which pinned tag the registry does not have, and which registry does not
//! answer at all.
//!
//! Checked against the swarm rig's registry (`.ci/swarm-rig.sh`, `PROVISION_SWARM_REGISTRY`,
//! 127.0.0.1:5000), which holds `provision-rig/debian:trixie`. Asked as `localhost:<port>/…`, a
//! name this engine has no image under, so the registry, not the engine, answers.

use std::time::Duration;

use crate::support::harness::{external_tool, report_skip, Project};

const CHECK: &str = "doctor against the swarm rig's registry";

/// The rig registry as `localhost:<port>`, or None after a skip line (a failure where the
/// swarm rig is required).
fn rig_registry() -> Option<String> {
    external_tool("docker", CHECK)?;
    let required = std::env::var("PROVISION_SWARM").as_deref() == Ok("require");
    let registry = std::env::var("PROVISION_SWARM_REGISTRY").unwrap_or_default();
    let Some(port) = registry.strip_prefix("127.0.0.1:") else {
        assert!(
            !required,
            "PROVISION_SWARM=require, but PROVISION_SWARM_REGISTRY is {registry:?}, not \
             127.0.0.1:<port> (`.ci/swarm-rig.sh env`)"
        );
        report_skip(
            CHECK,
            "PROVISION_SWARM_REGISTRY is not 127.0.0.1:<port> (`.ci/swarm-rig.sh up` and `env`)",
        );
        return None;
    };
    crate::e2e_swarm::wait_for_the_rig();
    Some(format!("localhost:{port}"))
}

#[test]
fn doctor_names_the_tag_a_registry_lacks_and_the_registry_that_does_not_answer() {
    let Some(registry) = rig_registry() else {
        return;
    };
    let there = format!("{registry}/provision-rig/debian:trixie");
    let missing = format!("{registry}/provision-rig/consul:0.43.0-not-pushed");
    // Port 1 on the loopback: nothing listens, the connection is refused at once.
    let silent = "localhost:1/provision-rig/consul:1.8.7";
    let p = Project::new();
    p.write(
        "provision.yaml",
        &format!(
            "project: doctor-registry\ndiscovery: consul-template\nimages:\n  \
             registrator: {there}\n  consul_template: {missing}\n  consul: {silent}\n"
        ),
    );
    let ran = p.run(&["doctor"], &[], Duration::from_secs(120));
    ran.expect_code(1);
    let line = |needle: &str| {
        ran.stdout
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle}\n{ran}"))
            .to_owned()
    };
    let present = line(&there);
    assert!(
        present.starts_with("ok") && present.contains("will be pulled"),
        "{present}\n{ran}"
    );
    let lacking = line(&missing);
    assert!(
        lacking.starts_with("FAIL")
            && lacking.contains("cannot be pulled")
            && lacking.contains("manifest"),
        "{lacking}\n{ran}"
    );
    assert!(
        ran.stdout
            .contains("set images.consul_template in the spec"),
        "{ran}"
    );
    let unreachable = line("no image registry answers");
    assert!(
        unreachable.starts_with("FAIL")
            && unreachable.contains("localhost:1 (")
            && unreachable.contains(silent),
        "{unreachable}\n{ran}"
    );
}
