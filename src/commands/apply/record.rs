//! After a deploy that worked: record the release (`releases`), remove the images of releases
//! beyond `web.keep_releases`, and put a new lb back into maintenance mode when it is on.
//! None of these undoes the deploy: a failure is a note, and apply still succeeds.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::deploy::{maintenance, Deployment};
use crate::docker::{Compose, Docker};
use crate::probe::converge::lb_container;
use crate::releases::{prune, NewRelease, Origin, ReleaseImage, Releases};

/// What a deploy records: why it ran, and the spec it ran from.
#[derive(Debug, Clone)]
pub struct Recording {
    pub origin: Origin,
    /// The spec's text (for a rollback, the release's).
    pub spec_text: String,
}

impl Recording {
    /// Records the release, prunes old images, keeps maintenance mode on; notes what failed.
    pub(super) fn after_deploy(&self, deployment: &Deployment<'_>, changes: Vec<String>) {
        let docker = deployment.docker();
        if docker.is_dry_run() {
            return;
        }
        let progress = docker.printer();
        if let Err(err) = self.record(deployment, changes) {
            progress.note(format!(
                "the deploy worked, but its release was not recorded ({err:#}); `provision \
                 rollback` cannot return to it"
            ));
        }
        let project = &deployment.plan().project;
        let lb = deployment
            .containers()
            .ok()
            .and_then(|containers| lb_container(&containers));
        if let Some(lb) = lb {
            if let Err(err) = maintenance::reassert(docker, project, &lb) {
                progress.note(format!("{err:#}"));
            }
        }
    }

    fn record(&self, deployment: &Deployment<'_>, changes: Vec<String>) -> anyhow::Result<()> {
        let docker = deployment.docker();
        let plan = deployment.plan();
        let files = deployment
            .file()
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let releases = Releases::of(&plan.project)?;
        if releases.is_new(&files)? {
            let images = images(docker, &plan.project, &files.join("compose.yaml"))?;
            let changes = if changes.is_empty() {
                vec!["no service changed (the running stack, recorded)".to_owned()]
            } else {
                changes
            };
            let release = releases.record(NewRelease {
                origin: self.origin.clone(),
                changes,
                images,
                spec_text: &self.spec_text,
                files: &files,
                target: plan.swarm().map_or("compose", |_| "swarm"),
            })?;
            docker.printer().stdout().line(format!(
                "  release:       {} ({}; `provision history` lists them)",
                release.id, release.origin
            ))?;
        }
        prune_images(deployment, &releases, plan.web.keep_releases)
    }
}

/// Every image of the Compose file `file`, with its ID now.
fn images(
    docker: &Docker,
    project: &str,
    file: &std::path::Path,
) -> anyhow::Result<Vec<ReleaseImage>> {
    let config = Compose::new(docker, project, file).config()?;
    let mut images: Vec<ReleaseImage> = config
        .built_images()
        .into_iter()
        .map(|(service, reference)| (service, reference, true))
        .chain(
            config
                .pulled_images()
                .into_iter()
                .map(|(service, reference)| (service, reference, false)),
        )
        .map(|(service, reference, built)| ReleaseImage {
            service,
            reference,
            id: None,
            built,
        })
        .collect();
    let references: Vec<String> = images.iter().map(|i| i.reference.clone()).collect();
    for (image, id) in images.iter_mut().zip(docker.image_ids(&references)?) {
        image.id = id;
    }
    images.sort_by(|a, b| a.service.cmp(&b.service));
    Ok(images)
}

/// Removes the built images only releases beyond the newest `keep` use.
fn prune_images(deployment: &Deployment<'_>, releases: &Releases, keep: u32) -> anyhow::Result<()> {
    let docker = deployment.docker();
    let in_use: BTreeSet<String> = deployment
        .containers()?
        .into_iter()
        .flat_map(|c| [c.image, c.image_id])
        .collect();
    let remove = prune::images_to_remove(&releases.list()?, keep, &in_use);
    let present = docker.images_present(&remove)?;
    let remove: Vec<&String> = remove
        .iter()
        .zip(present)
        .filter(|(_, present)| *present)
        .map(|(image, _)| image)
        .collect();
    if remove.is_empty() {
        return Ok(());
    }
    let mut args = vec!["image", "rm"];
    args.extend(remove.iter().map(|i| i.as_str()));
    let out = docker
        .call(
            format!(
                "removing the images of releases older than the last {keep} (web.keep_releases)"
            ),
            args,
        )
        .changes_state()
        .timeout(Duration::from_secs(60))
        .output_unchecked()?;
    let names: Vec<&str> = remove.iter().map(|i| i.as_str()).collect();
    if out.success {
        docker.printer().note(format!(
            "removed the images of releases older than the last {keep}: {}",
            names.join(", ")
        ));
    } else {
        docker.printer().note(format!(
            "could not remove every old release's image ({}): {}",
            names.join(", "),
            out.stderr.trim()
        ));
    }
    Ok(())
}
