//! Where the spec is when none is named: `provision.yaml` in the current directory or the
//! nearest parent directory that has one, so that every command works from anywhere inside a
//! project. This is docker compose's rule for compose.yaml (compose-spec/compose-go
//! `cli/options.go`, `WithDefaultConfigPath`: from the working directory up to the root) and
//! cargo's for Cargo.toml.

use std::path::{Path, PathBuf};

use super::DEFAULT_FILE;

/// The nearest `provision.yaml` at or above `start` (an absolute directory).
pub fn upward(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(DEFAULT_FILE))
        .find(|candidate| candidate.is_file())
}

/// The message for a search that found nothing: where it looked, and the two ways on.
pub fn not_found(start: &Path) -> String {
    format!(
        "no {DEFAULT_FILE} in {} or any parent directory; create one with `provision init`, or name one with -f FILE",
        start.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_spec_above_wins() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(upward(&deep), None);
        std::fs::write(root.path().join(DEFAULT_FILE), "project: top\n").unwrap();
        assert_eq!(upward(&deep), Some(root.path().join(DEFAULT_FILE)));
        std::fs::write(root.path().join("a").join(DEFAULT_FILE), "project: a\n").unwrap();
        assert_eq!(
            upward(&deep),
            Some(root.path().join("a").join(DEFAULT_FILE))
        );
        // A directory of that name is not a spec.
        std::fs::create_dir_all(deep.join("b").join(DEFAULT_FILE)).unwrap();
        assert_eq!(
            upward(&deep.join("b")),
            Some(root.path().join("a").join(DEFAULT_FILE))
        );
    }
}
