//! The validated plan: the only input to rendering. Built from a `Spec` by `validate`, after
//! every rule holds; templates see exactly these fields (minijinja runs in strict mode).
//!
//! Choices are enums, not strings: a typo in a mode's name does not compile. What a choice implies
//! (which services run, which images are needed, which checks apply) is answered in one place,
//! `stack.rs`, for every command and every blueprint.

use serde::Serialize;

pub use super::model::{AppendFsync, Balance, ConsulTemplateSource, Discovery};

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
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanConsul {
    pub http_port: u16,
    pub datacenter: String,
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
    pub consul_template_source: ConsulTemplateSource,
    pub consul_template_version: String,
}
