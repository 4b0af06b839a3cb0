//! The lb's HTTPS certificate (`lb.tls`): generated once by provision (`self_signed: true`) or
//! read from the user's PEM files at apply. Either way it is kept as one secret of the store,
//! certificate and key concatenated (the single file HAProxy's `crt` reads), delivered to the lb
//! at `/run/secrets/lb.pem` by the inputs' override (`crate::inputs`), never through
//! `generated/`.
//!
//! A self-signed certificate is valid for localhost, 127.0.0.1 and `lb.tls.names`; it is made
//! again only when those names change (the store then gives it a new version, which recreates
//! the lb with it).

use std::path::Path;

use anyhow::Context as _;
use secrecy::ExposeSecret as _;
use x509_parser::extensions::GeneralName;

use crate::secrets::{SecretName, SecretStore, SecretValue, Stored};
use crate::spec::plan::{PlanTls, TlsSource};
use crate::spec::{self, model::SpecFile};

/// The store's name of the certificate and key.
pub const SECRET: &str = "lb_tls_pem";
/// The file name under /run/secrets in the lb container (blueprints/lb/_haproxy-common.j2).
pub const TARGET: &str = "lb.pem";
/// How long a self-signed certificate is valid: 397 days, the longest browsers accept.
const SELF_SIGNED_DAYS: i64 = 397;

/// The certificate as read, not yet stored: what apply delivers.
pub enum Certificate {
    /// Made (or kept) by provision for these names.
    SelfSigned { names: Vec<String> },
    /// The user's certificate and key, concatenated.
    Given(SecretValue),
}

/// What `status` and `doctor` show of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The end of its validity, seconds since the Unix epoch.
    pub not_after: i64,
    /// Its DNS names and IP addresses, as text.
    pub names: Vec<String>,
}

impl CertInfo {
    /// Whole days from `now` (Unix seconds) until it expires; negative once expired.
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }
}

/// `doctor` warns when the certificate has fewer days left than this.
pub const WARN_DAYS: i64 = 14;

impl CertInfo {
    /// The end of its validity in RFC 3339 (UTC, whole seconds).
    pub fn not_after_rfc3339(&self) -> String {
        let until = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(u64::try_from(self.not_after).unwrap_or(0));
        humantime::format_rfc3339_seconds(until).to_string()
    }

    /// One line for `status`: when it expires and for which names.
    pub fn describe(&self, now: i64) -> String {
        let days = self.days_left(now);
        format!(
            "certificate: expires {} ({}), for {}",
            self.not_after_rfc3339(),
            if days < 0 {
                "expired".to_owned()
            } else {
                format!("{days} day{} left", if days == 1 { "" } else { "s" })
            },
            self.names.join(", ")
        )
    }
}

/// Seconds since the Unix epoch, now.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub fn secret_name() -> SecretName {
    SECRET.parse().expect("a valid secret name")
}

/// The names a self-signed certificate is made for.
fn self_signed_names(extra: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    names.extend(extra.iter().cloned());
    names
}

/// Reads the certificate of `tls` (spec at `spec_path`): the user's files, checked to be a PEM
/// certificate and a PEM private key. Problems name the field and its line, never a value.
pub fn read(tls: &PlanTls, spec_path: &Path) -> anyhow::Result<Certificate> {
    match &tls.source {
        TlsSource::SelfSigned { names } => Ok(Certificate::SelfSigned {
            names: self_signed_names(names),
        }),
        TlsSource::Files { cert, key } => {
            let base = spec::base_dir(spec_path);
            let read_file = |field: &str, file: &str| -> anyhow::Result<String> {
                let problem = |why: String| spec::problem_at(spec_path, field, why);
                let path = SpecFile::try_from(file.to_owned())
                    .and_then(|checked| spec::inputs::inside(base, &checked))
                    .map_err(problem)?;
                std::fs::read_to_string(&path)
                    .map_err(|err| problem(format!("cannot read {file}: {err}")).into())
            };
            let cert_text = read_file("lb.tls.cert", cert)?;
            inspect(&cert_text).map_err(|err| {
                spec::problem_at(
                    spec_path,
                    "lb.tls.cert",
                    format!("{cert} is not a PEM certificate: {err:#}"),
                )
            })?;
            let key_text = read_file("lb.tls.key", key)?;
            if !key_text.contains("-----BEGIN") || !key_text.contains("PRIVATE KEY-----") {
                return Err(spec::problem_at(
                    spec_path,
                    "lb.tls.key",
                    format!("{key} is not a PEM private key"),
                )
                .into());
            }
            let joined = format!("{}\n{}\n", cert_text.trim_end(), key_text.trim_end());
            Ok(Certificate::Given(SecretValue::from(joined)))
        }
    }
}

impl Certificate {
    /// Stores the certificate in `store`: the user's as it is (an unchanged file keeps its
    /// version), a self-signed one made when none is stored or the stored one has other names.
    pub fn store(&self, store: &SecretStore) -> anyhow::Result<Stored> {
        let name = secret_name();
        match self {
            Certificate::Given(value) => store.put(&name, value),
            Certificate::SelfSigned { names } => {
                if let (Some(stored), Some(value)) = (store.get(&name)?, store.value(&name)?) {
                    let same = inspect(value.expose_secret())
                        .map(|info| sorted(info.names) == sorted(names.clone()))
                        .unwrap_or(false);
                    if same {
                        return Ok(stored);
                    }
                }
                store.put(&name, &self_signed(names)?)
            }
        }
    }
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names.dedup();
    names
}

