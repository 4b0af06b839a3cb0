//! The built binary's behaviour at its edges: init both ways, bad specs, exit codes.

use predicates::prelude::*;

use crate::support::harness::Project;

#[test]
fn init_yes_writes_a_spec_that_loads() {
    let p = Project::new();
    // --online: the public images, even on a machine no registry answers (offline.rs tests
    // what init picks there by itself).
    p.provision(&[
        "init",
        "--yes",
        "--online",
        "--project",
        "shop",
        "--replicas",
        "3",
    ])
    .assert()
    .success()
    .stdout(predicate::str::contains("wrote provision.yaml"));
    let text = p.read("provision.yaml");
    assert!(text.contains("project: shop\n"), "{text}");
    assert!(text.contains("  replicas: 3\n"), "{text}");
    assert!(text.contains("discovery: consul-template\n"), "{text}");
}

#[test]
fn init_without_a_terminal_refuses_instead_of_guessing() {
    // No --yes and stdin is not a terminal (`echo myproj | provision init`): the answer piped in
    // would be ignored, so init says so and writes nothing; it must not wait either.
    let p = Project::new();
    p.provision(&["init"])
        .write_stdin("myproj\n")
        .timeout(std::time::Duration::from_secs(20))
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("stdin is not a terminal")
                .and(predicate::str::contains("pass --yes")),
        );
    assert!(!p.file("provision.yaml").exists());
}

#[test]
fn init_flags_are_checked_by_the_spec_rules_and_named_as_flags() {
    let p = Project::new();
    p.provision(&[
        "init",
        "--yes",
        "--replicas",
        "12",
        "--discovery",
        "consul-dns",
        "--lb-port",
        "8404",
    ])
    .assert()
    .code(2)
    .stderr(
        predicate::str::contains("--replicas: must be between 1 and lb.max_replicas (10), got 12")
            .and(predicate::str::contains(
                "--lb-port: host port 8404 is already used by lb.stats_port",
            ))
            // Not the lines of a file that was never written.
            .and(predicate::str::contains("provision.yaml:").not()),
    );
    assert!(!p.file("provision.yaml").exists());
}

#[test]
fn init_number_flags_speak_like_the_spec() {
    let p = Project::new();
    p.provision(&["init", "--yes", "--replicas", "abc"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--replicas <N>': must be a whole number, got \"abc\"",
        ));
    p.provision(&["init", "--yes", "--lb-port", "70000"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--lb-port <PORT>': must be a port between 1 and 65535, got 70000",
        ));
    assert!(!p.file("provision.yaml").exists());
}

#[test]
fn init_into_a_missing_directory_is_a_usage_error() {
    let p = Project::new();
    p.provision(&["-f", "nowhere/p.yml", "init", "--yes"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "cannot write nowhere/p.yml: directory nowhere does not exist",
        ));
}

#[test]
fn init_writes_0644_and_its_advice_keeps_the_spec_flag() {
    let p = Project::new();
    p.write("stacks/.keep", "");
    // --online: the hint for the public images, whatever registry this machine reaches (with
    // none, init would choose the offline images and say to build them first).
    p.provision(&["-f", "stacks/p.yml", "init", "--yes", "--online"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "next: `provision -f stacks/p.yml apply`",
        ))
        .stderr(predicate::str::contains("render").not());
    p.provision(&["init", "--yes", "--online"])
        .assert()
        .success()
        .stderr(predicate::str::contains("next: `provision apply`"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for spec in ["stacks/p.yml", "provision.yaml"] {
            let mode = std::fs::metadata(p.file(spec))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o644, "{spec}");
        }
    }
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let p = Project::new();
    p.write("provision.yaml", "project: mine\n# my edits\n");
    p.provision(&["init", "--yes"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "provision.yaml already exists; pass --force",
        ));
    assert_eq!(p.read("provision.yaml"), "project: mine\n# my edits\n");

    p.provision(&["init", "--yes", "--force", "--project", "other"])
        .assert()
        .success();
    assert!(p.read("provision.yaml").contains("project: other\n"));
}

#[test]
fn init_rejects_a_bad_project_name_and_writes_nothing() {
    let p = Project::new();
    p.provision(&["init", "--yes", "--project", "Bad\nName"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "project: invalid project name \"Bad\\nName\"",
        ));
    assert!(!p.file("provision.yaml").exists());
}

