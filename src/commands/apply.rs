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
//!
//! Changes: each service's containers are compared with the file (`plan_changes`) and the plan
//! printed first. Web on an older image or configuration is replaced rolling (`roll_web`,
//! `Scaler::replace`) instead of recreated by Compose, so the load balancer never runs out of
//! replicas; redis and consul recreated interrupt the stack, so that needs a yes. When only
//! HAProxy's configuration changed, the running lb takes it in place (`reload`): same container,
//! a new HAProxy worker, no connection dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

use crate::cli::ApplyArgs;
use crate::commands::Global;
use crate::deploy::compose::file::{outdated, read_file_services, FileService};
use crate::deploy::reload::{self, LiveFile, Reloaded};
use crate::deploy::swarm::policy;
use crate::deploy::{ComposeHost, Deployment, Swarm};
use crate::docker::preflight::{self, Engine, Preflight};
use crate::docker::{Compose, Container, Docker, UpOptions};
use crate::printer::Printer;
use crate::probe::converge::wait_routed;
use crate::probe::load::{self, LoadOptions, LoadReport};
use crate::probe::Endpoints;
use crate::spec::Service;
use crate::{render, CheckFailed, ExitStatus, ToolError, UsageError};

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
        Deployment::Compose(host) => apply_compose(&deployment, host, &args),
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
    host: &ComposeHost<'_>,
    args: &ApplyArgs,
) -> anyhow::Result<ExitStatus> {
    let compose = &host.compose;
    let docker = deployment.docker();
    let plan = deployment.plan();
    let progress = docker.printer();
    let engine = preflight::require_engine(docker)?;
    let before = docker.project_containers(&plan.project)?;
    let wanted = read_file_services(compose.file())?;
    let live = LiveFile::of(plan, &host.out_dir());
    let changes = service_changes(docker, &wanted, &before, &plan.web.service, live.as_ref())?;
    match pending_change(&wanted, &before, &changes) {
        None => {
            progress.note(
                "nothing to do: every container runs its service's current configuration and \
                 image (Compose was not run)",
            );
            let endpoints = deployment.endpoints();
            print!(
                "{}",
                summary(&plan.project, &[], &[], &before, &before, &endpoints)
            );
            host.remember_applied();
            return Ok(ExitStatus::Success);
        }
        Some(reason) => progress.note(format!("to apply: {reason}")),
    }
    let plan_text = describe_changes(&plan.project, &changes, args.batch);
    if docker.is_dry_run() {
        print!("{plan_text}");
    } else {
        progress.note(plan_text.trim_end());
    }
    confirm_restarts(&changes, args)?;
    let to_build = build_missing(deployment, compose, engine)?.built_now;
    let web_now = before
        .iter()
        .filter(|c| c.service == plan.web.service)
        .count() as u32;
    let replicas = keep_replicas(deployment, web_now);

    // Two steps, because nothing should wait on web's Docker health check (rare on purpose,
    // see scaling.rs): first every other service, waiting until healthy; then web alone, and a
    // replica counts once the load balancer routes to it. A service whose configuration is
    // (or is about to be) reloaded in place stays out of Compose's `up`, which would recreate it
    // for its labels.
    // Replacing the lb, redis or consul interrupts the stack: how long is measured with a light
    // load through the lb, and reported.
    let interrupted = interrupted_services(&changes, &plan.web.service);
    let lb_runs = before
        .iter()
        .any(|c| c.service == Service::Lb.name() && c.running);
    let gap = match !interrupted.is_empty() && lb_runs && !docker.is_dry_run() {
        true => Some(load::start(LoadOptions::new(
            deployment.endpoints().lb,
            GAP_PROBE_RATE,
        ))?),
        false => None,
    };
    let in_place: BTreeSet<&str> = changes
        .iter()
        .filter(|c| matches!(c.action, Action::Reload | Action::Reloaded))
        .map(|c| c.service.as_str())
        .collect();
    let others: Vec<String> = plan
        .singleton_services()
        .iter()
        .map(|s| s.name().to_owned())
        .filter(|s| !in_place.contains(s.as_str()))
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
    let reloaded = reload_in_place(docker, &before, &changes, live.as_ref())?;
    let rolling = changes
        .iter()
        .any(|c| c.service == plan.web.service && c.action == Action::Roll);
    if rolling {
        let others: Vec<&str> = changes
            .iter()
            .filter(|c| c.service != plan.web.service && c.action != Action::Keep)
            .map(|c| c.service.as_str())
            .collect();
        host.roll_web(Duration::from_secs(args.timeout), args.batch, &others)?;
    } else {
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
    }
    if docker.is_dry_run() {
        progress.note("dry run: the commands above were printed, not run");
        return Ok(ExitStatus::Success);
    }
    let endpoints = deployment.endpoints();
    let routed = wait_routed(deployment, Duration::from_secs(args.timeout))?;
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
        summary(
            &plan.project,
            &to_build,
            &reloaded,
            &before,
            &after,
            &endpoints
        )
    );
    if let Some(gap) = gap {
        println!(
            "  interruption:  {} ({} replaced)",
            gap_line(&gap.stop()),
            interrupted.join(", ")
        );
    }
    host.remember_applied();
    Ok(ExitStatus::Success)
}

