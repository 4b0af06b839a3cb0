//! `provision apply`: render if needed, preflight, build the images that are missing, then
//! `docker compose up --detach --wait`.
//!
//! Idempotent by construction: built images are tagged with a hash of their build context, so
//! an image that exists is current and is never rebuilt. Checked with Compose 2.26: for a service
//! with both `image:` and `build:`, `up` uses the tag when it exists locally, but when it is
//! missing it first tries to pull it from a registry (a warning, or a long wait on a slow
//! network) and only then builds; `compose build` always runs a build. So apply builds exactly
//! the missing tags itself, then runs `up --no-build`. With nothing changed, `up` finds every
//! container up to date and restarts none (compare `State.StartedAt`).
//!
//! Replicas: when the stack already runs, apply keeps its current number of web replicas (set by
//! `verify --scale N`) rather than silently scaling back to `web.replicas`, which is only the
//! number a new stack starts with. It says so when the two differ.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;

use crate::cli::ApplyArgs;
use crate::commands::Global;
use crate::deploy::{Deployment, Swarm};
use crate::docker::preflight::{self, Engine, Preflight};
use crate::docker::{Compose, Container, Docker, UpOptions, CONFIG_LABEL};
use crate::printer::Printer;
use crate::probe::Endpoints;
use crate::scaling;
use crate::{render, ExitStatus, ToolError};

pub fn run(global: &Global, args: ApplyArgs) -> anyhow::Result<ExitStatus> {
    let progress = Printer::detect(global.quiet);
    let stack = render::ensure_rendered(
        &global.spec,
        &args.out,
        &progress,
        if args.dry_run {
            render::Writes::DryRun
        } else {
            render::Writes::Allowed
        },
    )?;
    // A dry run changes nothing, so it needs no lock.
    let _lock = match args.dry_run {
        false => Some(global.lock(&stack.plan.project, "apply", &progress)?),
        true => None,
    };
    let docker = Docker::new(progress).dry_run(args.dry_run);
    let deployment = Deployment::new(&docker, &stack);
    match &deployment {
        Deployment::Compose { compose, .. } => apply_compose(&deployment, compose, &args),
        Deployment::Swarm(swarm) => apply_swarm(&deployment, swarm, &args),
    }
}

/// What `build_missing` did.
struct Builds {
    /// The services whose image was built now.
    built_now: Vec<String>,
    /// Every built image: `(service, tag)`.
    images: Vec<(String, String)>,
}

/// Builds the images that are missing (Compose builds them against the engine docker talks to).
/// `engine` is the preflight's view of the engine: nothing changes until every check passed.
fn build_missing(
    deployment: &Deployment<'_>,
    compose: &Compose<'_>,
    engine: Engine,
) -> anyhow::Result<Builds> {
    let docker = deployment.docker();
    let plan = deployment.plan();
    let config = compose.config()?;
    let needs = preflight::image_needs(plan, Some(&config));
    Preflight {
        engine,
        findings: preflight::check_images(docker, &needs, true),
    }
    .into_result()?;

    let built = config.built_images();
    let images: Vec<String> = built.iter().map(|(_, image)| image.clone()).collect();
    let present = docker.images_present(&images)?;
    let to_build: Vec<String> = built
        .iter()
        .zip(&present)
        .filter(|(_, present)| !**present)
        .map(|((service, _), _)| service.clone())
        .collect();
    if to_build.is_empty() {
        docker
            .printer()
            .note("images: all built images are current, nothing to build");
    } else {
        compose.build(&to_build)?;
    }
    Ok(Builds {
        built_now: to_build,
        images: built,
    })
}

/// The number of web replicas to run: the ones running now, or the spec's for a new stack.
fn keep_replicas(deployment: &Deployment<'_>, web_now: u32) -> u32 {
    let plan = deployment.plan();
    if web_now > 0 && web_now != plan.web.replicas {
        deployment.docker().printer().note(format!(
            "keeping the {web_now} running web replicas (web.replicas = {} applies to a new \
             stack; change the count with `provision verify --scale N`)",
            plan.web.replicas
        ));
    }
    if web_now == 0 {
        plan.web.replicas
    } else {
        web_now
    }
}

