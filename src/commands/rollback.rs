//! `provision rollback [RELEASE]`: deploys an earlier release's files again with apply's own
//! sequence (`apply::deploy_stack`): on Compose web is replaced rolling, each new replica routed
//! before an old one is drained; on a Swarm it is Swarm's rolling update with its failure
//! action. It records a new release ("rollback to N"); the spec and the output directory are
//! left as they are, so the next `provision apply` deploys the spec again.
//!
//! The release's plan comes from its own copy of the spec (its ports and discovery mode are the
//! ones its files were rendered for), read with the current spec's directory as base. Its images
//! must still be there (`web.keep_releases`): a rollback never builds, so it deploys exactly
//! what ran.

use std::path::Path;

use anyhow::Context as _;

use crate::cli::{ApplyArgs, LockArgs, RollbackArgs};
use crate::commands::apply::{self, Recording};
use crate::commands::Global;
use crate::docker::Docker;
use crate::releases::{Origin, Release, Releases};
use crate::render::RenderedStack;
use crate::{spec, ExitStatus, UsageError};

pub fn run(global: &Global, args: RollbackArgs) -> anyhow::Result<ExitStatus> {
    let printer = global.printer;
    let current = spec::load(&global.spec)?;
    let project = current.project.clone();
    let releases = Releases::of(&project)?;
    let all = releases.list()?;
    let id = match args.release {
        Some(id) => id,
        None => previous(&all)?,
    };
    let release = releases.get(id)?;
    let spec_text = releases.spec_text(id)?;
    let spec_dir = global
        .spec
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let plan = spec::from_text(
        &spec_text,
        Path::new(&format!("release {id}'s spec")),
        spec_dir,
    )
    .with_context(|| format!("reading release {id}'s copy of the spec"))?;
    if plan.project != project {
        return Err(UsageError(format!(
            "release {id} is of project {}, not {project}",
            plan.project
        ))
        .into());
    }
    let _lock = match args.dry_run {
        false => Some(global.lock(&project, "rollback", &printer)?),
        true => None,
    };
    if plan.swarm().is_none() {
        require_images(&Docker::new(printer), &release, plan.web.keep_releases)?;
    }
    printer.note(format!(
        "rolling back to release {id} (made {}, by {}: {})",
        release.time,
        release.origin,
        release.changes.join("; ")
    ));
    let stack = RenderedStack::from_files(plan, releases.checkout(id)?);
    let files = stack.out_dir.clone();
    let apply_args = ApplyArgs {
        dry_run: args.dry_run,
        out: files,
        rollout: args.rollout,
        // The release as it was deployed: its images are kept (web.keep_releases), not rebuilt
        // from a refreshed base, and never a canary of it.
        pull: false,
        // The stack's secrets as they are now: a rollback deploys files, not older secrets.
        rotate_secrets: false,
        canary: None,
        lock: LockArgs {
            lock_timeout: args.lock.lock_timeout,
        },
        common: args.common,
    };
    apply::deploy_stack(
        global,
        &stack,
        &apply_args,
        &Recording {
            origin: Origin::Rollback { to: id },
            spec_text,
        },
    )
}

/// The release before the latest.
fn previous(releases: &[Release]) -> anyhow::Result<u32> {
    match releases {
        [.., before, _latest] => Ok(before.id),
        [only] => Err(UsageError(format!(
            "there is only release {}: nothing earlier to roll back to",
            only.id
        ))
        .into()),
        [] => Err(UsageError(
            "no release was recorded yet: `provision apply` records one, `provision history` \
             lists them"
                .into(),
        )
        .into()),
    }
}

/// Fails, naming them, when images the release built are gone: a rollback deploys what ran,
/// it does not build it again.
fn require_images(docker: &Docker, release: &Release, keep: u32) -> anyhow::Result<()> {
    let built: Vec<String> = release
        .images
        .iter()
        .filter(|i| i.built)
        .map(|i| i.reference.clone())
        .collect();
    let present = docker.images_present(&built)?;
    let missing: Vec<&str> = built
        .iter()
        .zip(present)
        .filter(|(_, present)| !present)
        .map(|(image, _)| image.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(UsageError(format!(
            "release {}'s images are gone: {} (web.keep_releases = {keep} keeps the images of the \
             latest {keep} releases only)",
            release.id,
            missing.join(", ")
        ))
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(id: u32) -> Release {
        Release {
            id,
            time: String::new(),
            origin: Origin::Apply,
            changes: Vec::new(),
            images: Vec::new(),
            spec_sha256: String::new(),
            files_sha256: String::new(),
            target: "compose".into(),
        }
    }

    #[test]
    fn the_default_is_the_release_before_the_latest() {
        assert_eq!(previous(&[release(1), release(2), release(3)]).unwrap(), 2);
        let err = previous(&[release(4)]).unwrap_err().to_string();
        assert_eq!(
            err,
            "there is only release 4: nothing earlier to roll back to"
        );
        assert!(previous(&[]).is_err());
    }
}