#[test]
fn init_honours_the_spec_flag() {
    let p = Project::new();
    p.write("stacks/.keep", "");
    p.provision(&[
        "-f",
        "stacks/a.yaml",
        "init",
        "--yes",
        "--discovery",
        "docker-dns",
    ])
    .assert()
    .success();
    assert!(p.read("stacks/a.yaml").contains("discovery: docker-dns\n"));
}

#[test]
fn missing_spec_is_a_usage_error() {
    let p = Project::new();
    p.provision(&["render"]).assert().code(2).stderr(
        predicate::str::contains("provision.yaml").and(predicate::str::contains("provision init")),
    );
}

#[test]
fn the_spec_is_found_in_a_parent_directory() {
    let p = Project::new();
    p.provision(&["init", "--yes", "--project", "upward"])
        .assert()
        .success();
    p.write("app/src/deep/.keep", "");
    let mut render = p.provision(&["render"]);
    render.current_dir(p.file("app/src/deep"));
    render.assert().success();
    // Rendered beside the spec that was found, not in the directory the command ran from.
    assert!(p.file("generated/compose.yaml").is_file());
    assert!(!p.file("app/src/deep/generated").exists());
    // -f still means exactly that file, relative to where the command runs.
    let mut named = p.provision(&["-f", "provision.yaml", "render", "--check"]);
    named.current_dir(p.file("app"));
    named
        .assert()
        .code(2)
        .stderr(predicate::str::contains("file not found"));
}

#[test]
fn no_spec_anywhere_up_says_where_it_looked_and_exits_2() {
    let p = Project::new();
    p.write("a/b/.keep", "");
    let start = p.file("a/b").canonicalize().unwrap();
    let mut render = p.provision(&["render", "--check"]);
    render.current_dir(&start);
    render.assert().code(2).stderr(predicate::str::contains(format!(
        "no provision.yaml in {} or any parent directory; create one with `provision init`, or name one with -f FILE",
        start.display()
    )));
}

