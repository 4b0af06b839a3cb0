//! Snapshots of every file `provision render` generates for each fixture spec in
//! tests/fixtures/, and of the error output for the bad specs in tests/fixtures/bad/.
//!
//! A change to a blueprint shows up here as a snapshot diff to review (`cargo insta review`).

use std::path::Path;

use crate::support::fixtures::{render_fixture, FIXTURES};
use crate::support::harness::{repo_root, Project as TempProject};

fn snapshot_settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(repo_root().join("tests/it/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings
}

#[test]
fn every_generated_file_of_every_fixture() {
    for fixture in FIXTURES {
        let rendered = render_fixture(fixture);
        assert!(
            rendered.local_blueprints.is_empty(),
            "fixtures use the embedded blueprints"
        );
        let mut settings = snapshot_settings();
        settings.set_description(format!("tests/fixtures/{fixture}/provision.yaml"));
        settings.bind(|| {
            for (path, text) in &rendered.files {
                let name = format!("{fixture}@{}", path.replace('/', "__"));
                insta::assert_snapshot!(name, text);
            }
        });
    }
}

#[test]
fn bad_specs_fail_with_a_located_message_and_exit_2() {
    let dir = repo_root().join("tests/fixtures/bad");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    assert!(names.len() >= 6, "{names:?}");
    for name in names {
        // --check never writes, so a spec that wrongly passed could not touch the fixtures.
        let output = assert_cmd::Command::cargo_bin("provision")
            .unwrap()
            .current_dir(&dir)
            .args(["-f", &name, "render", "--check"])
            .env_remove("PROVISION_SPEC")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{name}: {output:?}");
        assert!(output.stdout.is_empty(), "{name}: nothing on stdout");
        let stderr = String::from_utf8(output.stderr).unwrap();
        snapshot_settings().bind(|| {
            insta::assert_snapshot!(format!("bad@{}", name.trim_end_matches(".yaml")), stderr);
        });
    }
}

#[test]
fn the_example_spec_documents_every_field_with_its_default() {
    let example = repo_root().join("examples/provision.yaml");
    let text = std::fs::read_to_string(&example).unwrap();
    let plan = provision::spec::load(&example).unwrap();
    let defaults = provision::spec::from_text(
        "project: hits\n",
        Path::new("defaults.yaml"),
        example.parent().unwrap(),
    )
    .unwrap();
    assert_eq!(
        plan, defaults,
        "the example shows the default of every field"
    );

    // Every field of the model appears in the example (uncommented), but images.redis, whose
    // default is "absent" and which is shown commented out.
    let spec = provision::spec::parse("project: hits\n").unwrap();
    let model = serde_yaml::to_value(&spec).unwrap();
    let written: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut missing = Vec::new();
    collect_missing(&model, &written, String::new(), &mut missing);
    assert_eq!(missing, ["images.redis"], "fields absent from the example");
    assert!(
        text.contains("# redis: redis:7"),
        "images.redis is shown, commented"
    );
}

fn collect_missing(
    model: &serde_yaml::Value,
    written: &serde_yaml::Value,
    prefix: String,
    missing: &mut Vec<String>,
) {
    let Some(map) = model.as_mapping() else {
        return;
    };
    for (key, value) in map {
        let key = key.as_str().unwrap();
        let path = if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}.{key}")
        };
        match written.get(key) {
            None => missing.push(path),
            Some(inner) => collect_missing(value, inner, path, missing),
        }
    }
}

#[test]
fn the_committed_generated_directory_is_current() {
    let output = assert_cmd::Command::cargo_bin("provision")
        .unwrap()
        .current_dir(repo_root())
        .args([
            "-f",
            "examples/provision.yaml",
            "render",
            "--check",
            "--out",
            "../generated",
        ])
        .env_remove("PROVISION_SPEC")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "generated/ is stale; run `provision -f examples/provision.yaml render --out ../generated`\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_project_can_override_a_blueprint() {
    let p = TempProject::new();
    p.write("provision.yaml", "project: hits\ndiscovery: docker-dns\n");
    p.write(
        "blueprints/diagram.md.j2",
        "<!-- mine -->\n# {{ plan.project | word }}\n",
    );
    p.provision(&["render"])
        .assert()
        .success()
        .stderr(predicates::str::contains(
            "using local blueprint blueprints/diagram.md.j2",
        ));
    assert_eq!(p.read("generated/diagram.md"), "<!-- mine -->\n# hits\n");
    // The others still come from the embedded blueprints.
    assert!(p
        .read("generated/lb/haproxy.cfg")
        .contains("resolvers docker"));
}

#[test]
fn an_override_that_prints_a_value_without_a_filter_fails_and_writes_nothing() {
    let p = TempProject::new();
    p.write("provision.yaml", "project: hits\n");
    p.write("blueprints/diagram.md.j2", "# {{ plan.project }}\n");
    // A broken local blueprint is the user's to fix: a usage error, exit 2.
    p.provision(&["render"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "rendering diagram.md from blueprint diagram.md.j2",
        ))
        .stderr(predicates::str::contains("without a format filter"));
    assert!(!p.file("generated").exists());
}
