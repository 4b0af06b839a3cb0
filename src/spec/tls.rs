//! The spec's `lb.tls`: which certificate source it names (checked here, so that the plan holds
//! exactly one), and its files beside the spec.

use std::path::Path;

use super::inputs;
use super::model::Tls;
use super::plan::{PlanTls, TlsSource};

/// The plan of a validated `lb.tls`.
pub(super) fn plan(tls: &Tls) -> PlanTls {
    let source = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) if !tls.self_signed => TlsSource::Files {
            cert: cert.to_string(),
            key: key.to_string(),
        },
        _ => TlsSource::SelfSigned {
            names: tls.names.iter().map(|n| n.to_string()).collect(),
        },
    };
    PlanTls {
        source,
        port: tls.port,
        redirect: tls.redirect,
        hsts: tls.hsts,
    }
}

/// What is wrong with `lb.tls`: one source of the certificate, its files beside the spec.
pub(super) fn problems(tls: &Tls, base_dir: &Path) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match (tls.self_signed, &tls.cert, &tls.key) {
        (true, None, None) => {}
        (true, _, _) => out.push((
            "lb.tls.self_signed",
            "give either `self_signed: true` or `cert:` and `key:`, not both".to_owned(),
        )),
        (false, None, None) => out.push((
            "lb.tls",
            "needs a certificate: `self_signed: true`, or `cert:` and `key:` (PEM files beside the spec)"
                .to_owned(),
        )),
        (false, Some(_), None) => out.push(("lb.tls.key", "`cert:` needs its `key:`".to_owned())),
        (false, None, Some(_)) => out.push(("lb.tls.cert", "`key:` needs its `cert:`".to_owned())),
        (false, Some(cert), Some(key)) => {
            for (field, file) in [("lb.tls.cert", cert), ("lb.tls.key", key)] {
                if let Err(why) = inputs::inside(base_dir, file) {
                    out.push((field, why));
                }
            }
        }
    }
    if !tls.self_signed && !tls.names.is_empty() {
        out.push((
            "lb.tls.names",
            "names are for `self_signed: true`; a given certificate carries its own".to_owned(),
        ));
    }
    if tls.hsts == Some(0) {
        out.push((
            "lb.tls.hsts",
            "must be a number of seconds above 0 (leave it out to send no HSTS header)".to_owned(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::spec::from_text;
    use crate::spec::plan::TlsSource;

    fn err(text: &str) -> String {
        from_text(text, Path::new("provision.yaml"), Path::new("."))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn self_signed_with_defaults() {
        let text =
            "project: hits\nlb:\n  tls:\n    self_signed: true\n    names: [shop.example.com]\n";
        let plan = from_text(text, Path::new("p.yaml"), Path::new(".")).unwrap();
        let tls = plan.lb.tls.unwrap();
        assert_eq!(tls.port, 8443);
        assert!(!tls.redirect);
        assert_eq!(tls.hsts, None);
        assert_eq!(
            tls.source,
            TlsSource::SelfSigned {
                names: vec!["shop.example.com".into()]
            }
        );
        let plan = from_text("project: hits\n", Path::new("p.yaml"), Path::new(".")).unwrap();
        assert!(plan.lb.tls.is_none());
    }

    #[test]
    fn one_source_and_field_lines() {
        let e = err("project: hits\nlb:\n  tls:\n    redirect: true\n");
        assert!(
            e.contains("provision.yaml:3:3: lb.tls: needs a certificate"),
            "{e}"
        );
        let e = err("project: hits\nlb:\n  tls:\n    self_signed: true\n    cert: c.pem\n");
        assert!(e.contains(":4:5: lb.tls.self_signed: give either"), "{e}");
        let e = err("project: hits\nlb:\n  tls:\n    cert: c.pem\n");
        assert!(e.contains("lb.tls.key: `cert:` needs its `key:`"), "{e}");
        let e = err("project: hits\nlb:\n  tls:\n    self_signed: true\n    hsts: 0\n");
        assert!(e.contains(":5:5: lb.tls.hsts: must be"), "{e}");
        let e = err("project: hits\nlb:\n  tls:\n    self_signed: true\n    port: 8404\n");
        assert!(e.contains(":5:5: lb.tls.port: host port 8404"), "{e}");
        let e =
            err("project: hits\nlb:\n  tls:\n    self_signed: true\n    names: [\"bad name\"]\n");
        assert!(e.contains("invalid DNS name"), "{e}");
    }

    #[test]
    fn given_files_must_exist_beside_the_spec() {
        let dir = tempfile::tempdir().unwrap();
        let text = "project: hits\nlb:\n  tls:\n    cert: c.pem\n    key: k.pem\n";
        let e = from_text(text, &dir.path().join("provision.yaml"), dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":4:5: lb.tls.cert:") && e.contains("c.pem"),
            "{e}"
        );
        std::fs::write(dir.path().join("c.pem"), "x").unwrap();
        std::fs::write(dir.path().join("k.pem"), "x").unwrap();
        let plan = from_text(text, &dir.path().join("provision.yaml"), dir.path()).unwrap();
        assert_eq!(
            plan.lb.tls.unwrap().source,
            TlsSource::Files {
                cert: "c.pem".into(),
                key: "k.pem".into()
            }
        );
    }
}
