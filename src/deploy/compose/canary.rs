//! A canary on one host, before a rolling replacement: one new replica started beside the old
//! ones, given its share of the requests through HAProxy's server weights (runtime API, no
//! reload), watched for the window against the old servers (`deploy::canary::judge`), then
//! promoted (it takes the place of one old replica, and the rollout goes on) or rolled back
//! (drained and removed; the old replicas never stopped serving).
//!
//! The weights are set on the running HAProxy only, and put back to the configured ones
//! (`100%`) at the end either way: a reload or a restart of the lb in the meantime forgets them,
//! which costs the canary its share, never the old version its traffic.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::scale::{remove_containers, wait_released, Scaler, SLOT_RELEASE};
use crate::deploy::canary::{judge, weights, CanaryArg, Seen, Verdict, MIN_REQUESTS};
use crate::docker::{of_service, Container};
use crate::poll::poll_until;
use crate::probe::converge::{lb_container, wait_routed, Routed};
use crate::probe::lbadmin;
use crate::probe::stats::{self, Counters, Server};
use crate::spec::plan::PlanDeploy;
use crate::timeline::{self, EventKind};

/// How often HAProxy's counters are read during the window.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// Between taking the canary's weight away and stopping it: the requests it holds finish (the
/// same pause as a drain before a scale-down, `scale.rs`).
const DRAIN_PAUSE: Duration = Duration::from_secs(1);

/// How a canary ended.
#[derive(Debug)]
pub enum CanaryEnd {
    /// It passed and took the place of the old replica `replaced_id` (drained and removed);
    /// what was seen.
    Promoted { replaced_id: String, said: String },
    /// It was taken away again: why, with the numbers.
    RolledBack(String),
}

/// How long a canary taken out of rotation by one failed connection takes to be UP and checked
/// again: HAProxy checks a DOWN server every 250 ms (`downinter`, or `inter` when shorter), one
/// passing check brings it back (`rise 1`) and a second makes it fully UP (`fall 2`). Five such
/// checks, each allowed `timeout check` (1 s) at most for the last.
fn back_in_rotation(check_interval_ms: u64) -> Duration {
    Duration::from_millis(5 * check_interval_ms.min(250) + 1000)
}

/// HAProxy's web servers at one reading, split into the canary's (by the new containers'
/// addresses) and the old ones, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Split {
    /// The canary's servers that are UP and checked at their address now.
    canary: Vec<String>,
    /// The other servers that are UP.
    old: Vec<String>,
    /// The canary's servers that are not UP and checked: `name STATUS (check)`.
    canary_down: Vec<String>,
}

impl Split {
    fn of(servers: &[Server], new_ips: &BTreeSet<&str>) -> Self {
        let mut split = Split {
            canary: Vec::new(),
            old: Vec::new(),
            canary_down: Vec::new(),
        };
        for server in servers {
            if new_ips.contains(server.ip()) {
                if server.is_up_and_checked() {
                    split.canary.push(server.name.clone());
                } else {
                    split.canary_down.push(format!(
                        "{} {} ({})",
                        server.name,
                        server.status,
                        if server.check_status.is_empty() {
                            "no check result"
                        } else {
                            server.check_status.as_str()
                        }
                    ));
                }
            } else if server.is_up() {
                split.old.push(server.name.clone());
            }
        }
        split
    }

    /// ` (HAProxy has web3 DOWN (L4CON))`, or nothing when every canary server listed is UP.
    fn canary_not_up(&self) -> String {
        if self.canary_down.is_empty() {
            String::new()
        } else {
            format!(" (HAProxy has {})", self.canary_down.join(", "))
        }
    }
}

