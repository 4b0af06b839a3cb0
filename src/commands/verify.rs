//! `provision verify [--scale N]`: optionally scale web (draining replicas before a scale-down),
//! wait until the load balancer and the registry see exactly the running replicas, probe through
//! the load balancer, and report every check as text, JSON and JUnit XML.
//!
//! Without `--scale`, the stack is checked as it stands: every web container of the project,
//! running or not, is expected to answer, so a replica stopped by hand fails the run by name.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cli::VerifyArgs;
use crate::commands::Global;
use crate::docker::{preflight, Compose, Container, Docker, UpOptions};
use crate::printer::Printer;
use crate::probe::checks::{self, Observations};
use crate::probe::converge::{self, Convergence, Target};
use crate::probe::http::{self, Expect, ProbePlan};
use crate::probe::{lbadmin, registry, stats, Endpoints};
use crate::report::{round1, Check, Outcome, Report, ScaleAction};
use crate::spec::{Plan, Service};
use crate::{render, CheckFailed, ExitStatus, UsageError};

/// The HAProxy backend the blueprints route web through.
const BACKEND: &str = "web";
/// Between putting replicas into maintenance and stopping them: lets requests in flight finish
/// (measured: 0 of 4000 requests lost with 1 s, see REFERENCE.md).
const DRAIN_PAUSE: Duration = Duration::from_secs(1);

pub fn run(global: &Global, args: VerifyArgs) -> anyhow::Result<ExitStatus> {
    let started = Instant::now();
    let progress = Printer::detect(global.quiet);
    let stack = render::rendered_stack(&global.spec, &args.out, &progress)?;
    let plan = &stack.plan;
    let docker = Docker::new(progress);
    preflight::require_engine(&docker)?;
    let compose = Compose::new(&docker, &plan.project, &stack.compose_file);
    let endpoints = Endpoints::of(plan);

    let containers = docker.project_containers(&plan.project)?;
    let web = web_of(&containers, plan);
    if web.is_empty() {
        return Err(UsageError(format!(
            "project {} has no web containers: run `provision apply` first",
            plan.project
        ))
        .into());
    }

    let mut scale = None;
    if let Some(n) = args.scale {
        if n == 0 || n > plan.lb.max_replicas {
            return Err(UsageError(format!(
                "--scale must be between 1 and lb.max_replicas ({}), got {n}",
                plan.lb.max_replicas
            ))
            .into());
        }
        scale = Some(scale_web(
            &docker,
            &compose,
            plan,
            &containers,
            n,
            &endpoints,
            args.timeout,
        )?);
    }

    let containers = docker.project_containers(&plan.project)?;
    let replicas = web_of(&containers, plan);
    let others: Vec<Container> = containers
        .iter()
        .filter(|c| c.service != plan.web.service)
        .cloned()
        .collect();
    let expected = args.scale.unwrap_or(replicas.len() as u32);
    let running: Vec<&Container> = replicas.iter().filter(|c| c.running).collect();

    let step = progress.step(&format!(
        "waiting for the load balancer to route to {} running replica{}",
        running.len(),
        if running.len() == 1 { "" } else { "s" }
    ));
    let lb = lb_container(&containers);
    let stats_source = stats::Source::new(
        &endpoints.stats_csv,
        BACKEND,
        lb.clone().map(|id| (&docker, id)),
    );
    let target = Target {
        ips: running.iter().filter_map(|c| c.ip.clone()).collect(),
        stats: &stats_source,
        consul: endpoints
            .consul
            .clone()
            .map(|url| (url, plan.web.service.clone())),
    };
    let convergence = if lb.is_none() {
        // Nothing will route while the load balancer is down; waiting would only cost time.
        Convergence::impossible(&target, "the lb container is not running")
    } else {
        converge::wait(&target, Duration::from_secs(args.timeout), Some(&step))
    };
    if convergence.converged {
        step.finish();
    } else {
        step.fail();
    }

    let probe_plan = match args.requests {
        Some(n) => ProbePlan::exactly(n),
        None => ProbePlan::enough_for(running.iter().filter_map(|c| c.ip.clone()).collect()),
    };
    let expect = Expect::of(plan);
    let step = progress.step(&format!("probing {}", endpoints.lb));
    let probe = http::probe(&endpoints.lb, &probe_plan, &expect);
    step.finish();

    let (haproxy, haproxy_error) = match stats_source.fetch() {
        Ok(servers) => (servers, None),
        Err(err) => (Vec::new(), Some(format!("{err:#}"))),
    };
    let (registry, registry_error) = match &endpoints.consul {
        None => (None, None),
        Some(url) => match registry::passing(url, &plan.web.service) {
            Ok(instances) => (Some(instances), None),
            Err(err) => (Some(Vec::new()), Some(format!("{err:#}"))),
        },
    };
    let observations = Observations {
        expected,
        services: plan.singleton_services(),
        others,
        discovery: plan.discovery,
        balance: plan.lb.balance,
        replicas: replicas.clone(),
        convergence,
        expect,
        probe,
        haproxy,
        registry,
    };
    let mut checks = checks::evaluate(&observations);
    if let Some(error) = scale.as_ref().and_then(|s| s.error.clone()) {
        checks.insert(0, Check::new("scale", Outcome::Fail, error));
    }
    // A view that could not be read at all is said in its check, not lost.
    for c in checks.iter_mut() {
        let error = match c.name.as_str() {
            "haproxy" => &haproxy_error,
            "registry" => &registry_error,
            _ => &None,
        };
        if let Some(error) = error {
            c.message.push_str(&format!("\ncould not read it: {error}"));
        }
    }
    let report = Report::new(
        &plan.project,
        plan.discovery.as_str(),
        expected,
        scale,
        checks,
        started.elapsed(),
    );

    if args.json {
        print!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, report.to_junit()?)
            .with_context(|| format!("writing the JUnit report to {}", path.display()))?;
    }
    if report.passed {
        Ok(ExitStatus::Success)
    } else {
        Err(CheckFailed(format!(
            "verify failed: {} of {} checks failed",
            report.failures(),
            report.checks.len()
        ))
        .into())
    }
}

