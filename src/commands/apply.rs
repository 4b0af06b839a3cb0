//! `provision apply`: not available yet (it needs the docker layer).

use crate::cli::ApplyArgs;
use crate::commands::Global;
use crate::{ExitStatus, UsageError};

pub fn run(_global: &Global, _args: ApplyArgs) -> anyhow::Result<ExitStatus> {
    Err(UsageError("`provision apply` is not available yet in this version".into()).into())
}
