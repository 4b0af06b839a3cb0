//! What the blueprints see: the plan, the flags its choices imply, the built images' tags and the
//! timings the blueprints share.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::spec::{Features, Plan};

/// HashiCorp's release signing key (the one hashicorp/docker-consul and HashiCorp's other
/// Dockerfiles fetch by this full fingerprint).
pub const HASHICORP_PGP_FINGERPRINT: &str = "C874011F0AB405110D02105534365D9472D7468F";

/// consul-dns: the signal provision sends a web replica (its entrypoint, PID 1) before `docker
/// stop` once the replica is in maintenance in HAProxy and HAProxy shows no request in flight
/// on it: nothing will come and nothing is left to finish, so its entrypoint stops gunicorn at
/// once, without the `drain_seconds` wait and graceful stop a plain `docker stop` gets. An entrypoint that does not handle it (a
/// replica started before) ignores it: the kernel drops a signal to a namespace's PID 1 that
/// has no handler for it.
pub const DRAINED_SIGNAL: &str = "SIGUSR1";

/// consul-dns: the header consul's check of a web replica carries, naming the replica it was
/// registered for. The built-in app's health path answers 421 (Misdirected Request) when it
/// names another one: on a Swarm a killed task's registration can outlive it on a live consul
/// server, and once Swarm gives its address to a new task, an unnamed check would pass there
/// and keep a dead replica listed (the node-loss e2e saw "8 of 6 passing").
pub const REPLICA_HEADER: &str = "X-Provision-Replica";

/// Timings the blueprints share, in one place so they stay consistent with each other.
#[derive(Debug, Clone, Serialize)]
pub struct Tuning {
    /// consul-dns: how long a stopping replica waits after deregistering. Longer than HAProxy's
    /// `timeout resolve` plus a request's round trip, so HAProxy stops sending it requests first.
    pub drain_seconds: u64,
    /// consul-dns: the signal after which a stopping replica skips that wait ([`DRAINED_SIGNAL`]).
    pub drained_signal: &'static str,
    /// HAProxy's DNS re-resolution interval: how soon a new replica is routed (one or two
    /// resolutions in consul-dns mode) and a leaving one is dropped. A quarter of a second: a
    /// rollout or a scale-up waits on it once per batch (bench/runs/2026-12-06-rollout.md, parts
    /// 3 and 4); four small DNS queries a second left HAProxy's idle CPU where it was (9.2 ms
    /// against 9.0 ms a second with 500 ms).
    pub resolve_timeout: &'static str,
    /// gunicorn's time to finish in-flight requests after SIGTERM.
    pub graceful_timeout_seconds: u64,
    /// Threads per gunicorn worker (gthread): requests one worker serves at once. A request
    /// mostly waits on redis, so a few threads per process keep both cores busy.
    pub gunicorn_threads: u32,
    /// How long gunicorn keeps an idle connection open: longer than HAProxy keeps the idle
    /// connections it does not need (`pool-purge-delay`, 5 s by default), so HAProxy closes them.
    pub gunicorn_keep_alive_seconds: u64,
    /// Compose's wait before SIGKILL: drain + graceful timeout + margin.
    pub stop_grace_period: String,
    /// Swarm: the pause between two batches of a rolling update. None: a batch's old tasks leave
    /// only after its new ones are healthy, and HAProxy routes those within a second (bench
    /// runs: bench/runs/2026-12-06-swarm-rollout.md).
    pub swarm_update_delay: &'static str,
    /// Swarm: how long a task is watched after it was updated; a failure within it rolls the
    /// service back. Every rollout waits it out once, after its last batch, so it is most of a
    /// small rollout's time. It catches a new task that exits soon after its first passing
    /// check; one that turns unhealthy later (3 failed checks 5 s apart) is replaced by Swarm's
    /// restart, not rolled back.
    pub swarm_update_monitor: &'static str,
    /// Swarm: web's health check start period, checked every second (`start_interval`): a new
    /// replica is routed about a second after it answers. Longer than the built-in app takes to
    /// start on a busy node.
    pub swarm_web_start_period: &'static str,
    /// Swarm: the same watch while rolling back, to the version that ran healthy before: short,
    /// so a failed apply reports soon.
    pub swarm_rollback_monitor: &'static str,
    /// consul-template quiescence (`wait { min max }`).
    pub template_wait_min: &'static str,
    pub template_wait_max: &'static str,
    /// Most processes (threads count) in each service's container: generous for what it runs,
    /// low enough that a fork bomb in one service stops there.
    pub pids: Pids,
    /// registrator's memory limit (a small Go program; not in the spec).
    pub registrator_memory: &'static str,
    /// docker-proxy's memory limit (an HAProxy with a handful of connections).
    pub docker_proxy_memory: &'static str,
}

/// `pids_limit` per service. Go programs (consul, registrator, consul-template) start a thread
/// per busy core and per blocking call; gunicorn a process per worker; HAProxy a thread per core,
/// twice during a reload, plus the health check's socat.
#[derive(Debug, Clone, Serialize)]
pub struct Pids {
    pub consul: u32,
    pub docker_proxy: u32,
    pub registrator: u32,
    pub redis: u32,
    pub web: u32,
    pub lb: u32,
}

impl Tuning {
    pub fn standard() -> Self {
        let drain_seconds = 2;
        let graceful_timeout_seconds = 5;
        Tuning {
            drain_seconds,
            drained_signal: DRAINED_SIGNAL,
            resolve_timeout: "250ms",
            graceful_timeout_seconds,
            gunicorn_threads: 4,
            gunicorn_keep_alive_seconds: 30,
            stop_grace_period: format!("{}s", drain_seconds + graceful_timeout_seconds + 5),
            swarm_update_delay: "0s",
            swarm_update_monitor: "8s",
            swarm_web_start_period: "5s",
            swarm_rollback_monitor: "5s",
            template_wait_min: "500ms",
            template_wait_max: "2s",
            pids: Pids {
                consul: 256,
                docker_proxy: 32,
                registrator: 128,
                redis: 64,
                web: 256,
                lb: 128,
            },
            registrator_memory: "64m",
            docker_proxy_memory: "32m",
        }
    }
}

/// The template context of one render.
#[derive(Serialize)]
pub(super) struct Context<'a> {
    pub plan: &'a Plan,
    /// What the plan's choices imply, as flags the blueprints branch on (`stack.rs`).
    pub stack: Features,
    pub tags: BTreeMap<&'static str, String>,
    /// Per Compose service, a hash of its own section of compose.yaml (label
    /// `org.provision.config`): `apply` compares it with the running containers' label to know,
    /// without asking Compose, that nothing changed.
    pub config_hashes: BTreeMap<String, String>,
    /// Per service with a live configuration (`Plan::live_config`), a hash of everything of it
    /// but that file (label `org.provision.restart-key`): while a running container carries the
    /// file's value, what changed is that file alone, which `apply` delivers in place.
    pub restart_keys: BTreeMap<String, String>,
    /// On a Swarm: each built image's name in the registry (empty with Compose).
    pub pushed: BTreeMap<&'static str, String>,
    pub web_context: String,
    pub tuning: Tuning,
    pub hashicorp_pgp_fingerprint: &'static str,
    pub replica_header: &'static str,
}
