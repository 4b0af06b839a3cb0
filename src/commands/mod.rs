//! One module per subcommand. Each is thin: it glues spec, render, docker, probe and report.

pub mod apply;
pub mod completions;
pub mod destroy;
pub mod doctor;
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
    /// The spec file.
    pub spec: PathBuf,
    /// Whether the spec was named (`-f`, PROVISION_SPEC), so that advice repeats it.
    pub spec_given: bool,
    pub quiet: bool,
    /// How long to wait for another command on the same project.
    pub lock_timeout: Duration,
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
