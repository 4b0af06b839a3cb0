//! Replacing web replicas that run an older image or configuration, rolling: `batch` new ones
//! started beside the old ones, routed, then as many old ones drained and removed. A batch not
//! routed in time is rolled back, and the replicas replaced in earlier batches are put back on
//! the version that ran before, from the last applied Compose file (`applied`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::canary::CanaryEnd;
use super::file::{file_services, outdated, read_file_services, FileService};
use super::scale::{remove_containers, Scaler};
use super::{applied, ComposeHost};
use crate::check::round1;
use crate::deploy::canary::CanaryArg;
use crate::docker::{of_service, without_secrets, Compose, Container};
use crate::probe::converge::{lb_container, wait_routed_to, Routed};
use crate::spec::plan::PlanDeploy;
use crate::timeline::{self, EventKind};
use crate::CheckFailed;

impl Scaler<'_> {
    /// A rolling replacement of `old` (web replicas running an older image or configuration):
    /// `batch` new replicas started from the current Compose file beside the old ones
    /// (`--no-recreate` leaves those alone), routed, then as many old ones drained and removed;
    /// again until none is left, and Compose settles the count. The number of replicas serving
    /// never drops below the number before. A batch not routed within the timeout is rolled back:
    /// its new replicas are removed and the old ones that remain keep serving.
    pub fn replace(&self, mut old: Vec<Container>) -> anyhow::Result<Rollout> {
        let started = Instant::now();
        let printer = self.host.docker.printer();
        let batch = self.batch.max(1) as usize;
        old.sort_by_key(|c| c.number);
        let before = self
            .host
            .docker
            .project_containers(&self.host.plan.project)?;
        let total = of_service(&before, &self.host.plan.web.service).len();
        let old_count = old.len();
        let mut known: BTreeSet<String> = before.into_iter().map(|c| c.id).collect();
        let mut replaced = 0;
        // The web replicas after the last batch, as listed before it (its old ones then removed).
        let mut after_last_batch = None;
        for chunk in old.chunks(batch) {
            // Every batch so far ended with as many replicas as at the start: this batch's new
            // ones come on top of them (not `total - replaced`: that created nothing after the
            // first batch, so the later old replicas left without a replacement until the end).
            let serving = if replaced == 0 {
                total
            } else {
                self.count_web()?
            };
            let summary = format!(
                "replacing web: {} old, {replaced} new; starting {} new",
                old_count - replaced,
                chunk.len()
            );
            timeline::mark(
                EventKind::BatchStarted,
                format!("{} new beside {} old", chunk.len(), old_count - replaced),
            );
            // A failed `up` (a new replica that does not start) is rolled back like one that is
            // never routed.
            let up = self
                .compose
                .up(&summary, &self.web_up((serving + chunk.len()) as u32));
            if self.host.docker.is_dry_run() {
                up?;
                printer.note(format!(
                    "dry run: then the old replicas are drained and removed, {batch} at a time, \
                     each batch after its new replicas are routed"
                ));
                break;
            }
            let now = self
                .host
                .docker
                .project_containers(&self.host.plan.project)?;
            let fresh: Vec<Container> = of_service(&now, &self.host.plan.web.service)
                .into_iter()
                .filter(|c| !known.contains(&c.id))
                .collect();
            let failed = match up {
                Err(err) => Some(format!("starting the new web replicas failed: {err:#}")),
                Ok(()) => {
                    // The containers as listed just now: each listing costs a `docker ps`.
                    let routed = wait_routed_to(self.host, &now, self.timeout);
                    (!routed.converged).then(|| {
                        format!(
                            "the new web replica{} not routed after {} s: {}",
                            if fresh.len() == 1 { " was" } else { "s were" },
                            routed.seconds,
                            routed.last_problem.unwrap_or_default()
                        )
                    })
                }
            };
            if let Some(problem) = failed {
                let rollback = Instant::now();
                let details = self.why_not_routed(&fresh);
                printer.note(format!(
                    "rolling back: removing the {} new replica{}",
                    fresh.len(),
                    if fresh.len() == 1 { "" } else { "s" }
                ));
                remove_containers(self.host.docker, &fresh)?;
                timeline::mark(EventKind::RolledBack, problem.clone());
                return Ok(Rollout {
                    replaced,
                    seconds: round1(started.elapsed().as_secs_f64()),
                    failure: Some(RolloutFailure {
                        problem,
                        details,
                        rollback_seconds: round1(rollback.elapsed().as_secs_f64()),
                    }),
                });
            }
            known.extend(fresh.iter().map(|c| c.id.clone()));
            after_last_batch =
                Some(of_service(&now, &self.host.plan.web.service).len() - chunk.len());
            let lb = lb_container(&now);
            let source = self.host.haproxy(lb.clone());
            self.drain_and_remove(chunk, lb.as_deref(), &source)?;
            replaced += chunk.len();
            printer.note(format!(
                "replacing web: {} old, {replaced} new",
                old_count - replaced
            ));
        }
        // Every replica now was made by this rollout's `up`s from the current Compose file, so
        // only the count may need Compose: an `up` that finds nothing to do still cost 0.6 s a
        // rollout (bench/runs/2026-12-06-rollout.md).
        if after_last_batch != Some(total) {
            self.compose.up(
                &format!("settling web at {total}"),
                &self.web_up(total as u32),
            )?;
        }
        Ok(Rollout {
            replaced,
            seconds: round1(started.elapsed().as_secs_f64()),
            failure: None,
        })
    }

    fn count_web(&self) -> anyhow::Result<usize> {
        let containers = self
            .host
            .docker
            .project_containers(&self.host.plan.project)?;
        Ok(of_service(&containers, &self.host.plan.web.service).len())
    }

    /// For each replica the load balancer did not take: Docker's health status, HAProxy's view
    /// of its address, and its last log lines.
    fn why_not_routed(&self, fresh: &[Container]) -> Vec<String> {
        let containers = self
            .host
            .docker
            .project_containers(&self.host.plan.project)
            .unwrap_or_default();
        let lb = lb_container(&containers);
        let servers = self.host.haproxy(lb).fetch();
        fresh
            .iter()
            .map(|c| {
                let now = containers.iter().find(|n| n.id == c.id).unwrap_or(c);
                let haproxy = match (&servers, now.ip.as_deref()) {
                    (Ok(servers), Some(ip)) => servers
                        .iter()
                        .find(|s| !s.is_unused_slot() && s.ip() == ip)
                        .map_or_else(
                            || format!("HAProxy has no server at {ip} (its registry does not list it passing)"),
                            |s| format!("HAProxy {}: {}, last check {}", s.name, s.status, s.check_status),
                        ),
                    (Err(err), _) => format!("HAProxy's servers unreadable: {err:#}"),
                    (_, None) => "no address".to_owned(),
                };
                let logs = self
                    .host
                    .docker
                    .call(format!("reading {}'s last log lines", c.name), ["logs", "--tail", "20", &c.id])
                    .output_unchecked()
                    .map_or_else(|e| format!("{e:#}"), |o| format!("{}{}", o.stdout, o.stderr));
                format!(
                    "{}: {}, health {}; {haproxy}\n  last log lines:\n{}",
                    now.describe(),
                    now.state,
                    now.health.as_deref().unwrap_or("none"),
                    logs.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
                )
            })
            .collect()
    }
}

