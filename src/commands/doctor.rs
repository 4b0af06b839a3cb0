//! `provision doctor`: not available yet (it needs the docker layer).

use crate::cli::DoctorArgs;
use crate::commands::Global;
use crate::{ExitStatus, UsageError};

pub fn run(_global: &Global, _args: DoctorArgs) -> anyhow::Result<ExitStatus> {
    Err(UsageError("`provision doctor` is not available yet in this version".into()).into())
}