/// A new self-signed certificate for `names` (DNS names or IP addresses) and its key, as PEM.
pub fn self_signed(names: &[String]) -> anyhow::Result<SecretValue> {
    let mut params =
        rcgen::CertificateParams::new(names.to_vec()).context("the certificate's names")?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "provision self-signed");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(SELF_SIGNED_DAYS);
    let key = rcgen::KeyPair::generate().context("generating the certificate's key")?;
    let cert = params
        .self_signed(&key)
        .context("signing the certificate")?;
    Ok(SecretValue::from(format!(
        "{}{}",
        cert.pem(),
        key.serialize_pem()
    )))
}

/// The first certificate of `pem` (certificate and key, or the certificate alone).
pub fn inspect(pem: &str) -> anyhow::Result<CertInfo> {
    let der = first_certificate_der(pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|err| anyhow::anyhow!("not an X.509 certificate: {err}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => names.push((*dns).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                        names.push(std::net::Ipv4Addr::from(v4).to_string());
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                        names.push(std::net::Ipv6Addr::from(v6).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        not_after: cert.validity().not_after.timestamp(),
        names,
    })
}

/// The serial number of the first certificate of `pem`, as upper-case hex without leading
/// zeros (how it is compared with what HAProxy serves, see `deploy::certificate`).
pub fn serial(pem: &str) -> anyhow::Result<String> {
    let der = first_certificate_der(pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|err| anyhow::anyhow!("not an X.509 certificate: {err}"))?;
    let hex: String = cert
        .tbs_certificate
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    Ok(normalise_serial(&hex))
}

/// A serial number's hex, upper case, without `:` separators or leading zeros.
pub fn normalise_serial(hex: &str) -> String {
    let digits: String = hex
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// The DER bytes of the first `CERTIFICATE` block of `pem`.
pub fn first_certificate_der(pem: &str) -> anyhow::Result<Vec<u8>> {
    for block in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|err| anyhow::anyhow!("not PEM: {err}"))?;
        if block.label == "CERTIFICATE" {
            return Ok(block.contents);
        }
    }
    anyhow::bail!("no CERTIFICATE block")
}

/// The stack's certificate as the store keeps it, if `project` has one.
pub fn stored_info(project: &str) -> anyhow::Result<Option<CertInfo>> {
    let store = SecretStore::of(project)?;
    match store.value(&secret_name())? {
        None => Ok(None),
        Some(value) => inspect(value.expose_secret()).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateDir;

    #[test]
    fn a_self_signed_certificate_names_localhost_and_the_spec_names() {
        let names = self_signed_names(&["shop.example.com".into()]);
        let pem = self_signed(&names).unwrap();
        let text = pem.expose_secret();
        assert!(text.contains("BEGIN CERTIFICATE") && text.contains("PRIVATE KEY"));
        let info = inspect(text).unwrap();
        assert_eq!(
            sorted(info.names.clone()),
            ["127.0.0.1", "localhost", "shop.example.com"]
        );
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!((395..=397).contains(&info.days_left(now)), "{info:?}");
    }

    #[test]
    fn described_with_days_left() {
        let info = CertInfo {
            not_after: 86_400 * 20,
            names: vec!["localhost".into()],
        };
        assert_eq!(
            info.describe(86_400 * 5),
            "certificate: expires 1970-01-21T00:00:00Z (15 days left), for localhost"
        );
        assert!(info.describe(86_400 * 21).contains("(expired)"));
    }

    #[test]
    fn kept_until_its_names_change() {
        let base = tempfile::tempdir().unwrap();
        let store = SecretStore::new(StateDir::under(base.path(), "hits"));
        let one = Certificate::SelfSigned {
            names: self_signed_names(&[]),
        };
        let first = one.store(&store).unwrap();
        assert_eq!(one.store(&store).unwrap(), first);
        let other = Certificate::SelfSigned {
            names: self_signed_names(&["a.example".into()]),
        };
        let second = other.store(&store).unwrap();
        assert_ne!(second.version, first.version);
        assert!(stored_info_in(&store)
            .names
            .contains(&"a.example".to_owned()));
    }

    fn stored_info_in(store: &SecretStore) -> CertInfo {
        inspect(
            store
                .value(&secret_name())
                .unwrap()
                .unwrap()
                .expose_secret(),
        )
        .unwrap()
    }

    #[test]
    fn given_files_are_checked_and_named_by_field() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("provision.yaml");
        let text = "project: p\nlb:\n  tls:\n    cert: c.pem\n    key: k.pem\n";
        std::fs::write(&spec, text).unwrap();
        std::fs::write(dir.path().join("c.pem"), "not a cert").unwrap();
        std::fs::write(dir.path().join("k.pem"), "x").unwrap();
        let plan = spec::from_text(text, &spec, dir.path()).unwrap();
        let tls = plan.lb.tls.unwrap();
        let said = format!("{:#}", read(&tls, &spec).err().unwrap());
        assert!(
            said.contains(":4:5: lb.tls.cert: c.pem is not a PEM"),
            "{said}"
        );
        let pem = self_signed(&self_signed_names(&[])).unwrap();
        let (cert, key) = pem
            .expose_secret()
            .split_at(pem.expose_secret().find("-----BEGIN PRIVATE KEY").unwrap());
        std::fs::write(dir.path().join("c.pem"), cert).unwrap();
        let said = format!("{:#}", read(&tls, &spec).err().unwrap());
        assert!(
            said.contains(":5:5: lb.tls.key: k.pem is not a PEM private key"),
            "{said}"
        );
        assert!(!said.contains("BEGIN"), "{said}");
        std::fs::write(dir.path().join("k.pem"), key).unwrap();
        let Certificate::Given(value) = read(&tls, &spec).unwrap() else {
            panic!("files give a given certificate")
        };
        assert!(value
            .expose_secret()
            .contains("CERTIFICATE-----\n-----BEGIN PRIVATE KEY"));
    }
}
