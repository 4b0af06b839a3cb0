//! The Docker engine the end-to-end tests share: whether they run at all (`start`: the skip
//! rule, docker on PATH, the engine and the rig images), one stack at a time across this binary's
//! threads and across processes (`EngineLock`), and plain `docker` calls independent of the code
//! under test.

use std::io::Write;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::harness::{
    every_check_required, find_on_path, report_skip, run_program, skip_or_fail, Ran,
};

const DOCKER_TIMEOUT: Duration = Duration::from_secs(90);

/// One stack at a time, across every test of this binary.
static ENGINE: Mutex<()> = Mutex::new(());

/// A line on the test's stderr, written directly so that it shows while the test runs (libtest
/// captures only `print!`/`eprint!`); in CI this is the readable story of each e2e run.
pub(crate) fn note(msg: impl AsRef<str>) {
    let mut err = std::io::stderr().lock();
    for line in msg.as_ref().lines() {
        let _ = writeln!(err, "[e2e] {line}");
    }
}

/// `PROVISION_E2E=skip` (or `0`): these tests do not run, even under `CI`.
fn switched_off() -> bool {
    // Also rejects a misspelt value.
    every_check_required();
    matches!(std::env::var("PROVISION_E2E").as_deref(), Ok("skip" | "0"))
}

/// What a skipped e2e test did not check, for its `SKIPPED` line.
const STACK_CHECK: &str = "an end-to-end stack on a real engine";

pub(crate) fn rig_image(name: &str) -> String {
    let prefix =
        std::env::var("PROVISION_RIG_PREFIX").unwrap_or_else(|_| "localhost/provision-rig".into());
    format!("{prefix}/{name}")
}

pub(crate) fn docker(args: &[&str]) -> Ran {
    run_program("docker", args, DOCKER_TIMEOUT)
}

pub(crate) fn image_present(image: &str) -> bool {
    docker(&["image", "inspect", "--format", "{{.Id}}", image]).code == Some(0)
}

/// Why the engine cannot run an e2e stack, or None when it can.
fn engine_problem(images: &[String]) -> Option<String> {
    if find_on_path("docker").is_none() {
        return Some("docker not found on PATH".into());
    }
    let version = docker(&["version", "--format", "{{.Server.Version}}"]);
    if version.code != Some(0) {
        let why = version
            .stderr
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        return Some(format!(
            "no Docker engine answers (`docker version`: {why}); start one (.ci/engine.sh start)"
        ));
    }
    if docker(&["compose", "version", "--short"]).code != Some(0) {
        return Some("the Docker Compose v2 plugin is missing (.ci/install-tools.sh)".into());
    }
    let missing: Vec<&str> = images
        .iter()
        .filter(|image| !image_present(image))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Some(format!(
            "rig images missing: {} (build them with .ci/rig-images.sh)",
            missing.join(", ")
        ));
    }
    None
}

/// The engine, held by one stack test at a time: across this binary's threads (the mutex) and
/// across processes (an flock on a file in the temp directory, released by the kernel when the
/// holder exits, even killed): two test runs on one engine would remove each other's stacks.
/// Dropping it prints how long its test held the engine and waited for it: the tests' share of
/// CI's time, one line per stack test (issue 22: CI time).
pub struct EngineLock {
    _thread: MutexGuard<'static, ()>,
    _process: std::fs::File,
    holder: String,
    waited: Duration,
    since: Instant,
}

impl Drop for EngineLock {
    fn drop(&mut self) {
        note(format!(
            "engine: {} held it {:.1} s (waited {:.1} s for it)",
            self.holder,
            self.since.elapsed().as_secs_f64(),
            self.waited.as_secs_f64()
        ));
    }
}

pub(crate) fn engine_lock() -> EngineLock {
    let asked = Instant::now();
    // A test that panicked while holding the lock cleaned up in its guard: the lock is usable.
    let thread = ENGINE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let path = std::env::temp_dir().join("provision-e2e-engine.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    if file.try_lock().is_err() {
        note(format!(
            "another test run holds the engine ({}): waiting",
            path.display()
        ));
        file.lock()
            .unwrap_or_else(|e| panic!("locking {}: {e}", path.display()));
    }
    EngineLock {
        _thread: thread,
        _process: file,
        // libtest names each test's thread after the test.
        holder: std::thread::current().name().unwrap_or("a test").to_owned(),
        waited: asked.elapsed(),
        since: Instant::now(),
    }
}

/// Takes the engine lock and decides whether the calling test runs: None means skipped (reason
/// printed), and a missing engine fails the test where every check is required.
pub(crate) fn start(images: &[String]) -> Option<EngineLock> {
    if switched_off() {
        report_skip(STACK_CHECK, "PROVISION_E2E=skip");
        return None;
    }
    // Without docker there is no engine to wait for.
    if find_on_path("docker").is_none() {
        skip_or_fail(STACK_CHECK, "docker not found on PATH");
        return None;
    }
    let lock = engine_lock();
    match engine_problem(images) {
        None => Some(lock),
        Some(problem) => {
            skip_or_fail(STACK_CHECK, &problem);
            None
        }
    }
}
