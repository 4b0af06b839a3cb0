//! One provision command at a time per project: `apply`, `verify` and `destroy` hold an exclusive
//! lock on a file named after the Compose project, so two of them never interleave their docker
//! calls (an apply recreating containers while a verify scales them, say).
//!
//! The lock is an `flock` on an open file: the kernel releases it when its holder exits, however
//! it exits (even SIGKILL), so a crashed command never leaves the project locked. The second
//! command waits, saying who holds the lock, and gives up with a usage error (exit 2) after its
//! timeout.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
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

/// Where the lock of `project` lives: one file per project name in the temp directory, shared
/// by every spec directory that uses that name (they drive the same Compose project).
pub fn path_of(project: &str) -> PathBuf {
    std::env::temp_dir().join(format!("provision-{project}.lock"))
}

/// Takes the project's lock for `command`, waiting up to `timeout` while another command holds it.
pub fn acquire(
    project: &str,
    command: &str,
    timeout: Duration,
    printer: &Printer,
) -> anyhow::Result<ProjectLock> {
    let path = path_of(project);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening the lock file {}", path.display()))?;
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
        let _ = std::fs::remove_file(path_of(&project));
    }

    #[test]
    #[allow(clippy::print_stderr)] // a test says why it skips
    fn a_killed_holder_does_not_block() {
        let project = project();
        let path = path_of(&project);
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
}
