//! The fixture specs in tests/fixtures/ whose whole output the snapshot and static tests read,
//! and a render of one in memory.

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
