//! consul-template's rendering of lb/haproxy.ctmpl, done by Go's own `text/template`: the
//! program in `tests/go/ctmpl-render` (standard library only) parses the template as
//! consul-template does and executes it with consul-template's `service` function over a
//! fixture catalog. No consul-template binary can be had offline; Debian's Go toolchain can.
//!
//! The program is built once per test run, offline (`GOPROXY=off`, `GOTOOLCHAIN=local`: a newer
//! go never fetches another toolchain; Debian's 1.19 ignores it), with its build cache under the
//! cargo target directory so later runs reuse it.

use std::path::{Path, PathBuf};
use std::process::Command;
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

/// Renders `template` for every count in [`COUNTS`] into `out_dir`; returns each count with
/// its haproxy.cfg path and text. Panics with the program's message when it fails.
pub fn render(renderer: &Path, template: &Path, out_dir: &Path) -> Vec<(usize, PathBuf, String)> {
    let output = run(renderer, template, out_dir, &COUNTS);
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

/// `ctmpl-render TEMPLATE OUT_DIR COUNTS...`, whatever its outcome.
pub fn run(
    renderer: &Path,
    template: &Path,
    out_dir: &Path,
    counts: &[usize],
) -> std::process::Output {
    std::fs::create_dir_all(out_dir).unwrap();
    Command::new(renderer)
        .arg(template)
        .arg(out_dir)
        .args(counts.iter().map(usize::to_string))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", renderer.display()))
}
