//! Blueprints: the minijinja templates in `blueprints/`, embedded in the binary so provision
//! works from any directory, and overridable per project by a file at the same relative path
//! under `<spec dir>/blueprints/`.
//!
//! The environment is configured deliberately rather than by file extension:
//! - undefined variables are errors (`UndefinedBehavior::Strict`), so a typo fails the render;
//! - no auto-escaping by extension. Instead every template gets a custom auto-escape mode whose
//!   formatter prints numbers and booleans as they are and *refuses* any string that did not go
//!   through one of the format filters (`filters.rs`). Forgetting `| yaml` is a render error,
//!   not a quietly broken or injectable file;
//! - trailing newlines are kept, and block tags on their own line leave no blank line behind
//!   (`trim_blocks`, `lstrip_blocks`), so templates can be laid out for reading.

pub mod filters;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use include_dir::{include_dir, Dir};
use minijinja::value::{Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State, UndefinedBehavior};

/// The blueprints shipped with provision.
static EMBEDDED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/blueprints");

/// Template files end in `.j2`; the output path is the name without it.
pub const SUFFIX: &str = ".j2";

/// Where a blueprint was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Embedded,
    /// A project's local copy.
    Local(PathBuf),
}

/// The template environment for one project.
pub struct Blueprints {
    env: Environment<'static>,
    used_local: Arc<Mutex<Vec<String>>>,
}

impl Blueprints {
    /// Blueprints for a project whose spec lives in `spec_dir`: a file under
    /// `<spec_dir>/blueprints/` replaces the embedded one of the same name.
    pub fn for_project(spec_dir: &Path) -> Self {
        let local_dir = spec_dir.join("blueprints");
        let used_local = Arc::new(Mutex::new(Vec::new()));
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_auto_escape_callback(|_name| AutoEscape::Custom("provision"));
        env.set_formatter(strict_formatter);
        filters::register(&mut env);
        let loader_used = Arc::clone(&used_local);
        env.set_loader(move |name| {
            let found = load(&local_dir, name)?;
            if let Some((_, Origin::Local(_))) = &found {
                let mut used = loader_used.lock().expect("loader bookkeeping");
                if !used.iter().any(|n| n == name) {
                    used.push(name.to_owned());
                }
            }
            Ok(found.map(|(text, _)| text))
        });
        Blueprints { env, used_local }
    }

    /// Renders the blueprint `name` (such as `lb/haproxy.cfg.j2`) with `context`.
    pub fn render(&self, name: &str, context: &Value) -> anyhow::Result<String> {
        let template = self
            .env
            .get_template(name)
            .map_err(|err| anyhow::anyhow!("{}", describe(&err)))?;
        let mut text = template
            .render(context)
            .map_err(|err| anyhow::anyhow!("{}", describe(&err)))?;
        // Every generated file ends with a newline, whatever a local blueprint does.
        if !text.ends_with('\n') {
            text.push('\n');
        }
        Ok(text)
    }

    /// Names of the blueprints that came from the project's local directory so far.
    pub fn local_overrides(&self) -> Vec<String> {
        let mut names = self.used_local.lock().expect("loader bookkeeping").clone();
        names.sort();
        names
    }
}

/// Every embedded blueprint name, sorted (partials, whose file name starts with `_`, included).
pub fn embedded_names() -> Vec<String> {
    fn walk(dir: &Dir<'static>, names: &mut Vec<String>) {
        for file in dir.files() {
            let name = file.path().to_string_lossy().into_owned();
            if name.ends_with(SUFFIX) {
                names.push(name);
            }
        }
        for sub in dir.dirs() {
            walk(sub, names);
        }
    }
    let mut names = Vec::new();
    walk(&EMBEDDED, &mut names);
    names.sort();
    names
}

/// The embedded text of a blueprint, if it exists.
pub fn embedded_source(name: &str) -> Option<&'static str> {
    EMBEDDED.get_file(name).and_then(|f| f.contents_utf8())
}

