//! `provision render`: placeholder until implemented.

use crate::cli::RenderArgs;
use crate::commands::Global;
use crate::{ExitStatus, UsageError};

pub fn run(_global: &Global, _args: RenderArgs) -> anyhow::Result<ExitStatus> {
    Err(UsageError("`provision render` is not available yet in this version".into()).into())
}