impl Scaler<'_> {
    /// Runs the canary of the new version beside `old` (the outdated web replicas, at least
    /// one). Errors are the tool's own (docker or HAProxy unreachable); a canary that fails is
    /// [`CanaryEnd::RolledBack`].
    pub fn canary(
        &self,
        old: &[Container],
        arg: CanaryArg,
        limits: &PlanDeploy,
    ) -> anyhow::Result<CanaryEnd> {
        let docker = self.host.docker;
        let printer = docker.printer();
        let project = &self.host.plan.project;
        let service = &self.host.plan.web.service;
        let known: BTreeSet<String> = docker
            .project_containers(project)?
            .into_iter()
            .map(|c| c.id)
            .collect();
        let serving = of_service(&docker.project_containers(project)?, service).len();
        timeline::mark(EventKind::BatchStarted, "1 canary");
        let up = self.compose.up(
            &format!("starting a canary of the new web version ({arg})"),
            &self.web_up(serving as u32 + 1),
        );
        let now = docker.project_containers(project)?;
        let fresh: Vec<Container> = of_service(&now, service)
            .into_iter()
            .filter(|c| !known.contains(&c.id))
            .collect();
        let not_routed = match up {
            Err(err) => Some(format!("starting the canary failed: {err:#}")),
            Ok(()) => {
                let routed = wait_routed(self.host, self.timeout)?;
                (!routed.converged).then(|| {
                    format!(
                        "the canary was not routed after {} s: {}",
                        routed.seconds,
                        routed.last_problem.unwrap_or_default()
                    )
                })
            }
        };
        if let Some(why) = not_routed {
            remove_containers(docker, &fresh)?;
            timeline::mark(EventKind::RolledBack, "canary not routed");
            return Ok(CanaryEnd::RolledBack(why));
        }
        // Listed again now that HAProxy routes the canary: listed just after `up`, the new
        // container may not have had its address yet, and the canary was then taken for absent
        // ("0 canary ... UP", seen once in a full e2e run).
        let now = docker.project_containers(project)?;
        let fresh: Vec<Container> = of_service(&now, service)
            .into_iter()
            .filter(|c| !known.contains(&c.id))
            .collect();
        let lb = lb_container(&now);
        let source = self.host.haproxy(lb.clone());
        let Some(lb) = lb else {
            remove_containers(docker, &fresh)?;
            return Ok(CanaryEnd::RolledBack(
                "no running lb container to give the canary its share through".into(),
            ));
        };
        let new_ips: BTreeSet<&str> = fresh.iter().filter_map(|c| c.ip.as_deref()).collect();
        // The window starts on a reading where the canary is UP and checked. Routed a moment
        // ago, it can be DOWN at the next one: one connection HAProxy could not make to it takes
        // it out at once (`observe layer4 error-limit 1`), and its next checks put it back. CI
        // runs saw exactly that (HAProxy's log: "DOWN ... L4 unsuccessful connection", then "UP
        // ... Layer7 check passed"), and a canary that was about to be judged was rolled back
        // with "nothing to compare".
        let grace = back_in_rotation(self.host.plan.lb.check_interval_ms);
        let looked = Instant::now();
        let mut first_look: Option<Split> = None;
        let mut servers = Vec::new();
        let split = poll_until(grace, Duration::from_millis(250), || {
            servers = source.fetch()?;
            let split = Split::of(&servers, &new_ips);
            first_look.get_or_insert_with(|| split.clone());
            Ok((!split.canary.is_empty() && !split.old.is_empty()).then_some(split))
        })?;
        let Some(Split {
            canary: canary_names,
            old: old_names,
            ..
        }) = split
        else {
            let last = Split::of(&servers, &new_ips);
            remove_containers(docker, &fresh)?;
            return Ok(CanaryEnd::RolledBack(format!(
                "HAProxy has {} canary and {} old server(s) UP for {:.1} s after it was routed: \
                 nothing to compare{}",
                last.canary.len(),
                last.old.len(),
                grace.as_secs_f64(),
                last.canary_not_up()
            )));
        };
        if let Some(first) = first_look.filter(|first| first.canary.is_empty()) {
            printer.note(format!(
                "the canary was not UP a moment after it was routed{}; UP and checked again \
                 after {:.1} s",
                first.canary_not_up(),
                looked.elapsed().as_secs_f64()
            ));
        }
        let (w_old, w_new) = weights(arg.percent, old_names.len() as u32);
        let line = lbadmin::set_weight_line(
            stats::WEB_BACKEND,
            old_names
                .iter()
                .map(|s| (s.as_str(), w_old.to_string()))
                .chain(canary_names.iter().map(|s| (s.as_str(), w_new.to_string()))),
        );
        let answer = lbadmin::command(docker, &lb, &line)?;
        if !answer.trim().is_empty() {
            printer.note(format!("warning: HAProxy said: {}", answer.trim()));
        }
        let said = format!(
            "canary {} gets {}% of the requests (weight {w_new} beside {} old server{} at {w_old}) \
             for {} s",
            canary_names.join(", "),
            arg.percent,
            old_names.len(),
            if old_names.len() == 1 { "" } else { "s" },
            arg.window.as_secs()
        );
        printer.note(&said);
        timeline::mark(
            EventKind::CanaryStarted,
            format!("{} at {}%", canary_names.join(", "), arg.percent),
        );

        let before: BTreeMap<String, Counters> = servers
            .iter()
            .map(|s| (s.name.clone(), s.counters))
            .collect();
        let started = Instant::now();
        let mut last: (Seen, Seen) = Default::default();
        let step = printer.step("watching the canary");
        // Ends early on a version that is already clearly worse; else at the window's end.
        let early = poll_until(arg.window, WATCH_EVERY, || {
            let now = source.fetch()?;
            let after: BTreeMap<&str, &Counters> =
                now.iter().map(|s| (s.name.as_str(), &s.counters)).collect();
            let seen = |names: &[String]| {
                Seen::between(
                    names
                        .iter()
                        .filter_map(|n| Some((before.get(n)?, *after.get(n.as_str())?))),
                )
            };
            last = (seen(&old_names), seen(&canary_names));
            step.status(&format!(
                "{:.0} s of {}: new {}; old {}",
                started.elapsed().as_secs_f64(),
                arg.window.as_secs(),
                last.1,
                last.0
            ));
            Ok(match judge(&last.0, &last.1, limits) {
                Verdict::Worse(why) => Some(why),
                _ => None,
            })
        });
        step.finish();
        let verdict = match early {
            Ok(Some(why)) => Verdict::Worse(why),
            Ok(None) => judge(&last.0, &last.1, limits),
            Err(err) => Verdict::Worse(format!("HAProxy's counters could not be read: {err:#}")),
        };
        let watched = format!(
            "after {:.0} s: new version {}; old version {}",
            started.elapsed().as_secs_f64(),
            last.1,
            last.0
        );
        match verdict {
            Verdict::Worse(why) => {
                printer.note(format!("rolling back the canary: {why}"));
                self.retire_canary(&fresh, &canary_names, &lb, &source)?;
                timeline::mark(EventKind::RolledBack, why.clone());
                Ok(CanaryEnd::RolledBack(format!("{why} ({watched})")))
            }
            verdict => {
                self.restore_weights(&lb, &source);
                let judged = if verdict == Verdict::TooFew {
                    format!(
                        "not judged: fewer than {MIN_REQUESTS} requests reached it in the window"
                    )
                } else {
                    "no worse than the old version".to_owned()
                };
                timeline::mark(EventKind::Promoted, canary_names.join(", "));
                let mut old = old.to_vec();
                old.sort_by_key(|c| c.number);
                let replaced = old.remove(0);
                self.drain_and_remove(std::slice::from_ref(&replaced), Some(&lb), &source)?;
                Ok(CanaryEnd::Promoted {
                    said: format!(
                        "canary promoted, {judged} ({watched}); it replaced {}",
                        replaced.name
                    ),
                    replaced_id: replaced.id,
                })
            }
        }
    }

    /// Takes the canary away without a request lost: weight 0 (HAProxy sends it nothing new,
    /// and the old servers get their configured weights back), a pause for the requests in
    /// flight, then stopped and removed. Its slot gets its weight back once DNS has taken the
    /// address away: back on an address that no longer answers, the slot would draw requests
    /// that then wait for a retry (seen in the end-to-end test, with `maint` then `ready`).
    fn retire_canary(
        &self,
        fresh: &[Container],
        canary_names: &[String],
        lb: &str,
        source: &stats::Source,
    ) -> anyhow::Result<()> {
        let docker = self.host.docker;
        let printer = docker.printer();
        let servers = source.fetch()?;
        let line = lbadmin::set_weight_line(
            stats::WEB_BACKEND,
            servers.iter().map(|s| {
                let weight = if canary_names.contains(&s.name) {
                    "0"
                } else {
                    "100%"
                };
                (s.name.as_str(), weight.to_owned())
            }),
        );
        lbadmin::command(docker, lb, &line)?;
        timeline::mark(EventKind::Drained, canary_names.join(", "));
        std::thread::sleep(DRAIN_PAUSE);
        remove_containers(docker, fresh)?;
        let ips: BTreeSet<String> = fresh.iter().filter_map(|c| c.ip.clone()).collect();
        if !wait_released(source, canary_names, &ips) {
            printer.note(format!(
                "warning: HAProxy still has the canary's address in {} {} s after it stopped; \
                 giving the slot its weight back anyway",
                canary_names.join(", "),
                SLOT_RELEASE.as_secs()
            ));
        }
        let line = lbadmin::set_weight_line(
            stats::WEB_BACKEND,
            canary_names.iter().map(|s| (s.as_str(), "100%".to_owned())),
        );
        lbadmin::command(docker, lb, &line)?;
        Ok(())
    }

    /// Every server of the web backend back on its configured weight; a failure is said, not
    /// fatal (the weights matter to the canary only).
    fn restore_weights(&self, lb: &str, source: &stats::Source) {
        let printer = self.host.docker.printer();
        let servers = match source.fetch() {
            Ok(servers) => servers,
            Err(err) => {
                printer.note(format!(
                    "warning: HAProxy's weights not put back (its servers unreadable: {err:#})"
                ));
                return;
            }
        };
        let line = lbadmin::set_weight_line(
            stats::WEB_BACKEND,
            servers.iter().map(|s| (s.name.as_str(), "100%".to_owned())),
        );
        if line.is_empty() {
            return;
        }
        if let Err(err) = lbadmin::command(self.host.docker, lb, &line) {
            printer.note(format!("warning: HAProxy's weights not put back: {err:#}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, status: &str, addr: &str, check: &str) -> Server {
        Server {
            backend: stats::WEB_BACKEND.into(),
            name: name.into(),
            status: status.into(),
            addr: addr.into(),
            check_status: check.into(),
            counters: Counters::default(),
        }
    }

    #[test]
    fn a_canary_counts_once_up_and_checked_at_its_new_address() {
        let new_ips = BTreeSet::from(["10.0.0.9"]);
        let old = [
            server("web1", "UP", "10.0.0.2:5000", "L7OK"),
            server("web2", "UP", "10.0.0.3:5000", "L7OK"),
            server("web4", "MAINT (resolution)", "", ""),
        ];
        // Just taken down by a connection it refused (the CI runs' case), then not yet checked
        // since it came back, then fully UP.
        for (status, check, counted) in [
            ("DOWN", "L7OK", false),
            ("UP 1/2", "L7OK", false),
            ("UP", "L7OK", true),
        ] {
            let mut servers = old.to_vec();
            servers.push(server("web3", status, "10.0.0.9:5000", check));
            let split = Split::of(&servers, &new_ips);
            assert_eq!(split.old, ["web1", "web2"], "{status}");
            assert_eq!(split.canary.len(), usize::from(counted), "{status}");
            if counted {
                assert_eq!(split.canary_not_up(), "");
            } else {
                assert_eq!(
                    split.canary_not_up(),
                    format!(" (HAProxy has web3 {status} (L7OK))")
                );
            }
        }
    }

    #[test]
    fn an_old_server_down_is_not_compared_against() {
        let new_ips = BTreeSet::from(["10.0.0.9"]);
        let servers = [
            server("web1", "DOWN", "10.0.0.2:5000", "L4CON"),
            server("web2", "UP", "10.0.0.3:5000", "L7OK"),
            server("web3", "UP", "10.0.0.9:5000", "L7OK"),
        ];
        let split = Split::of(&servers, &new_ips);
        assert_eq!(
            (split.canary, split.old),
            (vec!["web3".into()], vec!["web2".into()])
        );
    }

    #[test]
    fn the_grace_covers_five_checks_at_the_down_interval() {
        assert_eq!(back_in_rotation(1000), Duration::from_millis(2250));
        assert_eq!(back_in_rotation(100), Duration::from_millis(1500));
    }
}
