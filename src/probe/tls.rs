//! HTTPS to the stack's own lb (`lb.tls`): the probes trust the stack's certificate, as kept in
//! the secret store, and nothing else (a self-signed certificate is in no system store, and a
//! probe of this stack must not pass on some other certificate for 127.0.0.1).
//!
//! The trust is process-wide, set when the endpoints of a plan with TLS are worked out
//! ([`super::Endpoints::of`]), so that every agent (the probes', the load generator's) uses it.

use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use secrecy::ExposeSecret as _;

use crate::lb_tls;
use crate::secrets::{SecretName, SecretStore};

static TRUSTED: RwLock<Option<Arc<rustls::ClientConfig>>> = RwLock::new(None);

/// A rustls configuration whose only root is the certificate in `pem`.
pub fn config_trusting(pem: &str) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let der = lb_tls::first_certificate_der(pem)?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(der))
        .context("the stack's certificate as a trust root")?;
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Trusts the certificate `project` stores for its lb, from now on in this process. Without
/// one (the stack was never applied with TLS) nothing is trusted and HTTPS probes fail, saying
/// why.
pub fn trust_stack(project: &str) -> anyhow::Result<()> {
    let store = SecretStore::of(project)?;
    let name: SecretName = lb_tls::SECRET.parse().expect("a valid secret name");
    if let Some(value) = store.value(&name)? {
        set_trust(config_trusting(value.expose_secret())?);
    }
    Ok(())
}

/// Every HTTPS agent made from now on in this process uses `config` (a test's own client, or
/// [`trust_stack`]'s).
pub fn set_trust(config: Arc<rustls::ClientConfig>) {
    *TRUSTED
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(config);
}

/// `builder` with the stack's trust, when set.
pub fn with_trust(builder: ureq::AgentBuilder) -> ureq::AgentBuilder {
    let trusted = TRUSTED
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    match trusted {
        Some(config) => builder.tls_config(config),
        None => builder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusts_a_stack_certificate_and_refuses_garbage() {
        let pem = lb_tls::self_signed(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        let config = config_trusting(pem.expose_secret()).unwrap();
        assert!(config.alpn_protocols.is_empty());
        assert!(config_trusting("no certificate here").is_err());
    }
}
