//! The one rule for a test check that cannot run here (a tool missing from PATH, no Docker
//! engine): it skips, printing one line `SKIPPED <test> (<check>): <why>`, except where every
//! check must run (`CI` set to anything but `false`, or `PROVISION_E2E=require`), where it fails.
//!
//! It lives in the library, not in the test harness, because unit tests beside the code
//! (`blueprint/filters.rs`, `lock.rs`) need it as much as the integration tests do, and a rule
//! written three times drifted: one copy ignored `CI`. Nothing outside tests calls it.

use std::io::Write;
use std::path::PathBuf;

/// Whether every check must run, so that a missing tool or engine is a failure rather than a
/// skip: `PROVISION_E2E=require` (or `1`), or `CI` set to anything but `false`. `.ci/run` sets both.
///
/// # Panics
/// On a `PROVISION_E2E` value other than `require`, `1`, `skip`, `0` or empty: a typo there
/// must not quietly skip the engine tests.
pub fn every_check_required() -> bool {
    required_by(
        std::env::var("PROVISION_E2E").ok().as_deref(),
        std::env::var("CI").ok().as_deref(),
    )
}

/// [`every_check_required`] for these values of `PROVISION_E2E` and `CI`.
fn required_by(provision_e2e: Option<&str>, ci: Option<&str>) -> bool {
    match provision_e2e {
        Some("require" | "1") => true,
        Some("skip" | "0" | "") | None => ci.is_some_and(|v| !v.is_empty() && v != "false"),
        Some(other) => panic!("PROVISION_E2E={other}: expected `require`, `skip`, or unset"),
    }
}

/// Prints that `check` of the running test did not run, and why, as one line. It is written to
/// the process's stderr directly, past libtest's capture, so that it shows in every run and
/// `cargo test 2>&1 | grep ^SKIPPED` lists them all; in one write, so that it cannot be cut by
/// libtest's own lines.
pub fn report_skip(check: &str, why: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    let line = format!("SKIPPED {test} ({check}): {why}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `check` cannot run, because of `why`: skips it (see [`report_skip`]), or fails the test where
/// every check is required (see [`every_check_required`]).
#[track_caller]
pub fn skip_or_fail(check: &str, why: &str) {
    if every_check_required() {
        panic!(
            "{check} must run here (CI or PROVISION_E2E=require is set), but {why}; \
             .ci/install-tools.sh installs every tool the tests use"
        );
    }
    report_skip(check, why);
}

/// The path of `tool` on PATH, for `check`; None (after [`skip_or_fail`]) when it is not there.
#[track_caller]
pub fn external_tool(tool: &str, check: &str) -> Option<PathBuf> {
    let found = find_on_path(tool);
    if found.is_none() {
        skip_or_fail(check, &format!("{tool} not found on PATH"));
    }
    found
}

/// The first executable file named `program` in a PATH directory, as a shell would find it.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|path| {
            std::fs::metadata(path)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::required_by;

    #[test]
    fn ci_or_require_makes_every_check_required() {
        assert!(required_by(Some("require"), None));
        assert!(required_by(Some("1"), None));
        assert!(required_by(None, Some("true")));
        assert!(required_by(None, Some("1")));
        assert!(required_by(Some("skip"), Some("true")));
        assert!(required_by(Some(""), Some("yes")));
    }

    #[test]
    fn outside_ci_a_missing_tool_skips() {
        assert!(!required_by(None, None));
        assert!(!required_by(Some("skip"), None));
        assert!(!required_by(Some("0"), Some("false")));
        assert!(!required_by(None, Some("")));
    }

    #[test]
    #[should_panic(expected = "PROVISION_E2E=requir")]
    fn a_misspelt_switch_is_refused() {
        required_by(Some("requir"), None);
    }
}
