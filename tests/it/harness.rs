//! Shared test helpers: a temporary project directory and a fluent way to run the built binary.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// A temporary directory that holds one project (spec, generated files).
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Self {
        Project {
            dir: tempfile::tempdir().expect("create a temporary directory"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn write(&self, relative: &str, contents: &str) -> &Self {
        let path = self.file(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
        self
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.file(relative))
            .unwrap_or_else(|e| panic!("read {relative}: {e}"))
    }

    /// `provision ARGS` run in this project's directory, with no terminal on stdin.
    pub fn provision(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("provision").expect("the provision binary is built");
        cmd.current_dir(self.path())
            .args(args)
            .env_remove("PROVISION_SPEC")
            .env("NO_COLOR", "1");
        cmd
    }
}

/// The repository root (for fixtures and the committed example).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file (anything but a directory) under `dir` by relative path, with its contents.
pub fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|entry| entry.unwrap())
        .filter(|entry| !entry.file_type().is_dir())
        .map(|entry| {
            let rel = entry.path().strip_prefix(dir).unwrap();
            let rel = rel.to_string_lossy().into_owned();
            (rel, std::fs::read(entry.path()).unwrap())
        })
        .collect()
}
