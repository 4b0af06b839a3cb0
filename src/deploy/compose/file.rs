//! The services of a rendered Compose file as apply compares them with their containers: each
//! one's image, its `org.provision.config` label (a hash of its section, see compose.yaml.j2) and,
//! with a live configuration, its restart key.

use std::collections::BTreeMap;

use anyhow::Context as _;

use crate::docker::{with_secrets, Compose, Container, CONFIG_LABEL, RESTART_KEY_LABEL};
use crate::render;
use crate::secrets::VERSIONS_LABEL;

/// The services of the rendered Compose file as `docker compose` creates their containers with
/// its override files: the configuration labels an override sets (the app's inputs extend web's,
/// see `crate::inputs`), then the stack's secrets' versions merged into them (as
/// `Container::config_label` reads them back).
pub fn read_file_services(compose: &Compose<'_>) -> anyhow::Result<BTreeMap<String, FileService>> {
    let compose_file = compose.file();
    let text = std::fs::read_to_string(compose_file)
        .with_context(|| format!("reading {}", compose_file.display()))?;
    let mut services = file_services(&text)
        .with_context(|| format!("reading the services of {}", compose_file.display()))?;
    let overrides = compose
        .overrides()
        .iter()
        .map(|file| {
            std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))
                .map(|text| (file, text))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Labels first, versions after: a label an override sets replaces the rendered one whole.
    for (file, text) in &overrides {
        overlay_config_labels(&mut services, text)
            .with_context(|| format!("reading {}", file.display()))?;
    }
    for (file, text) in &overrides {
        merge_secrets(&mut services, text)
            .with_context(|| format!("reading the services of {}", file.display()))?;
    }
    Ok(services)
}

/// Takes the `org.provision.config` and restart-key labels an override file sets over the
/// rendered ones (the lb's carry its certificate's version, see `crate::inputs`).
fn overlay_config_labels(
    services: &mut BTreeMap<String, FileService>,
    override_text: &str,
) -> anyhow::Result<()> {
    let doc: serde_yaml::Value = serde_yaml::from_str(override_text)?;
    for (name, service) in services.iter_mut() {
        let labels = &doc["services"][name.as_str()]["labels"];
        if let Some(label) = labels[CONFIG_LABEL].as_str() {
            service.config = label.to_owned();
        }
        if let Some(key) = labels[RESTART_KEY_LABEL].as_str() {
            service.restart_key = Some(key.to_owned());
        }
    }
    Ok(())
}

/// Adds each service's secrets' versions label from an override file's `text`.
fn merge_secrets(services: &mut BTreeMap<String, FileService>, text: &str) -> anyhow::Result<()> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text)?;
    let Some(sections) = doc.get("services").and_then(|s| s.as_mapping()) else {
        return Ok(());
    };
    for (name, section) in sections {
        let (Some(name), Some(versions)) = (
            name.as_str(),
            section
                .get("labels")
                .and_then(|l| l.get(VERSIONS_LABEL))
                .and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        if let Some(service) = services.get_mut(name) {
            let versions = versions.to_owned();
            service.config = with_secrets(Some(&service.config), Some(&versions))
                .expect("a configuration label");
            service.restart_key = with_secrets(service.restart_key.as_ref(), Some(&versions));
        }
    }
    Ok(())
}

/// A service as the rendered Compose file has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileService {
    pub image: String,
    pub config: String,
    /// Its `org.provision.restart-key` label: only a service with a live configuration has one.
    pub restart_key: Option<String>,
}

/// Service → its image and `org.provision.config` label, from compose.yaml's text.
pub fn file_services(text: &str) -> anyhow::Result<BTreeMap<String, FileService>> {
    render::compose_services(text)?
        .into_iter()
        .map(|(name, section)| {
            let field = |value: Option<&serde_yaml::Value>, what: &str| {
                value
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
                    .with_context(|| format!("service {name} has no {what}"))
            };
            let labels = section.get("labels");
            let service = FileService {
                image: field(section.get("image"), "image")?,
                config: field(labels.and_then(|l| l.get(CONFIG_LABEL)), CONFIG_LABEL)?,
                restart_key: labels
                    .and_then(|l| l.get(RESTART_KEY_LABEL))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
            };
            Ok((name, service))
        })
        .collect()
}

/// Why the container does not run what the file says (an older configuration or image).
pub fn outdated(c: &Container, want: &FileService, image_id: Option<&str>) -> Option<String> {
    if c.config_label.as_deref() != Some(want.config.as_str()) {
        Some("runs an older configuration".to_owned())
    } else if image_id != Some(c.image_id.as_str()) {
        Some(format!("does not run the current {}", want.image))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compose_file_says_each_service_image_and_config() {
        let text = "name: hits\nservices:\n  web:\n    image: \"hits-web:1\"\n    labels:\n      org.provision.config: \"abc\"\n      SERVICE_NAME: web\n  lb:\n    image: lb:2\n    labels:\n      org.provision.config: \"def\"\n";
        let services = file_services(text).unwrap();
        assert_eq!(
            services["web"],
            FileService {
                image: "hits-web:1".into(),
                config: "abc".into(),
                restart_key: None,
            }
        );
        assert_eq!(services["lb"].config, "def");
        let mut overlaid = services.clone();
        overlay_config_labels(
            &mut overlaid,
            "services:\n  web:\n    labels:\n      org.provision.config: abc+123\n",
        )
        .unwrap();
        assert_eq!(overlaid["web"].config, "abc+123");
        assert_eq!(overlaid["lb"], services["lb"]);
        let err = file_services("services:\n  web:\n    image: x\n").unwrap_err();
        assert!(err.to_string().contains("org.provision.config"), "{err}");
    }

    #[test]
    fn an_override_adds_the_secrets_versions_to_config_and_restart_key() {
        let mut services = file_services(
            "services:\n  lb:\n    image: lb:2\n    labels:\n      org.provision.config: \"def\"\n      org.provision.restart-key: \"rk\"\n  web:\n    image: w\n    labels:\n      org.provision.config: \"abc\"\n",
        )
        .unwrap();
        merge_secrets(
            &mut services,
            "services:\n  lb:\n    labels:\n      org.provision.secrets: probe_token@v1>probe_token\n",
        )
        .unwrap();
        assert_eq!(services["lb"].config, "def+probe_token@v1>probe_token");
        assert_eq!(
            services["lb"].restart_key.as_deref(),
            Some("rk+probe_token@v1>probe_token")
        );
        assert_eq!(services["web"].config, "abc");
    }
}
