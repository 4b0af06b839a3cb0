//! Swarm's own rolling updates, as `provision apply` follows them: after `docker stack deploy`,
//! every service whose task template changed is updated by Swarm as its `update_config` says
//! (stack.yaml: web start-first, a batch at a time, rolled back on a failure). Apply waits
//! until each of those updates is over, shows how many old and new tasks run meanwhile, and
//! fails when Swarm rolled one back or paused it, with Swarm's reason and the tasks' errors.
//!
//! Which services this deploy updates comes from comparing them before and after it: a service
//! whose `Spec.TaskTemplate` did not change gets no new tasks, and its `UpdateStatus` (absent on
//! a service never updated) is an earlier update's, not this one's. An update of this deploy is
//! one whose `StartedAt` differs from the one seen before.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::state::{ServiceState, TaskLine, UpdateState, UpdateStatus};
use super::{Swarm, POLL};
use crate::check::round1;

/// Swarm starts an update within milliseconds of the deploy; a followed service that shows none
/// after this long, with every task as before, has none coming.
const NO_UPDATE_AFTER: Duration = Duration::from_secs(10);

/// The services this deploy updates: their task template changed, or an update (say of an apply
/// that was interrupted) is still going on. New services are created, not updated.
pub fn to_follow(
    before: &BTreeMap<String, ServiceState>,
    after: &BTreeMap<String, ServiceState>,
) -> Vec<String> {
    after
        .iter()
        .filter(|(name, now)| {
            before.get(*name).is_some_and(|then| {
                then.task_template != now.task_template
                    || now.update.as_ref().is_some_and(|u| u.state.in_progress())
            })
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// The update of this deploy, once Swarm started it: None while the service still shows the
/// status it had before the deploy.
fn this_update<'s>(before: &ServiceState, now: &'s ServiceState) -> Option<&'s UpdateStatus> {
    let started_before = before.update.as_ref().map(|u| u.started_at.as_str());
    now.update
        .as_ref()
        .filter(|u| u.state.in_progress() || Some(u.started_at.as_str()) != started_before)
}

/// One ended task of an update, as apply reports it. A replica that Swarm stops because its
/// health check failed exits cleanly: its task is `Complete`, with no error, so whether it ever
/// ran (healthy) is said too.
fn describe_ended(t: &TaskLine, ran: bool) -> String {
    let id: String = t.id.chars().take(12).collect();
    let how = match (t.error.is_empty(), ran) {
        (false, _) => t.error.clone(),
        (true, false) => "ended before it ever ran healthy".to_owned(),
        (true, true) => "ended after running".to_owned(),
    };
    format!(
        "{}: {} (task {id}) {}: {how}",
        t.node,
        t.name,
        t.state.to_lowercase()
    )
}

/// The tasks of an update that are not running, as apply lists them: those that ended by
/// themselves or failed, then those the rollback shut down, then those it stopped before they
/// ran (still `Starting` or earlier: no log to read yet).
fn order_ended(tasks: Vec<&TaskLine>) -> Vec<&TaskLine> {
    let rank = |t: &TaskLine| match t.state.as_str() {
        "Complete" | "Failed" | "Rejected" | "Orphaned" | "Remove" => 0,
        "Shutdown" => 1,
        _ => 2,
    };
    let mut tasks = tasks;
    tasks.sort_by_key(|t| rank(t));
    tasks
}

/// Whose log to show, in order, the first that has one: the task Swarm names in its reason
/// (`… early termination of task <id>`), then the others as listed. The first listed alone was
/// once a task stopped while starting, with no log, and apply said nothing of why (a CI run).
fn log_candidates<'t>(ended: &[&'t TaskLine], why: &str) -> Vec<&'t TaskLine> {
    let named = |t: &TaskLine| {
        let short: String = t.id.chars().take(12).collect();
        !short.is_empty() && why.contains(&short)
    };
    let (first, rest): (Vec<&TaskLine>, Vec<&TaskLine>) = ended.iter().partition(|t| named(t));
    first.into_iter().chain(rest).collect()
}

/// What the stack looked like before the deploy: its services and every task id they had.
#[derive(Debug, Clone, Default)]
pub struct Before {
    services: BTreeMap<String, ServiceState>,
    tasks: BTreeSet<String>,
}