/// Compose: `up` of every other service (waiting until healthy), then of web at its count.
fn apply_compose(
    deployment: &Deployment<'_>,
    compose: &Compose<'_>,
    args: &ApplyArgs,
) -> anyhow::Result<ExitStatus> {
    let docker = deployment.docker();
    let plan = deployment.plan();
    let progress = docker.printer();
    let engine = preflight::require_engine(docker)?;
    let before = docker.project_containers(&plan.project)?;
    match pending_change(docker, compose.file(), &before, &plan.web.service)? {
        None => {
            progress.note(
                "nothing to do: every container runs its service's current configuration and \
                 image (Compose was not run)",
            );
            let endpoints = deployment.endpoints();
            print!(
                "{}",
                summary(&plan.project, &[], &before, &before, &endpoints)
            );
            return Ok(ExitStatus::Success);
        }
        Some(reason) => progress.note(format!("to apply: {reason}")),
    }
    let to_build = build_missing(deployment, compose, engine)?.built_now;
    let web_now = before
        .iter()
        .filter(|c| c.service == plan.web.service)
        .count() as u32;
    let replicas = keep_replicas(deployment, web_now);

    // Two steps, because nothing should wait on web's Docker health check (rare on purpose,
    // see scaling.rs): first every other service, waiting until healthy; then web alone, and a
    // replica counts once the load balancer routes to it.
    let others: Vec<String> = plan
        .singleton_services()
        .iter()
        .map(|s| s.name().to_owned())
        .collect();
    compose.up(
        &format!("starting {}", others.join(", ")),
        &UpOptions {
            wait_timeout: Some(args.timeout),
            remove_orphans: true,
            services: others,
            ..UpOptions::default()
        },
    )?;
    compose.up(
        &format!(
            "starting web ({replicas} replica{})",
            if replicas == 1 { "" } else { "s" }
        ),
        &UpOptions {
            scale: Some((plan.web.service.clone(), replicas)),
            // Not --no-deps: see `Scaler::web_up`.
            services: vec![plan.web.service.clone()],
            ..UpOptions::default()
        },
    )?;
    if docker.is_dry_run() {
        progress.note("dry run: the commands above were printed, not run");
        return Ok(ExitStatus::Success);
    }
    let endpoints = deployment.endpoints();
    let routed = scaling::wait_routed(deployment, args.timeout)?;
    if !routed.converged {
        return Err(ToolError(format!(
            "the stack started, but the load balancer does not route to every web replica after {} s: {}",
            routed.seconds,
            routed.last_problem.unwrap_or_default()
        ))
        .into());
    }
    let after = docker.project_containers(&plan.project)?;
    print!(
        "{}",
        summary(&plan.project, &to_build, &before, &after, &endpoints)
    );
    Ok(ExitStatus::Success)
}

/// Swarm: build what is missing, push what the registry lacks, `stack deploy` with web at the
/// count that runs, then wait until every service runs its tasks and the load balancer routes
/// to every web task.
fn apply_swarm(
    deployment: &Deployment<'_>,
    swarm: &Swarm<'_>,
    args: &ApplyArgs,
) -> anyhow::Result<ExitStatus> {
    let docker = deployment.docker();
    let plan = deployment.plan();
    let progress = docker.printer();
    let engine = preflight::require_engine(docker)?;
    swarm.require_manager()?;
    let compose_file = swarm.stack_file.with_file_name("compose.yaml");
    let compose = Compose::new(docker, &plan.project, &compose_file);
    let builds = build_missing(deployment, &compose, engine)?;
    let to_build = builds.built_now;
    let pushed = swarm.push(&builds.images)?;
    if pushed.is_empty() {
        progress.note("registry: every built image is there already, nothing to push");
    }
    let before = swarm.containers()?;
    let replicas = keep_replicas(deployment, swarm.web_replicas()?.unwrap_or(0));
    swarm.deploy(replicas)?;
    if docker.is_dry_run() {
        progress.note("dry run: the commands above were printed, not run");
        return Ok(ExitStatus::Success);
    }
    swarm.wait_running(args.timeout)?;
    let endpoints = deployment.endpoints();
    let routed = scaling::wait_routed(deployment, args.timeout)?;
    if !routed.converged {
        return Err(ToolError(format!(
            "the stack started, but the load balancer does not route to every web task after {} s: {}",
            routed.seconds,
            routed.last_problem.unwrap_or_default()
        ))
        .into());
    }
    let after = swarm.containers()?;
    print!(
        "{}",
        summary(&plan.project, &to_build, &before, &after, &endpoints)
    );
    println!(
        "  pushed:        {}",
        if pushed.is_empty() {
            "none (the registry has every image)".to_owned()
        } else {
            pushed.join(", ")
        }
    );
    Ok(ExitStatus::Success)
}

