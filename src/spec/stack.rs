//! What a plan's stack is made of: its services, the images they need, the files each built image
//! is rendered from, and which views verify and status can read. This is the one place that knows
//! what a discovery mode implies; render, preflight, verify, status and the blueprints ask here.

use serde::Serialize;

use super::model::TargetKind;
use super::plan::{ConsulTemplateSource, Discovery, Plan, SwarmTarget, Target};

/// A service of the stack (a Compose service name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Consul,
    /// The filter in front of the Docker engine's socket, for registrator.
    DockerProxy,
    Registrator,
    Redis,
    Web,
    Lb,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Consul => "consul",
            Service::DockerProxy => "docker-proxy",
            Service::Registrator => "registrator",
            Service::Redis => "redis",
            Service::Web => "web",
            Service::Lb => "lb",
        }
    }

    /// The spec field that chooses this service's image, when the service runs one as it is.
    pub fn image_field(self) -> Option<&'static str> {
        match self {
            Service::Consul => Some("images.consul"),
            Service::Registrator => Some("images.registrator"),
            Service::Redis => Some("images.redis"),
            Service::DockerProxy | Service::Web | Service::Lb => None,
        }
    }

    /// Keeps state on a volume (redis: the hit counter, consul: its catalog): recreating it
    /// interrupts the stack, so apply asks first.
    pub fn keeps_state(self) -> bool {
        matches!(self, Service::Redis | Service::Consul)
    }

    /// The service of a Compose service name, if it is one of ours.
    pub fn from_name(name: &str) -> Option<Service> {
        [
            Service::Consul,
            Service::DockerProxy,
            Service::Registrator,
            Service::Redis,
            Service::Web,
            Service::Lb,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How the load balancer learns the web replicas, in terms the lb blueprints act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbDiscovery {
    /// consul-template renders haproxy.cfg from consul's catalog and reloads HAProxy.
    ConsulTemplate,
    /// HAProxy resolves consul's DNS SRV records (addresses and ports).
    ConsulSrv,
    /// HAProxy resolves the service name's A records in Docker's embedded DNS.
    DockerDns,
}

/// An image the stack needs that provision does not build, and what for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    pub image: String,
    pub purpose: ImagePurpose,
    /// The spec field that chooses it, for advice.
    pub spec_field: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImagePurpose {
    /// A service runs it as it is.
    Runs(Service),
    /// The FROM of every image provision builds.
    BuildBase,
    /// consul-template is copied out of it into the lb image.
    CopyFrom(Service),
}

/// A build context provision renders: the service and the blueprints (without `.j2`) in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildContext {
    pub service: Service,
    pub files: Vec<&'static str>,
}

/// A file of a build context that its running container can take in place: copied to
/// `<path>.next`, then `reload` (run as root in the container) checks it, installs it and reloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveConfig {
    pub service: Service,
    /// The rendered file, relative to the output directory.
    pub file: &'static str,
    /// Where the container reads it.
    pub path: &'static str,
    /// The command in the image that installs `<path>.next` and reloads.
    pub reload: &'static str,
}

/// Flags the blueprints branch on, named for what they mean rather than for a mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Features {
    /// The stack runs a consul agent.
    pub consul: bool,
    /// consul runs several servers (`consul.servers`), which talk to each other.
    pub consul_cluster: bool,
    /// registrator registers the web containers in consul.
    pub registrator: bool,
    /// Each web replica registers itself in consul (its entrypoint) and deregisters on stop.
    pub self_registration: bool,
    /// consul answers DNS with passing instances only (HAProxy reads it).
    pub consul_dns_only_passing: bool,
    /// consul-template renders HAProxy's configuration (lb/haproxy.ctmpl) and reloads it.
    pub consul_template: bool,
    /// HAProxy resolves consul's DNS SRV records (otherwise Docker's DNS, in the DNS modes).
    pub consul_srv: bool,
    /// The lb image copies consul-template out of its image (else downloads a verified release).
    pub consul_template_from_image: bool,
    /// The web app is the built-in hit counter (its files are rendered from blueprints).
    pub builtin_app: bool,
    /// The lb image takes a new haproxy.cfg in place (`haproxy-reload`, a server-state file):
    /// see `Plan::live_config`.
    pub lb_reload_in_place: bool,
    /// redis is on a network of its own that only web shares. Not with registrator: it
    /// registers a container on several networks at the address of whichever network Go's map
    /// iteration gives last (fayrus/registrator v9.0.6, internal/bridge/util.go servicePort),
    /// so web keeps one network there and redis' password is what keeps the others out.
    pub redis_network: bool,
    /// The name Docker's DNS answers with every web replica's address: the service name with
    /// Compose, `tasks.<service>` on a Swarm (the bare name is a VIP or, with dnsrr, the same
    /// list, but only `tasks.` is documented to list every task).
    pub web_dns_name: String,
}

