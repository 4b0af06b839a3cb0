//! The images a stack needs: present, to be built, to be pulled, or unobtainable.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::{first_line, Finding};
use crate::docker::{ComposeConfig, Docker};
use crate::spec::stack::ImagePurpose;
use crate::spec::{Plan, Service};

/// An image the stack needs, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageNeed {
    pub image: String,
    pub used_for: String,
    /// The spec field that chooses it, for the advice.
    pub spec_field: Option<&'static str>,
    /// Compose builds it (from files provision rendered).
    pub built: bool,
    /// Only needed to build images (a FROM or COPY --from).
    pub for_builds: bool,
}

/// The images a plan needs. With the Compose file's resolved config, the built images' exact
/// tags are known; without it (not rendered yet) the builds are assumed to be needed.
pub fn image_needs(plan: &Plan, config: Option<&ComposeConfig>) -> Vec<ImageNeed> {
    let external = plan.external_images();
    let field_of = |service: &str| Service::from_name(service).and_then(Service::image_field);
    let mut needs = Vec::new();
    match config {
        Some(config) => {
            for (service, image) in config.built_images() {
                needs.push(ImageNeed {
                    image,
                    used_for: format!("the {service} service"),
                    spec_field: None,
                    built: true,
                    for_builds: false,
                });
            }
            for (service, image) in config.pulled_images() {
                needs.push(ImageNeed {
                    image,
                    used_for: format!("the {service} service"),
                    spec_field: field_of(&service),
                    built: false,
                    for_builds: false,
                });
            }
        }
        None => {
            for use_ in &external {
                if let ImagePurpose::Runs(service) = use_.purpose {
                    needs.push(ImageNeed {
                        image: use_.image.clone(),
                        used_for: format!("the {service} service"),
                        spec_field: Some(use_.spec_field),
                        built: false,
                        for_builds: false,
                    });
                }
            }
        }
    }
    for use_ in external {
        let used_for = match use_.purpose {
            ImagePurpose::Runs(_) => continue,
            ImagePurpose::BuildBase => "the base (FROM) of the images provision builds".to_owned(),
            ImagePurpose::CopyFrom(Service::Lb) => {
                "consul-template in the lb image (COPY --from)".to_owned()
            }
            ImagePurpose::CopyFrom(service) => format!("a COPY --from in the {service} image"),
        };
        needs.push(ImageNeed {
            image: use_.image,
            used_for,
            spec_field: Some(use_.spec_field),
            built: false,
            for_builds: true,
        });
    }
    needs
}

/// Checks each needed image: present, to be built, to be pulled, or unobtainable (a failure).
pub fn check_images(docker: &Docker, needs: &[ImageNeed], rendered: bool) -> Vec<Finding> {
    let images: Vec<String> = needs.iter().map(|n| n.image.clone()).collect();
    let present = match docker.images_present(&images) {
        Ok(present) => present,
        Err(err) => {
            return vec![Finding::fail(
                "images",
                format!("cannot list local images: {err:#}"),
                "check `docker image ls`",
            )]
        }
    };
    let builds_needed = !rendered
        || needs
            .iter()
            .zip(&present)
            .any(|(need, present)| need.built && !present);
    let mut findings = Vec::new();
    // Registry host → its first error, and the images left unasked because of it.
    let mut unreachable: BTreeMap<String, String> = BTreeMap::new();
    let mut cut_off: Vec<&ImageNeed> = Vec::new();
    for (need, present) in needs.iter().zip(present) {
        let check = "image";
        let image = &need.image;
        let finding = if present {
            Finding::ok(check, format!("{image} present, for {}", need.used_for))
        } else if need.built {
            Finding::ok(
                check,
                format!("{image} will be built, for {}", need.used_for),
            )
        } else if need.for_builds && !builds_needed {
            Finding::warn(
                check,
                format!(
                    "{image} missing, for {}; not needed now (every built image is present)",
                    need.used_for
                ),
                "it is needed again when a build context changes",
            )
        } else {
            let host = registry_host(image);
            let answer = match unreachable.get(host) {
                // One unreachable registry is asked once, not once per image.
                Some(why) => Pull::Unreachable(why.clone()),
                None => pullable(docker, image),
            };
            match answer {
                Pull::Yes => Finding::ok(
                    check,
                    format!("{image} not present; will be pulled, for {}", need.used_for),
                ),
                Pull::Unreachable(why) => {
                    unreachable.entry(host.to_owned()).or_insert(why);
                    cut_off.push(need);
                    continue;
                }
                Pull::No(why) => missing_image(need, &why),
            }
        };
        findings.push(finding);
    }
    if !cut_off.is_empty() {
        findings.push(unreachable_registries(&cut_off, &unreachable));
    }
    findings
}