#[test]
fn bad_specs_name_field_and_line_and_exit_2() {
    let cases = [
        (
            "project: hits\nweb:\n  replica: 2\n",
            "provision.yaml:3:3: web: unknown field `replica`",
        ),
        (
            "project: hits\nweb:\n  port: lots\n",
            "provision.yaml:3:9: web.port: must be a port between 1 and 65535, got \"lots\"",
        ),
        (
            "project: \"hits\\nx\"\n",
            "provision.yaml:1:10: project: invalid project name \"hits\\nx\"",
        ),
    ];
    for (text, expected) in cases {
        let p = Project::new();
        p.write("provision.yaml", text);
        p.provision(&["render"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(expected));
        assert!(
            !p.file("generated").exists(),
            "nothing may be written for {text:?}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    Project::new()
        .provision(&["verify", "--scale", "many"])
        .assert()
        .code(2);
    Project::new()
        .provision(&["no-such-command"])
        .assert()
        .code(2);
}

#[test]
fn a_second_command_on_a_busy_project_waits_then_exits_2_naming_the_holder() {
    let Some(flock) = crate::support::harness::external_tool("flock", "a held project lock") else {
        return;
    };
    let p = Project::new();
    let project = format!("lock-cli-{}", std::process::id());
    p.write(
        "provision.yaml",
        &format!("project: {project}\ndiscovery: docker-dns\n"),
    );
    p.provision(&["render"]).assert().success();
    // Another command holds the project's lock (what a running `provision apply` does).
    let lock = p.lock_path(&project);
    std::fs::write(&lock, "pid 4242 (apply), since 0 (unix time)").unwrap();
    let mut holder = std::process::Command::new(flock)
        .arg("-o")
        .arg(&lock)
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    for command in ["verify", "destroy", "apply"] {
        p.provision(&[command, "--lock-timeout", "1"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!(
                "another provision command holds project {project} (pid 4242 (apply)"
            )));
    }
    assert!(started.elapsed() >= std::time::Duration::from_secs(3));
    holder.kill().unwrap();
    holder.wait().unwrap();
    let _ = std::fs::remove_file(lock);
}

#[test]
fn apply_refuses_a_batch_of_zero_before_touching_anything() {
    let p = Project::new();
    p.provision(&["init", "--yes"]).assert().success();
    p.provision(&["apply", "--batch", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--batch"));
    assert!(!p.file("generated").exists(), "apply rendered anyway");
}

/// Runs `provision ARGS` in `p` with stdout a pipe whose reader is already gone, as after
/// `provision ... | head -1` once head has exited: every write to stdout fails with EPIPE.
fn with_closed_stdout(p: &Project, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("provision"));
    cmd.current_dir(p.path())
        .args(args)
        .env_remove("PROVISION_SPEC")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(writer);
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.output().expect("provision runs")
}

/// A closed stdout ends the command with exit 0 and nothing on stderr that looks like a
/// failure: no panic, no `error:`, no "Broken pipe".
#[track_caller]
fn assert_quiet_exit(args: &[&str], out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "provision {} with a closed stdout: {stderr}",
        args.join(" ")
    );
    for word in ["panicked", "error", "Broken pipe", "os error 32"] {
        assert!(
            !stderr.contains(word),
            "provision {} with a closed stdout said {word:?}:\n{stderr}",
            args.join(" ")
        );
    }
}

#[test]
fn a_closed_stdout_ends_every_command_that_needs_no_engine_quietly() {
    let p = Project::new();
    p.write("provision.yaml", "project: pipes\ndiscovery: docker-dns\n");
    p.provision(&["render", "-q"]).assert().success();
    // Hand-edit a generated file so that --check has a diff to print.
    let edited = p.read("generated/compose.yaml") + "# edited\n";
    p.write("generated/compose.yaml", &edited);
    let runs: [&[&str]; 7] = [
        &["render", "--check"],
        &["render", "--force"],
        &["man"],
        &["completions", "bash"],
        &["completions", "zsh"],
        &["completions", "fish"],
        &["--help"],
    ];
    for args in runs {
        assert_quiet_exit(args, &with_closed_stdout(&p, args, &[]));
    }
    // init writes its spec, then says so on the closed pipe.
    let fresh = Project::new();
    let args = ["init", "--yes", "--project", "piped"];
    assert_quiet_exit(&args, &with_closed_stdout(&fresh, &args, &[]));
    assert!(fresh.read("provision.yaml").contains("project: piped\n"));
}

#[test]
fn a_closed_stdout_ends_doctor_quietly_even_when_it_finds_problems() {
    if crate::support::harness::external_tool("docker", "doctor with a closed stdout").is_none() {
        return;
    }
    let p = Project::new();
    p.write("provision.yaml", "project: pipes\ndiscovery: docker-dns\n");
    // An unreachable daemon: doctor fails its checks, but the reader left first.
    let env = [("DOCKER_HOST", "unix:///nonexistent/provision-test.sock")];
    for args in [&["doctor"][..], &["doctor", "--json"], &["doctor", "-q"]] {
        assert_quiet_exit(args, &with_closed_stdout(&p, args, &env));
    }
}

#[test]
fn a_closed_stdout_ends_status_destroy_and_a_dry_run_quietly() {
    if crate::support::harness::external_tool("docker", "status with a closed stdout").is_none() {
        return;
    }
    let p = Project::new();
    p.write(
        "provision.yaml",
        &format!(
            "project: pipes-{}\ndiscovery: docker-dns\n",
            std::process::id()
        ),
    );
    p.provision(&["render", "-q"]).assert().success();
    // These need the engine; without one it is an error (exit 3), not a closed pipe.
    let ran = p.run(&["status"], &[], std::time::Duration::from_secs(60));
    if ran.code == Some(3) {
        crate::support::harness::skip_or_fail(
            "status with a closed stdout",
            "no Docker engine answers",
        );
        return;
    }
    ran.expect_success();
    // Against no stack: status says so, destroy removes nothing, a dry run prints its plan;
    // each on a stdout nobody reads any more.
    let runs: [&[&str]; 5] = [
        &["status"],
        &["status", "--json"],
        &["-q", "status"],
        &["destroy", "--lock-timeout", "5"],
        &["apply", "--dry-run"],
    ];
    for args in runs {
        assert_quiet_exit(args, &with_closed_stdout(&p, args, &[]));
    }
}

#[test]
fn quiet_means_results_only_for_every_command() {
    let p = Project::new();
    // init -q: the result line, not the hint.
    p.provision(&["-q", "init", "--yes"])
        .assert()
        .success()
        .stdout("wrote provision.yaml\n")
        .stderr("");
    // render -q: the summary line, not the file list.
    let out = p.provision(&["render", "-q"]).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("wrote generated ("), "{stdout}");
    // Without -q the files are listed.
    let out = p.provision(&["render", "--force"]).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.lines().count() >= 1, "{stdout}");
    p.provision(&["render", "--check", "-q"])
        .assert()
        .success()
        .stdout(predicate::str::contains("is up to date"))
        .stderr("");
}

#[test]
fn doctor_quiet_shows_only_what_is_wrong_and_a_summary_fail_in_colour_when_forced() {
    if crate::support::harness::external_tool("docker", "doctor -q").is_none() {
        return;
    }
    let p = Project::new();
    let out = p
        .provision(&["doctor", "-q"])
        .env("DOCKER_HOST", "unix:///nonexistent/provision-test.sock")
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.lines().any(|l| l.starts_with("ok ")), "{stdout}");
    assert!(stdout.contains("FAIL  daemon"), "{stdout}");
    assert!(
        stdout.lines().last().unwrap().starts_with("doctor: "),
        "{stdout}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: doctor found 1 problem"
    );
    let out = p
        .provision(&["doctor", "-q"])
        .env("DOCKER_HOST", "unix:///nonexistent/provision-test.sock")
        .env_remove("NO_COLOR")
        .env("CLICOLOR_FORCE", "1")
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Bold red, then a reset: FAIL stands out on a terminal.
    assert!(
        stdout.starts_with("\u{1b}[1m\u{1b}[31mFAIL\u{1b}[0m  daemon"),
        "{stdout:?}"
    );
}

