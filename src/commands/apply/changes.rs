//! What apply changes, per service: each service's containers compared with the rendered Compose
//! file (`plan_changes`), the plan said before anything changes (`describe_changes`), and a yes
//! asked for what interrupts the stack (`confirm_restarts`).
//!
//! Web on an older image or configuration is replaced rolling (`ComposeHost::roll_web`) instead
//! of recreated by Compose, so the load balancer never runs out of replicas; redis and consul
//! recreated interrupt the stack, so that needs a yes. When only HAProxy's configuration changed,
//! the running lb takes it in place (`deploy::reload`): same container, a new HAProxy worker, no
//! connection dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;

use crate::cli::ApplyArgs;
use crate::deploy::compose::file::{outdated, FileService};
use crate::deploy::reload::LiveFile;
use crate::docker::{Container, Docker};
use crate::spec::Service;
use crate::UsageError;

/// What apply does to one service, from its containers against the Compose file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// Runs what the file says: left alone.
    Keep,
    /// No container yet: created.
    Create,
    /// Stopped, unhealthy or the wrong number of containers: Compose starts or recreates it.
    Start,
    /// A stateless service on an older image or configuration: Compose recreates it.
    Recreate,
    /// Its live configuration alone changed: delivered to the running container and reloaded.
    ReloadInPlace,
    /// Runs the file's live configuration, delivered in place earlier; its labels still show the
    /// one it was created with, so Compose is not asked about it.
    AlreadyReloaded,
    /// redis or consul on an older image or configuration: recreated, keeping its volume.
    Restart,
    /// Web replicas on an older image or configuration: replaced rolling.
    Roll,
}

impl Action {
    /// A few words for a release's record of what changed (`provision history`).
    pub(super) fn short(self) -> &'static str {
        match self {
            Action::Keep | Action::AlreadyReloaded => "kept",
            Action::Create => "created",
            Action::Start => "started",
            Action::Recreate => "recreated",
            Action::ReloadInPlace => "reloaded in place",
            Action::Restart => "restarted",
            Action::Roll => "replaced rolling",
        }
    }
}

/// One service's line of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Change {
    pub service: String,
    pub action: Action,
    /// Its image tag is not there yet: it is built first.
    pub rebuild: bool,
    /// Why (the first container that differs), unless kept.
    pub reason: Option<String>,
}

/// Each service's action. Reads the image ids, and the live file of a container that could take
/// it in place; the rest is `plan_changes`.
pub(super) fn service_changes(
    docker: &Docker,
    wanted: &BTreeMap<String, FileService>,
    containers: &[Container],
    web_service: &str,
    live: Option<&LiveFile>,
) -> anyhow::Result<Vec<Change>> {
    let images: Vec<String> = wanted.values().map(|w| w.image.clone()).collect();
    let ids = docker.image_ids(&images)?;
    let mut live_current = BTreeSet::new();
    if let Some(live) = live {
        let service = live.config.service.name();
        let candidate = wanted.get(service).and_then(|want| {
            reloadable(containers, service, want)
                .filter(|c| c.config_label.as_deref() != Some(want.config.as_str()))
        });
        if let Some(container) = candidate {
            if live.is_current_in(docker, container)? {
                live_current.insert(service.to_owned());
            }
        }
    }
    Ok(plan_changes(
        wanted,
        &ids,
        containers,
        web_service,
        &live_current,
    ))
}

/// The service's one container, when it can take a live configuration: running, not unhealthy,
/// and the same in everything but that file (its restart key is the file's).
fn reloadable<'c>(
    containers: &'c [Container],
    service: &str,
    want: &FileService,
) -> Option<&'c Container> {
    let mine: Vec<&Container> = containers
        .iter()
        .filter(|c| !c.oneoff && c.service == service)
        .collect();
    match mine.as_slice() {
        [c] if c.running
            && c.health.as_deref() != Some("unhealthy")
            && want.restart_key.is_some()
            && c.restart_key == want.restart_key =>
        {
            Some(c)
        }
        _ => None,
    }
}

