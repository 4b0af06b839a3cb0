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

    /// The state base directory (`XDG_STATE_HOME`) of every provision command run here: the
    /// project's secrets, releases and lock files are under `<it>/provision/`.
    pub fn state_base(&self) -> PathBuf {
        self.path().join(".state")
    }

    /// Where a command run here keeps the lock of the Compose project `name` (no runtime
    /// directory is passed on, so it is under the state base), its directory created 0700.
    pub fn lock_path(&self, name: &str) -> PathBuf {
        let dir = self.state_base().join("provision");
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(&dir)
            .expect("creating the lock directory");
        dir.join(format!("{name}.lock"))
    }

    /// `provision ARGS` run in this project's directory, with no terminal on stdin.
    pub fn provision(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("provision").expect("the provision binary is built");
        // Each test project keeps its releases and switches in its own state directory, never
        // in the home directory of whoever runs the tests.
        cmd.current_dir(self.path())
            .args(args)
            .env_remove("PROVISION_SPEC")
            // Lock files too: without a runtime directory they go under the state directory.
            .env_remove("XDG_RUNTIME_DIR")
            .env("XDG_STATE_HOME", self.state_base())
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

/// The one skip rule (see `provision::skip_rule`), shared with the unit tests.
pub use provision::skip_rule::{
    every_check_required, external_tool, find_on_path, report_skip, skip_or_fail,
};

/// Writes an executable script (a stand-in for a command a generated script calls).
pub fn write_executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Polls `ok` every 50 ms; fails the test naming `what` after 10 s.
pub fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: not within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
