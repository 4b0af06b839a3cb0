//! HTTPS to the stack's own lb (`lb.tls`): the probes trust the stack's certificate, as kept in
//! the secret store, and nothing else (a self-signed certificate is in no system store, and a
//! probe of this stack must not pass on some other certificate for 127.0.0.1).
//!
//! The trust is process-wide, set when the endpoints of a plan with TLS are worked out
//! ([`super::Endpoints::of`]), so that every agent (the probes', the load generator's) uses it.
//! It only grows within a process: `apply` trusts the certificate the running lb serves before
//! it stores a new one, so that its `--load` client counts the requests the old certificate
//! answers during a swap as answered, as any client that trusts both would.

use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use secrecy::ExposeSecret as _;

use crate::lb_tls;
use crate::secrets::{SecretName, SecretStore};

static TRUSTED: RwLock<Option<Arc<rustls::ClientConfig>>> = RwLock::new(None);

/// The stack certificates trusted so far in this process (DER), each a root of `TRUSTED`.
static STACK_ROOTS: RwLock<Vec<Vec<u8>>> = RwLock::new(Vec::new());

/// A rustls configuration whose only root is the certificate in `pem`.
pub fn config_trusting(pem: &str) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    config_with_roots(&[lb_tls::first_certificate_der(pem)?])
}

/// A rustls configuration whose roots are exactly `ders`.
fn config_with_roots(ders: &[Vec<u8>]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for der in ders {
        roots
            .add(rustls::pki_types::CertificateDer::from(der.clone()))
            .context("the stack's certificate as a trust root")?;
    }
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
        let der = lb_tls::first_certificate_der(value.expose_secret())?;
        let mut roots = STACK_ROOTS
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !roots.contains(&der) {
            roots.push(der);
        }
        set_trust(config_with_roots(&roots)?);
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

    /// A TLS handshake in memory between a client with `client` and a server presenting the
    /// self-signed certificate and key in `pem` for `name`.
    fn handshake(
        client: Arc<rustls::ClientConfig>,
        pem: &str,
        name: &str,
    ) -> Result<(), rustls::Error> {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        let mut key = None;
        for block in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
            let block = block.unwrap();
            if block.label.ends_with("PRIVATE KEY") {
                key = Some(PrivateKeyDer::try_from(block.contents).unwrap());
            }
        }
        let cert = CertificateDer::from(lb_tls::first_certificate_der(pem).unwrap());
        let server = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key.expect("a key in the PEM"))
            .unwrap();
        let mut server = rustls::ServerConnection::new(Arc::new(server)).unwrap();
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let mut client = rustls::ClientConnection::new(client, name).unwrap();
        for _ in 0..10 {
            let mut bytes = Vec::new();
            client.write_tls(&mut bytes).unwrap();
            server.read_tls(&mut bytes.as_slice()).unwrap();
            server.process_new_packets()?;
            let mut bytes = Vec::new();
            server.write_tls(&mut bytes).unwrap();
            client.read_tls(&mut bytes.as_slice()).unwrap();
            client.process_new_packets()?;
            if !client.is_handshaking() {
                return Ok(());
            }
        }
        panic!("the handshake did not finish")
    }

    #[test]
    fn a_config_of_several_roots_accepts_each_and_nothing_else() {
        let one = lb_tls::self_signed(&["one.example".into()]).unwrap();
        let two = lb_tls::self_signed(&["two.example".into()]).unwrap();
        let other = lb_tls::self_signed(&["one.example".into()]).unwrap();
        let ders =
            [&one, &two].map(|pem| lb_tls::first_certificate_der(pem.expose_secret()).unwrap());
        let config = config_with_roots(&ders).unwrap();
        handshake(config.clone(), one.expose_secret(), "one.example").unwrap();
        handshake(config.clone(), two.expose_secret(), "two.example").unwrap();
        // A certificate for the same name that is not one of the roots is refused.
        assert!(handshake(config, other.expose_secret(), "one.example").is_err());
    }

    #[test]
    fn trusts_a_stack_certificate_and_refuses_garbage() {
        let pem = lb_tls::self_signed(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        let config = config_trusting(pem.expose_secret()).unwrap();
        assert!(config.alpn_protocols.is_empty());
        assert!(config_trusting("no certificate here").is_err());
    }
}
