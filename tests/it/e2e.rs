//! End-to-end tests: the built `provision` binary drives a real stack on a real Docker engine.
//!
//! The stacks use the offline rig images that `.ci/rig-images.sh` builds (a Debian base imported
//! with mmdebstrap, and consul from Debian's static binary), so they need no registry. They run one
//! stack at a time (a lock: two stacks would fight over 2 cores), with their own Compose project
//! names and host ports (28xxx: below the kernel's ephemeral range, 32768-60999, so that no
//! client connection on the machine can hold one when a stack binds it), and remove everything
//! they created in a drop guard, also when an assertion fails; a failing step dumps the command, its stdout and stderr, and the stack's logs.
//! Each step is logged to stderr as it happens (not captured by the test harness), with timings.
//! The images `apply` builds (`provision-e2e-dns-{web,lb,redis}:<hash>`, and `provision-e2e-own-…`
//! for the test of our own app) are kept as a build cache: a rerun with unchanged blueprints
//! builds nothing.
//!
//! Switches (environment variables):
//! - `PROVISION_E2E=require`: the docker CLI, the engine, Compose v2 and the rig images must be
//!   there, or these tests FAIL. This is the default when `CI` is set; `.ci/run` sets it
//!   explicitly (see `harness::every_check_required`).
//! - `PROVISION_E2E=skip`: skip them. Unset (and no `CI`): they run when an engine answers and the
//!   rig images exist, and otherwise print why they were skipped (`SKIPPED <test> ...`).
//! - `PROVISION_RIG_PREFIX`: where the rig images live (default `localhost/provision-rig`).
//! - `PROVISION_E2E_CONSUL_TEMPLATE=1`: run the reference-mode test (consul-template + registrator)
//!   even when its images are not present locally: Compose then pulls them, so a registry must be
//!   reachable. `=0` always skips it. Unset, it runs only when both images are already present
//!   locally, and otherwise prints that it was skipped and which image is missing.
//!   `PROVISION_E2E_CONSUL_TEMPLATE_IMAGE` / `PROVISION_E2E_REGISTRATOR_IMAGE` choose those images
//!   (default: the spec's defaults), and `PROVISION_E2E_CONSUL_TEMPLATE_SOURCE=download` makes the
//!   lb image download consul-template (verified) instead of copying it from the image.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::engine::{docker, image_present, note, rig_image, start};
use crate::support::harness::{external_tool, report_skip, Project};
use crate::support::picture::{artifacts_dir, assert_report_page, screenshot};
use crate::support::secrets::{
    assert_no_secret_in, assert_no_secret_under, assert_none_of_in, assert_none_of_under,
    get_with_stats_login, stack_secret, CONSUL_SECRETS, STACK_SECRETS,
};
use crate::support::stack::{
    check_of, consul_dns_spec, hits_now, hits_once_routed, verify_passes, verify_report, Stack,
    APPLY_TIMEOUT, LOAD_RATE, SHORT_TIMEOUT, VERIFY_TIMEOUT,
};

