//! Containers of a Compose project, read from `docker inspect` so that labels arrive as a map
//! (the `Labels` column of `ps` is one comma-joined string, and label values may hold commas).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::secrets::VERSIONS_LABEL;

const PROJECT: &str = "com.docker.compose.project";
const SERVICE: &str = "com.docker.compose.service";
/// Set by compose.yaml.j2 on every service: a hash of the service's own section.
pub const CONFIG_LABEL: &str = "org.provision.config";
/// Set by compose.yaml.j2 on a service with a live configuration: a hash of all of it but that
/// file.
pub const RESTART_KEY_LABEL: &str = "org.provision.restart-key";
const NUMBER: &str = "com.docker.compose.container-number";
const ONEOFF: &str = "com.docker.compose.oneoff";

/// One container of a Compose project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Container {
    pub id: String,
    /// The first 12 hex digits, as `docker ps` shows it.
    pub short_id: String,
    /// Without the leading `/`.
    pub name: String,
    pub project: String,
    pub service: String,
    /// `com.docker.compose.container-number`; Compose removes the highest first on scale-down.
    pub number: u32,
    /// A `docker compose run` container rather than a replica.
    pub oneoff: bool,
    /// `running`, `exited`, `created`, ...
    pub state: String,
    pub running: bool,
    /// `healthy`, `unhealthy`, `starting`; None without a healthcheck.
    pub health: Option<String>,
    /// What `socket.gethostname()` returns inside: the short id unless the service sets one.
    pub hostname: String,
    /// Its address on the project's network, when it has one.
    pub ip: Option<String>,
    pub started_at: String,
    pub image: String,
    /// The ID of the image it runs.
    pub image_id: String,
    /// Its `org.provision.config` label (see compose.yaml.j2), if any; followed by `+` and its
    /// secrets' versions label (`secrets::VERSIONS_LABEL`) when it reads secrets, so that a
    /// rotated secret makes the container outdated like a changed configuration does.
    pub config_label: Option<String>,
    /// Its `org.provision.restart-key` label, if any, with the secrets' versions the same way:
    /// a container whose secrets changed is replaced, never reloaded in place.
    pub restart_key: Option<String>,
}

