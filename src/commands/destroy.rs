//! `provision destroy`: not available yet (it needs the docker layer).

use crate::cli::DestroyArgs;
use crate::commands::Global;
use crate::{ExitStatus, UsageError};

pub fn run(_global: &Global, _args: DestroyArgs) -> anyhow::Result<ExitStatus> {
    Err(UsageError("`provision destroy` is not available yet in this version".into()).into())
}