/// The offline mode, the whole life of a stack: apply, verify at 10 (under load, with the
/// report page and its screenshot), 2 and as it stands, an
/// idempotent re-apply, a replica stopped by hand, the counter surviving destroy, destroy --volumes.
#[test]
fn e2e_consul_dns_apply_verify_5_2_reapply_stop_destroy() {
    const PROJECT: &str = "provision-e2e-dns";
    const LB: u16 = 28080;
    let images = [rig_image("debian:trixie"), rig_image("consul:1.8.7")];
    let Some(_engine) = start(&images) else {
        return;
    };
    let project = Project::new();
    // The stack's own tag of the rig's base, so that the test can move it (a new base).
    let base = format!("{PROJECT}-base:trixie");
    docker(&["tag", &rig_image("debian:trixie"), &base]).expect_success();
    project.write(
        "provision.yaml",
        &consul_dns_spec(PROJECT, 2, LB, 28404, 28500).replace(
            &format!("base: {}", rig_image("debian:trixie")),
            &format!("base: {base}"),
        ),
    );
    let stack = Stack::new(PROJECT);

    stack.step("provision doctor; provision apply --dry-run");
    project
        .run(&["doctor"], &[], SHORT_TIMEOUT)
        .expect_success();
    let ran = project.run(&["apply", "--dry-run"], &[], SHORT_TIMEOUT);
    ran.expect_success();
    assert!(
        ran.stdout.contains("docker compose"),
        "no commands shown\n{ran}"
    );
    assert!(
        stack.containers().is_empty(),
        "apply --dry-run started containers\n{ran}"
    );

    stack.step("provision apply (first: builds the images)");
    let ran_first_apply = project.run(&["apply"], &[], APPLY_TIMEOUT);
    ran_first_apply.expect_success();
    stack.step(&format!(
        "apply done in {:.1}s",
        ran_first_apply.elapsed.as_secs_f64()
    ));
    assert_eq!(stack.web().len(), 2, "web replicas after apply (spec: 2)");
    let hardened = stack.assert_hardened();
    assert_eq!(
        hardened,
        ["consul", "lb", "redis", "web"].map(String::from).into(),
        "every service's containers are hardened"
    );
    let ran = project.run(&["status"], &[], SHORT_TIMEOUT);
    ran.expect_success();
    assert!(
        ran.stdout.contains("web"),
        "status does not show web\n{ran}"
    );

    // Under steady load: not one request may fail while replicas come and go. The scale-up
    // also writes the picture of the run: its plot checked, and opened in headless Chromium.
    let report = verify_passes(
        &stack,
        &project,
        &["--scale", "10", "--load", "100", "--report", "report.html"],
        10,
        LB,
    );
    let page = project.read("report.html");
    assert_report_page(&page, &report, 8);
    std::fs::write(artifacts_dir().join("report.html"), &page).unwrap();
    if let Some(png) = screenshot(&project.path().join("report.html"), "report.png") {
        stack.step(&format!("the report's screenshot: {}", png.display()));
    }
    verify_passes(
        &stack,
        &project,
        &["--scale", "2", "--load", LOAD_RATE],
        2,
        LB,
    );
    each_consul_lists_its_own_replicas_beside_another_project(&stack, 28500);
    consul_refuses_strangers(&stack, &project, PROJECT, &ran_first_apply);
    a_registration_outliving_its_replica_fails_its_check(&stack, &project, PROJECT, 28500);

    // The JUnit report of the same run, as CI systems consume it.
    let ran = project.run(&["verify", "--junit", "verify.xml"], &[], VERIFY_TIMEOUT);
    ran.expect_success();
    let junit = project.read("verify.xml");
    assert!(
        junit.contains("<testsuite") && !junit.contains("<failure"),
        "{junit}\n{ran}"
    );
    verify_passes(&stack, &project, &[], 2, LB);

    // A second apply with nothing changed must not restart (or replace) any container.
    let before = stack.containers();
    stack.step("provision apply (second, nothing changed)");
    let ran = project.run(&["apply"], &[], APPLY_TIMEOUT);
    ran.expect_success();
    let after = stack.containers();
    assert_eq!(
        before, after,
        "containers (id, StartedAt) changed across a no-change apply\n{ran}"
    );
    stack.step(&format!(
        "second apply in {:.1}s restarted none of {} containers",
        ran.elapsed.as_secs_f64(),
        after.len()
    ));

    // A new base image (here the stack's own base tag moved to another image): the next apply
    // rebuilds every image provision builds, though no file changed. Told by a dry run, which
    // changes nothing; the base tag then goes back.
    stack.step("base image moved: provision apply --dry-run");
    docker(&["tag", &rig_image("haproxy:trixie"), &base]).expect_success();
    let ran = project.run(&["apply", "--dry-run"], &[], SHORT_TIMEOUT);
    docker(&["tag", &rig_image("debian:trixie"), &base]).expect_success();
    ran.expect_success();
    assert!(
        ran.all_output().contains(&format!(
            "images of lb, redis, web to rebuild (built on an older {base})"
        )),
        "a new base did not make apply rebuild\n{ran}"
    );
    assert_eq!(stack.containers(), after, "a dry run changed containers");

    // A replica stopped by hand: verify fails and names it.
    let victim = stack.web().into_iter().next().expect("a web replica");
    stack.step(&format!(
        "docker stop {} ({})",
        victim.name,
        victim.short_id()
    ));
    docker(&["stop", &victim.id]).expect_success();
    let ran = project.run(&["verify", "--timeout", "20"], &[], VERIFY_TIMEOUT);
    ran.expect_code(1);
    let out = ran.all_output();
    assert!(
        out.contains(&victim.name) || out.contains(victim.short_id()),
        "verify does not name the stopped replica {} ({})\n{ran}",
        victim.name,
        victim.short_id()
    );
    let naming = out
        .lines()
        .find(|l| l.contains(&victim.name) || l.contains(victim.short_id()))
        .unwrap_or_default();
    stack.step(&format!(
        "verify failed (exit 1) and said: {}",
        naming.trim()
    ));

    // The counter lives in the redis volume: destroy without --volumes keeps it.
    let hits = hits_now(LB);
    stack.step(&format!("hits = {hits}; provision destroy"));
    project
        .run(&["destroy"], &[], SHORT_TIMEOUT)
        .expect_success();
    assert!(stack.containers().is_empty(), "containers left by destroy");
    assert!(
        !stack.ids("volume").is_empty(),
        "destroy without --volumes removed the redis volume"
    );
    stack.step("provision apply (after destroy)");
    project.run(&["apply"], &[], APPLY_TIMEOUT).expect_success();
    let hits_after = hits_once_routed(LB);
    assert!(
        hits_after > hits,
        "hit counter did not survive destroy + apply: {hits} then {hits_after}"
    );
    stack.step(&format!("hits = {hits_after} after destroy + apply"));

    stack.step("provision destroy --volumes");
    project
        .run(&["destroy", "--volumes"], &[], SHORT_TIMEOUT)
        .expect_success();
    assert!(stack.containers().is_empty(), "containers left");
    assert!(stack.ids("volume").is_empty(), "volumes left");
    stack.step("done");
}

