//! `provision init`: placeholder until implemented.

use crate::cli::InitArgs;
use crate::commands::Global;
use crate::{ExitStatus, UsageError};

pub fn run(_global: &Global, _args: InitArgs) -> anyhow::Result<ExitStatus> {
    Err(UsageError("`provision init` is not available yet in this version".into()).into())
}