impl SwarmTarget {
    /// The name a locally built image is pushed under: `<registry>/<local name>`.
    pub fn remote_image(&self, local: &str) -> String {
        format!("{}/{local}", self.registry)
    }
}

/// The spec's own upper bound on `lb.max_replicas`, whatever the mode.
pub const MAX_REPLICAS: u32 = 256;

/// consul-dns: consul 1.8.7 trims its SRV answer to the EDNS size HAProxy announces
/// (`accepted_payload_size`). At 8192 it held 135 instances with datacenter `dc1` and only 67
/// with a 63-character datacenter (the name is in every record), whatever was registered
/// beyond. The blueprint therefore announces 32767, the largest size consul 1.8.7 honours
/// (from 32768 on it answers 19 records; newer consul's source caps at 65467): HAProxy 2.6 and
/// 3.0 then filled 300 of 300 with `dc1`, and 256 of 256 (264 of 300) with a 63-character
/// datacenter, the longest the spec allows. Record sizes depend only on those names (IPv4
/// targets are fixed-length), so the spec's maximum holds in this mode too.
const CONSUL_DNS_CEILING: u32 = MAX_REPLICAS;

/// docker-dns: Docker's embedded DNS (engine 20.10) answered all A records of `web` within
/// HAProxy's 8192 bytes at every count measured, up to 300 containers (an A record is about
/// 16 bytes, so roughly 500 fit), and HAProxy 3.0 filled 300 of 300: the spec's maximum holds.
const DOCKER_DNS_CEILING: u32 = MAX_REPLICAS;

/// Swarm: the stack's overlay network is a /24 from Docker's default address pool: 253 usable
/// addresses. Measured on the rig (2 nodes, engine 26): 251 tasks of one service ran, and the
/// 252nd stayed in state "New" with no error at all, waiting for an address that never came
/// (each node's load-balancer endpoint holds one too). Besides the web tasks the network holds
/// the lb, consul and redis tasks, registrator's task on every node (consul-template mode) and
/// the extra task of a rolling update (start-first). 200 web tasks leave room for all of that on
/// swarms of up to 24 nodes.
const SWARM_CEILING: u32 = 200;

impl TargetKind {
    /// The most web replicas this target can run, whatever the discovery mode.
    pub fn replica_ceiling(self) -> u32 {
        match self {
            TargetKind::Compose => MAX_REPLICAS,
            TargetKind::Swarm => SWARM_CEILING,
        }
    }
}

impl Discovery {
    /// Whether the stack runs a consul agent.
    pub fn uses_consul(self) -> bool {
        !matches!(self, Discovery::DockerDns)
    }

    /// How the load balancer finds replicas in this mode.
    pub fn lb_discovery(self) -> LbDiscovery {
        match self {
            Discovery::ConsulTemplate => LbDiscovery::ConsulTemplate,
            Discovery::ConsulDns => LbDiscovery::ConsulSrv,
            Discovery::DockerDns => LbDiscovery::DockerDns,
        }
    }

    /// Whether consul keeps a list of the web instances that verify and status can compare with.
    pub fn has_registry(self) -> bool {
        self.uses_consul()
    }

    /// The most web replicas this mode can route to: the upper bound of `lb.max_replicas`.
    /// A DNS mode is bounded by how many records one UDP answer holds: past that point the
    /// server (consul) trims the answer without setting TC, so HAProxy fills only some of its
    /// slots and sees another subset each second. The numbers below are `bench/ceilings.sh`
    /// runs (bench/README.md has the tables and the machine).
    pub fn replica_ceiling(self) -> u32 {
        match self {
            // consul-template reads the instances from consul's HTTP API and writes one `server`
            // line each: no answer size is involved, so the spec's own maximum applies.
            Discovery::ConsulTemplate => MAX_REPLICAS,
            Discovery::ConsulDns => CONSUL_DNS_CEILING,
            Discovery::DockerDns => DOCKER_DNS_CEILING,
        }
    }
}

impl Plan {
    /// Every service of the stack, in start order.
    pub fn services(&self) -> Vec<Service> {
        let mut services = Vec::new();
        if self.discovery.uses_consul() {
            services.push(Service::Consul);
        }
        if self.discovery == Discovery::ConsulTemplate {
            services.extend([Service::DockerProxy, Service::Registrator]);
        }
        services.extend([Service::Redis, Service::Web, Service::Lb]);
        services
    }

