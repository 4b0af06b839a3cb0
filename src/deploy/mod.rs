//! Where a stack runs, behind the few questions the commands ask of it: which containers the
//! stack has, where the load balancer answers, how to read HAProxy's and consul's views, and how
//! to scale web. Each target of the plan (`spec::plan::Target`) is a
//! variant here; what differs lives in its own module (`swarm.rs`; Compose is `docker/compose.rs`
//! and `scaling.rs`, as before).

pub mod swarm;

use crate::docker::{Compose, Container, Docker};
use crate::probe::{registry, stats, Endpoints};
use crate::render::RenderedStack;
use crate::report::ScaleAction;
use crate::scaling::{Scaler, BACKEND};
use crate::spec::Plan;

pub use swarm::Swarm;

/// One rendered stack on its target.
#[derive(Debug, Clone)]
pub enum Deployment<'a> {
    /// One Docker host, `docker compose`.
    Compose {
        docker: &'a Docker,
        plan: &'a Plan,
        compose: Compose<'a>,
    },
    /// A Docker Swarm, `docker stack deploy` against a manager.
    Swarm(Swarm<'a>),
}

impl<'a> Deployment<'a> {
    pub fn new(docker: &'a Docker, stack: &'a RenderedStack) -> Self {
        let plan = &stack.plan;
        match plan.swarm() {
            None => Deployment::Compose {
                docker,
                plan,
                compose: Compose::new(docker, &plan.project, &stack.compose_file),
            },
            Some(target) => Deployment::Swarm(Swarm::new(docker, stack, target)),
        }
    }

    pub fn plan(&self) -> &'a Plan {
        match self {
            Deployment::Compose { plan, .. } => plan,
            Deployment::Swarm(swarm) => swarm.plan,
        }
    }

    pub fn docker(&self) -> &'a Docker {
        match self {
            Deployment::Compose { docker, .. } => docker,
            Deployment::Swarm(swarm) => swarm.docker,
        }
    }

    /// Every container of the stack (on a Swarm: the tasks meant to run, as containers).
    pub fn containers(&self) -> anyhow::Result<Vec<Container>> {
        match self {
            Deployment::Compose { docker, plan, .. } => docker.project_containers(&plan.project),
            Deployment::Swarm(swarm) => swarm.containers(),
        }
    }

    /// Where the stack answers from this machine.
    pub fn endpoints(&self) -> Endpoints {
        match self {
            Deployment::Compose { plan, .. } => Endpoints::of(plan),
            Deployment::Swarm(swarm) => swarm.endpoints(),
        }
    }

    /// HAProxy's servers: its stats page with Compose (the runtime API when the page hides
    /// addresses), the runtime API in the lb container on a Swarm.
    pub fn haproxy(&self, lb: Option<String>) -> stats::Source<'a> {
        match self {
            Deployment::Compose { docker, plan, .. } => stats::Source::new(
                &Endpoints::of(plan).stats_csv,
                BACKEND,
                lb.map(|id| (*docker, id)),
            ),
            Deployment::Swarm(swarm) => stats::Source::runtime_only(BACKEND, swarm.docker, lb),
        }
    }

    /// consul's API, when discovery uses it: its published port with Compose, a request from
    /// inside the lb container on a Swarm (None there while the lb does not run).
    pub fn consul(&self, lb: Option<String>) -> Option<registry::Source<'a>> {
        let plan = self.plan();
        if !plan.discovery.has_registry() {
            return None;
        }
        match self {
            Deployment::Compose { plan, .. } => {
                Endpoints::of(plan).consul.map(registry::Source::Http)
            }
            Deployment::Swarm(swarm) => lb.map(|container| registry::Source::Exec {
                docker: swarm.docker,
                container,
            }),
        }
    }

    /// Scales web to `n` replicas, `batch` at a time, each batch routed before the next.
    pub fn scale_web(&self, n: u32, timeout: u64, batch: u32) -> anyhow::Result<ScaleAction> {
        match self {
            Deployment::Compose {
                docker,
                plan,
                compose,
            } => Scaler {
                deployment: self,
                docker,
                compose,
                plan,
                endpoints: &Endpoints::of(plan),
                timeout,
                batch,
            }
            .scale_to(n),
            Deployment::Swarm(swarm) => swarm.scale_web(self, n, timeout, batch),
        }
    }
}
