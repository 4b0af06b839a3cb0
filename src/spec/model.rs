//! The serde model of `provision.yaml`: what a user may write, with defaults for everything optional.
//!
//! Values that have a format of their own (names, image references, durations, paths) are newtypes
//! that check themselves while they are deserialized, so a bad value is reported by serde_yaml with
//! the field's path, line and column. Whole numbers are read by `number.rs` (ranges, quoted
//! numerals). Rules that relate several fields live in `validate.rs`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::inputs::{EnvValue, SecretSource};
use super::memory::Memory;
use super::number;

/// The whole spec.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Compose project name; also names images, networks and the redis volume.
    pub project: ProjectName,
    /// Where the stack runs: one Docker host (Compose) or a Docker Swarm.
    #[serde(default)]
    pub target: Target,
    /// How the load balancer learns which web replicas exist.
    #[serde(default)]
    pub discovery: Discovery,
    /// The image of every component, overridable for private registries and air-gapped sites.
    #[serde(default)]
    pub images: Images,
    #[serde(default)]
    pub web: Web,
    #[serde(default)]
    pub redis: Redis,
    #[serde(default)]
    pub consul: Consul,
    #[serde(default)]
    pub lb: LoadBalancer,
    /// How a new web version is judged by `apply --canary` (docs/canary.md).
    #[serde(default)]
    pub deploy: Deploy,
}

/// The deployment target.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Target {
    pub kind: TargetKind,
    /// Swarm only: where every node pulls the built images from (`host[:port][/path]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<Registry>,
    /// Swarm only: placement constraints of the services that hold state.
    pub placement: Placement,
    /// Swarm only: encrypt the stack's overlay network (IPsec between the nodes). Off by
    /// default: it needs the nodes' kernels to accept IPsec security associations (XFRM), which
    /// the nodes of this project's test swarm (Docker in Docker) refuse (docs/security.md).
    pub encrypted_network: bool,
    /// Swarm only: the edge nodes, a placement constraint. The lb runs on every node it selects
    /// (a global service), each publishing the lb's port in host mode.
    pub edge: Edge,
}

/// The constraint that selects the Swarm's edge nodes (default: every manager).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Edge(pub Constraint);

impl Default for Edge {
    fn default() -> Self {
        Edge(Constraint(defaults::PLACEMENT.into()))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// One Docker host, `docker compose`.
    #[default]
    Compose,
    /// A Docker Swarm, `docker stack deploy` against a manager.
    Swarm,
}

/// Swarm placement constraints, one per pinned service. Each pinned service must land on a node
/// the manager can `docker exec` into (consul) or where its volume is (redis, consul).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Placement {
    pub consul: Constraint,
    pub redis: Constraint,
    /// Read only to say where it went: the lb's nodes are `target.edge` now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lb: Option<Constraint>,
}

impl Default for Placement {
    fn default() -> Self {
        let manager = || Constraint(defaults::PLACEMENT.into());
        Placement {
            consul: manager(),
            redis: manager(),
            lb: None,
        }
    }
}

/// Service discovery modes. New modes are added as variants here and as blueprint branches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Discovery {
    /// registrator registers containers in consul; consul-template renders haproxy.cfg and
    /// reloads HAProxy (the reference system).
    #[default]
    ConsulTemplate,
    /// Each web replica registers itself in consul; HAProxy resolves consul's DNS SRV records.
    ConsulDns,
    /// HAProxy resolves the web service through Docker's embedded DNS; no consul.
    DockerDns,
}

impl Discovery {
    pub fn as_str(self) -> &'static str {
        match self {
            Discovery::ConsulTemplate => "consul-template",
            Discovery::ConsulDns => "consul-dns",
            Discovery::DockerDns => "docker-dns",
        }
    }
}

impl fmt::Display for Discovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Images. `base` is the FROM of every image provision builds (web, lb, and redis unless
/// `redis` names a prebuilt one); the others are run as they are.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Images {
    pub base: ImageRef,
    pub consul: ImageRef,
    pub registrator: ImageRef,
    pub consul_template: ImageRef,
    pub redis: Option<ImageRef>,
}

impl Default for Images {
    fn default() -> Self {
        Images {
            base: ImageRef::new_unchecked(defaults::BASE_IMAGE),
            consul: ImageRef::new_unchecked(defaults::CONSUL_IMAGE),
            registrator: ImageRef::new_unchecked(defaults::REGISTRATOR_IMAGE),
            consul_template: ImageRef::new_unchecked(defaults::CONSUL_TEMPLATE_IMAGE),
            redis: None,
        }
    }
}

