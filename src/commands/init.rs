//! `provision init`: writes a new spec. With `--yes` it takes flags and defaults and never waits
//! for input; otherwise it asks (prompts.rs), which needs a terminal: without one it refuses
//! rather than guess, as `echo myproj | provision init` would otherwise write defaults silently.

mod prompts;

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::Context;

use crate::cli::{DiscoveryArg, InitArgs};
use crate::commands::{shell_word, Global};
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
    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    writable_dir(base_dir, path)?;
    if !args.yes {
        needs_a_terminal()?;
    }
    let printer = &global.printer;
    let source = image_source(&args, !args.yes, printer)?;
    let mut defaults = default_answers(&args, path);
    if source.is_offline() && args.discovery.is_none() {
        defaults.discovery = Discovery::ConsulDns;
    }
    source.allows(defaults.discovery)?;
    let answers = if args.yes {
        check_flags(&defaults, &source, base_dir)?;
        defaults
    } else {
        prompts::ask(defaults, &|answers| {
            source
                .allows(answers.discovery)
                .map_err(|e| e.to_string())?;
            problems(answers, &source, base_dir)
                .into_iter()
                .next()
                .map_or(Ok(()), |(_, message)| Err(message))
        })?
    };

    let text = spec_text(&answers, &source);
    // Every answer was checked above; this is the last word, on the very text written.
    spec::from_text(&text, path, base_dir)?;
    write_spec(path, &text)?;
    // The result, even with -q (which hides the hint below): what was written where.
    printer.stdout().line(format!("wrote {}", path.display()))?;
    match &source {
        // apply renders when the files are missing or stale, so it is the one next step.
        ImageSource::Public => printer.note(format!(
            "next: `{}` to build and start the stack",
            global.command_line("apply")
        )),
        ImageSource::Offline(images) => printer.note(offline_next_step(global, images)),
    }
    Ok(ExitStatus::Success)
}

/// The problems of the spec these answers would write: (field, message) in the file's order.
fn problems(answers: &Answers, source: &ImageSource, base_dir: &Path) -> Vec<(String, String)> {
    match spec::from_text(
        &spec_text(answers, source),
        Path::new(spec::DEFAULT_FILE),
        base_dir,
    ) {
        Ok(_) => Vec::new(),
        Err(err) => err
            .problems
            .into_iter()
            .map(|p| (p.field.unwrap_or_default(), p.message))
            .collect(),
    }
}

/// Refuses bad flag values, named as the flags they came from (not as lines of a file that was
/// never written).
fn check_flags(answers: &Answers, source: &ImageSource, base_dir: &Path) -> anyhow::Result<()> {
    // A project name is checked before it is written into YAML, where a newline could add a key.
    spec::rules::project_name(&answers.project)
        .map_err(|e| UsageError(format!("--project: {e}")))?;
    let refusals: Vec<String> = problems(answers, source, base_dir)
        .into_iter()
        .map(|(field, message)| {
            let flag = match field.as_str() {
                "project" => "--project",
                "discovery" => "--discovery",
                "web.replicas" => "--replicas",
                "lb.port" | "lb.stats_port" | "consul.http_port" => "--lb-port",
                _ => field.as_str(),
            };
            format!("{flag}: {message}")
        })
        .collect();
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(UsageError(refusals.join("\n")).into())
    }
}

/// Questions need someone to answer them: stdin to read from, stderr to ask on.
fn needs_a_terminal() -> anyhow::Result<()> {
    let missing = match (
        std::io::stdin().is_terminal(),
        std::io::stderr().is_terminal(),
    ) {
        (true, true) => return Ok(()),
        (false, _) => "stdin is not a terminal",
        (true, false) => "stderr (where the questions are asked) is not a terminal",
    };
    Err(UsageError(format!(
        "init asks its questions on a terminal, and {missing}; pass --yes to write the spec from flags (--project, --discovery, --replicas, --lb-port) and defaults"
    ))
    .into())
}

/// The spec's directory must exist and take a new file; said before any question is asked.
fn writable_dir(dir: &Path, path: &Path) -> anyhow::Result<()> {
    if !dir.is_dir() {
        return Err(UsageError(format!(
            "cannot write {}: directory {} does not exist; create it first (mkdir -p {})",
            path.display(),
            dir.display(),
            shell_word(&dir.display().to_string())
        ))
        .into());
    }
    Ok(())
}

/// What to run after an offline init: `images build` first when its images are not here yet.
fn offline_next_step(global: &Global, images: &OfflineImages) -> String {
    let docker = Docker::new(Printer::quiet());
    let wanted = images.all();
    let present = docker
        .images_present(&wanted)
        .map(|p| p.iter().all(|p| *p))
        .unwrap_or(false);
    if present {
        format!(
            "next: `{}` (the offline images are present), then `{}`",
            global.command_line("apply"),
            global.command_line("verify --scale 5")
        )
    } else {
        format!(
            "next: `provision images build` (as root: it makes the offline images from Debian's \
             mirror), then `{}`",
            global.command_line("apply")
        )
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
  # server_timeout: 30s     # wait for a replica's answer; a GET past it is retried elsewhere
  # max_replicas: 10        # most web replicas the load balancer can route to
  # access_log: sampled     # off | sampled (1 request in 100) | full: HAProxy's request log
  # consul_template: image  # image (copy from images.consul_template) | download (verified release)
  # consul_template_version: {ct_version}

# consul:
#   http_port: 8500         # publish consul's HTTP API and UI on 127.0.0.1 (ACLs apply); unpublished if left out
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

/// Writes to a temporary file in the same directory, then renames it into place. The spec is
/// written like generated files (0644 less the umask): it is a project file, not a secret.
fn write_spec(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut builder = tempfile::Builder::new();
    builder.prefix(".provision-init-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let mut file = match builder.tempfile_in(dir) {
        Ok(file) => file,
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            // The error's own text names the temporary file; the kind is what matters.
            let why = match err.kind() {
                std::io::ErrorKind::PermissionDenied => "permission denied",
                _ => "read-only file system",
            };
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
            return Err(UsageError(format!(
                "cannot write {}: directory {} is not writable ({why})",
                path.display(),
                dir.display()
            ))
            .into());
        }
        Err(err) => {
            return Err(err).with_context(|| format!("writing {}", path.display()));
        }
    };
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    file.persist(path)
        .map_err(|err| err.error)
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
