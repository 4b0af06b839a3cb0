//! consul-template's exec mode around the lb's HAProxy (`discovery: consul-template`): the
//! command the rendered `lb/consul-template.hcl` declares, run the way consul-template runs it.
//!
//! What consul-template does with `exec { command = … }` (hashicorp/consul-template, tag
//! v0.42.1, the newest tag of the upstream repository; read there, not run: no binary can be had
//! offline):
//! - `config/config.go` decodes the configuration with mapstructure's
//!   `StringToSliceHookFunc(",")`: a string command becomes a list, cut at commas
//!   (`config/exec.go`: `Command commandList`);
//! - `child/command-prep.go` `CommandPrep`: a list of ONE element that holds more than one word
//!   is run as `sh -c "<element>"` and reported as a subshell; any other non-empty list is
//!   executed directly;
//! - `manager/runner.go` `spawnChild` passes `Setpgid: subshell`: only the `sh -c` child gets
//!   its own process group; `child/child.go` `signal()` then sends every signal (the reload
//!   signal, the kill signal, any forwarded one) to the negative pid, the whole group;
//! - `manager/runner.go` `Run`: `case c := <-childExitCh` → `NewErrChildDied`: when the child
//!   exits, consul-template exits too; `docs/modes.md`: "If the child process dies, the Consul
//!   Template process will also die. Consul Template does not supervise the process!"
//!
//! So a one-string `haproxy -W -db -f …` runs as `sh -c`, the shell stays HAProxy's parent
//! (Debian's dash does not exec the last command of `-c`), the reload signal SIGUSR2 reaches
//! the shell too and kills it (its default action), consul-template exits, and the lb
//! container with it, on the first re-render: every scale event. The list form runs no shell.
//!
//! Two checks here: a static one on every rendered `consul-template.hcl`, and a harness that
//! does what the child package does (own process group and group signals for a subshell, a
//! direct exec otherwise) around the exact command the HCL declares, with the host's real
//! HAProxy in master-worker mode, under load.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::fixtures::{render_fixture, FIXTURES};
use crate::support::harness::{external_tool, repo_root};

/// The exec block provision rendered before issue 17 (at today's path): one string, hence `sh -c`.
const OLD_EXEC: &str = r#"exec {
  command       = "haproxy -W -db -f /run/haproxy/haproxy.cfg"
  reload_signal = "SIGUSR2"
  kill_signal   = "SIGUSR1"
  kill_timeout  = "5s"
}
"#;

/// The HAProxy configuration path inside the lb image; the harness points it at its own file.
const CONFIG_IN_IMAGE: &str = "/run/haproxy/haproxy.cfg";

/// Programs that are a shell, or start one: none may stand between consul-template and HAProxy.
const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "busybox", "env",
];

/// How consul-template's child package runs an exec command (`CommandPrep` + `spawnChild`).
#[derive(Debug, PartialEq)]
enum Prepared {
    /// `sh -c "<command>"`, in its own process group; signals go to the group.
    Shell(String),
    /// The list executed as it is, in consul-template's process group; signals go to its pid.
    Direct(Vec<String>),
}

/// The `exec` block of a consul-template configuration, as consul-template reads it.
struct Exec {
    /// Whether `command` was written as one string (rather than a list).
    written_as_string: bool,
    command: Vec<String>,
    reload_signal: Signal,
    kill_signal: Signal,
}

impl Exec {
    fn parse(hcl_text: &str) -> Result<Exec, String> {
        let body = hcl::parse(hcl_text).map_err(|e| format!("not HCL: {e}"))?;
        let block = body
            .blocks()
            .find(|b| b.identifier() == "exec")
            .ok_or("no exec block")?;
        let attribute = |key: &str| {
            block
                .body()
                .attributes()
                .find(|a| a.key() == key)
                .map(|a| a.expr().clone())
                .ok_or(format!("exec.{key} is missing"))
        };
        let string = |e: &hcl::Expression| match e {
            hcl::Expression::String(s) => Ok(s.clone()),
            other => Err(format!("not a string: {other}")),
        };
        let (written_as_string, command) = match attribute("command")? {
            // mapstructure's StringToSliceHookFunc(",") (config/config.go).
            hcl::Expression::String(s) => (true, s.split(',').map(str::to_owned).collect()),
            hcl::Expression::Array(items) => {
                (false, items.iter().map(string).collect::<Result<_, _>>()?)
            }
            other => {
                return Err(format!(
                    "exec.command: neither a string nor a list: {other}"
                ))
            }
        };
        let signal = |key: &str| -> Result<Signal, String> {
            let name = string(&attribute(key)?)?;
            Signal::from_str(&name).map_err(|e| format!("exec.{key} = {name}: {e}"))
        };
        Ok(Exec {
            written_as_string,
            command,
            reload_signal: signal("reload_signal")?,
            kill_signal: signal("kill_signal")?,
        })
    }