/// Default images and versions, in one place so README, example spec and code agree.
pub mod defaults {
    use super::Memory;

    /// Debian 13, the current stable: HAProxy 3.0 LTS, Python 3.13, redis 8. Oldstable
    /// (`debian:bookworm-slim`: HAProxy 2.6, Python 3.11) still works; tests/fixtures/bookworm
    /// keeps it checked.
    pub const BASE_IMAGE: &str = "debian:trixie-slim";
    /// The 1.22 line (a moving minor tag, so patch releases arrive). 2.0 exists but is a major
    /// release this project has not been tested against.
    pub const CONSUL_IMAGE: &str = "hashicorp/consul:1.22";
    /// A maintained fork of gliderlabs/registrator: gliderlabs' `latest` (v7, 2016) has a
    /// schema-1 manifest that Docker >= 26 refuses to pull. Same flags and SERVICE_* labels.
    pub const REGISTRATOR_IMAGE: &str = "fayrus/registrator:v9.0.6";
    /// HashiCorp publishes full-version tags; the image carries a static /bin/consul-template.
    pub const CONSUL_TEMPLATE_IMAGE: &str = "hashicorp/consul-template:0.43.0";
    pub const CONSUL_TEMPLATE_VERSION: &str = "0.43.0";
    /// Swarm: the manager is the node provision's engine is, so `docker exec` reaches the
    /// services pinned there, and their named volumes stay on it.
    pub const PLACEMENT: &str = "node.role == manager";
    /// Memory limits. Measured idle with the offline images (docker stats): a built-in web
    /// replica with 2 gunicorn workers, consul 1.8.7 -dev, redis and HAProxy each stay under a
    /// tenth of these; the rest is headroom for load, reloads and AOF rewrites.
    pub const WEB_MEMORY: Memory = Memory::mib(256);
    pub const REDIS_MEMORY: Memory = Memory::mib(256);
    pub const CONSUL_MEMORY: Memory = Memory::mib(256);
    pub const LB_MEMORY: Memory = Memory::mib(256);
}

/// The web service.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Web {
    /// Replicas started by `apply`.
    #[serde(deserialize_with = "number::count")]
    pub replicas: u32,
    /// Port the app listens on inside its container.
    #[serde(deserialize_with = "number::port")]
    pub port: u16,
    /// Path that answers 200 when the replica can serve (used by every health check).
    pub health_path: UrlPath,
    /// `builtin` (the hit counter) or a directory holding the user's app and its Dockerfile.
    pub app: App,
    /// Let `app` resolve outside the spec's directory (after following symlinks). Off: a spec
    /// cannot make provision build (and so read) a directory its own tree does not hold.
    pub app_outside_spec_dir: bool,
    /// gunicorn worker processes per replica (built-in app only), each with a few threads
    /// (gthread workers, which keep the load balancer's connections open between requests).
    #[serde(deserialize_with = "number::workers")]
    pub workers: u32,
    /// What `verify` counts as an answer from your own app (the built-in app is checked by its
    /// JSON).
    pub expect: Expect,
    /// How many of the latest releases keep their images (for `provision rollback`); older
    /// releases' images are removed after a successful apply.
    #[serde(deserialize_with = "number::keep_releases")]
    pub keep_releases: u32,
    /// Environment variables of every replica, as written here (not secret: they are rendered
    /// into `generated/`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<EnvName, EnvValue>,
    /// A dotenv file beside the spec whose variables every replica gets; read at apply time and
    /// delivered from the state directory, never copied into `generated/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_file: Option<SpecFile>,
    /// Secrets by the name the app sees (`/run/secrets/NAME`, and `NAME_FILE` naming that file):
    /// a file beside the spec, or `{env: VARIABLE}` of the shell that runs provision.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<EnvName, SecretSource>,
    /// Memory limit of each replica (the container's hard limit).
    pub memory: Memory,
}

/// What `verify` expects your own app to answer at `/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Expect {
    /// The HTTP status; any 2xx when not set.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "number::http_status"
    )]
    pub status: Option<u16>,
    /// Text the body must contain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contains: Option<BodyText>,
}

impl Default for Web {
    fn default() -> Self {
        Web {
            replicas: 1,
            port: 5000,
            health_path: UrlPath("/health".into()),
            app: App::Builtin,
            app_outside_spec_dir: false,
            workers: 2,
            expect: Expect::default(),
            keep_releases: crate::releases::DEFAULT_KEEP,
            env: BTreeMap::new(),
            env_file: None,
            secrets: BTreeMap::new(),
            memory: defaults::WEB_MEMORY,
        }
    }
}