/// Each service of the file against its containers: one per service (web: at least one),
/// running, not unhealthy, carrying its service's current `org.provision.config` label (a hash
/// of the service's section, see compose.yaml.j2) and running the image its reference names now
/// (`ids`, in `wanted`'s order; None: not built yet). A service whose one container differs only
/// in its live configuration is reloaded, or kept when `live_current` says the container already
/// reads the file's.
pub(super) fn plan_changes(
    wanted: &BTreeMap<String, FileService>,
    ids: &[Option<String>],
    containers: &[Container],
    web_service: &str,
    live_current: &BTreeSet<String>,
) -> Vec<Change> {
    wanted
        .iter()
        .zip(ids)
        .map(|((service, want), id)| {
            let mine: Vec<&Container> = containers
                .iter()
                .filter(|c| !c.oneoff && &c.service == service)
                .collect();
            let is_web = service == web_service;
            let first_outdated = mine
                .iter()
                .find_map(|c| outdated(c, want, id.as_deref()).map(|why| (c, why)));
            let first_down = mine.iter().find_map(|c| {
                if !c.running {
                    Some((c, format!("is {}", c.state)))
                } else if c.health.as_deref() == Some("unhealthy") {
                    Some((c, "is unhealthy".to_owned()))
                } else {
                    None
                }
            });
            let stateful = Service::from_name(service).is_some_and(Service::keeps_state);
            let in_place = reloadable(containers, service, want).is_some();
            let (action, reason) = if mine.is_empty() {
                (Action::Create, Some("has no container".to_owned()))
            } else if first_outdated.is_some() && in_place && live_current.contains(service) {
                (Action::AlreadyReloaded, None)
            } else if let (Some((c, _)), true) = (&first_outdated, in_place) {
                (
                    Action::ReloadInPlace,
                    Some(format!(
                        "{} runs an older configuration of this file alone",
                        c.describe()
                    )),
                )
            } else if let Some((c, why)) = first_outdated {
                let action = if is_web {
                    Action::Roll
                } else if stateful {
                    Action::Restart
                } else {
                    Action::Recreate
                };
                (action, Some(format!("{} {why}", c.describe())))
            } else if !is_web && mine.len() != 1 {
                (
                    Action::Start,
                    Some(format!("{service} has {} containers", mine.len())),
                )
            } else if let Some((c, why)) = first_down {
                (Action::Start, Some(format!("{} {why}", c.describe())))
            } else {
                (Action::Keep, None)
            };
            Change {
                service: service.clone(),
                action,
                rebuild: id.is_none(),
                reason,
            }
        })
        .collect()
}

/// Why Compose has work to do; None when every service is kept and no container belongs to a
/// service the file no longer has. That is what lets a no-change apply finish without
/// `docker compose up`, which reads and compares everything again.
pub(super) fn pending_change(
    wanted: &BTreeMap<String, FileService>,
    containers: &[Container],
    changes: &[Change],
) -> Option<String> {
    if let Some(c) = containers
        .iter()
        .find(|c| !c.oneoff && !wanted.contains_key(&c.service))
    {
        return Some(format!(
            "{} belongs to no service of the file",
            c.describe()
        ));
    }
    changes.iter().find_map(|c| c.reason.clone())
}

/// The plan, for `--dry-run` (stdout) and before applying (progress): what happens to each
/// service, and a plain warning for stateful restarts.
pub(super) fn describe_changes(project: &str, changes: &[Change], batch: u32) -> String {
    let mut out = format!("plan for {project}:\n");
    for c in changes {
        let what = match c.action {
            Action::Keep => "kept".to_owned(),
            Action::Create => "created".to_owned(),
            Action::Start => "started or recreated by Compose".to_owned(),
            Action::Recreate => {
                "recreated: requests to it fail until the new container answers".to_owned()
            }
            Action::ReloadInPlace => "reloaded in place: the running container takes the new \
                               configuration file, no request dropped"
                .to_owned(),
            Action::AlreadyReloaded => {
                "kept (its configuration was reloaded in place earlier)".to_owned()
            }
            Action::Restart => "RESTARTED: a stateful service; its data survives on its volume, \
                                but requests get 503 while it restarts"
                .to_owned(),
            Action::Roll => format!(
                "replaced rolling, {batch} replica{} at a time, each new one routed before an \
                 old one is drained",
                if batch == 1 { "" } else { "s" }
            ),
        };
        let rebuilt = if c.rebuild { "image rebuilt; " } else { "" };
        out.push_str(&format!("  {:<12} {rebuilt}{what}", c.service));
        if let Some(reason) = &c.reason {
            out.push_str(&format!(" ({reason})"));
        }
        out.push('\n');
    }
    out
}

