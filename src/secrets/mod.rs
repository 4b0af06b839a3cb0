//! The stack's secrets: values generated for the stack itself (redis' password, consul's tokens,
//! the probe token) and values the spec points at (the app's API keys). They live in the project's
//! state directory, never in `generated/`, never in output.
//!
//! Layout, under `<state>/secrets/` (0700):
//! - `<name>`: the value. Mode 0444: Compose hands a secret to a container as a bind mount of this
//!   file and cannot change its owner or mode outside Swarm (docker/compose#9648), so a container
//!   process whose uid is not ours must be able to read it; the 0700 directory is what keeps every
//!   other user of this machine out. Swarm's own default for a secret in a task is 0444 as well.
//! - `versions.json` (0600): a random version per secret, new each time its value changes. Swarm
//!   secrets cannot be updated in place, so each version is a new Swarm secret named after it;
//!   and a version that changed is what makes the services that read the secret roll. A version
//!   is random, not a hash of the value: it says nothing about the value.
//!
//! A value is held as [`SecretValue`] (secrecy's `SecretString`): its `Debug` is redacted and it
//! is zeroed when dropped; reading it takes an explicit `expose_secret()`.

mod delivery;
mod name;
pub mod stack;

use std::collections::BTreeMap;

use anyhow::Context as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use crate::state::StateDir;

pub use delivery::{Deliveries, Flavour, VERSIONS_LABEL};
pub use name::SecretName;

/// A secret's value: redacted in `Debug`, zeroed on drop.
pub type SecretValue = SecretString;

/// The directory under the state directory.
const DIR: &str = "secrets";
const VERSIONS: &str = "versions.json";

/// How a generated secret looks: what the component that reads it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generated {
    /// 32 random bytes as 64 lowercase hex digits: passwords and tokens.
    Token,
    /// A random (v4) UUID: consul ACL tokens, whose SecretID must be one.
    Uuid,
    /// 32 random bytes in base64: consul's gossip encryption key (`encrypt`).
    GossipKey,
    /// TLS for consul's servers, in PEM: a certificate and its key, then the certificate of
    /// the authority that signed it (made for this secret and dropped: its key is kept
    /// nowhere). Each server presents the certificate and accepts Raft and RPC only from a
    /// peer that presents one the authority signed.
    ConsulServerTls,
}

impl Generated {
    fn fresh(self) -> anyhow::Result<SecretValue> {
        let text = match self {
            Generated::Token => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes)
                    .map_err(|err| anyhow::anyhow!("no randomness from the OS: {err}"))?;
                bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
            }
            Generated::Uuid => uuid::Uuid::new_v4().to_string(),
            Generated::GossipKey => {
                use base64::Engine as _;
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes)
                    .map_err(|err| anyhow::anyhow!("no randomness from the OS: {err}"))?;
                base64::engine::general_purpose::STANDARD.encode(bytes)
            }
            Generated::ConsulServerTls => consul_server_tls()?,
        };
        Ok(SecretValue::from(text))
    }
}

/// A certificate authority made for the occasion, and a certificate for consul's servers it
/// signs (ECDSA P-256, ten years, for TLS servers and clients alike: a server is both to its
/// peers). consul 1.8's own `tls cert create` reads only SEC1 keys, and rcgen writes PKCS#8, so
/// provision signs the servers' certificate itself; the TLS stack reads PKCS#8. The servers
/// share the certificate, so none needs the authority's key, which is dropped here.
fn consul_server_tls() -> anyhow::Result<String> {
    use anyhow::Context as _;
    let now = time::OffsetDateTime::now_utc();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())
        .context("the certificate authority's parameters")?;
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "provision consul CA");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = now - time::Duration::days(1);
    ca.not_after = now + time::Duration::days(3650);
    let ca_key = rcgen::KeyPair::generate().context("generating the authority's key")?;
    let authority = rcgen::CertifiedIssuer::self_signed(ca, ca_key)
        .context("signing the certificate authority")?;

    let mut server = rcgen::CertificateParams::new(vec!["server.consul".to_owned()])
        .context("the servers' certificate's parameters")?;
    server
        .distinguished_name
        .push(rcgen::DnType::CommonName, "provision consul server");
    server.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    server.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    server.not_before = now - time::Duration::days(1);
    server.not_after = now + time::Duration::days(3650);
    let key = rcgen::KeyPair::generate().context("generating the servers' key")?;
    let cert = server
        .signed_by(&key, &authority)
        .context("signing the servers' certificate")?;
    Ok(format!(
        "{}{}{}",
        cert.pem(),
        key.serialize_pem(),
        authority.pem()
    ))
}

