//! Property tests (proptest) of the spec loader, its rules and the renderer:
//!
//! - any YAML at all, in every field of provision.yaml, is either accepted or rejected with a
//!   `SpecError` whose every problem names a field or a line; nothing panics;
//! - every spec that is accepted renders, and what it renders parses: compose.yaml with
//!   serde_yaml (its `services` are the plan's), haproxy.ctmpl with the Go-template evaluator;
//!   on a handful of cases, the real tools too: `python3 -m py_compile` on every Python file and
//!   `haproxy -dW -c` on every HAProxy config (skipped with a printed reason when missing, failing
//!   under CI, as `harness::skip_or_fail` rules). The consul-template .hcl is not parsed: no HCL
//!   crate is a dependency;
//! - no value escapes its field: specs whose string fields carry a marker and every character
//!   the field's rule allows are rendered twice with two markers of the same shape, and once
//!   with a marker-free equivalent; the renders must differ only by the markers (and the hashes
//!   that follow from them), every marker must sit where its field belongs, and the hostile
//!   characters must add no line and change no line's leading keyword.
//!
//! Case counts are set per property (a few hundred in all, seconds on a busy machine). A failure
//! is saved by proptest under `proptest-regressions/` and replayed first on the next run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use serde_yaml::{Mapping, Value};

use provision::render::{self, Project, Rendered};
use provision::spec::{self, rules, Plan, SpecError};

use crate::gotmpl;
use crate::harness::external_tool;
use crate::static_checks::{can_unshare, haproxy_check};

/// Runs `test` on `cases` values of `strategy` (`PROPTEST_CASES` overrides it, for a longer
/// soak); a failure (or panic) fails the test with the minimal case proptest found.
fn check<S: Strategy>(
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> u32 {
    let defaults = Config::default();
    let config = Config {
        cases: match std::env::var_os("PROPTEST_CASES") {
            Some(_) => defaults.cases,
            None => cases,
        },
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        ..defaults
    };
    let cases = config.cases;
    if let Err(err) = TestRunner::new(config).run(&strategy, test) {
        panic!("{err}");
    }
    cases
}

/// A spec directory with `app/` (a custom app with a Dockerfile), for `web.app: app`.
fn spec_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    make_app(dir.path(), "app");
    dir
}

fn make_app(spec_dir: &Path, app: &str) {
    let app = spec_dir.join(app);
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("Dockerfile"), "FROM scratch\n").unwrap();
}

fn load(text: &str, spec_dir: &Path) -> Result<Plan, SpecError> {
    spec::from_text(text, Path::new("provision.yaml"), spec_dir)
}

fn render_plan(plan: Plan, spec_dir: &Path) -> anyhow::Result<Rendered> {
    let spec_dir = spec_dir.canonicalize().unwrap();
    render::render(&Project {
        plan,
        out_dir: spec_dir.join("generated"),
        spec_dir,
    })
}

// ---------------------------------------------------------------------------------------------
// Any YAML: accepted, or rejected with a located problem; never a panic.

/// The fields of each section, as written in provision.yaml.
const SECTIONS: &[(&str, &[&str])] = &[
    (
        "images",
        &["base", "consul", "registrator", "consul_template", "redis"],
    ),
    (
        "web",
        &["replicas", "port", "health_path", "app", "workers"],
    ),
    ("redis", &["appendfsync"]),
    ("consul", &["http_port", "datacenter"]),
    (
        "lb",
        &[
            "port",
            "stats_port",
            "balance",
            "check_interval",
            "max_replicas",
            "consul_template",
            "consul_template_version",
        ],
    ),
];

/// Values some field accepts, so that a good share of the documents gets past the parser.
const PLAUSIBLE: &[&str] = &[
    "hits",
    "dc1",
    "consul-template",
    "consul-dns",
    "docker-dns",
    "debian:trixie-slim",
    "redis:7",
    "/health",
    "/",
    "builtin",
    "app",
    "../app",
    "everysec",
    "always",
    "no",
    "leastconn",
    "random",
    "2s",
    "100ms",
    "60m",
    "99999999999999999999m",
    "image",
    "download",
    "0.43.0",
];

/// Strings chosen to break YAML, templates, shells and HAProxy config.
const HOSTILE: &[&str] = &[
    "",
    " ",
    "a\nb: injected",
    "x\" y: 'z'",
    "{{ evil }}",
    "{% raw %}",
    "$(rm -rf /)",
    "${HOME}",
    "`id`",
    "# comment",
    "- item",
    "? key",
    "&anchor",
    "*alias",
    "!!binary",
    "~",
    "null",
    "NaN",
    ".inf",
    "-0",
    "0x1F",
    "1e400",
    "18446744073709551616",
    "-1",
    "65536",
    "é ü 🙂",
    "nul\0byte",
    "\r\n",
    "\t",
    "\u{feff}",
    "a//b",
    "-rf",
    "/abs",
    "..",
];

fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(PLAUSIBLE).prop_map(str::to_owned),
        3 => select(HOSTILE).prop_map(str::to_owned),
        2 => "[ -~]{0,24}",
        1 => ".{0,16}",
        1 => "[a-z0-9][a-z0-9._/:@~-]{0,300}",
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<u64>().prop_map(|n| Value::Number(n.into())),
        (0u64..70_000).prop_map(|n| Value::Number(n.into())),
        any::<f64>().prop_map(|n| Value::Number(n.into())),
        any_string().prop_map(Value::String),
    ]
}

/// Any YAML value: scalars, and sequences and mappings of them (keys of any kind), nested.
fn junk() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Sequence),
            prop::collection::vec((inner.clone(), inner), 0..4)
                .prop_map(|pairs| Value::Mapping(pairs.into_iter().collect())),
        ]
    })
}

fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => scalar(),
        1 => junk(),
    ]
}

/// A mapping whose keys are mostly `known` (the rest any string), with values of any kind.
fn mapping_of(
    known: &'static [&'static str],
    value: impl Strategy<Value = Value>,
) -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        9 => select(known).prop_map(str::to_owned),
        1 => any_string(),
    ];
    prop::collection::vec((key, value), 0..8).prop_map(|pairs| {
        Value::Mapping(
            pairs
                .into_iter()
                .map(|(k, v)| (Value::String(k), v))
                .collect(),
        )
    })
}

const TOP: &[&str] = &[
    "project",
    "discovery",
    "images",
    "web",
    "redis",
    "consul",
    "lb",
];

/// A whole document: either free-form, or a well-formed spec with one field (or section)
/// replaced by a value of any kind.
fn document() -> impl Strategy<Value = Value> {
    prop_oneof![free_form(), one_field_replaced()]
}

/// Every field path of provision.yaml: the top-level keys and `section.field`.
fn field_paths() -> Vec<String> {
    let fields = SECTIONS
        .iter()
        .flat_map(|(section, fields)| fields.iter().map(move |f| format!("{section}.{f}")));
    TOP.iter().map(|k| (*k).to_owned()).chain(fields).collect()
}

fn one_field_replaced() -> impl Strategy<Value = Value> {
    (shaped_doc(), select(field_paths()), field_value()).prop_map(|(mut doc, path, value)| {
        match path.split_once('.') {
            None => {
                doc.insert(path.into(), value);
            }
            Some((section, field)) => {
                let section = doc
                    .entry(section.into())
                    .or_insert_with(|| Value::Mapping(Mapping::new()));
                if let Some(section) = section.as_mapping_mut() {
                    section.insert(field.into(), value);
                }
            }
        }
        Value::Mapping(doc)
    })
}

/// Top-level keys mostly known; a known section is mostly a mapping of its own fields, each
/// with a value of any kind.
fn free_form() -> impl Strategy<Value = Value> {
    let entry = select(TOP).prop_flat_map(|key| {
        let section = SECTIONS.iter().find(|(name, _)| *name == key);
        let value = match section {
            Some((_, fields)) => prop_oneof![
                4 => mapping_of(fields, field_value()),
                1 => field_value(),
            ]
            .boxed(),
            None => field_value().boxed(),
        };
        (Just(Value::String(key.to_owned())), value)
    });
    let entry = prop_oneof![
        9 => entry,
        1 => (any_string().prop_map(Value::String), junk()),
    ];
    (
        prop::collection::vec(entry, 0..9),
        any_string().prop_map(Value::String),
    )
        .prop_map(|(entries, project)| {
            let mut doc: Mapping = entries.into_iter().collect();
            // Half the documents get a project name if they lack one, to reach later checks.
            if !doc.contains_key("project") && project.as_str().is_some_and(|s| s.len() % 2 == 0) {
                doc.insert("project".into(), project);
            }
            Value::Mapping(doc)
        })
}

/// YAML that does not come from a serializer: anchors, tags, directives, flow syntax, tabs.
const SYNTAX: &[&str] = &[
    "\n",
    ": ",
    ":",
    "- ",
    "\t",
    "  ",
    "{",
    "}",
    "[",
    "]",
    "\"",
    "'",
    "&a ",
    "*a",
    "a: &a [*a, *a]\n",
    "<<: *a\n",
    "!!int ",
    "!custom ",
    "? ",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "# comment\n",
    "|\n  block\n",
    ">-\n  folded\n",
    "project: again\n",
    "\u{0}",
    "\u{feff}",
];