#[test]
fn colour_only_when_forced_never_under_no_color() {
    let p = Project::new();
    p.write("provision.yaml", "project: colours\nweb:\n  replica: 2\n");
    // CLICOLOR_FORCE colours `error:` even on a pipe; NO_COLOR wins over it.
    p.provision(&["render"])
        .env_remove("NO_COLOR")
        .env("CLICOLOR_FORCE", "1")
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with("\u{1b}["));
    p.provision(&["render"])
        .env("CLICOLOR_FORCE", "1")
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with("error: "));
    p.provision(&["render"])
        .env_remove("NO_COLOR")
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with("error: "));
}

#[test]
fn help_has_examples_exit_codes_and_no_lock_timeout_where_it_means_nothing() {
    let p = Project::new();
    let root = p.provision(&["--help"]).assert().success();
    let root = String::from_utf8_lossy(&root.get_output().stdout).into_owned();
    for needle in [
        "Examples:",
        "Exit status:",
        "  2  bad input",
        "NO_COLOR",
        "-q, --quiet",
    ] {
        assert!(root.contains(needle), "{needle} missing:\n{root}");
    }
    for sub in ["init", "man", "completions", "render", "status", "doctor"] {
        let out = p.provision(&[sub, "--help"]).assert().success();
        let help = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        assert!(!help.contains("--lock-timeout"), "{sub}:\n{help}");
    }
    for sub in ["apply", "verify", "destroy"] {
        let out = p.provision(&[sub, "--help"]).assert().success();
        let help = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        assert!(help.contains("--lock-timeout <SECONDS>"), "{sub}:\n{help}");
        assert!(help.contains("[default: 300]"), "{sub}:\n{help}");
    }
    let out = p.provision(&["completions", "--help"]).assert().success();
    let help = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    for shell in ["bash:", "zsh:", "fish:"] {
        assert!(help.contains(shell), "{help}");
    }
    let out = p.provision(&["destroy", "--help"]).assert().success();
    let help = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(help.contains("-v, --volumes"), "{help}");
}

