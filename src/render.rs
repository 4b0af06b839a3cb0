//! Plan → generated files. Rendering happens in memory first (`render`: relative path →
//! contents, deterministic byte for byte); only then are the files written atomically
//! (`output::write`) or compared with what is on disk (`check::compare`).
//!
//! Two passes: the build contexts (web/, redis/, lb/) are rendered first and hashed, so that
//! compose.yaml can name each built image `<project>-<service>:<12 hex of the context's
//! sha256>`: an unchanged context keeps its tag (Compose builds nothing), a changed one gets a
//! new tag (Compose rebuilds and recreates that service only).

pub mod check;
pub mod output;
pub mod paths;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::blueprint::{self, Blueprints};
use crate::spec::stack::BuildContext;
use crate::spec::{self, Features, Plan};
use crate::UsageError;

/// The manifest of the last render: `<sha256>  <path>` per file (the `sha256sum` format), used
/// to tell files provision wrote from files edited by hand.
pub const MANIFEST: &str = ".provision-manifest";

/// HashiCorp's release signing key (the one hashicorp/docker-consul and HashiCorp's other
/// Dockerfiles fetch by this full fingerprint).
pub const HASHICORP_PGP_FINGERPRINT: &str = "C874011F0AB405110D02105534365D9472D7468F";

/// Where a rendered stack is, for the commands that run it.
#[derive(Debug, Clone)]
pub struct RenderedStack {
    pub plan: Plan,
    /// Absolute.
    pub out_dir: PathBuf,
    pub compose_file: PathBuf,
    /// Whether this call wrote anything.
    pub changed: bool,
}

/// Loads the spec, renders, writes if different (refusing hand edits), returns where the stack is.
/// `out` is relative to the spec's directory when relative. Progress goes to stderr unless `quiet`.
pub fn ensure_rendered(spec_path: &Path, out: &Path, quiet: bool) -> anyhow::Result<RenderedStack> {
    let project = Project::load(spec_path, out)?;
    let rendered = render(&project)?;
    let outcome = output::write(&project.out_dir, &rendered.files, false)?;
    if !quiet {
        for name in &rendered.local_blueprints {
            eprintln!(
                "render: using local blueprint {}",
                project.local_blueprint_display(name)
            );
        }
        eprintln!(
            "render: {}",
            outcome.summary(&paths::display(&project.out_dir))
        );
    }
    Ok(RenderedStack {
        compose_file: project.out_dir.join("compose.yaml"),
        out_dir: project.out_dir,
        plan: project.plan,
        changed: outcome.changed(),
    })
}

/// The stack as last rendered, for commands that act on what runs (verify, status, destroy):
/// they must not rewrite files the running stack was started from. Notes on stderr when the
/// spec has changed since (unless `quiet`); fails when nothing was rendered yet.
pub fn rendered_stack(spec_path: &Path, out: &Path, quiet: bool) -> anyhow::Result<RenderedStack> {
    let project = Project::load(spec_path, out)?;
    let compose_file = project.out_dir.join("compose.yaml");
    if !compose_file.is_file() {
        return Err(UsageError(format!(
            "{} does not exist: nothing was rendered or applied yet; run `provision apply` first",
            paths::display(&compose_file)
        ))
        .into());
    }
    if !quiet {
        let rendered = render(&project)?;
        let stale = check::compare(&project.out_dir, &rendered.files)?;
        if !stale.is_empty() {
            eprintln!(
                "note: the spec has changed since {} was rendered ({} file(s) differ); this acts on the stack as rendered. `provision apply` brings it up to date.",
                paths::display(&project.out_dir),
                stale.len()
            );
        }
    }
    Ok(RenderedStack {
        compose_file,
        out_dir: project.out_dir,
        plan: project.plan,
        changed: false,
    })
}

/// A loaded spec and the directories it renders from and to.
#[derive(Debug, Clone)]
pub struct Project {
    pub plan: Plan,
    /// Absolute, with symlinks resolved.
    pub spec_dir: PathBuf,
    /// Absolute, normalized.
    pub out_dir: PathBuf,
}

impl Project {
    /// Loads and validates the spec; resolves `out` against the spec's directory.
    pub fn load(spec_path: &Path, out: &Path) -> anyhow::Result<Project> {
        let plan = spec::load(spec_path)?;
        let parent = spec_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let spec_dir = parent
            .canonicalize()
            .with_context(|| format!("resolving the spec's directory {}", parent.display()))?;
        let out_dir = paths::normalize(&spec_dir.join(out));
        if spec_dir.starts_with(&out_dir) {
            return Err(UsageError(format!(
                "--out {} would replace the directory that holds the spec; choose a directory inside it, such as `generated`",
                out.display()
            ))
            .into());
        }
        if let Some(app_dir) = &plan.web.app_dir {
            let app = paths::normalize(&spec_dir.join(app_dir));
            if out_dir.starts_with(&app) || app.starts_with(&out_dir) {
                return Err(UsageError(format!(
                    "--out {} and web.app {app_dir} overlap; the output directory must be outside the app's directory and not contain it",
                    out.display()
                ))
                .into());
            }
        }
        Ok(Project {
            plan,
            spec_dir,
            out_dir,
        })
    }

    fn local_blueprint_display(&self, name: &str) -> String {
        paths::display(&self.spec_dir.join("blueprints").join(name))
    }
}

/// The rendered files of one project.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// Relative path (with `/`) → contents, manifest included.
    pub files: BTreeMap<String, String>,
    /// Blueprints that came from the project's `blueprints/` directory.
    pub local_blueprints: Vec<String>,
}

