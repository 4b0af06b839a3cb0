//! Specs of the right shape (every field absent or of its type, mostly within its rules):
//! whatever is accepted renders files that parse; on a few, the real tools agree.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseError;
use serde_yaml::{Mapping, Value};

use provision::render::Rendered;
use provision::spec::Plan;

use super::{check, load, render_plan, spec_dir};
use crate::static_checks::{can_unshare, haproxy_check};
use crate::support::harness::external_tool;

/// One optional field: absent, or written with a value from `value`.
pub(super) fn opt<T: Strategy>(value: T) -> impl Strategy<Value = Option<T::Value>> {
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

pub(super) fn shaped_doc() -> impl Strategy<Value = Mapping> {
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
pub(super) fn check_parses(plan: &Plan, rendered: &Rendered) -> Result<(), String> {
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
            let containers = registrator_view(&rendered.files["compose.yaml"]);
            let Some(config) = haproxy_from_template(template, &containers, count)? else {
                break;
            };
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

/// registrator's view of the web containers `compose` declares (an image exposing no port:
/// compose's `expose` must be enough).
fn registrator_view(compose: &str) -> crate::ctmpl::Containers {
    crate::ctmpl::Containers {
        web: crate::ctmpl::WebShape::of_compose(compose, &[]),
        others: Vec::new(),
    }
}

/// The ctmpl rendered by Go's text/template with `count` passing instances (tests/go), or None
/// when go is missing (a printed skip; a failure under CI).
fn haproxy_from_template(
    template: &str,
    containers: &crate::ctmpl::Containers,
    count: usize,
) -> Result<Option<String>, String> {
    let Some(renderer) = crate::ctmpl::renderer("haproxy.ctmpl of accepted specs rendered by Go")
    else {
        return Ok(None);
    };
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("haproxy.ctmpl");
    std::fs::write(&path, template).map_err(|e| e.to_string())?;
    let out = dir.path().join("out");
    let output = crate::ctmpl::run(renderer, &path, Some(containers), &out, &[count]);
    if !output.status.success() {
        return Err(format!(
            "haproxy.ctmpl: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    std::fs::read_to_string(out.join(format!("haproxy-{count}.cfg")))
        .map(Some)
        .map_err(|e| e.to_string())
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
                let containers = registrator_view(&rendered.files["compose.yaml"]);
                let config =
                    haproxy_from_template(template, &containers, 3).map_err(TestCaseError::fail)?;
                let Some(config) = config else {
                    return Ok(());
                };
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
