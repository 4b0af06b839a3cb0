//! Plan → generated files. Rendering happens in memory first (`render`: relative path →
//! contents, deterministic byte for byte); only then are the files written atomically
//! (`output::write`) or compared with what is on disk (`drift::compare`).
//!
//! Two passes: the build contexts (web/, redis/, lb/) are rendered first and hashed, so that
//! compose.yaml can name each built image `<project>-<service>:<12 hex of the context's
//! sha256>`: an unchanged context keeps its tag (Compose builds nothing), a changed one gets a
//! new tag (Compose rebuilds and recreates that service only).

mod context;
pub mod drift;
mod hashing;
mod manifest;
pub mod output;
pub mod paths;
mod project;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::blueprint::{self, Blueprints};
use crate::printer::Printer;
use crate::spec::stack::BuildContext;
use crate::spec::Plan;
use crate::UsageError;

pub use context::{Tuning, DRAINED_SIGNAL, HASHICORP_PGP_FINGERPRINT, REPLICA_HEADER};
pub use hashing::{hash_files, sha256_hex};
pub use manifest::{parse_manifest, MANIFEST};
pub use project::Project;

use context::Context;
use hashing::{image_tag, read_dir_files};

/// Where a rendered stack is, for the commands that run it.
#[derive(Debug, Clone)]
pub struct RenderedStack {
    pub plan: Plan,
    /// Absolute.
    pub out_dir: PathBuf,
    pub compose_file: PathBuf,
    /// A dry run's copy of stale files, kept alive as long as the stack value (see `ensure_rendered`).
    _scratch: Option<std::sync::Arc<tempfile::TempDir>>,
}

/// Whether `ensure_rendered` may write the output directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    Allowed,
    /// A dry run: the output directory is never touched. When it is stale, the files are written
    /// to a temporary directory instead, for the read-only commands (`compose config`) to read.
    DryRun,
}

/// Loads the spec, renders, writes if different (refusing hand edits), returns where the stack is.
/// `out` is relative to the spec's directory when relative.
pub fn ensure_rendered(
    spec_path: &Path,
    out: &Path,
    printer: &Printer,
    writes: Writes,
) -> anyhow::Result<RenderedStack> {
    let project = Project::load(spec_path, out)?;
    let rendered = render(&project)?;
    for name in &rendered.local_blueprints {
        printer.note(format!(
            "render: using local blueprint {}",
            project.local_blueprint_display(name)
        ));
    }
    let shown = paths::display(&project.out_dir);
    if writes == Writes::DryRun {
        let stale = drift::compare(&project.out_dir, &rendered.files)?;
        if stale.is_empty() {
            printer.note(format!("render: {shown} is up to date"));
            return Ok(RenderedStack::at(project, None));
        }
        let list: Vec<String> = stale
            .iter()
            .map(|d| format!("{} ({})", d.path, d.kind.as_str()))
            .collect();
        // Rendered again for the scratch location, so relative paths in compose.yaml (a custom
        // app's build context) resolve from there as they would from the real directory.
        let scratch = tempfile::Builder::new()
            .prefix("provision-dry-run-")
            .tempdir()
            .context("creating a temporary directory for the dry run")?;
        let mut copy = project.clone();
        copy.out_dir = scratch.path().join("generated");
        output::write(&copy.out_dir, &render(&copy)?.files, false)?;
        printer.note(format!(
            "dry run: {shown} would change ({}); it was not written. The commands below read a temporary copy in {}",
            list.join(", "),
            scratch.path().display()
        ));
        return Ok(RenderedStack::at(copy, Some(std::sync::Arc::new(scratch))));
    }
    let outcome = output::write(&project.out_dir, &rendered.files, false)?;
    outcome.warnings.iter().for_each(|w| printer.note(w));
    printer.note(format!("render: {}", outcome.summary(&shown)));
    Ok(RenderedStack::at(project, None))
}

impl RenderedStack {
    /// Files rendered earlier, checked out into `scratch` (a release's, for `rollback`), with
    /// the plan they were rendered from; `scratch` lives as long as the stack value.
    pub fn from_files(plan: Plan, scratch: tempfile::TempDir) -> Self {
        let out_dir = scratch.path().to_path_buf();
        RenderedStack {
            compose_file: out_dir.join("compose.yaml"),
            out_dir,
            plan,
            _scratch: Some(std::sync::Arc::new(scratch)),
        }
    }

    fn at(project: Project, scratch: Option<std::sync::Arc<tempfile::TempDir>>) -> Self {
        RenderedStack {
            compose_file: project.out_dir.join("compose.yaml"),
            out_dir: project.out_dir,
            plan: project.plan,
            _scratch: scratch,
        }
    }
}

