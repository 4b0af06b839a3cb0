//! `provision init`: writes a new spec. Prompts (dialoguer) only when stdin is a terminal and
//! `--yes` was not given; otherwise it takes flags and defaults and never waits for input.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::Context;

use crate::cli::{DiscoveryArg, InitArgs};
use crate::commands::Global;
use crate::docker::preflight::{self, HubReach};
use crate::docker::Docker;
use crate::images::OfflineImages;
use crate::printer::Printer;
use crate::spec::model::{defaults, Discovery};
use crate::{spec, ExitStatus, UsageError};

/// The answers a spec is written from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answers {
    pub project: String,
    pub discovery: Discovery,
    pub replicas: u32,
    pub lb_port: u16,
}

pub fn run(global: &Global, args: InitArgs) -> anyhow::Result<ExitStatus> {
    let path = &global.spec;
    if path.exists() && !args.force {
        return Err(UsageError(format!(
            "{} already exists; pass --force to overwrite it (its current contents will be lost)",
            path.display()
        ))
        .into());
    }
    let interactive =
        !args.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let printer = &global.printer;
    let source = image_source(&args, interactive, printer)?;
    let mut defaults = default_answers(&args, path);
    if source.is_offline() && args.discovery.is_none() {
        defaults.discovery = Discovery::ConsulDns;
    }
    let answers = if interactive {
        prompt(defaults)?
    } else {
        defaults
    };
    source.allows(answers.discovery)?;
    // Check the flag before it is written into YAML, so the message names the flag.
    spec::rules::project_name(&answers.project)
        .map_err(|e| UsageError(format!("--project: {e}")))?;

    let text = spec_text(&answers, &source);
    // Refuse to write a spec that would not load: a bad --project is reported like a bad file.
    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    spec::from_text(&text, path, base_dir)?;
    write_atomically(path, &text)?;
    // The result, even with -q (which hides the hint below): what was written where.
    printer.stdout().line(format!("wrote {}", path.display()))?;
    match &source {
        ImageSource::Public => {
            printer.note("next: `provision render` to generate the stack, then `provision apply`")
        }
        ImageSource::Offline(images) => printer.note(offline_next_step(images)),
    }
    Ok(ExitStatus::Success)
}

/// What to run after an offline init: `images build` first when its images are not here yet.
fn offline_next_step(images: &OfflineImages) -> String {
    let docker = Docker::new(Printer::quiet());
    let wanted = images.all();
    let present = docker
        .images_present(&wanted)
        .map(|p| p.iter().all(|p| *p))
        .unwrap_or(false);
    if present {
        "next: `provision apply` (the offline images are present), then `provision verify --scale 5`"
            .into()
    } else {
        "next: `provision images build` (as root: it makes the offline images from Debian's \
         mirror), then `provision apply`"
            .into()
    }
}

/// Where the spec's images come from: the public registry, or the images `provision images
/// build` makes on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    Public,
    Offline(OfflineImages),
}

impl ImageSource {
    fn is_offline(&self) -> bool {
        matches!(self, ImageSource::Offline(_))
    }

    /// The offline images hold no registrator or consul-template: that mode cannot run on them.
    fn allows(&self, discovery: Discovery) -> anyhow::Result<()> {
        if self.is_offline() && discovery == Discovery::ConsulTemplate {
            return Err(UsageError(
                "--discovery consul-template needs the registrator and consul-template images, \
                 which `provision images build` does not make: with --offline use consul-dns \
                 (its default) or docker-dns"
                    .into(),
            )
            .into());
        }
        Ok(())
    }
}

/// `--offline` / `--online`, or else what the registry says: when Docker Hub does not answer,
/// the public images cannot be pulled, so the offline ones are offered (chosen with `--yes`).
/// An explicit consul-template mode keeps the public images (the offline ones cannot run it).
fn image_source(
    args: &InitArgs,
    interactive: bool,
    printer: &Printer,
) -> anyhow::Result<ImageSource> {
    let offline = ImageSource::Offline(OfflineImages::from_env());
    if args.offline {
        return Ok(offline);
    }
    if args.online || args.discovery == Some(DiscoveryArg::ConsulTemplate) {
        return Ok(ImageSource::Public);
    }
    let docker = Docker::new(Printer::quiet());
    let HubReach::Unreachable(why) = preflight::hub_reach(&docker) else {
        return Ok(ImageSource::Public);
    };
    let question = format!(
        "No image registry answers from here ({why}), so the default images cannot be pulled. \
         Use images built on this machine from Debian's mirror (`provision images build`)?"
    );
    if interactive {
        let yes = dialoguer::Confirm::new()
            .with_prompt(question)
            .default(true)
            .interact()?;
        return Ok(if yes { offline } else { ImageSource::Public });
    }
    printer.note(format!(
        "no image registry answers from here ({why}): writing an offline spec on the images \
         `provision images build` makes (pass --online for the public images)"
    ));
    Ok(offline)
}