/// Which web app to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum App {
    Builtin,
    /// A directory (relative to the spec's directory) with a Dockerfile.
    Dir(SafePath),
}

impl Serialize for App {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            App::Builtin => s.serialize_str("builtin"),
            App::Dir(p) => s.serialize_str(&p.0),
        }
    }
}

impl<'de> Deserialize<'de> for App {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_checked(d, "`builtin` or the directory of your app", |raw| {
            if raw == "builtin" {
                return Ok(App::Builtin);
            }
            SafePath::try_from(raw)
                .map(App::Dir)
                .map_err(|e| format!("{e}; or `builtin` for the hit counter"))
        })
    }
}

/// Redis, the counter's store. Append-only persistence is always on.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Redis {
    /// How often the append-only file is synced to disk.
    pub appendfsync: AppendFsync,
    /// Memory limit of the container; redis' own `maxmemory` is half of it.
    pub memory: Memory,
}

impl Default for Redis {
    fn default() -> Self {
        Redis {
            appendfsync: AppendFsync::Everysec,
            memory: defaults::REDIS_MEMORY,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppendFsync {
    Always,
    Everysec,
    No,
}

/// The thresholds a canary is judged by: the new version's servers against the old ones', from
/// HAProxy's counters over the canary's window (docs/canary.md).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Deploy {
    /// How much higher the new servers' error rate (5xx answers and failed connections or
    /// responses, per request) may be than the old ones', as a fraction: 0.05 = 5 points.
    #[serde(deserialize_with = "fraction")]
    pub max_error_rate: f64,
    /// How many times the old servers' average response time the new ones' may reach.
    #[serde(deserialize_with = "ratio")]
    pub max_latency_ratio: f64,
}

impl Default for Deploy {
    fn default() -> Self {
        Deploy {
            max_error_rate: 0.05,
            max_latency_ratio: 3.0,
        }
    }
}

/// A number from 0 to 1.
fn fraction<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let value = f64::deserialize(d)?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(serde::de::Error::custom(format!(
            "{value} is not a fraction from 0 to 1 (0.05 means 5%)"
        )))
    }
}

/// A finite number of at least 1.
fn ratio<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let value = f64::deserialize(d)?;
    if value.is_finite() && value >= 1.0 {
        Ok(value)
    } else {
        Err(serde::de::Error::custom(format!(
            "{value} is not a ratio of at least 1 (3 means three times as slow)"
        )))
    }
}

/// The consul agent: one server, or a Raft cluster of three or five on a Swarm; with ACLs.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Consul {
    /// How many consul servers: 1, or (a Swarm in consul-dns mode) 3 or 5, one per node, so that
    /// discovery goes on when a node is lost (docs/swarm.md, "Losing a node").
    pub servers: ConsulServers,
    /// Host port for consul's HTTP API and UI, published on 127.0.0.1 only; left out, consul is
    /// not published at all (provision reaches it through `docker exec`).
    #[serde(
        deserialize_with = "number::optional_port",
        skip_serializing_if = "Option::is_none"
    )]
    pub http_port: Option<u16>,
    /// Consul datacenter name.
    pub datacenter: Name,
    /// Memory limit of the container.
    pub memory: Memory,
}

impl Default for Consul {
    fn default() -> Self {
        Consul {
            servers: ConsulServers::One,
            http_port: None,
            datacenter: Name("dc1".into()),
            memory: defaults::CONSUL_MEMORY,
        }
    }
}

/// How many consul servers run. An odd number: a Raft cluster of 3 keeps a majority (a leader,
/// and so writes) with one server lost, 5 with two; an even number adds no tolerance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "u32", into = "u32")]
pub enum ConsulServers {
    /// A single server (`-dev`: its catalog in memory, filled again by the replicas).
    #[default]
    One,
    /// A Raft cluster spread one per node: survives the loss of one.
    Three,
    /// A Raft cluster spread one per node: survives the loss of two.
    Five,
}

impl ConsulServers {
    pub fn count(self) -> u32 {
        match self {
            ConsulServers::One => 1,
            ConsulServers::Three => 3,
            ConsulServers::Five => 5,
        }
    }

    /// Several servers in Raft, rather than one in `-dev` mode.
    pub fn is_cluster(self) -> bool {
        self != ConsulServers::One
    }
}

