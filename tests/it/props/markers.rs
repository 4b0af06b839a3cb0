//! No value escapes its field: string fields carry a marker and every character their rule
//! allows; the renders with two markers of the same shape, and with a marker-free equivalent,
//! are compared file by file and line by line, and compose.yaml is read to see where each
//! marker landed.

use std::path::Path;

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseError;
use serde_yaml::{Mapping, Value};

use provision::render::Rendered;
use provision::spec::rules;

use super::shaped::opt;
use super::{check, load, make_app, render_plan};

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
            // registrator's SERVICE_<port>_TAGS.
            (&["services", "web", "labels", "*"], Place::RegistryTag),
        ],
        "consul.datacenter" => &[(&["services", "consul", "command", "#"], Place::Exact)],
        "images.consul" => &[(&["services", "consul", "image"], Place::Exact)],
        "images.registrator" => &[(&["services", "registrator", "image"], Place::Exact)],
        "images.redis" => &[(&["services", "redis", "image"], Place::Exact)],
        "web.health_path" => &[(&["services", "web", "labels", "*"], Place::Exact)],
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
    /// `provision-<project>`.
    RegistryTag,
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
                Place::RegistryTag => {
                    scalar.strip_prefix("provision-") == Some(value.as_str())
                        && path.last().is_some_and(|k| k.ends_with("_TAGS"))
                }
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