/// What a rolling replacement did.
#[derive(Debug)]
pub struct Rollout {
    /// Old replicas replaced by routed new ones.
    pub replaced: usize,
    pub seconds: f64,
    /// Set when a batch was not routed in time and was rolled back.
    pub failure: Option<RolloutFailure>,
}

#[derive(Debug)]
pub struct RolloutFailure {
    pub problem: String,
    /// One paragraph per new replica removed: its state, HAProxy's check, its last log lines.
    pub details: Vec<String>,
    pub rollback_seconds: f64,
}

impl ComposeHost<'_> {
    /// Replaces the web replicas that run an older image or configuration, batch by batch (see
    /// `Scaler::replace`). A batch not routed in time is rolled back, and this fails (exit 1, like
    /// a failed check: the tool worked, the new version did not pass) with what the new replicas
    /// said; `others` are the services this apply changed before, named in that message.
    ///
    /// With `canary`, one new replica is first watched beside the old ones (`Scaler::canary`):
    /// rolled back, this fails (exit 1) with the numbers; promoted, it has taken the place of one
    /// old replica and the rollout replaces the others.
    pub fn roll_web(
        &self,
        timeout: Duration,
        batch: u32,
        others: &[&str],
        canary: Option<(CanaryArg, PlanDeploy)>,
    ) -> anyhow::Result<()> {
        let docker = self.docker;
        let plan = self.plan;
        // The image may have been built just now: compare with the ids as they are after the build.
        let wanted = read_file_services(&self.compose)?;
        let web = wanted
            .get(&plan.web.service)
            .context("the Compose file has no web service")?;
        let id = docker
            .image_ids(std::slice::from_ref(&web.image))?
            .remove(0);
        let containers = self.containers()?;
        let mut old: Vec<Container> = of_service(&containers, &plan.web.service)
            .into_iter()
            .filter(|c| outdated(c, web, id.as_deref()).is_some())
            .collect();
        // The configuration the old replicas share, if they do: what a total rollback returns to.
        let old_config = old
            .first()
            .and_then(|c| c.config_label.clone())
            .filter(|label| old.iter().all(|c| c.config_label.as_ref() == Some(label)));
        let scaler = Scaler {
            host: self,
            compose: &self.compose,
            timeout,
            batch,
        };
        // A promoted canary counts as replaced: a later batch that fails puts it back too.
        let mut promoted = 0;
        if let (Some((arg, limits)), false, false) = (canary, old.is_empty(), docker.is_dry_run()) {
            match scaler.canary(&old, arg, &limits)? {
                CanaryEnd::RolledBack(why) => {
                    let mut message = format!(
                        "rolled back the canary: {why}; the canary was removed and the web \
                         replicas that ran before keep serving"
                    );
                    if !others.is_empty() {
                        message.push_str(&format!(
                            "; {} were updated before the canary and stay so",
                            others.join(", ")
                        ));
                    }
                    return Err(CheckFailed(message).into());
                }
                CanaryEnd::Promoted { replaced_id, said } => {
                    docker.printer().note(said);
                    old.retain(|c| c.id != replaced_id);
                    promoted = 1;
                }
            }
        }
        let rollout = scaler.replace(old)?;
        if docker.is_dry_run() {
            return Ok(());
        }
        match rollout.failure {
            None => {
                docker.printer().note(format!(
                    "web replaced rolling: {} replica{} in {} s, none dropped from the load balancer \
                     before its replacement was routed",
                    rollout.replaced + promoted,
                    if rollout.replaced + promoted == 1 { "" } else { "s" },
                    rollout.seconds
                ));
                Ok(())
            }
            Some(failure) => {
                let mut message = format!(
                    "rolled back: {}\n{}\nremoved the new replicas in {} s; the web replicas that \
                     ran before keep serving",
                    failure.problem,
                    failure.details.join("\n"),
                    failure.rollback_seconds,
                );
                if rollout.replaced + promoted > 0 {
                    let n = rollout.replaced + promoted;
                    match self.revert_replaced(timeout, batch, web, old_config.as_deref()) {
                        Ok(revert) => message.push_str(&format!(
                            "; the {n} replaced in earlier batches were put back on the previous \
                             version in {} s: every web replica runs what ran before the apply",
                            revert.seconds
                        )),
                        Err(why) => message.push_str(&format!(
                            " ({n} replaced in earlier batches run the new version: {why})"
                        )),
                    }
                }
                if !others.is_empty() {
                    message.push_str(&format!(
                        "; {} were updated before the rollout and stay so",
                        others.join(", ")
                    ));
                }
                Err(CheckFailed(message).into())
            }
        }
    }

    /// Puts the replicas an interrupted rollout already replaced back on the version that ran
    /// before, rolling, from the last applied Compose file (`applied`). Says why not when it cannot.
    fn revert_replaced(
        &self,
        timeout: Duration,
        batch: u32,
        new_web: &FileService,
        old_config: Option<&str>,
    ) -> Result<Rollout, String> {
        let docker = self.docker;
        let plan = self.plan;
        let text = applied::previous(&plan.project)
            .ok_or("no copy of the Compose file they were started from was kept")?;
        let kept = file_services(&text).map_err(|e| format!("the kept Compose file: {e:#}"))?;
        // The old replicas' label carries their secrets' versions too; the kept file does not
        // (the secrets go with the current override, the only values that exist now).
        if kept.get(&plan.web.service).map(|w| w.config.as_str()) != old_config.map(without_secrets)
        {
            return Err(
                "the kept Compose file is not the one the old replicas were started from".into(),
            );
        }
        let dir = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
        let file = dir.path().join("compose.yaml");
        std::fs::write(&file, &text).map_err(|e| format!("writing {}: {e}", file.display()))?;
        // Relative paths (build contexts) resolve as from the output directory; nothing is built.
        let previous = Compose::new(docker, &plan.project, &file)
            .with_project_directory(&self.out_dir())
            .with_secrets_of(&plan.project);
        let containers = self.containers().map_err(|e| format!("{e:#}"))?;
        let new_ones: Vec<Container> = of_service(&containers, &plan.web.service)
            .into_iter()
            .filter(|c| c.config_label.as_deref() == Some(new_web.config.as_str()))
            .collect();
        docker.printer().note(format!(
            "rolling back: putting the {} replica{} replaced in earlier batches back on the previous version",
            new_ones.len(),
            if new_ones.len() == 1 { "" } else { "s" }
        ));
        let scaler = Scaler {
            host: self,
            compose: &previous,
            timeout,
            batch,
        };
        let revert = scaler.replace(new_ones).map_err(|e| format!("{e:#}"))?;
        match &revert.failure {
            None => Ok(revert),
            Some(failure) => Err(format!("putting them back failed too: {}", failure.problem)),
        }
    }
}