#[test]
fn man_dir_writes_a_page_per_subcommand() {
    let p = Project::new();
    p.write("man/.keep", "");
    p.provision(&["man", "--dir", "man"])
        .assert()
        .success()
        .stdout(predicate::str::contains("wrote 16 man pages"));
    for page in [
        "provision",
        "provision-verify",
        "provision-init",
        "provision-man",
        "provision-history",
        "provision-rollback",
        "provision-logs",
        "provision-maintenance",
    ] {
        let text = p.read(&format!("man/{page}.1"));
        assert!(text.contains("EXIT STATUS"), "{page}");
        assert!(text.contains(".SH EXAMPLES"), "{page}");
        assert!(text.contains(".SH ENVIRONMENT"), "{page}");
    }
    p.provision(&["man", "--dir", "missing"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--dir missing"));
}

#[test]
fn spec_and_quiet_go_before_or_after_the_subcommand_but_not_on_man() {
    let p = Project::new();
    p.write("stacks/a.yaml", "project: where\ndiscovery: docker-dns\n");
    // Before the subcommand (as the bench scripts write it), after it, and from the
    // environment; a flag on the command line wins over PROVISION_SPEC.
    p.provision(&["-q", "-f", "stacks/a.yaml", "render"])
        .assert()
        .success();
    p.provision(&["render", "-q", "-f", "stacks/a.yaml"])
        .env("PROVISION_SPEC", "nope.yaml")
        .assert()
        .success();
    p.provision(&["-f", "stacks/a.yaml", "render", "--check"])
        .env("PROVISION_SPEC", "nope.yaml")
        .assert()
        .success();
    p.provision(&["render", "--check"])
        .env("PROVISION_SPEC", "stacks/a.yaml")
        .assert()
        .success();
    // Where they mean nothing they are not offered.
    p.provision(&["man", "-q"]).assert().code(2);
    p.provision(&["completions", "bash", "-f", "x.yaml"])
        .assert()
        .code(2);
}

#[test]
fn logs_rollback_and_history_refuse_what_cannot_be_before_asking_docker() {
    let p = Project::new();
    p.provision(&["init", "--yes", "--project", "rel"])
        .assert()
        .success();
    p.provision(&["render", "-q"]).assert().success();
    // No engine is needed to refuse these: DOCKER_HOST points nowhere.
    let nowhere = "unix:///nonexistent/provision-test.sock";
    p.provision(&["logs", "nope"])
        .env("DOCKER_HOST", nowhere)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "the stack has no service `nope`; its services are",
        ));
    // -f is --follow on logs; the spec goes before the command.
    p.provision(&["-f", "provision.yaml", "logs", "nope", "-f"])
        .env("DOCKER_HOST", nowhere)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no service `nope`"));
    p.provision(&["history"])
        .assert()
        .success()
        .stdout(predicate::str::contains("rel: no release yet"));
    p.provision(&["rollback"])
        .env("DOCKER_HOST", nowhere)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no release was recorded yet"));
    p.provision(&["rollback", "0"]).assert().code(2);
}

#[test]
fn canary_thresholds_out_of_range_are_refused_naming_the_field() {
    for (text, field, why) in [
        (
            "project: hits\ndeploy:\n  max_error_rate: 5\n",
            "deploy.max_error_rate",
            "not a fraction from 0 to 1",
        ),
        (
            "project: hits\ndeploy:\n  max_latency_ratio: 0.5\n",
            "deploy.max_latency_ratio",
            "not a ratio of at least 1",
        ),
    ] {
        let p = Project::new();
        p.write("provision.yaml", text);
        p.provision(&["render"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(field).and(predicate::str::contains(why)));
        assert!(!p.file("generated").exists(), "written for {text:?}");
    }
    let p = Project::new();
    p.write(
        "provision.yaml",
        "project: hits\ndeploy:\n  max_error_rate: 0.1\n  max_latency_ratio: 2\n",
    );
    p.provision(&["render"]).assert().success();
}

#[test]
fn a_bad_canary_argument_is_a_usage_error() {
    for bad in ["0", "100", "20:0", "twenty"] {
        Project::new()
            .provision(&["apply", "--canary", bad])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("--canary"));
    }
    Project::new()
        .provision(&["apply", "--report", "r.html"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--load"));
}

#[test]
fn a_canary_on_a_swarm_is_refused_with_the_reason() {
    let p = Project::new();
    p.write(
        "provision.yaml",
        &std::fs::read_to_string(
            crate::support::harness::repo_root()
                .join("tests/fixtures/swarm-docker-dns/provision.yaml"),
        )
        .unwrap(),
    );
    p.provision(&["apply", "--canary", "20:15"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("--canary works on one host")
                .and(predicate::str::contains("Swarm's own rolling update")),
        );
}
