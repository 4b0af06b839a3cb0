//! The per-project state directory: what provision keeps between commands outside `generated/`
//! (which the next render replaces, and which users commit): the Compose file of the last apply
//! (`deploy/compose/applied.rs`), the stack's secrets (`secrets/`), the releases (`releases/`) and
//! the maintenance switch (`deploy/maintenance.rs`).
//!
//! `$XDG_STATE_HOME/provision/<project>/` (`~/.local/state/provision/<project>/` without the
//! variable), created 0700 so that only its owner reaches anything under it. Files are written
//! beside their final name and renamed over it: a reader never sees half a file, and a symlink
//! planted at the final name is replaced, never followed.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

/// The state directory of one project. Holding one does not mean the directory exists yet:
/// [`StateDir::ensure`] creates it before the first write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

/// `$XDG_STATE_HOME`, or `~/.local/state`; None without either.
pub fn base_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| Path::new(&home).join(".local/state"))
        })
}

/// The state root (`<base>/provision`); None as for [`base_dir`].
pub fn root() -> Option<PathBuf> {
    base_dir().map(|base| base.join("provision"))
}

/// `project`'s state directory (not created); None as for [`base_dir`].
pub fn project_dir(project: &str) -> Option<PathBuf> {
    root().map(|root| root.join(project))
}

/// `project`'s state directory, or a usage error that says which variable to set.
pub fn require_project_dir(project: &str) -> anyhow::Result<PathBuf> {
    Ok(StateDir::of(project)?.root)
}

/// Creates `dir` and its missing parents, each 0700 (an existing one keeps its mode).
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Writes `bytes` to `path` as a 0600 file (see [`write_file`]), creating the parent 0700.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .context("a state file has a parent directory")?;
    create_private_dir(dir)?;
    write_file(path, bytes, 0o600)
}

