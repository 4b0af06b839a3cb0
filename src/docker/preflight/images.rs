//! The images a stack needs: present, to be built, to be pulled, or unobtainable.

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
            match pullable(docker, &need.image) {
                Ok(()) => Finding::ok(
                    check,
                    format!("{image} not present; will be pulled, for {}", need.used_for),
                ),
                Err(why) => {
                    let field = need
                        .spec_field
                        .map(|f| format!(", or set {f} in the spec to an image this engine has"))
                        .unwrap_or_default();
                    Finding::fail(
                        check,
                        format!(
                            "{} is needed for {} but is not present and cannot be pulled: {why}",
                            need.image, need.used_for
                        ),
                        format!(
                            "make it available on this engine (`docker pull`, `docker load`, or \
                             build it){field}"
                        ),
                    )
                }
            }
        };
        findings.push(finding);
    }
    findings
}

/// Whether a registry answers for `image`, without downloading it.
fn pullable(docker: &Docker, image: &str) -> Result<(), String> {
    let out = docker
        .call(
            format!("asking the registry about {image}"),
            ["manifest", "inspect", image],
        )
        .timeout(Duration::from_secs(15))
        .output_unchecked()
        .map_err(|e| format!("{e:#}"))?;
    if out.success {
        Ok(())
    } else {
        Err(first_line(&out.stderr)
            .unwrap_or("the registry did not answer")
            .to_owned())
    }
}

/// The Compose file's config when it exists (for the built images' tags).
pub fn read_config(docker: &Docker, project: &str, compose_file: &Path) -> Option<ComposeConfig> {
    if !compose_file.is_file() {
        return None;
    }
    crate::docker::Compose::new(docker, project, compose_file)
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
