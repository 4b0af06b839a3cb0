//! `provision status`: not available yet (it needs the docker layer).

use crate::cli::StatusArgs;
use crate::commands::Global;
use crate::{ExitStatus, UsageError};

pub fn run(_global: &Global, _args: StatusArgs) -> anyhow::Result<ExitStatus> {
    Err(UsageError("`provision status` is not available yet in this version".into()).into())
}