/// Requests per second through the lb while a service it needs is replaced, to measure the gap.
const GAP_PROBE_RATE: f64 = 20.0;

/// The services besides web whose container this apply replaces or restarts: each interrupts
/// what the stack serves (web is replaced rolling, a reload keeps the container).
fn interrupted_services(changes: &[Change], web_service: &str) -> Vec<String> {
    changes
        .iter()
        .filter(|c| c.service != web_service)
        .filter(|c| matches!(c.action, Action::Recreate | Action::Restart | Action::Start))
        .map(|c| c.service.clone())
        .collect()
}

/// How long requests through the lb failed, from the probe load that ran meanwhile.
fn gap_line(report: &LoadReport) -> String {
    match (report.failure_samples.first(), report.last_failure_secs) {
        (Some(first), Some(last)) => format!(
            "requests through the lb failed for {:.1} s: {} of {} sent at {:.0}/s (first: {})",
            last - first.at_secs + 1.0 / report.target_rate_per_sec,
            report.failed,
            report.sent,
            report.target_rate_per_sec,
            first.reason
        ),
        _ => format!(
            "no request through the lb failed: {} sent at {:.0}/s",
            report.sent, report.target_rate_per_sec
        ),
    }
}

/// Delivers the live configuration to each service planned `Reload` (its one running container).
fn reload_in_place(
    docker: &Docker,
    containers: &[Container],
    changes: &[Change],
    live: Option<&LiveFile>,
) -> anyhow::Result<Vec<Reloaded>> {
    let mut done = Vec::new();
    for change in changes.iter().filter(|c| c.action == Action::Reload) {
        let live = live.context("a reload in place was planned without a live configuration")?;
        let container = containers
            .iter()
            .find(|c| !c.oneoff && c.running && c.service == change.service)
            .with_context(|| format!("{} has no running container to reload", change.service))?;
        let reloaded = reload::reload(docker, container, &live.config, &live.rendered)?;
        if !docker.is_dry_run() {
            docker.printer().note(format!(
                "{}: reloaded in place, same container ({})",
                reloaded.service, reloaded.said
            ));
        }
        done.push(reloaded);
    }
    Ok(done)
}

