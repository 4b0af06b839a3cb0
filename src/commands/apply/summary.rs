//! What apply says on stdout when it is done: images built, containers created, restarted, kept
//! and removed, what was reloaded in place, where the stack answers; and, when a service the lb
//! needs was replaced, how long requests through the lb failed meanwhile.

use std::collections::BTreeMap;

use crate::deploy::reload::Reloaded;
use crate::docker::Container;
use crate::probe::load::LoadReport;
use crate::probe::Endpoints;

/// What apply did, for stdout: images built, containers started/kept, where to look.
pub(super) fn summary(
    project: &str,
    built: &[String],
    reloaded: &[Reloaded],
    before: &[Container],
    after: &[Container],
    endpoints: &Endpoints,
) -> String {
    let old: BTreeMap<&str, &Container> = before.iter().map(|c| (c.id.as_str(), c)).collect();
    let new_ids: Vec<&str> = after.iter().map(|c| c.id.as_str()).collect();
    let unchanged = after
        .iter()
        .filter(|c| {
            old.get(c.id.as_str())
                .is_some_and(|o| o.started_at == c.started_at)
        })
        .count();
    let restarted = after
        .iter()
        .filter(|c| {
            old.get(c.id.as_str())
                .is_some_and(|o| o.started_at != c.started_at)
        })
        .count();
    let created = after.len() - unchanged - restarted;
    let removed = before
        .iter()
        .filter(|c| !new_ids.contains(&c.id.as_str()))
        .count();
    let mut services: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for c in after {
        let entry = services.entry(c.service.as_str()).or_default();
        entry.1 += 1;
        if c.running {
            entry.0 += 1;
        }
    }
    let mut out = format!("applied {project}\n");
    out.push_str(&format!(
        "  images built:  {}\n",
        if built.is_empty() {
            "none (all current)".to_owned()
        } else {
            built.join(", ")
        }
    ));
    out.push_str(&format!(
        "  containers:    {created} created, {restarted} restarted, {unchanged} unchanged, {removed} removed\n"
    ));
    for r in reloaded {
        out.push_str(&format!(
            "  reloaded:      {} in place ({})\n",
            r.service, r.said
        ));
    }
    let list: Vec<String> = services
        .iter()
        .map(|(s, (running, total))| format!("{s} {running}/{total}"))
        .collect();
    out.push_str(&format!("  running:       {}\n", list.join(", ")));
    out.push_str(&format!("  load balancer: {}\n", endpoints.lb));
    out.push_str(&format!("  HAProxy stats: {}\n", endpoints.stats_page));
    if let Some(consul) = &endpoints.consul {
        out.push_str(&format!("  consul UI:     {consul}/ui/\n"));
    }
    out
}

/// How long requests through the lb failed, from the probe load that ran meanwhile.
pub(super) fn gap_line(report: &LoadReport) -> String {
    match (report.failure_samples.first(), report.last_failure_secs) {
        (Some(first), Some(last)) => format!(
            "requests through the lb failed for {:.1} s: {} of {} sent at {:.0}/s (first: {})",
            last - first.at_secs + 1.0 / report.target_rate_per_sec,
            report.failed,
            report.sent,
            report.target_rate_per_sec,
            first.reason
        ),
        _ => format!(
            "no request through the lb failed: {} sent at {:.0}/s",
            report.sent, report.target_rate_per_sec
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::apply::changes::tests::container;

    #[test]
    fn summary_tells_created_restarted_unchanged_removed() {
        let before = vec![
            container("a", "consul", "t1"),
            container("b", "web", "t1"),
            container("c", "lb", "t1"),
        ];
        let after = vec![
            container("a", "consul", "t1"),
            container("b", "web", "t2"),
            container("d", "lb", "t3"),
        ];
        let endpoints = Endpoints {
            lb: "http://127.0.0.1:8080/".into(),
            stats_csv: String::new(),
            stats_page: "http://127.0.0.1:8404/stats".into(),
            consul: Some("http://127.0.0.1:8500".into()),
        };
        insta::assert_snapshot!(summary("hits", &["lb".into()], &[], &before, &after, &endpoints), @r"
        applied hits
          images built:  lb
          containers:    1 created, 1 restarted, 1 unchanged, 1 removed
          running:       consul 1/1, lb 1/1, web 1/1
          load balancer: http://127.0.0.1:8080/
          HAProxy stats: http://127.0.0.1:8404/stats
          consul UI:     http://127.0.0.1:8500/ui/
        ");
    }
}
