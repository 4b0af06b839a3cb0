//! HTTPS on the lb, end to end (`lb.tls`): one docker-dns stack with 2 replicas and a
//! self-signed certificate on the real engine.
//!
//! 1. `provision verify --scale 4 --load 100` over HTTPS (verify trusts the stack's own
//!    certificate): passes, 0 failed requests;
//! 2. with `redirect: true` plain HTTP answers 301 to the same path on https://…:<tls port>;
//! 3. a certificate swap (`lb.tls.names` changed → a new certificate, a new secret version) applied
//!    while the test's own client sends load over HTTPS; afterwards the lb serves the new
//!    certificate, from the same lb container (swapped in place through HAProxy's runtime API),
//!    and no request failed (see docs/your-service.md "HTTPS").
//!
//! Same switches as the other e2e tests (see e2e.rs): `PROVISION_E2E=require|skip`.

use std::path::PathBuf;
use std::sync::Arc;

use provision::probe::load::{self, LoadOptions};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::support::engine::{rig_image, start};
use crate::support::harness::Project;
use crate::support::stack::{Stack, APPLY_TIMEOUT, SHORT_TIMEOUT, VERIFY_TIMEOUT};

const PROJECT: &str = "provision-e2e-tls";
const LB: u16 = 28880;
const TLS: u16 = 28881;
const STATS: u16 = 28884;
const RATE: f64 = 50.0;

fn spec(names: &str) -> String {
    format!(
        "# end-to-end test stack: HTTPS on the lb\n\
         project: {PROJECT}\n\
         discovery: docker-dns\n\
         images:\n  base: {base}\n\
         web:\n  replicas: 2\n\
         lb:\n  port: {LB}\n  stats_port: {STATS}\n  tls:\n    self_signed: true\n    names: [{names}]\n    port: {TLS}\n    redirect: true\n    hsts: 600\n",
        base = rig_image("debian:trixie"),
    )
}

fn pem_file(project: &Project) -> PathBuf {
    project.file(&format!(".state/provision/{PROJECT}/secrets/lb_tls_pem"))
}

fn cert_der(project: &Project) -> Vec<u8> {
    let pem = std::fs::read_to_string(pem_file(project)).expect("the stored certificate");
    provision::lb_tls::first_certificate_der(&pem).unwrap()
}

/// Accepts the certificates the stack has served (`known`) or stores now (re-read at each
/// handshake): the client that keeps sending while the certificate is swapped. Signatures are
/// still checked.
#[derive(Debug)]
struct StackCerts {
    known: Vec<Vec<u8>>,
    store: PathBuf,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for StackCerts {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let current = std::fs::read_to_string(&self.store)
            .ok()
            .and_then(|pem| provision::lb_tls::first_certificate_der(&pem).ok());
        let presented = end_entity.as_ref();
        if self.known.iter().any(|k| k == presented) || current.as_deref() == Some(presented) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the stack's certificate".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The first object in `value` (depth first) that `wanted` accepts.
fn find_object<'v>(
    value: &'v serde_json::Value,
    wanted: &dyn Fn(&serde_json::Map<String, serde_json::Value>) -> bool,
) -> Option<&'v serde_json::Value> {
    match value {
        serde_json::Value::Object(map) if wanted(map) => Some(value),
        serde_json::Value::Object(map) => map.values().find_map(|v| find_object(v, wanted)),
        serde_json::Value::Array(items) => items.iter().find_map(|v| find_object(v, wanted)),
        _ => None,
    }
}

/// The end-entity certificate the lb serves now.
fn served_der(config: Arc<rustls::ClientConfig>) -> Vec<u8> {
    use std::io::Write as _;
    let mut conn =
        rustls::ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", TLS)).unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    tls.write_all(b"HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    tls.flush().unwrap();
    conn.peer_certificates().unwrap()[0].as_ref().to_vec()
}

