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

/// Options every subcommand sees.
#[derive(Debug, Clone)]
pub struct Global {
    pub spec: PathBuf,
    pub quiet: bool,
}
