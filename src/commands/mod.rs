//! One module per subcommand. Each is thin: it glues spec, render, docker, probe and report.

pub mod apply;
pub mod completions;
pub mod destroy;
pub mod doctor;
pub mod history;
pub mod images;
pub mod init;
pub mod logs;
pub mod maintenance;
pub mod render;
pub mod rollback;
pub mod secrets;
pub mod status;
pub mod verify;

use std::path::PathBuf;
use std::time::Duration;

use crate::lock::{self, ProjectLock};
use crate::printer::Printer;

/// Options every subcommand sees.
#[derive(Debug, Clone)]
pub struct Global {
    /// The spec file.
    pub spec: PathBuf,
    /// Whether the spec was named (`-f`, PROVISION_SPEC), so that advice repeats it.
    pub spec_given: bool,
    /// How long to wait for another command on the same project (`--lock-timeout` of the
    /// commands that take the lock).
    pub lock_timeout: Duration,
    /// The one output layer, built in `lib::run`.
    pub printer: Printer,
}

impl Global {
    /// `provision SUBCOMMAND` as the user would type it next: with `-f SPEC` when the spec was
    /// named, so that advice can be run as printed.
    pub fn command_line(&self, subcommand: &str) -> String {
        if self.spec_given {
            let spec = self.spec.display().to_string();
            format!("provision -f {} {subcommand}", shell_word(&spec))
        } else {
            format!("provision {subcommand}")
        }
    }

    /// The project's lock for `command` (see `lock.rs`), held until the value is dropped.
    pub fn lock(
        &self,
        project: &str,
        command: &str,
        printer: &Printer,
    ) -> anyhow::Result<ProjectLock> {
        lock::acquire(project, command, self.lock_timeout, printer)
    }
}

/// `word`, quoted for a POSIX shell when it needs to be.
pub fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:@%,".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_repeats_a_named_spec_quoted_for_the_shell() {
        let mut global = Global {
            spec: PathBuf::from("provision.yaml"),
            spec_given: false,
            lock_timeout: Duration::from_secs(1),
            printer: Printer::quiet(),
        };
        assert_eq!(global.command_line("apply"), "provision apply");
        global.spec_given = true;
        global.spec = PathBuf::from("stacks/p.yml");
        assert_eq!(
            global.command_line("apply"),
            "provision -f stacks/p.yml apply"
        );
        global.spec = PathBuf::from("my stack/it's.yml");
        assert_eq!(
            global.command_line("render"),
            "provision -f 'my stack/it'\\''s.yml' render"
        );
    }
}