/// Why Compose has work to do; None when every container already runs what the Compose file
/// says: one per service (web: at least one), running, not unhealthy, carrying its service's
/// current `org.provision.config` label (a hash of the service's section, see compose.yaml.j2)
/// and running the image its reference names now. That is what lets a no-change apply finish
/// without `docker compose up`, which reads and compares everything again.
fn pending_change(
    docker: &Docker,
    compose_file: &Path,
    containers: &[Container],
    web_service: &str,
) -> anyhow::Result<Option<String>> {
    let text = std::fs::read_to_string(compose_file)
        .with_context(|| format!("reading {}", compose_file.display()))?;
    let wanted = file_services(&text)
        .with_context(|| format!("reading the services of {}", compose_file.display()))?;
    let containers: Vec<&Container> = containers.iter().filter(|c| !c.oneoff).collect();
    if let Some(c) = containers.iter().find(|c| !wanted.contains_key(&c.service)) {
        return Ok(Some(format!(
            "{} belongs to no service of the file",
            c.describe()
        )));
    }
    let images: Vec<String> = wanted.values().map(|w| w.image.clone()).collect();
    let ids = docker.image_ids(&images)?;
    for ((service, want), id) in wanted.iter().zip(ids) {
        let mine: Vec<&&Container> = containers
            .iter()
            .filter(|c| &c.service == service)
            .collect();
        let expected_count_ok = if service == web_service {
            !mine.is_empty()
        } else {
            mine.len() == 1
        };
        if !expected_count_ok {
            return Ok(Some(format!("{service} has {} containers", mine.len())));
        }
        for c in mine {
            let problem = if !c.running {
                Some(format!("is {}", c.state))
            } else if c.health.as_deref() == Some("unhealthy") {
                Some("is unhealthy".to_owned())
            } else if c.config_label.as_deref() != Some(want.config.as_str()) {
                Some("runs an older configuration".to_owned())
            } else if id.as_deref() != Some(c.image_id.as_str()) {
                Some(format!("does not run the current {}", want.image))
            } else {
                None
            };
            if let Some(problem) = problem {
                return Ok(Some(format!("{} {problem}", c.describe())));
            }
        }
    }
    Ok(None)
}

/// A service as the rendered Compose file has it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileService {
    image: String,
    config: String,
}

/// Service → its image and `org.provision.config` label, from compose.yaml's text.
fn file_services(text: &str) -> anyhow::Result<BTreeMap<String, FileService>> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text)?;
    let services = doc
        .get("services")
        .and_then(|s| s.as_mapping())
        .context("no services")?;
    services
        .iter()
        .map(|(name, section)| {
            let name = name.as_str().context("a service name is not a string")?;
            let field = |value: Option<&serde_yaml::Value>, what: &str| {
                value
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
                    .with_context(|| format!("service {name} has no {what}"))
            };
            Ok((
                name.to_owned(),
                FileService {
                    image: field(section.get("image"), "image")?,
                    config: field(
                        section.get("labels").and_then(|l| l.get(CONFIG_LABEL)),
                        CONFIG_LABEL,
                    )?,
                },
            ))
        })
        .collect()
}

