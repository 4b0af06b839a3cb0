//! The built binary's behaviour at its edges: init both ways, bad specs, exit codes.

use predicates::prelude::*;

use crate::harness::Project;

#[test]
fn init_yes_writes_a_spec_that_loads() {
    let p = Project::new();
    p.provision(&["init", "--yes", "--project", "shop", "--replicas", "3"])
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
        "8500",
    ])
    .assert()
    .code(2)
    .stderr(
        predicate::str::contains("--replicas: must be between 1 and lb.max_replicas (10), got 12")
            .and(predicate::str::contains(
                "--lb-port: host port 8500 is already used by consul.http_port",
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
            "--replicas <REPLICAS>': must be a whole number, got \"abc\"",
        ));
    p.provision(&["init", "--yes", "--lb-port", "70000"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--lb-port <LB_PORT>': must be a port between 1 and 65535, got 70000",
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
    p.provision(&["-f", "stacks/p.yml", "init", "--yes"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "next: `provision -f stacks/p.yml apply`",
        ))
        .stderr(predicate::str::contains("render").not());
    p.provision(&["init", "--yes"])
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
    let Some(flock) = crate::harness::external_tool("flock", "a held project lock") else {
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
    let lock = provision::lock::path_of(&project);
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
