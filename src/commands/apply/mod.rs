//! `provision apply`: render if needed, preflight, build the images that are missing, deploy,
//! wait until the load balancer routes to every web replica, and say what was done.
//!
//! One sequence for both targets (`apply`): preflight → plan → build → deploy → wait routed →
//! summary. What differs is a method of the target's `Steps`: `compose.rs` (one host: plan the
//! change per service, `up`, roll web, reload in place) and `swarm.rs` (push to the registry,
//! `stack deploy`, follow Swarm's own rolling update). The plan of a change is `changes.rs`,
//! the closing lines `summary.rs`.
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

mod changes;
mod compose;
mod summary;
mod swarm;

use crate::cli::ApplyArgs;
use crate::commands::Global;
use crate::deploy::reload::Reloaded;
use crate::deploy::Deployment;
use crate::docker::preflight::{self, Engine, Preflight};
use crate::docker::{Compose, Container, Docker};
use crate::secrets::{self, SecretStore};
use crate::spec::Plan;
use crate::{render, ExitStatus, ToolError};

pub fn run(global: &Global, args: ApplyArgs) -> anyhow::Result<ExitStatus> {
    let progress = global.printer;
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
    // The stack's own secrets (redis' password, the probe token, the stats password): made on
    // the first apply, in the state directory; rotated ones since the last apply roll the
    // services that read them. A dry run writes nothing: it shows the stack as last prepared.
    if !args.dry_run {
        let store = SecretStore::of(&stack.plan.project)?;
        if args.rotate_secrets {
            secrets::stack::rotate(&store, &stack.plan, &[])?;
            progress.note("secrets: every secret of the stack has a new value and version");
        }
        secrets::stack::prepare(&store, &stack.plan)?;
    }
    let docker = Docker::new(progress).dry_run(args.dry_run);
    let deployment = Deployment::new(&docker, &stack);
    match &deployment {
        Deployment::Compose(host) => apply(&deployment, &mut compose::Steps::new(host), &args),
        Deployment::Swarm(swarm) => apply(&deployment, &mut swarm::Steps::new(swarm), &args),
    }
}

/// Whether the plan leaves anything to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Planned {
    /// Everything runs what the files say: apply is done (and said so).
    Unchanged,
    /// Go on: build, deploy.
    Changes,
}

/// What differs between the targets in apply's one sequence.
trait Steps {
    /// Checks only this target needs, before anything changes.
    fn preflight(&mut self) -> anyhow::Result<()>;
    /// Plans the change, says it and asks for a yes where it interrupts the stack.
    fn plan(&mut self, args: &ApplyArgs) -> anyhow::Result<Planned>;
    /// The Compose file the images are built from.
    fn build_file(&self) -> &Compose<'_>;
    /// What follows a build (a Swarm's nodes pull from the registry: push).
    fn built(&mut self, builds: &Builds) -> anyhow::Result<()>;
    /// Deploys the stack; returns what was reloaded in place. In a dry run, prints the plan.
    fn deploy(&mut self, args: &ApplyArgs) -> anyhow::Result<Vec<Reloaded>>;
    /// The stack's containers before the deploy.
    fn before(&self) -> &[Container];
    /// The target's own closing lines, after the summary.
    fn finish(&mut self) -> anyhow::Result<()>;
}

/// preflight → plan → build → deploy → wait routed → summary.
fn apply(
    deployment: &Deployment<'_>,
    steps: &mut dyn Steps,
    args: &ApplyArgs,
) -> anyhow::Result<ExitStatus> {
    let docker = deployment.docker();
    let plan = deployment.plan();
    let engine = preflight::require_engine(docker)?;
    steps.preflight()?;
    if steps.plan(args)? == Planned::Unchanged {
        return Ok(ExitStatus::Success);
    }
    let builds = build_missing(deployment, steps.build_file(), engine)?;
    steps.built(&builds)?;
    let reloaded = steps.deploy(args)?;
    if docker.is_dry_run() {
        docker
            .printer()
            .note("dry run: the commands above were printed, not run");
        return Ok(ExitStatus::Success);
    }
    let endpoints = deployment.endpoints();
    let routed = deployment.wait_routed(args.timeout)?;
    if !routed.converged {
        return Err(ToolError(format!(
            "the stack started, but the load balancer does not route to every web {} after {} s: {}",
            deployment.web_unit(),
            routed.seconds,
            routed.last_problem.unwrap_or_default()
        ))
        .into());
    }
    let after = deployment.containers()?;
    deployment
        .docker()
        .printer()
        .stdout()
        .text(&summary::summary(
            &plan.project,
            &builds.built_now,
            &reloaded,
            steps.before(),
            &after,
            &endpoints,
        ))?;
    steps.finish()?;
    Ok(ExitStatus::Success)
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
fn keep_replicas(docker: &Docker, plan: &Plan, web_now: u32) -> u32 {
    if web_now > 0 && web_now != plan.web.replicas {
        docker.printer().note(format!(
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
