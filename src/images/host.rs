//! The host tools the offline images are made with (mmdebstrap, apt-get, dpkg-deb), run through
//! duct the way `docker/` runs docker: each call carries a human summary that becomes its
//! progress step and the start of its error, its output's tail goes into the error, and a missing
//! program is an environment problem (exit 2) that names the Debian package to install.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::docker::shell_quote;
use crate::printer::Printer;
use crate::{ToolError, UsageError};

/// How many trailing output lines a failure quotes.
const ERROR_TAIL_LINES: usize = 25;

/// A program of the host and the Debian package that ships it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostTool {
    pub program: &'static str,
    pub package: &'static str,
}

pub const MMDEBSTRAP: HostTool = HostTool {
    program: "mmdebstrap",
    package: "mmdebstrap",
};
pub const APT_GET: HostTool = HostTool {
    program: "apt-get",
    package: "apt",
};
pub const DPKG_DEB: HostTool = HostTool {
    program: "dpkg-deb",
    package: "dpkg",
};

impl HostTool {
    /// Where the program is on PATH; an environment error naming its package otherwise.
    pub fn locate(self) -> anyhow::Result<PathBuf> {
        find_on_path(self.program).ok_or_else(|| self.missing().into())
    }

    fn missing(self) -> UsageError {
        UsageError(format!(
            "{} is not installed or not on PATH: install it with `apt-get install {}` (as root)",
            self.program, self.package
        ))
    }

    /// One invocation; `summary` says what it is for.
    pub fn call<I, S>(self, summary: impl Into<String>, args: I) -> HostCall
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        HostCall {
            tool: self,
            summary: summary.into(),
            args: args.into_iter().map(Into::into).collect(),
            dir: None,
        }
    }
}

/// One host tool invocation being prepared.
#[derive(Debug, Clone)]
pub struct HostCall {
    tool: HostTool,
    summary: String,
    args: Vec<OsString>,
    dir: Option<PathBuf>,
}

impl HostCall {
    /// Runs in this directory.
    pub fn dir(mut self, dir: &Path) -> Self {
        self.dir = Some(dir.to_owned());
        self
    }

    /// The exact command line, quoted for a POSIX shell.
    pub fn command_line(&self) -> String {
        std::iter::once(shell_quote(self.tool.program.as_ref()))
            .chain(self.args.iter().map(|a| shell_quote(a)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs as a progress step: its latest output line beside the spinner on a terminal, the
    /// tail of its output in the error when it fails.
    pub fn run(self, printer: &Printer) -> anyhow::Result<()> {
        let line = self.command_line();
        let step = printer.step(&self.summary);
        let mut expr = duct::cmd(self.tool.program, &self.args)
            .stdin_null()
            .stderr_to_stdout()
            .unchecked();
        if let Some(dir) = &self.dir {
            expr = expr.dir(dir);
        }
        let reader = expr.reader().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow::Error::new(self.tool.missing())
            } else {
                anyhow::Error::new(e).context(format!("{}: cannot start `{line}`", self.summary))
            }
        })?;
        let mut tail: Vec<String> = Vec::new();
        for text in BufReader::new(&reader).lines() {
            let text = text.with_context(|| format!("reading the output of `{line}`"))?;
            step.output_line(&text);
            tail.push(text);
            if tail.len() > 4 * ERROR_TAIL_LINES {
                tail.drain(..2 * ERROR_TAIL_LINES);
            }
        }
        let ok = reader
            .try_wait()
            .with_context(|| format!("waiting for `{line}`"))?
            .is_some_and(|out| out.status.success());
        if ok {
            step.finish();
            return Ok(());
        }
        step.fail();
        let start = tail.len().saturating_sub(ERROR_TAIL_LINES);
        let mut message = format!("{} failed: `{line}`", self.summary);
        if tail.is_empty() {
            message.push_str(" exited with an error and printed nothing");
        } else {
            message.push_str(" said:");
            for l in &tail[start..] {
                message.push_str("\n  ");
                message.push_str(l);
            }
        }
        Err(ToolError(message).into())
    }
}

/// The first executable named `program` on PATH.
fn find_on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Running as root: mmdebstrap's root mode and apt-get's downloads need it. An environment
/// error (exit 2) otherwise.
pub fn require_root(what: &str) -> anyhow::Result<()> {
    if rustix::process::geteuid().is_root() {
        Ok(())
    } else {
        Err(UsageError(format!(
            "{what} must run as root (mmdebstrap builds the Debian base image in root mode, and \
             apt-get downloads consul's package): run it again with sudo"
        ))
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_names_its_package() {
        let tool = HostTool {
            program: "provision-no-such-program",
            package: "some-package",
        };
        let err = tool.locate().unwrap_err();
        assert!(err.is::<UsageError>());
        assert!(
            err.to_string().contains("apt-get install some-package"),
            "{err}"
        );
        let err = tool
            .call("doing it", ["x"])
            .run(&Printer::quiet())
            .unwrap_err();
        assert!(err.is::<UsageError>(), "{err:#}");
    }

    #[test]
    fn a_failure_quotes_the_command_and_its_output() {
        let tool = HostTool {
            program: "sh",
            package: "dash",
        };
        let err = tool
            .call("saying no", ["-c", "echo nope; exit 3"])
            .run(&Printer::quiet())
            .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("saying no failed: `sh -c 'echo nope; exit 3'` said:"));
        assert!(text.contains("\n  nope"), "{text}");
        assert!(err.is::<ToolError>());
    }
}
