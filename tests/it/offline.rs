//! The offline path: `init --offline` (and the offer when no registry answers) and
//! `provision images build`, whose real run is kept to the case where the images exist: it
//! must find them and keep them, fast. (A cold build takes minutes; see docs/offline.md.)

use std::time::{Duration, Instant};

use predicates::prelude::*;

use crate::support::engine::{rig_image, start};
use crate::support::harness::{find_on_path, run_program, Project};

const BASE: &str = "localhost/provision-rig/debian:trixie";
const CONSUL: &str = "localhost/provision-rig/consul:1.8.7";

#[test]
fn init_offline_writes_a_consul_dns_spec_that_renders_on_the_local_images() {
    let p = Project::new();
    p.provision(&["init", "--yes", "--offline", "--project", "hits"])
        .env_remove("PROVISION_RIG_PREFIX")
        .assert()
        .success()
        .stdout(predicate::str::contains("wrote provision.yaml"));
    let text = p.read("provision.yaml");
    assert!(text.contains("project: hits\n"), "{text}");
    assert!(text.contains("\ndiscovery: consul-dns\n"), "{text}");
    assert!(
        text.contains(&format!("\nimages:\n  base: {BASE} ")),
        "{text}"
    );
    assert!(text.contains(&format!("\n  consul: {CONSUL}\n")), "{text}");
    assert!(!text.contains("hashicorp/"), "{text}");

    p.provision(&["render"]).assert().success();
    let compose = p.read("generated/compose.yaml");
    assert!(
        compose.contains(&format!("image: \"{CONSUL}\"")),
        "{compose}"
    );
    assert!(!compose.contains("hashicorp/"), "{compose}");
    let dockerfile = p.read("generated/web/Dockerfile");
    assert!(dockerfile.contains(BASE), "{dockerfile}");
}

#[test]
fn init_offline_with_docker_dns_needs_only_the_base() {
    let p = Project::new();
    p.provision(&["init", "--yes", "--offline", "--discovery", "docker-dns"])
        .env("PROVISION_RIG_PREFIX", "localhost/elsewhere")
        .assert()
        .success();
    let text = p.read("provision.yaml");
    assert!(text.contains("discovery: docker-dns\n"), "{text}");
    assert!(
        text.contains("images:\n  base: localhost/elsewhere/debian:trixie "),
        "{text}"
    );
    assert!(!text.contains("consul: localhost/"), "{text}");
    p.provision(&["render"]).assert().success();
}

#[test]
fn init_offline_refuses_consul_template_and_writes_nothing() {
    let p = Project::new();
    p.provision(&[
        "init",
        "--yes",
        "--offline",
        "--discovery",
        "consul-template",
    ])
    .assert()
    .code(2)
    .stderr(predicate::str::contains(
        "--discovery consul-template needs the registrator and consul-template images",
    ));
    assert!(!p.file("provision.yaml").exists());
    p.provision(&["init", "--offline", "--online"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--online"));
}

/// Whether Docker Hub answers from here, asked independently of provision: Some(true/false),
/// or None without a docker CLI.
fn hub_answers() -> Option<bool> {
    find_on_path("docker")?;
    let ran = run_program(
        "docker",
        &["manifest", "inspect", "debian:trixie-slim"],
        Duration::from_secs(30),
    );
    let said = ran.stderr.to_ascii_lowercase();
    let unreachable = [
        "no such host",
        "dial tcp",
        "i/o timeout",
        "connection refused",
    ]
    .iter()
    .any(|sign| said.contains(sign));
    Some(!unreachable)
}

#[test]
fn init_yes_picks_the_offline_images_only_when_no_registry_answers() {
    let p = Project::new();
    let out = p
        .provision(&["init", "--yes"])
        .env_remove("PROVISION_RIG_PREFIX")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = p.read("provision.yaml");
    let stderr = String::from_utf8_lossy(&out.stderr);
    match hub_answers() {
        Some(false) => {
            assert!(text.contains("discovery: consul-dns\n"), "{text}");
            assert!(text.contains(&format!("  base: {BASE} ")), "{text}");
            assert!(
                stderr.contains("no image registry answers from here"),
                "{stderr}"
            );
            assert!(stderr.contains("--online"), "{stderr}");
        }
        // A registry answers, or docker cannot ask: the public images, as always.
        Some(true) | None => {
            assert!(text.contains("discovery: consul-template\n"), "{text}");
            assert!(!text.contains("provision-rig"), "{text}");
        }
    }
    // --online keeps the public images whatever the network says.
    p.provision(&["init", "--yes", "--force", "--online"])
        .assert()
        .success();
    let text = p.read("provision.yaml");
    assert!(text.contains("discovery: consul-template\n"), "{text}");
    assert!(
        text.contains("# images:\n#   base: debian:trixie-slim"),
        "{text}"
    );
}

#[test]
fn images_build_without_mmdebstrap_is_an_environment_error() {
    let Some(docker) = find_on_path("docker") else {
        crate::support::harness::report_skip("images build without mmdebstrap", "docker not found");
        return;
    };
    // Only docker on PATH, and a prefix under which nothing exists: the base must be made, and
    // mmdebstrap (or root, for a user who is not) is what is missing.
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&docker, bin.path().join("docker")).unwrap();
    let p = Project::new();
    let out = p
        .provision(&["images", "build"])
        .env("PATH", bin.path())
        .env("PROVISION_RIG_PREFIX", "localhost/provision-test-absent")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("Docker daemon") || stderr.contains("preflight") {
        crate::support::harness::report_skip(
            "images build without mmdebstrap",
            "no engine answers",
        );
        return;
    }
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`apt-get install mmdebstrap`") || stderr.contains("must run as root"),
        "{stderr}"
    );
}

#[test]
fn e2e_images_build_keeps_present_images_and_is_fast() {
    let images = [
        rig_image("debian:trixie"),
        rig_image("consul:1.8.7"),
        rig_image("haproxy:trixie"),
    ];
    let Some(_engine) = start(&images) else {
        return;
    };
    // Images made before `provision images build` existed carry no inputs label: this run would
    // rebuild them (minutes, as root), which is not what this test is for.
    for image in &images[1..] {
        let label = crate::support::engine::docker(&[
            "image",
            "inspect",
            "--format",
            "{{index .Config.Labels \"org.provision.images.inputs\"}}",
            image,
        ]);
        if label.stdout.trim().is_empty() || label.stdout.contains("<no value>") {
            crate::support::harness::skip_or_fail(
                "images build keeps present images",
                &format!("{image} was not built by `provision images build` (no inputs label): run it once"),
            );
            return;
        }
    }
    let p = Project::new();
    let started = Instant::now();
    let out = p
        .provision(&["images", "build"])
        .timeout(Duration::from_secs(600))
        .output()
        .unwrap();
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for image in &images {
        assert!(
            stdout.contains(&format!("kept   {image} (present, up to date)")),
            "{image} was not kept:\n{stdout}"
        );
    }
    assert!(
        took < Duration::from_secs(10),
        "keeping present images took {took:?}"
    );
}

#[test]
fn images_build_refuses_a_bad_prefix_before_asking_docker() {
    let p = Project::new();
    p.provision(&["images", "build", "--prefix", "Bad Prefix"])
        .env("PATH", "/nonexistent")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--prefix \"Bad Prefix\": invalid image reference",
        ));
}
