//! consul-template's rendering of lb/haproxy.ctmpl, done by Go's own `text/template`: the
//! program in `tests/go/ctmpl-render` (standard library only) parses the template as
//! consul-template does and executes it with consul-template's `service` function over a
//! fixture catalog. No consul-template binary can be had offline; Debian's Go toolchain can.
//!
//! The catalog it renders from is registrator's (fayrus/registrator v9.0.6, emulated in the
//! program): the web containers carry the labels and exposed ports the rendered compose.yaml
//! and the web image give them ([`WebShape::of_tree`]), and other containers may stand beside.
//!
//! The program is built once per test run, offline (`GOPROXY=off`, `GOTOOLCHAIN=local`: a newer
//! go never fetches another toolchain; Debian's 1.19 ignores it), with its build cache under the
//! cargo target directory so later runs reuse it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use std::sync::OnceLock;

use crate::support::harness::external_tool;

/// The numbers of passing instances each template is rendered for: none (the backend must
/// still be valid), one, and a scaled-out five.
pub const COUNTS: [usize; 3] = [0, 1, 5];

/// The built `ctmpl-render`, or None (with a printed skip, or a failure under CI) without go.
/// Without go, the skip is said once per test run, not once per caller (property tests call
/// this for every case).
pub fn renderer(check: &str) -> Option<&'static Path> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| external_tool("go", check).map(|go| build(&go)))
        .as_deref()
}

fn build(go: &Path) -> PathBuf {
    let source = crate::support::harness::repo_root().join("tests/go/ctmpl-render");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ctmpl-render");
    std::fs::create_dir_all(&dir).unwrap();
    let binary = dir.join("ctmpl-render");
    // Built under a name of this process's own, then renamed into place: another test run
    // building at the same time never sees a half-written binary.
    let partial = dir.join(format!("ctmpl-render.{}", std::process::id()));
    let output = Command::new(go)
        .current_dir(&source)
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-buildvcs=false")
        .env("GO111MODULE", "on")
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"))
        .arg("build")
        .arg("-o")
        .arg(&partial)
        .arg(".")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", go.display()));
    assert!(
        output.status.success(),
        "go build in {} failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::rename(&partial, &binary).unwrap();
    binary
}

/// The containers registrator sees on the engine, as `ctmpl-render -containers` reads them: the
/// web containers' labels and exposed ports, and other containers (another project's).
#[derive(Debug, Clone, Serialize)]
pub struct Containers {
    pub web: WebShape,
    pub others: Vec<Container>,
}

/// What every web container of a stack carries.
#[derive(Debug, Clone, Serialize)]
pub struct WebShape {
    /// Container names are `<prefix>-<i>`, as Compose names them.
    pub prefix: String,
    pub labels: BTreeMap<String, String>,
    /// `PORT/PROTO`: the image's EXPOSE and the compose file's `expose`, as Docker merges them.
    pub exposed: Vec<String>,
}

/// One container beside the stack's web containers.
#[derive(Debug, Clone, Serialize)]
pub struct Container {
    pub name: String,
    pub address: String,
    pub labels: BTreeMap<String, String>,
    pub exposed: Vec<String>,
}

impl WebShape {
    /// The web containers of the rendered tree `generated`: compose.yaml's web labels and
    /// `expose`, and the EXPOSE lines of the Dockerfile in web's build context.
    pub fn of_tree(generated: &Path) -> WebShape {
        let compose = std::fs::read_to_string(generated.join("compose.yaml")).unwrap();
        let value: serde_yaml::Value = serde_yaml::from_str(&compose).unwrap();
        let context = generated.join(
            value["services"]["web"]["build"]["context"]
                .as_str()
                .unwrap(),
        );
        let dockerfile = std::fs::read_to_string(context.join("Dockerfile"))
            .unwrap_or_else(|e| panic!("{}: {e}", context.display()));
        let from_image: Vec<String> = dockerfile
            .lines()
            .filter_map(|l| l.trim().strip_prefix("EXPOSE "))
            .flat_map(str::split_whitespace)
            .map(str::to_owned)
            .collect();
        WebShape::of_compose(&compose, &from_image)
    }

    /// The web containers a compose.yaml declares (labels, `expose`), from an image that
    /// exposes `from_image` (`PORT` or `PORT/PROTO`).
    pub fn of_compose(compose: &str, from_image: &[String]) -> WebShape {
        let compose: serde_yaml::Value = serde_yaml::from_str(compose).unwrap();
        let web = &compose["services"]["web"];
        let project = compose["name"].as_str().unwrap();
        let labels = serde_yaml::from_value(web["labels"].clone()).unwrap();
        let from_compose = web["expose"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(|p| p.as_str().unwrap().to_owned());
        let exposed: std::collections::BTreeSet<String> = from_image
            .iter()
            .cloned()
            .chain(from_compose)
            .map(|p| {
                if p.contains('/') {
                    p
                } else {
                    format!("{p}/tcp")
                }
            })
            .collect();
        WebShape {
            prefix: format!("{project}-web"),
            labels,
            exposed: exposed.into_iter().collect(),
        }
    }

    /// `count` running containers of this shape, at 172.19.`subnet`.x: another project's.
    pub fn containers(&self, count: usize, subnet: u8) -> Vec<Container> {
        (1..=count)
            .map(|i| Container {
                name: format!("{}-{i}", self.prefix),
                address: format!("172.19.{subnet}.{}", 10 + i),
                labels: self.labels.clone(),
                exposed: self.exposed.clone(),
            })
            .collect()
    }
}

/// Renders `template` for every count in [`COUNTS`] into `out_dir`, with registrator's view of
/// `containers`; returns each count with its haproxy.cfg path and text. Panics with the
/// program's message when it fails.
pub fn render(
    renderer: &Path,
    template: &Path,
    containers: &Containers,
    out_dir: &Path,
) -> Vec<(usize, PathBuf, String)> {
    let output = run(renderer, template, Some(containers), out_dir, &COUNTS);
    assert!(
        output.status.success(),
        "ctmpl-render {} failed:\n{}",
        template.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    COUNTS
        .iter()
        .map(|&count| {
            let path = out_dir.join(format!("haproxy-{count}.cfg"));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (count, path, text)
        })
        .collect()
}

/// `ctmpl-render [-containers FILE] TEMPLATE OUT_DIR COUNTS...`, whatever its outcome; without
/// `containers`, the program's own (web containers with SERVICE_NAME=web, port 5000).
pub fn run(
    renderer: &Path,
    template: &Path,
    containers: Option<&Containers>,
    out_dir: &Path,
    counts: &[usize],
) -> std::process::Output {
    std::fs::create_dir_all(out_dir).unwrap();
    let mut command = Command::new(renderer);
    if let Some(containers) = containers {
        let file = out_dir.join("containers.json");
        std::fs::write(&file, serde_json::to_string_pretty(containers).unwrap()).unwrap();
        command.arg("-containers").arg(file);
    }
    command
        .arg(template)
        .arg(out_dir)
        .args(counts.iter().map(usize::to_string))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", renderer.display()))
}