/// A document as text, sometimes damaged: cut short, or with a piece of YAML syntax spliced in.
fn document_text() -> impl Strategy<Value = String> {
    (
        document(),
        0..4u8,
        any::<Index>(),
        select(SYNTAX),
        any::<Index>(),
    )
        .prop_filter_map(
            "serde_yaml cannot write every value (a mapping as a key)",
            |(doc, damage, at, syntax, at2)| {
                let text = serde_yaml::to_string(&doc).ok()?;
                let boundaries: Vec<usize> = text
                    .char_indices()
                    .map(|(i, _)| i)
                    .chain([text.len()])
                    .collect();
                let cut = *at.get(&boundaries);
                let cut2 = *at2.get(&boundaries);
                Some(match damage {
                    0 => text[..cut].to_owned(),
                    1 => format!("{}{syntax}{}", &text[..cut], &text[cut..]),
                    2 => {
                        let (a, b) = (cut.min(cut2), cut.max(cut2));
                        format!(
                            "{}{syntax}{}{syntax}{}",
                            &text[..a],
                            &text[a..b],
                            &text[b..]
                        )
                    }
                    _ => text,
                })
            },
        )
}

#[test]
fn any_yaml_is_accepted_or_rejected_with_a_located_problem() {
    let accepted = AtomicUsize::new(0);
    let cases = check(384, document_text(), |text| {
        let dir = spec_dir();
        match load(&text, dir.path()) {
            Ok(plan) => {
                accepted.fetch_add(1, Ordering::Relaxed);
                let rendered = render_plan(plan.clone(), dir.path())
                    .map_err(|e| TestCaseError::fail(format!("{e:#}\n--- spec\n{text}")))?;
                check_parses(&plan, &rendered)
                    .map_err(|e| TestCaseError::fail(format!("{e}\n--- spec\n{text}")))?;
            }
            Err(err) => {
                prop_assert!(!err.problems.is_empty(), "no problems for {text:?}");
                for problem in &err.problems {
                    prop_assert!(
                        problem.field.is_some() || problem.line.is_some(),
                        "a problem names neither a field nor a line: {problem:?}\n--- spec\n{text}"
                    );
                    prop_assert!(!problem.message.is_empty(), "{problem:?}");
                }
                prop_assert!(err
                    .to_string()
                    .starts_with("provision.yaml is not a valid spec"));
            }
        }
        Ok(())
    });
    // Not a vacuous pass: some documents must get through (about 5% do; fewer than 5 of 384
    // happens about once in 50,000 runs).
    let accepted = accepted.into_inner();
    assert!(
        accepted >= 5.min(cases as usize),
        "only {accepted} of {cases} documents were accepted"
    );
}

// ---------------------------------------------------------------------------------------------
// Specs of the right shape: whatever is accepted renders files that parse.

/// One optional field: absent, or written with a value from `value`.
fn opt<T: Strategy>(value: T) -> impl Strategy<Value = Option<T::Value>> {
    prop::option::weighted(0.6, value)
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![8 => 1024..=65535u16, 1 => 0..1024u16, 1 => select(&[0u16, 1, 65535][..])]
}

fn image() -> impl Strategy<Value = String> {
    "([a-z0-9.-]{1,8}(:[0-9]{1,5})?/)?[a-z0-9][a-z0-9._-]{0,12}(/[a-z0-9_-]{1,8})?(:[A-Za-z0-9._-]{1,10})?(@sha256:[0-9a-f]{8})?"
        .prop_filter("starts with a letter or digit", |s| {
            s.starts_with(|c: char| c.is_ascii_alphanumeric())
        })
}

fn set(map: &mut Mapping, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        map.insert(key.into(), value);
    }
}

fn section(doc: &mut Mapping, name: &str, fields: Mapping) {
    if !fields.is_empty() {
        doc.insert(name.into(), Value::Mapping(fields));
    }
}

/// A spec with every field either absent or of the right type, mostly within its rules.
fn shaped_spec() -> impl Strategy<Value = String> {
    shaped_doc().prop_map(|doc| serde_yaml::to_string(&doc).unwrap())
}