    /// The services besides web (the ones that run one container each).
    pub fn singleton_services(&self) -> Vec<Service> {
        self.services()
            .into_iter()
            .filter(|s| *s != Service::Web)
            .collect()
    }

    pub fn features(&self) -> Features {
        let discovery = self.discovery;
        Features {
            consul: discovery.uses_consul(),
            consul_cluster: self.consul.servers > 1,
            registrator: self.services().contains(&Service::Registrator),
            self_registration: discovery == Discovery::ConsulDns,
            consul_dns_only_passing: discovery.lb_discovery() == LbDiscovery::ConsulSrv,
            consul_template: discovery.lb_discovery() == LbDiscovery::ConsulTemplate,
            consul_srv: discovery.lb_discovery() == LbDiscovery::ConsulSrv,
            consul_template_from_image: discovery.lb_discovery() == LbDiscovery::ConsulTemplate
                && self.lb.consul_template_source == ConsulTemplateSource::Image,
            builtin_app: self.web.app_dir.is_none(),
            lb_reload_in_place: self.live_config().is_some(),
            redis_network: !self.services().contains(&Service::Registrator),
            web_dns_name: match self.target {
                Target::Compose => self.web.service.clone(),
                Target::Swarm(_) => format!("tasks.{}", self.web.service),
            },
        }
    }

