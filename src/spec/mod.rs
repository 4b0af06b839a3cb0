//! `provision.yaml`: the serde model, per-value format rules, cross-field validation, and the
//! validated `Plan` that rendering consumes. Errors name the file, line, column and field, and
//! every problem in the file is reported at once (see `parse.rs`).

pub mod find;
pub mod inputs;
mod locate;
pub mod memory;
pub mod model;
pub mod number;
mod parse;
pub mod plan;
pub mod rules;
pub mod stack;
mod tls;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use model::Spec;
pub use plan::Plan;
pub use stack::{Features, LiveConfig, Service};

/// The spec's file name when none is given.
pub const DEFAULT_FILE: &str = "provision.yaml";

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

/// Parses and validates spec text; `file` is only used in messages. Every problem is reported:
/// values that cannot be read, and the cross-field rules over what could be.
pub fn from_text(text: &str, file: &Path, base_dir: &Path) -> Result<Plan, SpecError> {
    let reading = parse::read(text);
    let mut problems = reading.problems;
    if let Some(spec) = reading.spec {
        match validate::validate(&spec, base_dir) {
            Ok(plan) if problems.is_empty() => return Ok(plan),
            Ok(_) => {}
            Err(violations) => {
                let unreadable = |field: &str| {
                    reading.unreadable.iter().any(|bad| {
                        field == bad
                            || field.starts_with(&format!("{bad}."))
                            || bad.starts_with(&format!("{field}."))
                    })
                };
                problems.extend(
                    violations
                        .into_iter()
                        .filter(|v| !v.fields().any(unreadable))
                        .map(|v| located_violation(text, v)),
                );
            }
        }
    }
    // In the order of the file; problems without a line (a missing field) last.
    problems.sort_by_key(|p| (p.line.is_none(), p.line, p.column));
    Err(SpecError {
        file: file.to_owned(),
        problems,
    })
}

fn located_violation(text: &str, v: validate::Violation) -> Problem {
    // Point at a field as written: one left at its default has no line, so the same problem
    // told from a related field that is written is the better report.
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
}

/// A problem with `field` found after the spec was validated (a secret's variable unset, an
/// env file that cannot be read at apply time), located in the spec at `path` like any other.
pub fn problem_at(path: &Path, field: &str, message: String) -> SpecError {
    let position = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| locate::locate(&text, field));
    SpecError {
        file: path.to_owned(),
        problems: vec![Problem {
            field: Some(field.to_owned()),
            line: position.map(|p| p.line),
            column: position.map(|p| p.column),
            message,
        }],
    }
}