/// redis or consul restarting interrupts the stack: asked on a terminal, refused without one
/// unless `--yes` (never silently). A dry run only says it.
pub(super) fn confirm_restarts(changes: &[Change], args: &ApplyArgs) -> anyhow::Result<()> {
    let restarts: Vec<&str> = changes
        .iter()
        .filter(|c| c.action == Action::Restart)
        .map(|c| c.service.as_str())
        .collect();
    if restarts.is_empty() || args.rollout.yes || args.dry_run {
        return Ok(());
    }
    let what = format!(
        "this apply restarts {} (stateful: the data survives on its volume, but requests get 503 \
         while it restarts)",
        restarts.join(" and ")
    );
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        let go = dialoguer::Confirm::new()
            .with_prompt(format!("{what}. Go on?"))
            .default(false)
            .interact()?;
        if go {
            return Ok(());
        }
        return Err(UsageError("not confirmed: nothing was changed".into()).into());
    }
    Err(UsageError(format!(
        "{what}; without a terminal to ask on, apply needs --yes for that (nothing was changed)"
    ))
    .into())
}

/// The services besides web whose container this apply replaces or restarts: each interrupts
/// what the stack serves (web is replaced rolling, a reload keeps the container).
pub(super) fn interrupted_services(changes: &[Change], web_service: &str) -> Vec<String> {
    changes
        .iter()
        .filter(|c| c.service != web_service)
        .filter(|c| matches!(c.action, Action::Recreate | Action::Restart | Action::Start))
        .map(|c| c.service.clone())
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::commands::apply) fn container(
        id: &str,
        service: &str,
        started: &str,
    ) -> Container {
        Container {
            id: id.into(),
            short_id: id.into(),
            name: format!("hits-{service}-1"),
            project: "hits".into(),
            service: service.into(),
            number: 1,
            oneoff: false,
            state: "running".into(),
            running: true,
            health: None,
            hostname: id.into(),
            ip: None,
            image_id: String::new(),
            config_label: None,
            restart_key: None,
            started_at: started.into(),
            image: String::new(),
        }
    }

    /// A container of `service` running config `config` on image id `image`.
    fn running(id: &str, service: &str, config: &str, image: &str) -> Container {
        Container {
            config_label: Some(config.into()),
            image_id: image.into(),
            ..container(id, service, "t1")
        }
    }

    fn wanted() -> BTreeMap<String, FileService> {
        ["consul", "lb", "redis", "web"]
            .into_iter()
            .map(|s| {
                (
                    s.to_owned(),
                    FileService {
                        image: format!("{s}:1"),
                        config: format!("{s}-cfg"),
                        restart_key: (s == "lb").then(|| "lb-key".to_owned()),
                    },
                )
            })
            .collect()
    }

    /// Image ids in `wanted()`'s order: consul, lb, redis, web.
    fn ids(web: Option<&str>) -> Vec<Option<String>> {
        vec![
            Some("consul-img".into()),
            Some("lb-img".into()),
            Some("redis-img".into()),
            web.map(str::to_owned),
        ]
    }

    fn current_stack() -> Vec<Container> {
        vec![
            running("c", "consul", "consul-cfg", "consul-img"),
            running("l", "lb", "lb-cfg", "lb-img"),
            running("r", "redis", "redis-cfg", "redis-img"),
            running("w1", "web", "web-cfg", "web-img"),
            running("w2", "web", "web-cfg", "web-img"),
        ]
    }

    /// `plan_changes` of `wanted()` with no container known to read its live file already.
    fn changes_of(ids: &[Option<String>], stack: &[Container]) -> Vec<Change> {
        plan_changes(&wanted(), ids, stack, "web", &BTreeSet::new())
    }

    fn actions(changes: &[Change]) -> Vec<(&str, Action, bool)> {
        changes
            .iter()
            .map(|c| (c.service.as_str(), c.action, c.rebuild))
            .collect()
    }

    #[test]
    fn a_current_stack_keeps_everything_and_has_nothing_pending() {
        let stack = current_stack();
        let changes = changes_of(&ids(Some("web-img")), &stack);
        assert!(
            changes.iter().all(|c| c.action == Action::Keep),
            "{changes:?}"
        );
        assert_eq!(pending_change(&wanted(), &stack, &changes), None);
    }

    #[test]
    fn a_new_web_image_is_built_and_replaced_rolling_the_rest_kept() {
        let changes = changes_of(&ids(None), &current_stack());
        assert_eq!(
            actions(&changes),
            [
                ("consul", Action::Keep, false),
                ("lb", Action::Keep, false),
                ("redis", Action::Keep, false),
                ("web", Action::Roll, true),
            ]
        );
    }

    #[test]
    fn web_on_an_older_configuration_rolls_redis_and_consul_restart_lb_is_recreated() {
        let mut stack = current_stack();
        for c in &mut stack {
            c.config_label = Some("old".into());
        }
        let changes = changes_of(&ids(Some("web-img")), &stack);
        assert_eq!(
            actions(&changes),
            [
                ("consul", Action::Restart, false),
                ("lb", Action::Recreate, false),
                ("redis", Action::Restart, false),
                ("web", Action::Roll, false),
            ]
        );
        insta::assert_snapshot!(describe_changes("hits", &changes, 2), @r"
        plan for hits:
          consul       RESTARTED: a stateful service; its data survives on its volume, but requests get 503 while it restarts (hits-consul-1 (container c) runs an older configuration)
          lb           recreated: requests to it fail until the new container answers (hits-lb-1 (container l) runs an older configuration)
          redis        RESTARTED: a stateful service; its data survives on its volume, but requests get 503 while it restarts (hits-redis-1 (container r) runs an older configuration)
          web          replaced rolling, 2 replicas at a time, each new one routed before an old one is drained (hits-web-1 (container w1) runs an older configuration)
        ");
    }

    #[test]
    fn an_lb_that_differs_in_its_live_file_alone_is_reloaded_then_kept() {
        let mut stack = current_stack();
        stack[1].config_label = Some("lb-old".into());
        stack[1].image_id = "lb-old-img".into();
        stack[1].restart_key = Some("lb-key".into());
        let changes = changes_of(&ids(Some("web-img")), &stack);
        assert_eq!(changes[1].action, Action::ReloadInPlace, "{changes:?}");
        assert!(pending_change(&wanted(), &stack, &changes).is_some());

        // The container already reads the file's configuration: nothing to do.
        let live = BTreeSet::from(["lb".to_owned()]);
        let changes = plan_changes(&wanted(), &ids(Some("web-img")), &stack, "web", &live);
        assert_eq!(changes[1].action, Action::AlreadyReloaded, "{changes:?}");
        assert_eq!(pending_change(&wanted(), &stack, &changes), None);

        // Anything else changed too (another restart key), or the lb is not running: recreated.
        stack[1].restart_key = Some("other".into());
        let changes = plan_changes(&wanted(), &ids(Some("web-img")), &stack, "web", &live);
        assert_eq!(changes[1].action, Action::Recreate, "{changes:?}");
        stack[1].restart_key = Some("lb-key".into());
        stack[1].running = false;
        let changes = plan_changes(&wanted(), &ids(Some("web-img")), &stack, "web", &live);
        assert_eq!(changes[1].action, Action::Recreate, "{changes:?}");
    }

    #[test]
    fn a_stopped_web_replica_is_started_not_rolled_and_a_new_stack_is_created() {
        let mut stack = current_stack();
        stack[4].running = false;
        stack[4].state = "exited".into();
        let changes = changes_of(&ids(Some("web-img")), &stack);
        assert_eq!(changes[3].action, Action::Start);
        assert!(pending_change(&wanted(), &stack, &changes).is_some());

        let changes = changes_of(&ids(None), &[]);
        assert!(
            changes.iter().all(|c| c.action == Action::Create),
            "{changes:?}"
        );
    }

    #[test]
    fn a_container_of_a_service_the_file_lost_is_pending() {
        let mut stack = current_stack();
        stack.push(running("g", "registrator", "x", "y"));
        let changes = changes_of(&ids(Some("web-img")), &stack);
        let reason = pending_change(&wanted(), &stack, &changes).unwrap();
        assert!(reason.contains("belongs to no service"), "{reason}");
    }
}
