//! registrator's labels and consul-template's query, checked together (consul-template mode):
//! the rendered compose.yaml's web labels and exposed ports, turned into consul services the
//! way registrator does it, then the rendered haproxy.ctmpl executed over that catalog by Go's
//! `text/template` (`ctmpl.rs`; registrator's rules are in `tests/go/ctmpl-render`, read from
//! fayrus/registrator v9.0.6 `internal/bridge/bridge.go` and `util.go`).
//!
//! registrator watches every container of the engine, so another project's web containers
//! stand beside this one's in every check: the lb must never route to them.

use std::path::{Path, PathBuf};

use provision::render::{self, Project};

use crate::ctmpl::{self, Containers, WebShape};
use crate::support::fixtures::copy_tree;
use crate::support::harness::repo_root;

/// A fixture rendered into a temporary directory, with its own files (the app) beside it.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    /// Renders the fixture `name` under the project name `project`, after `edit` had its say
    /// on the copied fixture directory.
    fn render(name: &str, project: &str, edit: impl FnOnce(&Path)) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&repo_root().join("tests/fixtures").join(name), dir.path());
        let spec = dir.path().join("provision.yaml");
        let text = std::fs::read_to_string(&spec).unwrap();
        let text: String = text
            .lines()
            .map(|l| {
                if l.starts_with("project:") {
                    format!("project: {project}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        std::fs::write(&spec, text).unwrap();
        edit(dir.path());
        let loaded = Project::load(&spec, Path::new("generated"))
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let rendered = render::render(&loaded).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        for (rel, text) in &rendered.files {
            let path = dir.path().join("generated").join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Tree { dir }
    }

    fn generated(&self) -> PathBuf {
        self.dir.path().join("generated")
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.generated().join(rel)).unwrap()
    }
}

/// Rewrites the EXPOSE line of the custom app's Dockerfile (None: removes it).
fn expose(ports: Option<&'static str>) -> impl FnOnce(&Path) {
    move |dir: &Path| {
        let path = dir.join("app/Dockerfile");
        let text = std::fs::read_to_string(&path).unwrap();
        let text: String = text
            .lines()
            .filter_map(|l| match (l.starts_with("EXPOSE"), ports) {
                (false, _) => Some(format!("{l}\n")),
                (true, Some(ports)) => Some(format!("EXPOSE {ports}\n")),
                (true, None) => None,
            })
            .collect();
        std::fs::write(path, text).unwrap();
    }
}

/// The `server` lines of a rendered haproxy.cfg: (name, address:port).
fn servers(config: &str) -> Vec<(String, String)> {
    config
        .lines()
        .filter_map(|l| l.trim().strip_prefix("server "))
        .map(|rest| {
            let mut words = rest.split_whitespace();
            (
                words.next().unwrap().to_owned(),
                words.next().unwrap().to_owned(),
            )
        })
        .collect()
}

/// For the built-in app, an app exposing two ports and an app exposing none: one server per
/// running replica of this project, on the web port, and none of another project's replicas
/// (registered in the same consul by the same registrator).
#[test]
fn registrator_labels_give_the_lb_this_projects_replicas_only() {
    let Some(renderer) = ctmpl::renderer("registrator + consul-template render (Go)") else {
        return;
    };
    type Edit = Box<dyn FnOnce(&Path)>;
    let cases: [(&str, &str, Edit, Edit, u16); 3] = [
        (
            "built-in app",
            "consul-template",
            Box::new(|_| {}),
            Box::new(|_| {}),
            5000,
        ),
        (
            "app exposing two ports",
            "custom",
            Box::new(expose(Some("9100 9000"))),
            Box::new(expose(Some("9100 9000"))),
            9000,
        ),
        (
            "app exposing no port",
            "custom",
            Box::new(expose(None)),
            Box::new(expose(None)),
            9000,
        ),
    ];
    for (what, fixture, edit, edit_other, port) in cases {
        let tree = Tree::render(fixture, "mine", edit);
        let other = Tree::render(fixture, "theirs", edit_other);
        let compose = tree.read("compose.yaml");
        for flag in ["\"-explicit\"", "\"-retry-attempts\"", "\"-1\""] {
            assert!(compose.contains(flag), "{what}: registrator without {flag}");
        }
        let web = WebShape::of_tree(&tree.generated());
        let containers = Containers {
            web: web.clone(),
            others: WebShape::of_tree(&other.generated()).containers(3, 1),
        };
        let out_dir = tree.generated().join("lb/ctmpl-go");
        let template = tree.generated().join("lb/haproxy.ctmpl");
        for (count, _, config) in ctmpl::render(renderer, &template, &containers, &out_dir) {
            let found = servers(&config);
            let context = format!("{what}, {count} replicas, exposed {:?}", web.exposed);
            assert_eq!(found.len(), count, "{context}:\n{config}");
            for (name, address) in &found {
                assert!(
                    name.starts_with("registrator:mine-web-")
                        && address.starts_with("172.18.0.")
                        && address.ends_with(&format!(":{port}")),
                    "{context}: {name} {address} is not this project's web port:\n{config}"
                );
            }
        }
    }
}

/// Why the labels are per port: with registrator's plain SERVICE_NAME (provision's labels
/// before issue 17), an image exposing two ports gives services `web-9000` and `web-9100`
/// (bridge.go newService), and `service "web"` is empty: HAProxy would answer 503.
#[test]
fn registrator_names_a_two_port_app_by_port_without_per_port_labels() {
    let Some(renderer) = ctmpl::renderer("registrator + consul-template render (Go)") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("t.ctmpl");
    std::fs::write(
        &template,
        "{{ range service \"web\" }}server web/{{ .ID }} {{ .Address }}:{{ .Port }}\n{{ end }}\
         {{ range service \"web-9000\" }}server web-9000/{{ .ID }} {{ .Address }}:{{ .Port }}\n\
         {{ end }}",
    )
    .unwrap();
    let plain = |exposed: &[&str]| Containers {
        web: WebShape {
            prefix: "old-web".to_owned(),
            labels: [("SERVICE_NAME", "web"), ("SERVICE_CHECK_HTTP", "/ready")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            exposed: exposed.iter().map(|p| (*p).to_owned()).collect(),
        },
        others: Vec::new(),
    };
    let two = ctmpl::render(
        renderer,
        &template,
        &plain(&["9000/tcp", "9100/tcp"]),
        &dir.path().join("two"),
    );
    for (count, _, config) in two {
        // Every server comes from `web-9000`; `web` itself is empty.
        assert_eq!(servers(&config).len(), count, "{config}");
        assert!(
            servers(&config)
                .iter()
                .all(|(n, a)| n.starts_with("web-9000/") && a.ends_with(":9000")),
            "{config}"
        );
    }
    let one = ctmpl::render(
        renderer,
        &template,
        &plain(&["9000/tcp"]),
        &dir.path().join("one"),
    );
    for (count, _, config) in one {
        // One port: the service is `web`, and `web-9000` is empty.
        assert_eq!(servers(&config).len(), count, "{config}");
        assert!(
            servers(&config).iter().all(|(n, _)| n.starts_with("web/")),
            "{config}"
        );
    }
    let none = ctmpl::render(renderer, &template, &plain(&[]), &dir.path().join("none"));
    for (_, _, config) in none {
        assert!(servers(&config).is_empty(), "no exposed port: {config}");
    }
}

/// Whoever can register a service in consul writes the values the template puts into
/// haproxy.cfg. A service whose ID or address carries HAProxy syntax (a newline, then
/// `http-request redirect ...`: all traffic sent to an attacker) is left out of the rendered
/// configuration; the real replicas are still there. The same catalog through a template
/// without the checks shows that the fixture does inject.
#[test]
fn a_hostile_service_id_or_address_never_reaches_haproxy_cfg() {
    let Some(renderer) = ctmpl::renderer("consul-template render of hostile services (Go)") else {
        return;
    };
    const REDIRECT: &str = "http-request redirect location https://attacker.example/ code 302";
    let tree = Tree::render("consul-template", "mine", |_| {});
    let web = WebShape::of_tree(&tree.generated());
    let hostile = |name: &str, id: Option<String>, address: String| {
        let mut labels = web.labels.clone();
        if let Some(id) = id {
            labels.insert("SERVICE_5000_ID".to_owned(), id);
        }
        ctmpl::Container {
            name: name.to_owned(),
            address,
            labels,
            exposed: web.exposed.clone(),
        }
    };
    let containers = Containers {
        web: web.clone(),
        others: vec![
            hostile(
                "evil-id",
                Some(format!(
                    "web-evil 10.0.0.9:80 check\n    {REDIRECT}\n    server x"
                )),
                "172.18.0.99".to_owned(),
            ),
            hostile(
                "evil-address",
                None,
                format!("10.0.0.9:80 check\n    {REDIRECT}\n    server y 10.0.0.8"),
            ),
            hostile("evil-spaces", None, "10.0.0.9 backup".to_owned()),
            hostile("evil-octet", None, "10.0.0.300".to_owned()),
        ],
    };

    let naive = tree.generated().join("lb/naive.ctmpl");
    std::fs::write(
        &naive,
        "{{ range service \"provision-mine.web\" }}    server {{ .ID }} {{ .Address }}:{{ .Port }} check\n{{ end }}",
    )
    .unwrap();
    for (count, _, config) in ctmpl::render(
        renderer,
        &naive,
        &containers,
        &tree.generated().join("naive"),
    ) {
        assert!(
            config.lines().any(|l| l.trim() == REDIRECT),
            "{count}: the fixture no longer injects, so the check below proves nothing:\n{config}"
        );
    }

    let template = tree.generated().join("lb/haproxy.ctmpl");
    for (count, _, config) in ctmpl::render(
        renderer,
        &template,
        &containers,
        &tree.generated().join("ctmpl"),
    ) {
        assert!(
            !config.contains("attacker.example") && !config.contains("10.0.0."),
            "{count}: a hostile service reached haproxy.cfg:\n{config}"
        );
        let found = servers(&config);
        assert_eq!(
            found.len(),
            count,
            "{count}: the real replicas stay:\n{config}"
        );
        assert!(
            found
                .iter()
                .all(|(name, _)| name.starts_with("registrator:mine-web-")),
            "{config}"
        );
    }
}