impl TryFrom<u32> for ConsulServers {
    type Error = String;
    fn try_from(n: u32) -> Result<Self, String> {
        match n {
            1 => Ok(ConsulServers::One),
            3 => Ok(ConsulServers::Three),
            5 => Ok(ConsulServers::Five),
            _ => Err(format!(
                "{n} consul servers: use 1, 3 or 5 (a Raft cluster needs a majority of its \
                 servers: an even number survives no more losses than the odd one below it)"
            )),
        }
    }
}

impl From<ConsulServers> for u32 {
    fn from(servers: ConsulServers) -> u32 {
        servers.count()
    }
}

/// The HAProxy load balancer.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadBalancer {
    /// Host port the load balancer publishes (on every interface).
    #[serde(deserialize_with = "number::port")]
    pub port: u16,
    /// Host port for HAProxy's stats page, published on 127.0.0.1 only.
    #[serde(deserialize_with = "number::port")]
    pub stats_port: u16,
    /// HAProxy balance algorithm.
    pub balance: Balance,
    /// Interval between health checks of each web replica.
    pub check_interval: Duration,
    /// How long HAProxy waits for a replica's answer (`timeout server`). A GET or HEAD not
    /// answered by then (its node died with it in flight) is retried on another replica, so a
    /// client whose own timeout is longer sees no failure.
    pub server_timeout: Duration,
    /// Most web replicas the load balancer can route to (HAProxy server slots).
    #[serde(deserialize_with = "number::count")]
    pub max_replicas: u32,
    /// Which requests HAProxy logs to its container's output (`docker logs`).
    pub access_log: AccessLog,
    /// Where the lb image gets consul-template (consul-template discovery only).
    pub consul_template: ConsulTemplateSource,
    /// consul-template release downloaded when `consul_template: download`.
    pub consul_template_version: Version,
    /// Memory limit of the container; HAProxy's global `maxconn` is sized from it.
    pub memory: Memory,
    /// HTTPS on the lb; off without this block (its default is "absent", so the example shows
    /// it commented out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

/// HTTPS on the lb: a certificate generated by provision (`self_signed: true`) or one the user
/// gives (`cert:` and `key:`, files beside the spec). Which of the two is checked by validation,
/// which names the field and its line; the plan holds only one of them ([`super::plan::TlsSource`]).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// Generate a self-signed certificate once and keep it in the state directory.
    #[serde(default)]
    pub self_signed: bool,
    /// Extra names the self-signed certificate is valid for (besides localhost and 127.0.0.1).
    #[serde(default)]
    pub names: Vec<DnsName>,
    /// The certificate (PEM, chain included) beside the spec.
    #[serde(default)]
    pub cert: Option<SpecFile>,
    /// Its private key (PEM) beside the spec.
    #[serde(default)]
    pub key: Option<SpecFile>,
    /// Host port of HTTPS.
    #[serde(default = "default_tls_port", deserialize_with = "number::port")]
    pub port: u16,
    /// Answer plain HTTP with a 301 to HTTPS.
    #[serde(default)]
    pub redirect: bool,
    /// `Strict-Transport-Security` max-age in seconds; none sent without it.
    #[serde(default)]
    pub hsts: Option<u32>,
}

fn default_tls_port() -> u16 {
    8443
}

impl Default for LoadBalancer {
    fn default() -> Self {
        LoadBalancer {
            port: 8080,
            stats_port: 8404,
            balance: Balance::Roundrobin,
            // 1 s, not 2: a new replica's first check comes at its HAProxy slot's next tick
            // of this interval, and a rollout waits for it in every batch (median 12.0 s for
            // 3 replicas at 2 s, 9.3 s at 1 s: bench/runs/2026-12-06-rollout.md, part 5).
            check_interval: Duration {
                millis: 1000,
                text: "1s".into(),
            },
            server_timeout: Duration {
                millis: 30_000,
                text: "30s".into(),
            },
            max_replicas: 10,
            access_log: AccessLog::Sampled,
            consul_template: ConsulTemplateSource::Image,
            consul_template_version: Version(defaults::CONSUL_TEMPLATE_VERSION.into()),
            memory: defaults::LB_MEMORY,
            tls: None,
        }
    }
}

/// HAProxy's request log. Each line goes from HAProxy's stdout through the container runtime to
/// dockerd's log file, which costs the engine more CPU than HAProxy spends on the request itself
/// (bench/README.md, lb cost), so by default only a sample is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLog {
    /// No request is logged (HAProxy's own alerts still are).
    Off,
    /// One request in every 100 (`log … sample 1:100`): enough to see traffic and its timings.
    Sampled,
    /// Every request.
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Balance {
    Roundrobin,
    Leastconn,
    Source,
    First,
    Random,
}

