//! Any YAML, in any field of provision.yaml: accepted, or rejected with a located problem; never
//! a panic. Documents are free-form (keys mostly known, values of any kind, nested), or a
//! well-formed spec with one field or section replaced by anything; as text, some are cut short
//! or have YAML syntax (anchors, tags, directives, document markers) spliced in.

use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde_yaml::{Mapping, Value};

use super::shaped::{check_parses, shaped_doc};
use super::{check, load, render_plan, spec_dir};

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