fn shaped_doc() -> impl Strategy<Value = Mapping> {
    let top = (
        "[a-z0-9][a-z0-9_-]{0,40}",
        opt(select(&["consul-template", "consul-dns", "docker-dns"][..])),
        (
            opt(image()),
            opt(image()),
            opt(image()),
            opt(image()),
            opt(image()),
        ),
    );
    let web = (
        opt(prop_oneof![8 => 1..=12u32, 1 => 0..=300u32]),
        opt(port()),
        opt("/[A-Za-z0-9/_.~-]{0,16}"),
        opt(select(&["builtin", "app", "./app"][..])),
        opt(prop_oneof![8 => 1..=8u32, 1 => 0..=80u32]),
    );
    let misc = (
        opt(select(&["always", "everysec", "no"][..])),
        opt(port()),
        opt("[A-Za-z0-9][A-Za-z0-9._-]{0,20}"),
    );
    let lb = (
        opt(port()),
        opt(port()),
        opt(select(
            &["roundrobin", "leastconn", "source", "first", "random"][..],
        )),
        opt((0..5000u64, select(&["ms", "s", "m"][..]))),
        opt(prop_oneof![4 => 1..=20u32, 1 => 0..=300u32]),
        opt(select(&["image", "download"][..])),
        opt("[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}"),
    );
    (top, web, misc, lb).prop_map(|(top, web, misc, lb)| {
        let (project, discovery, (base, consul, registrator, consul_template, redis)) = top;
        let s = |v: Option<&str>| v.map(|v| Value::String(v.to_owned()));
        let n = |v: Option<u32>| v.map(|v| Value::Number(v.into()));
        let p = |v: Option<u16>| v.map(|v| Value::Number(v.into()));
        let mut doc = Mapping::new();
        doc.insert("project".into(), project.into());
        set(&mut doc, "discovery", s(discovery));
        let mut images = Mapping::new();
        set(&mut images, "base", base.map(Value::String));
        set(&mut images, "consul", consul.map(Value::String));
        set(&mut images, "registrator", registrator.map(Value::String));
        set(
            &mut images,
            "consul_template",
            consul_template.map(Value::String),
        );
        set(&mut images, "redis", redis.map(Value::String));
        section(&mut doc, "images", images);
        let mut w = Mapping::new();
        set(&mut w, "replicas", n(web.0));
        set(&mut w, "port", p(web.1));
        set(&mut w, "health_path", web.2.map(Value::String));
        set(&mut w, "app", s(web.3));
        set(&mut w, "workers", n(web.4));
        section(&mut doc, "web", w);
        let mut r = Mapping::new();
        set(&mut r, "appendfsync", s(misc.0));
        section(&mut doc, "redis", r);
        let mut c = Mapping::new();
        set(&mut c, "http_port", p(misc.1));
        set(&mut c, "datacenter", misc.2.map(Value::String));
        section(&mut doc, "consul", c);
        let mut l = Mapping::new();
        set(&mut l, "port", p(lb.0));
        set(&mut l, "stats_port", p(lb.1));
        set(&mut l, "balance", s(lb.2));
        set(
            &mut l,
            "check_interval",
            lb.3.map(|(n, unit)| Value::String(format!("{n}{unit}"))),
        );
        set(&mut l, "max_replicas", n(lb.4));
        set(&mut l, "consul_template", s(lb.5));
        set(&mut l, "consul_template_version", lb.6.map(Value::String));
        section(&mut doc, "lb", l);
        doc
    })
}

/// What every render must satisfy without outside tools: a trailing newline on every file;
/// compose.yaml is YAML whose `services` are exactly the plan's; haproxy.ctmpl evaluates (for
/// zero and three instances) to one `server` line per instance.
fn check_parses(plan: &Plan, rendered: &Rendered) -> Result<(), String> {
    for (path, text) in &rendered.files {
        if !text.ends_with('\n') {
            return Err(format!("{path} does not end with a newline"));
        }
    }
    let compose = &rendered.files["compose.yaml"];
    let doc: Value = serde_yaml::from_str(compose)
        .map_err(|e| format!("compose.yaml does not parse: {e}\n{compose}"))?;
    let services: BTreeSet<&str> = doc
        .get("services")
        .and_then(Value::as_mapping)
        .ok_or_else(|| format!("compose.yaml has no services mapping\n{compose}"))?
        .keys()
        .map(|k| k.as_str().unwrap_or("<not a string>"))
        .collect();
    let expected: BTreeSet<&str> = plan.services().iter().map(|s| s.name()).collect();
    if services != expected {
        return Err(format!(
            "compose.yaml's services {services:?}, the plan's {expected:?}"
        ));
    }
    if let Some(template) = rendered.files.get("lb/haproxy.ctmpl") {
        for count in [0, 3] {
            let config = haproxy_from_template(template, count, plan.web.port)?;
            let servers = config
                .lines()
                .filter(|l| l.trim_start().starts_with("server "))
                .count();
            if servers != count {
                return Err(format!(
                    "haproxy.ctmpl gives {servers} servers for {count} instances\n{config}"
                ));
            }
        }
    }
    Ok(())
}

fn haproxy_from_template(template: &str, count: usize, port: u16) -> Result<String, String> {
    let services = BTreeMap::from([(
        "web".to_owned(),
        gotmpl::sample_instances("web", count, port),
    )]);
    gotmpl::render(template, &services).map_err(|e| format!("haproxy.ctmpl: {e}"))
}