/// The stack as last rendered, for commands that act on what runs (verify, status, destroy):
/// they must not rewrite files the running stack was started from. Notes when the spec has
/// changed since; fails when nothing was rendered yet.
pub fn rendered_stack(
    spec_path: &Path,
    out: &Path,
    printer: &Printer,
) -> anyhow::Result<RenderedStack> {
    let project = Project::load(spec_path, out)?;
    let compose_file = project.out_dir.join("compose.yaml");
    if !compose_file.is_file() {
        return Err(UsageError(format!(
            "{} does not exist: nothing was rendered or applied yet; run `provision apply` first",
            paths::display(&compose_file)
        ))
        .into());
    }
    if !printer.is_quiet() {
        let rendered = render(&project)?;
        let stale = drift::compare(&project.out_dir, &rendered.files)?;
        if !stale.is_empty() {
            printer.note(format!(
                "note: the spec has changed since {} was rendered ({} file(s) differ); this acts on the stack as rendered. `provision apply` brings it up to date.",
                paths::display(&project.out_dir),
                stale.len()
            ));
        }
    }
    Ok(RenderedStack::at(project, None))
}

/// The rendered files of one project.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// Relative path (with `/`) → contents, manifest included.
    pub files: BTreeMap<String, String>,
    /// Blueprints that came from the project's `blueprints/` directory.
    pub local_blueprints: Vec<String>,
}

/// Renders every file of the project in memory. A failure is a usage error (exit 2) when local
/// blueprints took part, since the user can fix it; otherwise it is a bug in provision.
pub fn render(project: &Project) -> anyhow::Result<Rendered> {
    let blueprints = Blueprints::for_project(&project.spec_dir);
    render_with(project, &blueprints).map_err(|err| {
        let local = blueprints.local_overrides();
        if local.is_empty() {
            err
        } else {
            UsageError(format!(
                "{err:#} (local blueprints in use: {})",
                local.join(", ")
            ))
            .into()
        }
    })
}

fn render_with(project: &Project, blueprints: &Blueprints) -> anyhow::Result<Rendered> {
    let plan = &project.plan;
    let web_context = match &plan.web.app_dir {
        None => "./web".to_owned(),
        Some(dir) => paths::relative_for_compose(&project.out_dir, &project.spec_dir.join(dir)),
    };
    let mut context = Context {
        plan,
        stack: plan.features(),
        tags: BTreeMap::new(),
        pushed: BTreeMap::new(),
        config_hashes: BTreeMap::new(),
        restart_keys: BTreeMap::new(),
        web_context,
        tuning: Tuning::standard(),
        hashicorp_pgp_fingerprint: HASHICORP_PGP_FINGERPRINT,
        replica_header: REPLICA_HEADER,
    };

    let mut files = BTreeMap::new();
    for BuildContext {
        service,
        files: outputs,
    } in plan.build_contexts()
    {
        let service = service.name();
        let value = minijinja::Value::from_serialize(&context);
        for output in outputs {
            files.insert(output.to_owned(), render_one(blueprints, output, &value)?);
        }
        let hash = hash_files(
            files
                .iter()
                .filter_map(|(path, text)| {
                    path.strip_prefix(&format!("{service}/"))
                        .map(|rel| (rel.to_owned(), text.as_bytes().to_vec()))
                })
                .collect(),
        );
        context
            .tags
            .insert(service, image_tag(plan, service, &hash));
    }
    if let Some(dir) = &plan.web.app_dir {
        let app = project.spec_dir.join(dir);
        let hash = hash_files(
            read_dir_files(&app)
                .with_context(|| format!("hashing the app directory {}", app.display()))?,
        );
        context.tags.insert("web", image_tag(plan, "web", &hash));
    }

    if let Some(swarm) = plan.swarm() {
        context.pushed = context
            .tags
            .iter()
            .map(|(service, tag)| (*service, swarm.remote_image(tag)))
            .collect();
    }
    // compose.yaml twice: with empty labels to hash each service's section, then with the
    // hashes (a section's hash never covers its own labels).
    context.config_hashes = plan
        .services()
        .iter()
        .map(|s| (s.name().to_owned(), String::new()))
        .collect();
    context.restart_keys = plan
        .live_config()
        .map(|live| (live.service.name().to_owned(), String::new()))
        .into_iter()
        .collect();
    let value = minijinja::Value::from_serialize(&context);
    let draft = render_one(blueprints, "compose.yaml", &value)?;
    context.config_hashes = service_hashes(&draft).context("hashing compose.yaml's services")?;
    context.restart_keys = restart_keys(plan, &draft, &files)?;
    let value = minijinja::Value::from_serialize(&context);
    for output in plan.deployment_files() {
        files.insert(output.to_owned(), render_one(blueprints, output, &value)?);
    }
    files.insert(MANIFEST.to_owned(), manifest::manifest(&files));
    Ok(Rendered {
        files,
        local_blueprints: blueprints.local_overrides(),
    })
}

