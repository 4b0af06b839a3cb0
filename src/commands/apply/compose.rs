//! Apply's steps on one host: plan the change per service (and stop there when nothing changes),
//! `up` every other service waiting until healthy, reload a live configuration in place, then
//! web: replaced rolling when it runs an older version, else `up` at the count that runs. When
//! the lb, redis or consul is replaced, a light load through the lb measures the interruption.

use std::collections::BTreeSet;

use super::changes::{
    confirm_restarts, describe_changes, interrupted_services, pending_change, service_changes,
    Action, Change,
};
use super::summary::{gap_line, summary};
use super::{keep_replicas, Builds, Planned};
use crate::cli::ApplyArgs;
use crate::deploy::compose::file::read_file_services;
use crate::deploy::reload::{LiveFile, Reloaded};
use crate::deploy::ComposeHost;
use crate::docker::{Compose, Container, UpOptions};
use crate::probe::converge::Routed;
use crate::probe::load::{self, Load, LoadOptions};
use crate::spec::Service;

/// Requests per second through the lb while a service it needs is replaced, to measure the gap.
const GAP_PROBE_RATE: f64 = 20.0;

pub(super) struct Steps<'a> {
    host: &'a ComposeHost<'a>,
    /// The project's containers before apply.
    before: Vec<Container>,
    changes: Vec<Change>,
    live: Option<LiveFile>,
    /// The probe load through the lb while services it needs are replaced, and those services.
    gap: Option<(Load, Vec<String>)>,
}

impl<'a> Steps<'a> {
    pub(super) fn new(host: &'a ComposeHost<'a>) -> Self {
        Steps {
            host,
            before: Vec::new(),
            changes: Vec::new(),
            live: None,
            gap: None,
        }
    }

    /// Whether web runs an older version and is replaced rolling.
    fn rolls_web(&self) -> bool {
        let web = &self.host.plan.web.service;
        self.changes
            .iter()
            .any(|c| &c.service == web && c.action == Action::Roll)
    }

    /// `up` of web at `replicas`, and of `beside` (services started without waiting, see
    /// `deploy`), unless web is replaced rolling.
    fn web(&self, args: &ApplyArgs, replicas: u32, beside: &[String]) -> anyhow::Result<()> {
        let plan = self.host.plan;
        if self.rolls_web() {
            let others: Vec<&str> = self
                .changes
                .iter()
                .filter(|c| c.service != plan.web.service && c.action != Action::Keep)
                .map(|c| c.service.as_str())
                .collect();
            let canary = args.canary.map(|arg| (arg, plan.deploy));
            return self
                .host
                .roll_web(args.rollout.timeout, args.rollout.batch, &others, canary);
        }
        if args.canary.is_some() {
            self.host.docker.printer().note(
                "--canary: web runs its current version already, so there is no new version to \
                 watch; applying the rest",
            );
        }
        let mut services = vec![plan.web.service.clone()];
        services.extend(beside.iter().cloned());
        self.host.compose.up(
            &format!(
                "starting web ({replicas} replica{}){}",
                if replicas == 1 { "" } else { "s" },
                beside
                    .iter()
                    .map(|s| format!(" and {s}"))
                    .collect::<String>()
            ),
            &UpOptions {
                scale: Some((plan.web.service.clone(), replicas)),
                // Not --no-deps: see `Scaler::web_up`.
                services,
                ..UpOptions::default()
            },
        )
    }
}

