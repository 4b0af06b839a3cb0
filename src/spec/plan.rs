//! The validated plan: the only input to rendering. Built from a `Spec` by `validate`, after
//! every rule holds; templates see exactly these fields (minijinja runs in strict mode).
//!
//! Choices are enums, not strings: a typo in a mode's name does not compile. What a choice implies
//! (which services run, which images are needed, which checks apply) is answered in one place,
//! `stack.rs`, for every command and every blueprint.

use serde::Serialize;

pub use super::model::{AccessLog, AppendFsync, Balance, ConsulTemplateSource, Discovery};

/// Where the stack is deployed. Each target is a variant here and a module of `deploy/` where
/// behaviour differs, not a second copy of the commands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Target {
    /// One Docker host, driven with `docker compose`.
    #[default]
    Compose,
    /// A Docker Swarm, driven with `docker stack deploy` against a manager.
    Swarm(SwarmTarget),
}

/// What a Swarm needs beyond the Compose stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwarmTarget {
    /// Registry prefix every built image is pushed to and every node pulls from.
    pub registry: String,
    /// Placement constraints (`node.role == manager`).
    pub placement: PlanPlacement,
    /// The stack's overlay network is encrypted.
    pub encrypted_network: bool,
    /// The constraint that selects the nodes the lb runs on, one lb on each.
    pub edge: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanPlacement {
    pub consul: String,
    pub redis: String,
}

/// Everything the blueprints need, already checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub project: String,
    pub target: Target,
    pub discovery: Discovery,
    pub images: PlanImages,
    pub web: PlanWeb,
    pub redis: PlanRedis,
    pub consul: PlanConsul,
    pub lb: PlanLb,
    pub deploy: PlanDeploy,
}

/// The canary's thresholds (see `model::Deploy`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PlanDeploy {
    pub max_error_rate: f64,
    pub max_latency_ratio: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanImages {
    pub base: String,
    pub consul: String,
    pub registrator: String,
    pub consul_template: String,
    /// A prebuilt redis image, or None to build redis from `base`.
    pub redis: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanWeb {
    /// Name of the Compose service and of the service in the registry.
    pub service: String,
    /// The consul tag registrator gives this project's web services (consul-template mode).
    /// registrator registers every container of the engine that names a service, another
    /// project's too; the lb selects only services carrying this tag.
    pub registry_tag: String,
    pub replicas: u32,
    pub port: u16,
    pub health_path: String,
    pub workers: u32,
    /// The user's app directory relative to the spec's directory; None for the built-in app.
    pub app_dir: Option<String>,
    /// What verify counts as an answer from the user's app (empty for the built-in app).
    pub expect: PlanExpect,
    /// How many of the latest releases keep their images.
    pub keep_releases: u32,
    /// `web.env`: rendered into the stack files as written.
    pub env: std::collections::BTreeMap<String, String>,
    /// `web.env_file`, relative to the spec's directory: read at apply time, never rendered.
    pub env_file: Option<String>,
    /// `web.secrets`, by the name the app sees; only names and places, never a value.
    pub secrets: Vec<PlanSecret>,
    /// Memory limit per replica, as Docker reads it (`256m`).
    pub memory: String,
}

/// One secret of the app: the name it sees (`/run/secrets/<name>`, `<name>_FILE`) and where
/// provision reads the value at apply time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanSecret {
    pub name: String,
    pub source: PlanSecretSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "from")]
pub enum PlanSecretSource {
    /// A file, relative to the spec's directory.
    File(String),
    /// A variable of provision's own environment.
    Env(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlanExpect {
    /// The HTTP status; any 2xx when None.
    pub status: Option<u16>,
    /// Text the body must contain.
    pub contains: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRedis {
    pub appendfsync: AppendFsync,
    /// Memory limit of the container (`256m`).
    pub memory: String,
    /// redis' `maxmemory` in bytes, below the container's limit (`spec::memory`).
    pub maxmemory: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanConsul {
    /// 1 (`-dev`), or 3 or 5 servers in Raft, one per node (a Swarm in consul-dns mode only).
    pub servers: u32,
    /// Published on 127.0.0.1 when set (`consul.http_port`).
    pub http_port: Option<u16>,
    pub datacenter: String,
    /// Memory limit of the container (`256m`).
    pub memory: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanLb {
    pub port: u16,
    pub stats_port: u16,
    pub balance: Balance,
    /// As written in the spec (`2s`), valid for HAProxy and consul alike.
    pub check_interval: String,
    pub check_interval_ms: u64,
    /// HAProxy's `timeout server`, as written in the spec (`30s`).
    pub server_timeout: String,
    pub max_replicas: u32,
    pub access_log: AccessLog,
    pub consul_template_source: ConsulTemplateSource,
    pub consul_template_version: String,
    /// Memory limit of the container (`256m`).
    pub memory: String,
    /// HAProxy's global `maxconn`, sized from the memory limit (`spec::memory`).
    pub maxconn: u64,
    /// HTTPS on the lb, when on.
    pub tls: Option<PlanTls>,
}

/// HTTPS on the lb.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanTls {
    pub source: TlsSource,
    /// Host (and container) port of HTTPS.
    pub port: u16,
    /// Plain HTTP answers 301 to HTTPS.
    pub redirect: bool,
    /// `Strict-Transport-Security` max-age in seconds.
    pub hsts: Option<u32>,
}

/// Where the lb's certificate comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TlsSource {
    /// Generated once by provision, valid for localhost, 127.0.0.1 and `names`.
    SelfSigned { names: Vec<String> },
    /// PEM files beside the spec, read at apply.
    Files { cert: String, key: String },
}
