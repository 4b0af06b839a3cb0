//! Shared test helpers: a temporary project directory, a fluent way to run the built binary, and
//! the one rule for checks that need something outside the repository.
//!
//! That rule: a check that needs a tool (docker, haproxy, hadolint, shellcheck, python3, ...) or
//! a Docker engine skips when it is missing, printing one line `SKIPPED <test> (<check>): <why>`,
//! except where every check must run: when `CI` is set (and not `false`) or
//! `PROVISION_E2E=require`. There a missing tool fails the test.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;

/// A temporary directory that holds one project (spec, generated files).
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Self {
        Project {
            dir: tempfile::tempdir().expect("create a temporary directory"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn write(&self, relative: &str, contents: &str) -> &Self {
        let path = self.file(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
        self
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.file(relative))
            .unwrap_or_else(|e| panic!("read {relative}: {e}"))
    }

    /// `provision ARGS` run in this project's directory, with no terminal on stdin.
    pub fn provision(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("provision").expect("the provision binary is built");
        cmd.current_dir(self.path())
            .args(args)
            .env_remove("PROVISION_SPEC")
            .env("NO_COLOR", "1");
        cmd
    }
}

impl Project {
    /// Runs `provision ARGS` here with extra environment, killed after `timeout`; never panics,
    /// so the caller can assert on the outcome and dump it.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Ran {
        let mut cmd = self.provision(args);
        for (key, value) in env {
            cmd.env(key, value);
        }
        let env_words: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
        let line = format!("{}provision {}", env_words.concat(), args.join(" "));
        Ran::capture(line, Some(self.path().to_owned()), &mut cmd, timeout)
    }
}

/// Runs any program (docker, mostly), killed after `timeout`.
pub fn run_program(program: &str, args: &[&str], timeout: Duration) -> Ran {
    let mut cmd = Command::new(program);
    cmd.args(args);
    Ran::capture(
        format!("{program} {}", args.join(" ")),
        None,
        &mut cmd,
        timeout,
    )
}

/// A finished command: how it was called and everything it said. `Display` dumps all of it, so a
/// failing assertion shows the command, its exit status, its stdout and its stderr.
pub struct Ran {
    pub line: String,
    pub cwd: Option<PathBuf>,
    /// None when killed (by the timeout or a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub timed_out: bool,
}

impl Ran {
    pub fn capture(
        line: String,
        cwd: Option<PathBuf>,
        cmd: &mut Command,
        timeout: Duration,
    ) -> Ran {
        let start = Instant::now();
        let output = cmd
            .timeout(timeout)
            .output()
            .unwrap_or_else(|e| panic!("could not start `{line}`: {e}"));
        let elapsed = start.elapsed();
        Ran {
            code: output.status.code(),
            timed_out: output.status.code().is_none() && elapsed >= timeout,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            line,
            cwd,
            elapsed,
        }
    }

    /// Panics with the whole dump unless the command exited with `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        if self.code != Some(code) {
            panic!("expected exit code {code}\n{self}");
        }
        self
    }

    #[track_caller]
    pub fn expect_success(&self) -> &Self {
        self.expect_code(0)
    }

    /// stdout and stderr together, for "does the output mention X" checks.
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl fmt::Display for Ran {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "command: {}", self.line)?;
        if let Some(cwd) = &self.cwd {
            writeln!(f, "cwd: {}", cwd.display())?;
        }
        match (self.code, self.timed_out) {
            (Some(code), _) => writeln!(f, "exit code: {code} after {:.1?}", self.elapsed)?,
            (None, true) => writeln!(f, "KILLED: still running after {:.1?}", self.elapsed)?,
            (None, false) => writeln!(f, "killed by a signal after {:.1?}", self.elapsed)?,
        }
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr ---\n{}", self.stderr.trim_end())
    }
}

/// The repository root (for fixtures and the committed example).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file (anything but a directory) under `dir` by relative path, with its contents.
pub fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|entry| entry.unwrap())
        .filter(|entry| !entry.file_type().is_dir())
        .map(|entry| {
            let rel = entry.path().strip_prefix(dir).unwrap();
            let rel = rel.to_string_lossy().into_owned();
            (rel, std::fs::read(entry.path()).unwrap())
        })
        .collect()
}

/// Whether every check must run, so that a missing tool or engine is a failure rather than a
/// skip: `PROVISION_E2E=require` (or `1`), or `CI` set to anything but `false`. `.ci/run` sets both.
pub fn every_check_required() -> bool {
    match std::env::var("PROVISION_E2E").as_deref() {
        Ok("require" | "1") => true,
        Ok("skip" | "0" | "") | Err(_) => {
            std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
        }
        Ok(other) => panic!("PROVISION_E2E={other}: expected `require`, `skip`, or unset"),
    }
}

/// Prints that `check` of the running test did not run, and why, as one line. It is written to
/// the process's stderr directly, past libtest's capture, so that it shows in every run and
/// `cargo test 2>&1 | grep ^SKIPPED` lists them all; in one write, so that it cannot be cut by
/// libtest's own lines.
pub fn report_skip(check: &str, why: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    let line = format!("SKIPPED {test} ({check}): {why}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `check` cannot run, because of `why`: skips it (see [`report_skip`]), or fails the test where
/// every check is required (see [`every_check_required`]).
#[track_caller]
pub fn skip_or_fail(check: &str, why: &str) {
    if every_check_required() {
        panic!(
            "{check} must run here (CI or PROVISION_E2E=require is set), but {why}; \
             .ci/install-tools.sh installs every tool the tests use"
        );
    }
    report_skip(check, why);
}

/// The path of `tool` on PATH, for `check`; None (after [`skip_or_fail`]) when it is not there.
#[track_caller]
pub fn external_tool(tool: &str, check: &str) -> Option<PathBuf> {
    let found = find_on_path(tool);
    if found.is_none() {
        skip_or_fail(check, &format!("{tool} not found on PATH"));
    }
    found
}

/// The first executable file named `program` in a PATH directory, as a shell would find it.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|path| {
            std::fs::metadata(path)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}