/// The directory a spec's relative paths resolve from.
pub fn base_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Parses spec text into the serde model (no cross-field rules); every value that cannot be
/// read is a problem.
pub fn parse(text: &str) -> Result<Spec, Vec<Problem>> {
    let reading = parse::read(text);
    match reading.spec {
        Some(spec) if reading.problems.is_empty() => Ok(spec),
        _ => Err(reading.problems),
    }
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
    fn access_log_defaults_to_sampled_and_reads_off_as_a_word() {
        let plan = from_text("project: hits\n", Path::new("p.yaml"), Path::new(".")).unwrap();
        assert_eq!(plan.lb.access_log, model::AccessLog::Sampled);
        // `off` is a YAML 1.1 boolean; the spec reads it as the word it is written as.
        for (text, want) in [
            ("off", model::AccessLog::Off),
            ("sampled", model::AccessLog::Sampled),
            ("full", model::AccessLog::Full),
        ] {
            let spec = format!("project: hits\nlb:\n  access_log: {text}\n");
            let plan = from_text(&spec, Path::new("p.yaml"), Path::new(".")).unwrap();
            assert_eq!(plan.lb.access_log, want, "{text}");
        }
        let e = err("project: hits\nlb:\n  access_log: verbose\n");
        assert!(
            e.contains(
                ":3:15: lb.access_log: must be one of `off`, `sampled`, `full`, got `verbose`"
            ),
            "{e}"
        );
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
    fn every_mistake_is_reported_in_one_pass() {
        let e = err("project: hits\nweb:\n  replicas: [2]\n  port: 70000\n  prot: 1\nlb:\n  balance: fastest\n  stats_port: -1\n");
        assert!(e.contains("(5 problems)"), "{e}");
        for wanted in [
            ":3:13: web.replicas: must be a whole number, got a list",
            ":4:9: web.port: must be a port between 1 and 65535, got 70000",
            ":5:3: web: unknown field `prot`; did you mean `port`?",
            ":7:12: lb.balance: must be one of `roundrobin`, `leastconn`, `source`, `first`, `random`, got `fastest`",
            ":8:15: lb.stats_port: must be a port between 1 and 65535, got -1",
        ] {
            assert!(e.contains(wanted), "{wanted}\n{e}");
        }
    }

    /// Every leaf field of the model, as dotted paths: those a default spec serializes, and the
    /// optional ones it leaves out.
    fn every_field() -> Vec<String> {
        fn leaves(prefix: &str, value: &serde_yaml::Value, out: &mut Vec<String>) {
            match value {
                serde_yaml::Value::Mapping(map) => {
                    for (key, value) in map {
                        let key = key.as_str().unwrap();
                        let path = if prefix.is_empty() {
                            key.to_owned()
                        } else {
                            format!("{prefix}.{key}")
                        };
                        leaves(&path, value, out);
                    }
                }
                _ => out.push(prefix.to_owned()),
            }
        }
        let spec = parse("project: hits\n").unwrap();
        let mut fields = Vec::new();
        leaves("", &serde_yaml::to_value(&spec).unwrap(), &mut fields);
        for optional in [
            "target.registry",
            "images.redis",
            "web.expect.status",
            "web.expect.contains",
        ] {
            if !fields.iter().any(|f| f == optional) {
                fields.push(optional.to_owned());
            }
        }
        fields
    }

    #[test]
    fn every_field_written_wrong_at_once_is_one_problem_each() {
        // A list is no field's value: each field is a problem of its own, all in one pass, and
        // no cross-field rule speaks about the defaults that stood in for them.
        let fields = every_field();
        assert!(fields.len() >= 29, "{fields:?}");
        let mut tree = serde_yaml::Mapping::new();
        for field in &fields {
            let mut node = &mut tree;
            let parts: Vec<&str> = field.split('.').collect();
            for part in &parts[..parts.len() - 1] {
                node = node
                    .entry((*part).into())
                    .or_insert_with(|| serde_yaml::Mapping::new().into())
                    .as_mapping_mut()
                    .unwrap();
            }
            node.insert(parts[parts.len() - 1].into(), vec![1].into());
        }
        let text = serde_yaml::to_string(&tree).unwrap();
        let err = from_text(&text, Path::new("p.yaml"), Path::new(".")).unwrap_err();
        let named: Vec<&str> = err
            .problems
            .iter()
            .map(|p| p.field.as_deref().unwrap_or("?"))
            .collect();
        let mut expected: Vec<&str> = fields.iter().map(String::as_str).collect();
        let mut got = named.clone();
        expected.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, expected, "{err}");
        for problem in &err.problems {
            assert!(problem.line.is_some(), "{problem:?}");
            assert!(problem.message.ends_with("got a list"), "{problem:?}");
        }
    }

    #[test]
    fn quoted_numbers_are_numbers() {
        let plan = from_text(
            "project: hits\nweb:\n  replicas: \"3\"\n  port: '5001'\nlb:\n  max_replicas: \"12\"\n",
            Path::new("p.yaml"),
            Path::new("."),
        )
        .unwrap();
        assert_eq!((plan.web.replicas, plan.web.port), (3, 5001));
        assert_eq!(plan.lb.max_replicas, 12);
        let e = err("project: hits\nweb:\n  replicas: \"3.0\"\n");
        assert!(
            e.contains(":3:13: web.replicas: must be a whole number, got \"3.0\""),
            "{e}"
        );
    }

    #[test]
    fn a_rule_over_an_unreadable_field_is_not_told_against_its_default() {
        // max_replicas cannot be read, so "replicas 12 > lb.max_replicas (10)" would be about
        // a default the user never wrote.
        let e = err("project: hits\nweb:\n  replicas: 12\nlb:\n  max_replicas: many\n");
        assert!(
            e.contains("(1 problem)") && e.contains("lb.max_replicas: must be a whole number"),
            "{e}"
        );
        // A rule that does not involve the unreadable field still speaks.
        let e = err("project: hits\nweb:\n  replicas: 12\n  port: x\n");
        assert!(
            e.contains("(2 problems)")
                && e.contains("web.replicas: must be between 1 and lb.max_replicas (10), got 12"),
            "{e}"
        );
    }

    #[test]
    fn the_document_itself_must_be_a_mapping_with_a_project() {
        let e = err("- project: hits\n");
        assert!(e.contains("provision.yaml:1: the spec must be a mapping of fields such as `project: NAME`, got a list"), "{e}");
        let e = err("# nothing yet\n");
        assert!(
            e.contains("provision.yaml:1: the spec is empty; it needs at least `project: NAME`"),
            "{e}"
        );
        let e = err("web:\n  replicas: 2\n");
        assert!(
            e.contains("provision.yaml: project: missing; the spec needs at least `project: NAME`"),
            "{e}"
        );
        // A bad project is reported once, not again as missing.
        let e = err("project: Hits!\n");
        assert!(
            e.contains("(1 problem)") && e.contains("invalid project name"),
            "{e}"
        );
    }

    #[test]
    fn the_lbs_placement_is_the_edge_now() {
        let e = err("project: hits\ntarget:\n  placement:\n    lb: node.role == worker\n");
        assert!(
            e.contains("target.placement.lb: the lb now runs on every edge node: write `edge: node.role == worker` under `target` instead"),
            "{e}"
        );
        let plan = from_text(
            "project: hits\ntarget:\n  kind: swarm\n  registry: r:5000\n  edge: node.labels.edge == yes\nlb:\n  server_timeout: 2s\n",
            Path::new("p.yaml"),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(plan.swarm().unwrap().edge, "node.labels.edge == yes");
        assert_eq!(plan.lb.server_timeout, "2s");
        let e = err("project: hits\nlb:\n  server_timeout: 50ms\n");
        assert!(
            e.contains("lb.server_timeout: must be between 100ms and 60m, got 50ms"),
            "{e}"
        );
    }

    #[test]
    fn a_number_where_text_belongs_is_told_to_be_quoted_only_when_that_helps() {
        let e = err("project: 2024\nlb:\n  check_interval: 5\n");
        assert!(
            e.contains(":1:10: project: must be a project name, got 2024; put it in quotes to mean the text: \"2024\""),
            "{e}"
        );
        // "5" is no duration either: no advice to quote it.
        assert!(
            e.contains(":3:19: lb.check_interval: must be a duration such as 2s, got 5\n")
                || e.ends_with(":3:19: lb.check_interval: must be a duration such as 2s, got 5"),
            "{e}"
        );
    }

    #[test]
    fn a_key_written_twice_is_pointed_at_where_it_is_repeated() {
        let e = err("project: hits\nweb:\n  replicas: 1\n  port: 5000\n  replicas: 2\n");
        assert!(
            e.contains(
                "provision.yaml:5:3: web: `replicas` is written a second time here; keep one"
            ),
            "{e}"
        );
    }

    #[test]
    fn integer_keys_are_field_names_not_positions() {
        // serde reads an integer key as a field's position; `0: hits` must not be `project`.
        let e = err("0: hits\n");
        assert!(e.contains("unknown field `0`"), "{e}");
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
    fn several_consul_servers_need_a_swarm_in_consul_dns_and_an_odd_count() {
        const SWARM: &str = "project: hits\ntarget:\n  kind: swarm\n  registry: r:5000\n";
        let e = err(&format!(
            "{SWARM}discovery: consul-dns\nconsul:\n  servers: 2\n"
        ));
        assert!(
            e.contains("provision.yaml:7:12: consul.servers: 2 consul servers: use 1, 3 or 5"),
            "{e}"
        );
        let e = err("project: hits\ndiscovery: consul-dns\nconsul:\n  servers: 3\n");
        assert!(
            e.contains(":4:3: consul.servers: 3 consul servers need a swarm target"),
            "{e}"
        );
        let e = err(&format!("{SWARM}consul:\n  servers: 3\n"));
        assert!(
            e.contains(":6:3: consul.servers: 3 consul servers need discovery consul-dns"),
            "{e}"
        );
        let e = err(&format!(
            "{SWARM}  placement:\n    consul: node.labels.a == b\ndiscovery: consul-dns\n\
             consul:\n  servers: 3\n"
        ));
        assert!(
            e.contains(":6:5: target.placement.consul: several consul servers run one per node"),
            "{e}"
        );
        let plan = from_text(
            &format!("{SWARM}discovery: consul-dns\nconsul:\n  servers: 5\n"),
            Path::new("p.yaml"),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(plan.consul.servers, 5);
        let plan = from_text(SWARM, Path::new("p.yaml"), Path::new(".")).unwrap();
        assert_eq!(plan.consul.servers, 1, "one server unless asked");
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
                ":6:13: web.expect.status: must be an HTTP status between 100 and 599, got 700"
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
        // lb.stats_port keeps its default 8404; the error must point at lb.port's line.
        let e = err("project: hits\nlb:\n  port: 8404\n");
        assert!(
            e.contains(
                "provision.yaml:3:3: lb.port: host port 8404 is already used by lb.stats_port"
            ),
            "{e}"
        );
        // consul is published only when the spec asks, and then its port collides too.
        let e = err("project: hits\nlb:\n  port: 8500\nconsul:\n  http_port: 8500\n");
        assert!(e.contains("host port 8500 is already used by"), "{e}");
        assert!(from_text(
            "project: hits\nlb:\n  port: 8500\n",
            Path::new("p.yaml"),
            Path::new(".")
        )
        .is_ok());
    }

    #[test]
    fn missing_app_dir_is_reported() {
        let e = err("project: hits\nweb:\n  app: no-such-dir\n");
        assert!(
            e.contains(":3:3: web.app: directory") && e.contains("does not exist"),
            "{e}"
        );
    }

    fn app_at(app: &str, allow: bool) -> (tempfile::TempDir, Result<Plan, SpecError>) {
        let root = tempfile::tempdir().unwrap();
        let spec_dir = root.path().join("spec");
        let outside = root.path().join("elsewhere");
        for dir in [spec_dir.join("app"), outside.clone()] {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
        }
        #[cfg(unix)]
        std::os::unix::fs::symlink(&outside, spec_dir.join("linked")).unwrap();
        let text = format!(
            "project: hits\ndiscovery: docker-dns\nweb:\n  app: {app}\n  app_outside_spec_dir: {allow}\n"
        );
        let plan = from_text(&text, &spec_dir.join("provision.yaml"), &spec_dir);
        (root, plan)
    }

    #[test]
    #[cfg(unix)]
    fn web_app_stays_inside_the_spec_directory_unless_allowed() {
        assert!(app_at("app", false).1.is_ok());
        assert!(app_at("./app/../app", false).1.is_ok());
        for escape in ["../elsewhere", "linked"] {
            let e = app_at(escape, false).1.unwrap_err().to_string();
            assert!(
                e.contains(":4:3: web.app: directory")
                    && e.contains("outside the spec's directory")
                    && e.contains("web.app_outside_spec_dir: true"),
                "{escape}: {e}"
            );
            assert!(
                app_at(escape, true).1.is_ok(),
                "{escape} allowed explicitly"
            );
        }
    }
}
