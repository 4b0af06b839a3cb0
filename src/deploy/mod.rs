//! Where a stack runs, behind the few questions the commands ask of it: which containers the
//! stack has, where the load balancer answers, how to read HAProxy's and consul's views, how to
//! scale web and how to remove the stack. Each target of the plan (`spec::plan::TargetKind`) is a
//! variant here, and what differs lives in its own folder: `compose/` (one host, `docker
//! compose`) and `swarm/` (`docker stack deploy` against a manager). Commands ask a
//! `Deployment`; only this file matches on the target.

pub mod canary;
pub mod certificate;
pub mod compose;
pub mod maintenance;
pub mod reload;
pub mod scale;
pub mod swarm;

use std::path::Path;
use std::time::Duration;

use crate::docker::{Container, Docker, PsEntry};
use crate::probe::converge::{self, Convergence, Routed};
use crate::probe::{registry, stats, Endpoints};
use crate::render::RenderedStack;
use crate::spec::Plan;

pub use compose::ComposeHost;
pub use scale::ScaleAction;
pub use swarm::Swarm;

/// One rendered stack on its target.
#[derive(Debug, Clone)]
pub enum Deployment<'a> {
    /// One Docker host, `docker compose`.
    Compose(ComposeHost<'a>),
    /// A Docker Swarm, `docker stack deploy` against a manager.
    Swarm(Swarm<'a>),
}

/// What `Deployment::destroy` removed, as the command reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Destroyed {
    /// One line: what was removed.
    pub summary: String,
    /// The stack's volumes, removed or kept.
    pub volumes: Vec<String>,
}

impl<'a> Deployment<'a> {
    pub fn new(docker: &'a Docker, stack: &'a RenderedStack) -> Self {
        match stack.plan.swarm() {
            None => Deployment::Compose(ComposeHost::new(docker, stack)),
            Some(target) => Deployment::Swarm(Swarm::new(docker, stack, target)),
        }
    }

