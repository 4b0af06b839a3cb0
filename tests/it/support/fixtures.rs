//! The fixture specs in tests/fixtures/ whose whole output the snapshot and static tests read,
//! a render of one in memory, and the fixture apps (tests/fixtures/apps/) as a project has them.

use std::path::{Path, PathBuf};

use provision::render::{self, Project};

use super::harness::repo_root;

/// The fixture specs whose whole output is snapshotted.
pub const FIXTURES: &[&str] = &[
    "consul-template",
    "consul-dns",
    "docker-dns",
    "custom",
    "bookworm",
    "swarm-docker-dns",
    "swarm-consul-dns",
    "swarm-consul-cluster",
];

pub fn fixture_spec(name: &str) -> PathBuf {
    repo_root()
        .join("tests/fixtures")
        .join(name)
        .join("provision.yaml")
}

/// Renders a fixture in memory, as if into `<fixture>/generated`.
pub fn render_fixture(name: &str) -> render::Rendered {
    let project = Project::load(&fixture_spec(name), Path::new("generated"))
        .unwrap_or_else(|e| panic!("fixture {name}: {e:#}"));
    render::render(&project).unwrap_or_else(|e| panic!("fixture {name}: {e:#}"))
}

/// Copies a directory tree (a fixture app, a committed generated/) into a test's directory.
pub(crate) fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The fixture app `tests/fixtures/apps/<app>` (its Dockerfile and server.py) written to `dir`
/// of `project`, FROM `base`: provision passes no build arguments to your own Dockerfile, so
/// the test writes the FROM line itself (the offline rig's base, here).
pub(crate) fn write_fixture_app(
    project: &super::harness::Project,
    app: &str,
    dir: &str,
    base: &str,
) {
    let fixture = repo_root().join("tests/fixtures/apps").join(app);
    let dockerfile = std::fs::read_to_string(fixture.join("Dockerfile")).unwrap();
    let from = dockerfile
        .lines()
        .find(|l| l.starts_with("FROM "))
        .expect("a FROM line in the fixture's Dockerfile");
    project.write(
        &format!("{dir}/Dockerfile"),
        &dockerfile.replacen(from, &format!("FROM {base}"), 1),
    );
    project.write(
        &format!("{dir}/server.py"),
        &std::fs::read_to_string(fixture.join("server.py")).unwrap(),
    );
}