/// What apply did, for stdout: images built, containers started/kept, where to look.
fn summary(
    project: &str,
    built: &[String],
    before: &[Container],
    after: &[Container],
    endpoints: &Endpoints,
) -> String {
    let old: BTreeMap<&str, &Container> = before.iter().map(|c| (c.id.as_str(), c)).collect();
    let new_ids: Vec<&str> = after.iter().map(|c| c.id.as_str()).collect();
    let unchanged = after
        .iter()
        .filter(|c| {
            old.get(c.id.as_str())
                .is_some_and(|o| o.started_at == c.started_at)
        })
        .count();
    let restarted = after
        .iter()
        .filter(|c| {
            old.get(c.id.as_str())
                .is_some_and(|o| o.started_at != c.started_at)
        })
        .count();
    let created = after.len() - unchanged - restarted;
    let removed = before
        .iter()
        .filter(|c| !new_ids.contains(&c.id.as_str()))
        .count();
    let mut services: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for c in after {
        let entry = services.entry(c.service.as_str()).or_default();
        entry.1 += 1;
        if c.running {
            entry.0 += 1;
        }
    }
    let mut out = format!("applied {project}\n");
    out.push_str(&format!(
        "  images built:  {}\n",
        if built.is_empty() {
            "none (all current)".to_owned()
        } else {
            built.join(", ")
        }
    ));
    out.push_str(&format!(
        "  containers:    {created} created, {restarted} restarted, {unchanged} unchanged, {removed} removed\n"
    ));
    let list: Vec<String> = services
        .iter()
        .map(|(s, (running, total))| format!("{s} {running}/{total}"))
        .collect();
    out.push_str(&format!("  running:       {}\n", list.join(", ")));
    out.push_str(&format!("  load balancer: {}\n", endpoints.lb));
    out.push_str(&format!("  HAProxy stats: {}\n", endpoints.stats_page));
    if let Some(consul) = &endpoints.consul {
        out.push_str(&format!("  consul UI:     {consul}/ui/\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compose_file_says_each_service_image_and_config() {
        let text = "name: hits\nservices:\n  web:\n    image: \"hits-web:1\"\n    labels:\n      org.provision.config: \"abc\"\n      SERVICE_NAME: web\n  lb:\n    image: lb:2\n    labels:\n      org.provision.config: \"def\"\n";
        let services = file_services(text).unwrap();
        assert_eq!(
            services["web"],
            FileService {
                image: "hits-web:1".into(),
                config: "abc".into()
            }
        );
        assert_eq!(services["lb"].config, "def");
        let err = file_services("services:\n  web:\n    image: x\n").unwrap_err();
        assert!(err.to_string().contains("org.provision.config"), "{err}");
    }

    fn container(id: &str, service: &str, started: &str) -> Container {
        Container {
            id: id.into(),
            short_id: id.into(),
            name: format!("hits-{service}-1"),
            project: "hits".into(),
            service: service.into(),
            number: 1,
            oneoff: false,
            state: "running".into(),
            running: true,
            health: None,
            hostname: id.into(),
            ip: None,
            image_id: String::new(),
            config_label: None,
            started_at: started.into(),
            image: String::new(),
        }
    }

    #[test]
    fn summary_tells_created_restarted_unchanged_removed() {
        let before = vec![
            container("a", "consul", "t1"),
            container("b", "web", "t1"),
            container("c", "lb", "t1"),
        ];
        let after = vec![
            container("a", "consul", "t1"),
            container("b", "web", "t2"),
            container("d", "lb", "t3"),
        ];
        let endpoints = Endpoints {
            lb: "http://127.0.0.1:8080/".into(),
            stats_csv: String::new(),
            stats_page: "http://127.0.0.1:8404/stats".into(),
            consul: Some("http://127.0.0.1:8500".into()),
        };
        insta::assert_snapshot!(summary("hits", &["lb".into()], &before, &after, &endpoints), @r"
        applied hits
          images built:  lb
          containers:    1 created, 1 restarted, 1 unchanged, 1 removed
          running:       consul 1/1, lb 1/1, web 1/1
          load balancer: http://127.0.0.1:8080/
          HAProxy stats: http://127.0.0.1:8404/stats
          consul UI:     http://127.0.0.1:8500/ui/
        ");
    }
}
