//! Apply's steps on a Swarm: build what is missing, push what the registry lacks, `stack deploy`
//! with web at the count that runs, wait for Swarm's own rolling update of each changed service
//! (exit 1 when it rolled back) and until every service runs its tasks. An lb whose HAProxy
//! configuration alone changed keeps its task and reloads in place (`deploy::swarm::in_place`).

use std::path::Path;

use anyhow::Context as _;

use super::{keep_replicas, Builds, Planned};
use crate::cli::ApplyArgs;
use crate::deploy::reload::{LiveFile, Reloaded};
use crate::deploy::swarm::in_place::LbInPlace;
use crate::deploy::swarm::policy;
use crate::deploy::Swarm;
use crate::docker::{Compose, Container};
use crate::probe::converge::Routed;
use crate::CheckFailed;

pub(super) struct Steps<'a> {
    swarm: &'a Swarm<'a>,
    /// The Compose file beside stack.yaml: the images are built from it, on the manager.
    build_file: Compose<'a>,
    /// The images pushed to the registry now.
    pushed: Vec<String>,
    /// The stack's tasks before the deploy, as containers.
    before: Vec<Container>,
    /// What the deploy changed, for the release (`changes`).
    changed: Vec<String>,
}

impl<'a> Steps<'a> {
    pub(super) fn new(swarm: &'a Swarm<'a>) -> Self {
        let compose_file = swarm.stack_file.with_file_name("compose.yaml");
        Steps {
            swarm,
            build_file: Compose::new(swarm.docker, &swarm.plan.project, &compose_file)
                .with_secrets_of(&swarm.plan.project),
            pushed: Vec::new(),
            before: Vec::new(),
            changed: Vec::new(),
        }
    }

    /// For `--dry-run`: Swarm's update policy per service, and what the lb keeps.
    fn print_plan(&self, args: &ApplyArgs, lb_in_place: Option<&LbInPlace>) -> anyhow::Result<()> {
        let swarm = self.swarm;
        let stack_yaml = std::fs::read_to_string(&swarm.stack_file)
            .with_context(|| format!("reading {}", swarm.stack_file.display()))?;
        let out = swarm.docker.printer();
        out.stdout().text(&policy::describe(
            &swarm.plan.project,
            &stack_yaml,
            args.rollout.batch,
        )?)?;
        if let Some(lb) = lb_in_place {
            out.stdout().line(format!(
                "  {:<12} keeps its task and image ({}); {}",
                lb.container.service,
                lb.image,
                if lb.needs_reload {
                    "the new HAProxy configuration is reloaded in place"
                } else {
                    "it already runs the file's HAProxy configuration"
                }
            ))?;
        }
        Ok(())
    }
}

impl super::Steps for Steps<'_> {
    fn preflight(&mut self) -> anyhow::Result<()> {
        self.swarm.require_manager()
    }

    /// Swarm compares the services itself: nothing to plan here.
    fn plan(&mut self, _args: &ApplyArgs) -> anyhow::Result<Planned> {
        Ok(Planned::Changes)
    }

    fn build_file(&self) -> &Compose<'_> {
        &self.build_file
    }

    fn built(&mut self, builds: &Builds) -> anyhow::Result<()> {
        self.pushed = self.swarm.push(&builds.images)?;
        if self.pushed.is_empty() {
            self.swarm
                .docker
                .printer()
                .note("registry: every built image is there already, nothing to push");
        }
        Ok(())
    }

    fn deploy(&mut self, args: &ApplyArgs) -> anyhow::Result<Vec<Reloaded>> {
        let swarm = self.swarm;
        let (docker, plan) = (swarm.docker, swarm.plan);
        let progress = docker.printer();
        let timeout = args.rollout.timeout;
        self.before = swarm.containers()?;
        let replicas = keep_replicas(docker, plan, swarm.web_replicas()?.unwrap_or(0));
        let before_deploy = swarm.before_deploy()?;
        let live = LiveFile::of(plan, swarm.stack_file.parent().unwrap_or(Path::new(".")));
        let lb_in_place = match &live {
            Some(live) => swarm.lb_in_place(live)?,
            None => None,
        };
        swarm.deploy(
            replicas,
            args.rollout.batch,
            lb_in_place.as_ref().map(|lb| lb.image.as_str()),
        )?;
        if docker.is_dry_run() {
            self.print_plan(args, lb_in_place.as_ref())?;
            return Ok(Vec::new());
        }
        // Swarm rolls changed services out itself (stack.yaml's update_config); a rollback or a
        // pause is the new version failing, not the tool: exit 1, like Compose's `roll_web`.
        let rollout = swarm.wait_updates(&before_deploy, timeout)?;
        if let Some(message) = rollout.failure_message() {
            return Err(CheckFailed(message).into());
        }
        self.changed = rollout
            .updated
            .iter()
            .map(|(service, _)| format!("{service}: updated by Swarm (rolling)"))
            .collect();
        if self.before.is_empty() {
            self.changed.push("stack created".to_owned());
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
        swarm.wait_running(timeout)?;
        let mut reloaded = Vec::new();
        if let (Some(lb), Some(live)) = (&lb_in_place, &live) {
            if lb.needs_reload {
                let done = live.reload(docker, &lb.container)?;
                // The service still names the image it ran: a task Swarm starts anew (a crash, a
                // lost node) starts from that image's configuration until the next apply.
                progress.note(format!(
                    "{}: reloaded in place, same task and container ({}); the service keeps its \
                     image {}, so a task Swarm replaces before the next `provision apply` starts \
                     with the configuration that image carries",
                    done.service, done.said, lb.image
                ));
                self.changed
                    .push(format!("{}: reloaded in place", done.service));
                reloaded.push(done);
            }
        }
        Ok(reloaded)
    }

    fn before(&self) -> &[Container] {
        &self.before
    }

    fn changes(&self) -> Vec<String> {
        self.changed.clone()
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        match self.swarm.prune_app_secrets() {
            Ok(0) => {}
            Ok(n) => self.swarm.docker.printer().note(format!(
                "removed {n} replaced version{} of the app's secrets from the swarm",
                if n == 1 { "" } else { "s" }
            )),
            Err(err) => self.swarm.docker.printer().note(format!(
                "could not remove the replaced versions of the app's secrets: {err:#}"
            )),
        }
        self.swarm.docker.printer().stdout().line(format!(
            "  pushed:        {}",
            if self.pushed.is_empty() {
                "none (the registry has every image)".to_owned()
            } else {
                self.pushed.join(", ")
            }
        ))?;
        Ok(())
    }
}