/// Two projects on one engine: a second, one-replica stack started beside `stack` (whose
/// consul publishes its API on `consul_port`); each consul lists only its own web replicas.
fn each_consul_lists_its_own_replicas_beside_another_project(stack: &Stack, consul_port: u16) {
    const BESIDE: &str = "provision-e2e-dns-beside";
    const BESIDE_CONSUL: u16 = 28096;
    let t0 = Instant::now();
    let beside = Stack::new(BESIDE);
    let project = Project::new();
    project.write(
        "provision.yaml",
        &consul_dns_spec(BESIDE, 1, 28090, 28094, BESIDE_CONSUL),
    );
    stack.step(&format!("a second project beside: {BESIDE}, apply"));
    project.run(&["apply"], &[], APPLY_TIMEOUT).expect_success();
    for (stack, port) in [(stack, consul_port), (&beside, BESIDE_CONSUL)] {
        let own: BTreeSet<String> = stack.web_addresses().into_values().flatten().collect();
        let url = format!("http://127.0.0.1:{port}/v1/catalog/service/web");
        let listed: BTreeSet<String> = wait_for_catalog(&url)
            .iter()
            .map(|entry| entry["ServiceAddress"].as_str().unwrap_or("").to_owned())
            .collect();
        assert!(
            !listed.is_empty() && listed.is_subset(&own),
            "{}'s consul lists {listed:?}, its own web replicas are {own:?}",
            stack.project
        );
    }
    project
        .run(&["destroy", "--volumes"], &[], SHORT_TIMEOUT)
        .expect_success();
    stack.step(&format!(
        "each consul listed only its own replicas; the second project cost {:.1}s",
        t0.elapsed().as_secs_f64()
    ));
}