/// Swarm: build what is missing, push what the registry lacks, `stack deploy` with web at the
/// count that runs, wait for Swarm's own rolling update of each changed service (exit 1 when it
/// rolled back), then until every service runs its tasks and the load balancer routes to every
/// web task.
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
    let before_deploy = swarm.before_deploy()?;
    let live = LiveFile::of(plan, swarm.stack_file.parent().unwrap_or(Path::new(".")));
    let lb_in_place = match &live {
        Some(live) => swarm.lb_in_place(live)?,
        None => None,
    };
    swarm.deploy(
        replicas,
        args.batch,
        lb_in_place.as_ref().map(|lb| lb.image.as_str()),
    )?;
    if docker.is_dry_run() {
        let stack_yaml = std::fs::read_to_string(&swarm.stack_file)
            .with_context(|| format!("reading {}", swarm.stack_file.display()))?;
        print!(
            "{}",
            policy::describe(&plan.project, &stack_yaml, args.batch)?
        );
        if let Some(lb) = &lb_in_place {
            println!(
                "  {:<12} keeps its task and image ({}); {}",
                lb.container.service,
                lb.image,
                if lb.needs_reload {
                    "the new HAProxy configuration is reloaded in place"
                } else {
                    "it already runs the file's HAProxy configuration"
                }
            );
        }
        progress.note("dry run: the commands above were printed, not run");
        return Ok(ExitStatus::Success);
    }
    // Swarm rolls changed services out itself (stack.yaml's update_config); a rollback or a
    // pause is the new version failing, not the tool: exit 1, like Compose's `roll_web`.
    let rollout = swarm.wait_updates(&before_deploy, args.timeout)?;
    if let Some(message) = rollout.failure_message() {
        return Err(CheckFailed(message).into());
    }
    if !rollout.updated.is_empty() {
        let each: Vec<String> = rollout
            .updated
            .iter()
            .map(|(service, seconds)| format!("{service} in {seconds} s"))
            .collect();
        progress.note(format!(
            "Swarm's rolling update completed: {}",
            each.join(", ")
        ));
    }
    swarm.wait_running(args.timeout)?;
    let mut reloaded = Vec::new();
    if let (Some(lb), Some(live)) = (&lb_in_place, &live) {
        if lb.needs_reload {
            let done = reload::reload(docker, &lb.container, &live.config, &live.rendered)?;
            // The service still names the image it ran: a task Swarm starts anew (a crash, a
            // lost node) starts from that image's configuration until the next apply.
            progress.note(format!(
                "{}: reloaded in place, same task and container ({}); the service keeps its \
                 image {}, so a task Swarm replaces before the next `provision apply` starts \
                 with the configuration that image carries",
                done.service, done.said, lb.image
            ));
            reloaded.push(done);
        }
    }
    let endpoints = deployment.endpoints();
    let routed = wait_routed(deployment, Duration::from_secs(args.timeout))?;
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
        summary(
            &plan.project,
            &to_build,
            &reloaded,
            &before,
            &after,
            &endpoints
        )
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

/// What apply does to one service, from its containers against the Compose file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Runs what the file says: left alone.
    Keep,
    /// No container yet: created.
    Create,
    /// Stopped, unhealthy or the wrong number of containers: Compose starts or recreates it.
    Start,
    /// A stateless service on an older image or configuration: Compose recreates it.
    Recreate,
    /// Its live configuration alone changed: delivered to the running container and reloaded.
    Reload,
    /// Runs the file's live configuration, delivered in place earlier; its labels still show the
    /// one it was created with, so Compose is not asked about it.
    Reloaded,
    /// redis or consul on an older image or configuration: recreated, keeping its volume.
    Restart,
    /// Web replicas on an older image or configuration: replaced rolling.
    Roll,
}

/// One service's line of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Change {
    service: String,
    action: Action,
    /// Its image tag is not there yet: it is built first.
    rebuild: bool,
    /// Why (the first container that differs), unless kept.
    reason: Option<String>,
}

/// Each service's action. Reads the image ids, and the live file of a container that could take
/// it in place; the rest is `plan_changes`.
fn service_changes(
    docker: &Docker,
    wanted: &BTreeMap<String, FileService>,
    containers: &[Container],
    web_service: &str,
    live: Option<&LiveFile>,
) -> anyhow::Result<Vec<Change>> {
    let images: Vec<String> = wanted.values().map(|w| w.image.clone()).collect();
    let ids = docker.image_ids(&images)?;
    let mut live_current = BTreeSet::new();
    if let Some(live) = live {
        let service = live.config.service.name();
        let candidate = wanted.get(service).and_then(|want| {
            reloadable(containers, service, want)
                .filter(|c| c.config_label.as_deref() != Some(want.config.as_str()))
        });
        if let Some(container) = candidate {
            if live.is_current_in(docker, container)? {
                live_current.insert(service.to_owned());
            }
        }
    }
    Ok(plan_changes(
        wanted,
        &ids,
        containers,
        web_service,
        &live_current,
    ))
}

