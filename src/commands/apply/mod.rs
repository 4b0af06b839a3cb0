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

mod base;
mod changes;
mod compose;
mod record;
mod summary;
mod swarm;

use crate::cli::ApplyArgs;
use crate::commands::Global;
use crate::deploy::reload::Reloaded;
use crate::deploy::Deployment;
use crate::docker::preflight::{self, Engine, Preflight};
use crate::docker::{Compose, Container, Docker};
use crate::picture::Picture;
use crate::probe::converge::lb_container;
use crate::probe::http;
use crate::probe::load::LoadOptions;
use crate::probe::measure;
use crate::probe::stats::WEB_BACKEND;
use crate::releases::Origin;
use crate::render::RenderedStack;
use crate::secrets::Flavour;
use crate::secrets::{self, SecretStore};
use crate::spec::Plan;
use crate::{render, ExitStatus, ToolError, UsageError};

pub use record::Recording;

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
    let recording = Recording {
        origin: Origin::Apply,
        spec_text: std::fs::read_to_string(&global.spec)
            .map_err(|err| anyhow::anyhow!("reading {}: {err}", global.spec.display()))?,
    };
    deploy_stack(global, &stack, &args, &recording)
}

/// Deploys `stack` (rendered from the spec, or an earlier release's files for `rollback`) with
/// apply's one sequence, and records the release it makes.
pub fn deploy_stack(
    global: &Global,
    stack: &RenderedStack,
    args: &ApplyArgs,
    recording: &Recording,
) -> anyhow::Result<ExitStatus> {
    let progress = global.printer;
    // The app's env file and secrets: read (a missing one stops here, before anything changed)
    // and delivered beside the state, so that every docker call below passes them.
    let (flavour, rendered) = match stack.plan.swarm() {
        None => (Flavour::Compose, stack.compose_file.clone()),
        Some(_) => (Flavour::Swarm, stack.out_dir.join("stack.yaml")),
    };
    // The certificate the running lb serves, trusted before a new one is stored (the trust only
    // grows): `--load` then counts the old certificate's answers during a swap as answered.
    if stack.plan.lb.tls.is_some() {
        let _ = crate::probe::tls::trust_stack(&stack.plan.project);
    }
    if let Some((inputs, _)) =
        crate::inputs::prepare(&stack.plan, &global.spec, flavour, &rendered, args.dry_run)?
    {
        progress.note(inputs.describe());
    }
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
    let deployment = Deployment::new(&docker, stack);
    if let (Deployment::Swarm(_), Some(_)) = (&deployment, args.canary) {
        return Err(UsageError(SWARM_CANARY.into()).into());
    }
    let status = match &deployment {
        Deployment::Compose(host) => {
            apply(&deployment, &mut compose::Steps::new(host), args, recording)?
        }
        Deployment::Swarm(swarm) => {
            apply(&deployment, &mut swarm::Steps::new(swarm), args, recording)?
        }
    };
    if status == ExitStatus::Success && !args.dry_run {
        swap_certificate(&deployment)?;
    }
    Ok(status)
}

/// One host with HTTPS on: a running lb that serves another certificate than the stored one gets
/// it in place (`deploy::certificate`). A new lb container already read it when it started.
fn swap_certificate(deployment: &Deployment<'_>) -> anyhow::Result<()> {
    let plan = deployment.plan();
    if plan.lb.tls.is_none() || plan.swarm().is_some() {
        return Ok(());
    }
    let docker = deployment.docker();
    let Some(lb) = lb_container(&deployment.containers()?) else {
        return Ok(());
    };
    if crate::deploy::certificate::swap_if_changed(docker, &plan.project, &lb)? {
        docker.printer().note(
            "lb: the new certificate is served, swapped in place through HAProxy's runtime API \
             (no restart, open connections kept)",
        );
    }
    Ok(())
}