    /// The files that deploy the stack, beside the build contexts: compose.yaml always (its
    /// build sections are how images are built), and on a Swarm the stack file.
    pub fn deployment_files(&self) -> Vec<&'static str> {
        match self.target {
            Target::Compose => vec!["compose.yaml", "diagram.md"],
            Target::Swarm(_) => vec!["compose.yaml", "stack.yaml", "diagram.md"],
        }
    }

    /// The Swarm target, when that is where the stack runs.
    pub fn swarm(&self) -> Option<&SwarmTarget> {
        match &self.target {
            Target::Compose => None,
            Target::Swarm(swarm) => Some(swarm),
        }
    }

    /// The build contexts provision renders, in render order (web's own app is built from the
    /// user's directory and has none).
    pub fn build_contexts(&self) -> Vec<BuildContext> {
        let features = self.features();
        let mut contexts = Vec::new();
        if features.builtin_app {
            let mut files = vec!["web/Dockerfile", "web/app.py", "web/healthcheck.py"];
            if features.self_registration {
                files.push("web/entrypoint.py");
            }
            contexts.push(BuildContext {
                service: Service::Web,
                files,
            });
        }
        if self.images.redis.is_none() {
            contexts.push(BuildContext {
                service: Service::Redis,
                files: vec!["redis/Dockerfile"],
            });
        }
        if features.registrator {
            contexts.push(BuildContext {
                service: Service::DockerProxy,
                files: vec!["docker-proxy/Dockerfile", "docker-proxy/haproxy.cfg"],
            });
        }
        let lb = match self.discovery.lb_discovery() {
            LbDiscovery::ConsulTemplate => {
                vec![
                    "lb/Dockerfile",
                    "lb/haproxy.ctmpl",
                    "lb/consul-template.hcl",
                ]
            }
            LbDiscovery::ConsulSrv | LbDiscovery::DockerDns => {
                let mut files = vec!["lb/Dockerfile", "lb/haproxy.cfg", "lb/haproxy-reload.sh"];
                if self.consul.servers > 1 {
                    files.push("lb/consul-nameservers.sh");
                }
                files
            }
        };
        contexts.push(BuildContext {
            service: Service::Lb,
            files: lb,
        });
        contexts
    }

    /// The configuration a running container takes in place, so that a change to it alone
    /// needs no new container: HAProxy's in the DNS modes. With consul-template, HAProxy's
    /// configuration is a template consul-template reads once; reloading it restarts HAProxy,
    /// so a changed haproxy.ctmpl recreates the lb.
    pub fn live_config(&self) -> Option<LiveConfig> {
        match self.discovery.lb_discovery() {
            LbDiscovery::ConsulTemplate => None,
            LbDiscovery::ConsulSrv | LbDiscovery::DockerDns => Some(LiveConfig {
                service: Service::Lb,
                file: "lb/haproxy.cfg",
                path: "/run/haproxy/haproxy.cfg",
                reload: "haproxy-reload",
            }),
        }
    }

    /// The images the stack needs that provision does not build: the ones services run as they
    /// are, then the ones builds start from.
    pub fn external_images(&self) -> Vec<ImageUse> {
        let mut uses = Vec::new();
        for service in self.services() {
            let image = match service {
                Service::Consul => Some(&self.images.consul),
                Service::Registrator => Some(&self.images.registrator),
                Service::Redis => self.images.redis.as_ref(),
                Service::DockerProxy | Service::Web | Service::Lb => None,
            };
            if let (Some(image), Some(field)) = (image, service.image_field()) {
                uses.push(ImageUse {
                    image: image.clone(),
                    purpose: ImagePurpose::Runs(service),
                    spec_field: field,
                });
            }
        }
        uses.push(ImageUse {
            image: self.images.base.clone(),
            purpose: ImagePurpose::BuildBase,
            spec_field: "images.base",
        });
        if self.features().consul_template_from_image {
            uses.push(ImageUse {
                image: self.images.consul_template.clone(),
                purpose: ImagePurpose::CopyFrom(Service::Lb),
                spec_field: "images.consul_template",
            });
        }
        uses
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn plan(extra: &str) -> Plan {
        crate::spec::from_text(
            &format!("project: hits\n{extra}"),
            Path::new("provision.yaml"),
            Path::new("."),
        )
        .unwrap()
    }

    fn names(services: Vec<Service>) -> Vec<&'static str> {
        services.into_iter().map(Service::name).collect()
    }

    #[test]
    fn each_mode_has_its_own_services() {
        assert_eq!(
            names(plan("discovery: consul-template\n").services()),
            [
                "consul",
                "docker-proxy",
                "registrator",
                "redis",
                "web",
                "lb"
            ]
        );
        assert_eq!(
            names(plan("discovery: consul-dns\n").services()),
            ["consul", "redis", "web", "lb"]
        );
        assert_eq!(
            names(plan("discovery: docker-dns\n").services()),
            ["redis", "web", "lb"]
        );
    }

    #[test]
    fn a_swarm_adds_its_stack_file_and_resolves_tasks() {
        let swarm = plan("target:\n  kind: swarm\n  registry: 127.0.0.1:5000\n");
        assert_eq!(
            swarm.deployment_files(),
            ["compose.yaml", "stack.yaml", "diagram.md"]
        );
        assert_eq!(swarm.features().web_dns_name, "tasks.web");
        assert_eq!(
            swarm.swarm().unwrap().remote_image("hits-web:0123"),
            "127.0.0.1:5000/hits-web:0123"
        );
        let compose = plan("");
        assert_eq!(compose.deployment_files(), ["compose.yaml", "diagram.md"]);
        assert_eq!(compose.features().web_dns_name, "web");
        assert!(compose.swarm().is_none());
    }

    #[test]
    fn service_names_round_trip() {
        for s in plan("").services() {
            assert_eq!(Service::from_name(s.name()), Some(s));
        }
        assert_eq!(Service::from_name("webb"), None);
    }

    #[test]
    fn build_contexts_follow_the_mode_and_the_app() {
        let files = |p: &Plan, service| {
            p.build_contexts()
                .into_iter()
                .find(|c| c.service == service)
                .map(|c| c.files)
        };
        let dns = plan("discovery: consul-dns\n");
        assert!(files(&dns, Service::Web)
            .unwrap()
            .contains(&"web/entrypoint.py"));
        assert_eq!(
            files(&dns, Service::Lb).unwrap(),
            ["lb/Dockerfile", "lb/haproxy.cfg", "lb/haproxy-reload.sh"]
        );
        // Every file the live configuration's reload needs is in the lb's context.
        let live = dns.live_config().unwrap();
        assert!(files(&dns, Service::Lb).unwrap().contains(&live.file));
        let ct = plan("discovery: consul-template\n");
        assert_eq!(ct.live_config(), None);
        assert!(!files(&ct, Service::Web)
            .unwrap()
            .contains(&"web/entrypoint.py"));
        assert!(files(&ct, Service::Lb)
            .unwrap()
            .contains(&"lb/haproxy.ctmpl"));
        let prebuilt_redis = plan("discovery: docker-dns\nimages:\n  redis: redis:7\n");
        assert_eq!(files(&prebuilt_redis, Service::Redis), None);
    }

    #[test]
    fn external_images_follow_the_mode() {
        let images = |extra: &str| -> Vec<String> {
            plan(extra)
                .external_images()
                .into_iter()
                .map(|u| u.image)
                .collect()
        };
        assert_eq!(
            images("discovery: docker-dns\nimages:\n  base: localhost/base:1\n"),
            ["localhost/base:1"]
        );
        let ct = images("discovery: consul-template\n");
        assert_eq!(ct.len(), 4, "{ct:?}");
        let download = images("discovery: consul-template\nlb:\n  consul_template: download\n");
        assert_eq!(download.len(), 3, "{download:?}");
    }
}