    /// `child/command-prep.go` `CommandPrep` (v0.42.1), on a system with `sh`.
    fn prepared(&self) -> Result<Prepared, String> {
        match self.command.as_slice() {
            [one] if one.split_whitespace().count() > 1 => Ok(Prepared::Shell(one.clone())),
            [first, ..] if !first.trim().is_empty() => Ok(Prepared::Direct(self.command.clone())),
            _ => Err("empty command (consul-template: exec.ErrNotFound)".to_owned()),
        }
    }

    /// Why this command would put a shell between consul-template and HAProxy, if it would.
    fn shell_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.written_as_string {
            problems.push(format!(
                "exec.command is one string ({:?}): consul-template runs a string with spaces as \
                 `sh -c` in its own process group and sends the reload signal to the whole group, \
                 which kills the shell; write it as a list",
                self.command.join(",")
            ));
        }
        match self.prepared() {
            Ok(Prepared::Shell(_)) => {
                problems.push("exec.command runs as `sh -c` (CommandPrep)".to_owned())
            }
            Ok(Prepared::Direct(argv)) => {
                let program = Path::new(&argv[0])
                    .file_name()
                    .map_or(argv[0].clone(), |n| n.to_string_lossy().into_owned());
                if SHELLS.contains(&program.as_str()) || argv.iter().any(|a| a == "-c") {
                    problems.push(format!(
                        "exec.command {argv:?} starts a shell: the shell, not HAProxy, would get \
                         the reload and kill signals"
                    ));
                }
            }
            Err(e) => problems.push(e),
        }
        problems
    }
}

/// Every rendered consul-template.hcl: each fixture's, and the committed example's.
fn rendered_configs() -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = FIXTURES
        .iter()
        .flat_map(|fixture| {
            render_fixture(fixture)
                .files
                .into_iter()
                .filter(|(rel, _)| rel.ends_with("consul-template.hcl"))
                .map(move |(rel, text)| (format!("{fixture} {rel}"), text))
        })
        .collect();
    let committed = repo_root().join("generated/lb/consul-template.hcl");
    all.push((
        "generated/lb/consul-template.hcl".to_owned(),
        std::fs::read_to_string(&committed).unwrap(),
    ));
    all
}

/// Every rendered exec command is a list that runs HAProxy itself, in master-worker mode and
/// in the foreground (`docs/modes.md`: "The child process must remain in the foreground"),
/// with no shell anywhere between consul-template's signals and HAProxy's master.
#[test]
fn consul_template_exec_runs_haproxy_without_a_shell() {
    let configs = rendered_configs();
    // consul-template, custom and the committed example.
    assert!(configs.len() >= 3, "only {} checked", configs.len());
    for (what, text) in configs {
        let exec = Exec::parse(&text).unwrap_or_else(|e| panic!("{what}: {e}"));
        let problems = exec.shell_problems();
        assert!(problems.is_empty(), "{what}:\n{}", problems.join("\n"));
        let Ok(Prepared::Direct(argv)) = exec.prepared() else {
            unreachable!("no problems means a direct exec")
        };
        assert_eq!(argv[0], "haproxy", "{what}: {argv:?}");
        for flag in ["-W", "-db"] {
            assert!(
                argv.iter().any(|a| a == flag),
                "{what}: no {flag}: {argv:?}"
            );
        }
        assert_eq!(
            exec.reload_signal,
            Signal::SIGUSR2,
            "{what}: HAProxy's reload"
        );
        assert_eq!(
            exec.kill_signal,
            Signal::SIGUSR1,
            "{what}: HAProxy's soft stop"
        );
    }
}