/// Writes `bytes` to `path` with `mode`, atomically: a temporary file beside it (created with
/// `mode`, so never more open), renamed over the final name. A link at `path` is replaced.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .context("a state file has a parent directory")?;
    let mut temp = tempfile::Builder::new()
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    temp.write_all(bytes)
        .and_then(|()| temp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    temp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

impl StateDir {
    /// The state directory of `project` under the user's state base directory.
    pub fn of(project: &str) -> anyhow::Result<StateDir> {
        let Some(base) = base_dir() else {
            return Err(crate::UsageError(
                "no state directory: neither XDG_STATE_HOME nor HOME is set; set one of them \
                 (provision keeps the stack's secrets and releases there)"
                    .into(),
            )
            .into());
        };
        Ok(StateDir::under(&base, project))
    }

    /// The state directory of `project` under `base` (tests, and `of`).
    pub fn under(base: &Path, project: &str) -> StateDir {
        StateDir {
            root: base.join("provision").join(project),
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// A path inside the directory.
    pub fn join(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.root.join(relative)
    }

    /// Creates the directory (and `relative` under it) mode 0700 if missing, and checks that what
    /// is there is a real directory of ours that nobody else can enter.
    pub fn ensure_dir(&self, relative: impl AsRef<Path>) -> anyhow::Result<PathBuf> {
        let dir = self.root.join(relative);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        // The project directory and the one asked for: parents such as ~/.local/state are the
        // user's own business.
        for checked in [&self.root, &dir] {
            check_private_dir(checked)?;
        }
        Ok(dir)
    }

    /// Writes `bytes` to `relative` with `mode`, atomically: a temporary file beside it, renamed
    /// over the final name.
    pub fn write(&self, relative: impl AsRef<Path>, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
        let target = self.root.join(relative);
        let parent = target.parent().expect("a path under the state directory");
        let relative_parent = parent.strip_prefix(&self.root).unwrap_or(Path::new(""));
        self.ensure_dir(relative_parent)?;
        write_file(&target, bytes, mode)
    }

    /// The contents of `relative`, None when it does not exist. A symlink is an error, not
    /// followed: nothing provision writes here is one.
    pub fn read(&self, relative: impl AsRef<Path>) -> anyhow::Result<Option<Vec<u8>>> {
        let path = self.root.join(relative);
        match fs::symlink_metadata(&path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
            Ok(meta) if meta.file_type().is_symlink() => {
                bail!(
                    "{} is a symbolic link; provision does not follow links in its state directory",
                    path.display()
                )
            }
            Ok(_) => {}
        }
        fs::read(&path)
            .map(Some)
            .with_context(|| format!("reading {}", path.display()))
    }

    /// Removes `relative` if it exists.
    pub fn remove(&self, relative: impl AsRef<Path>) -> anyhow::Result<()> {
        let path = self.root.join(relative);
        match fs::remove_file(&path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(err).with_context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        }
    }
}

/// A directory that is not a link, belongs to the current user and admits nobody else.
fn check_private_dir(dir: &Path) -> anyhow::Result<()> {
    let meta =
        fs::symlink_metadata(dir).with_context(|| format!("inspecting {}", dir.display()))?;
    if !meta.file_type().is_dir() {
        bail!(
            "{} is not a directory (a symbolic link?); provision keeps secrets there and will \
             not follow it",
            dir.display()
        );
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        bail!(
            "{} belongs to uid {}, not to you (uid {me}); provision keeps secrets there",
            dir.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o077 != 0 {
        // Ours, but too open (an older provision, or a umask): close it rather than refuse.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o777
    }

    #[test]
    fn directories_are_created_private_and_files_get_their_mode() {
        let base = tempfile::tempdir().unwrap();
        let state = StateDir::under(base.path(), "hits");
        state.write("secrets/redis_password", b"x", 0o600).unwrap();
        assert_eq!(mode_of(state.path()), 0o700);
        assert_eq!(mode_of(&state.join("secrets")), 0o700);
        assert_eq!(mode_of(&state.join("secrets/redis_password")), 0o600);
        assert_eq!(
            state.read("secrets/redis_password").unwrap().as_deref(),
            Some(&b"x"[..])
        );
        assert_eq!(state.read("missing").unwrap(), None);
    }

    #[test]
    fn a_too_open_directory_of_ours_is_closed() {
        let base = tempfile::tempdir().unwrap();
        let state = StateDir::under(base.path(), "hits");
        fs::create_dir_all(state.path()).unwrap();
        fs::set_permissions(state.path(), fs::Permissions::from_mode(0o755)).unwrap();
        state.ensure_dir("").unwrap();
        assert_eq!(mode_of(state.path()), 0o700);
    }

    #[test]
    fn a_planted_link_is_replaced_on_write_and_refused_on_read() {
        let base = tempfile::tempdir().unwrap();
        let state = StateDir::under(base.path(), "hits");
        state.ensure_dir("").unwrap();
        let victim = base.path().join("victim");
        fs::write(&victim, "keep me").unwrap();
        std::os::unix::fs::symlink(&victim, state.join("token")).unwrap();
        let err = state.read("token").unwrap_err();
        assert!(format!("{err:#}").contains("symbolic link"), "{err:#}");
        state.write("token", b"new", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
        assert!(!fs::symlink_metadata(state.join("token"))
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn private_files_and_directories_are_for_their_owner_only() {
        let base = tempfile::tempdir().unwrap();
        let file = base.path().join("a/b/c.json");
        write_private(&file, b"{}").unwrap();
        assert_eq!(mode_of(&file), 0o600);
        assert_eq!(mode_of(&base.path().join("a/b")), 0o700);
        assert_eq!(mode_of(&base.path().join("a")), 0o700);
        assert_eq!(fs::read(&file).unwrap(), b"{}");
    }

    #[test]
    fn a_project_directory_that_is_a_link_is_refused() {
        let base = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        fs::create_dir_all(base.path().join("provision")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), base.path().join("provision/hits")).unwrap();
        let state = StateDir::under(base.path(), "hits");
        let err = state.write("x", b"1", 0o600).unwrap_err();
        assert!(format!("{err:#}").contains("not a directory"), "{err:#}");
        assert!(fs::read_dir(elsewhere.path()).unwrap().next().is_none());
    }
}
