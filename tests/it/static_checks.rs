//! The generated files checked by the real tools, for every fixture spec and the committed example:
//!
//! - `haproxy -dW -c -f` (zero-warning mode: a warning fails too) on each haproxy.cfg, and on
//!   haproxy.cfg files obtained from haproxy.ctmpl for 0, 1 and 5 passing instances by Go's
//!   `text/template` with consul-template's `service` (`ctmpl.rs`: no consul-template binary can
//!   be had offline), once with the host's HAProxy and once with HAProxy 3.0 (Debian 13's) in a
//!   rig container;
//! - `docker compose -f compose.yaml config -q`, and the JSON schema of the Compose
//!   Specification (`tests/data/compose-spec.json`, kept in the repository) with the
//!   `jsonschema` crate;
//! - `hadolint` on every Dockerfile (info level and above fail);
//! - `shellcheck` on every generated shell script and on the repository's own (`.ci/`, `bench/`);
//! - `python3 -m py_compile` on every Python file;
//! - consul-template.hcl parsed as HCL (`hcl-rs`) and held to consul-template's documented
//!   configuration keys and value types.
//!
//! A missing tool skips its check with a printed reason, except where every check is required
//! (`CI`, `PROVISION_E2E=require`): there it fails the test (see `harness::skip_or_fail`).
//!
//! HAProxy resolves `nameserver` host names while it parses, and `consul` only resolves on the
//! stack's network. The check therefore runs `haproxy -c` in a private mount namespace whose
//! /etc/hosts maps the stack's service names to 127.0.0.1 (`unshare --mount --map-root-user`),
//! leaving the file itself untouched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ctmpl;
use crate::support::fixtures::{copy_tree, render_fixture, FIXTURES};
use crate::support::harness::{external_tool, read_tree, repo_root, skip_or_fail};

/// A rendered tree on disk, with the fixture's other files (the custom app) beside it.
struct Rendered {
    name: String,
    _dir: tempfile::TempDir,
    out: PathBuf,
    files: BTreeMap<String, String>,
}

impl Rendered {
    /// registrator's view of this tree's web containers, alone on the engine.
    fn containers(&self) -> ctmpl::Containers {
        ctmpl::Containers {
            web: ctmpl::WebShape::of_tree(&self.out),
            others: Vec::new(),
        }
    }
}

fn rendered_fixtures() -> Vec<Rendered> {
    let mut all = Vec::new();
    for fixture in FIXTURES {
        let files = render_fixture(fixture).files;
        let dir = tempfile::tempdir().unwrap();
        copy_tree(
            &repo_root().join("tests/fixtures").join(fixture),
            dir.path(),
        );
        let out = dir.path().join("generated");
        for (rel, text) in &files {
            let path = out.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        all.push(Rendered {
            name: (*fixture).to_owned(),
            _dir: dir,
            out,
            files,
        });
    }
    // The committed example, as it is in the repository.
    let committed = repo_root().join("generated");
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&committed, &dir.path().join("generated"));
    let files = read_tree(&committed)
        .into_iter()
        .map(|(rel, bytes)| (rel, String::from_utf8(bytes).unwrap()))
        .collect();
    all.push(Rendered {
        name: "generated/ (example)".into(),
        out: dir.path().join("generated"),
        _dir: dir,
        files,
    });
    all
}

