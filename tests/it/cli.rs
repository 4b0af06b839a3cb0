//! The built binary's behaviour at its edges: init both ways, bad specs, exit codes.

use predicates::prelude::*;

use crate::support::harness::Project;

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
fn init_without_a_terminal_never_prompts() {
    // No --yes, stdin is not a terminal (closed): it must use defaults, not wait or fail.
    let p = Project::new();
    p.provision(&["init"])
        .write_stdin("")
        .timeout(std::time::Duration::from_secs(20))
        .assert()
        .success();
    assert!(p.read("provision.yaml").contains("lb:\n  port: 8080\n"));
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
fn bad_specs_name_field_and_line_and_exit_2() {
    let cases = [
        (
            "project: hits\nweb:\n  replica: 2\n",
            "provision.yaml:3:3: web: unknown field `replica`",
        ),
        (
            "project: hits\nweb:\n  port: lots\n",
            "provision.yaml:3:9: web.port: invalid type",
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
