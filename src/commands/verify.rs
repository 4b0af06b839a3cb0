//! `provision verify`: not available yet (it needs the docker layer).

use crate::cli::VerifyArgs;
use crate::commands::Global;
use crate::{ExitStatus, UsageError};

pub fn run(_global: &Global, _args: VerifyArgs) -> anyhow::Result<ExitStatus> {
    Err(UsageError("`provision verify` is not available yet in this version".into()).into())
}