/// The running load balancer container, for the runtime API.
fn lb_container(containers: &[Container]) -> Option<String> {
    containers
        .iter()
        .find(|c| c.service == Service::Lb.name() && c.running)
        .map(|c| c.id.clone())
}

fn web_of(containers: &[Container], plan: &Plan) -> Vec<Container> {
    containers
        .iter()
        .filter(|c| c.service == plan.web.service)
        .cloned()
        .collect()
}

/// Scales web to `n`. Going down, the replicas with the highest container numbers (the ones
/// Compose itself would remove) are first put into maintenance in HAProxy, given a moment to
/// finish requests, stopped (each deregisters itself from consul on SIGTERM in consul-dns mode)
/// and removed; then Compose settles the count without touching the others.
fn scale_web(
    docker: &Docker,
    compose: &Compose<'_>,
    plan: &Plan,
    containers: &[Container],
    n: u32,
    endpoints: &Endpoints,
    timeout: u64,
) -> anyhow::Result<ScaleAction> {
    let started = Instant::now();
    let progress = docker.printer();
    let mut web = web_of(containers, plan);
    let from = web.len() as u32;
    web.sort_by_key(|c| std::cmp::Reverse(c.number));
    let leaving: Vec<Container> = web
        .into_iter()
        .take(from.saturating_sub(n) as usize)
        .collect();
    let lb = lb_container(containers);

    let mut drained = Vec::new();
    if !leaving.is_empty() {
        let source = stats::Source::new(
            &endpoints.stats_csv,
            BACKEND,
            lb.clone().map(|id| (docker, id)),
        );
        match (&lb, source.fetch()) {
            (Some(lb), Ok(servers)) => {
                let ips: BTreeSet<&str> = leaving.iter().filter_map(|c| c.ip.as_deref()).collect();
                drained = servers
                    .iter()
                    .filter(|s| !s.is_unused_slot() && ips.contains(s.ip()))
                    .map(|s| s.name.clone())
                    .collect();
                let refused = lbadmin::set_state(docker, lb, BACKEND, &drained, "maint")?;
                if !refused.is_empty() {
                    progress.note(format!(
                        "warning: HAProxy did not drain every replica: {}",
                        refused.join("; ")
                    ));
                }
                std::thread::sleep(DRAIN_PAUSE);
            }
            (None, _) => {
                progress.note("warning: no running lb container: scaling down without draining")
            }
            (_, Err(err)) => progress.note(format!(
                "warning: cannot read HAProxy's servers ({err:#}): scaling down without draining"
            )),
        }
        let ids: Vec<&str> = leaving.iter().map(|c| c.id.as_str()).collect();
        let names: Vec<&str> = leaving.iter().map(|c| c.name.as_str()).collect();
        let mut args = vec!["stop"];
        args.extend(&ids);
        docker
            .call(format!("stopping {}", names.join(", ")), args)
            .changes_state()
            .run_with_progress()?;
        let mut args = vec!["rm"];
        args.extend(&ids);
        docker
            .call(format!("removing {}", names.join(", ")), args)
            .changes_state()
            .output()?;
    }

    // A replica that does not become healthy in time is a finding, not the end: the checks
    // below say which one and why.
    let error = compose
        .up(
            &format!("scaling web {from} -> {n}"),
            &UpOptions {
                scale: Some((plan.web.service.clone(), n)),
                wait_timeout: Some(timeout),
                no_recreate: true,
                remove_orphans: false,
            },
        )
        .err()
        .map(|e| format!("{e:#}"));

    // A slot keeps its maintenance flag after its address is gone; a replica resolved into it
    // later would never get traffic. Clear it (a reloaded HAProxy may not know the name: fine).
    if let (Some(lb), false) = (&lb, drained.is_empty()) {
        let refused = lbadmin::set_state(docker, lb, BACKEND, &drained, "ready")?;
        let real: Vec<&String> = refused
            .iter()
            .filter(|r| !r.contains("No such server"))
            .collect();
        if !real.is_empty() {
            progress.note(format!(
                "warning: HAProxy kept some drained slots in maintenance: {}",
                real.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
    }
    Ok(ScaleAction {
        from,
        to: n,
        drained,
        seconds: round1(started.elapsed().as_secs_f64()),
        error,
    })
}