#[test]
fn accepted_specs_render_files_that_parse() {
    let accepted = AtomicUsize::new(0);
    let cases = check(192, shaped_spec(), |text| {
        let dir = spec_dir();
        let Ok(plan) = load(&text, dir.path()) else {
            return Ok(());
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        let rendered = render_plan(plan.clone(), dir.path())
            .map_err(|e| TestCaseError::fail(format!("{e:#}\n--- spec\n{text}")))?;
        check_parses(&plan, &rendered)
            .map_err(|e| TestCaseError::fail(format!("{e}\n--- spec\n{text}")))?;
        Ok(())
    });
    let accepted = accepted.into_inner();
    assert!(
        accepted >= cases as usize / 4,
        "only {accepted} of {cases} specs were accepted: the property tests too little"
    );
}

/// The real tools on a few accepted specs: Python files compile, HAProxy accepts every config
/// (haproxy.cfg as rendered, haproxy.ctmpl evaluated for three instances).
#[test]
fn accepted_specs_pass_python_and_haproxy_on_a_sample() {
    let python = external_tool("python3", "python3 -m py_compile on sampled specs");
    const HAPROXY: &str = "haproxy -c on sampled specs";
    let haproxy = external_tool("haproxy", HAPROXY).filter(|_| can_unshare(HAPROXY));
    if python.is_none() && haproxy.is_none() {
        return;
    }
    let checked = AtomicUsize::new(0);
    // Rejected specs are filtered out, so every sampled case runs the tools.
    let strategy = shaped_spec().prop_filter("accepted by the loader", |text| {
        load(text, spec_dir().path()).is_ok()
    });
    let cases = check(6, strategy, |text| {
        let dir = spec_dir();
        let plan = load(&text, dir.path()).unwrap();
        let port = plan.web.port;
        let rendered = render_plan(plan, dir.path()).unwrap();
        let out = dir.path().join("generated");
        for (rel, contents) in &rendered.files {
            let path = out.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
        let py: Vec<PathBuf> = rendered
            .files
            .keys()
            .filter(|rel| rel.ends_with(".py"))
            .map(|rel| out.join(rel))
            .collect();
        // A custom app renders no Python file.
        if let (Some(python), false) = (&python, py.is_empty()) {
            let output = Command::new(python)
                .args(["-m", "py_compile"])
                .args(&py)
                .output()
                .unwrap();
            prop_assert!(
                output.status.success(),
                "py_compile failed: {}\n--- spec\n{text}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        if let Some(haproxy) = &haproxy {
            if rendered.files.contains_key("lb/haproxy.cfg") {
                haproxy_check(haproxy, &text, &out.join("lb/haproxy.cfg"));
            }
            if let Some(template) = rendered.files.get("lb/haproxy.ctmpl") {
                let config =
                    haproxy_from_template(template, 3, port).map_err(TestCaseError::fail)?;
                let path = out.join("lb/haproxy-from-ctmpl.cfg");
                std::fs::write(&path, config).unwrap();
                haproxy_check(haproxy, &text, &path);
            }
        }
        checked.fetch_add(1, Ordering::Relaxed);
        Ok(())
    });
    // At least: proptest first replays the seeds saved in proptest-regressions/.
    assert!(checked.into_inner() >= cases as usize);
}

// ---------------------------------------------------------------------------------------------
// No value escapes its field.

/// A string field written as `prefix + marker + suffix`. The marker is `zq`, a letter naming
/// the field, and five letters from `g..=y` (never hexadecimal, so never mistaken for a hash);
/// prefix and suffix use every character the field's rule allows.
#[derive(Debug, Clone)]
struct Marked {
    field: &'static str,
    tag: char,
    prefix: String,
    suffix: String,
    /// The prefix is a fixed, plain path (`web.app`): the marker-free equivalent keeps it.
    keep_prefix: bool,
}

impl Marked {
    fn marker(&self, letters: &str) -> String {
        format!("zq{}{letters}", self.tag)
    }

    fn value(&self, letters: &str) -> String {
        format!("{}{}{}", self.prefix, self.marker(letters), self.suffix)
    }

    /// The same length with every character but letters and digits (after a leading `/`)
    /// replaced by `x`: the field's value without anything a format could read as syntax.
    fn plain(&self, letters: &str) -> String {
        let (kept, rest) = if self.keep_prefix {
            (
                self.prefix.clone(),
                format!("{}{}", self.marker(letters), self.suffix),
            )
        } else {
            (String::new(), self.value(letters))
        };
        let mut out = kept;
        for (i, c) in rest.chars().enumerate() {
            out.push(if c.is_ascii_alphanumeric() || (i == 0 && c == '/') {
                c
            } else {
                'x'
            });
        }
        out
    }
}

/// Field → value, as written in a spec.
type Values = Vec<(&'static str, String)>;

#[derive(Debug, Clone)]
struct MarkedSpec {
    discovery: &'static str,
    consul_template: &'static str,
    fields: Vec<Marked>,
    letters: String,
}

fn marked(
    field: &'static str,
    tag: char,
    rule: fn(&str) -> Result<(), String>,
    prefix: impl Strategy<Value = String>,
    suffix: impl Strategy<Value = String>,
) -> impl Strategy<Value = Marked> {
    (prefix, suffix)
        .prop_map(move |(prefix, suffix)| Marked {
            field,
            tag,
            prefix,
            suffix,
            keep_prefix: field == "web.app",
        })
        .prop_filter("the field's rule accepts the value", move |m| {
            rule(&m.value("ghijk")).is_ok() && rule(&m.plain("ghijk")).is_ok()
        })
}

/// The characters `rule` accepts inside a value (`probe` places one between letters), out of
/// every printable ASCII character, white space, NUL and two non-ASCII ones. Decimal and
/// lowercase hex digits are left out, so that no run of them can be taken for a hash; `except`
/// too. Derived from the rules, so that a rule that lets more through is tested with it at once.
fn alphabet(
    rule: fn(&str) -> Result<(), String>,
    probe: fn(char) -> String,
    except: &str,
) -> Vec<char> {
    (' '..='~')
        .chain(['\t', '\n', '\r', '\0', 'é', '🙂'])
        .filter(|c| !c.is_ascii_digit() && !('a'..='f').contains(c) && !except.contains(*c))
        .filter(|c| rule(&probe(*c)).is_ok())
        .collect()
}

fn text_of(alphabet: Vec<char>, len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(select(alphabet), len).prop_map(String::from_iter)
}

fn between(c: char) -> String {
    format!("zq{c}zq")
}

fn name_marked(
    field: &'static str,
    tag: char,
    rule: fn(&str) -> Result<(), String>,
) -> impl Strategy<Value = Marked> {
    let suffix = text_of(alphabet(rule, between, ""), 0..10);
    marked(field, tag, rule, Just(String::new()), suffix)
}

fn image_marked(field: &'static str, tag: char) -> impl Strategy<Value = Marked> {
    let suffix = text_of(alphabet(rules::image_ref, between, ""), 0..12);
    marked(
        field,
        tag,
        rules::image_ref,
        "(reg[g-z.-]{0,4}[g-z](:[0-9]{1,5})?/)?",
        suffix,
    )
}

fn marked_spec() -> impl Strategy<Value = MarkedSpec> {
    let path_chars = alphabet(rules::url_path, |c| format!("/zq{c}zq"), "");
    let fields = (
        name_marked("project", 'p', rules::project_name),
        name_marked("consul.datacenter", 'd', rules::simple_name),
        image_marked("images.base", 'b'),
        image_marked("images.consul", 'c'),
        image_marked("images.registrator", 'r'),
        image_marked("images.consul_template", 't'),
        opt(image_marked("images.redis", 's')),
        marked(
            "web.health_path",
            'h',
            rules::url_path,
            text_of(path_chars.clone(), 0..5).prop_map(|p| format!("/{p}")),
            text_of(path_chars, 0..10),
        ),
        // No `/` after the marker: the marker's directory is the last one, as compose.yaml
        // names it (`..` and `.` come in the fixed prefixes).
        opt(marked(
            "web.app",
            'a',
            rules::safe_relative_path,
            select(&["", "./", "sub/", "k/../", "sub/./"][..]).prop_map(str::to_owned),
            text_of(alphabet(rules::safe_relative_path, between, "/"), 0..8),
        )),
    );
    (
        fields,
        select(&["consul-template", "consul-dns", "docker-dns"][..]),
        select(&["image", "download"][..]),
        "[g-y]{5}",
    )
        .prop_map(|(f, discovery, consul_template, letters)| {
            let mut fields = vec![f.0, f.1, f.2, f.3, f.4, f.5, f.7];
            fields.extend(f.6);
            // consul-dns needs the built-in app.
            let discovery = if f.8.is_some() && discovery == "consul-dns" {
                "docker-dns"
            } else {
                discovery
            };
            fields.extend(f.8);
            MarkedSpec {
                discovery,
                consul_template,
                fields,
                letters,
            }
        })
}

/// Another five letters, each different from the one at its place.
fn other_letters(letters: &str) -> String {
    letters
        .chars()
        .map(|c| if c == 'y' { 'g' } else { (c as u8 + 1) as char })
        .collect()
}

impl MarkedSpec {
    /// The spec text, and field → value as written, with the markers' `letters`; `plain` writes
    /// each value's marker-free equivalent instead.
    fn text(&self, letters: &str, plain: bool) -> (String, Values) {
        let values: Values = self
            .fields
            .iter()
            .map(|f| {
                let value = if plain {
                    f.plain(letters)
                } else {
                    f.value(letters)
                };
                (f.field, value)
            })
            .collect();
        let mut doc = Mapping::new();
        for (field, value) in &values {
            let mut target = &mut doc;
            let (sections, key) = match field.rsplit_once('.') {
                Some((section, key)) => (Some(section), key),
                None => (None, *field),
            };
            if let Some(section) = sections {
                target = target
                    .entry(section.into())
                    .or_insert_with(|| Value::Mapping(Mapping::new()))
                    .as_mapping_mut()
                    .unwrap();
            }
            target.insert(key.into(), value.as_str().into());
        }
        doc.insert("discovery".into(), self.discovery.into());
        let lb = doc
            .entry("lb".into())
            .or_insert_with(|| Value::Mapping(Mapping::new()))
            .as_mapping_mut()
            .unwrap();
        lb.insert("consul_template".into(), self.consul_template.into());
        (serde_yaml::to_string(&doc).unwrap(), values)
    }
}

/// Replaces every run of 12 or more lowercase hex digits (image tags, config labels, the
/// manifest's sha256 sums) with `#`: they follow from the contents, which the markers change.
fn without_hashes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 12 {
            out.push('#');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() || ('a'..='f').contains(&c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Mermaid labels write unusual characters as `#<decimal>;` (diagram.md): back to characters.
fn mermaid_decoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('#') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let digits = after
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after.len());
        let decoded = (digits > 0 && after[digits..].starts_with(';'))
            .then(|| after[..digits].parse::<u32>().ok().and_then(char::from_u32))
            .flatten();
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[digits + 1..];
            }
            None => {
                out.push('#');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Where each field's value may appear in compose.yaml: key paths (`*` any key, `#` any
/// sequence index) of string scalars, and whether the scalar is exactly the value.
fn compose_places(field: &str) -> &'static [(&'static [&'static str], Place)] {
    match field {
        "project" => &[
            (&["name"], Place::Exact),
            (&["services", "*", "image"], Place::ImageTag),
        ],
        "consul.datacenter" => &[(&["services", "consul", "command", "#"], Place::Exact)],
        "images.consul" => &[(&["services", "consul", "image"], Place::Exact)],
        "images.registrator" => &[(&["services", "registrator", "image"], Place::Exact)],
        "images.redis" => &[(&["services", "redis", "image"], Place::Exact)],
        "web.health_path" => &[(
            &["services", "web", "labels", "SERVICE_CHECK_HTTP"],
            Place::Exact,
        )],
        "web.app" => &[(&["services", "web", "build", "context"], Place::AppDir)],
        // The base and consul-template images are only in the Dockerfiles.
        _ => &[],
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    /// The scalar is the value.
    Exact,
    /// `<project>-<service>:<tag>`.
    ImageTag,
    /// The app directory relative to the output directory: `../` and the normalized path.
    AppDir,
}

/// Every string scalar (with its key path) and every mapping key of a YAML document.
fn walk<'a>(
    value: &'a Value,
    path: &mut Vec<String>,
    scalars: &mut Vec<(Vec<String>, &'a str)>,
    keys: &mut Vec<(Vec<String>, String)>,
) {
    match value {
        Value::String(s) => scalars.push((path.clone(), s)),
        Value::Sequence(items) => {
            for item in items {
                path.push("#".into());
                walk(item, path, scalars, keys);
                path.pop();
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map {
                let key = match key {
                    Value::String(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                keys.push((path.clone(), key.clone()));
                path.push(key);
                walk(item, path, scalars, keys);
                path.pop();
            }
        }
        Value::Tagged(tagged) => walk(&tagged.value, path, scalars, keys),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn path_matches(pattern: &[&str], path: &[String]) -> bool {
    pattern.len() == path.len()
        && pattern
            .iter()
            .zip(path)
            .all(|(p, k)| *p == "*" || *p == "#" || p == k)
}

/// compose.yaml: no key holds a marker, and every scalar that holds one is at one of its field's
/// places, with the field's value intact.
fn check_compose_places(
    compose: &str,
    spec: &MarkedSpec,
    letters: &str,
    values: &[(&'static str, String)],
) -> Result<(), String> {
    let doc: Value = serde_yaml::from_str(compose).map_err(|e| format!("compose.yaml: {e}"))?;
    let (mut scalars, mut keys) = (Vec::new(), Vec::new());
    walk(&doc, &mut Vec::new(), &mut scalars, &mut keys);
    let project = &values.iter().find(|(f, _)| *f == "project").unwrap().1;
    for (field, (f, value)) in spec.fields.iter().zip(values) {
        let marker = field.marker(letters);
        if let Some((path, key)) = keys.iter().find(|(_, k)| k.contains(&marker)) {
            return Err(format!("{f}'s marker in a key: {path:?} {key:?}"));
        }
        for (path, scalar) in scalars.iter().filter(|(_, s)| s.contains(&marker)) {
            let place = compose_places(f)
                .iter()
                .find(|(pattern, _)| path_matches(pattern, path))
                .map(|(_, place)| *place)
                .ok_or_else(|| format!("{f}'s marker at {path:?}: {scalar:?}"))?;
            let intact = match place {
                Place::Exact => scalar == value,
                Place::ImageTag => scalar
                    .strip_prefix(&format!("{project}-"))
                    .and_then(|rest| rest.split_once(':'))
                    .is_some_and(|(service, tag)| {
                        service == path[1] && tag.len() == 12 && without_hashes(tag) == "#"
                    }),
                Place::AppDir => {
                    let segment = format!("{}{}", field.marker(letters), field.suffix);
                    scalar.starts_with("../") && scalar.ends_with(&format!("/{segment}"))
                }
            };
            if !intact {
                return Err(format!("{f} = {value:?} arrives as {scalar:?} at {path:?}"));
            }
        }
    }
    Ok(())
}

/// Renders `spec` with `letters` (or its marker-free equivalent), from `dir`, creating the app
/// directory it names.
fn render_marked(
    spec: &MarkedSpec,
    letters: &str,
    plain: bool,
    dir: &Path,
) -> Result<(String, Values, Rendered), TestCaseError> {
    let (text, values) = spec.text(letters, plain);
    if let Some((_, app)) = values.iter().find(|(f, _)| *f == "web.app") {
        make_app(dir, app);
    }
    let plan =
        load(&text, dir).map_err(|e| TestCaseError::fail(format!("{e}\n--- spec\n{text}")))?;
    let rendered = render_plan(plan, dir)
        .map_err(|e| TestCaseError::fail(format!("{e:#}\n--- spec\n{text}")))?;
    Ok((text, values, rendered))
}

/// `text` with each field's value replaced by the same field's value in `to` (and, for the app
/// directory, its last segment too: compose.yaml names it relative to the output directory).
fn substituted(text: &str, from: &[(&str, String)], to: &[(&str, String)]) -> String {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for ((field, a), (_, b)) in from.iter().zip(to) {
        pairs.push((a.clone(), b.clone()));
        if *field == "web.app" {
            let last = |s: &str| s.rsplit('/').next().unwrap().to_owned();
            pairs.push((last(a), last(b)));
        }
    }
    // Longest first, so that a value is replaced before any value it contains.
    pairs.sort_by_key(|(a, _)| std::cmp::Reverse(a.len()));
    let mut out = text.to_owned();
    for (a, b) in pairs {
        out = out.replace(&a, &b);
    }
    out
}

/// `text` of the file at `path` with the values `from` swapped for `to`, hashes blotted out;
/// Mermaid's character references are decoded first, so that a value is found as written.
fn comparable(path: &str, text: &str, from: &[(&str, String)], to: &[(&str, String)]) -> String {
    let text = if path.ends_with(".md") {
        mermaid_decoded(text)
    } else {
        text.to_owned()
    };
    without_hashes(&substituted(&text, from, to))
}

#[test]
fn no_value_escapes_its_field() {
    check(96, marked_spec(), |spec| {
        let dir = tempfile::tempdir().unwrap();
        // A level down, so that `k/../` stays inside the temporary directory.
        let dir = dir.path().join("spec");
        std::fs::create_dir_all(&dir).unwrap();
        let m1 = spec.letters.clone();
        let m2 = other_letters(&m1);
        let (text, v1, r1) = render_marked(&spec, &m1, false, &dir)?;
        let (_, v2, r2) = render_marked(&spec, &m2, false, &dir)?;
        let (_, vp, rp) = render_marked(&spec, &m1, true, &dir)?;
        prop_assert_eq!(
            r1.files.keys().collect::<Vec<_>>(),
            rp.files.keys().collect::<Vec<_>>()
        );
        check_compose_places(&r1.files["compose.yaml"], &spec, &m1, &v1)
            .map_err(|e| TestCaseError::fail(format!("{e}\n--- spec\n{text}")))?;
        for (path, hostile) in &r1.files {
            // Two markers of the same shape: the renders differ by the markers only.
            prop_assert_eq!(
                comparable(path, hostile, &v1, &v2),
                comparable(path, &r2.files[path], &[], &[]),
                "{} differs beyond the markers\n--- spec\n{}",
                path,
                text
            );
            // Against the marker-free equivalent: the same lines, each with the same leading
            // word, and each the same once the values are swapped back.
            let plain = &rp.files[path];
            let hostile_lines: Vec<&str> = hostile.lines().collect();
            let plain_lines: Vec<&str> = plain.lines().collect();
            prop_assert_eq!(
                hostile_lines.len(),
                plain_lines.len(),
                "{} has another number of lines than with plain values\n--- spec\n{}",
                path,
                text
            );
            for (h, p) in hostile_lines.iter().zip(&plain_lines) {
                let first = |l: &str| {
                    without_hashes(l)
                        .split_whitespace()
                        .next()
                        .map(str::to_owned)
                };
                prop_assert_eq!(first(h), first(p), "{}: {:?} vs {:?}", path, h, p);
                prop_assert_eq!(
                    comparable(path, h, &v1, &vp),
                    comparable(path, p, &[], &[]),
                    "{} line changes beyond the values\n--- spec\n{}",
                    path,
                    text
                );
            }
        }
        Ok(())
    });
}
