//! The validated plan: the only input to rendering. Built from a `Spec` by `validate`, after
//! every rule holds; templates see exactly these fields (minijinja runs in strict mode).

use serde::Serialize;

/// Everything the blueprints need, already checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub project: String,
    /// `consul-template`, `consul-dns` or `docker-dns`.
    pub discovery: String,
    pub uses_consul: bool,
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
    pub replicas: u32,
    pub port: u16,
    pub health_path: String,
    pub workers: u32,
    /// The user's app directory relative to the spec's directory; None for the built-in app.
    pub app_dir: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRedis {
    pub appendfsync: String,
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
    pub balance: String,
    /// As written in the spec (`2s`), valid for HAProxy and consul alike.
    pub check_interval: String,
    pub check_interval_ms: u64,
    pub max_replicas: u32,
    /// `image` or `download`.
    pub consul_template_source: String,
    pub consul_template_version: String,
}
