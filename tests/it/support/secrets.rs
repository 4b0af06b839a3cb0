//! The stack's secrets as an end-to-end test reads them: straight from the state directory
//! (`<state base>/provision/<project>/secrets/<name>`, the test project's state base),
//! not through provision's code; the stats page with its password; and the check that no value
//! leaked into files or output.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;

/// The secrets every stack has (src/secrets/stack.rs).
pub const STACK_SECRETS: [&str; 3] = ["redis_password", "probe_token", "lb_stats_password"];

/// The secrets a stack with consul has besides (consul's ACL tokens, UUIDs).
pub const CONSUL_SECRETS: [&str; 3] = [
    "consul_master_token",
    "consul_writer_token",
    "consul_reader_token",
];

/// The value of the secret `name` of `project`, as provision stored it under the state base
/// directory `state` (the test project's, `Project::state_base`).
pub fn stack_secret(state: &Path, project: &str, name: &str) -> String {
    let path = state
        .join("provision")
        .join(project)
        .join("secrets")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// `GET url` with the stats page's user and password: (status, body).
pub fn get_with_stats_login(url: &str, password: Option<&str>) -> Result<(u16, String), String> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .max_idle_connections(0)
        .build();
    let mut request = agent.get(url);
    if let Some(password) = password {
        let login =
            base64::engine::general_purpose::STANDARD.encode(format!("provision:{password}"));
        request = request.set("Authorization", &format!("Basic {login}"));
    }
    match request.call() {
        Ok(r) => Ok((r.status(), r.into_string().map_err(|e| e.to_string())?)),
        Err(ureq::Error::Status(code, r)) => Ok((code, r.into_string().unwrap_or_default())),
        Err(e) => Err(e.to_string()),
    }
}

/// Fails when a value of one of `project`'s secrets appears in `text` (`what` says where).
pub fn assert_no_secret_in(state: &Path, project: &str, what: &str, text: &str) {
    assert_none_of_in(state, project, &STACK_SECRETS, what, text);
}

/// [`assert_no_secret_in`] for the secrets `names`.
pub fn assert_none_of_in(state: &Path, project: &str, names: &[&str], what: &str, text: &str) {
    for &name in names {
        let value = stack_secret(state, project, name);
        assert!(value.len() >= 32, "{name} is too short to search for");
        assert!(
            !text.contains(value.trim()),
            "the value of the secret {name} appears in {what}"
        );
    }
}

/// [`assert_no_secret_in`] for every file under `dir`.
pub fn assert_no_secret_under(state: &Path, project: &str, dir: &Path) {
    assert_none_of_under(state, project, &STACK_SECRETS, dir);
}

/// [`assert_none_of_in`] for every file under `dir`.
pub fn assert_none_of_under(state: &Path, project: &str, names: &[&str], dir: &Path) {
    let mut stack = vec![dir.to_path_buf()];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                assert_none_of_in(
                    state,
                    project,
                    names,
                    &path.display().to_string(),
                    &String::from_utf8_lossy(&bytes),
                );
                files += 1;
            }
        }
    }
    assert!(files > 0, "no files under {}", dir.display());
}
