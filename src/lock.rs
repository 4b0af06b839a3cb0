//! One provision command at a time per project: `apply`, `verify` and `destroy` hold an exclusive
//! lock on a file named after the Compose project, so two of them never interleave their docker
//! calls (an apply recreating containers while a verify scales them, say).
//!
//! The lock is an `flock` on an open file: the kernel releases it when its holder exits, however
//! it exits (even SIGKILL), so a crashed command never leaves the project locked. The second
//! command waits, saying who holds the lock, and gives up with a usage error (exit 2) after its
//! timeout.
//!
//! The file lives in a directory only this user can write (0700): `$XDG_RUNTIME_DIR/provision`,
//! or else the state directory `$XDG_STATE_HOME/provision` (`~/.local/state/provision`). In a
//! world-writable directory such as /tmp another local user could take the lock first (blocking
//! every command) or plant a symbolic link there, which provision would follow and truncate the
//! file it points to. The file is also opened with `O_NOFOLLOW`: a link is refused, never followed.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use crate::poll::poll_until;
use crate::printer::Printer;
use crate::UsageError;

const POLL: Duration = Duration::from_millis(200);

/// Held for as long as the value lives.
#[derive(Debug)]
pub struct ProjectLock {
    _file: File,
}

/// Where the lock of `project` lives: one file per project name in this user's private
/// directory (made if missing), shared by every spec directory that uses that name (they drive
/// the same Compose project).
pub fn path_of(project: &str) -> anyhow::Result<PathBuf> {
    let dir = private_dir()?;
    Ok(dir.join(format!("{project}.lock")))
}

/// `$XDG_RUNTIME_DIR/provision`, or `$XDG_STATE_HOME/provision`, or
/// `$HOME/.local/state/provision`: created 0700, and refused unless it is a real directory of
/// this user that nobody else can write.
fn private_dir() -> anyhow::Result<PathBuf> {
    let from_env = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let dir = if let Some(runtime) = from_env("XDG_RUNTIME_DIR").filter(|p| p.is_dir()) {
        runtime.join("provision")
    } else if let Some(state) = from_env("XDG_STATE_HOME") {
        state.join("provision")
    } else if let Some(home) = from_env("HOME") {
        home.join(".local/state/provision")
    } else {
        return Err(UsageError(
            "no directory for provision's lock files: set XDG_RUNTIME_DIR, XDG_STATE_HOME or HOME"
                .into(),
        )
        .into());
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    require_private(&dir)?;
    Ok(dir)
}

/// `dir` must be a directory (not a link to one) owned by this user; group and others lose any
/// access they had.
fn require_private(dir: &Path) -> anyhow::Result<()> {
    let meta =
        std::fs::symlink_metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    let me = rustix::process::geteuid().as_raw();
    if !meta.file_type().is_dir() || meta.uid() != me {
        return Err(UsageError(format!(
            "{} must be a directory owned by you (uid {me}) for provision's lock files; it is \
             {} owned by uid {}: remove it",
            dir.display(),
            if meta.file_type().is_symlink() {
                "a symbolic link"
            } else if meta.file_type().is_dir() {
                "a directory"
            } else {
                "a file"
            },
            meta.uid()
        ))
        .into());
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private (0700)", dir.display()))?;
    }
    Ok(())
}

/// Opens (or creates, 0600) the lock file without following a symbolic link at its path.
fn open_lock_file(path: &Path) -> anyhow::Result<File> {
    let opened = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path);
    match opened {
        Ok(file) => Ok(file),
        Err(err) if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) => {
            Err(UsageError(format!(
                "the lock file {} is a symbolic link ({err}); provision never follows one there: \
                 remove it if you did not make it",
                path.display()
            ))
            .into())
        }
        Err(err) => Err(err).with_context(|| format!("opening the lock file {}", path.display())),
    }
}