/// One stored secret: its name, the version of its current value, and the file that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub name: SecretName,
    pub version: String,
    pub file: std::path::PathBuf,
}

impl Stored {
    /// The Swarm secret (and Compose secret `name:`) of this version: `<project>_<name>_<version>`.
    pub fn versioned_name(&self, project: &str) -> String {
        format!("{project}_{}_{}", self.name, self.version)
    }
}

/// The secrets of one project.
#[derive(Debug, Clone)]
pub struct SecretStore {
    state: StateDir,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Versions {
    #[serde(flatten)]
    by_name: BTreeMap<String, String>,
}

impl SecretStore {
    pub fn new(state: StateDir) -> Self {
        SecretStore { state }
    }

    /// The state directory the store keeps its files in.
    pub fn state_dir(&self) -> &StateDir {
        &self.state
    }

    /// The store of `project` in the user's state directory.
    pub fn of(project: &str) -> anyhow::Result<Self> {
        Ok(SecretStore::new(StateDir::of(project)?))
    }

    fn value_path(name: &SecretName) -> String {
        format!("{DIR}/{name}")
    }

    fn versions(&self) -> anyhow::Result<Versions> {
        match self.state.read(format!("{DIR}/{VERSIONS}"))? {
            None => Ok(Versions::default()),
            Some(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "reading {}",
                    self.state.join(format!("{DIR}/{VERSIONS}")).display()
                )
            }),
        }
    }

    fn stored(&self, name: &SecretName, version: String) -> Stored {
        Stored {
            name: name.clone(),
            version,
            file: self.state.join(Self::value_path(name)),
        }
    }

    /// The secret `name` if it is stored.
    pub fn get(&self, name: &SecretName) -> anyhow::Result<Option<Stored>> {
        let versions = self.versions()?;
        let present = self.state.read(Self::value_path(name))?.is_some();
        Ok(match (present, versions.by_name.get(name.as_str())) {
            (true, Some(version)) => Some(self.stored(name, version.clone())),
            _ => None,
        })
    }

    /// The value of `name`, if stored.
    pub fn value(&self, name: &SecretName) -> anyhow::Result<Option<SecretValue>> {
        let Some(bytes) = self.state.read(Self::value_path(name))? else {
            return Ok(None);
        };
        let text = String::from_utf8(bytes)
            .with_context(|| format!("the secret {name} is not UTF-8 text"))?;
        Ok(Some(SecretValue::from(text)))
    }

    /// The secret `name`, generated the first time it is asked for; the same value afterwards.
    pub fn ensure_generated(&self, name: &SecretName, kind: Generated) -> anyhow::Result<Stored> {
        if let Some(stored) = self.get(name)? {
            return Ok(stored);
        }
        self.put(name, &kind.fresh()?)
    }

    /// A new value for the generated secret `name` (rotation).
    pub fn rotate(&self, name: &SecretName, kind: Generated) -> anyhow::Result<Stored> {
        self.put(name, &kind.fresh()?)
    }

    /// Stores `value` as `name`. An unchanged value keeps its version (nothing rolls); a new one
    /// gets a new version.
    pub fn put(&self, name: &SecretName, value: &SecretValue) -> anyhow::Result<Stored> {
        if let (Some(stored), Some(current)) = (self.get(name)?, self.value(name)?) {
            if current.expose_secret() == value.expose_secret() {
                return Ok(stored);
            }
        }
        self.state.write(
            Self::value_path(name),
            value.expose_secret().as_bytes(),
            0o444,
        )?;
        let mut versions = self.versions()?;
        let version = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        versions
            .by_name
            .insert(name.as_str().to_owned(), version.clone());
        let text = serde_json::to_vec_pretty(&versions).expect("a map of strings serializes");
        self.state
            .write(format!("{DIR}/{VERSIONS}"), &text, 0o600)?;
        Ok(self.stored(name, version))
    }

    /// Every stored secret, by name.
    pub fn list(&self) -> anyhow::Result<Vec<Stored>> {
        let versions = self.versions()?;
        let mut out = Vec::new();
        for (name, version) in versions.by_name {
            let name: SecretName = name
                .parse()
                .with_context(|| format!("a secret name in {VERSIONS}"))?;
            if self.state.read(Self::value_path(&name))?.is_some() {
                out.push(self.stored(&name, version));
            }
        }
        Ok(out)
    }

    /// Forgets `name` (its file and version).
    pub fn remove(&self, name: &SecretName) -> anyhow::Result<()> {
        self.state.remove(Self::value_path(name))?;
        let mut versions = self.versions()?;
        if versions.by_name.remove(name.as_str()).is_some() {
            let text = serde_json::to_vec_pretty(&versions).expect("a map of strings serializes");
            self.state
                .write(format!("{DIR}/{VERSIONS}"), &text, 0o600)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;

    #[test]
    fn consul_server_tls_is_a_certificate_its_key_and_the_authority() {
        let bundle = Generated::ConsulServerTls.fresh().unwrap();
        let text = bundle.expose_secret();
        let kinds: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("-----BEGIN "))
            .collect();
        assert_eq!(
            kinds,
            ["CERTIFICATE-----", "PRIVATE KEY-----", "CERTIFICATE-----"]
        );
        let other = Generated::ConsulServerTls.fresh().unwrap();
        assert_ne!(text, other.expose_secret(), "a new authority each time");
    }

    #[test]
    fn a_gossip_key_is_32_bytes_in_base64() {
        use base64::Engine as _;
        let key = Generated::GossipKey.fresh().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key.expose_secret())
            .unwrap();
        assert_eq!(bytes.len(), 32);
    }

    fn store() -> (tempfile::TempDir, SecretStore) {
        let base = tempfile::tempdir().unwrap();
        let store = SecretStore::new(StateDir::under(base.path(), "hits"));
        (base, store)
    }

    fn name(text: &str) -> SecretName {
        text.parse().unwrap()
    }

    #[test]
    fn a_generated_secret_is_made_once_and_kept() {
        let (_base, store) = store();
        let first = store
            .ensure_generated(&name("redis_password"), Generated::Token)
            .unwrap();
        let again = store
            .ensure_generated(&name("redis_password"), Generated::Token)
            .unwrap();
        assert_eq!(first, again);
        let value = store.value(&name("redis_password")).unwrap().unwrap();
        assert_eq!(value.expose_secret().len(), 64);
        assert!(value.expose_secret().chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            std::fs::metadata(&first.file).unwrap().mode() & 0o777,
            0o444
        );
        assert_eq!(
            std::fs::metadata(first.file.parent().unwrap())
                .unwrap()
                .mode()
                & 0o777,
            0o700
        );
    }

    #[test]
    fn rotation_changes_value_and_version() {
        let (_base, store) = store();
        let n = name("probe_token");
        let first = store.ensure_generated(&n, Generated::Token).unwrap();
        let before = store.value(&n).unwrap().unwrap();
        let rotated = store.rotate(&n, Generated::Token).unwrap();
        let after = store.value(&n).unwrap().unwrap();
        assert_ne!(first.version, rotated.version);
        assert_ne!(before.expose_secret(), after.expose_secret());
    }

    #[test]
    fn the_same_value_keeps_its_version_and_a_new_one_gets_another() {
        let (_base, store) = store();
        let n = name("api_key");
        let first = store.put(&n, &SecretValue::from("one")).unwrap();
        let same = store.put(&n, &SecretValue::from("one")).unwrap();
        let other = store.put(&n, &SecretValue::from("two")).unwrap();
        assert_eq!(first.version, same.version);
        assert_ne!(first.version, other.version);
        assert!(!other.versioned_name("hits").contains("two"));
        assert!(other.versioned_name("hits").starts_with("hits_api_key_"));
    }

    #[test]
    fn uuids_for_consul_tokens() {
        let (_base, store) = store();
        let n = name("consul_agent_token");
        store.ensure_generated(&n, Generated::Uuid).unwrap();
        let value = store.value(&n).unwrap().unwrap();
        assert!(uuid::Uuid::parse_str(value.expose_secret()).is_ok());
    }

    #[test]
    fn list_and_remove() {
        let (_base, store) = store();
        store.put(&name("a"), &SecretValue::from("1")).unwrap();
        store.put(&name("b"), &SecretValue::from("2")).unwrap();
        let names: Vec<String> = store
            .list()
            .unwrap()
            .into_iter()
            .map(|s| s.name.to_string())
            .collect();
        assert_eq!(names, ["a", "b"]);
        store.remove(&name("a")).unwrap();
        assert_eq!(store.list().unwrap().len(), 1);
        assert!(store.get(&name("a")).unwrap().is_none());
    }

    #[test]
    fn debug_output_never_shows_a_value() {
        let value = SecretValue::from("hunter2-very-secret");
        assert!(!format!("{value:?}").contains("hunter2"));
    }
}
