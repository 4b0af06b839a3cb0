//! One module per subcommand. Each is thin: it glues spec, render, docker, probe and report.

pub mod apply;
pub mod completions;
pub mod destroy;
pub mod doctor;
pub mod images;
pub mod init;
pub mod render;
pub mod status;
pub mod verify;

use std::path::PathBuf;
use std::time::Duration;

use crate::lock::{self, ProjectLock};
use crate::printer::Printer;

/// Options every subcommand sees.
#[derive(Debug, Clone)]
pub struct Global {
    pub spec: PathBuf,
    /// How long to wait for another command on the same project (`--lock-timeout` of the
    /// commands that take the lock).
    pub lock_timeout: Duration,
    /// The one output layer, built in `lib::run`.
    pub printer: Printer,
}

impl Global {
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
