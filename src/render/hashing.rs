//! Content hashes: of a build context (which names its image tag, so an unchanged context keeps
//! its tag and Compose builds nothing) and of single files (for the manifest).

use std::path::Path;

use anyhow::Context as _;
use sha2::{Digest, Sha256};

use super::paths;
use crate::spec::Plan;

/// `<project>-<service>:<hash>`: the tag of an image provision builds.
pub(super) fn image_tag(plan: &Plan, service: &str, hash: &str) -> String {
    format!("{}-{service}:{hash}", plan.project)
}

/// 12 hex digits of the sha256 over each file's relative path, length and contents, in path order.
pub fn hash_files(mut files: Vec<(String, Vec<u8>)>) -> String {
    files.sort();
    let mut hasher = Sha256::new();
    for (path, contents) in &files {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update((contents.len() as u64).to_le_bytes());
        hasher.update(contents);
    }
    hex(&hasher.finalize())[..12].to_owned()
}

/// Every regular file under `dir` (relative paths with `/`). Symlinks count by their target
/// path, as Docker sends them in the build context.
pub(super) fn read_dir_files(dir: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut found = Vec::new();
    for entry in paths::walk(dir)? {
        if entry.file_type.is_symlink() {
            let target = std::fs::read_link(&entry.path)?;
            found.push((entry.rel, target.to_string_lossy().as_bytes().to_vec()));
        } else if entry.file_type.is_file() {
            let contents = std::fs::read(&entry.path)
                .with_context(|| format!("reading {}", entry.path.display()))?;
            found.push((entry.rel, contents));
        }
    }
    Ok(found)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_depends_on_paths_and_contents() {
        let h = |files: &[(&str, &str)]| {
            hash_files(
                files
                    .iter()
                    .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
                    .collect(),
            )
        };
        assert_eq!(h(&[("a", "1"), ("b", "2")]), h(&[("b", "2"), ("a", "1")]));
        assert_ne!(h(&[("a", "1")]), h(&[("b", "1")]));
        assert_ne!(h(&[("a", "12"), ("b", "")]), h(&[("a", "1"), ("b", "2")]));
        assert_eq!(h(&[]).len(), 12);
    }
}