impl Container {
    /// `hits-web-3 (container 1a2b3c4d5e6f)`.
    pub fn describe(&self) -> String {
        format!("{} (container {})", self.name, self.short_id)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Inspect {
    id: String,
    name: String,
    #[serde(default)]
    image: String,
    config: InspectConfig,
    state: InspectState,
    #[serde(default)]
    network_settings: Option<InspectNetworkSettings>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectConfig {
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    image: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectState {
    #[serde(default)]
    status: String,
    #[serde(default)]
    running: bool,
    #[serde(default)]
    started_at: String,
    #[serde(default)]
    health: Option<InspectHealth>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectHealth {
    status: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectNetworkSettings {
    #[serde(default)]
    networks: Option<BTreeMap<String, InspectNetwork>>,
}

#[derive(Deserialize)]
struct InspectNetwork {
    #[serde(rename = "IPAddress", default)]
    ip_address: String,
}

/// Parses `docker inspect` output (an array); containers without Compose labels are skipped.
pub fn parse_inspect(json: &str) -> anyhow::Result<Vec<Container>> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let raw: Vec<Inspect> = serde_json::from_str(json)?;
    Ok(raw.into_iter().filter_map(from_inspect).collect())
}

fn from_inspect(raw: Inspect) -> Option<Container> {
    let labels = raw.config.labels.unwrap_or_default();
    let project = labels.get(PROJECT)?.clone();
    let service = labels.get(SERVICE)?.clone();
    let number = labels.get(NUMBER).and_then(|n| n.parse().ok()).unwrap_or(0);
    let oneoff = labels
        .get(ONEOFF)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    // Prefer the project's default network; otherwise the first network (by name) with an address.
    let networks = raw
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default();
    let default_net = format!("{project}_default");
    let ip = networks
        .get(&default_net)
        .map(|n| n.ip_address.clone())
        .filter(|ip| !ip.is_empty())
        .or_else(|| {
            networks
                .values()
                .map(|n| n.ip_address.clone())
                .find(|ip| !ip.is_empty())
        });
    Some(Container {
        short_id: raw.id.chars().take(12).collect(),
        id: raw.id,
        name: raw.name.trim_start_matches('/').to_owned(),
        project,
        service,
        number,
        oneoff,
        state: raw.state.status,
        running: raw.state.running,
        health: raw.state.health.map(|h| h.status),
        hostname: raw.config.hostname,
        ip,
        started_at: raw.state.started_at,
        image: raw.config.image,
        image_id: raw.image,
        config_label: with_secrets(labels.get(CONFIG_LABEL), labels.get(VERSIONS_LABEL)),
        restart_key: with_secrets(labels.get(RESTART_KEY_LABEL), labels.get(VERSIONS_LABEL)),
    })
}

/// A configuration label followed by the secrets' versions label, when there is one. Both are
/// hex hashes and `name@version>target` lists: `+` appears in neither.
pub fn with_secrets(label: Option<&String>, secrets: Option<&String>) -> Option<String> {
    match (label, secrets) {
        (Some(label), Some(secrets)) => Some(format!("{label}+{secrets}")),
        (label, _) => label.cloned(),
    }
}

/// The configuration part of a label made by [`with_secrets`].
pub fn without_secrets(label: &str) -> &str {
    label.split_once('+').map_or(label, |(config, _)| config)
}

/// The containers of one service (`web`), cloned out of the stack's list.
pub fn of_service(containers: &[Container], service: &str) -> Vec<Container> {
    containers
        .iter()
        .filter(|c| c.service == service)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSPECT: &str = r#"[
      {"Id":"7ebb193cca6e0123456789abcdef0123456789abcdef0123456789abcdef0123","Name":"/h2dev-web-1",
       "Config":{"Hostname":"7ebb193cca6e","Image":"h2dev-web:dev1","Labels":{
          "com.docker.compose.project":"h2dev","com.docker.compose.service":"web",
          "com.docker.compose.container-number":"1","com.docker.compose.oneoff":"False",
          "com.docker.compose.project.config_files":"/a/compose.yaml,/b/override.yaml"}},
       "State":{"Status":"running","Running":true,"StartedAt":"2026-11-25T09:17:19.9Z","Health":{"Status":"healthy"}},
       "NetworkSettings":{"Networks":{"h2dev_default":{"IPAddress":"172.20.0.5"}}}},
      {"Id":"d56cbeef42850123456789abcdef0123456789abcdef0123456789abcdef0123","Name":"/h2dev-web-2",
       "Config":{"Hostname":"d56cbeef4285","Image":"h2dev-web:dev1","Labels":{
          "com.docker.compose.project":"h2dev","com.docker.compose.service":"web",
          "com.docker.compose.container-number":"2"}},
       "State":{"Status":"exited","Running":false,"StartedAt":"2026-11-25T09:18:00Z"},
       "NetworkSettings":{"Networks":{"h2dev_default":{"IPAddress":""}}}},
      {"Id":"ffff","Name":"/unrelated","Config":{"Hostname":"x","Image":"y","Labels":null},
       "State":{"Status":"running","Running":true}}
    ]"#;

    #[test]
    fn reads_labels_state_and_address() {
        let containers = parse_inspect(INSPECT).unwrap();
        assert_eq!(containers.len(), 2, "the unlabelled container is skipped");
        let web1 = &containers[0];
        assert_eq!(web1.short_id, "7ebb193cca6e");
        assert_eq!(web1.name, "h2dev-web-1");
        assert_eq!((web1.service.as_str(), web1.number), ("web", 1));
        assert!(web1.running && !web1.oneoff);
        assert_eq!(web1.health.as_deref(), Some("healthy"));
        assert_eq!(web1.ip.as_deref(), Some("172.20.0.5"));
        let web2 = &containers[1];
        assert!(!web2.running);
        assert_eq!(web2.ip, None);
        assert_eq!(web2.health, None);
        assert_eq!(web2.describe(), "h2dev-web-2 (container d56cbeef4285)");
    }

    #[test]
    fn the_secrets_versions_are_part_of_the_configuration_label() {
        let inspect = r#"[{"Id":"abc","Name":"/hits-lb-1","Config":{"Hostname":"abc",
            "Image":"lb","Labels":{"com.docker.compose.project":"hits",
            "com.docker.compose.service":"lb","org.provision.config":"cfg",
            "org.provision.restart-key":"rk","org.provision.secrets":"probe_token@v2>probe_token"}},
            "State":{"Status":"running","Running":true}}]"#;
        let lb = &parse_inspect(inspect).unwrap()[0];
        assert_eq!(
            lb.config_label.as_deref(),
            Some("cfg+probe_token@v2>probe_token")
        );
        assert_eq!(
            lb.restart_key.as_deref(),
            Some("rk+probe_token@v2>probe_token")
        );
        assert_eq!(without_secrets(lb.config_label.as_deref().unwrap()), "cfg");
        let plain = &parse_inspect(INSPECT).unwrap()[0];
        assert_eq!(plain.config_label, None);
    }
}