fn default_answers(args: &InitArgs, spec_path: &Path) -> Answers {
    Answers {
        project: args
            .project
            .clone()
            .unwrap_or_else(|| project_name_for(spec_path)),
        discovery: args.discovery.map(discovery_of).unwrap_or_default(),
        replicas: args.replicas.unwrap_or(1),
        lb_port: args.lb_port.unwrap_or(8080),
    }
}

fn discovery_of(arg: DiscoveryArg) -> Discovery {
    match arg {
        DiscoveryArg::ConsulTemplate => Discovery::ConsulTemplate,
        DiscoveryArg::ConsulDns => Discovery::ConsulDns,
        DiscoveryArg::DockerDns => Discovery::DockerDns,
    }
}

/// A valid project name derived from the spec's directory name, or `hits`.
fn project_name_for(spec_path: &Path) -> String {
    let dir = std::path::absolute(spec_path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let raw = dir
        .as_deref()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let mut name: String = raw
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    name = name
        .trim_matches(|c| c == '-' || c == '_')
        .chars()
        .take(63)
        .collect();
    if spec::rules::project_name(&name).is_ok() {
        name
    } else {
        "hits".to_owned()
    }
}

fn prompt(defaults: Answers) -> anyhow::Result<Answers> {
    use dialoguer::{Input, Select};
    let project: String = Input::new()
        .with_prompt("Project name")
        .default(defaults.project)
        .validate_with(|v: &String| spec::rules::project_name(v))
        .interact_text()?;
    let modes = [
        Discovery::ConsulTemplate,
        Discovery::ConsulDns,
        Discovery::DockerDns,
    ];
    let labels = [
        "consul-template  registrator + consul-template render haproxy.cfg (the reference system)",
        "consul-dns       replicas register themselves in consul; HAProxy reads consul's DNS",
        "docker-dns       HAProxy reads Docker's DNS; no consul",
    ];
    let chosen = Select::new()
        .with_prompt("Service discovery")
        .items(labels)
        .default(
            modes
                .iter()
                .position(|m| *m == defaults.discovery)
                .unwrap_or(0),
        )
        .interact()?;
    let replicas: u32 = Input::new()
        .with_prompt("Web replicas to start with")
        .default(defaults.replicas)
        .validate_with(|v: &u32| if *v >= 1 { Ok(()) } else { Err("at least 1") })
        .interact_text()?;
    let lb_port: u16 = Input::new()
        .with_prompt("Host port of the load balancer")
        .default(defaults.lb_port)
        .validate_with(|v: &u16| {
            if *v >= 1 {
                Ok(())
            } else {
                Err("a port from 1 to 65535")
            }
        })
        .interact_text()?;
    Ok(Answers {
        project,
        discovery: modes[chosen],
        replicas,
        lb_port,
    })
}

/// The spec as written by init: the chosen values, and every other field commented with its
/// default; for offline images, the `images` they are.
pub fn spec_text(a: &Answers, source: &ImageSource) -> String {
    let images = match source {
        ImageSource::Public => public_images_block(),
        ImageSource::Offline(images) => offline_images_block(images, a.discovery),
    };
    format!(
        r#"# provision spec. Every field but `project` is optional; the commented values are the defaults.
# `provision render` expands it into generated/, `provision apply` starts the stack,
# `provision verify --scale N` proves it scales.

# Compose project name: lowercase letters, digits, `-` and `_`.
project: {project}

# How the load balancer discovers web replicas:
#   consul-template  registrator registers containers in consul, consul-template renders haproxy.cfg
#   consul-dns       each replica registers itself in consul, HAProxy resolves consul's DNS (SRV)
#   docker-dns       HAProxy resolves the web service through Docker's DNS, no consul
discovery: {discovery}

web:
  replicas: {replicas}
  # port: 5000              # port the app listens on inside its container
  # health_path: /health    # answers 200 when the replica can serve
  # app: builtin            # or a directory (relative to this file) with your app and its Dockerfile
  # workers: 2              # gunicorn workers per replica (built-in app)

lb:
  port: {lb_port}
  # stats_port: 8404        # HAProxy stats, published on 127.0.0.1 only
  # balance: roundrobin     # roundrobin | leastconn | source | first | random
  # check_interval: 2s      # health-check interval (ms, s or m)
  # max_replicas: 10        # most web replicas the load balancer can route to
  # consul_template: image  # image (copy from images.consul_template) | download (verified release)
  # consul_template_version: {ct_version}

# consul:
#   http_port: 8500         # consul HTTP API and UI, published on 127.0.0.1 only
#   datacenter: dc1

# redis:
#   appendfsync: everysec   # always | everysec | no (append-only persistence is always on)

{images}"#,
        project = a.project,
        discovery = a.discovery,
        replicas = a.replicas,
        lb_port = a.lb_port,
        ct_version = defaults::CONSUL_TEMPLATE_VERSION,
    )
}

fn public_images_block() -> String {
    format!(
        r#"# Every image can be overridden (private registries, air-gapped sites).
# images:
#   base: {base}            # FROM of every image provision builds
#   consul: {consul}
#   registrator: {registrator}
#   consul_template: {consul_template}
#   redis: redis:7          # a prebuilt redis image instead of building one from `base`
"#,
        base = defaults::BASE_IMAGE,
        consul = defaults::CONSUL_IMAGE,
        registrator = defaults::REGISTRATOR_IMAGE,
        consul_template = defaults::CONSUL_TEMPLATE_IMAGE,
    )
}

/// The offline images: built on this machine by `provision images build`, so no registry is
/// asked for anything.
fn offline_images_block(images: &OfflineImages, discovery: Discovery) -> String {
    let consul = if discovery == Discovery::DockerDns {
        String::new()
    } else {
        format!("  consul: {}\n", images.consul())
    };
    format!(
        "# Images built on this machine from Debian's mirror by `provision images build`: no\n\
         # container registry is needed.\n\
         images:\n  base: {}        # FROM of every image provision builds\n{consul}",
        images.base()
    )
}

/// Writes to a temporary file in the same directory, then renames it into place.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    file.write_all(text.as_bytes())
        .context("writing the spec")?;
    file.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_spec_loads_back_with_the_answers() {
        let answers = Answers {
            project: "shop".into(),
            discovery: Discovery::ConsulDns,
            replicas: 3,
            lb_port: 9000,
        };
        let plan = spec::from_text(
            &spec_text(&answers, &ImageSource::Public),
            Path::new("p.yaml"),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(plan.project, "shop");
        assert_eq!(plan.discovery, Discovery::ConsulDns);
        assert_eq!(plan.web.replicas, 3);
        assert_eq!(plan.lb.port, 9000);
    }

    #[test]
    fn an_offline_spec_names_the_local_images() {
        let images = OfflineImages::new("localhost/provision-rig");
        let source = ImageSource::Offline(images.clone());
        for discovery in [Discovery::ConsulDns, Discovery::DockerDns] {
            let answers = Answers {
                project: "hits".into(),
                discovery,
                replicas: 2,
                lb_port: 8080,
            };
            let text = spec_text(&answers, &source);
            let plan = spec::from_text(&text, Path::new("p.yaml"), Path::new(".")).unwrap();
            assert_eq!(plan.images.base.as_str(), images.base(), "{text}");
            assert_eq!(plan.discovery, discovery);
            assert_eq!(
                text.contains(&format!("  consul: {}\n", images.consul())),
                discovery == Discovery::ConsulDns,
                "{text}"
            );
            assert!(!text.contains("hashicorp"), "{text}");
        }
        assert!(source.allows(Discovery::ConsulTemplate).is_err());
        assert!(ImageSource::Public
            .allows(Discovery::ConsulTemplate)
            .is_ok());
    }

    #[test]
    fn project_name_comes_from_the_directory() {
        assert_eq!(
            project_name_for(Path::new("/tmp/My Shop/provision.yaml")),
            "my-shop"
        );
        assert_eq!(
            project_name_for(Path::new("/tmp/--/provision.yaml")),
            "hits"
        );
    }
}