fn load(local_dir: &Path, name: &str) -> Result<Option<(String, Origin)>, Error> {
    // Names come from our own code and `{% include %}`; keep both inside the blueprint tree.
    if name.starts_with('/') || name.split('/').any(|part| part == ".." || part.is_empty()) {
        return Err(Error::new(
            ErrorKind::TemplateNotFound,
            format!("blueprint name {name:?} must be a relative path inside blueprints/"),
        ));
    }
    let local = local_dir.join(name);
    if local.is_file() {
        let text = std::fs::read_to_string(&local).map_err(|err| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("cannot read local blueprint {}: {err}", local.display()),
            )
        })?;
        return Ok(Some((text, Origin::Local(local))));
    }
    Ok(embedded_source(name).map(|text| (text.to_owned(), Origin::Embedded)))
}

/// Prints numbers and booleans; prints strings only when a format filter has marked them safe.
fn strict_formatter(out: &mut Output, _state: &State, value: &Value) -> Result<(), Error> {
    if value.is_safe() {
        return out
            .write_str(value.as_str().unwrap_or_default())
            .map_err(Error::from);
    }
    match value.kind() {
        ValueKind::Number | ValueKind::Bool => write!(out, "{value}").map_err(Error::from),
        kind => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "{value:?} ({kind}) is printed without a format filter; write it as \
                 `{{{{ value | yaml }}}}` (or json, py, sh, haproxy, word, hcl, gotmpl, mermaid) \
                 for the format of this file"
            ),
        )),
    }
}

/// minijinja's message with the template name and line, on one line, without debug dumps.
fn describe(err: &Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_str(bp: &Blueprints, source: &str, ctx: Value) -> Result<String, Error> {
        let mut env = bp.env.clone();
        env.add_template_owned("t.j2", source.to_owned())?;
        env.get_template("t.j2")?.render(ctx)
    }

    #[test]
    fn every_embedded_blueprint_parses() {
        let bp = Blueprints::for_project(Path::new("/nonexistent"));
        let names = embedded_names();
        assert!(names.len() >= 10, "{names:?}");
        for name in names {
            bp.env
                .get_template(&name)
                .unwrap_or_else(|e| panic!("{name}: {}", describe(&e)));
        }
    }

    #[test]
    fn unfiltered_strings_are_refused() {
        let bp = Blueprints::for_project(Path::new("/nonexistent"));
        let ctx = Value::from_serialize(serde_json::json!({"name": "x\ny", "port": 80}));
        let err = render_str(&bp, "a: {{ name }}\n", ctx.clone()).unwrap_err();
        assert!(
            describe(&err).contains("without a format filter"),
            "{}",
            describe(&err)
        );
        assert_eq!(
            render_str(&bp, "a: {{ name | yaml }} {{ port }}\n", ctx).unwrap(),
            "a: \"x\\ny\" 80\n"
        );
    }

    #[test]
    fn undefined_variables_are_errors() {
        let bp = Blueprints::for_project(Path::new("/nonexistent"));
        let err = render_str(&bp, "{{ missing | yaml }}", Value::from(())).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UndefinedError);
    }

    #[test]
    fn local_blueprints_override_embedded_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("blueprints/lb")).unwrap();
        std::fs::write(
            dir.path().join("blueprints/lb/haproxy.cfg.j2"),
            "# mine {{ plan.project | haproxy }}",
        )
        .unwrap();
        let bp = Blueprints::for_project(dir.path());
        let ctx = Value::from_serialize(serde_json::json!({"plan": {"project": "hits"}}));
        assert_eq!(
            bp.render("lb/haproxy.cfg.j2", &ctx).unwrap(),
            "# mine hits\n",
            "a missing final newline is added"
        );
        assert_eq!(bp.local_overrides(), ["lb/haproxy.cfg.j2"]);
    }

    #[test]
    fn names_cannot_escape_the_blueprint_tree() {
        assert!(load(Path::new("/tmp"), "../etc/passwd").is_err());
        assert!(load(Path::new("/tmp"), "/etc/passwd").is_err());
        assert!(load(Path::new("/tmp"), "lb//x").is_err());
    }
}
