//! `provision init`: writes a new spec. With `--yes` it takes flags and defaults and never waits
//! for input; otherwise it asks (prompts.rs), which needs a terminal: without one it refuses
//! rather than guess, as `echo myproj | provision init` would otherwise write defaults silently.

mod prompts;

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::Context;

use crate::cli::{DiscoveryArg, InitArgs};
use crate::commands::{shell_word, Global};
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
    let defaults = default_answers(&args, path);
    let answers = if args.yes {
        check_flags(&defaults, base_dir)?;
        defaults
    } else {
        needs_a_terminal()?;
        prompts::ask(defaults, &|answers| {
            problems(answers, base_dir)
                .into_iter()
                .next()
                .map_or(Ok(()), |(_, message)| Err(message))
        })?
    };

    let text = spec_text(&answers);
    // Every answer was checked above; this is the last word, on the very text written.
    spec::from_text(&text, path, base_dir)?;
    write_spec(path, &text)?;
    if !global.quiet {
        println!("wrote {}", path.display());
    }
    // apply renders when the files are missing or stale, so it is the one next step.
    Printer::detect(global.quiet).note(format!(
        "next: `{}` to build and start the stack",
        global.command_line("apply")
    ));
    Ok(ExitStatus::Success)
}

/// The problems of the spec these answers would write: (field, message) in the file's order.
fn problems(answers: &Answers, base_dir: &Path) -> Vec<(String, String)> {
    match spec::from_text(&spec_text(answers), Path::new(spec::DEFAULT_FILE), base_dir) {
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
fn check_flags(answers: &Answers, base_dir: &Path) -> anyhow::Result<()> {
    // A project name is checked before it is written into YAML, where a newline could add a key.
    spec::rules::project_name(&answers.project)
        .map_err(|e| UsageError(format!("--project: {e}")))?;
    let refusals: Vec<String> = problems(answers, base_dir)
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

/// The spec as written by init: the chosen values, and every other field commented with its default.
pub fn spec_text(a: &Answers) -> String {
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

# Every image can be overridden (private registries, air-gapped sites).
# images:
#   base: {base}            # FROM of every image provision builds
#   consul: {consul}
#   registrator: {registrator}
#   consul_template: {consul_template}
#   redis: redis:7          # a prebuilt redis image instead of building one from `base`
"#,
        project = a.project,
        discovery = a.discovery,
        replicas = a.replicas,
        lb_port = a.lb_port,
        ct_version = defaults::CONSUL_TEMPLATE_VERSION,
        base = defaults::BASE_IMAGE,
        consul = defaults::CONSUL_IMAGE,
        registrator = defaults::REGISTRATOR_IMAGE,
        consul_template = defaults::CONSUL_TEMPLATE_IMAGE,
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
        let plan =
            spec::from_text(&spec_text(&answers), Path::new("p.yaml"), Path::new(".")).unwrap();
        assert_eq!(plan.project, "shop");
        assert_eq!(plan.discovery, Discovery::ConsulDns);
        assert_eq!(plan.web.replicas, 3);
        assert_eq!(plan.lb.port, 9000);
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
