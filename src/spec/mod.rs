//! `provision.yaml`: the serde model, per-value format rules, cross-field validation, and the
//! validated `Plan` that rendering consumes. Errors name the file, line, column and field.

mod locate;
pub mod model;
pub mod plan;
pub mod rules;
pub mod stack;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use model::Spec;
pub use plan::Plan;
pub use stack::{Features, LiveConfig, Service};

/// The spec could not be read, parsed or validated. Always a user error (exit code 2).
#[derive(Debug)]
pub struct SpecError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

/// One thing wrong with the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the field, when known.
    pub field: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        write!(
            f,
            "{} is not a valid spec ({count} problem{})",
            self.file.display(),
            if count == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            write!(f, "\n  {}", self.file.display())?;
            if let Some(line) = problem.line {
                write!(f, ":{line}")?;
                if let Some(column) = problem.column {
                    write!(f, ":{column}")?;
                }
            }
            f.write_str(": ")?;
            if let Some(field) = &problem.field {
                write!(f, "{field}: ")?;
            }
            f.write_str(&problem.message)?;
        }
        Ok(())
    }
}

// Display is written out above: the problem list is not one format string.
impl std::error::Error for SpecError {}

/// Reads, parses and validates the spec at `path`.
pub fn load(path: &Path) -> Result<Plan, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        let message = if err.kind() == std::io::ErrorKind::NotFound {
            "file not found; create one with `provision init` or pass --spec".to_owned()
        } else {
            format!("cannot read the file: {err}")
        };
        SpecError {
            file: path.to_owned(),
            problems: vec![Problem {
                field: None,
                line: None,
                column: None,
                message,
            }],
        }
    })?;
    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    from_text(&text, path, base_dir)
}

/// Parses and validates spec text; `file` is only used in messages.
pub fn from_text(text: &str, file: &Path, base_dir: &Path) -> Result<Plan, SpecError> {
    let spec = parse(text).map_err(|problem| SpecError {
        file: file.to_owned(),
        problems: vec![problem],
    })?;
    validate::validate(&spec, base_dir).map_err(|violations| SpecError {
        file: file.to_owned(),
        problems: violations
            .into_iter()
            .map(|v| {
                // Point at a field as written: one left at its default has no line, so the same
                // problem told from a related field that is written is the better report.
                let v = match v.alternative {
                    Some(alt)
                        if locate::locate_exact(text, &v.field).is_none()
                            && locate::locate_exact(text, &alt.field).is_some() =>
                    {
                        *alt
                    }
                    _ => v,
                };
                let position = locate::locate(text, &v.field);
                Problem {
                    line: position.map(|p| p.line),
                    column: position.map(|p| p.column),
                    field: Some(v.field),
                    message: v.message,
                }
            })
            .collect(),
    })
}

/// Parses spec text into the serde model (no cross-field rules).
pub fn parse(text: &str) -> Result<Spec, Problem> {
    serde_yaml::from_str::<Spec>(text).map_err(|err| problem_from_yaml(&err, text))
}

/// serde_yaml writes "path: message at line L column C"; split it into our parts.
fn problem_from_yaml(err: &serde_yaml::Error, text: &str) -> Problem {
    let location = err.location();
    let mut message = err.to_string();
    if let Some(loc) = &location {
        let suffix = format!(" at line {} column {}", loc.line(), loc.column());
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_owned();
        }
    }
    let mut field = None;
    // serde_yaml prefixes the dotted path ("web.port: invalid type ..."); "." is the root.
    if let Some((path, rest)) = message.split_once(": ") {
        if !path.contains(' ') && path != "." {
            field = Some(path.to_owned());
            message = rest.to_owned();
        }
    }
    if message == "EOF while parsing a value" || message.contains("missing field `project`") {
        message = format!("{message}; the spec needs at least `project: NAME`");
    }
    let mut line = location.as_ref().map(|l| l.line());
    // serde_yaml tells no position for a second document; point at where it starts.
    if line.is_none() && message.contains("more than one document") {
        line = second_document_line(text);
        message = "a second YAML document starts here; the spec is one document (remove this `---` or what follows it)".to_owned();
    }
    Problem {
        field,
        line,
        column: location.as_ref().map(|l| l.column()),
        message,
    }
}