/// A service Swarm did not update: rolled back, paused, or given up on at `--timeout`.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// Without the stack's prefix (`web`).
    pub service: String,
    pub state: UpdateState,
    /// Why, in Swarm's words (`update rolled back due to failure or early termination of task
    /// …`), or provision's when it asked for the rollback itself.
    pub why: String,
    /// From the rollback's start, as first seen, until it was over.
    pub rollback_seconds: Option<f64>,
    /// The tasks this update started that ended: node, task, state, error.
    pub task_errors: Vec<String>,
    /// The last lines of one such task's log (`docker service logs`, from any node): why its
    /// health check failed, when it said so. The task Swarm's reason names, or else the first
    /// listed that has a log (`log_candidates`).
    pub last_log: Option<TaskLog>,
}

/// The last lines of a task's log.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskLog {
    /// Its ID's first 12 characters, as the list of ended tasks shows them.
    pub task: String,
    pub lines: Vec<String>,
}

/// How the updates of one deploy went.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rollout {
    /// The services Swarm updated (short names), each with its seconds from the deploy until
    /// completed.
    pub updated: Vec<(String, f64)>,
    pub failures: Vec<Failure>,
    /// From the deploy until the last update was over.
    pub seconds: f64,
}

impl Rollout {
    /// The failures as apply reports them, or None when every update completed.
    pub fn failure_message(&self) -> Option<String> {
        if self.failures.is_empty() {
            return None;
        }
        let mut out = String::new();
        for f in &self.failures {
            let (verdict, what) = match f.state {
                UpdateState::RollbackCompleted => ("rolled back", "Swarm rolled it back"),
                UpdateState::Paused | UpdateState::RollbackPaused => (
                    "paused",
                    "Swarm paused it; `docker service rollback` or another apply goes on",
                ),
                _ => ("not finished", "Swarm left it in an unknown state"),
            };
            let took = f
                .rollback_seconds
                .map(|s| format!("in {s} s, "))
                .unwrap_or_default();
            out.push_str(&format!(
                "{verdict}: Swarm's update of {} failed and {what} ({took}{} s after the deploy): \
                 {}\n",
                f.service, self.seconds, f.why
            ));
            if f.task_errors.is_empty() {
                out.push_str("  (no task of the update ended)\n");
            } else {
                out.push_str("  its new tasks that ended:\n");
            }
            for e in &f.task_errors {
                out.push_str(&format!("    {e}\n"));
            }
            if let Some(log) = &f.last_log {
                out.push_str(&format!("  the last log lines of task {}:\n", log.task));
                for line in &log.lines {
                    out.push_str(&format!("    {line}\n"));
                }
            }
        }
        let paused = self
            .failures
            .iter()
            .any(|f| f.state != UpdateState::RollbackCompleted);
        out.push_str(if paused {
            "a paused update leaves the tasks it replaced so far on the new version"
        } else {
            "the tasks that ran before keep serving"
        });
        Some(out)
    }
}

/// Where one followed service is.
struct Followed {
    name: String,
    /// Swarm's reason when it started rolling back (the final status only says "rollback
    /// completed"), and when that was seen.
    rollback_reason: Option<(String, Instant)>,
    /// provision asked for the rollback at `--timeout`.
    rolled_back_by_us: bool,
    done: Option<UpdateState>,
}

