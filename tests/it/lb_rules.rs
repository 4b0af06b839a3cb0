//! Three promises of the lb, held with the host's real HAProxy (2.6 on our machines) rather than by
//! reading the files:
//!
//! - `haproxy-reload` with an invalid new file changes nothing: the generated script runs with
//!   its paths moved into a temporary directory, and the live file, the server-state file and
//!   the backup it writes on a reload are as they were;
//! - the `http-in` frontend the blueprints generate answers `X-Provision-Server` only to a
//!   request whose `X-Provision-Probe` is the stack's probe token (a secret file the lb reads;
//!   any other value, or none, learns nothing), never passes the probe header on to the app, and
//!   removes a header of that name the app sets itself: HAProxy runs that frontend, exactly as
//!   generated, in front of a small HTTP server of this test that sets the header;
//! - maintenance mode: the runtime commands `provision maintenance` sends make that frontend
//!   answer 503 with `Retry-After`, and `off` serves again.
//!
//! Without haproxy (or sh) each skips, or fails where every check must run (`harness`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::fixtures::render_fixture;
use crate::support::harness::external_tool;

/// A generated file of the docker-dns fixture (the DNS modes share the lb's files).
fn generated(rel: &str) -> String {
    render_fixture("docker-dns")
        .files
        .get(rel)
        .unwrap_or_else(|| panic!("the docker-dns fixture renders no {rel}"))
        .clone()
}

/// `haproxy-reload` as generated, its paths moved under `dir`.
fn reload_script_in(dir: &Path) -> String {
    let script = generated("lb/haproxy-reload.sh");
    let mut moved = script.clone();
    for (line, path) in [
        ("cfg=/run/haproxy/haproxy.cfg", "haproxy.cfg"),
        ("state=/run/haproxy/server-state", "server-state"),
        ("sock=/run/haproxy/admin.sock", "admin.sock"),
        ("lock=/run/haproxy/reload.lock", "reload.lock"),
    ] {
        assert!(
            script.lines().any(|l| l == line),
            "haproxy-reload.sh no longer has the line {line:?}: update this test\n{script}"
        );
        moved = moved.replace(
            line,
            &format!(
                "{}={}",
                &line[..line.find('=').unwrap()],
                dir.join(path).display()
            ),
        );
    }
    moved
}

const VALID: &str = "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    \
                     timeout server 1s\n\nfrontend in\n    bind 127.0.0.1:8080\n    \
                     default_backend web\n\nbackend web\n    server one 127.0.0.1:1\n";

#[test]
fn haproxy_reload_with_an_invalid_file_changes_nothing() {
    const CHECK: &str = "haproxy-reload refuses an invalid file";
    let (Some(_haproxy), Some(sh)) = (external_tool("haproxy", CHECK), external_tool("sh", CHECK))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("haproxy-reload");
    std::fs::write(&script, reload_script_in(dir.path())).unwrap();
    let live = dir.path().join("haproxy.cfg");
    std::fs::write(&live, VALID).unwrap();
    std::fs::write(dir.path().join("server-state"), "1\n").unwrap();
    let next = dir.path().join("haproxy.cfg.next");
    std::fs::write(&next, format!("{VALID}    no-such-keyword here\n")).unwrap();

    let ran = Command::new(&sh).arg(&script).output().unwrap();
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert_eq!(ran.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the new configuration is invalid") && stderr.contains("nothing changed"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&live).unwrap(),
        VALID,
        "the live file changed"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("server-state")).unwrap(),
        "1\n",
        "the server-state file changed"
    );
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "haproxy-reload",
            "haproxy.cfg",
            "reload.lock",
            "server-state"
        ],
        "files written or left behind (the invalid file must be removed)"
    );

    // The check is HAProxy's, not a refusal of everything: a valid file passes it (and the
    // script goes on to the runtime API, which this directory does not have).
    std::fs::write(&next, VALID).unwrap();
    let ran = Command::new(&sh).arg(&script).output().unwrap();
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(
        !stderr.contains("invalid"),
        "a valid file was refused: {stderr}"
    );
}

/// What the app of `header_rules_*` saw and answers: every request's header names, and a
/// response that sets `X-Provision-Server` itself.
fn spoofing_app() -> (u16, Arc<Mutex<Vec<Vec<String>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut names = Vec::new();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if let Some((name, _)) = line.split_once(':') {
                    names.push(name.to_ascii_lowercase());
                }
                line.clear();
            }
            log.lock().unwrap().push(names);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nX-Provision-Server: set-by-the-app\r\n\
                  Content-Length: 3\r\nConnection: close\r\n\r\nok\n",
            );
        }
    });
    (port, seen)
}

/// The status line and header lines of one GET through HAProxy on `port`.
fn head_of(port: u16) -> Vec<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let head = answer.split("\r\n\r\n").next().unwrap_or_default();
    head.lines().map(str::to_owned).collect()
}

