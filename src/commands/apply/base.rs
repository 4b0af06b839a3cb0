//! Rebuilding when the base changes. An image provision builds is tagged with a hash of its
//! rendered build context: rendering needs no engine, so generated/ stays the same on every
//! machine and CI can check it is current. The base image (`images.base`, the FROM of every
//! built image) is the other half of the image's identity, and only the engine knows it: a built
//! image is current only while its layers start with the base's layers as they are now. One
//! built on an older base (a new `debian:trixie-slim` pulled, or the offline base re-imported)
//! is untagged here, before apply plans, so the plan sees it missing: it is rebuilt, and its
//! containers are replaced as for any new image.
//!
//! `apply --pull` first pulls the base (a failed pull, offline or for a local-only name such as
//! `localhost/provision-rig/...`, is said and the local base kept), then rebuilds every built
//! image without Docker's layer cache, so that Debian's package updates arrive too.

use crate::cli::ApplyArgs;
use crate::deploy::Deployment;
use crate::docker::Compose;

/// What the base check decided for the build that follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rebuild {
    /// Build without Docker's layer cache (`--pull`: Debian's packages again).
    pub no_cache: bool,
}

/// Pulls the base with `--pull`, then untags every built image that is not built on the base as
/// it is now (every one with `--pull`). In a dry run, says what it would do.
pub(super) fn refresh(
    deployment: &Deployment<'_>,
    compose: &Compose<'_>,
    args: &ApplyArgs,
) -> anyhow::Result<Rebuild> {
    let docker = deployment.docker();
    let plan = deployment.plan();
    let printer = docker.printer();
    let base = plan.images.base.clone();
    if args.pull {
        pull_base(deployment, &base);
    }
    let on_base: Vec<&'static str> = plan
        .build_contexts()
        .iter()
        .map(|c| c.service.name())
        .collect();
    let built: Vec<(String, String)> = compose
        .config()?
        .built_images()
        .into_iter()
        .filter(|(service, _)| on_base.contains(&service.as_str()))
        .collect();
    let Some(base_layers) = docker.image_layers(std::slice::from_ref(&base))?.remove(0) else {
        // No base yet: nothing can be built on an older one (the build pulls or fails).
        return Ok(Rebuild { no_cache: false });
    };
    let tags: Vec<String> = built.iter().map(|(_, tag)| tag.clone()).collect();
    let layers = docker.image_layers(&tags)?;
    let mut outdated = Vec::new();
    for ((service, tag), layers) in built.iter().zip(layers) {
        let Some(layers) = layers else { continue };
        if args.pull || !built_on(&layers, &base_layers) {
            outdated.push((service.clone(), tag.clone()));
        }
    }
    if outdated.is_empty() {
        return Ok(Rebuild {
            no_cache: args.pull,
        });
    }
    let why = if args.pull {
        "--pull: rebuilt without the layer cache".to_owned()
    } else {
        format!("built on an older {base}")
    };
    let names: Vec<&str> = outdated.iter().map(|(s, _)| s.as_str()).collect();
    printer.note(format!("images of {} to rebuild ({why})", names.join(", ")));
    if docker.is_dry_run() {
        // The plan below is made from the engine as it is, where those images are still tagged.
        printer.note(
            "dry run: apply untags them first, so that the plan rebuilds them and replaces their \
             containers; the plan below, made without that, still counts them current",
        );
    }
    for (_, tag) in &outdated {
        // Untags it (a running container keeps its image until it is replaced).
        docker
            .call(
                format!("untagging {tag}"),
                ["image", "rm", "--force", "--no-prune", tag.as_str()],
            )
            .changes_state()
            .output()?;
    }
    Ok(Rebuild {
        no_cache: args.pull,
    })
}

/// `docker pull` of the base; a failure is said, not fatal: offline, or for a base that exists
/// only locally, the local image is the one to build on.
fn pull_base(deployment: &Deployment<'_>, base: &str) {
    let docker = deployment.docker();
    let pulled = docker
        .call(format!("pulling {base}"), ["pull", base])
        .changes_state()
        .timeout(std::time::Duration::from_secs(600))
        .output_unchecked();
    match pulled {
        Ok(out) if out.success => {}
        Ok(out) => docker.printer().note(format!(
            "could not pull {base}; building on the local one ({})",
            out.stderr.lines().last().unwrap_or_default().trim()
        )),
        Err(err) => docker.printer().note(format!(
            "could not pull {base}; building on the local one ({err:#})"
        )),
    }
}

/// Whether an image whose layers are `image` was built on a base whose layers are `base`.
fn built_on(image: &[String], base: &[String]) -> bool {
    image.len() >= base.len() && image[..base.len()] == *base
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn an_image_is_on_its_base_while_the_bases_layers_start_it() {
        let base = layers(&["sha256:a", "sha256:b"]);
        assert!(built_on(
            &layers(&["sha256:a", "sha256:b", "sha256:c"]),
            &base
        ));
        assert!(built_on(&base, &base), "an image that adds no layer");
        assert!(!built_on(
            &layers(&["sha256:a", "sha256:x", "sha256:c"]),
            &base
        ));
        assert!(!built_on(&layers(&["sha256:a"]), &base));
    }
}
