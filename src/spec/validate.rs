//! Rules that relate several fields, and the step from `Spec` to `Plan`.

use std::path::Path;

use super::inputs::{self, SecretSource};
use super::model::{App, Discovery, Placement, Spec, TargetKind};
use super::plan::{
    Plan, PlanConsul, PlanDeploy, PlanExpect, PlanImages, PlanLb, PlanPlacement, PlanRedis,
    PlanSecret, PlanSecretSource, PlanWeb, SwarmTarget, Target,
};
use super::rules;
use super::tls;

/// One broken rule: the dotted field path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub message: String,
    /// The same problem told from another field the rule involves. When `field` keeps its
    /// default (it is not written in the spec) this one is reported instead, so it has a line.
    pub alternative: Option<Box<Violation>>,
    /// The other fields the rule read. When one of them was written but could not be read (a
    /// problem of its own, and the default stood in for it), this violation is not reported:
    /// it would be about a value the user never wrote.
    pub reads: &'static [&'static str],
}

impl Violation {
    /// Every field this violation is about or follows from.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        let alternative = self.alternative.iter().map(|alt| alt.field.as_str());
        std::iter::once(self.field.as_str())
            .chain(alternative)
            .chain(self.reads.iter().copied())
    }
}

/// Checks every cross-field rule; `base_dir` is the spec's directory (for `web.app`).
pub fn validate(spec: &Spec, base_dir: &Path) -> Result<Plan, Vec<Violation>> {
    let mut violations = Vec::new();
    let mut violation = |field: &str, reads: &'static [&'static str], message: String| {
        violations.push(Violation {
            field: field.to_owned(),
            message,
            alternative: None,
            reads,
        });
    };

    // Single values (ports, workers, an HTTP status) were checked while the spec was read
    // (number.rs); what is left relates fields to each other.
    let lb = &spec.lb;
    if let Err(message) = rules::max_replicas(lb.max_replicas, spec.discovery, spec.target.kind) {
        violation("lb.max_replicas", &["discovery", "target.kind"], message);
    }
    let web = &spec.web;
    if rules::replicas(lb.max_replicas)
        .check(web.replicas.into())
        .is_err()
    {
        violation(
            "web.replicas",
            &["lb.max_replicas"],
            format!(
                "must be between 1 and lb.max_replicas ({}), got {}",
                lb.max_replicas, web.replicas
            ),
        );
    }
    // Host ports must not collide with each other.
    let mut host_ports = vec![("lb.port", lb.port), ("lb.stats_port", lb.stats_port)];
    if let Some(tls) = &lb.tls {
        host_ports.push(("lb.tls.port", tls.port));
    }
    if let (true, Some(port)) = (spec.discovery.uses_consul(), spec.consul.http_port) {
        host_ports.push(("consul.http_port", port));
    }
    let mut collisions = Vec::new();
    for (i, (field, port)) in host_ports.iter().enumerate() {
        if let Some((other, _)) = host_ports[..i].iter().find(|(_, p)| p == port) {
            let told_from = |field: &str, other: &str| Violation {
                field: field.to_owned(),
                message: format!("host port {port} is already used by {other}; choose another"),
                alternative: None,
                reads: &["discovery"],
            };
            collisions.push(Violation {
                alternative: Some(Box::new(told_from(other, field))),
                ..told_from(field, other)
            });
        }
    }
    let interval = lb.check_interval.millis;
    if !(100..=3_600_000).contains(&interval) {
        violation(
            "lb.check_interval",
            &[],
            format!(
                "must be between 100ms and 60m, got {}",
                lb.check_interval.as_str()
            ),
        );
    }
    let server_timeout = lb.server_timeout.millis;
    if !(100..=3_600_000).contains(&server_timeout) {
        violation(
            "lb.server_timeout",
            &[],
            format!(
                "must be between 100ms and 60m, got {}",
                lb.server_timeout.as_str()
            ),
        );
    }
    match &web.app {
        App::Builtin if web.health_path.as_str() == "/" => violation(
            "web.health_path",
            &["web.app"],
            "must not be `/`: GET / counts a hit in the built-in app; use a path such as /health"
                .into(),
        ),
        App::Dir(_) if spec.discovery == Discovery::ConsulDns => violation(
            "web.app",
            &["discovery"],
            "consul-dns works with the built-in app only: there each replica registers itself in consul from an entrypoint provision writes into the built-in image, and your own image has none; your app works with discovery docker-dns (HAProxy finds the replicas in Docker's DNS, no consul) or consul-template (registrator registers your containers in consul)".into(),
        ),
        _ => {}
    }
    let expect = &web.expect;
    if web.app == App::Builtin && *expect != Default::default() {
        let field = if expect.status.is_some() {
            "web.expect.status"
        } else {
            "web.expect.contains"
        };
        violation(
            field,
            &["web.app"],
            "applies to your own app (web.app: <directory>) only; the built-in app is checked by its JSON answer".into(),
        );
    }
    if let App::Dir(dir) = &web.app {
        let path = base_dir.join(dir.as_str());
        if !path.is_dir() {
            violation(
                "web.app",
                &[],
                format!(
                    "directory {} does not exist (relative to the spec's directory)",
                    path.display()
                ),
            );
        } else if !path.join("Dockerfile").is_file() {
            violation(
                "web.app",
                &[],
                format!("directory {} has no Dockerfile", path.display()),
            );
        } else if !web.app_outside_spec_dir {
            if let Some(outside) = outside_of(&path, base_dir) {
                violation("web.app", &["web.app_outside_spec_dir"], outside);
            }
        }
    }

    for (field, message) in inputs::check(web) {
        violation(&field, &[], message);
    }

    if let Some(lb) = &spec.target.placement.lb {
        violation(
            "target.placement.lb",
            &[],
            format!(
                "the lb now runs on every edge node: write `edge: {lb}` under `target` instead (one lb per node it selects)"
            ),
        );
    }
    if spec.consul.servers.is_cluster() {
        if spec.target.kind != TargetKind::Swarm {
            violation(
                "consul.servers",
                &["target.kind"],
                format!(
                    "{} consul servers need a swarm target: they run one per node, and one \
                     Docker host loses them all at once (write `servers: 1`, or `kind: swarm` \
                     under `target`)",
                    spec.consul.servers.count()
                ),
            );
        } else if spec.discovery != Discovery::ConsulDns {
            violation(
                "consul.servers",
                &["discovery"],
                format!(
                    "{} consul servers need discovery consul-dns: each web replica keeps to one \
                     server and moves when it is lost, which registrator (consul-template mode) \
                     does not; it would register every container on several servers",
                    spec.consul.servers.count()
                ),
            );
        } else if spec.target.placement.consul != Placement::default().consul {
            violation(
                "target.placement.consul",
                &["consul.servers"],
                "several consul servers run one per node, wherever Swarm finds room: \
                 `target.placement.consul` pins a single server (leave it out, or write \
                 `servers: 1`)"
                    .into(),
            );
        }
    }
    if spec.target.kind == TargetKind::Swarm && spec.target.registry.is_none() {
        violation(
            "target.registry",
            &["target.kind"],
            "a swarm target needs the registry every node pulls the built images from, such as `registry: 127.0.0.1:5000`".into(),
        );
    }

    if let Some(tls) = &lb.tls {
        for (field, message) in tls::problems(tls, base_dir) {
            violation(field, &[], message);
        }
    }

    violations.extend(collisions);
    if !violations.is_empty() {
        return Err(violations);
    }
    Ok(plan_of(spec))
}

