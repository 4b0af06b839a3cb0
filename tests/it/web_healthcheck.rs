//! web's container health check (`web/healthcheck.py`, what Docker and Swarm run), as the
//! swarm-docker-dns fixture renders it, against a local HTTP server whose answer the test sets:
//! 200 is healthy; 503 (the app's "redis does not answer") is healthy only for a replica that
//! has answered 200 before, so a redis outage does not make Swarm replace every web replica,
//! while a new version that never reaches redis is never healthy; any other answer, or none,
//! is unhealthy. The real thing runs in `e2e_swarm_nodes.rs` (redis's node killed).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use crate::support::fixtures::render_fixture;
use crate::support::harness::external_tool;

const CHECK: &str = "web's container health check";

/// Answers every request with the status in `status` (0: closes the connection unanswered).
fn serve(status: Arc<AtomicU16>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let code = status.load(Ordering::SeqCst);
            if code == 0 {
                continue;
            }
            let _ = write!(
                stream,
                "HTTP/1.1 {code} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    port
}

#[test]
fn a_503_is_healthy_only_after_a_200() {
    let Some(python) = external_tool("python3", CHECK) else {
        return;
    };
    let script = render_fixture("swarm-docker-dns")
        .files
        .get("web/healthcheck.py")
        .expect("the fixture renders web/healthcheck.py")
        .clone();
    let status = Arc::new(AtomicU16::new(503));
    let port = serve(status.clone());
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("answered-200");
    let mut moved = String::new();
    let (mut url, mut answered) = (false, false);
    for line in script.lines() {
        if line.starts_with("URL = ") {
            moved.push_str(&format!("URL = \"http://127.0.0.1:{port}/health\"\n"));
            url = true;
        } else if line.starts_with("ANSWERED_200 = ") {
            moved.push_str(&format!(
                "ANSWERED_200 = {:?}\n",
                marker.display().to_string()
            ));
            answered = true;
        } else {
            moved.push_str(line);
            moved.push('\n');
        }
    }
    assert!(
        url && answered,
        "healthcheck.py no longer has its URL and ANSWERED_200 lines: update this test\n{script}"
    );
    let path = dir.path().join("healthcheck.py");
    std::fs::write(&path, moved).unwrap();
    let healthy = |answer: u16| -> bool {
        status.store(answer, Ordering::SeqCst);
        let out = Command::new(&python)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .arg(&path)
            .output()
            .unwrap();
        out.status.success()
    };

    assert!(!healthy(503), "a 503 before any 200 must be unhealthy");
    assert!(!marker.exists());
    assert!(!healthy(500), "a 500 must be unhealthy");
    assert!(healthy(200), "a 200 must be healthy");
    assert!(marker.exists(), "the first 200 leaves its mark");
    assert!(healthy(503), "a 503 after a 200 must be healthy");
    assert!(!healthy(500), "a 500 must be unhealthy, also after a 200");
    assert!(!healthy(404), "a 404 must be unhealthy, also after a 200");
    assert!(!healthy(0), "no answer must be unhealthy, also after a 200");
}