#[test]
fn consul_template_exec_check_refuses_a_shell() {
    let with_command = |command: &str| OLD_EXEC.replace(OLD_EXEC.lines().nth(1).unwrap(), command);
    let problems = |text: &str| Exec::parse(text).unwrap().shell_problems();
    let old = problems(OLD_EXEC);
    assert!(
        old.iter().any(|p| p.contains("one string")) && old.iter().any(|p| p.contains("sh -c")),
        "{old:?}"
    );
    for command in [
        r#"command = ["sh", "-c", "haproxy -W -db -f /run/haproxy/haproxy.cfg"]"#,
        r#"command = ["/bin/bash", "-c", "exec haproxy -W -db"]"#,
        r#"command = ["env", "haproxy", "-W", "-db"]"#,
    ] {
        let found = problems(&with_command(command));
        assert!(
            found.iter().any(|p| p.contains("starts a shell")),
            "{command}: {found:?}"
        );
    }
    // A single word needs no shell (CommandPrep runs it directly), but is still a string.
    let one_word = Exec::parse(&with_command(r#"command = "haproxy""#)).unwrap();
    assert_eq!(
        one_word.prepared(),
        Ok(Prepared::Direct(vec!["haproxy".into()]))
    );
    assert_eq!(one_word.shell_problems().len(), 1);
    let list = with_command(r#"command = ["haproxy", "-W", "-db", "-f", "/x.cfg"]"#);
    assert!(problems(&list).is_empty());
}

// --- The harness ------------------------------------------------------------------------

/// How long a reload may take to show a new worker, and the soft stop to end HAProxy.
const PATIENCE: Duration = Duration::from_secs(5);

/// Who gets a process group of its own.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Grouping {
    /// consul-template v0.42.1: only a `sh -c` subshell (`Setpgid: subshell`).
    AsUpstream,
    /// Every child, so that the signals reach HAProxy's workers as well as its master.
    Always,
}

/// The command consul-template would run, started the way its child package starts it.
struct Supervised {
    child: Child,
    /// Whether the child leads its own process group (a subshell): signals go to the group.
    group: bool,
}

impl Supervised {
    /// Starts `prepared` on `config` as consul-template's child package does; with
    /// `Grouping::Always`, a direct exec too gets a process group of its own and group signals
    /// (as consul-template's `Setsid`/`Setpgid` options of `child.NewInput` would give it).
    fn start(prepared: &Prepared, grouping: Grouping, config: &Path, log: &Path) -> Supervised {
        let config = config.to_str().unwrap();
        let (mut command, group) = match prepared {
            Prepared::Shell(line) => {
                let mut command = Command::new("sh");
                command
                    .arg("-c")
                    .arg(line.replace(CONFIG_IN_IMAGE, config))
                    .process_group(0);
                (command, true)
            }
            Prepared::Direct(argv) => {
                let mut command = Command::new(&argv[0]);
                command.args(argv[1..].iter().map(|a| a.replace(CONFIG_IN_IMAGE, config)));
                let group = grouping == Grouping::Always;
                if group {
                    command.process_group(0);
                }
                (command, group)
            }
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {prepared:?}: {e}"));
        Supervised { child, group }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `child/child.go` `signal()`: the negative pid (the group) for a subshell.
    fn signal(&self, signal: Signal) {
        let pid = self.pid() as i32;
        let target = Pid::from_raw(if self.group { -pid } else { pid });
        // ESRCH when it is gone already: the caller sees that in `exited`.
        let _ = kill(target, signal);
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// HAProxy's master: the child itself, or (under a shell that stays its parent) its child.
    fn master(&self) -> Option<u32> {
        let pid = self.pid();
        if command_name(pid).as_deref() == Some("haproxy") {
            return Some(pid);
        }
        children(pid)
            .into_iter()
            .find(|&c| command_name(c).as_deref() == Some("haproxy"))
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        // Whatever happened, leave no HAProxy behind: the workers, the master, the group.
        let mut pids: Vec<u32> = self.master().into_iter().collect();
        pids.extend(pids.iter().flat_map(|&m| children(m)).collect::<Vec<_>>());
        for pid in pids {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        self.signal(Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// `/proc/PID/comm`.
fn command_name(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// The processes whose parent is `parent` (field 4 of /proc/PID/stat).
fn children(parent: u32) -> BTreeSet<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return BTreeSet::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // The command name, in parentheses, may hold spaces: read after it.
                    let after = &stat[stat.rfind(')')? + 2..];
                    after.split(' ').nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// HTTP requests through HAProxy, one connection each, until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(address: SocketAddr) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, ok, failed, failures) =
                (stop.clone(), ok.clone(), failed.clone(), failures.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match get(address) {
                        Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            failures.lock().unwrap().push(e);
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        Load {
            stop,
            ok,
            failed,
            failures,
            thread: Some(thread),
        }
    }

    /// Stops the load; returns (succeeded, failed, the first failures).
    fn finish(mut self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        let failures = self.failures.lock().unwrap();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            failures.iter().take(5).cloned().collect(),
        )
    }
}

/// One `GET /` on a new connection; Ok when HAProxy answers 200.
fn get(address: SocketAddr) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    let answer = String::from_utf8_lossy(&answer);
    if answer.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!("answer: {:?}", answer.lines().next().unwrap_or("")))
    }
}

/// Polls `probe` until it gives a value, for at most `patience`.
fn wait_for<T>(patience: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if start.elapsed() > patience {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What one harness run saw.
#[derive(Debug, Default)]
struct Outcome {
    reloads_sent: usize,
    /// HAProxy's master PID at the start, then after each reload.
    masters: Vec<Option<u32>>,
    /// Reloads after which a worker that was not there before served.
    new_workers: usize,
    succeeded: u64,
    failed: u64,
    failures: Vec<String>,
    /// The child's exit while it should have been running, and after which reload.
    died: Option<(usize, ExitStatus)>,
    /// The child's exit after the kill signal (None: still running after PATIENCE).
    stopped: Option<ExitStatus>,
    /// HAProxy's messages (master and workers), for the failure report.
    log: String,
}

impl Outcome {
    /// The numbers, for the test's output.
    fn summary(&self) -> String {
        format!(
            "{} reloads sent, masters {:?}, {} new workers, {} requests ok, {} failed, \
             died {:?}, after the kill signal {:?}",
            self.reloads_sent,
            self.masters,
            self.new_workers,
            self.succeeded,
            self.failed,
            self.died,
            self.stopped
        )
    }

    fn problems(&self, reloads: usize) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some((after, status)) = self.died {
            problems.push(format!(
                "the child exited after reload {after} ({status}): consul-template would exit \
                 with it (manager/runner.go: NewErrChildDied)"
            ));
        }
        let first = self.masters.first().copied().flatten();
        if first.is_none() || self.masters.iter().any(|&m| m != first) {
            problems.push(format!("HAProxy's master PID changed: {:?}", self.masters));
        }
        if self.new_workers != reloads {
            problems.push(format!(
                "{} new workers after {reloads} reloads",
                self.new_workers
            ));
        }
        if self.failed > 0 || self.succeeded == 0 {
            problems.push(format!(
                "{} of {} requests failed: {:?}",
                self.failed,
                self.failed + self.succeeded,
                self.failures
            ));
        }
        match self.stopped {
            Some(status) if status.success() => {}
            other => problems.push(format!(
                "after the kill signal: {other:?}, not a clean exit"
            )),
        }
        problems
    }
}

/// Runs the exec block of `hcl_text` as consul-template would, with `reloads` reload signals
/// under load, then the kill signal.
fn run_harness(hcl_text: &str, grouping: Grouping, reloads: usize) -> Outcome {
    let exec = Exec::parse(hcl_text).unwrap();
    let prepared = exec.prepared().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let config = dir.path().join("haproxy.cfg");
    std::fs::write(
        &config,
        format!(
            "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    \
             timeout server 5s\n\nfrontend answer\n    bind {address}\n    \
             http-request return status 200 content-type text/plain string ok\n"
        ),
    )
    .unwrap();

    let mut outcome = Outcome::default();
    let log = dir.path().join("haproxy.log");
    let mut child = Supervised::start(&prepared, grouping, &config, &log);
    let workers = |child: &Supervised| {
        child
            .master()
            .map(|m| {
                children(m)
                    .into_iter()
                    .filter(|&w| command_name(w).as_deref() == Some("haproxy"))
                    .collect::<BTreeSet<_>>()
            })
            .unwrap_or_default()
    };
    let started = wait_for(PATIENCE, || {
        (!workers(&child).is_empty() && get(address).is_ok()).then_some(())
    });
    assert!(
        started.is_some(),
        "HAProxy did not start serving on {address}"
    );
    outcome.masters.push(child.master());

    let load = Load::start(address);
    std::thread::sleep(Duration::from_millis(300));
    for reload in 1..=reloads {
        let before = workers(&child);
        child.signal(exec.reload_signal);
        outcome.reloads_sent += 1;
        let new = wait_for(PATIENCE, || {
            if child.exited().is_some() {
                return Some(false);
            }
            workers(&child)
                .iter()
                .any(|w| !before.contains(w))
                .then_some(true)
        });
        if let Some(status) = child.exited() {
            outcome.died = Some((reload, status));
            break;
        }
        outcome.new_workers += usize::from(new == Some(true));
        // Let the new worker serve a while before the next reload.
        std::thread::sleep(Duration::from_millis(400));
        outcome.masters.push(child.master());
    }
    (outcome.succeeded, outcome.failed, outcome.failures) = load.finish();
    if outcome.died.is_none() {
        if let Some(status) = child.exited() {
            outcome.died = Some((outcome.reloads_sent, status));
        }
    }

    if outcome.died.is_none() {
        child.signal(exec.kill_signal);
        outcome.stopped = wait_for(PATIENCE, || child.exited());
    }
    drop(child);
    outcome.log = std::fs::read_to_string(&log).unwrap_or_default();
    outcome
}

/// The HAProxy binary, or None after the skip rule (`harness::skip_or_fail`).
fn haproxy() -> bool {
    external_tool("haproxy", "process-group harness with a real HAProxy").is_some()
}

/// The rendered list-form command: 5 reloads keep HAProxy's master, each brings a new worker,
/// no request fails meanwhile, and the kill signal (what `docker stop` becomes) stops HAProxy
/// cleanly.
#[test]
fn consul_template_exec_reloads_haproxy_in_place() {
    if !haproxy() {
        return;
    }
    let hcl_text = render_fixture("consul-template").files["lb/consul-template.hcl"].clone();
    let outcome = run_harness(&hcl_text, Grouping::AsUpstream, 5);
    eprintln!("list-form exec command: {}", outcome.summary());
    let problems = outcome.problems(5);
    assert!(
        problems.is_empty(),
        "{}\nHAProxy said:\n{}",
        problems.join("\n"),
        outcome.log
    );
}

/// The one-string command rendered before issue 17 fails the same harness: `sh -c` in its own
/// group, and the first reload signal sent to the group kills the shell.
#[test]
fn consul_template_exec_as_one_string_dies_on_the_first_reload() {
    if !haproxy() {
        return;
    }
    let outcome = run_harness(OLD_EXEC, Grouping::AsUpstream, 5);
    eprintln!("one-string exec command: {}", outcome.summary());
    let problems = outcome.problems(5);
    assert!(
        problems.iter().any(|p| p.contains("the child exited")),
        "the string command survived: {outcome:?}"
    );
    let (after, status) = outcome.died.unwrap();
    assert_eq!(after, 1, "{outcome:?}");
    assert_eq!(status.signal(), Some(Signal::SIGUSR2 as i32), "{outcome:?}");
}

/// The list form's reloads still hold if the signals reach HAProxy's whole process group
/// (workers included), as they would if consul-template ran every child in a group of its own:
/// HAProxy's workers ignore SIGUSR2, so only a shell in between was ever the problem for reloads.
///
/// The kill signal is another matter, and why upstream's list form (no group of its own,
/// signals to the pid alone: manager/runner.go at v0.42.1) is the one to rely on: sent to the
/// group, SIGUSR1 reaches a worker twice, from the group and forwarded by the master. A full CI
/// run saw the second one kill the worker that had begun its soft stop ("Current worker exited
/// with code 138 (User defined signal 1)"), and the master then exit 138: a race, lost or won by
/// timing. So here the stop must end HAProxy, cleanly or not, and nothing more is claimed.
#[test]
fn consul_template_exec_reloads_haproxy_when_its_workers_get_the_signals_too() {
    if !haproxy() {
        return;
    }
    let hcl_text = render_fixture("consul-template").files["lb/consul-template.hcl"].clone();
    let outcome = run_harness(&hcl_text, Grouping::Always, 5);
    eprintln!(
        "list-form exec command, group signals: {}",
        outcome.summary()
    );
    assert!(
        outcome.stopped.is_some(),
        "HAProxy still ran after the kill signal to its group: {outcome:?}"
    );
    let problems: Vec<String> = outcome
        .problems(5)
        .into_iter()
        .filter(|p| !p.starts_with("after the kill signal"))
        .collect();
    assert!(
        problems.is_empty(),
        "{}\nHAProxy said:\n{}",
        problems.join("\n"),
        outcome.log
    );
}
