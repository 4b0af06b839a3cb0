//! Getting the built images to every node: tagged with the spec's registry and pushed there,
//! unless the registry has them already.

use std::time::Duration;

use super::Swarm;

impl Swarm<'_> {
    /// Whether the registry already has `image` (`host[:port]/path:tag`), asked through its
    /// HTTP API; None when it cannot be asked (then the image is pushed, which is idempotent).
    pub fn registry_has(image: &str) -> Option<bool> {
        let (host, rest) = image.split_once('/')?;
        let (path, tag) = rest.rsplit_once(':')?;
        let url = format!("http://{host}/v2/{path}/manifests/{tag}");
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(5))
            .build();
        match agent
            .head(&url)
            .set(
                "Accept",
                "application/vnd.docker.distribution.manifest.v2+json, \
                 application/vnd.oci.image.manifest.v1+json, \
                 application/vnd.oci.image.index.v1+json, \
                 application/vnd.docker.distribution.manifest.list.v2+json",
            )
            .call()
        {
            Ok(_) => Some(true),
            Err(ureq::Error::Status(404, _)) => Some(false),
            Err(_) => None,
        }
    }

    /// Tags each built image with the registry and pushes the ones the registry lacks.
    /// Returns the pushed names.
    pub fn push(&self, built: &[(String, String)]) -> anyhow::Result<Vec<String>> {
        let mut pushed = Vec::new();
        for (_, local) in built {
            let remote = self.target.remote_image(local);
            if !self.docker.is_dry_run() && Self::registry_has(&remote) == Some(true) {
                continue;
            }
            self.docker
                .call(
                    format!("tagging {local} as {remote}"),
                    ["tag", local, &remote],
                )
                .changes_state()
                .output()?;
            self.docker
                .call(format!("pushing {remote}"), ["push", remote.as_str()])
                .changes_state()
                .run_with_progress()?;
            pushed.push(remote);
        }
        Ok(pushed)
    }
}