/// Takes the project's lock for `command`, waiting up to `timeout` while another command holds it.
pub fn acquire(
    project: &str,
    command: &str,
    timeout: Duration,
    printer: &Printer,
) -> anyhow::Result<ProjectLock> {
    let path = path_of(project)?;
    let mut file = open_lock_file(&path)?;
    let mut holder_now = String::new();
    let mut looks = 0;
    let taken = poll_until(timeout, POLL, || {
        if looks == 1 {
            printer.note(format!(
                "waiting for another provision command on project {project} ({holder_now}), \
                 up to {} s",
                timeout.as_secs()
            ));
        }
        looks += 1;
        match file.try_lock() {
            Ok(()) => Ok(Some(())),
            Err(TryLockError::WouldBlock) => {
                holder_now = holder(&mut file);
                Ok(None)
            }
            Err(TryLockError::Error(err)) => {
                Err(err).with_context(|| format!("locking {}", path.display()))
            }
        }
    })?;
    if taken.is_none() {
        return Err(UsageError(format!(
            "another provision command holds project {project} ({holder_now}) and did not \
             finish within {} s; try again when it has (lock: {})",
            timeout.as_secs(),
            path.display()
        ))
        .into());
    }
    // Who holds it, for the next command's message; the lock, not this text, is what counts.
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    file.set_len(0)?;
    file.rewind()?;
    write!(
        file,
        "pid {} ({command}), since {since} (unix time)",
        std::process::id()
    )?;
    Ok(ProjectLock { _file: file })
}

fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    let text = text.trim();
    if text.is_empty() {
        "holder unknown".to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn project() -> String {
        format!(
            "lock-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        )
        .replace(['(', ')'], "")
        .to_lowercase()
    }

    #[test]
    fn a_second_command_waits_then_gives_up_naming_the_holder() {
        let project = project();
        let first = acquire(&project, "apply", Duration::ZERO, &Printer::quiet()).unwrap();
        let started = Instant::now();
        let err = acquire(
            &project,
            "verify",
            Duration::from_millis(500),
            &Printer::quiet(),
        )
        .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(500));
        assert!(err.is::<UsageError>(), "{err:#}");
        let message = err.to_string();
        assert!(
            message.contains(&format!("pid {} (apply)", std::process::id())),
            "{message}"
        );
        drop(first);
        acquire(&project, "verify", Duration::ZERO, &Printer::quiet()).unwrap();
        let _ = std::fs::remove_file(path_of(&project).unwrap());
    }

    #[test]
    #[allow(clippy::print_stderr)] // a test says why it skips
    fn a_killed_holder_does_not_block() {
        let project = project();
        let path = path_of(&project).unwrap();
        std::fs::write(&path, "").unwrap();
        // `flock -o FILE sleep 60` holds the lock in another process (`-o`: in flock itself,
        // not in sleep), which is then killed.
        let Some(flock) =
            crate::skip_rule::external_tool("flock", "a holder killed by signal releases the lock")
        else {
            return;
        };
        let mut child = std::process::Command::new(flock)
            .arg("-o")
            .arg(&path)
            .args(["sleep", "60"])
            .spawn()
            .expect("starting flock");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let probe = File::open(&path).unwrap();
            if matches!(probe.try_lock(), Err(TryLockError::WouldBlock)) {
                break;
            }
            drop(probe);
            assert!(Instant::now() < deadline, "flock never took the lock");
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        acquire(&project, "apply", Duration::from_secs(2), &Printer::quiet()).unwrap();
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_symbolic_link_at_the_lock_path_is_refused_not_followed() {
        let project = project();
        let path = path_of(&project).unwrap();
        let dir = path.parent().unwrap();
        let mode = std::fs::metadata(dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} is private", dir.display());
        let victim = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(victim.path(), "precious").unwrap();
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink(victim.path(), &path).unwrap();
        let err = acquire(&project, "apply", Duration::ZERO, &Printer::quiet()).unwrap_err();
        let _ = std::fs::remove_file(&path);
        assert!(err.is::<UsageError>(), "{err:#}");
        assert!(
            err.to_string().contains("is a symbolic link")
                && err.to_string().contains(&path.display().to_string()),
            "{err:#}"
        );
        assert_eq!(std::fs::read_to_string(victim.path()).unwrap(), "precious");
    }

    #[test]
    fn a_lock_directory_that_is_a_link_or_open_to_others_is_not_trusted() {
        let root = tempfile::tempdir().unwrap();
        let real = root.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = require_private(&link).unwrap_err();
        assert!(err.to_string().contains("a symbolic link"), "{err:#}");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).unwrap();
        require_private(&real).unwrap();
        let mode = std::fs::metadata(&real).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700, "made private");
    }
}