/// The header lines of one GET through HAProxy on `port`, with `extra` header lines.
fn get(port: u16, extra: &str) -> Vec<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: lb\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let head = answer.split("\r\n\r\n").next().unwrap_or_default();
    assert!(head.starts_with("HTTP/1.1 200"), "{answer}");
    head.lines().skip(1).map(str::to_owned).collect()
}

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn header_rules_name_the_server_only_to_a_probe_and_drop_the_apps_own() {
    const CHECK: &str = "the generated http-in frontend under the host's HAProxy";
    let Some(haproxy) = external_tool("haproxy", CHECK) else {
        return;
    };
    let cfg = generated("lb/haproxy.cfg");
    // The frontend exactly as generated, but for the address it binds.
    let frontend: Vec<&str> = cfg
        .lines()
        .skip_while(|l| *l != "frontend http-in")
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(
        frontend.iter().any(|l| l.trim() == "bind :8080"),
        "no `frontend http-in` binding :8080 in the generated haproxy.cfg\n{cfg}"
    );
    let (app_port, seen) = spoofing_app();
    let lb_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The token file where the container has it (/run/secrets), moved into a temporary directory.
    let dir = tempfile::tempdir().unwrap();
    let token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let token_file = dir.path().join("probe_token");
    std::fs::write(&token_file, token).unwrap();
    let frontend = frontend.join("\n");
    assert!(
        frontend.contains("/run/secrets/probe_token"),
        "the frontend does not read the probe token from its secret file\n{frontend}"
    );
    let config = format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    \
         timeout server 5s\n\n{}\n\nbackend web\n    server web-1 127.0.0.1:{app_port}\n",
        frontend
            .replace("bind :8080", &format!("bind 127.0.0.1:{lb_port}"))
            .replace(
                "/run/secrets/probe_token",
                &token_file.display().to_string()
            )
    );
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, &config).unwrap();
    let _running = Haproxy(
        Command::new(haproxy)
            .args(["-db", "-f"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", lb_port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "HAProxy never listened\n{config}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let named = |headers: &[String]| -> Vec<String> {
        headers
            .iter()
            .filter_map(|h| h.split_once(':'))
            .filter(|(name, _)| name.eq_ignore_ascii_case("x-provision-server"))
            .map(|(_, value)| value.trim().to_owned())
            .collect()
    };
    let plain = get(lb_port, "");
    assert_eq!(
        named(&plain),
        Vec::<String>::new(),
        "a client that did not ask sees X-Provision-Server (the app's own must be removed)\n{config}"
    );
    for wrong in ["1", &token[1..], &format!("{token}x"), ""] {
        let guessed = get(lb_port, &format!("X-Provision-Probe: {wrong}\r\n"));
        assert_eq!(
            named(&guessed),
            Vec::<String>::new(),
            "a probe header that is not the token ({wrong:?}) is answered with the server\n{config}"
        );
    }
    let probed = get(lb_port, &format!("X-Provision-Probe: {token}\r\n"));
    assert_eq!(
        named(&probed),
        [format!("web-1 127.0.0.1:{app_port}")],
        "a probe must get HAProxy's answer alone, not the app's\n{config}"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 6, "the app saw {} requests", seen.len());
    assert!(
        seen.iter()
            .flatten()
            .all(|name| name != "x-provision-probe"),
        "the probe header reached the app: {seen:?}"
    );
}

/// Maintenance mode as `provision maintenance` switches it: the generated `global` lines that
/// declare the switch, the generated `http-in` frontend, and the very runtime commands provision
/// sends (`Maintenance::runtime_line`) over the admin socket of the host's HAProxy.
#[test]
fn maintenance_answers_503_with_retry_after_and_off_serves_again() {
    use provision::deploy::maintenance::Maintenance;
    use std::os::unix::net::UnixStream;
    const CHECK: &str = "maintenance mode under the host's HAProxy";
    let Some(haproxy) = external_tool("haproxy", CHECK) else {
        return;
    };
    let cfg = generated("lb/haproxy.cfg");
    let section = |name: &str| -> Vec<String> {
        cfg.lines()
            .skip_while(|l| *l != name)
            .take_while(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let switch: Vec<String> = section("global")
        .into_iter()
        .filter(|l| l.trim_start().starts_with("set-var proc."))
        .collect();
    assert_eq!(
        switch.len(),
        2,
        "the switch is not declared in global\n{cfg}"
    );
    let frontend = section("frontend http-in").join("\n");
    let (app_port, _seen) = spoofing_app();
    let lb_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("admin.sock");
    // The probe token file where the container has it (/run/secrets), moved here.
    let token_file = dir.path().join("probe_token");
    std::fs::write(&token_file, "a-token\n").unwrap();
    let config = format!(
        "global\n    stats socket {} mode 600 level admin\n{}\n\ndefaults\n    mode http\n    \
         timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\n{}\n\nbackend web\n    \
         server web-1 127.0.0.1:{app_port}\n",
        socket.display(),
        switch.join("\n"),
        frontend
            .replace("bind :8080", &format!("bind 127.0.0.1:{lb_port}"))
            .replace("/run/secrets/probe_token", &token_file.display().to_string())
    );
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, &config).unwrap();
    let _running = Haproxy(
        Command::new(haproxy)
            .args(["-db", "-f"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", lb_port)).is_err() || !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "HAProxy never listened\n{config}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let runtime = |line: String| -> String {
        let mut stream = UnixStream::connect(&socket).unwrap();
        writeln!(stream, "{line}").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    assert!(
        head_of(lb_port)[0].starts_with("HTTP/1.1 200"),
        "off at start\n{config}"
    );
    let on = Maintenance {
        on: true,
        retry_after: 42,
    };
    let said = runtime(on.runtime_line());
    assert!(said.trim().is_empty(), "HAProxy refused: {said}");
    let head = head_of(lb_port);
    assert!(head[0].starts_with("HTTP/1.1 503"), "{head:?}");
    assert!(
        head.iter()
            .any(|h| h.eq_ignore_ascii_case("retry-after: 42")),
        "{head:?}"
    );
    let said = runtime(Maintenance { on: false, ..on }.runtime_line());
    assert!(said.trim().is_empty(), "HAProxy refused: {said}");
    assert!(
        head_of(lb_port)[0].starts_with("HTTP/1.1 200"),
        "off serves again"
    );
}
