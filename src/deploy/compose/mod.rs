//! The Compose target: one Docker host, `docker compose` of compose.yaml (the CLI itself is
//! wrapped in `docker/compose.rs`). Web is scaled in batches (`scale.rs`) and replaced rolling
//! (`roll.rs`) by provision itself, so the load balancer never runs out of replicas; the file of
//! the last apply is kept to roll back to (`applied.rs`).

pub mod applied;
pub mod file;
pub mod roll;
pub mod scale;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::docker::{Compose, Container, Docker};
use crate::probe::converge::Routed;
use crate::probe::{registry, stats, Endpoints};
use crate::render::RenderedStack;
use crate::spec::Plan;

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
        ComposeHost {
            docker,
            plan,
            compose: Compose::new(docker, &plan.project, &stack.compose_file),
        }
    }

    /// The project's containers.
    pub fn containers(&self) -> anyhow::Result<Vec<Container>> {
        self.docker.project_containers(&self.plan.project)
    }

    /// The published ports on this machine.
    pub fn endpoints(&self) -> Endpoints {
        Endpoints::of(self.plan)
    }

    /// HAProxy's servers: its stats page, or the runtime API in the lb container `lb` when the
    /// page hides addresses.
    pub fn haproxy(&self, lb: Option<String>) -> stats::Source<'a> {
        stats::Source::new(
            &self.endpoints().stats_csv,
            stats::WEB_BACKEND,
            lb.map(|id| (self.docker, id)),
        )
    }

    /// consul's API on its published port, when discovery uses it.
    pub fn consul(&self, _lb: Option<String>) -> Option<registry::Source<'a>> {
        if !self.plan.discovery.has_registry() {
            return None;
        }
        self.endpoints().consul.map(registry::Source::Http)
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
}

impl Routed for ComposeHost<'_> {
    fn plan(&self) -> &Plan {
        self.plan
    }

    fn docker(&self) -> &Docker {
        self.docker
    }

    fn containers(&self) -> anyhow::Result<Vec<Container>> {
        ComposeHost::containers(self)
    }

    fn haproxy(&self, lb: Option<String>) -> stats::Source<'_> {
        ComposeHost::haproxy(self, lb)
    }

    fn consul(&self, lb: Option<String>) -> Option<registry::Source<'_>> {
        ComposeHost::consul(self, lb)
    }
}
