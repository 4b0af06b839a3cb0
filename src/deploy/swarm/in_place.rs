//! On a Swarm, an lb whose running task differs from the file in HAProxy's configuration alone
//! (the same restart key) keeps its task: it is deployed with the image it runs
//! (`LB_IMAGE_VARIABLE`) and takes the file's configuration in place (`deploy::reload`).

use anyhow::Context as _;

use super::Swarm;
use crate::deploy::reload::LiveFile;
use crate::docker::{Container, RESTART_KEY_LABEL};
use crate::render;

/// The lb that keeps its task.
pub struct LbInPlace {
    pub container: Container,
    /// The image the lb service runs now (with the digest Swarm resolved).
    pub image: String,
    /// Its container does not read the file's configuration yet.
    pub needs_reload: bool,
}

impl Swarm<'_> {
    /// The live configuration's service, when it can keep its task (see the module comment).
    pub fn lb_in_place(&self, live: &LiveFile) -> anyhow::Result<Option<LbInPlace>> {
        let service = live.config.service.name();
        let stack_yaml = std::fs::read_to_string(&self.stack_file)
            .with_context(|| format!("reading {}", self.stack_file.display()))?;
        let wanted_key = render::compose_services(&stack_yaml)?
            .into_iter()
            .find_map(|(name, section)| {
                (name == service).then(|| {
                    section
                        .get("labels")
                        .and_then(|l| l.get(RESTART_KEY_LABEL))
                        .and_then(|v| v.as_str())
                        .map(str::to_owned)
                })
            })
            .flatten();
        let Some(container) = self.local_container(service)? else {
            return Ok(None);
        };
        if wanted_key.is_none() || container.restart_key != wanted_key {
            return Ok(None);
        }
        let Some(image) = self.service_image(service)? else {
            return Ok(None);
        };
        let needs_reload = !live.is_current_in(self.docker, &container)?;
        Ok(Some(LbInPlace {
            container,
            image,
            needs_reload,
        }))
    }
}