/// The service's one container, when it can take a live configuration: running, not unhealthy,
/// and the same in everything but that file (its restart key is the file's).
fn reloadable<'c>(
    containers: &'c [Container],
    service: &str,
    want: &FileService,
) -> Option<&'c Container> {
    let mine: Vec<&Container> = containers
        .iter()
        .filter(|c| !c.oneoff && c.service == service)
        .collect();
    match mine.as_slice() {
        [c] if c.running
            && c.health.as_deref() != Some("unhealthy")
            && want.restart_key.is_some()
            && c.restart_key == want.restart_key =>
        {
            Some(c)
        }
        _ => None,
    }
}

/// Each service of the file against its containers: one per service (web: at least one),
/// running, not unhealthy, carrying its service's current `org.provision.config` label (a hash
/// of the service's section, see compose.yaml.j2) and running the image its reference names now
/// (`ids`, in `wanted`'s order; None: not built yet). A service whose one container differs only
/// in its live configuration is reloaded, or kept when `live_current` says the container already
/// reads the file's.
fn plan_changes(
    wanted: &BTreeMap<String, FileService>,
    ids: &[Option<String>],
    containers: &[Container],
    web_service: &str,
    live_current: &BTreeSet<String>,
) -> Vec<Change> {
    wanted
        .iter()
        .zip(ids)
        .map(|((service, want), id)| {
            let mine: Vec<&Container> = containers
                .iter()
                .filter(|c| !c.oneoff && &c.service == service)
                .collect();
            let is_web = service == web_service;
            let first_outdated = mine
                .iter()
                .find_map(|c| outdated(c, want, id.as_deref()).map(|why| (c, why)));
            let first_down = mine.iter().find_map(|c| {
                if !c.running {
                    Some((c, format!("is {}", c.state)))
                } else if c.health.as_deref() == Some("unhealthy") {
                    Some((c, "is unhealthy".to_owned()))
                } else {
                    None
                }
            });
            let stateful = Service::from_name(service).is_some_and(Service::keeps_state);
            let in_place = reloadable(containers, service, want).is_some();
            let (action, reason) = if mine.is_empty() {
                (Action::Create, Some("has no container".to_owned()))
            } else if first_outdated.is_some() && in_place && live_current.contains(service) {
                (Action::Reloaded, None)
            } else if let (Some((c, _)), true) = (&first_outdated, in_place) {
                (
                    Action::Reload,
                    Some(format!(
                        "{} runs an older configuration of this file alone",
                        c.describe()
                    )),
                )
            } else if let Some((c, why)) = first_outdated {
                let action = if is_web {
                    Action::Roll
                } else if stateful {
                    Action::Restart
                } else {
                    Action::Recreate
                };
                (action, Some(format!("{} {why}", c.describe())))
            } else if !is_web && mine.len() != 1 {
                (
                    Action::Start,
                    Some(format!("{service} has {} containers", mine.len())),
                )
            } else if let Some((c, why)) = first_down {
                (Action::Start, Some(format!("{} {why}", c.describe())))
            } else {
                (Action::Keep, None)
            };
            Change {
                service: service.clone(),
                action,
                rebuild: id.is_none(),
                reason,
            }
        })
        .collect()
}

/// Why Compose has work to do; None when every service is kept and no container belongs to a
/// service the file no longer has. That is what lets a no-change apply finish without
/// `docker compose up`, which reads and compares everything again.
fn pending_change(
    wanted: &BTreeMap<String, FileService>,
    containers: &[Container],
    changes: &[Change],
) -> Option<String> {
    if let Some(c) = containers
        .iter()
        .find(|c| !c.oneoff && !wanted.contains_key(&c.service))
    {
        return Some(format!(
            "{} belongs to no service of the file",
            c.describe()
        ));
    }
    changes.iter().find_map(|c| c.reason.clone())
}

/// The plan, for `--dry-run` (stdout) and before applying (progress): what happens to each
/// service, and a plain warning for stateful restarts.
fn describe_changes(project: &str, changes: &[Change], batch: u32) -> String {
    let mut out = format!("plan for {project}:\n");
    for c in changes {
        let what = match c.action {
            Action::Keep => "kept".to_owned(),
            Action::Create => "created".to_owned(),
            Action::Start => "started or recreated by Compose".to_owned(),
            Action::Recreate => {
                "recreated: requests to it fail until the new container answers".to_owned()
            }
            Action::Reload => "reloaded in place: the running container takes the new \
                               configuration file, no request dropped"
                .to_owned(),
            Action::Reloaded => "kept (its configuration was reloaded in place earlier)".to_owned(),
            Action::Restart => "RESTARTED: a stateful service; its data survives on its volume, \
                                but requests get 503 while it restarts"
                .to_owned(),
            Action::Roll => format!(
                "replaced rolling, {batch} replica{} at a time, each new one routed before an \
                 old one is drained",
                if batch == 1 { "" } else { "s" }
            ),
        };
        let rebuilt = if c.rebuild { "image rebuilt; " } else { "" };
        out.push_str(&format!("  {:<12} {rebuilt}{what}", c.service));
        if let Some(reason) = &c.reason {
            out.push_str(&format!(" ({reason})"));
        }
        out.push('\n');
    }
    out
}