/// Timings the blueprints share, in one place so they stay consistent with each other.
#[derive(Debug, Clone, Serialize)]
pub struct Tuning {
    /// consul-dns: how long a stopping replica waits after deregistering. Longer than HAProxy's
    /// `timeout resolve` plus a request's round trip, so HAProxy stops sending it requests first.
    pub drain_seconds: u64,
    /// HAProxy's DNS re-resolution interval.
    pub resolve_timeout: &'static str,
    /// gunicorn's time to finish in-flight requests after SIGTERM.
    pub graceful_timeout_seconds: u64,
    /// Compose's wait before SIGKILL: drain + graceful timeout + margin.
    pub stop_grace_period: String,
    /// consul-template quiescence (`wait { min max }`).
    pub template_wait_min: &'static str,
    pub template_wait_max: &'static str,
}

impl Tuning {
    pub fn standard() -> Self {
        let drain_seconds = 2;
        let graceful_timeout_seconds = 5;
        Tuning {
            drain_seconds,
            resolve_timeout: "1s",
            graceful_timeout_seconds,
            stop_grace_period: format!("{}s", drain_seconds + graceful_timeout_seconds + 5),
            template_wait_min: "500ms",
            template_wait_max: "2s",
        }
    }
}

#[derive(Serialize)]
struct Context<'a> {
    plan: &'a Plan,
    /// What the plan's choices imply, as flags the blueprints branch on (`stack.rs`).
    stack: Features,
    tags: BTreeMap<&'static str, String>,
    web_context: String,
    tuning: Tuning,
    hashicorp_pgp_fingerprint: &'static str,
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
        web_context,
        tuning: Tuning::standard(),
        hashicorp_pgp_fingerprint: HASHICORP_PGP_FINGERPRINT,
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

    let value = minijinja::Value::from_serialize(&context);
    for output in ["compose.yaml", "diagram.md"] {
        files.insert(output.to_owned(), render_one(blueprints, output, &value)?);
    }
    files.insert(MANIFEST.to_owned(), manifest(&files));
    Ok(Rendered {
        files,
        local_blueprints: blueprints.local_overrides(),
    })
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

fn image_tag(plan: &Plan, service: &str, hash: &str) -> String {
    format!("{}-{service}:{hash}", plan.project)
}

/// 12 hex digits of the sha256 over each file's relative path, length and contents, in path order.
pub fn hash_files(mut files: Vec<(String, Vec<u8>)>) -> String {
    files.sort();
    let mut hasher = Sha256::new();
    for (path, contents) in &files {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update((contents.len() as u64).to_le_bytes());
        hasher.update(contents);
    }
    hex(&hasher.finalize())[..12].to_owned()
}

/// Every regular file under `dir` (relative paths with `/`). Symlinks count by their target
/// path, as Docker sends them in the build context.
fn read_dir_files(dir: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut found = Vec::new();
    for entry in paths::walk(dir)? {
        if entry.file_type.is_symlink() {
            let target = std::fs::read_link(&entry.path)?;
            found.push((entry.rel, target.to_string_lossy().as_bytes().to_vec()));
        } else if entry.file_type.is_file() {
            let contents = std::fs::read(&entry.path)
                .with_context(|| format!("reading {}", entry.path.display()))?;
            found.push((entry.rel, contents));
        }
    }
    Ok(found)
}

/// `<sha256>  <path>` lines, sorted by path.
fn manifest(files: &BTreeMap<String, String>) -> String {
    files
        .iter()
        .filter(|(path, _)| path.as_str() != MANIFEST)
        .map(|(path, text)| format!("{}  {path}\n", sha256_hex(text.as_bytes())))
        .collect()
}

/// Parses a manifest; lines that do not parse are ignored (the file then counts as edited).
pub fn parse_manifest(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once("  "))
        .map(|(hash, path)| (path.to_owned(), hash.to_owned()))
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(spec: &str) -> Project {
        let plan = spec::from_text(spec, Path::new("provision.yaml"), Path::new(".")).unwrap();
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
        let first = ensure_rendered(&spec, Path::new("generated"), true).unwrap();
        assert!(first.changed);
        assert!(first.out_dir.is_absolute());
        assert_eq!(first.compose_file, first.out_dir.join("compose.yaml"));
        assert!(first.compose_file.is_file());
        assert_eq!(
            first.plan.discovery,
            crate::spec::plan::Discovery::DockerDns
        );
        let second = ensure_rendered(&spec, Path::new("generated"), true).unwrap();
        assert!(!second.changed);
        assert_eq!(second.out_dir, first.out_dir);

        // A hand edit stops `apply` too, as a usage error (exit 2).
        std::fs::write(first.out_dir.join("lb/haproxy.cfg"), "# mine\n").unwrap();
        let err = ensure_rendered(&spec, Path::new("generated"), true).unwrap_err();
        assert!(err.chain().any(|c| c.is::<UsageError>()), "{err:#}");
    }

    #[test]
    fn hashing_depends_on_paths_and_contents() {
        let h = |files: &[(&str, &str)]| {
            hash_files(
                files
                    .iter()
                    .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
                    .collect(),
            )
        };
        assert_eq!(h(&[("a", "1"), ("b", "2")]), h(&[("b", "2"), ("a", "1")]));
        assert_ne!(h(&[("a", "1")]), h(&[("b", "1")]));
        assert_ne!(h(&[("a", "12"), ("b", "")]), h(&[("a", "1"), ("b", "2")]));
        assert_eq!(h(&[]).len(), 12);
    }
}