impl Balance {
    pub fn as_str(self) -> &'static str {
        match self {
            Balance::Roundrobin => "roundrobin",
            Balance::Leastconn => "leastconn",
            Balance::Source => "source",
            Balance::First => "first",
            Balance::Random => "random",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsulTemplateSource {
    /// `COPY --from` the image in `images.consul_template`.
    Image,
    /// Download the release zip and verify it against SHA256SUMS and HashiCorp's signature.
    Download,
}

/// Reads a string and converts it *inside* the scalar's own deserialization, so serde_yaml
/// reports a rejected value at the value itself, with the field's dotted path. (With
/// `#[serde(try_from = "String")]` the conversion runs after the scalar was read, and serde_yaml
/// attributes the error to the enclosing mapping: its line, and no field name at the top level.)
/// `expecting` names the value in the message for one of another kind ("must be a duration
/// such as 2s, got a list").
pub(super) fn deserialize_checked<'de, D, T>(
    d: D,
    expecting: &'static str,
    convert: fn(String) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Checked<T>(&'static str, fn(String) -> Result<T, String>);
    impl<'de, T> serde::de::Visitor<'de> for Checked<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<T, E> {
            (self.1)(value.to_owned()).map_err(E::custom)
        }
    }
    d.deserialize_string(Checked(expecting, convert))
}

macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $expecting:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(into = "String")]
        pub struct $name(pub(crate) String);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                deserialize_checked(d, $expecting, $name::try_from)
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, String> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(&value).map(|()| $name(value))
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_string!(
    /// A Compose project name: lowercase letters, digits, `-` and `_`, starting with a letter or digit.
    ProjectName,
    "a project name",
    crate::spec::rules::project_name
);
checked_string!(
    /// A simple name (letters, digits, `-`, `_`, `.`), safe in YAML, shell and HAProxy config.
    Name,
    "a name",
    crate::spec::rules::simple_name
);
checked_string!(
    /// An image reference: `[registry[:port]/]path[:tag][@digest]`.
    ImageRef,
    "an image reference such as debian:trixie-slim",
    crate::spec::rules::image_ref
);
checked_string!(
    /// An absolute URL path such as `/health`, limited to unreserved characters.
    UrlPath,
    "a URL path such as /health",
    crate::spec::rules::url_path
);
checked_string!(
    /// A relative path inside the project directory.
    SafePath,
    "a relative directory path",
    crate::spec::rules::safe_relative_path
);
checked_string!(
    /// A file beside the spec: a relative path that stays inside the spec's directory.
    SpecFile,
    "a file beside the spec such as api_key.txt",
    crate::spec::rules::spec_file
);
checked_string!(
    /// A DNS name a certificate is valid for, such as `shop.example.com`.
    DnsName,
    "a DNS name such as shop.example.com",
    crate::spec::rules::dns_name
);
checked_string!(
    /// An environment variable's name: letters, digits and `_`, not starting with a digit.
    EnvName,
    "a variable name such as API_KEY",
    crate::spec::rules::env_name
);
checked_string!(
    /// Text to look for in a response body: printable, on one line.
    BodyText,
    "a line of text",
    crate::spec::rules::body_text
);
checked_string!(
    /// A registry that images are pushed to: `host[:port][/path]`.
    Registry,
    "a registry such as 127.0.0.1:5000",
    crate::spec::rules::registry
);
checked_string!(
    /// A Swarm placement constraint such as `node.role == manager`.
    Constraint,
    "a placement constraint such as `node.role == manager`",
    crate::spec::rules::constraint
);
checked_string!(
    /// A release version such as `0.41.2`.
    Version,
    "a version such as 0.43.0",
    crate::spec::rules::version
);

impl ImageRef {
    /// For defaults, which are known to be valid.
    pub(crate) fn new_unchecked(value: &str) -> Self {
        ImageRef(value.to_owned())
    }
}

/// A duration written as HAProxy and consul accept it: a whole number with `ms`, `s` or `m`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct Duration {
    pub millis: u64,
    text: String,
}

impl Duration {
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_checked(d, "a duration such as 2s", Duration::try_from)
    }
}

impl TryFrom<String> for Duration {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let millis = crate::spec::rules::duration_millis(&text)?;
        Ok(Duration { millis, text })
    }
}

impl From<Duration> for String {
    fn from(value: Duration) -> String {
        value.text
    }
}