/// Why `dir` is not inside `base_dir` once both are resolved (`..` and symlinks followed), or
/// None when it is. provision builds the app's directory, sending all of it to the engine: a spec
/// must not reach beyond its own tree unless it says so.
fn outside_of(dir: &Path, base_dir: &Path) -> Option<String> {
    let resolve = |p: &Path| std::fs::canonicalize(p).ok();
    let (Some(resolved), Some(base)) = (resolve(dir), resolve(base_dir)) else {
        return Some(format!(
            "directory {} cannot be resolved to check that it lies inside the spec's directory",
            dir.display()
        ));
    };
    (!resolved.starts_with(&base)).then(|| {
        format!(
            "directory {} resolves to {}, outside the spec's directory {} (`..` and symlinks \
             followed); move the app beside the spec, or set `web.app_outside_spec_dir: true` \
             to build it from there on purpose",
            dir.display(),
            resolved.display(),
            base.display()
        )
    })
}

fn plan_of(spec: &Spec) -> Plan {
    let images = &spec.images;
    let lb = &spec.lb;
    Plan {
        project: spec.project.to_string(),
        target: match (spec.target.kind, &spec.target.registry) {
            (TargetKind::Swarm, Some(registry)) => {
                let placement = &spec.target.placement;
                Target::Swarm(SwarmTarget {
                    registry: registry.to_string(),
                    placement: PlanPlacement {
                        consul: placement.consul.to_string(),
                        redis: placement.redis.to_string(),
                    },
                    encrypted_network: spec.target.encrypted_network,
                    edge: spec.target.edge.0.to_string(),
                })
            }
            // A swarm without a registry was refused above.
            _ => Target::Compose,
        },
        discovery: spec.discovery,
        images: PlanImages {
            base: images.base.to_string(),
            consul: images.consul.to_string(),
            registrator: images.registrator.to_string(),
            consul_template: images.consul_template.to_string(),
            redis: images.redis.as_ref().map(ToString::to_string),
        },
        web: PlanWeb {
            service: "web".to_owned(),
            registry_tag: format!("provision-{}", spec.project),
            replicas: spec.web.replicas,
            port: spec.web.port,
            health_path: spec.web.health_path.to_string(),
            workers: spec.web.workers,
            app_dir: match &spec.web.app {
                App::Builtin => None,
                App::Dir(dir) => Some(dir.to_string()),
            },
            expect: PlanExpect {
                status: spec.web.expect.status,
                contains: spec.web.expect.contains.as_ref().map(ToString::to_string),
            },
            keep_releases: spec.web.keep_releases,
            env: spec
                .web
                .env
                .iter()
                .map(|(name, value)| (name.to_string(), value.as_str().to_owned()))
                .collect(),
            env_file: spec.web.env_file.as_ref().map(ToString::to_string),
            secrets: spec
                .web
                .secrets
                .iter()
                .map(|(name, source)| PlanSecret {
                    name: name.to_string(),
                    source: match source {
                        SecretSource::File(file) => PlanSecretSource::File(file.to_string()),
                        SecretSource::Env { env } => PlanSecretSource::Env(env.to_string()),
                    },
                })
                .collect(),
            memory: spec.web.memory.to_string(),
        },
        redis: PlanRedis {
            appendfsync: spec.redis.appendfsync,
            memory: spec.redis.memory.to_string(),
            maxmemory: spec.redis.memory.redis_maxmemory(),
        },
        consul: PlanConsul {
            servers: spec.consul.servers.count(),
            http_port: spec.consul.http_port,
            datacenter: spec.consul.datacenter.to_string(),
            memory: spec.consul.memory.to_string(),
        },
        lb: PlanLb {
            port: lb.port,
            stats_port: lb.stats_port,
            balance: lb.balance,
            check_interval: lb.check_interval.as_str().to_owned(),
            check_interval_ms: lb.check_interval.millis,
            server_timeout: lb.server_timeout.as_str().to_owned(),
            max_replicas: lb.max_replicas,
            access_log: lb.access_log,
            consul_template_source: lb.consul_template,
            consul_template_version: lb.consul_template_version.to_string(),
            memory: lb.memory.to_string(),
            maxconn: lb.memory.haproxy_maxconn(),
            tls: lb.tls.as_ref().map(tls::plan),
        },
        deploy: PlanDeploy {
            max_error_rate: spec.deploy.max_error_rate,
            max_latency_ratio: spec.deploy.max_latency_ratio,
        },
    }
}
