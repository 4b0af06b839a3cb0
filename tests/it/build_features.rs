//! `cargo build` and `cargo test` resolve every dependency they share with one feature set, so
//! the binary `.ci/run` builds first (the rig images need it) and the tests built after it share
//! its artifacts instead of compiling this crate and its shared dependencies a second time
//! (Cargo.toml, the comment above `indexmap`). Compared with `cargo tree`, which resolves
//! features as the build does: once without the dev-dependencies, once with them.

use std::collections::BTreeMap;
use std::process::Command;

/// "name vX.Y.Z" → its features as `cargo tree` prints them, for the given kinds of edges.
fn features(edges: &str) -> BTreeMap<String, String> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--locked", "--offline", "--manifest-path", manifest])
        .args(["-e", edges, "--prefix", "none", "-f", "{p} [{f}]"])
        .output()
        .expect("running cargo tree");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo tree -e {edges}: {stderr}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let package = format!("{} {}", words.next()?, words.next()?);
            let (_, rest) = line.split_once(" [")?;
            let (features, _) = rest.split_once(']')?;
            Some((package, features.to_owned()))
        })
        .collect()
}

#[test]
fn the_binary_and_the_tests_build_shared_dependencies_with_one_feature_set() {
    let build = features("normal,build");
    let test = features("normal,build,dev");
    // Parsed, not empty: this crate has dozens of dependencies.
    assert!(build.len() > 50, "{build:?}");
    assert!(test.len() > build.len(), "{test:?}");
    let differ: Vec<String> = build
        .iter()
        .filter_map(|(package, features)| {
            let with_dev = test.get(package)?;
            (with_dev != features).then(|| {
                format!("{package}: [{features}] for `cargo build`, [{with_dev}] for `cargo test`")
            })
        })
        .collect();
    assert!(
        differ.is_empty(),
        "the dev-dependencies turn on features the build does not; name them in Cargo.toml's \
         [dependencies] (see the comment above `indexmap`):\n{}",
        differ.join("\n")
    );
}
