//! The Compose file of the last apply that finished, kept outside the output directory (which
//! the next render replaces): a rolling replacement that fails after earlier batches went through
//! starts replicas of the previous version from it, so the stack ends as it was.
//!
//! Kept in the project's state directory (`state.rs`) as `compose.yaml`. Two checkouts with one project name share it; that is safe because it is used only
//! when its web section's `org.provision.config` label is the one the old replicas carry.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The kept file under the state root (`state::root`).
fn path_in(root: &Path, project: &str) -> PathBuf {
    root.join(project).join("compose.yaml")
}

/// Keeps a copy of `compose_file` as the one `project` last applied.
pub fn remember(project: &str, compose_file: &Path) -> anyhow::Result<()> {
    match crate::state::root() {
        Some(root) => remember_in(&root, project, compose_file),
        None => Ok(()),
    }
}

fn remember_in(state: &Path, project: &str, compose_file: &Path) -> anyhow::Result<()> {
    let target = path_in(state, project);
    let text = std::fs::read(compose_file)
        .with_context(|| format!("reading {}", compose_file.display()))?;
    if std::fs::read(&target).is_ok_and(|kept| kept == text) {
        return Ok(());
    }
    crate::state::write_private(&target, &text)
}

/// Removes the kept file of `project` (its stack is gone), and its directory when empty.
pub fn forget(project: &str) -> anyhow::Result<()> {
    let Some(root) = crate::state::root() else {
        return Ok(());
    };
    forget_in(&root, project)
}

fn forget_in(state: &Path, project: &str) -> anyhow::Result<()> {
    let target = path_in(state, project);
    match std::fs::remove_file(&target) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(err).with_context(|| format!("removing {}", target.display()))
        }
        _ => {}
    }
    // Only when empty: the releases stay (see `releases`).
    if let Some(dir) = target.parent() {
        let _ = std::fs::remove_dir(dir);
    }
    Ok(())
}

/// The Compose file `project` last applied, if one was kept.
pub fn previous(project: &str) -> Option<String> {
    std::fs::read_to_string(path_in(&crate::state::root()?, project)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_file_is_read_back_under_the_state_directory() {
        let state = tempfile::tempdir().unwrap();
        let file = state.path().join("compose.yaml");
        std::fs::write(&file, "services: {}\n").unwrap();
        let project = "hits";
        let kept = path_in(state.path(), project);
        assert!(!kept.exists());
        remember_in(state.path(), project, &file).unwrap();
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "services: {}\n");
        assert_eq!(kept, state.path().join("hits/compose.yaml"));
        std::fs::write(&file, "services: {web: {}}\n").unwrap();
        remember_in(state.path(), project, &file).unwrap();
        assert_eq!(
            std::fs::read_to_string(&kept).unwrap(),
            "services: {web: {}}\n"
        );
        forget_in(state.path(), project).unwrap();
        assert!(!kept.exists() && !kept.parent().unwrap().exists());
        forget_in(state.path(), project).unwrap();
    }
}
