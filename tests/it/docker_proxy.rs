//! The filter in front of the Docker engine's socket (consul-template mode: registrator's only
//! way to the engine). Its rendered HAProxy configuration runs in Debian's HAProxy (the rig's
//! haproxy image, hardened as compose.yaml runs docker-proxy), in front of this machine's real
//! engine socket, and curl asks through it: registrator's read calls pass, anything else gets
//! 403 and never reaches the engine. registrator itself cannot run here; the calls it makes are
//! cited in blueprints/docker-proxy/haproxy.cfg.j2 (fayrus/registrator v9.0.6).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::engine::{docker, rig_image, start};
use crate::support::fixtures::render_fixture;
use crate::support::harness::run_program;

/// Removes the proxy container however the test ends.
struct Proxy(String);

impl Drop for Proxy {
    fn drop(&mut self) {
        docker(&["rm", "-f", &self.0]);
    }
}

/// `curl` through the proxy's socket: the HTTP status.
fn status(socket: &Path, method: &str, path: &str) -> u16 {
    let url = format!("http://docker{path}");
    let ran = run_program(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "20",
            "--unix-socket",
            &socket.display().to_string(),
            "-X",
            method,
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            if method == "POST" {
                "{\"Image\":\"scratch\"}"
            } else {
                ""
            },
            &url,
        ],
        Duration::from_secs(30),
    );
    ran.stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("curl {method} {path}: {ran}"))
}

#[test]
fn e2e_docker_proxy_passes_registrators_reads_and_refuses_the_rest() {
    let haproxy = rig_image("haproxy:trixie");
    let Some(_engine) = start(std::slice::from_ref(&haproxy)) else {
        return;
    };
    if crate::support::harness::external_tool("curl", "the Docker socket filter").is_none() {
        return;
    }
    let config = render_fixture("consul-template")
        .files
        .get("docker-proxy/haproxy.cfg")
        .expect("consul-template renders docker-proxy/haproxy.cfg")
        .clone();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("haproxy.cfg"), &config).unwrap();
    let socket_dir = dir.path().join("run");
    std::fs::create_dir(&socket_dir).unwrap();
    let name = format!("provision-it-docker-proxy-{}", std::process::id());
    let ran = docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--user",
        "0",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges:true",
        "--read-only",
        "--network",
        "none",
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock",
        "-v",
        &format!("{}:/run/docker-proxy", socket_dir.display()),
        "-v",
        &format!(
            "{}:/etc/haproxy/docker-proxy.cfg:ro",
            dir.path().join("haproxy.cfg").display()
        ),
        "--entrypoint",
        "haproxy",
        &haproxy,
        "-W",
        "-db",
        "-f",
        "/etc/haproxy/docker-proxy.cfg",
    ]);
    ran.expect_success();
    let proxy = Proxy(name);
    let socket = socket_dir.join("docker.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "the proxy never made its socket:\n{}",
            docker(&["logs", &proxy.0])
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let id = docker(&["inspect", "--format", "{{.Id}}", &proxy.0])
        .stdout
        .trim()
        .to_owned();
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();

    // What registrator (and its client library) asks: answered by the engine.
    for path in [
        "/_ping".to_owned(),
        "/version".to_owned(),
        "/containers/json".to_owned(),
        "/v1.41/containers/json?all=1&filters=%7B%22status%22%3A%5B%22running%22%5D%7D".to_owned(),
        format!("/containers/{id}/json"),
        format!("/v1.41/containers/{}/json", &id[..12]),
        format!("/events?since={}&until={until}", until - 5),
    ] {
        assert_eq!(status(&socket, "GET", &path), 200, "GET {path}");
    }

    // Everything else: refused by the filter, never seen by the engine.
    let canary = format!("provision-it-must-not-exist-{}", std::process::id());
    for (method, path) in [
        ("POST", format!("/containers/create?name={canary}")),
        ("POST", format!("/v1.41/containers/create?name={canary}")),
        ("POST", format!("/containers/{id}/exec")),
        ("POST", format!("/containers/{id}/kill")),
        ("DELETE", format!("/containers/{id}")),
        ("PUT", format!("/containers/{id}/archive?path=/tmp")),
        ("GET", format!("/containers/{id}/archive?path=/etc")),
        ("GET", format!("/containers/{id}/logs?stdout=1")),
        ("GET", "/images/json".to_owned()),
        ("GET", "/info".to_owned()),
        ("GET", "/secrets".to_owned()),
        ("GET", "/containers/json/../../images/json".to_owned()),
        ("POST", "/containers/json".to_owned()),
    ] {
        assert_eq!(status(&socket, method, &path), 403, "{method} {path}");
    }
    assert_ne!(
        docker(&["container", "inspect", &canary]).code,
        Some(0),
        "a refused create still created {canary}"
    );
    assert_eq!(
        docker(&["inspect", "--format", "{{.State.Running}}", &proxy.0])
            .stdout
            .trim(),
        "true",
        "the proxy kept running"
    );
}