/// Runs a command; on failure panics with what was checked, the command line and its output.
fn run_ok(what: &str, cmd: &mut Command) {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {cmd:?} exited with {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn files_named<'a>(rendered: &'a Rendered, pred: impl Fn(&str, &str) -> bool + 'a) -> Vec<&'a str> {
    rendered
        .files
        .iter()
        .filter(|(path, text)| pred(path, text))
        .map(|(path, _)| path.as_str())
        .collect()
}

/// `haproxy -c -f FILE` with the stack's service names resolvable (see the module docs).
pub(crate) fn haproxy_check(haproxy: &Path, what: &str, config: &Path) {
    let scratch = tempfile::tempdir().unwrap();
    let hosts = scratch.path().join("hosts");
    std::fs::write(
        &hosts,
        "127.0.0.1 localhost\n127.0.0.1 consul web redis lb\n",
    )
    .unwrap();
    // The DNS modes' config reads /run/haproxy/server-state, which the lb image creates with its
    // version line: so does a private /run here.
    // And the lb's secrets: the probe token's file and the stats password's variable.
    let script = "mount --bind \"$1\" /etc/hosts && mount -t tmpfs tmpfs /run \
                  && mkdir /run/haproxy && echo 1 >/run/haproxy/server-state \
                  && mkdir /run/secrets && echo token >/run/secrets/probe_token \
                  && PROVISION_STATS_PASSWORD=password exec \"$2\" -dW -c -f \"$3\"";
    run_ok(
        what,
        Command::new("unshare")
            .args(["--mount", "--map-root-user", "sh", "-c", script, "sh"])
            .arg(&hosts)
            .arg(haproxy)
            .arg(config),
    );
}

pub(crate) fn can_unshare(check: &str) -> bool {
    let ok = Command::new("unshare")
        .args(["--mount", "--map-root-user", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip_or_fail(
            check,
            "`unshare --mount --map-root-user` does not work here (it needs root or user \
             namespaces), so the stack's host names cannot be made resolvable",
        );
    }
    ok
}

#[test]
fn haproxy_accepts_every_config() {
    const CHECK: &str = "haproxy -c on every generated HAProxy config";
    let Some(haproxy) = external_tool("haproxy", CHECK) else {
        return;
    };
    if !can_unshare(CHECK) {
        return;
    }
    let mut checked = 0;
    for rendered in rendered_fixtures() {
        for rel in files_named(&rendered, |p, _| p.ends_with("haproxy.cfg")) {
            haproxy_check(
                &haproxy,
                &format!("{} {rel}", rendered.name),
                &rendered.out.join(rel),
            );
            checked += 1;
        }
    }
    // The DNS-mode fixtures' haproxy.cfg; the consul-template ones have a haproxy.ctmpl instead
    // (`go_renders_every_ctmpl_into_a_valid_config`).
    assert!(checked >= 3, "only {checked} HAProxy configs checked");
}

/// Every haproxy.ctmpl rendered by Go's text/template the way consul-template renders it
/// (`ctmpl.rs`) for 0, 1 and 5 passing instances: each result passes `haproxy -dW -c` and has
/// one server line per instance.
#[test]
fn go_renders_every_ctmpl_into_a_valid_config() {
    const CHECK: &str = "consul-template's rendering (Go text/template) of every haproxy.ctmpl";
    let Some(renderer) = ctmpl::renderer(CHECK) else {
        return;
    };
    let Some(haproxy) = external_tool("haproxy", CHECK) else {
        return;
    };
    if !can_unshare(CHECK) {
        return;
    }
    let mut checked = 0;
    for rendered in rendered_fixtures() {
        for rel in files_named(&rendered, |p, _| p.ends_with("haproxy.ctmpl")) {
            let out_dir = rendered.out.join("lb/ctmpl-go");
            for (count, path, config) in ctmpl::render(
                renderer,
                &rendered.out.join(rel),
                &rendered.containers(),
                &out_dir,
            ) {
                let what = format!("{} {rel} rendered for {count} instances", rendered.name);
                let servers = config
                    .lines()
                    .filter(|l| l.trim_start().starts_with("server "))
                    .count();
                assert_eq!(servers, count, "{what}:\n{config}");
                haproxy_check(&haproxy, &what, &path);
                eprintln!("{what}: {servers} servers, haproxy -dW -c passed");
                checked += 1;
            }
        }
    }
    // consul-template, custom and the example: 3 counts each.
    assert!(checked >= 9, "only {checked} rendered ctmpl checked");
}

/// The renderer keeps consul-template's semantics where the blueprint relies on them: `service`
/// leaves out instances that are not passing unless a filter asks for them, sorts by node then
/// ID, and a function or field consul-template would not have fails instead of rendering.
#[test]
fn go_renderer_keeps_consul_templates_semantics() {
    let Some(renderer) = ctmpl::renderer("consul-template's semantics in ctmpl-render") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("t.ctmpl");
    let render = |text: &str, count: usize| {
        std::fs::write(&template, text).unwrap();
        let output = ctmpl::run(renderer, &template, None, dir.path(), &[count]);
        output.status.success().then(|| {
            std::fs::read_to_string(dir.path().join(format!("haproxy-{count}.cfg"))).unwrap()
        })
    };
    let ids = "{{ range service \"web\" }}{{ .ID }} {{ end }}";
    assert_eq!(
        render(ids, 2).as_deref(),
        Some("registrator:hits-web-1:5000 registrator:hits-web-2:5000 ")
    );
    // The fixture also holds a critical and a maintenance instance beside the passing ones.
    let statuses = "{{ range service \"web|any\" }}{{ .Status }} {{ end }}";
    assert_eq!(
        render(statuses, 1).as_deref(),
        Some("passing critical maintenance ")
    );
    let critical = "{{ range service \"web\" \"critical\" }}{{ .Status }}{{ end }}";
    assert_eq!(render(critical, 1).as_deref(), Some("critical"));
    assert_eq!(
        render("{{ range service \"db\" }}x{{ else }}none{{ end }}", 1).as_deref(),
        Some("none")
    );
    for refused in [
        "{{ key \"x\" }}",
        "{{ range service \"web\" }}{{ .Nope }}{{ end }}",
        "{{ service \"web|bogus\" }}",
        "{{ service \"not a name\" }}",
        "{{ range service \"web\" }}",
    ] {
        assert_eq!(render(refused, 1), None, "{refused} should fail");
    }
}

#[test]
fn compose_files_are_valid_for_compose_and_the_schema() {
    let schema_path = repo_root().join("tests/data/compose-spec.json");
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&schema_path)
            .unwrap_or_else(|e| panic!("{}: {e}", schema_path.display())),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the Compose schema compiles");
    let docker = compose_cli("docker compose config -q on every compose.yaml");
    for rendered in rendered_fixtures() {
        let text = &rendered.files["compose.yaml"];
        let value: serde_json::Value = serde_yaml::from_str(text).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{}: compose.yaml against the schema:\n{}",
            rendered.name,
            errors.join("\n")
        );
        for forbidden in ["version", "links", "container_name"] {
            assert!(
                !text
                    .lines()
                    .any(|l| l.trim_start().starts_with(&format!("{forbidden}:"))),
                "{}: compose.yaml uses `{forbidden}`",
                rendered.name
            );
        }
        if let Some(docker) = &docker {
            run_ok(
                &format!("{}: docker compose config", rendered.name),
                Command::new(docker)
                    .args(["compose", "-f"])
                    .arg(rendered.out.join("compose.yaml"))
                    .args(["config", "-q"]),
            );
        }
    }
}

/// Every stack file: what Swarm needs (every service `endpoint_mode: dnsrr`, only the lb's port
/// published and in host mode, nothing Swarm's loader rejects), then `docker stack config`,
/// which loads it as `docker stack deploy` does, with no engine.
#[test]
fn stack_files_suit_swarm_and_its_loader() {
    let docker = external_tool("docker", "docker stack config on every stack.yaml");
    let mut checked = 0;
    for rendered in rendered_fixtures() {
        let Some(text) = rendered.files.get("stack.yaml") else {
            continue;
        };
        checked += 1;
        let name = &rendered.name;
        let stack: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
        assert_eq!(stack["version"].as_str(), Some("3.12"), "{name}: version");
        assert!(stack.get("name").is_none(), "{name}: `name:` is rejected");
        let services = stack["services"].as_mapping().unwrap();
        for (service, spec) in services {
            let service = service.as_str().unwrap();
            for rejected in ["scale", "depends_on", "build", "restart", "container_name"] {
                assert!(
                    spec.get(rejected).is_none(),
                    "{name}: {service} has `{rejected}`"
                );
            }
            assert_eq!(
                spec["deploy"]["endpoint_mode"].as_str(),
                Some("dnsrr"),
                "{name}: {service} needs endpoint_mode dnsrr (no IPVS)"
            );
            match spec.get("ports") {
                None => {}
                Some(ports) => {
                    assert_eq!(service, "lb", "{name}: only the lb publishes a port");
                    for port in ports.as_sequence().unwrap() {
                        assert_eq!(port["mode"].as_str(), Some("host"), "{name}: lb port mode");
                        assert_eq!(port["target"].as_u64(), Some(8080), "{name}: lb port");
                    }
                }
            }
        }
        // Swarm's own rolling update: web start-first (never fewer replicas), rolled back on a
        // failure, start-first back; the lb stop-first (its host-mode port cannot be bound
        // twice on its node), as are the stateful services.
        let update = |service: &str, field: &str| {
            services
                .get(service)
                .and_then(|s| s["deploy"]["update_config"][field].as_str())
                .map(str::to_owned)
        };
        let web = &services["web"]["deploy"];
        assert_eq!(
            update("web", "order").as_deref(),
            Some("start-first"),
            "{name}"
        );
        assert_eq!(
            update("web", "failure_action").as_deref(),
            Some("rollback"),
            "{name}"
        );
        assert_eq!(
            web["update_config"]["parallelism"].as_str(),
            Some("${PROVISION_WEB_BATCH:-1}"),
            "{name}: web's batch comes from apply --batch"
        );
        assert_eq!(
            web["rollback_config"]["order"].as_str(),
            Some("start-first"),
            "{name}"
        );
        for service in ["lb", "redis", "consul"] {
            if services.contains_key(service) {
                assert_eq!(
                    update(service, "order").as_deref(),
                    Some("stop-first"),
                    "{name}: {service}"
                );
            }
        }
        if let Some(docker) = &docker {
            run_ok(
                &format!("{name}: docker stack config"),
                Command::new(docker)
                    .env("PROVISION_WEB_REPLICAS", "4")
                    .env("PROVISION_WEB_BATCH", "2")
                    .args(["stack", "config", "--compose-file"])
                    .arg(rendered.out.join("stack.yaml")),
            );
        }
    }
    assert!(checked >= 2, "only {checked} stack files checked");
}

/// The docker CLI, when it has the Compose v2 plugin (`docker compose config` needs no engine).
fn compose_cli(check: &str) -> Option<PathBuf> {
    let docker = external_tool("docker", check)?;
    let plugin = Command::new(&docker)
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !plugin {
        skip_or_fail(
            check,
            "the Docker Compose v2 plugin is missing (`docker compose version` failed)",
        );
        return None;
    }
    Some(docker)
}

#[test]
fn hadolint_passes_every_dockerfile() {
    let Some(hadolint) = external_tool("hadolint", "hadolint on every generated Dockerfile") else {
        return;
    };
    let mut checked = 0;
    for rendered in rendered_fixtures() {
        for rel in files_named(&rendered, |p, _| p.ends_with("Dockerfile")) {
            run_ok(
                &format!("{} {rel}", rendered.name),
                Command::new(&hadolint)
                    .arg("--no-color")
                    .arg(rendered.out.join(rel)),
            );
            checked += 1;
        }
    }
    // web, lb and redis for three fixtures and the example; `custom` brings its own web and
    // redis, so only its lb is generated.
    assert!(checked >= 13, "only {checked} Dockerfiles checked");
}

fn is_shell_script(path: &str, text: &str) -> bool {
    path.ends_with(".sh")
        || [
            "#!/bin/sh",
            "#!/bin/bash",
            "#!/usr/bin/env sh",
            "#!/usr/bin/env bash",
        ]
        .iter()
        .any(|shebang| text.starts_with(shebang))
}

/// The repository's own shell scripts: every shell script directly in these directories.
/// `blueprints/consul`: consul's entrypoint, carried verbatim in compose.yaml and stack.yaml.
const SCRIPT_DIRS: [&str; 3] = [".ci", "bench", "blueprints/consul"];

/// Scripts that exist today; finding fewer means the search above broke, not that all is well.
const KNOWN_SCRIPTS: [&str; 9] = [
    ".ci/engine.sh",
    ".ci/install-tools.sh",
    ".ci/rig-images.sh",
    ".ci/run",
    "bench/apply.sh",
    "bench/lib.sh",
    "bench/render.sh",
    "bench/scale.sh",
    "blueprints/consul/entrypoint.sh",
];

/// The repository's shell scripts, relative to its root: the ones `.ci/run` lints
/// (`.ci/*.sh`, `.ci/run`, `bench/*.sh`) and any other with a shell shebang beside them.
fn repository_scripts() -> Vec<String> {
    let root = repo_root();
    let mut found = Vec::new();
    for dir in SCRIPT_DIRS {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let entry = entry.unwrap();
            if !entry.file_type().unwrap().is_file() {
                continue;
            }
            let rel = format!("{dir}/{}", entry.file_name().to_string_lossy());
            // Only the start matters; a binary file reads as not a script.
            let text = std::fs::read(entry.path()).unwrap_or_default();
            if is_shell_script(&rel, &String::from_utf8_lossy(&text)) {
                found.push(rel);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn shellcheck_passes_every_shell_script() {
    let scripts = repository_scripts();
    for known in KNOWN_SCRIPTS {
        assert!(
            scripts.iter().any(|s| s == known),
            "{known} was not found among the shell scripts to check: {scripts:?}"
        );
    }
    let Some(shellcheck) = external_tool("shellcheck", "shellcheck on every shell script") else {
        return;
    };
    // Run from the repository root, as `.ci/run` does: bench/.shellcheckrc and the scripts'
    // `source` lines resolve from there.
    run_ok(
        "shellcheck on the repository's scripts",
        Command::new(&shellcheck)
            .current_dir(repo_root())
            .args(&scripts),
    );
    // Today's blueprints generate no shell script (the entrypoint is Python, RUN lines are
    // checked by hadolint's built-in ShellCheck); this keeps any future one honest.
    for rendered in rendered_fixtures() {
        for rel in files_named(&rendered, is_shell_script) {
            run_ok(
                &format!("{} {rel}", rendered.name),
                Command::new(&shellcheck).arg(rendered.out.join(rel)),
            );
        }
    }
}

#[test]
fn python_files_compile() {
    let Some(python) = external_tool("python3", "python3 -m py_compile on every Python file")
    else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for rendered in rendered_fixtures() {
        for rel in files_named(&rendered, |p, _| p.ends_with(".py")) {
            run_ok(
                &format!("{} {rel}", rendered.name),
                Command::new(&python)
                    .env("PYTHONPYCACHEPREFIX", cache.path())
                    .args(["-m", "py_compile"])
                    .arg(rendered.out.join(rel)),
            );
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} Python files checked");
}

/// What a key of consul-template's configuration holds.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bool,
    Num,
    /// A Go duration (`time.ParseDuration`): "250ms", "1m30s".
    Duration,
    /// A signal name consul-template knows (`signals.SignalLookup`).
    Signal,
    /// A list of strings.
    Strs,
    /// A command: a list of strings, or one string. consul-template splits a string on commas
    /// (`mapstructure.StringToSliceHookFunc(",")`), so a string command must have none.
    Command,
    /// A block, with its own documented keys. `template` may repeat; no other block does.
    Block(&'static [(&'static str, Kind)]),
}

use Kind::{Block, Bool, Command as Cmd, Duration, Num, Signal, Str, Strs};

const WAIT: Kind = Block(&[("min", Duration), ("max", Duration)]);

/// consul-template's documented configuration: docs/configuration.md of
/// hashicorp/consul-template (at 1deacb7, 0.4x), sections "Consul Template" (top-level keys),
/// "Consul", "Templates" and "Exec Mode", keys and value types as the examples there show them.
/// Vault, Nomad and de-duplication are left out: nothing here uses them, and a blueprint that
/// starts to must add their documented keys first.
const CONSUL_TEMPLATE_CONFIG: &[(&str, Kind)] = &[
    ("reload_signal", Signal),
    ("kill_signal", Signal),
    ("max_stale", Duration),
    ("block_query_wait", Duration),
    ("log_level", Str),
    ("template_error_fatal", Bool),
    ("err_on_failed_lookup", Bool),
    ("wait", WAIT),
    ("pid_file", Str),
    ("syslog", Block(&[("enabled", Bool), ("facility", Str)])),
    (
        "log_file",
        Block(&[
            ("path", Str),
            ("log_rotate_bytes", Num),
            ("log_rotate_duration", Duration),
            ("log_rotate_max_files", Num),
        ]),
    ),
    (
        "consul",
        Block(&[
            (
                "auth",
                Block(&[("enabled", Bool), ("username", Str), ("password", Str)]),
            ),
            ("address", Str),
            ("namespace", Str),
            ("token", Str),
            ("token_file", Str),
            (
                "retry",
                Block(&[
                    ("enabled", Bool),
                    ("attempts", Num),
                    ("backoff", Duration),
                    ("max_backoff", Duration),
                ]),
            ),
            (
                "transport",
                Block(&[
                    ("dial_keep_alive", Duration),
                    ("dial_timeout", Duration),
                    ("disable_keep_alives", Bool),
                    ("max_idle_conns_per_host", Num),
                    ("tls_handshake_timeout", Duration),
                ]),
            ),
            (
                "ssl",
                Block(&[
                    ("enabled", Bool),
                    ("verify", Bool),
                    ("cert", Str),
                    ("key", Str),
                    ("ca_cert", Str),
                    ("ca_path", Str),
                    ("server_name", Str),
                ]),
            ),
        ]),
    ),
    (
        "template",
        Block(&[
            ("source", Str),
            ("destination", Str),
            ("create_dest_dirs", Bool),
            ("contents", Str),
            ("error_on_missing_key", Bool),
            ("error_fatal", Bool),
            ("perms", Num),
            ("user", Num),
            ("group", Num),
            ("backup", Bool),
            ("left_delimiter", Str),
            ("right_delimiter", Str),
            ("function_denylist", Strs),
            ("sandbox_path", Str),
            ("wait", WAIT),
            ("exec", Block(&[("command", Cmd), ("timeout", Duration)])),
            ("command", Cmd),
            ("command_timeout", Duration),
        ]),
    ),
    (
        "exec",
        Block(&[
            ("command", Cmd),
            ("timeout", Duration),
            ("splay", Duration),
            (
                "env",
                Block(&[
                    ("pristine", Bool),
                    ("custom", Strs),
                    ("allowlist", Strs),
                    ("denylist", Strs),
                ]),
            ),
            ("reload_signal", Signal),
            ("kill_signal", Signal),
            ("kill_timeout", Duration),
        ]),
    ),
];

/// Signal names consul-template accepts on Linux (its `signals` package: the names of
/// `syscall`'s signals), the ones a config could sensibly use.
const SIGNALS: &[&str] = &[
    "SIGABRT", "SIGALRM", "SIGCHLD", "SIGCONT", "SIGHUP", "SIGINT", "SIGIO", "SIGKILL", "SIGPIPE",
    "SIGPROF", "SIGQUIT", "SIGSTOP", "SIGSYS", "SIGTERM", "SIGTRAP", "SIGTSTP", "SIGTTIN",
    "SIGTTOU", "SIGURG", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGXCPU", "SIGXFSZ",
];

/// Go's `time.ParseDuration` syntax (one or more number+unit pairs, or a bare "0").
fn is_go_duration(text: &str) -> bool {
    let mut rest = text.strip_prefix(['+', '-']).unwrap_or(text);
    if rest == "0" {
        return true;
    }
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 || rest[..digits].matches('.').count() > 1 {
            return false;
        }
        rest = &rest[digits..];
        let Some(unit) = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .iter()
            .filter(|u| rest.starts_with(**u))
            .max_by_key(|u| u.len())
        else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}

/// Every key of `body` against `schema`; problems are pushed as "path: what".
fn check_hcl_body(
    body: &hcl::Body,
    schema: &[(&str, Kind)],
    path: &str,
    problems: &mut Vec<String>,
) {
    let mut seen = std::collections::BTreeSet::new();
    for structure in body.iter() {
        let (key, expr, block) = match structure {
            hcl::Structure::Attribute(a) => (a.key(), Some(a.expr()), None),
            hcl::Structure::Block(b) => (b.identifier(), None, Some(b)),
        };
        let at = format!("{path}{key}");
        let Some(&(_, kind)) = schema.iter().find(|(k, _)| *k == key) else {
            problems.push(format!("{at}: not a documented consul-template key"));
            continue;
        };
        if !seen.insert(key) && at != "template" {
            problems.push(format!("{at}: given twice"));
        }
        use hcl::Expression as E;
        let string = |e: &E| match e {
            E::String(s) => Some(s.clone()),
            _ => None,
        };
        let ok = match (kind, expr, block) {
            (Block(inner), None, Some(b)) if b.labels().is_empty() => {
                check_hcl_body(b.body(), inner, &format!("{at}."), problems);
                true
            }
            (Str, Some(e), _) => string(e).is_some(),
            (Bool, Some(e), _) => matches!(e, E::Bool(_)),
            (Num, Some(e), _) => matches!(e, E::Number(_)),
            (Duration, Some(e), _) => string(e).is_some_and(|s| is_go_duration(&s)),
            (Signal, Some(e), _) => string(e).is_some_and(|s| SIGNALS.contains(&s.as_str())),
            (Strs, Some(E::Array(items)), _) => items.iter().all(|i| string(i).is_some()),
            (Cmd, Some(E::Array(items)), _) => {
                !items.is_empty() && items.iter().all(|i| string(i).is_some())
            }
            (Cmd, Some(e), _) => string(e).is_some_and(|s| !s.is_empty() && !s.contains(',')),
            _ => false,
        };
        if !ok {
            problems.push(format!(
                "{at}: not a valid {} ({})",
                match kind {
                    Str => "string",
                    Bool => "boolean",
                    Num => "number",
                    Duration => "Go duration string",
                    Signal => "signal name",
                    Strs => "list of strings",
                    Cmd => "command (a list of strings, or a string without a comma)",
                    Block(_) => "block without labels",
                },
                expr.map_or_else(|| "a block".to_owned(), |e| e.to_string())
            ));
        }
    }
}

/// Every generated consul-template.hcl parsed with an HCL parser (the `hcl-rs` crate) and held
/// to consul-template's documented configuration (`CONSUL_TEMPLATE_CONFIG`): an unknown key, a
/// value of the wrong type, a malformed duration or signal fails, as consul-template itself
/// refuses unknown keys (its decoder sets `ErrorUnused`). consul-template reads HCL 1, hcl-rs
/// HCL 2; the file keeps to their common syntax, except that HCL 1 reads a number with a
/// leading 0 as octal: so `perms` must be written that way (hcl-rs alone would not tell).
#[test]
fn consul_template_config_uses_only_documented_keys() {
    let mut checked = 0;
    for rendered in rendered_fixtures() {
        for rel in files_named(&rendered, |p, _| p.ends_with("consul-template.hcl")) {
            let text = &rendered.files[rel];
            let what = format!("{} {rel}", rendered.name);
            let body = hcl::parse(text).unwrap_or_else(|e| panic!("{what}: not HCL: {e}"));
            let mut problems = Vec::new();
            check_hcl_body(&body, CONSUL_TEMPLATE_CONFIG, "", &mut problems);
            for line in text.lines().map(str::trim) {
                if let Some(value) = line.strip_prefix("perms") {
                    let value = value.trim_start().trim_start_matches('=').trim();
                    let octal = value.len() > 1
                        && value.starts_with('0')
                        && value.chars().all(|c| ('0'..='7').contains(&c));
                    if !octal {
                        problems.push(format!("perms = {value}: not an octal (0…) number"));
                    }
                }
            }
            assert!(problems.is_empty(), "{what}:\n{}", problems.join("\n"));
            for block in ["consul", "template", "exec"] {
                assert!(
                    body.blocks().any(|b| b.identifier() == block),
                    "{what}: no {block} block"
                );
            }
            checked += 1;
        }
    }
    // consul-template, custom and the example.
    assert!(checked >= 3, "only {checked} consul-template.hcl checked");
}

#[test]
fn consul_template_config_check_refuses_what_is_not_documented() {
    let problems = |text: &str| {
        let mut problems = Vec::new();
        check_hcl_body(
            &hcl::parse(text).unwrap(),
            CONSUL_TEMPLATE_CONFIG,
            "",
            &mut problems,
        );
        problems
    };
    assert!(problems(
        "consul {\n address = \"c:8500\"\n retry {\n attempts = 0\n backoff = \"1m30s\"\n }\n}\n\
         template {\n source = \"a\"\n perms = 0644\n}\ntemplate {\n source = \"b\"\n}\n\
         exec {\n command = [\"a\", \"b,c\"]\n kill_signal = \"SIGUSR1\"\n kill_timeout = \"0\"\n}\n"
    )
    .is_empty());
    for (bad, expected) in [
        (
            "exec {\n comand = \"x\"\n}\n",
            "exec.comand: not a documented",
        ),
        ("vault {\n address = \"v\"\n}\n", "vault: not a documented"),
        (
            "wait {\n min = \"5 s\"\n}\n",
            "wait.min: not a valid Go duration",
        ),
        (
            "kill_signal = \"SIGFOO\"\n",
            "kill_signal: not a valid signal",
        ),
        (
            "exec {\n command = \"a,b\"\n}\n",
            "exec.command: not a valid command",
        ),
        (
            "consul {\n retry {\n attempts = \"0\"\n }\n}\n",
            "consul.retry.attempts: not a valid number",
        ),
        (
            "wait {\n min = \"1s\"\n}\nwait {\n max = \"2s\"\n}\n",
            "wait: given twice",
        ),
        (
            "wait \"x\" {\n min = \"1s\"\n}\n",
            "wait: not a valid block",
        ),
    ] {
        let found = problems(bad);
        assert!(
            found.iter().any(|p| p.starts_with(expected)),
            "{bad:?}: expected {expected:?}, got {found:?}"
        );
    }
}

#[test]
fn every_generated_file_is_covered_by_a_check() {
    // A new kind of generated file must get a check here (or be listed as not checkable).
    for rendered in rendered_fixtures() {
        for (path, text) in &rendered.files {
            let covered = path.ends_with("Dockerfile")
                || path.ends_with(".py")
                || path.ends_with("haproxy.cfg")
                || path.ends_with("haproxy.ctmpl")
                || path == "compose.yaml"
                || path == "stack.yaml"
                || is_shell_script(path, text)
                || path.ends_with("consul-template.hcl")
                // No offline tool: Markdown, the manifest.
                || path.ends_with(".md")
                || path == ".provision-manifest";
            assert!(
                covered,
                "{}: {path} is not checked by any tool",
                rendered.name
            );
        }
    }
}

/// HAProxy 3.0 (Debian 13, what the default trixie base installs) on the same configs as
/// `haproxy_accepts_every_config` and `go_renders_every_ctmpl_into_a_valid_config` check with the
/// host's HAProxy (bookworm's 2.6 on our machines), in zero-warning mode (`-dW`): a deprecation warning fails too. It runs in the rig
/// image `localhost/provision-rig/haproxy:trixie` (`.ci/rig-images.sh`; `PROVISION_RIG_PREFIX`
/// moves it, as for the end-to-end tests), one `docker run` per config, reading the config from
/// stdin with no network and the stack's service names in the container's /etc/hosts. Without
/// an engine, the image or go it skips with a printed reason, and fails when CI is set.
#[test]
fn haproxy_3_0_accepts_every_config_without_warnings() {
    let prefix =
        std::env::var("PROVISION_RIG_PREFIX").unwrap_or_else(|_| "localhost/provision-rig".into());
    let image = format!("{prefix}/haproxy:trixie");
    let check = "haproxy -c with HAProxy 3.0 (trixie)";
    let Some(docker) = external_tool("docker", check) else {
        return;
    };
    // The ctmpl's configs come from Go (`ctmpl.rs`): without go, skip rather than check half.
    let Some(renderer) = ctmpl::renderer(check) else {
        return;
    };
    let docker_ok = |args: &[&str]| {
        Command::new(&docker)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !docker_ok(&["version", "--format", "{{.Server.Version}}"]) {
        return skip_or_fail(check, "no Docker engine answers");
    }
    if !docker_ok(&["image", "inspect", "--format", "{{.Id}}", &image]) {
        return skip_or_fail(
            check,
            &format!("the image {image} is missing (.ci/rig-images.sh builds it)"),
        );
    }

    let mut configs: Vec<(String, String)> = Vec::new();
    for rendered in rendered_fixtures() {
        for (rel, text) in &rendered.files {
            if rel.ends_with("haproxy.cfg") {
                configs.push((format!("{} {rel}", rendered.name), text.clone()));
            } else if rel.ends_with("haproxy.ctmpl") {
                let out_dir = rendered.out.join("lb/ctmpl-go");
                for (count, _, config) in ctmpl::render(
                    renderer,
                    &rendered.out.join(rel),
                    &rendered.containers(),
                    &out_dir,
                ) {
                    configs.push((
                        format!("{} {rel} rendered for {count} instances", rendered.name),
                        config,
                    ));
                }
            }
        }
    }
    // All containers at once: each run is mostly the engine's start-up, not HAProxy's work.
    let children: Vec<_> = configs
        .iter()
        .map(|(what, config)| {
            let mut child = Command::new(&docker)
                .args(["run", "--rm", "-i", "--network", "none"])
                .args(["consul", "web", "redis", "lb"].map(|h| format!("--add-host={h}:127.0.0.1")))
                // As the lb image does (lb/Dockerfile): the server-state file, version line only.
                .args(["--user", "0", "--entrypoint", "sh", &image, "-c"])
                .arg(
                    "mkdir -p /run/haproxy && echo 1 >/run/haproxy/server-state \
                     && mkdir -p /run/secrets && echo token >/run/secrets/probe_token \
                     && PROVISION_STATS_PASSWORD=password exec haproxy -dW -c -f /dev/stdin",
                )
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("{what}: cannot run docker: {e}"));
            // A config is far smaller than a pipe's buffer; dropping stdin ends the input.
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), config.as_bytes()).unwrap();
            child
        })
        .collect();
    for ((what, config), child) in configs.iter().zip(children) {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{what}: HAProxy 3.0 (-dW -c) exited with {}\n--- stdout\n{}\n--- stderr\n{}\n--- config\n{config}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    eprintln!("HAProxy 3.0: {} configs valid, no warnings", configs.len());
    // consul-template, custom and the example give 3 configs each (0, 1, 5 instances); the 3
    // DNS-mode fixtures 1.
    assert!(
        configs.len() >= 12,
        "only {} HAProxy configs checked",
        configs.len()
    );
}
