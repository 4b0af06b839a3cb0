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

mod loader;
mod markers;
mod shaped;

use std::path::Path;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

use provision::render::{self, Project, Rendered};
use provision::spec::{self, Plan, SpecError};

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