/// Issue 16, consul's ACLs: a new container on the stack's network cannot register a service
/// (here a web instance that would steer the lb to an address of its choosing), write a key or
/// read the ACLs, without a token or with a guessed one: consul answers 403. The caller's next
/// verify (exactly 2 replicas routed) shows the lb's routing did not change. The tokens'
/// values are in no file of generated/ and not in apply's output.
fn consul_refuses_strangers(
    stack: &Stack,
    project: &Project,
    name: &str,
    applied: &crate::support::harness::Ran,
) {
    let started = Instant::now();
    let body = format!(
        r#"{{"ID":"web-evil","Name":"web","Tags":["provision-{name}"],"Address":"10.9.9.9","Port":5000}}"#
    );
    // One raw HTTP/1.0 request, handed to bash in a variable (the rig's base has no HTTP
    // client); the container prints the status line.
    let request = |method: &str, path: &str, token: &str, body: &str| {
        format!(
            "REQUEST={method} /{path} HTTP/1.0\r\nHost: consul\r\n{token}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let guessed = "X-Consul-Token: 3f0c2d4e-8b7a-4c1d-9e2f-0a1b2c3d4e5f\r\n";
    for (what, method, path, token, body) in [
        (
            "register a service",
            "PUT",
            "v1/agent/service/register",
            "",
            body.as_str(),
        ),
        (
            "register a service with a guessed token",
            "PUT",
            "v1/agent/service/register",
            guessed,
            body.as_str(),
        ),
        ("write a key", "PUT", "v1/kv/provision-evil", "", "x"),
        ("list the ACL tokens", "GET", "v1/acl/tokens", "", ""),
    ] {
        let ran = docker(&[
            "run",
            "--rm",
            "--network",
            &format!("{name}_default"),
            "--env",
            &request(method, path, token, body),
            &rig_image("debian:trixie"),
            "bash",
            "-c",
            r#"exec 3<>/dev/tcp/consul/8500 && printf '%s' "$REQUEST" >&3 && head -n 1 <&3"#,
        ]);
        ran.expect_success();
        assert!(
            ran.stdout.starts_with("HTTP/1.")
                && ran.stdout.split_whitespace().nth(1) == Some("403"),
            "a stranger could {what} in consul:\n{ran}"
        );
    }
    for secret in CONSUL_SECRETS {
        let value = stack_secret(&project.state_base(), name, secret);
        assert_eq!(value.trim().len(), 36, "{secret} is not a UUID");
    }
    for (what, text) in [
        ("apply's stdout", &applied.stdout),
        ("apply's stderr", &applied.stderr),
    ] {
        assert_none_of_in(&project.state_base(), name, &CONSUL_SECRETS, what, text);
    }
    assert_none_of_under(
        &project.state_base(),
        name,
        &CONSUL_SECRETS,
        &project.path().join("generated"),
    );
    stack.step(&format!(
        "consul refused a stranger's registration, key and ACL reads (403) in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
}

/// A killed replica's registration can outlive it on a consul server that still runs, and on a
/// Swarm its address then goes to a new task. Here such registrations are made by hand at a
/// live replica's address, with the check the entrypoint makes for itself (an HTTP check of the
/// health path naming the replica in `X-Provision-Replica`): the real consul 1.8.7 runs it
/// against the real app, which answers 421 to "ghost", so that check stays critical. The same
/// check without the header (as before) passes there: the header is what tells them apart (the
/// last node-loss failure: "consul lists 8 of 6 web instances passing").
fn a_registration_outliving_its_replica_fails_its_check(
    stack: &Stack,
    project: &Project,
    name: &str,
    consul_port: u16,
) {
    let started = Instant::now();
    let token = stack_secret(&project.state_base(), name, "consul_writer_token");
    let token = token.trim();
    let api = |path: &str| format!("http://127.0.0.1:{consul_port}/v1/{path}");
    let live = wait_for_catalog(&api("catalog/service/web"));
    let live = live.first().expect("consul lists a web replica");
    let (address, port) = (
        live["ServiceAddress"].as_str().unwrap().to_owned(),
        live["ServicePort"].as_u64().unwrap(),
    );
    let register = |id: &str, header: Value| {
        let registration = serde_json::json!({
            "ID": id,
            // The service the writer token may write; no project tag: verify never counts it.
            "Name": "web",
            "Address": address,
            "Port": port,
            "Check": {
                "HTTP": format!("http://{address}:{port}/health"),
                "Header": header,
                "Interval": "1s",
                "Timeout": "1s",
            },
        });
        ureq::put(&api("agent/service/register"))
            .set("X-Consul-Token", token)
            .send_string(&registration.to_string())
            .unwrap_or_else(|e| panic!("registering {id} with the writer token: {e}"));
    };
    register(
        "ghost",
        serde_json::json!({"X-Provision-Replica": ["ghost"]}),
    );
    register("unnamed", serde_json::json!({}));
    // The agent's own view: the catalog keeps a check's first output until its status changes.
    let (mut ghost, mut unnamed) = (Value::Null, Value::Null);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        let checks = consul_get(&api("agent/checks"), token);
        ghost = checks["service:ghost"].clone();
        unnamed = checks["service:unnamed"].clone();
        assert_ne!(
            ghost["Status"], "passing",
            "a registration for another replica passed its check at {address}:{port}: {ghost}"
        );
        if ghost["Output"].as_str().unwrap_or("").contains(" 421 ")
            && unnamed["Status"] == "passing"
        {
            break;
        }
    }
    for id in ["ghost", "unnamed"] {
        ureq::put(&api(&format!("agent/service/deregister/{id}")))
            .set("X-Consul-Token", token)
            .call()
            .unwrap_or_else(|e| panic!("deregistering {id}: {e}"));
    }
    assert!(
        ghost["Output"].as_str().unwrap_or("").contains(" 421 "),
        "consul's check of the ghost never saw the app's 421: {ghost}"
    );
    assert_eq!(
        unnamed["Status"], "passing",
        "the check without the header should pass at a live replica's address: {unnamed}"
    );
    stack.step(&format!(
        "at {address}:{port}, a check naming another replica stayed critical (421), the same \
         check unnamed passed; {:.1}s",
        started.elapsed().as_secs_f64()
    ));
}

/// A GET of consul's API with `token`, as JSON (Null when it does not answer).
fn consul_get(url: &str, token: &str) -> Value {
    ureq::get(url)
        .set("X-Consul-Token", token)
        .timeout(Duration::from_secs(3))
        .call()
        .ok()
        .and_then(|answer| answer.into_string().ok())
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// consul's `/v1/catalog/service/web` answer, once it lists at least one instance (10 s at most).
fn wait_for_catalog(url: &str) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let entries: Vec<Value> = ureq::get(url)
            .timeout(Duration::from_secs(3))
            .call()
            .ok()
            .and_then(|answer| answer.into_string().ok())
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        if !entries.is_empty() || start.elapsed() > Duration::from_secs(10) {
            return entries;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The reference mode (registrator + consul-template). Its images cannot be had offline, so it
/// runs only when they are present locally or PROVISION_E2E_CONSUL_TEMPLATE=1 (see the top).
#[test]
fn e2e_consul_template_apply_verify_3_1_destroy() {
    const PROJECT: &str = "provision-e2e-ct";
    const LB: u16 = 28190; // 28180-28389 are the swarm rig's (.ci/README.md)
    use provision::spec::model::defaults;
    let env = |key: &str, default: &str| std::env::var(key).unwrap_or_else(|_| default.into());
    let ct_image = env(
        "PROVISION_E2E_CONSUL_TEMPLATE_IMAGE",
        defaults::CONSUL_TEMPLATE_IMAGE,
    );
    let registrator = env(
        "PROVISION_E2E_REGISTRATOR_IMAGE",
        defaults::REGISTRATOR_IMAGE,
    );
    let source = env("PROVISION_E2E_CONSUL_TEMPLATE_SOURCE", "image");
    let forced = std::env::var("PROVISION_E2E_CONSUL_TEMPLATE").ok();
    if forced.as_deref() == Some("0") {
        report_skip("the reference mode", "PROVISION_E2E_CONSUL_TEMPLATE=0");
        return;
    }
    let rig = [rig_image("debian:trixie"), rig_image("consul:1.8.7")];
    let Some(_engine) = start(&rig) else {
        return;
    };
    if forced.as_deref() != Some("1") {
        let mut needed = vec![registrator.clone()];
        if source == "image" {
            needed.push(ct_image.clone());
        }
        let missing: Vec<String> = needed.into_iter().filter(|i| !image_present(i)).collect();
        if !missing.is_empty() {
            // Never a failure, not even in CI: no offline machine can have these images.
            report_skip(
                "the reference mode",
                &format!(
                    "image(s) not present locally: {}; no registry is reachable to pull them. \
                     Load them (docker load) or set PROVISION_E2E_CONSUL_TEMPLATE=1 to let \
                     Compose pull them.",
                    missing.join(", ")
                ),
            );
            return;
        }
    }

    let project = Project::new();
    project.write(
        "provision.yaml",
        &format!(
            "# end-to-end test stack: the reference mode (registrator + consul-template)\n\
             project: {PROJECT}\n\
             discovery: consul-template\n\
             images:\n  base: {base}\n  consul: {consul}\n  \
             consul_template: {ct_image}\n  registrator: {registrator}\n\
             consul:\n  http_port: 28600\n\
             lb:\n  port: {LB}\n  stats_port: 28504\n  consul_template: {source}\n",
            base = rig_image("debian:trixie"),
            consul = rig_image("consul:1.8.7"),
        ),
    );
    let stack = Stack::new(PROJECT);
    stack.step("provision apply");
    project.run(&["apply"], &[], APPLY_TIMEOUT).expect_success();
    verify_passes(&stack, &project, &["--scale", "3"], 3, LB);
    verify_passes(&stack, &project, &["--scale", "1"], 1, LB);
    stack.step("provision destroy --volumes");
    project
        .run(&["destroy", "--volumes"], &[], SHORT_TIMEOUT)
        .expect_success();
    assert!(stack.containers().is_empty(), "containers left");
    stack.step("done");
}

/// `GET /config` through the load balancer until `replicas` different hosts answered: host →
/// what it says it was given (its first line, the host, taken off).
fn app_configs(port: u16, replicas: usize) -> std::collections::BTreeMap<String, String> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .max_idle_connections(0)
        .build();
    let mut seen = std::collections::BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < replicas && Instant::now() < deadline {
        let body = agent
            .get(&format!("http://127.0.0.1:{port}/config"))
            .call()
            .expect("GET /config through the lb")
            .into_string()
            .unwrap();
        let (host, rest) = body.split_once('\n').expect("a host line");
        seen.insert(host.trim_start_matches("host=").to_owned(), rest.to_owned());
    }
    assert_eq!(
        seen.len(),
        replicas,
        "hosts that answered /config: {seen:?}"
    );
    seen
}

/// Where any of `values` occurs: files under `dirs` (but under `except`, the store's own value
/// files) and the commands' output. Each finding names the place, not the value.
fn find_values(
    values: &[&str],
    dirs: &[std::path::PathBuf],
    except: &std::path::Path,
    outputs: &[crate::support::harness::Ran],
) -> Vec<String> {
    let mut found = Vec::new();
    for dir in dirs {
        for entry in walkdir::WalkDir::new(dir)
            .into_iter()
            .filter_map(Result::ok)
        {
            if entry.path().starts_with(except) || !entry.file_type().is_file() {
                continue;
            }
            let text = String::from_utf8_lossy(&std::fs::read(entry.path()).unwrap()).into_owned();
            if values.iter().any(|v| text.contains(v)) {
                found.push(entry.path().display().to_string());
            }
        }
    }
    for ran in outputs {
        if values
            .iter()
            .any(|v| ran.stdout.contains(v) || ran.stderr.contains(v))
        {
            found.push(format!("the output of `{}`", ran.line));
        }
    }
    found
}

/// A GET through the load balancer, with or without the probe header (and its value): the
/// status, the `X-Provision-Server` header if any, and the body.
fn get_lb(port: u16, probe_header: Option<&str>) -> Result<(u16, Option<String>, String), String> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .max_idle_connections(0)
        .build();
    let mut request = agent.get(&format!("http://127.0.0.1:{port}/"));
    if let Some(value) = probe_header {
        request = request.set("X-Provision-Probe", value);
    }
    let response = request.call().map_err(|e| e.to_string())?;
    let status = response.status();
    let server = response.header("X-Provision-Server").map(str::to_owned);
    let body = response.into_string().map_err(|e| e.to_string())?;
    Ok((status, server, body))
}

/// Our own app (tests/fixtures/apps/hello, not the hit counter) on docker-dns: verify at 3 names
/// the three containers that answered, a replica stopped by hand fails verify by name, verify at
/// 1 passes, destroy. Checked independently: the app's own `hello from <hostname>` answers, and
/// the load balancer's server header (only when asked) against docker's addresses.
#[test]
fn e2e_custom_app_docker_dns_verify_3_stop_1_destroy() {
    const PROJECT: &str = "provision-e2e-own";
    const LB: u16 = 28980;
    let base = rig_image("debian:trixie");
    let Some(_engine) = start(std::slice::from_ref(&base)) else {
        return;
    };
    let project = Project::new();
    // The fixture app as a user would have it, but FROM the offline base.
    crate::support::fixtures::write_fixture_app(&project, "hello", "hello", &base);
    // The app's configuration (issue 18): a plain value with a `$` in it, an env file, and two
    // secrets, one from a file beside the spec and one from apply's environment. The values are
    // new on every run, so that finding one anywhere is this run's leak.
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let api_key = format!("e2e-api-key-{stamp}");
    let token = format!("e2e-token-{stamp}-longer");
    project.write("api_key.txt", &format!("{api_key}\n"));
    project.write(
        "app.env",
        "# the app's settings\nMODE=\"from the env file\"\n",
    );
    project.write(
        "provision.yaml",
        &format!(
            "# end-to-end test stack: our own app (not the counter) on docker-dns\n\
             project: {PROJECT}\n\
             discovery: docker-dns\n\
             images:\n  base: {base}\n\
             web:\n  app: hello\n  port: 7000\n  health_path: /ready\n  replicas: 2\n  \
             expect:\n    status: 200\n    contains: \"hello from \"\n  \
             env:\n    GREETING: \"hi $USER\"\n    SECRETS: API_KEY,TOKEN\n  \
             env_file: app.env\n  \
             secrets:\n    API_KEY: api_key.txt\n    TOKEN: {{env: E2E_TOKEN}}\n\
             lb:\n  port: {LB}\n  stats_port: 28904\n"
        ),
    );
    let with_token = [("E2E_TOKEN", token.as_str())];
    let stack = Stack::new(PROJECT);
    stack.step("provision apply (builds the app's image from its own Dockerfile)");
    let ran = project.run(&["apply"], &with_token, APPLY_TIMEOUT);
    ran.expect_success();
    stack.step(&format!("apply done in {:.1}s", ran.elapsed.as_secs_f64()));
    let mut outputs = vec![ran];
    let configs = app_configs(LB, 2);
    let wanted = |key_len: usize| {
        format!(
            "GREETING=hi $USER\nMODE=from the env file\nAPI_KEY length={key_len}\nTOKEN length={}\n",
            token.len()
        )
    };
    for (host, config) in &configs {
        assert_eq!(config, &wanted(api_key.len()), "what {host} was given");
    }
    stack.step(&format!(
        "every replica got the env value, the env file and both secrets: {configs:?}"
    ));

    // Without the variable the secret comes from, apply stops naming the field and its line.
    let ran = project.run(&["apply"], &[], APPLY_TIMEOUT);
    ran.expect_code(2);
    assert!(
        ran.stderr.contains("provision.yaml:20:")
            && ran
                .stderr
                .contains("web.secrets.TOKEN: the variable E2E_TOKEN is not set"),
        "{ran}"
    );

    // A new secret value rolls web: every replica replaced, each reads the new value.
    let before: BTreeSet<String> = stack.web().into_iter().map(|c| c.id).collect();
    let new_key = format!("{api_key}-rotated");
    project.write("api_key.txt", &new_key);
    let ran = project.run(&["apply"], &with_token, APPLY_TIMEOUT);
    ran.expect_success();
    assert!(ran.stderr.contains("web replaced rolling"), "{ran}");
    let after: BTreeSet<String> = stack.web().into_iter().map(|c| c.id).collect();
    assert!(
        before.is_disjoint(&after),
        "replicas kept across a secret change: {before:?} {after:?}"
    );
    for (host, config) in app_configs(LB, 2) {
        assert_eq!(
            config,
            wanted(new_key.len()),
            "what {host} was given after the change"
        );
    }
    stack.step(&format!(
        "a new secret value rolled web in {:.1}s",
        ran.elapsed.as_secs_f64()
    ));
    outputs.push(ran);
    for args in [
        &["apply", "--dry-run"][..],
        &["status"],
        &["status", "--json"],
        &["verify", "--json"],
        &["render", "--check"],
    ] {
        outputs.push(project.run(args, &with_token, VERIFY_TIMEOUT));
    }
    // The project's commands keep their state under the test project (support/harness.rs).
    let state = project.path().join(".state/provision").join(PROJECT);
    assert!(
        state.join("secrets").is_dir(),
        "no state at {}",
        state.display()
    );
    let leaks = find_values(
        &[&api_key, &new_key, &token],
        &[project.file("generated"), state.clone()],
        &state.join("secrets"),
        &outputs,
    );
    assert!(leaks.is_empty(), "secret values found: {leaks:?}");
    stack.step("no secret value in generated/, the state directory's other files, or any output");
    // Your own app runs hardened too (a read-only root, /tmp writable).
    assert_eq!(
        stack.assert_hardened(),
        ["lb", "redis", "web"].map(String::from).into(),
    );

    let (report, running) = verify_report(&stack, &project, &["--scale", "3"], 3);
    assert_eq!(
        check_of(&report, "counter increasing")["outcome"],
        "skip",
        "{report:#}"
    );
    let requests = check_of(&report, "requests answered")["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        requests.contains("with HTTP 200 and \"hello from \" in the body"),
        "{requests}"
    );

    // Independent of the report: the app's own word, and the header only when asked for with
    // the stack's probe token (read from the state directory, as an operator would).
    let token = stack_secret(&project.state_base(), PROJECT, "probe_token");
    let addresses = stack.web_addresses();
    let mut hosts = BTreeSet::new();
    let mut servers = BTreeSet::new();
    // Three kinds of request, in an order that turns each round, so that round robin sends
    // every kind to every replica.
    for round in 0..12 {
        for turn in 0..3 {
            let kind = (round + turn) % 3;
            let probe = match kind {
                0 => None,
                1 => Some("e2e"),
                _ => Some(token.as_str()),
            };
            let (status, header, body) = get_lb(LB, probe).expect("GET / through the lb");
            assert_eq!(status, 200, "{body}");
            let host = body
                .trim()
                .strip_prefix("hello from ")
                .unwrap_or_else(|| panic!("not the hello app: {body:?}"));
            hosts.insert(host.to_owned());
            if kind < 2 {
                assert_eq!(
                    header, None,
                    "X-Provision-Server leaked to a request without the probe token ({probe:?})"
                );
                continue;
            }
            let header = header.expect("no X-Provision-Server with the probe token");
            let (server, addr) = header.rsplit_once(' ').expect("`<server> <ip>:<port>`");
            let ip = addr.rsplit_once(':').map(|(ip, _)| ip).unwrap_or(addr);
            let name = addresses
                .iter()
                .find(|(_, ips)| ips.iter().any(|i| i == ip))
                .map(|(name, _)| name.clone())
                .unwrap_or_else(|| {
                    panic!("{header}: no running web container has {ip}: {addresses:?}")
                });
            servers.insert(format!("{server}={name}"));
        }
    }
    assert_eq!(servers.len(), 3, "the probe token named {servers:?}");
    assert_eq!(
        hosts, running,
        "hosts saying hello vs running web containers"
    );
    let configs = app_configs(LB, 3);
    assert!(
        configs
            .values()
            .all(|c| c.contains(&format!("API_KEY length={}", new_key.len()))),
        "a replica added by verify --scale lacks the secret: {configs:?}"
    );
    stack.step(&format!(
        "our own probe: hello from {hosts:?}; with the probe header HAProxy named {servers:?}"
    ));

    attacks_are_refused(
        &stack,
        &project,
        PROJECT,
        &base,
        (LB, 28904),
        &outputs[0],
        &with_token,
    );

    // A replica stopped by hand (a middle one, so that scaling to 1 keeps a running one).
    // (The secret change replaced the first replicas: numbers start higher than 1.)
    let mut web = stack.web();
    web.sort_by_key(|c| c.number);
    let victim = web.into_iter().nth(1).expect("a second web replica");
    stack.step(&format!(
        "docker stop {} ({})",
        victim.name,
        victim.short_id()
    ));
    docker(&["stop", &victim.id]).expect_success();
    let ran = project.run(&["verify", "--timeout", "20"], &[], VERIFY_TIMEOUT);
    ran.expect_code(1);
    let naming: Vec<&str> = ran
        .stdout
        .lines()
        .filter(|l| l.contains(&victim.name))
        .map(str::trim)
        .collect();
    assert!(
        naming
            .iter()
            .any(|l| l.contains("is not running and did not answer")),
        "verify does not say that {} did not answer\n{ran}",
        victim.name
    );
    stack.step(&format!(
        "verify failed (exit 1) and said: {}",
        naming.join(" | ")
    ));

    verify_report(&stack, &project, &["--scale", "1"], 1);
    stack.step("provision destroy --volumes");
    project
        .run(&["destroy", "--volumes"], &[], SHORT_TIMEOUT)
        .expect_success();
    assert!(stack.containers().is_empty(), "containers left");
    stack.step("done");
}

/// Issue 16, from outside and from a container on the stack's networks: the stats page wants
/// its password and hides HAProxy's version; redis cannot be resolved from the network the lb
/// shares and refuses a write without its password on its own; no secret value is in
/// generated/, in `apply`'s output (`applied`) or in `secrets list`'s; a rotated probe token
/// rolls the lb, and only the new value names a server.
fn attacks_are_refused(
    stack: &Stack,
    project: &Project,
    name: &str,
    image: &str,
    // The lb's port and the stats page's.
    (lb_port, stats_port): (u16, u16),
    applied: &crate::support::harness::Ran,
    // What every apply of this spec needs in its environment (the app's secrets' variables).
    apply_env: &[(&str, &str)],
) {
    let started = Instant::now();
    let stats = format!("http://127.0.0.1:{stats_port}/stats");
    let (status, _) = get_with_stats_login(&stats, None).expect("the stats page answers");
    assert_eq!(status, 401, "the stats page without a password");
    let (status, _) = get_with_stats_login(&stats, Some("guess")).expect("the stats page answers");
    assert_eq!(status, 401, "the stats page with a wrong password");
    let password = stack_secret(&project.state_base(), name, "lb_stats_password");
    let (status, page) = get_with_stats_login(&stats, Some(&password)).unwrap();
    assert_eq!(status, 200, "the stats page with its password");
    assert!(
        page.contains("Statistics Report"),
        "not the stats page: {page:.200}"
    );
    assert!(
        !page.contains("HAProxy version"),
        "the stats page shows HAProxy's version"
    );

    // A container on the network the lb, consul and web share: redis does not resolve.
    let default_net = format!("{name}_default");
    let ran = docker(&[
        "run",
        "--rm",
        "--network",
        &default_net,
        image,
        "sh",
        "-c",
        "getent hosts redis || echo unresolvable",
    ]);
    ran.expect_success();
    assert!(
        ran.stdout.contains("unresolvable"),
        "redis resolves on {default_net}:\n{ran}"
    );
    // On redis' own network (which only web shares): a write without the password is refused.
    let redis_net = format!("{name}_redis");
    let ran = docker(&[
        "run",
        "--rm",
        "--network",
        &redis_net,
        image,
        "bash",
        "-c",
        "exec 3<>/dev/tcp/redis/6379 && printf 'SET hits 0\\r\\n' >&3 && read -t 5 -r line <&3 \
         && echo \"$line\"",
    ]);
    ran.expect_success();
    assert!(
        ran.stdout.contains("NOAUTH"),
        "redis took a write without its password:\n{ran}"
    );

    let listed = project.run(&["secrets", "list"], &[], SHORT_TIMEOUT);
    listed.expect_success();
    for secret in STACK_SECRETS {
        assert!(
            listed.stdout.contains(secret),
            "secrets list omits {secret}:\n{listed}"
        );
    }
    for (what, text) in [
        ("apply's stdout", &applied.stdout),
        ("apply's stderr", &applied.stderr),
        ("secrets list's stdout", &listed.stdout),
        ("secrets list's stderr", &listed.stderr),
    ] {
        assert_no_secret_in(&project.state_base(), name, what, text);
    }
    assert_no_secret_under(
        &project.state_base(),
        name,
        &project.path().join("generated"),
    );

    // Rotation: a new token, the lb replaced by the next apply; the old value names nobody.
    let old = stack_secret(&project.state_base(), name, "probe_token");
    project
        .run(&["secrets", "rotate", "probe_token"], &[], SHORT_TIMEOUT)
        .expect_success();
    let ran = project.run(&["apply"], apply_env, APPLY_TIMEOUT);
    ran.expect_success();
    assert_no_secret_in(
        &project.state_base(),
        name,
        "apply's output after a rotation",
        &(ran.stdout.clone() + &ran.stderr),
    );
    let new = stack_secret(&project.state_base(), name, "probe_token");
    assert_ne!(old, new, "rotate kept the value");
    let (_, header, _) = get_lb(lb_port, Some(&old)).expect("GET / with the old token");
    assert_eq!(
        header, None,
        "the rotated-out probe token still names a server"
    );
    let (_, header, _) = get_lb(lb_port, Some(&new)).expect("GET / with the new token");
    assert!(header.is_some(), "the new probe token names no server");
    stack.step(&format!(
        "attacks refused (stats 401, redis unresolvable and NOAUTH, no secret in files or output, \
         rotation) in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
}

/// With the daemon unreachable (gone, or hung), every docker-facing command stops quickly and says what is wrong:
/// exit code 3 (a tool failed), except `doctor`, whose job is to report problems: its report goes
/// to stdout and it exits 1 like any failed check (see `ExitStatus`). Needs no engine, only the
/// docker CLI (without it provision stops before it would talk to a daemon).
#[test]
fn e2e_every_docker_command_fails_fast_without_a_daemon() {
    if external_tool("docker", "every command against a gone or hung daemon").is_none() {
        return;
    }
    let project = Project::new();
    project.write(
        "provision.yaml",
        &consul_dns_spec("provision-e2e-dead", 2, 28280, 28704, 28800),
    );
    // A daemon that is gone (no socket), and one that hangs: its socket accepts connections and
    // never answers (a wedged dockerd), which only a timeout in provision can get out of.
    let hung = project.file("hung-docker.sock");
    let listener = std::os::unix::net::UnixListener::bind(&hung).expect("bind a unix socket");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept() {
            held.push(conn);
        }
    });
    let hung_host = format!("unix://{}", hung.display());
    // The bounds README states: a gone daemon fails at once (about 0.1 s measured; 2 s leaves
    // room for a loaded CI machine), a hung one after the preflight's 5 s wait for an answer
    // (9 s: a full run once took over 7 s beside the other tests on 2 cores).
    for (daemon, host, bound) in [
        (
            "gone",
            "unix:///nonexistent/provision-e2e/docker.sock",
            Duration::from_secs(2),
        ),
        ("hung", hung_host.as_str(), Duration::from_secs(9)),
    ] {
        fails_fast_everywhere(&project, daemon, host, bound);
    }
}

fn fails_fast_everywhere(project: &Project, daemon: &str, host: &str, bound: Duration) {
    let dead = [("DOCKER_HOST", host)];
    for (command, code) in [
        ("apply", 3),
        ("verify", 3),
        ("status", 3),
        ("destroy", 3),
        ("doctor", 1),
    ] {
        let ran = project.run(&[command], &dead, Duration::from_secs(60));
        ran.expect_code(code);
        assert!(
            ran.elapsed < bound,
            "`{command}` took {:.1?} to give up against a {daemon} daemon (at most {bound:?})\n{ran}",
            ran.elapsed
        );
        let out = ran.all_output().to_lowercase();
        assert!(
            out.contains("docker")
                && ["daemon", "reach", "connect"]
                    .iter()
                    .any(|w| out.contains(w)),
            "`{command}` does not say clearly that the docker daemon is unreachable\n{ran}"
        );
        let said = ran
            .all_output()
            .lines()
            .find(|l| l.starts_with("error:") || l.contains("FAIL"))
            .unwrap_or_default()
            .to_owned();
        note(format!(
            "{daemon} daemon: `provision {command}` exit {code} after {:.2}s: {}",
            ran.elapsed.as_secs_f64(),
            said.trim()
        ));
    }
}