/// Why `--canary` is refused on a Swarm.
const SWARM_CANARY: &str = "--canary works on one host (target.kind: compose) only. On a Swarm, \
     HAProxy could weight a task's server, but Swarm's own rolling update (`docker service \
     update`) starts and stops the tasks: it cannot be held at one new task while provision \
     watches it, and a rollback is Swarm's whole-service rollback, not the removal of one task. \
     Without --canary, apply rolls web with Swarm's update, which rolls back on a failed health \
     check (failure_action: rollback; see docs/swarm.md)";

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
    /// What the deploy changed, one line per service, for the release.
    fn changes(&self) -> Vec<String>;
}

/// preflight → plan → build → deploy → wait routed → summary.
fn apply(
    deployment: &Deployment<'_>,
    steps: &mut dyn Steps,
    args: &ApplyArgs,
    recording: &Recording,
) -> anyhow::Result<ExitStatus> {
    let docker = deployment.docker();
    let plan = deployment.plan();
    let engine = preflight::require_engine(docker)?;
    steps.preflight()?;
    let rebuild = base::refresh(deployment, steps.build_file(), args)?;
    if steps.plan(args)? == Planned::Unchanged {
        // A stack deployed before releases were kept gets its first one here.
        recording.after_deploy(deployment, Vec::new());
        return Ok(ExitStatus::Success);
    }
    let builds = build_missing(deployment, steps.build_file(), engine, rebuild)?;
    steps.built(&builds)?;
    let endpoints = deployment.endpoints();
    let measuring = match args.rollout.load {
        Some(rate) if !docker.is_dry_run() => {
            let mut options = LoadOptions::new(&endpoints.lb, rate);
            // Which replica answered each request: the replicas answering, second by second.
            options.header = Some(http::SERVER_HEADER.to_owned());
            let token = secrets::stack::probe_token(&plan.project, docker.printer())?;
            options.request_header = Some((http::PROBE_HEADER.to_owned(), token));
            docker.printer().note(format!(
                "sending {rate}/s through {} meanwhile",
                endpoints.lb
            ));
            Some(measure::start(
                options,
                Some(endpoints.stats_csv.as_str()).filter(|url| !url.is_empty()),
                WEB_BACKEND,
                secrets::stack::stats_authorization(&plan.project)?,
            )?)
        }
        _ => None,
    };
    // The wait is part of what is measured: the last replicas are routed during it.
    let deployed = steps.deploy(args).and_then(|reloaded| {
        if docker.is_dry_run() {
            return Ok((reloaded, None));
        }
        Ok((
            reloaded,
            Some(deployment.wait_routed(args.rollout.timeout)?),
        ))
    });
    if let Some(measuring) = measuring {
        let (load, timeline) = measuring.stop();
        let verdict = match &deployed {
            Ok(_) => vec!["applied".to_owned()],
            Err(err) => format!("{err:#}").lines().map(str::to_owned).collect(),
        };
        docker.printer().note(load.summary_lines().join("\n"));
        if let Some(path) = &args.rollout.report {
            Picture {
                title: title(args),
                project: &plan.project,
                passed: deployed.is_ok(),
                verdict,
                load: &load,
                up: &timeline.servers_up,
                events: &timeline.events,
            }
            .write(path)?;
            docker.printer().note(format!(
                "wrote the picture of this apply to {}",
                path.display()
            ));
        }
    }
    let (reloaded, routed) = deployed?;
    let Some(routed) = routed else {
        docker
            .printer()
            .note("dry run: the commands above were printed, not run");
        return Ok(ExitStatus::Success);
    };
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
    recording.after_deploy(deployment, steps.changes());
    Ok(ExitStatus::Success)
}

/// The report's title: the command as run, without its file options.
fn title(args: &ApplyArgs) -> String {
    let mut title = "provision apply".to_owned();
    if let Some(canary) = args.canary {
        title.push_str(&format!(
            " --canary {}:{}",
            canary.percent,
            canary.window.as_secs()
        ));
    }
    if let Some(rate) = args.rollout.load {
        title.push_str(&format!(" --load {rate}"));
    }
    title
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
    rebuild: base::Rebuild,
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
        compose.build(&to_build, rebuild.no_cache)?;
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