/// An image that is missing and that its registry says it cannot serve.
fn missing_image(need: &ImageNeed, why: &str) -> Finding {
    let field = need
        .spec_field
        .map(|f| format!(", or set {f} in the spec to an image this engine has"))
        .unwrap_or_default();
    Finding::fail(
        "image",
        format!(
            "{} is needed for {} but is not present and cannot be pulled: {why}",
            need.image, need.used_for
        ),
        format!(
            "make it available on this engine (`docker pull`, `docker load`, or build it){field}"
        ),
    )
}

/// One finding for every image that could not be asked about because no registry answered:
/// on an offline machine that is one fact, not one DNS error per image.
fn unreachable_registries(
    cut_off: &[&ImageNeed],
    unreachable: &BTreeMap<String, String>,
) -> Finding {
    let registries: Vec<String> = unreachable
        .iter()
        .map(|(host, why)| format!("{host} ({why})"))
        .collect();
    let images: Vec<String> = cut_off
        .iter()
        .map(|n| format!("{} (for {})", n.image, n.used_for))
        .collect();
    Finding::fail(
        "registry",
        format!(
            "no image registry answers from this machine: {}; so these missing images cannot be pulled: {}",
            registries.join("; "),
            images.join(", ")
        ),
        "build the offline images from Debian's mirror with `provision images build` (as root) and \
         write a spec on them with `provision init --offline --force` (docs/offline.md); or load \
         the images (`docker load`), or set images.* in the spec to images this engine has or to \
         a registry it reaches",
    )
}

/// What a registry said about an image.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pull {
    Yes,
    /// The registry answered: it has no such image (or refuses it).
    No(String),
    /// No answer at all: name resolution, connection or timeout.
    Unreachable(String),
}

/// The registry an image reference pulls from (Docker Hub for names without a host part).
fn registry_host(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// Whether an error from the registry means it could not be reached at all.
fn is_unreachable(message: &str) -> bool {
    const SIGNS: [&str; 9] = [
        "no such host",
        "dial tcp",
        "i/o timeout",
        "connection refused",
        "network is unreachable",
        "tls handshake timeout",
        "client.timeout",
        "server misbehaving",
        "temporary failure in name resolution",
    ];
    let message = message.to_ascii_lowercase();
    SIGNS.iter().any(|sign| message.contains(sign))
}

/// Whether a registry answers for `image`, without downloading it.
fn pullable(docker: &Docker, image: &str) -> Pull {
    // A registry on the loopback is plain HTTP (the engine treats 127.0.0.0/8 as insecure by
    // default); `docker manifest` asks over HTTPS unless told.
    let host = registry_host(image);
    let mut args = vec!["manifest", "inspect"];
    if host.starts_with("127.") || host.split(':').next() == Some("localhost") {
        args.push("--insecure");
    }
    args.push(image);
    let out = match docker
        .call(format!("asking the registry about {image}"), args)
        .timeout(Duration::from_secs(15))
        .output_unchecked()
    {
        Ok(out) => out,
        Err(err) => return Pull::Unreachable(format!("{err:#}")),
    };
    if out.success {
        return Pull::Yes;
    }
    let why = first_line(&out.stderr)
        .unwrap_or("the registry did not answer")
        .to_owned();
    if is_unreachable(&why) {
        Pull::Unreachable(why)
    } else {
        Pull::No(why)
    }
}

/// Whether the registry of the default images (Docker Hub) answers from this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubReach {
    /// It answered (even "no such image" or "unauthorized" is an answer).
    Answers,
    /// No answer at all: name resolution, connection or timeout; with what docker said.
    Unreachable(String),
    /// Could not ask (no docker CLI, or one without `docker manifest`).
    Unknown(String),
}