impl Swarm<'_> {
    /// The stack before `stack deploy`, to tell this deploy's updates and tasks from earlier ones.
    pub fn before_deploy(&self) -> anyhow::Result<Before> {
        if self.docker.is_dry_run() {
            return Ok(Before::default());
        }
        let services = self.service_states()?;
        let names: Vec<String> = services.keys().cloned().collect();
        let tasks = self
            .task_lines(&names, false)?
            .into_iter()
            .map(|t| t.id)
            .collect();
        Ok(Before { services, tasks })
    }

    /// Waits until every update this deploy started is over (completed, rolled back or paused).
    /// `timeout` bounds each step, as with Compose: an update in which no new task came to run
    /// and no service changed state for that long is rolled back (`docker service rollback`),
    /// and that is waited for as long again.
    pub fn wait_updates(&self, before: &Before, timeout: Duration) -> anyhow::Result<Rollout> {
        let started = Instant::now();
        let mut rollout = Rollout::default();
        let mut followed: Vec<Followed> = to_follow(&before.services, &self.service_states()?)
            .into_iter()
            .map(|name| Followed {
                name,
                rollback_reason: None,
                rolled_back_by_us: false,
                done: None,
            })
            .collect();
        if followed.is_empty() {
            return Ok(rollout);
        }
        let names: Vec<String> = followed.iter().map(|f| f.name.clone()).collect();
        let step = self.docker.printer().step(&format!(
            "waiting for Swarm's rolling update of {}",
            self.short_names(&names).join(", ")
        ));
        let deadline = timeout;
        let timeout = timeout.as_secs();
        // The new tasks seen running (healthy, when they have a health check).
        let mut ran = BTreeSet::new();
        let mut last_step = (Instant::now(), 0, Vec::new());
        let mut rolled_back_at: Option<Instant> = None;
        loop {
            let states = self.service_states()?;
            let running = self.task_lines(&names, true)?;
            let mut progress = Vec::new();
            for f in followed.iter_mut().filter(|f| f.done.is_none()) {
                let (Some(then), Some(now)) = (before.services.get(&f.name), states.get(&f.name))
                else {
                    anyhow::bail!("service {} went away during its update", f.name);
                };
                let short = self.short_names(std::slice::from_ref(&f.name)).remove(0);
                let Some(update) = this_update(then, now) else {
                    // A template change that leaves every task as it is (no field Swarm compares
                    // tasks by) starts no update at all: nothing new to wait for.
                    let prefix = format!("{}.", f.name);
                    let untouched = running
                        .iter()
                        .filter(|t| t.name.starts_with(&prefix))
                        .all(|t| before.tasks.contains(&t.id));
                    if untouched && started.elapsed() >= NO_UPDATE_AFTER {
                        f.done = Some(UpdateState::Completed);
                    } else {
                        progress.push(format!("{short}: waiting for Swarm to start"));
                    }
                    continue;
                };
                if update.state == UpdateState::RollbackStarted && f.rollback_reason.is_none() {
                    f.rollback_reason = Some((update.message.clone(), Instant::now()));
                }
                if !update.state.in_progress() {
                    f.done = Some(update.state);
                    let seconds = round1(started.elapsed().as_secs_f64());
                    if update.state == UpdateState::Completed {
                        rollout.updated.push((short.clone(), seconds));
                    } else {
                        let why = if f.rolled_back_by_us {
                            format!(
                                "no new task came to run for --timeout {timeout} s, so provision \
                                 rolled it back (Swarm: {})",
                                update.message
                            )
                        } else {
                            f.rollback_reason
                                .as_ref()
                                .map_or_else(|| update.message.clone(), |(why, _)| why.clone())
                        };
                        rollout.failures.push(Failure {
                            service: short.clone(),
                            state: update.state,
                            why,
                            rollback_seconds: f
                                .rollback_reason
                                .as_ref()
                                .map(|(_, at)| round1(at.elapsed().as_secs_f64())),
                            task_errors: Vec::new(),
                            last_log: None,
                        });
                    }
                    continue;
                }
                let prefix = format!("{}.", f.name);
                let (mut old, mut new, mut starting) = (0, 0, 0);
                for t in running.iter().filter(|t| t.name.starts_with(&prefix)) {
                    match (before.tasks.contains(&t.id), t.state == "Running") {
                        (true, true) => old += 1,
                        (false, true) => {
                            new += 1;
                            ran.insert(t.id.clone());
                        }
                        (_, false) => starting += 1,
                    }
                }
                progress.push(format!(
                    "{short} {}: {old} old and {new} new tasks running, {starting} starting",
                    update.state.as_str()
                ));
            }
            if followed.iter().all(|f| f.done.is_some()) {
                break;
            }
            step.status(&progress.join("; "));
            let states: Vec<Option<UpdateState>> = followed.iter().map(|f| f.done).collect();
            if (ran.len(), &states) != (last_step.1, &last_step.2) {
                last_step = (Instant::now(), ran.len(), states);
            }
            if rolled_back_at.is_none() && last_step.0.elapsed() >= deadline {
                rolled_back_at = Some(Instant::now());
                for f in followed.iter_mut().filter(|f| f.done.is_none()) {
                    f.rolled_back_by_us = true;
                    self.docker
                        .call(
                            format!("rolling back {} (no step for {timeout} s)", f.name),
                            ["service", "rollback", "--detach", f.name.as_str()],
                        )
                        .changes_state()
                        .output()?;
                }
            }
            if rolled_back_at.is_some_and(|t| t.elapsed() >= deadline) {
                step.fail();
                return Err(crate::ToolError(format!(
                    "Swarm's update of {} is neither finished nor rolled back {timeout} s after \
                     provision asked for the rollback: {}",
                    names.join(", "),
                    progress.join("; ")
                ))
                .into());
            }
            std::thread::sleep(POLL);
        }
        rollout.seconds = round1(started.elapsed().as_secs_f64());
        if rollout.failures.is_empty() {
            step.finish();
        } else {
            step.fail();
            let failed: Vec<String> = rollout
                .failures
                .iter()
                .map(|f| self.service_name(&f.service))
                .collect();
            let tasks = self.task_lines(&failed, false)?;
            for failure in &mut rollout.failures {
                let prefix = format!("{}.", self.service_name(&failure.service));
                let ended: Vec<&TaskLine> = tasks
                    .iter()
                    .filter(|t| {
                        t.name.starts_with(&prefix)
                            && !before.tasks.contains(&t.id)
                            && t.state != "Running"
                    })
                    .collect();
                let ended = order_ended(ended);
                failure.task_errors = ended
                    .iter()
                    .map(|t| describe_ended(t, ran.contains(&t.id)))
                    .collect();
                failure.last_log = log_candidates(&ended, &failure.why)
                    .into_iter()
                    .map(|t| TaskLog {
                        task: t.id.chars().take(12).collect(),
                        lines: self.task_log(&t.id),
                    })
                    .find(|log| !log.lines.is_empty());
            }
        }
        Ok(rollout)
    }

    /// Service names without the stack's prefix (`web`).
    fn short_names(&self, names: &[String]) -> Vec<String> {
        let prefix = format!("{}_", self.plan.project);
        names
            .iter()
            .map(|n| n.strip_prefix(&prefix).unwrap_or(n).to_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::swarm::state::{parse_services, parse_task_lines};

    fn service(name: &str, image: &str, update: Option<(&str, &str, &str)>) -> String {
        let status = update
            .map(|(state, started, message)| {
                format!(
                    r#","UpdateStatus":{{"State":"{state}","StartedAt":"{started}","Message":"{message}"}}"#
                )
            })
            .unwrap_or_default();
        format!(
            r#"{{"ID":"x","Spec":{{"Name":"{name}","TaskTemplate":{{"ContainerSpec":{{"Image":"{image}"}},"ForceUpdate":0}}}}{status}}}"#
        )
    }

    fn parse(services: &[String]) -> BTreeMap<String, ServiceState> {
        parse_services(&format!("[{}]", services.join(","))).unwrap()
    }

    #[test]
    fn the_task_swarm_names_gives_the_log_and_tasks_stopped_starting_come_last() {
        // As in a CI run: the rollback stopped a task while it was starting (no log yet); the
        // one that failed its health check is the one Swarm's reason names.
        let tasks = parse_task_lines(
            "zjlvyuaas5tz0000\thits_web.3\tnode2\tStarting 2 seconds ago\t\n\
             ugm5kyouepcf0000\thits_web.2\tnode2\tShutdown 3 seconds ago\t\n\
             x141rvsr52vpx5nv\thits_web.3\tnode2\tComplete 5 seconds ago\t\n\
             a1b2c3d4e5f60000\thits_web.1\tnode3\tFailed 9 seconds ago\ttask: non-zero exit (1)\n",
        );
        let ended = order_ended(tasks.iter().collect());
        let order: Vec<&str> = ended.iter().map(|t| &t.id[..4]).collect();
        assert_eq!(order, ["x141", "a1b2", "ugm5", "zjlv"]);
        let why = "update rolled back due to failure or early termination of task \
                   a1b2c3d4e5f60000aaaaaaaaa";
        let logs: Vec<&str> = log_candidates(&ended, why)
            .iter()
            .map(|t| &t.id[..4])
            .collect();
        assert_eq!(logs, ["a1b2", "x141", "ugm5", "zjlv"]);
        let unnamed: Vec<&str> = log_candidates(&ended, "rollback completed")
            .iter()
            .map(|t| &t.id[..4])
            .collect();
        assert_eq!(unnamed, ["x141", "a1b2", "ugm5", "zjlv"]);
    }

    #[test]
    fn only_services_whose_tasks_change_or_still_update_are_followed() {
        let before = parse(&[
            service(
                "hits_web",
                "web:1",
                Some(("rollback_completed", "t1", "rollback completed")),
            ),
            service("hits_lb", "lb:1", None),
            service("hits_redis", "redis:1", None),
        ]);
        let after = parse(&[
            // A new version: followed, though its status is still the earlier rollback's.
            service(
                "hits_web",
                "web:2",
                Some(("rollback_completed", "t1", "rollback completed")),
            ),
            service("hits_lb", "lb:1", None),
            // Unchanged but still updating (an interrupted apply): followed.
            service(
                "hits_redis",
                "redis:1",
                Some(("updating", "t0", "update in progress")),
            ),
            // New: created, not updated.
            service("hits_consul", "consul:1", None),
        ]);
        assert_eq!(to_follow(&before, &after), ["hits_redis", "hits_web"]);
        let web_before = &before["hits_web"];
        assert_eq!(
            this_update(web_before, &after["hits_web"]),
            None,
            "the earlier rollback is not this deploy's update"
        );
        let started = parse(&[service(
            "hits_web",
            "web:2",
            Some(("updating", "t2", "update in progress")),
        )]);
        assert_eq!(
            this_update(web_before, &started["hits_web"]).map(|u| u.state),
            Some(UpdateState::Updating)
        );
        let rolled = parse(&[service(
            "hits_web",
            "web:1",
            Some(("rollback_completed", "t2", "rollback completed")),
        )]);
        assert_eq!(
            this_update(web_before, &rolled["hits_web"]).map(|u| u.state),
            Some(UpdateState::RollbackCompleted)
        );
        let odd = parse(&[service(
            "hits_web",
            "web:1",
            Some(("some_new_state", "t3", "")),
        )]);
        assert_eq!(
            odd["hits_web"].update.as_ref().unwrap().state,
            UpdateState::Unknown
        );
    }

    #[test]
    fn a_rolled_back_update_names_the_service_swarms_reason_and_the_task_errors() {
        let rollout = Rollout {
            updated: Vec::new(),
            failures: vec![Failure {
                service: "web".into(),
                state: UpdateState::RollbackCompleted,
                why: "update rolled back due to failure or early termination of task tspm6".into(),
                rollback_seconds: Some(7.2),
                task_errors: vec![describe_ended(
                    &parse_task_lines(
                        "v4wootagi2thrdx0\thits_web.1\tnode2\tComplete 22 seconds ago\t\n",
                    )[0],
                    false,
                )],
                last_log: Some(TaskLog {
                    task: "v4wootagi2th".into(),
                    lines: vec![
                        "[healthcheck] unhealthy: http://127.0.0.1:8000/healthz: HTTP Error 500"
                            .into(),
                        "[INFO] Handling signal: term".into(),
                    ],
                }),
            }],
            seconds: 31.5,
        };
        insta::assert_snapshot!(rollout.failure_message().unwrap(), @r"
        rolled back: Swarm's update of web failed and Swarm rolled it back (in 7.2 s, 31.5 s after the deploy): update rolled back due to failure or early termination of task tspm6
          its new tasks that ended:
            node2: hits_web.1 (task v4wootagi2th) complete: ended before it ever ran healthy
          the last log lines of task v4wootagi2th:
            [healthcheck] unhealthy: http://127.0.0.1:8000/healthz: HTTP Error 500
            [INFO] Handling signal: term
        the tasks that ran before keep serving
        ");
        assert_eq!(Rollout::default().failure_message(), None);
    }
}