    pub fn plan(&self) -> &'a Plan {
        match self {
            Deployment::Compose(host) => host.plan,
            Deployment::Swarm(swarm) => swarm.plan,
        }
    }

    pub fn docker(&self) -> &'a Docker {
        match self {
            Deployment::Compose(host) => host.docker,
            Deployment::Swarm(swarm) => swarm.docker,
        }
    }

    /// The file the stack is deployed from: compose.yaml, or stack.yaml on a Swarm.
    pub fn file(&self) -> &Path {
        match self {
            Deployment::Compose(host) => host.compose.file(),
            Deployment::Swarm(swarm) => &swarm.stack_file,
        }
    }

    /// The target as the wait until web is routed sees it (`probe::converge`).
    pub fn routed(&self) -> &dyn Routed {
        match self {
            Deployment::Compose(host) => host,
            Deployment::Swarm(swarm) => swarm,
        }
    }

    /// How messages name one web container: a `replica`, or on a Swarm a `task`.
    pub fn web_unit(&self) -> &'static str {
        match self {
            Deployment::Compose(_) => "replica",
            Deployment::Swarm(_) => "task",
        }
    }

    /// Every container of the stack (on a Swarm: the tasks meant to run, as containers).
    pub fn containers(&self) -> anyhow::Result<Vec<Container>> {
        self.routed().containers()
    }

    /// The stack as `status` lists it (`docker compose ps`, or the tasks with their nodes),
    /// and as containers.
    pub fn listing(&self) -> anyhow::Result<(Vec<PsEntry>, Vec<Container>)> {
        match self {
            Deployment::Compose(host) => Ok((host.compose.ps()?, host.containers()?)),
            Deployment::Swarm(swarm) => {
                let tasks = swarm.tasks()?;
                let project = &swarm.plan.project;
                Ok((
                    tasks.iter().map(|t| t.to_ps_entry(project)).collect(),
                    tasks.iter().map(|t| t.to_container(project)).collect(),
                ))
            }
        }
    }

    /// On a Swarm: its nodes, the lost ones with the stack's tasks that ran there, and the lb of
    /// each edge node probed at its address. None with Compose (one host).
    pub fn fleet(&self) -> anyhow::Result<Option<swarm::nodes::Fleet>> {
        match self {
            Deployment::Compose(_) => Ok(None),
            Deployment::Swarm(swarm) => swarm.fleet().map(Some),
        }
    }

    /// Where the stack answers from this machine.
    pub fn endpoints(&self) -> Endpoints {
        match self {
            Deployment::Compose(host) => host.endpoints(),
            Deployment::Swarm(swarm) => swarm.endpoints(),
        }
    }

    /// HAProxy's servers: its stats page with Compose (the runtime API when the page hides
    /// addresses), the runtime API in the lb container on a Swarm.
    pub fn haproxy(&self, lb: Option<String>) -> stats::Source<'_> {
        self.routed().haproxy(lb)
    }

    /// consul's API, when discovery uses it: a request from inside the lb container with the
    /// stack's reader token.
    pub fn consul(&self, lb: Option<String>) -> Option<registry::Source<'_>> {
        self.routed().consul(lb)
    }

    /// Waits until the load balancer routes to exactly the running web replicas.
    pub fn wait_routed(&self, timeout: Duration) -> anyhow::Result<Convergence> {
        converge::wait_routed(self.routed(), timeout)
    }

    /// `wait_routed` for the stack's `containers` as already listed.
    pub fn wait_routed_to(&self, containers: &[Container], timeout: Duration) -> Convergence {
        converge::wait_routed_to(self.routed(), containers, timeout)
    }

    /// Scales web to `n` replicas, `batch` at a time, each batch routed before the next.
    pub fn scale_web(&self, n: u32, timeout: Duration, batch: u32) -> anyhow::Result<ScaleAction> {
        match self {
            Deployment::Compose(host) => compose::scale::Scaler {
                host,
                compose: &host.compose,
                timeout,
                batch,
            }
            .scale_to(n),
            Deployment::Swarm(swarm) => swarm.scale_web(n, timeout, batch),
        }
    }

    /// The logs of `services` (every service when empty), each line prefixed by its replica
    /// (Compose, all services interleaved) or task (Swarm, one service after another), handed
    /// to `each` as it comes. `options` are docker's (`--since`, `--tail`, `--follow`).
    pub fn logs(
        &self,
        services: &[String],
        options: &[String],
        follow: bool,
        mut each: impl FnMut(&str) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        match self {
            Deployment::Compose(host) => host.compose.logs(services, options, each),
            Deployment::Swarm(swarm) => {
                let all: Vec<String>;
                let services = if services.is_empty() {
                    all = swarm
                        .plan
                        .services()
                        .iter()
                        .map(|s| s.name().to_owned())
                        .collect();
                    &all
                } else {
                    services
                };
                if follow && services.len() > 1 {
                    return Err(crate::UsageError(
                        "on a Swarm, --follow follows one service: name it (`provision logs web -f`)"
                            .into(),
                    )
                    .into());
                }
                for service in services {
                    swarm.logs(service, options, &mut each)?;
                }
                Ok(())
            }
        }
    }

    /// Removes the stack (its volumes too when `volumes`), waiting up to `timeout` for a
    /// Swarm to let go of its networks.
    pub fn destroy(&self, volumes: bool, timeout: Duration) -> anyhow::Result<Destroyed> {
        let plan = self.plan();
        match self {
            Deployment::Compose(host) => {
                let gone = host.destroy(volumes)?;
                Ok(Destroyed {
                    summary: format!(
                        "removed {}: {} container{}, its network",
                        plan.project,
                        gone.containers,
                        if gone.containers == 1 { "" } else { "s" }
                    ),
                    volumes: gone.volumes,
                })
            }
            Deployment::Swarm(swarm) => {
                let gone = swarm.destroy(volumes, timeout)?;
                Ok(Destroyed {
                    summary: format!(
                        "removed stack {}: {} task{}, its services and network (gone {} s after \
                         `docker stack rm`)",
                        plan.project,
                        gone.tasks,
                        if gone.tasks == 1 { "" } else { "s" },
                        gone.seconds
                    ),
                    volumes: gone.volumes,
                })
            }
        }
    }
}
