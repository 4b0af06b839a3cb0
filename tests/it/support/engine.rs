//! The Docker engine the end-to-end tests share: whether they run at all (`start`: the skip
//! rule, docker on PATH, the engine and the rig images), one stack at a time across this binary's
//! threads and across processes (`EngineLock`), and plain `docker` calls independent of the code
//! under test.

use std::io::Write;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::harness::{
    every_check_required, find_on_path, report_skip, run_program, skip_or_fail, Ran,
};

const DOCKER_TIMEOUT: Duration = Duration::from_secs(90);

/// One stack at a time, across every test of this binary, in the order the tests asked for the
/// engine: a ticket each, served in turn. A plain mutex hands the engine to any of its waiters,
/// and the test binary runs several threads (`RUST_TEST_THREADS` in .cargo/config.toml), so
/// several stack tests wait at once; the order matters where scenarios share a stack
/// (e2e_swarm_nodes: the one that destroys the shared stack must come last, or the next one
/// builds it again). Tests ask in the order libtest starts them, which is their names' order.
static ENGINE: TicketQueue = TicketQueue::new();

/// Turns served in the order they were asked for.
struct TicketQueue {
    tickets: Mutex<Tickets>,
    served: Condvar,
}

struct Tickets {
    next: u64,
    serving: u64,
}

/// A ticket whose turn has come; dropping it serves the next one.
struct Turn<'q> {
    queue: &'q TicketQueue,
}

impl TicketQueue {
    const fn new() -> TicketQueue {
        TicketQueue {
            tickets: Mutex::new(Tickets {
                next: 0,
                serving: 0,
            }),
            served: Condvar::new(),
        }
    }

    /// Takes a ticket and waits for its turn.
    fn wait(&self) -> Turn<'_> {
        // A test that panicked holding its turn still dropped it: the queue is usable.
        let mut tickets = self
            .tickets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let ticket = tickets.next;
        tickets.next += 1;
        while tickets.serving != ticket {
            tickets = self
                .served
                .wait(tickets)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        Turn { queue: self }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut tickets = self
            .queue
            .tickets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tickets.serving += 1;
        drop(tickets);
        self.queue.served.notify_all();
    }
}

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
    // Fields drop in this order: the other process's lock first, then the next test's turn.
    _process: std::fs::File,
    _turn: Turn<'static>,
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
    let turn = ENGINE.wait();
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
        _process: file,
        _turn: turn,
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

#[cfg(test)]
mod tests {
    use super::TicketQueue;
    use std::sync::Mutex;
    use std::time::Duration;

    /// Waiters are served in the order they asked, not in whatever order the scheduler wakes
    /// them: the shared-stack scenarios rely on it (see ENGINE).
    #[test]
    fn turns_are_served_in_the_order_they_were_asked_for() {
        static QUEUE: TicketQueue = TicketQueue::new();
        static SERVED: Mutex<Vec<usize>> = Mutex::new(Vec::new());
        let asked = |n: u64| QUEUE.tickets.lock().unwrap().next == n;
        let first = QUEUE.wait();
        let mut waiters = Vec::new();
        for i in 0..6 {
            waiters.push(std::thread::spawn(move || {
                let _turn = QUEUE.wait();
                SERVED.lock().unwrap().push(i);
                std::thread::sleep(Duration::from_millis(5));
            }));
            // The next waiter asks only once this one holds its ticket.
            while !asked(i as u64 + 2) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // Served, and at once asking again: a plain mutex lets this running thread take it
        // before the woken waiters can (barging), a queue sends it to the back.
        drop(first);
        let again = QUEUE.wait();
        SERVED.lock().unwrap().push(99);
        drop(again);
        for waiter in waiters {
            waiter.join().unwrap();
        }
        assert_eq!(*SERVED.lock().unwrap(), vec![0, 1, 2, 3, 4, 5, 99]);
    }
}