/// The line where a second YAML document starts (a second `---`, a directive, content after
/// `...`), found with the same parser: the first line at which the text up to it holds a
/// well-formed first document and the start of another. Only called on the error path.
fn second_document_line(text: &str) -> Option<usize> {
    use serde::Deserialize as _;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    (1..=lines.len()).find(|&count| {
        let prefix = lines[..count].concat();
        let documents: Vec<bool> = serde_yaml::Deserializer::from_str(&prefix)
            .take(2)
            .map(|document| serde::de::IgnoredAny::deserialize(document).is_ok())
            .collect();
        documents.len() == 2 && documents[0]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        from_text(text, Path::new("provision.yaml"), Path::new("."))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn minimal_spec_gets_defaults() {
        let plan = from_text("project: hits\n", Path::new("p.yaml"), Path::new(".")).unwrap();
        assert_eq!(plan.project, "hits");
        assert_eq!(plan.discovery, model::Discovery::ConsulTemplate);
        assert_eq!(plan.web.replicas, 1);
        assert_eq!(plan.lb.max_replicas, 10);
    }

    #[test]
    fn unknown_field_names_field_and_line() {
        let e = err("project: hits\nweb:\n  replica: 2\n");
        assert!(
            e.contains("provision.yaml:3:3: web: unknown field `replica`"),
            "{e}"
        );
        assert!(e.contains("`replicas`"), "{e}");
    }

    #[test]
    fn wrong_type_names_field_and_line() {
        let e = err("project: hits\nweb:\n  port: lots\n");
        assert!(e.contains(":3:") && e.contains("web.port"), "{e}");
    }

    #[test]
    fn newline_in_name_is_rejected_with_line() {
        let e = err("project: \"hits\\nevil: 1\"\n");
        assert!(
            e.contains("provision.yaml:1:") && e.contains("project") && e.contains("\\n"),
            "{e}"
        );
    }

    #[test]
    fn a_second_document_is_reported_where_it_starts() {
        // Found by tests/it/props.rs: serde_yaml gives this error no position.
        let e = err("project: hits\n---\nweb:\n  replicas: 2\n");
        assert!(
            e.contains("provision.yaml:2: a second YAML document starts here"),
            "{e}"
        );
        let e = err("# spec\n---\nproject: hits\n...\n\nproject: again\n");
        assert!(
            e.contains("provision.yaml:6: a second YAML document"),
            "{e}"
        );
        let e = err("project: hits\n%YAML 1.1\nweb: {}\n");
        assert!(
            e.contains("provision.yaml:2: a second YAML document"),
            "{e}"
        );
    }

    #[test]
    fn cross_field_rules_name_line() {
        let e = err(
            "project: hits\nweb:\n  replicas: 20\nlb:\n  max_replicas: 5\n  stats_port: 8080\n",
        );
        assert!(e.contains("provision.yaml:3:3: web.replicas: must be between 1 and lb.max_replicas (5), got 20"), "{e}");
        assert!(
            e.contains(
                "provision.yaml:6:3: lb.stats_port: host port 8080 is already used by lb.port"
            ),
            "{e}"
        );
    }

    #[test]
    fn max_replicas_above_the_modes_ceiling_names_line_and_ceiling() {
        let e = err("project: hits\ndiscovery: docker-dns\nlb:\n  max_replicas: 257\n");
        assert!(
            e.contains("provision.yaml:4:3: lb.max_replicas: must be between 1 and 256, the most replicas docker-dns discovery can route to, got 257"),
            "{e}"
        );
    }

    #[test]
    fn health_path_cannot_be_the_counter() {
        let e = err("project: hits\nweb:\n  health_path: /\n");
        assert!(e.contains(":3:3: web.health_path: must not be `/`"), "{e}");
    }

    #[test]
    fn consul_dns_needs_the_builtin_app() {
        let e = err("project: hits\ndiscovery: consul-dns\nweb:\n  app: ./app\n");
        assert!(
            e.contains(":4:3: web.app: consul-dns works with the built-in app only"),
            "{e}"
        );
        assert!(
            e.contains("your app works with discovery docker-dns")
                && e.contains("or consul-template"),
            "{e}"
        );
    }

    #[test]
    fn web_expect_is_for_your_own_app_and_checked() {
        let own = |extra: &str| {
            from_text(
                &format!(
                    "project: hits
discovery: docker-dns
web:
  app: app
{extra}"
                ),
                Path::new("provision.yaml"),
                Path::new("tests/fixtures/custom"),
            )
        };
        let plan = own("").unwrap();
        assert_eq!(plan.web.expect, plan::PlanExpect::default());
        let plan = own("  expect:\n    status: 200\n    contains: \"hello from\"\n").unwrap();
        assert_eq!(plan.web.expect.status, Some(200));
        assert_eq!(plan.web.expect.contains.as_deref(), Some("hello from"));
        let e = own("  expect:\n    status: 700\n").unwrap_err().to_string();
        assert!(
            e.contains(
                ":6:5: web.expect.status: must be an HTTP status between 100 and 599, got 700"
            ),
            "{e}"
        );
        let e = own("  expect:\n    contains: \"a\\nb\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":6:15:") && e.contains("printable text on one line"),
            "{e}"
        );
        let e = err("project: hits\nweb:\n  expect:\n    contains: hello\n");
        assert!(
            e.contains(
                ":4:5: web.expect.contains: applies to your own app (web.app: <directory>) only"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_port_collision_with_a_default_points_at_the_written_field() {
        // consul.http_port keeps its default 8500; the error must point at lb.port's line.
        let e = err("project: hits\nlb:\n  port: 8500\n");
        assert!(
            e.contains(
                "provision.yaml:3:3: lb.port: host port 8500 is already used by consul.http_port"
            ),
            "{e}"
        );
    }

    #[test]
    fn missing_app_dir_is_reported() {
        let e = err("project: hits\nweb:\n  app: no-such-dir\n");
        assert!(
            e.contains(":3:3: web.app: directory") && e.contains("does not exist"),
            "{e}"
        );
    }
}