#[test]
fn e2e_tls_verify_redirect_and_certificate_swap() {
    let images = [rig_image("debian:trixie")];
    let Some(_engine) = start(&images) else {
        return;
    };
    let project = Project::new();
    project.write("provision.yaml", &spec("one.example"));
    let stack = Stack::new(PROJECT);

    stack.step("provision apply (TLS on)");
    project.run(&["apply"], &[], APPLY_TIMEOUT).expect_success();
    let generated = project.read("generated/lb/haproxy.cfg");
    assert!(
        generated.contains("ssl crt /run/haproxy/lb.pem"),
        "{generated}"
    );
    assert!(
        !std::fs::read_dir(project.file("generated"))
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().contains("pem")),
        "no certificate file in generated/"
    );
    // `status --json` carries the certificate's expiry (schema-checked): a fresh self-signed one
    // has its whole validity left, for the spec's name.
    let ran = project.run(&["status", "--json"], &[], SHORT_TIMEOUT);
    ran.expect_success();
    let status = crate::json_schema::assert_valid("status", &ran.stdout);
    let certificate = &status["certificate"];
    assert_eq!(certificate["state"], "stored", "{ran}");
    let days = certificate["days_left"].as_i64().unwrap_or(-1);
    assert!((395..=397).contains(&days), "days left: {days}\n{ran}");
    assert!(
        certificate["names"]
            .as_array()
            .is_some_and(|names| names.iter().any(|n| n == "one.example")),
        "{ran}"
    );

    // Scaling to 4 keeps verify's load going while two replicas start and get routed: seconds of
    // requests at 100/s over HTTPS, not the fraction of a second a check of the stack takes.
    stack.step("provision verify --scale 4 --load 100 over HTTPS");
    let verified = project.run(
        &["verify", "--scale", "4", "--load", "100", "--json"],
        &[],
        VERIFY_TIMEOUT,
    );
    verified.expect_success();
    let answer: serde_json::Value = serde_json::from_str(&verified.stdout).expect("verify's JSON");
    let url = format!("https://127.0.0.1:{TLS}/");
    let load = find_object(&answer, &|o| {
        o.get("url").and_then(|u| u.as_str()) == Some(url.as_str())
    })
    .unwrap_or_else(|| panic!("no load report for {url}\n{verified}"));
    assert_eq!(load["failed"], 0, "{load:#}");
    assert!(load["sent"].as_u64().unwrap_or(0) >= 100, "{load:#}");
    eprintln!(
        "verify --scale 4 --load 100 over HTTPS: {} sent, {} failed",
        load["sent"], load["failed"]
    );

    stack.step("plain HTTP answers 301 to https");
    let plain = ureq::AgentBuilder::new()
        .redirects(0)
        .build()
        .get(&format!("http://127.0.0.1:{LB}/some/path?x=1"))
        .set("Host", &format!("localhost:{LB}"))
        .call();
    let response = match plain {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(err) => panic!("plain HTTP: {err}"),
    };
    assert_eq!(response.status(), 301);
    assert_eq!(
        response.header("location"),
        Some(format!("https://localhost:{TLS}/some/path?x=1").as_str())
    );

    stack.step("certificate swap (new lb.tls.names) under load from the test's client");
    let old = cert_der(&project);
    let builder = rustls::ClientConfig::builder();
    let provider = builder.crypto_provider().clone();
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(StackCerts {
            known: vec![old.clone()],
            store: pem_file(&project),
            provider,
        }))
        .with_no_client_auth();
    let config = Arc::new(config);
    provision::probe::tls::set_trust(config.clone());
    let lb_before: Vec<String> = stack
        .containers()
        .into_iter()
        .filter(|c| c.service == "lb")
        .map(|c| c.id)
        .collect();
    let load = load::start(LoadOptions::new(format!("https://127.0.0.1:{TLS}/"), RATE)).unwrap();
    project.write("provision.yaml", &spec("two.example"));
    let swapped = project.run(&["apply"], &[], APPLY_TIMEOUT);
    swapped.expect_success();
    // Requests after the swap too, through the new certificate.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let report = load.stop();
    assert!(
        swapped.stderr.contains("swapped in place"),
        "apply did not swap the certificate in place\n{swapped}"
    );
    let lb_after: Vec<String> = stack
        .containers()
        .into_iter()
        .filter(|c| c.service == "lb")
        .map(|c| c.id)
        .collect();
    assert_eq!(lb_before, lb_after, "the lb container was replaced");
    let new = cert_der(&project);
    assert_ne!(new, old, "a new certificate is stored");
    assert_eq!(served_der(config), new, "the lb serves the new certificate");
    eprintln!(
        "certificate swap under {RATE}/s: {} sent, {} failed",
        report.sent, report.failed
    );
    assert!(report.sent > 0, "{report:#?}");
    assert_eq!(
        report.failed, 0,
        "requests failed across the swap: {report:#?}"
    );
    let after = project.run(&["verify"], &[], SHORT_TIMEOUT);
    after.expect_success();
}