impl super::Steps for Steps<'_> {
    fn preflight(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    fn plan(&mut self, args: &ApplyArgs) -> anyhow::Result<Planned> {
        let host = self.host;
        let (docker, plan) = (host.docker, host.plan);
        let progress = docker.printer();
        self.before = host.containers()?;
        let wanted = read_file_services(&host.compose)?;
        self.live = LiveFile::of(plan, &host.out_dir());
        self.changes = service_changes(
            docker,
            &wanted,
            &self.before,
            &plan.web.service,
            self.live.as_ref(),
        )?;
        match pending_change(&wanted, &self.before, &self.changes) {
            None => {
                progress.note(
                    "nothing to do: every container runs its service's current configuration and \
                     image (Compose was not run)",
                );
                let endpoints = host.endpoints();
                progress.stdout().text(&summary(
                    &plan.project,
                    &[],
                    &[],
                    &self.before,
                    &self.before,
                    &endpoints,
                ))?;
                host.remember_applied();
                return Ok(Planned::Unchanged);
            }
            Some(reason) => progress.note(format!("to apply: {reason}")),
        }
        let plan_text = describe_changes(&plan.project, &self.changes, args.rollout.batch);
        if docker.is_dry_run() {
            progress.stdout().text(&plan_text)?;
        } else {
            progress.note(plan_text.trim_end());
        }
        confirm_restarts(&self.changes, args)?;
        Ok(Planned::Changes)
    }

    fn build_file(&self) -> &Compose<'_> {
        &self.host.compose
    }

    fn built(&mut self, _builds: &Builds) -> anyhow::Result<()> {
        Ok(())
    }

    /// Two steps, because nothing should wait on web's Docker health check (rare on purpose, see
    /// `deploy/compose/scale.rs`): first every other service, waiting until healthy; then web
    /// alone, and a replica counts once the load balancer routes to it. When web is not rolled,
    /// a new lb starts in the second step, beside web, and its health check is waited for after:
    /// web needs consul and redis only, and the lb's first health check comes one interval (2 s)
    /// after it starts, which web's start then overlaps (a fresh stack's apply: 2.5 s sooner,
    /// measured on this machine's engine). A service whose
    /// configuration is (or is about to be) reloaded in place stays out of Compose's `up`, which
    /// would recreate it for its labels. Replacing the lb, redis or consul interrupts the stack:
    /// how long is measured with a light load through the lb, and reported.
    fn deploy(&mut self, args: &ApplyArgs) -> anyhow::Result<Vec<Reloaded>> {
        let host = self.host;
        let (docker, plan) = (host.docker, host.plan);
        let web_now = self
            .before
            .iter()
            .filter(|c| c.service == plan.web.service)
            .count() as u32;
        let replicas = keep_replicas(docker, plan, web_now);
        let interrupted = interrupted_services(&self.changes, &plan.web.service);
        let lb_runs = self
            .before
            .iter()
            .any(|c| c.service == Service::Lb.name() && c.running);
        if !interrupted.is_empty() && lb_runs && !docker.is_dry_run() {
            let probe = load::start(LoadOptions::new(host.endpoints().lb, GAP_PROBE_RATE))?;
            self.gap = Some((probe, interrupted));
        }
        let in_place: BTreeSet<&str> = self
            .changes
            .iter()
            .filter(|c| matches!(c.action, Action::ReloadInPlace | Action::AlreadyReloaded))
            .map(|c| c.service.as_str())
            .collect();
        let mut others: Vec<String> = plan
            .singleton_services()
            .iter()
            .map(|s| s.name().to_owned())
            .filter(|s| !in_place.contains(s.as_str()))
            .collect();
        // A rolled web needs the lb routing before its first batch: then the lb comes first.
        // So it does when it is all there is to start (an empty list is every service).
        let lb = Service::Lb.name();
        let beside_web: Vec<String> = if self.rolls_web() || others.iter().all(|s| s == lb) {
            Vec::new()
        } else {
            others.iter().filter(|s| *s == lb).cloned().collect()
        };
        others.retain(|s| !beside_web.contains(s));
        host.compose.up(
            &format!("starting {}", others.join(", ")),
            &UpOptions {
                wait_timeout: Some(args.rollout.timeout),
                remove_orphans: true,
                services: others,
                ..UpOptions::default()
            },
        )?;
        let to_reload: Vec<&str> = self
            .changes
            .iter()
            .filter(|c| c.action == Action::ReloadInPlace)
            .map(|c| c.service.as_str())
            .collect();
        let reloaded = host.reload_in_place(&self.before, &to_reload, self.live.as_ref())?;
        self.web(args, replicas, &beside_web)?;
        if !beside_web.is_empty() {
            host.compose.up(
                &format!("waiting for {} to be healthy", beside_web.join(", ")),
                &UpOptions {
                    wait_timeout: Some(args.rollout.timeout),
                    no_recreate: true,
                    no_deps: true,
                    services: beside_web,
                    ..UpOptions::default()
                },
            )?;
        }
        Ok(reloaded)
    }

    fn before(&self) -> &[Container] {
        &self.before
    }

    fn changes(&self) -> Vec<String> {
        self.changes
            .iter()
            .filter(|c| !matches!(c.action, Action::Keep | Action::AlreadyReloaded))
            .map(|c| {
                let rebuilt = if c.rebuild { ", image rebuilt" } else { "" };
                format!("{}: {}{rebuilt}", c.service, c.action.short())
            })
            .collect()
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        if let Some((probe, interrupted)) = self.gap.take() {
            self.host.docker.printer().stdout().line(format!(
                "  interruption:  {} ({} replaced)",
                gap_line(&probe.stop()),
                interrupted.join(", ")
            ))?;
        }
        self.host.remember_applied();
        Ok(())
    }
}
