//! The Compose target: one Docker host, `docker compose` of compose.yaml (the CLI itself is
//! wrapped in `docker/compose.rs`). Web is scaled in batches (`scale.rs`) and replaced rolling
//! (`roll.rs`) by provision itself, so the load balancer never runs out of replicas; the file of
//! the last apply is kept to roll back to (`applied.rs`).

pub mod applied;
pub mod canary;
pub mod file;
pub mod roll;
pub mod scale;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use super::reload::{LiveFile, Reloaded};
use crate::docker::{of_service, Compose, Container, Docker};
use crate::probe::converge::Routed;
use crate::probe::{stats, Endpoints};
use crate::render::RenderedStack;
use crate::secrets::Flavour;
use crate::spec::{Plan, Service};

/// One stack on one Docker host.
#[derive(Debug, Clone)]
pub struct ComposeHost<'a> {
    pub docker: &'a Docker,
    pub plan: &'a Plan,
    pub compose: Compose<'a>,
}

/// What `destroy` removed on one host.
#[derive(Debug, Clone, PartialEq)]
pub struct DestroyOutcome {
    pub containers: usize,
    pub volumes: Vec<String>,
}

impl<'a> ComposeHost<'a> {
    pub fn new(docker: &'a Docker, stack: &'a RenderedStack) -> Self {
        let plan = &stack.plan;
        // The stack's own secrets (`secrets::stack`), then the app's inputs (`crate::inputs`).
        let mut compose =
            Compose::new(docker, &plan.project, &stack.compose_file).with_secrets_of(&plan.project);
        if let Some(file) = crate::inputs::override_file(&plan.project, Flavour::Compose) {
            compose = compose.with_override(&file);
        }
        ComposeHost {
            docker,
            plan,
            compose,
        }
    }

    /// The published ports on this machine.
    pub fn endpoints(&self) -> Endpoints {
        Endpoints::of(self.plan)
    }

    /// The output directory: the Compose file's.
    pub fn out_dir(&self) -> PathBuf {
        self.compose
            .file()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// Keeps the file the stack now runs (see `applied`); a failure costs only a later total
    /// rollback, so it is a note.
    pub fn remember_applied(&self) {
        if self.docker.is_dry_run() {
            return;
        }
        if let Err(err) = applied::remember(self.compose.project(), self.compose.file()) {
            self.docker.printer().note(format!(
                "could not keep a copy of the applied Compose file ({err:#}); a rollout that fails \
                 after its first batch will leave the replicas it replaced on the new version"
            ));
        }
    }

    /// Delivers the live configuration to each of `services` (its one running container among
    /// `containers`) and reloads it there: same container, no request dropped.
    pub fn reload_in_place(
        &self,
        containers: &[Container],
        services: &[&str],
        live: Option<&LiveFile>,
    ) -> anyhow::Result<Vec<Reloaded>> {
        let docker = self.docker;
        let mut done = Vec::new();
        for &service in services {
            let live =
                live.context("a reload in place was planned without a live configuration")?;
            let container = containers
                .iter()
                .find(|c| !c.oneoff && c.running && c.service == service)
                .with_context(|| format!("{service} has no running container to reload"))?;
            let reloaded = live.reload(docker, container)?;
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

    /// `docker compose down --remove-orphans`; the project's volumes stay unless `volumes`.
    pub fn destroy(&self, volumes: bool) -> anyhow::Result<DestroyOutcome> {
        let plan = self.plan;
        let containers = self.containers()?;
        let label = format!("label=com.docker.compose.project={}", plan.project);
        let found_volumes: Vec<String> = self
            .docker
            .call(
                format!("listing the volumes of project {}", plan.project),
                ["volume", "ls", "--quiet", "--filter", label.as_str()],
            )
            .timeout(Duration::from_secs(30))
            .output()?
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if plan.features().self_registration {
            self.stop_lb_then_tell_web_drained(&containers)?;
        }
        self.compose.down(volumes)?;
        // Nothing runs from it any more (see `applied`).
        if let Err(err) = applied::forget(&plan.project) {
            self.docker.printer().note(format!(
                "could not remove the kept copy of the last applied Compose file: {err:#}"
            ));
        }
        Ok(DestroyOutcome {
            containers: containers.len(),
            volumes: found_volumes,
        })
    }

    /// Before `down`: requests reach web only through the lb, so once the lb has stopped the
    /// web replicas have nothing left to drain, and are told so ([`scale::tell_drained`]).
    /// `down` alone stops the lb first too, but each replica then waited its drain time and
    /// stopped gunicorn gracefully: a consul-dns stack's destroy took 5.1 s, 3 of them the
    /// replicas' stop (`docker events`).
    fn stop_lb_then_tell_web_drained(&self, containers: &[Container]) -> anyhow::Result<()> {
        let running = |service: &str| -> Vec<Container> {
            of_service(containers, service)
                .into_iter()
                .filter(|c| c.running)
                .collect()
        };
        let lbs = running(Service::Lb.name());
        let web = running(&self.plan.web.service);
        if lbs.is_empty() || web.is_empty() {
            return Ok(());
        }
        let mut args = vec!["stop"];
        args.extend(lbs.iter().map(|c| c.id.as_str()));
        self.docker
            .call("stopping the lb", args)
            .changes_state()
            .output()?;
        scale::tell_drained(self.docker, &web);
        Ok(())
    }
}

impl Routed for ComposeHost<'_> {
    fn plan(&self) -> &Plan {
        self.plan
    }

    fn docker(&self) -> &Docker {
        self.docker
    }

    /// The project's containers.
    fn containers(&self) -> anyhow::Result<Vec<Container>> {
        self.docker.project_containers(&self.plan.project)
    }

    /// The runtime API in the lb container, as on a Swarm: the stats page wants a password
    /// (the stack's secret lb_stats_password) that provision has no reason to send around.
    fn haproxy(&self, lb: Option<String>) -> stats::Source<'_> {
        stats::Source::runtime_only(stats::WEB_BACKEND, self.docker, lb)
    }
}
