//! A new HTTPS certificate for a running lb, swapped in place (Compose): no container restarts,
//! no connection is dropped.
//!
//! HAProxy reads the certificate from `/run/haproxy/lb.pem`, which the lb's entrypoint copies
//! from the secret Compose mounts (`/run/secrets/lb.pem`) when the container starts. When the
//! stored certificate (`lb_tls`) differs from the one HAProxy serves (by serial number), provision
//! writes the new one over that copy (so a later reload in place reads it too) and hands it to
//! the running HAProxy through its runtime API: `set ssl cert` then `commit ssl cert`, which
//! replace the certificate for new handshakes while open connections go on (HAProxy's
//! management guide, "set ssl cert"). The PEM travels on standard input only: it holds the key.
//!
//! On a Swarm the certificate is a Swarm secret, immutable: a new one is a service update.

use std::time::Duration;

use anyhow::Context as _;
use secrecy::ExposeSecret as _;

use crate::docker::Docker;
use crate::lb_tls;
use crate::probe::lbadmin::{self, ADMIN_SOCKET};
use crate::secrets::SecretStore;

/// Where HAProxy reads the certificate (blueprints/lb/_haproxy-common.j2, Dockerfile.j2).
pub const LIVE: &str = "/run/haproxy/lb.pem";

/// Whether the running lb got the stored certificate now (false: it already served it, or the
/// stack has none).
pub fn swap_if_changed(docker: &Docker, project: &str, lb_container: &str) -> anyhow::Result<bool> {
    let store = SecretStore::of(project)?;
    let Some(pem) = store.value(&lb_tls::secret_name())? else {
        return Ok(false);
    };
    let wanted = lb_tls::serial(pem.expose_secret())?;
    let shown = lbadmin::query(docker, lb_container, &format!("show ssl cert {LIVE}"))?;
    if served_serial(&shown).is_some_and(|served| served == wanted) {
        return Ok(false);
    }
    docker
        .call(
            format!("writing the new certificate to {LIVE} in the lb"),
            [
                "exec",
                "-i",
                lb_container,
                "sh",
                "-c",
                &format!("cat > {LIVE}.new && mv -f {LIVE}.new {LIVE}"),
            ],
        )
        .stdin(pem.expose_secret().as_bytes().to_vec())
        .timeout(Duration::from_secs(10))
        .changes_state()
        .output()?;
    // A payload ends at an empty line; the PEM ends with a newline.
    let mut payload = format!("set ssl cert {LIVE} <<\n").into_bytes();
    payload.extend_from_slice(pem.expose_secret().trim_end().as_bytes());
    payload.extend_from_slice(b"\n\n");
    let answer = docker
        .call(
            "handing the new certificate to HAProxy's runtime API (set ssl cert)",
            ["exec", "-i", lb_container, "socat", "stdio", ADMIN_SOCKET],
        )
        .stdin(payload)
        .timeout(Duration::from_secs(10))
        .changes_state()
        .output()?;
    anyhow::ensure!(
        answer.contains("Transaction created") || answer.contains("Transaction updated"),
        "HAProxy refused the new certificate: {}",
        answer.trim()
    );
    let answer = lbadmin::command(docker, lb_container, &format!("commit ssl cert {LIVE}"))?;
    anyhow::ensure!(
        answer.contains("Success!"),
        "HAProxy did not commit the new certificate: {}",
        answer.trim()
    );
    let shown = lbadmin::query(docker, lb_container, &format!("show ssl cert {LIVE}"))
        .context("reading the certificate HAProxy serves")?;
    anyhow::ensure!(
        served_serial(&shown).as_deref() == Some(wanted.as_str()),
        "HAProxy still serves another certificate after the swap"
    );
    Ok(true)
}

/// The serial number in `show ssl cert <file>`'s answer, normalised as [`lb_tls::serial`].
fn served_serial(answer: &str) -> Option<String> {
    answer
        .lines()
        .find_map(|line| line.strip_prefix("Serial: "))
        .map(|hex| lb_tls::normalise_serial(hex.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serial_is_read_from_show_ssl_cert() {
        let answer = "Filename: /run/haproxy/lb.pem\nStatus: Used\nSerial: 00AB12CD\n\
                      notBefore: Dec  6 08:00:00 2026 GMT\n";
        assert_eq!(served_serial(answer).as_deref(), Some("AB12CD"));
        assert_eq!(served_serial("Filename: x\n"), None);
    }
}