/// The services of a rendered compose.yaml: each name with its section, in file order.
pub fn compose_services(compose_yaml: &str) -> anyhow::Result<Vec<(String, serde_yaml::Value)>> {
    let doc: serde_yaml::Value = serde_yaml::from_str(compose_yaml)?;
    let services = doc
        .get("services")
        .and_then(|s| s.as_mapping())
        .context("no services")?;
    services
        .iter()
        .map(|(name, section)| {
            let name = name.as_str().context("a service name is not a string")?;
            Ok((name.to_owned(), section.clone()))
        })
        .collect()
}

/// Service name → 12 hex digits of the sha256 of its section, read as YAML (so formatting and
/// comments do not count, values do).
fn service_hashes(compose_yaml: &str) -> anyhow::Result<BTreeMap<String, String>> {
    compose_services(compose_yaml)?
        .into_iter()
        .map(|(name, section)| {
            let canonical = serde_json::to_vec(&section)?;
            Ok((name, sha256_hex(&canonical)[..12].to_owned()))
        })
        .collect()
}

/// The service with a live configuration → a hash of its compose.yaml section without `image`
/// (whose tag follows the live file) and `labels`, of the target, and of its build context
/// without the live file. Two renders with the same key differ in that file alone.
fn restart_keys(
    plan: &Plan,
    compose_yaml: &str,
    files: &BTreeMap<String, String>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let Some(live) = plan.live_config() else {
        return Ok(BTreeMap::new());
    };
    let service = live.service.name();
    let mut section = compose_services(compose_yaml)?
        .into_iter()
        .find_map(|(name, section)| (name == service).then_some(section))
        .with_context(|| format!("compose.yaml has no {service} service"))?;
    if let Some(map) = section.as_mapping_mut() {
        map.remove("image");
        map.remove("labels");
    }
    let context = format!("{service}/");
    // The target too: on a Swarm, stack.yaml's lb section also follows its settings (placement).
    let mut parts = vec![
        ("compose.yaml".to_owned(), serde_json::to_vec(&section)?),
        ("target".to_owned(), serde_json::to_vec(&plan.target)?),
    ];
    parts.extend(
        files
            .iter()
            .filter(|(path, _)| path.starts_with(&context) && path.as_str() != live.file)
            .map(|(path, text)| (path.clone(), text.as_bytes().to_vec())),
    );
    Ok(BTreeMap::from([(service.to_owned(), hash_files(parts))]))
}

