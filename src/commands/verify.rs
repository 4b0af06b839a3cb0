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
use crate::deploy::{scale, Deployment};
use crate::docker::{of_service, preflight, Container, Docker};
use crate::picture::Picture;
use crate::probe::converge::lb_container;
use crate::probe::evaluate::{self, Observations};
use crate::probe::http::{self, Expect, ProbePlan};
use crate::probe::load::{LoadOptions, Tolerance};
use crate::probe::measure::{self, Timeline};
use crate::probe::registry::ServiceQuery;
use crate::probe::stats::WEB_BACKEND;
use crate::report::{Check, Outcome, Report};
use crate::secrets::stack;
use crate::{render, ExitStatus, UsageError};

pub fn run(global: &Global, args: VerifyArgs) -> anyhow::Result<ExitStatus> {
    let started = Instant::now();
    let progress = global.printer;
    let stack = render::rendered_stack(&global.spec, &args.out, &progress)?;
    let plan = &stack.plan;
    let _lock = global.lock(&plan.project, "verify", &progress)?;
    let docker = Docker::new(progress);
    preflight::require_engine(&docker)?;
    let deployment = Deployment::new(&docker, &stack);
    let endpoints = deployment.endpoints();

    let containers = deployment.containers()?;
    let containers_before = containers.clone();
    let web = of_service(&containers, &plan.web.service);
    if web.is_empty() {
        return Err(UsageError(format!(
            "project {} has no web containers: run `provision apply` first",
            plan.project
        ))
        .into());
    }

    // The lb names the server that answered only to a request carrying the stack's probe token.
    let probe_token = stack::probe_token(&plan.project, &progress)?;

    // Started before the scale step, stopped after the convergence wait: it sees the change.
    let load = match args.load {
        Some(rate) => {
            let mut options = LoadOptions::new(&endpoints.lb, rate);
            options.tolerance = Tolerance {
                failed_fraction: args.load_max_failed,
                p99: args.load_max_p99.map(Duration::from_millis),
            };
            progress.note(format!(
                "sending {rate}/s through {} meanwhile",
                endpoints.lb
            ));
            // Which replica answered each request, for the time a new replica takes to answer.
            options.header = Some(http::SERVER_HEADER.to_owned());
            options.request_header = Some((http::PROBE_HEADER.to_owned(), probe_token.clone()));
            let stats_csv = Some(endpoints.stats_csv.as_str()).filter(|url| !url.is_empty());
            let login = stack::stats_authorization(&plan.project)?;
            Some(measure::start(options, stats_csv, WEB_BACKEND, login)?)
        }
        None => None,
    };

    let mut scale = None;
    if let Some(n) = args.scale {
        if n == 0 || n > plan.lb.max_replicas {
            return Err(UsageError(format!(
                "--scale must be between 1 and lb.max_replicas ({}), got {n}",
                plan.lb.max_replicas
            ))
            .into());
        }
        // The web replicas listed above, before the scale.
        let now = u32::try_from(web.len()).unwrap_or(u32::MAX);
        let batch = args.batch.unwrap_or_else(|| scale::default_batch(now, n));
        scale = Some(deployment.scale_web(n, args.timeout, batch)?);
    }

    let containers = deployment.containers()?;
    let replicas = of_service(&containers, &plan.web.service);
    let others: Vec<Container> = containers
        .iter()
        .filter(|c| c.service != plan.web.service)
        .cloned()
        .collect();
    let expected = args.scale.unwrap_or(replicas.len() as u32);
    let running: Vec<&Container> = replicas.iter().filter(|c| c.running).collect();

    let convergence = deployment.wait_routed_to(&containers, args.timeout);
    let lb = lb_container(&containers);
    let stats_source = deployment.haproxy(lb.clone());

    let probe_plan = match args.requests {
        Some(n) => ProbePlan::exactly(n),
        None => ProbePlan::enough_for(running.iter().filter_map(|c| c.ip.clone()).collect()),
    };
    let expect = Expect::of(plan);
    let step = progress.step(&format!("probing {}", endpoints.lb));
    let probe = http::probe(&endpoints.lb, &probe_plan, &expect, &probe_token);
    step.finish();
    // The load ran through the probe too, so that a replica that joined last has had requests.
    let mut timeline = None;
    let load = load.map(|l| {
        let started_at = l.started_at();
        let (mut report, seen) = l.stop();
        timeline = Some(seen);
        let before: BTreeSet<String> = containers_before
            .iter()
            .filter(|c| c.service == plan.web.service && c.running)
            .filter_map(|c| c.ip.clone())
            .collect();
        let mut first_up = scale
            .as_ref()
            .map(|s| s.first_up.clone())
            .unwrap_or_default();
        for (ip, at) in &convergence.first_up {
            first_up.entry(ip.clone()).or_insert(*at);
        }
        let new_ips = first_up
            .keys()
            .filter(|ip| !before.contains(*ip))
            .cloned()
            .collect();
        report.measure_joined(started_at, &first_up, &new_ips);
        report
    });

    let (haproxy, haproxy_error) = match stats_source.fetch() {
        Ok(servers) => (servers, None),
        Err(err) => (Vec::new(), Some(format!("{err:#}"))),
    };
    // Several consul servers: whether Raft has them all, at their current addresses.
    let raft = (plan.consul.servers > 1).then(|| match deployment.consul(lb.clone()) {
        None => Check::new(
            "consul raft",
            Outcome::Fail,
            "no running lb container to read consul through",
        ),
        Some(source) => match source.raft() {
            Ok(raft) => raft.check(plan.consul.servers),
            Err(err) => Check::new(
                "consul raft",
                Outcome::Fail,
                format!("could not read consul's Raft peers or its servers: {err:#}"),
            ),
        },
    });
    let (registry, registry_error) = match deployment.consul(lb.clone()) {
        // On a Swarm consul is read through the lb's container: none, nothing to read with.
        None if plan.discovery.has_registry() => (
            Some(Vec::new()),
            Some("no running lb container to read consul through".to_owned()),
        ),
        None => (None, None),
        Some(source) => match source.passing(&ServiceQuery::web(&plan.web)) {
            Ok(instances) => (Some(instances), None),
            Err(err) => (Some(Vec::new()), Some(format!("{err:#}"))),
        },
    };
    let observations = Observations {
        expected,
        services: plan.singleton_services(),
        others,
        consul_servers: plan.consul.servers,
        discovery: plan.discovery,
        balance: plan.lb.balance,
        replicas: replicas.clone(),
        convergence,
        expect,
        probe,
        haproxy,
        registry,
    };
    let mut checks = evaluate::evaluate(&observations);
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
    checks.extend(raft);
    // On a Swarm: lost nodes and where their tasks went, and every edge node's lb.
    if let Some(fleet) = deployment.fleet()? {
        checks.extend(fleet.checks());
    }
    if let Some(load) = &load {
        checks.push(load.check());
    }
    let mut report = Report::new(
        &plan.project,
        plan.discovery.as_str(),
        expected,
        scale,
        checks,
        started.elapsed(),
    );
    report.load = load;
    report.timeline = timeline;

    // The files first: a reader that closed stdout early does not cost CI its reports.
    if let Some(path) = &args.junit {
        std::fs::write(path, report.to_junit()?)
            .with_context(|| format!("writing the JUnit report to {}", path.display()))?;
    }
    if let (Some(path), Some(load)) = (&args.report, &report.load) {
        let empty = Timeline::default();
        let timeline = report.timeline.as_ref().unwrap_or(&empty);
        Picture {
            title: title(&args),
            project: &plan.project,
            passed: report.passed,
            verdict: report
                .checks
                .iter()
                .filter(|c| c.outcome == Outcome::Fail || c.name == "load")
                .map(|c| format!("{}: {}", c.name, c.message))
                .collect(),
            load,
            up: &timeline.servers_up,
            events: &timeline.events,
        }
        .write(path)?;
        progress.note(format!(
            "wrote the picture of this run to {}",
            path.display()
        ));
    }
    if args.json {
        progress.stdout().text(&report.to_json())?;
    } else {
        progress
            .stdout()
            .text(&report.to_text(&progress.palette()))?;
    }
    if report.passed {
        Ok(ExitStatus::Success)
    } else {
        progress.failure(&format!(
            "verify failed: {} of {} checks failed",
            report.failures(),
            report.checks.len()
        ));
        Ok(ExitStatus::Failure)
    }
}

/// The report's title: the command as run, without its file options.
fn title(args: &VerifyArgs) -> String {
    let mut title = "provision verify".to_owned();
    if let Some(n) = args.scale {
        title.push_str(&format!(" --scale {n}"));
    }
    if let Some(rate) = args.load {
        title.push_str(&format!(" --load {rate}"));
    }
    title
}
