//! How secrets reach containers: a second Compose file, written to the state directory and passed
//! after `generated/`'s (`docker compose -f generated/compose.yaml -f <state>/secrets.compose.yaml`,
//! `docker stack deploy -c generated/stack.yaml -c <state>/secrets.stack.yaml`). `generated/`
//! stays free of secrets and of this machine's paths; the override names each secret's file by
//! its absolute path and each Swarm secret by its version, so a new value is a new Swarm secret
//! (they are immutable) and a changed service definition (the service rolls).
//!
//! Containers read a secret at `/run/secrets/<target>`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{SecretName, Stored};

/// Which services read which secrets, and under what file name.
#[derive(Debug, Clone, Default)]
pub struct Deliveries {
    /// service → (secret, file name under /run/secrets).
    by_service: BTreeMap<String, Vec<(Stored, String)>>,
}

/// The target the override is for: Swarm honours a secret file's mode in the task, Compose
/// bind-mounts the file as it is and warns about a mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Compose,
    Swarm,
}

/// The stack file version of blueprints/stack.yaml.j2: the docker CLI's stack loader refuses
/// files of different versions in one deploy ("version mismatched between two composefiles").
pub const SWARM_FILE_VERSION: &str = "3.12";

#[derive(Serialize)]
struct Override {
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'static str>,
    services: BTreeMap<String, ServiceSecrets>,
    secrets: BTreeMap<String, TopLevel>,
}

#[derive(Serialize)]
struct ServiceSecrets {
    secrets: Vec<Mount>,
    labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Mount {
    source: String,
    target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<u32>,
}

#[derive(Serialize)]
struct TopLevel {
    file: String,
    name: String,
}

/// The label carrying the versions of a service's secrets: when it changes the service's
/// definition changes, and Compose recreates (Swarm updates) its containers.
pub const VERSIONS_LABEL: &str = "org.provision.secrets";

impl Deliveries {
    /// `service` reads `secret` at `/run/secrets/<target>`.
    pub fn add(&mut self, service: &str, secret: Stored, target: impl Into<String>) {
        self.by_service
            .entry(service.to_owned())
            .or_default()
            .push((secret, target.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.by_service.is_empty()
    }

    /// The versions label of `service`: its secrets' names and versions, or None without secrets.
    pub fn versions_of(&self, service: &str) -> Option<String> {
        let secrets = self.by_service.get(service)?;
        let mut parts: Vec<String> = secrets
            .iter()
            .map(|(s, target)| format!("{}@{}>{target}", s.name, s.version))
            .collect();
        parts.sort();
        Some(parts.join(","))
    }

    /// The names of the secrets `service` reads.
    pub fn secrets_of(&self, service: &str) -> Vec<&SecretName> {
        self.by_service
            .get(service)
            .map(|v| v.iter().map(|(s, _)| &s.name).collect())
            .unwrap_or_default()
    }

    /// The override file's text for `project`.
    pub fn override_yaml(&self, project: &str, flavour: Flavour) -> String {
        let mut out = Override {
            version: (flavour == Flavour::Swarm).then_some(SWARM_FILE_VERSION),
            services: BTreeMap::new(),
            secrets: BTreeMap::new(),
        };
        for (service, secrets) in &self.by_service {
            let mounts = secrets
                .iter()
                .map(|(stored, target)| Mount {
                    source: stored.name.to_string(),
                    target: target.clone(),
                    mode: (flavour == Flavour::Swarm).then_some(0o444),
                })
                .collect();
            let labels = BTreeMap::from([(
                VERSIONS_LABEL.to_owned(),
                self.versions_of(service).expect("the service has secrets"),
            )]);
            out.services.insert(
                service.clone(),
                ServiceSecrets {
                    secrets: mounts,
                    labels,
                },
            );
            for (stored, _) in secrets {
                out.secrets.insert(
                    stored.name.to_string(),
                    TopLevel {
                        file: stored.file.display().to_string(),
                        name: stored.versioned_name(project),
                    },
                );
            }
        }
        let body = serde_yaml::to_string(&out).expect("the override serializes");
        format!(
            "# Written by provision for this machine: the stack's secrets, by path (never by \
             value).\n# Passed to docker after generated/'s file. Do not commit or edit.\n{body}"
        )
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn stored(name: &str, version: &str) -> Stored {
        Stored {
            name: name.parse().unwrap(),
            version: version.into(),
            file: PathBuf::from(format!(
                "/home/u/.local/state/provision/hits/secrets/{name}"
            )),
        }
    }

    #[test]
    fn the_override_names_files_and_versioned_secrets() {
        let mut d = Deliveries::default();
        d.add(
            "redis",
            stored("redis_password", "aaa111"),
            "redis_password",
        );
        d.add("web", stored("redis_password", "aaa111"), "redis_password");
        d.add("web", stored("api_key", "bbb222"), "API_KEY");
        let yaml = d.override_yaml("hits", Flavour::Swarm);
        let doc: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(
            doc["secrets"]["redis_password"]["name"].as_str(),
            Some("hits_redis_password_aaa111")
        );
        assert_eq!(
            doc["secrets"]["api_key"]["file"].as_str(),
            Some("/home/u/.local/state/provision/hits/secrets/api_key")
        );
        assert_eq!(
            doc["services"]["web"]["secrets"][1]["target"].as_str(),
            Some("API_KEY")
        );
        assert_eq!(
            doc["services"]["web"]["secrets"][1]["mode"].as_u64(),
            Some(0o444)
        );
        assert_eq!(
            doc["services"]["web"]["labels"][VERSIONS_LABEL].as_str(),
            Some("api_key@bbb222>API_KEY,redis_password@aaa111>redis_password")
        );
    }

    #[test]
    fn compose_gets_no_mode() {
        let mut d = Deliveries::default();
        d.add(
            "redis",
            stored("redis_password", "aaa111"),
            "redis_password",
        );
        let yaml = d.override_yaml("hits", Flavour::Compose);
        assert!(!yaml.contains("mode"), "{yaml}");
        assert!(!yaml.contains("version:"), "{yaml}");
    }

    #[test]
    fn the_swarm_override_has_the_stack_files_version() {
        let mut d = Deliveries::default();
        d.add(
            "redis",
            stored("redis_password", "aaa111"),
            "redis_password",
        );
        let yaml = d.override_yaml("hits", Flavour::Swarm);
        assert!(
            yaml.contains(&format!("version: '{SWARM_FILE_VERSION}'")),
            "{yaml}"
        );
        let blueprint = include_str!("../../blueprints/stack.yaml.j2");
        assert!(
            blueprint.contains(&format!("\nversion: \"{SWARM_FILE_VERSION}\"\n")),
            "stack.yaml.j2 has another version than the Swarm override"
        );
    }

    #[test]
    fn a_new_version_changes_the_label() {
        let mut a = Deliveries::default();
        a.add("web", stored("api_key", "v1"), "API_KEY");
        let mut b = Deliveries::default();
        b.add("web", stored("api_key", "v2"), "API_KEY");
        assert_ne!(a.versions_of("web"), b.versions_of("web"));
        assert_eq!(a.versions_of("lb"), None);
    }
}
