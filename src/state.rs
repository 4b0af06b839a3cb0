//! The per-project state directory, outside the output directory (which the next render
//! replaces): `$XDG_STATE_HOME/provision/<project>/`, or `~/.local/state/provision/<project>/`
//! without the variable. It holds what provision must remember between commands: the Compose
//! file of the last apply (`deploy/compose/applied.rs`), the releases (`releases/`) and the
//! maintenance switch (`deploy/maintenance.rs`).
//!
//! Only its owner reads it: directories are created 0700 and files written 0600, because a
//! release's copy of the rendered files says how the stack is built and where it listens.

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The state root (`.../provision`); None without `XDG_STATE_HOME` and without a home directory.
pub fn root() -> Option<PathBuf> {
    std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| Path::new(&home).join(".local/state"))
        })
        .map(|state| state.join("provision"))
}

/// `project`'s state directory (not created); None as for [`root`].
pub fn project_dir(project: &str) -> Option<PathBuf> {
    root().map(|root| root.join(project))
}

/// `project`'s state directory, or an error that says which variable to set.
pub fn require_project_dir(project: &str) -> anyhow::Result<PathBuf> {
    project_dir(project).ok_or_else(|| {
        crate::UsageError(
            "no state directory: neither XDG_STATE_HOME nor HOME is set; set one of them".into(),
        )
        .into()
    })
}

/// Creates `dir` and its missing parents, each 0700 (an existing one keeps its mode).
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Writes `bytes` to `path` as a 0600 file: written beside, then renamed, so a reader never
/// sees half a file. Creates the parent directory 0700.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .context("a state file has a parent directory")?;
    create_private_dir(dir)?;
    // NamedTempFile creates its file 0600.
    let mut temp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    std::io::Write::write_all(&mut temp, bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    temp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_and_directories_are_for_their_owner_only() {
        let base = tempfile::tempdir().unwrap();
        let file = base.path().join("a/b/c.json");
        write_private(&file, b"{}").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&base.path().join("a/b")), 0o700);
        assert_eq!(mode(&base.path().join("a")), 0o700);
        assert_eq!(std::fs::read(&file).unwrap(), b"{}");
    }
}
