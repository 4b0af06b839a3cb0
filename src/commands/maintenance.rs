//! `provision maintenance on|off`: the load balancer answers every request with 503, a
//! `Retry-After` header and a short page, or serves again. Switched through HAProxy's runtime
//! API in the running lb, so it takes effect at the next request, drops no connection and
//! touches no replica; kept in the state directory so that a new HAProxy provision starts is
//! switched too (`deploy/maintenance.rs`).

use crate::cli::{MaintenanceArgs, Switch};
use crate::commands::Global;
use crate::deploy::maintenance::{self, Maintenance};
use crate::deploy::Deployment;
use crate::docker::{preflight, Docker};
use crate::probe::converge::lb_container;
use crate::{render, ExitStatus, UsageError};

pub fn run(global: &Global, args: MaintenanceArgs) -> anyhow::Result<ExitStatus> {
    let printer = &global.printer;
    let stack = render::rendered_stack(&global.spec, &args.out, printer)?;
    let project = &stack.plan.project;
    let _lock = global.lock(project, "maintenance", printer)?;
    let docker = Docker::new(*printer);
    preflight::require_engine(&docker)?;
    let deployment = Deployment::new(&docker, &stack);
    let lb = lb_container(&deployment.containers()?).ok_or_else(|| {
        UsageError(format!(
            "the load balancer of {project} does not run: nothing to switch (`provision apply` \
             starts the stack)"
        ))
    })?;
    let wanted = Maintenance {
        on: args.switch == Switch::On,
        retry_after: args.retry_after,
    };
    let before = maintenance::kept(project)?;
    // Kept first: a reload that starts a new HAProxy between the two steps then switches it too.
    maintenance::keep(project, wanted)?;
    if let Err(err) = maintenance::set(&docker, &lb, wanted) {
        // Best effort: the error says what went wrong, whatever happens here.
        let _ = maintenance::keep(project, before);
        return Err(err);
    }
    let endpoint = deployment.endpoints().lb;
    printer.stdout().line(if wanted.on {
        format!(
            "maintenance on: {endpoint} answers 503 with Retry-After: {} to every request; the \
             web replicas keep running untouched (`provision maintenance off` serves again)",
            wanted.retry_after
        )
    } else {
        format!("maintenance off: {endpoint} serves again")
    })?;
    Ok(ExitStatus::Success)
}
