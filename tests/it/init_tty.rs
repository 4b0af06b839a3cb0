//! `provision init` under a pseudo-terminal (rexpect), as a person at a terminal meets it: each
//! refused answer is told why and asked again, nothing is thrown away at the end, Ctrl-C gives
//! the cursor back, and the spec is written 0644.

use std::process::Command;

use rexpect::session::PtySession;

use crate::support::harness::Project;

/// Answers must arrive well within this; a prompt that never comes fails the test here.
const TIMEOUT_MS: u64 = 20_000;

/// The escape sequence that shows the terminal's cursor (console `Term::show_cursor`).
const SHOW_CURSOR: &str = "\x1b[?25h";

fn spawn(p: &Project, args: &[&str]) -> PtySession {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("provision"));
    cmd.current_dir(p.path())
        .args(args)
        .env_remove("PROVISION_SPEC")
        .env("NO_COLOR", "1")
        .env("TERM", "xterm");
    rexpect::session::spawn_command(cmd, Some(TIMEOUT_MS)).expect("spawn provision in a pty")
}

/// The process's end as "Exited(pid, code)" or "Signaled(...)" (rexpect's nix `WaitStatus`).
fn ended(session: &mut PtySession) -> String {
    let status = session.process().wait().expect("wait for provision");
    format!("{status:?}")
}

fn exited_with(status: &str, code: i32) -> bool {
    status.starts_with("Exited(") && status.ends_with(&format!(", {code})"))
}

#[test]
fn invalid_answers_are_refused_with_the_reason_and_asked_again() {
    let p = Project::new();
    let mut s = spawn(&p, &["-f", "p.yml", "init", "--online"]);
    s.exp_string("Project name").unwrap();
    s.send_line("Bad Name!").unwrap();
    s.exp_string("invalid project name \"Bad Name!\"").unwrap();
    s.exp_string("Project name").unwrap();
    s.send_line("shop").unwrap();

    s.exp_string("Service discovery").unwrap();
    // Down once: consul-dns.
    s.send("\x1b[B").unwrap();
    s.send_line("").unwrap();

    // The range is in the question; a word, zero and 12 (> lb.max_replicas) are each refused.
    s.exp_string("Web replicas to start with (1 to 10)")
        .unwrap();
    s.send_line("abc").unwrap();
    s.exp_string("must be a whole number between 1 and 10, got \"abc\"")
        .unwrap();
    s.send_line("12").unwrap();
    s.exp_string("must be a whole number between 1 and 10, got 12")
        .unwrap();
    s.send_line("0").unwrap();
    s.exp_string("got 0").unwrap();
    s.send_line("4").unwrap();

    s.exp_string("Host port of the load balancer (1 to 65535)")
        .unwrap();
    s.send_line("70000").unwrap();
    s.exp_string("must be a port between 1 and 65535, got 70000")
        .unwrap();
    // The spec's own cross-field rule, checked at the question rather than after the last one.
    s.send_line("8404").unwrap();
    s.exp_string("host port 8404 is already used by lb.stats_port")
        .unwrap();
    s.send_line("9090").unwrap();

    s.exp_string("wrote p.yml").unwrap();
    // The advice keeps -f, and apply (which renders) is the one next step.
    s.exp_string("next: `provision -f p.yml apply`").unwrap();
    s.exp_eof().unwrap();
    let status = ended(&mut s);
    assert!(exited_with(&status, 0), "{status}");

    let text = p.read("p.yml");
    for line in [
        "project: shop\n",
        "discovery: consul-dns\n",
        "  replicas: 4\n",
        "  port: 9090\n",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(p.file("p.yml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o644,
            "the spec is written like generated files"
        );
    }
}

#[test]
fn ctrl_c_in_the_menu_shows_the_cursor_and_writes_nothing() {
    let p = Project::new();
    let mut s = spawn(&p, &["init", "--online"]);
    s.exp_string("Project name").unwrap();
    s.send_line("shop").unwrap();
    s.exp_string("Service discovery").unwrap();
    // The menu is drawn with the cursor hidden; wait until its last item is on screen.
    s.exp_string("docker-dns").unwrap();
    s.send_control('c').unwrap();
    let after = s.exp_eof().unwrap();
    assert!(
        after.contains(SHOW_CURSOR),
        "the cursor must be shown again after Ctrl-C; output after it: {after:?}"
    );
    let status = ended(&mut s);
    assert!(exited_with(&status, 130), "{status}");
    assert!(!p.file("provision.yaml").exists());
}

#[test]
fn ctrl_c_at_a_text_question_exits_130_and_writes_nothing() {
    let p = Project::new();
    let mut s = spawn(&p, &["init", "--online"]);
    s.exp_string("Project name").unwrap();
    s.send_control('c').unwrap();
    let after = s.exp_eof().unwrap();
    assert!(after.contains(SHOW_CURSOR), "{after:?}");
    let status = ended(&mut s);
    assert!(exited_with(&status, 130), "{status}");
    assert!(!p.file("provision.yaml").exists());
}