fn render_one(
    blueprints: &Blueprints,
    output: &str,
    context: &minijinja::Value,
) -> anyhow::Result<String> {
    let name = format!("{output}{}", blueprint::SUFFIX);
    blueprints
        .render(&name, context)
        .with_context(|| format!("rendering {output} from blueprint {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(spec: &str) -> Project {
        let plan =
            crate::spec::from_text(spec, Path::new("provision.yaml"), Path::new(".")).unwrap();
        Project {
            plan,
            spec_dir: PathBuf::from("/nonexistent/project"),
            out_dir: PathBuf::from("/nonexistent/project/generated"),
        }
    }

    fn names(rendered: &Rendered) -> Vec<&str> {
        rendered.files.keys().map(String::as_str).collect()
    }

    #[test]
    fn each_mode_renders_its_files() {
        let ct = render(&project("project: hits\n")).unwrap();
        assert_eq!(
            names(&ct),
            [
                ".provision-manifest",
                "compose.yaml",
                "diagram.md",
                "docker-proxy/Dockerfile",
                "docker-proxy/haproxy.cfg",
                "lb/Dockerfile",
                "lb/consul-template.hcl",
                "lb/haproxy.ctmpl",
                "redis/Dockerfile",
                "web/Dockerfile",
                "web/app.py",
                "web/healthcheck.py",
            ]
        );
        let dns = render(&project("project: hits\ndiscovery: consul-dns\n")).unwrap();
        assert!(dns.files.contains_key("web/entrypoint.py"));
        assert!(dns.files.contains_key("lb/haproxy.cfg"));
        let docker = render(&project(
            "project: hits\ndiscovery: docker-dns\nimages:\n  redis: redis:7\n",
        ))
        .unwrap();
        assert!(!docker.files.contains_key("redis/Dockerfile"));
        assert!(!docker.files.contains_key("web/entrypoint.py"));
    }

    /// The lines of `file`'s section `header` (up to the next blank line), trimmed.
    fn section<'t>(file: &'t str, header: &str) -> Vec<&'t str> {
        file.lines()
            .skip_while(|l| *l != header)
            .take_while(|l| !l.is_empty())
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .collect()
    }

    #[test]
    fn access_log_decides_the_frontends_loggers_in_every_mode() {
        for (discovery, file) in [
            ("consul-dns", "lb/haproxy.cfg"),
            ("docker-dns", "lb/haproxy.cfg"),
            ("consul-template", "lb/haproxy.ctmpl"),
        ] {
            let frontend = |access_log: &str| {
                let spec = format!(
                    "project: hits\ndiscovery: {discovery}\nlb:\n  access_log: {access_log}\n"
                );
                let rendered = render(&project(&spec)).unwrap();
                let text = &rendered.files[file];
                // Requests are logged through `log global` (defaults) unless the frontend says
                // otherwise; the backend keeps it, so server state changes are always logged.
                assert!(text.contains("    log global\n"), "{file}");
                section(text, "frontend http-in")
                    .into_iter()
                    .filter(|l| l.starts_with("log ") || l.starts_with("no log"))
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            };
            assert_eq!(frontend("full"), Vec::<String>::new(), "{discovery}");
            assert_eq!(frontend("off"), ["no log"], "{discovery}");
            assert_eq!(
                frontend("sampled"),
                ["no log", "log stdout format raw sample 1:100 local0 info"],
                "{discovery}"
            );
        }
    }

    #[test]
    fn every_output_ends_with_a_newline_and_is_deterministic() {
        for spec in [
            "project: hits\n",
            "project: hits\ndiscovery: consul-dns\n",
            "project: hits\ndiscovery: docker-dns\n",
            "project: hits\nlb:\n  consul_template: download\n",
        ] {
            let first = render(&project(spec)).unwrap();
            for (path, text) in &first.files {
                assert!(text.ends_with('\n'), "{path} in {spec:?}");
                if path != MANIFEST {
                    assert!(
                        text.contains("generated by provision"),
                        "{path} has no header"
                    );
                }
            }
            assert_eq!(first, render(&project(spec)).unwrap());
        }
    }

    #[test]
    fn every_embedded_blueprint_is_used() {
        // Outputs of the specs that together cover every mode and option.
        let mut outputs = std::collections::BTreeSet::new();
        for spec in [
            "project: hits\n",
            "project: hits\ndiscovery: consul-dns\n",
            "project: hits\ndiscovery: docker-dns\n",
            "project: hits\ntarget:\n  kind: swarm\n  registry: 127.0.0.1:5000\n",
            "project: hits\ntarget:\n  kind: swarm\n  registry: 127.0.0.1:5000\n\
             discovery: consul-dns\nconsul:\n  servers: 3\n",
        ] {
            outputs.extend(render(&project(spec)).unwrap().files.into_keys());
        }
        let names = blueprint::embedded_names();
        let sources: String = names
            .iter()
            .map(|n| blueprint::embedded_source(n).unwrap())
            .collect();
        for name in &names {
            let file = name.rsplit('/').next().unwrap();
            if file.starts_with('_') {
                assert!(
                    sources.contains(&format!("\"{name}\"")),
                    "partial {name} is never included"
                );
            } else {
                let output = name.strip_suffix(blueprint::SUFFIX).unwrap();
                assert!(
                    outputs.contains(output),
                    "blueprint {name} is never rendered"
                );
            }
        }
    }

    #[test]
    fn tags_follow_the_build_context() {
        let a = render(&project("project: hits\n")).unwrap();
        let b = render(&project("project: hits\nlb:\n  balance: leastconn\n")).unwrap();
        let tag = |r: &Rendered, svc: &str| {
            let compose = &r.files["compose.yaml"];
            let prefix = format!("image: \"hits-{svc}:");
            let start = compose.find(&prefix).unwrap() + prefix.len();
            compose[start..start + 12].to_owned()
        };
        assert_eq!(tag(&a, "web"), tag(&b, "web"), "web did not change");
        assert_eq!(tag(&a, "redis"), tag(&b, "redis"));
        assert_ne!(tag(&a, "lb"), tag(&b, "lb"), "the lb config changed");
    }

    #[test]
    fn a_config_label_changes_only_with_its_own_service() {
        let label = |r: &Rendered, service: &str| {
            let doc: serde_yaml::Value = serde_yaml::from_str(&r.files["compose.yaml"]).unwrap();
            doc["services"][service]["labels"]["org.provision.config"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let a = render(&project("project: hits\n")).unwrap();
        let b = render(&project("project: hits\nlb:\n  balance: leastconn\n")).unwrap();
        for service in ["consul", "registrator", "redis", "web"] {
            assert_eq!(label(&a, service), label(&b, service), "{service}");
        }
        assert_ne!(label(&a, "lb"), label(&b, "lb"));
        let c = render(&project("project: hits\nredis:\n  appendfsync: always\n")).unwrap();
        assert_ne!(label(&a, "redis"), label(&c, "redis"));
        assert_eq!(label(&a, "web"), label(&c, "web"));
        assert_eq!(label(&a, "web").len(), 12);
    }

    #[test]
    fn manifest_lists_every_other_file() {
        let r = render(&project("project: hits\n")).unwrap();
        let listed = parse_manifest(&r.files[MANIFEST]);
        assert_eq!(listed.len(), r.files.len() - 1);
        assert_eq!(
            listed["compose.yaml"],
            sha256_hex(r.files["compose.yaml"].as_bytes())
        );
    }

    #[test]
    fn ensure_rendered_writes_once_and_says_where_the_stack_is() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("provision.yaml");
        std::fs::write(&spec, "project: hits\ndiscovery: docker-dns\n").unwrap();
        let first = ensure_rendered(
            &spec,
            Path::new("generated"),
            &Printer::quiet(),
            Writes::Allowed,
        )
        .unwrap();
        assert!(first.out_dir.is_absolute());
        assert_eq!(first.compose_file, first.out_dir.join("compose.yaml"));
        assert!(first.compose_file.is_file());
        assert_eq!(
            first.plan.discovery,
            crate::spec::plan::Discovery::DockerDns
        );
        // A write replaces the directory (a rename), so an unchanged inode means nothing was written.
        let inode = || {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(&first.out_dir).unwrap().ino()
        };
        let before = inode();
        let second = ensure_rendered(
            &spec,
            Path::new("generated"),
            &Printer::quiet(),
            Writes::Allowed,
        )
        .unwrap();
        assert_eq!(inode(), before, "an unchanged render rewrote the directory");
        assert_eq!(second.out_dir, first.out_dir);

        // A hand edit stops `apply` too, as a usage error (exit 2).
        std::fs::write(first.out_dir.join("lb/haproxy.cfg"), "# mine\n").unwrap();
        let err = ensure_rendered(
            &spec,
            Path::new("generated"),
            &Printer::quiet(),
            Writes::Allowed,
        )
        .unwrap_err();
        assert!(err.chain().any(|c| c.is::<UsageError>()), "{err:#}");
    }

    #[test]
    fn a_dry_run_never_writes_the_output_directory() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("provision.yaml");
        std::fs::write(&spec, "project: hits\ndiscovery: docker-dns\n").unwrap();
        let out = Path::new("generated");
        let fresh = ensure_rendered(&spec, out, &Printer::quiet(), Writes::DryRun).unwrap();
        assert!(
            !dir.path().join("generated").exists(),
            "dry run created generated/"
        );
        assert!(
            fresh.compose_file.is_file(),
            "the scratch copy exists while in use"
        );
        let scratch = fresh.out_dir.clone();
        drop(fresh);
        assert!(!scratch.exists(), "the scratch copy outlived the dry run");

        ensure_rendered(&spec, out, &Printer::quiet(), Writes::Allowed).unwrap();
        let before = std::fs::read(dir.path().join("generated/lb/haproxy.cfg")).unwrap();
        std::fs::write(
            &spec,
            "project: hits\ndiscovery: docker-dns\nlb:\n  balance: leastconn\n",
        )
        .unwrap();
        let stale = ensure_rendered(&spec, out, &Printer::quiet(), Writes::DryRun).unwrap();
        assert_ne!(
            stale.out_dir,
            dir.path().join("generated").canonicalize().unwrap()
        );
        assert_eq!(
            std::fs::read(dir.path().join("generated/lb/haproxy.cfg")).unwrap(),
            before,
            "dry run changed generated/"
        );
        assert!(
            std::fs::read_to_string(stale.out_dir.join("lb/haproxy.cfg"))
                .unwrap()
                .contains("leastconn")
        );
    }
}
