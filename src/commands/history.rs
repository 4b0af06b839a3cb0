//! `provision history`: the project's releases (see `releases`), oldest first, as a table or as
//! JSON. Reads the state directory only: no engine needed.

use serde::Serialize;

use crate::cli::HistoryArgs;
use crate::commands::Global;
use crate::releases::{Release, Releases};
use crate::{json, spec, ExitStatus};

/// `history --json`'s fields inside the envelope (docs/schema/history.json).
#[derive(Debug, Serialize)]
struct History<'a> {
    project: &'a str,
    /// How many of the latest releases keep their images (`web.keep_releases`).
    keep_releases: u32,
    releases: &'a [Release],
}

pub fn run(global: &Global, args: HistoryArgs) -> anyhow::Result<ExitStatus> {
    let plan = spec::load(&global.spec)?;
    let releases = Releases::of(&plan.project)?.list()?;
    let keep = plan.web.keep_releases;
    if args.json {
        json::print(
            &global.printer,
            "history",
            true,
            History {
                project: &plan.project,
                keep_releases: keep,
                releases: &releases,
            },
        )?;
    } else {
        global
            .printer
            .stdout()
            .text(&table(&plan.project, &releases, keep))?;
    }
    Ok(ExitStatus::Success)
}

/// One row per release, the latest marked; releases beyond `keep` are
/// marked, since their images may be gone.
fn table(project: &str, releases: &[Release], keep: u32) -> String {
    if releases.is_empty() {
        return format!(
            "{project}: no release yet (every `provision apply` that deploys records one)\n"
        );
    }
    let kept_from = releases.len().saturating_sub(keep as usize);
    let mut out = format!(
        "{:<9} {:<20}  {:<15} {}\n",
        "RELEASE", "TIME (UTC)", "ORIGIN", "CHANGES"
    );
    for (index, release) in releases.iter().enumerate() {
        let mark = if index + 1 == releases.len() {
            " (latest)"
        } else if index < kept_from {
            " (images pruned)"
        } else {
            ""
        };
        out.push_str(&format!(
            "{:<9} {:<20}  {:<15} {}{mark}\n",
            release.id,
            release.time,
            release.origin.to_string(),
            release.changes.join("; ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::releases::Origin;

    fn release(id: u32, origin: Origin, change: &str) -> Release {
        Release {
            id,
            time: format!("2026-12-06T06:0{id}:00Z"),
            origin,
            changes: vec![change.to_owned()],
            images: Vec::new(),
            spec_sha256: String::new(),
            files_sha256: String::new(),
            target: "compose".into(),
        }
    }

    #[test]
    fn the_table_marks_the_running_release_and_the_pruned_ones() {
        let releases = [
            release(1, Origin::Apply, "stack created"),
            release(2, Origin::Apply, "web: replaced rolling"),
            release(3, Origin::Rollback { to: 1 }, "web: replaced rolling"),
        ];
        assert_eq!(
            table("hits", &releases, 2),
            "RELEASE   TIME (UTC)            ORIGIN          CHANGES\n\
             1         2026-12-06T06:01:00Z  apply           stack created (images pruned)\n\
             2         2026-12-06T06:02:00Z  apply           web: replaced rolling\n\
             3         2026-12-06T06:03:00Z  rollback to 1   web: replaced rolling (latest)\n"
        );
        assert!(table("hits", &[], 5).starts_with("hits: no release yet"));
    }
}