/// Asks Docker Hub about the default base image, without downloading it: `docker manifest
/// inspect` is the CLI's own registry client, so it honours the engine's proxy and mirror
/// settings as a pull would (and needs no daemon).
pub fn hub_reach(docker: &Docker) -> HubReach {
    let image = crate::spec::model::defaults::BASE_IMAGE;
    let out = docker
        .call(
            format!("asking Docker Hub about {image}"),
            ["manifest", "inspect", image],
        )
        .timeout(Duration::from_secs(15))
        .output_unchecked();
    match out {
        Ok(out) if out.success => HubReach::Answers,
        Ok(out) => {
            let why = first_line(&out.stderr)
                .unwrap_or("the registry did not answer")
                .to_owned();
            if is_unreachable(&why) {
                // "failed to configure transport: error pinging v2 registry: Get ...: dial tcp:
                // lookup registry-1.docker.io ...: no such host": the last part is the news.
                let short = why
                    .rsplit_once("dial tcp: ")
                    .map_or(why.as_str(), |(_, r)| r);
                HubReach::Unreachable(short.to_owned())
            } else if why.contains("experimental") {
                HubReach::Unknown(why)
            } else {
                HubReach::Answers
            }
        }
        Err(err) if format!("{err:#}").contains("timed out") => {
            HubReach::Unreachable(format!("{err:#}"))
        }
        Err(err) => HubReach::Unknown(format!("{err:#}")),
    }
}

/// The Compose file's config when it exists (for the built images' tags).
pub fn read_config(docker: &Docker, project: &str, compose_file: &Path) -> Option<ComposeConfig> {
    if !compose_file.is_file() {
        return None;
    }
    crate::docker::Compose::new(docker, project, compose_file)
        .with_secrets_of(project)
        .config()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(discovery: &str) -> Plan {
        let text = format!(
            "project: hits\ndiscovery: {discovery}\nimages:\n  base: localhost/base:1\n  consul: localhost/consul:1\n"
        );
        crate::spec::from_text(&text, Path::new("p.yaml"), Path::new(".")).unwrap()
    }

    #[test]
    fn image_needs_follow_the_discovery_mode() {
        let images = |d: &str| -> Vec<String> {
            image_needs(&plan(d), None)
                .into_iter()
                .map(|n| n.image)
                .collect()
        };
        assert_eq!(images("docker-dns"), vec!["localhost/base:1"]);
        assert_eq!(
            images("consul-dns"),
            vec!["localhost/consul:1", "localhost/base:1"]
        );
        let ct = images("consul-template");
        assert!(
            ct.contains(&crate::spec::model::defaults::REGISTRATOR_IMAGE.to_owned()),
            "{ct:?}"
        );
        assert!(
            ct.iter()
                .any(|i| i.starts_with("hashicorp/consul-template")),
            "{ct:?}"
        );
    }

    #[test]
    fn registries_are_told_apart_from_the_image_path() {
        assert_eq!(registry_host("hashicorp/consul:1.22"), "docker.io");
        assert_eq!(registry_host("debian:trixie-slim"), "docker.io");
        assert_eq!(
            registry_host("localhost/provision-rig/debian:trixie"),
            "localhost"
        );
        assert_eq!(registry_host("127.0.0.1:5000/web:1"), "127.0.0.1:5000");
        assert_eq!(
            registry_host("registry.example.com/team/web"),
            "registry.example.com"
        );
    }

    #[test]
    fn an_unreachable_registry_is_one_finding() {
        assert!(is_unreachable(
            "Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host"
        ));
        assert!(!is_unreachable(
            "no such manifest: docker.io/library/nope:1"
        ));
        let needs = image_needs(&plan("consul-template"), None);
        let cut_off: Vec<&ImageNeed> = needs.iter().collect();
        let mut unreachable = BTreeMap::new();
        unreachable.insert("docker.io".to_owned(), "no such host".to_owned());
        let finding = unreachable_registries(&cut_off, &unreachable);
        assert_eq!(finding.status, super::super::Status::Fail);
        assert!(
            finding.detail.contains("docker.io (no such host)"),
            "{}",
            finding.detail
        );
        for need in &needs {
            assert!(finding.detail.contains(&need.image), "{}", finding.detail);
        }
        let fix = finding.fix.unwrap();
        assert!(fix.contains("`provision images build`"), "{fix}");
        assert!(fix.contains("`provision init --offline --force`"), "{fix}");
    }

    #[test]
    fn image_needs_use_the_compose_tags_when_rendered() {
        let config: ComposeConfig = serde_json::from_str(
            r#"{"services":{"consul":{"image":"localhost/consul:1"},
                "web":{"image":"hits-web:0123456789ab","build":{"context":"web"}}}}"#,
        )
        .unwrap();
        let needs = image_needs(&plan("consul-dns"), Some(&config));
        assert_eq!(needs[0].image, "hits-web:0123456789ab");
        assert!(needs[0].built);
        assert_eq!(needs[1].spec_field, Some("images.consul"));
        assert!(needs[2].for_builds);
    }
}