/// redis or consul restarting interrupts the stack: asked on a terminal, refused without one
/// unless `--yes` (never silently). A dry run only says it.
fn confirm_restarts(changes: &[Change], args: &ApplyArgs) -> anyhow::Result<()> {
    let restarts: Vec<&str> = changes
        .iter()
        .filter(|c| c.action == Action::Restart)
        .map(|c| c.service.as_str())
        .collect();
    if restarts.is_empty() || args.yes || args.dry_run {
        return Ok(());
    }
    let what = format!(
        "this apply restarts {} (stateful: the data survives on its volume, but requests get 503 \
         while it restarts)",
        restarts.join(" and ")
    );
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        let go = dialoguer::Confirm::new()
            .with_prompt(format!("{what}. Go on?"))
            .default(false)
            .interact()?;
        if go {
            return Ok(());
        }
        return Err(UsageError("not confirmed: nothing was changed".into()).into());
    }
    Err(UsageError(format!(
        "{what}; without a terminal to ask on, apply needs --yes for that (nothing was changed)"
    ))
    .into())
}

/// What apply did, for stdout: images built, containers started/kept, where to look.
fn summary(
    project: &str,
    built: &[String],
    reloaded: &[Reloaded],
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
    for r in reloaded {
        out.push_str(&format!(
            "  reloaded:      {} in place ({})\n",
            r.service, r.said
        ));
    }
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
            restart_key: None,
            started_at: started.into(),
            image: String::new(),
        }
    }

    /// A container of `service` running config `config` on image id `image`.
    fn running(id: &str, service: &str, config: &str, image: &str) -> Container {
        Container {
            config_label: Some(config.into()),
            image_id: image.into(),
            ..container(id, service, "t1")
        }
    }

    fn wanted() -> BTreeMap<String, FileService> {
        ["consul", "lb", "redis", "web"]
            .into_iter()
            .map(|s| {
                (
                    s.to_owned(),
                    FileService {
                        image: format!("{s}:1"),
                        config: format!("{s}-cfg"),
                        restart_key: (s == "lb").then(|| "lb-key".to_owned()),
                    },
                )
            })
            .collect()
    }

    /// Image ids in `wanted()`'s order: consul, lb, redis, web.
    fn ids(web: Option<&str>) -> Vec<Option<String>> {
        vec![
            Some("consul-img".into()),
            Some("lb-img".into()),
            Some("redis-img".into()),
            web.map(str::to_owned),
        ]
    }

    fn current_stack() -> Vec<Container> {
        vec![
            running("c", "consul", "consul-cfg", "consul-img"),
            running("l", "lb", "lb-cfg", "lb-img"),
            running("r", "redis", "redis-cfg", "redis-img"),
            running("w1", "web", "web-cfg", "web-img"),
            running("w2", "web", "web-cfg", "web-img"),
        ]
    }

    /// `plan_changes` of `wanted()` with no container known to read its live file already.
    fn changes_of(ids: &[Option<String>], stack: &[Container]) -> Vec<Change> {
        plan_changes(&wanted(), ids, stack, "web", &BTreeSet::new())
    }

    fn actions(changes: &[Change]) -> Vec<(&str, Action, bool)> {
        changes
            .iter()
            .map(|c| (c.service.as_str(), c.action, c.rebuild))
            .collect()
    }

    #[test]
    fn a_current_stack_keeps_everything_and_has_nothing_pending() {
        let stack = current_stack();
        let changes = changes_of(&ids(Some("web-img")), &stack);
        assert!(
            changes.iter().all(|c| c.action == Action::Keep),
            "{changes:?}"
        );
        assert_eq!(pending_change(&wanted(), &stack, &changes), None);
    }

    #[test]
    fn a_new_web_image_is_built_and_replaced_rolling_the_rest_kept() {
        let changes = changes_of(&ids(None), &current_stack());
        assert_eq!(
            actions(&changes),
            [
                ("consul", Action::Keep, false),
                ("lb", Action::Keep, false),
                ("redis", Action::Keep, false),
                ("web", Action::Roll, true),
            ]
        );
    }

    #[test]
    fn web_on_an_older_configuration_rolls_redis_and_consul_restart_lb_is_recreated() {
        let mut stack = current_stack();
        for c in &mut stack {
            c.config_label = Some("old".into());
        }
        let changes = changes_of(&ids(Some("web-img")), &stack);
        assert_eq!(
            actions(&changes),
            [
                ("consul", Action::Restart, false),
                ("lb", Action::Recreate, false),
                ("redis", Action::Restart, false),
                ("web", Action::Roll, false),
            ]
        );
        insta::assert_snapshot!(describe_changes("hits", &changes, 2), @r"
        plan for hits:
          consul       RESTARTED: a stateful service; its data survives on its volume, but requests get 503 while it restarts (hits-consul-1 (container c) runs an older configuration)
          lb           recreated: requests to it fail until the new container answers (hits-lb-1 (container l) runs an older configuration)
          redis        RESTARTED: a stateful service; its data survives on its volume, but requests get 503 while it restarts (hits-redis-1 (container r) runs an older configuration)
          web          replaced rolling, 2 replicas at a time, each new one routed before an old one is drained (hits-web-1 (container w1) runs an older configuration)
        ");
    }

    #[test]
    fn an_lb_that_differs_in_its_live_file_alone_is_reloaded_then_kept() {
        let mut stack = current_stack();
        stack[1].config_label = Some("lb-old".into());
        stack[1].image_id = "lb-old-img".into();
        stack[1].restart_key = Some("lb-key".into());
        let changes = changes_of(&ids(Some("web-img")), &stack);
        assert_eq!(changes[1].action, Action::Reload, "{changes:?}");
        assert!(pending_change(&wanted(), &stack, &changes).is_some());

        // The container already reads the file's configuration: nothing to do.
        let live = BTreeSet::from(["lb".to_owned()]);
        let changes = plan_changes(&wanted(), &ids(Some("web-img")), &stack, "web", &live);
        assert_eq!(changes[1].action, Action::Reloaded, "{changes:?}");
        assert_eq!(pending_change(&wanted(), &stack, &changes), None);

        // Anything else changed too (another restart key), or the lb is not running: recreated.
        stack[1].restart_key = Some("other".into());
        let changes = plan_changes(&wanted(), &ids(Some("web-img")), &stack, "web", &live);
        assert_eq!(changes[1].action, Action::Recreate, "{changes:?}");
        stack[1].restart_key = Some("lb-key".into());
        stack[1].running = false;
        let changes = plan_changes(&wanted(), &ids(Some("web-img")), &stack, "web", &live);
        assert_eq!(changes[1].action, Action::Recreate, "{changes:?}");
    }

    #[test]
    fn a_stopped_web_replica_is_started_not_rolled_and_a_new_stack_is_created() {
        let mut stack = current_stack();
        stack[4].running = false;
        stack[4].state = "exited".into();
        let changes = changes_of(&ids(Some("web-img")), &stack);
        assert_eq!(changes[3].action, Action::Start);
        assert!(pending_change(&wanted(), &stack, &changes).is_some());

        let changes = changes_of(&ids(None), &[]);
        assert!(
            changes.iter().all(|c| c.action == Action::Create),
            "{changes:?}"
        );
    }

    #[test]
    fn a_container_of_a_service_the_file_lost_is_pending() {
        let mut stack = current_stack();
        stack.push(running("g", "registrator", "x", "y"));
        let changes = changes_of(&ids(Some("web-img")), &stack);
        let reason = pending_change(&wanted(), &stack, &changes).unwrap();
        assert!(reason.contains("belongs to no service"), "{reason}");
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
        insta::assert_snapshot!(summary("hits", &["lb".into()], &[], &before, &after, &endpoints), @r"
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
