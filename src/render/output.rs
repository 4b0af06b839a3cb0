//! Writing a rendered tree: all or nothing, and never over a hand edit.
//!
//! The files are written to a temporary directory beside the target, which then takes the
//! target's place by two renames (old → a reserved empty directory, new → target; the old one is
//! put back if the second rename fails, then deleted). A failure before the renames leaves the
//! old directory untouched and removes the temporary one. Between the two renames the target
//! briefly does not exist; it is never half-written.
//!
//! Before anything is written, every file that would be replaced or removed is compared with
//! the manifest of the last render: a file whose contents are not what provision wrote (or that
//! provision never wrote) is a hand edit, and the write is refused unless `force`. A non-empty
//! directory without a manifest is never replaced, even with `force`: it is not ours.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;

use super::{parse_manifest, paths, sha256_hex, MANIFEST};
use crate::UsageError;

/// What a write did (or, for `changed() == false`, found already in place).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: usize,
    /// Something the caller should tell the user (the write itself succeeded).
    pub warnings: Vec<String>,
}

impl WriteOutcome {
    pub fn changed(&self) -> bool {
        !(self.created.is_empty() && self.updated.is_empty() && self.removed.is_empty())
    }

    /// One line for progress output: "generated: 3 files written (…)" or "… is up to date".
    pub fn summary(&self, dir: &str) -> String {
        if !self.changed() {
            return format!("{dir} is up to date ({} files)", self.unchanged);
        }
        let mut parts = Vec::new();
        for (count, word) in [
            (self.created.len(), "created"),
            (self.updated.len(), "updated"),
            (self.removed.len(), "removed"),
            (self.unchanged, "unchanged"),
        ] {
            if count > 0 {
                parts.push(format!("{count} {word}"));
            }
        }
        format!("wrote {dir} ({})", parts.join(", "))
    }
}

/// A file or other entry found on disk.
enum OnDisk {
    File(Vec<u8>),
    /// A symlink, socket, …: never something provision wrote.
    Other,
}

/// Writes `files` (relative path → contents, manifest included) to `out_dir`. A directory that
/// cannot be written (permissions, a read-only file system) is the user's to fix: a usage error
/// naming the directory, not the temporary paths the write goes through.
pub fn write(
    out_dir: &Path,
    files: &BTreeMap<String, String>,
    force: bool,
) -> anyhow::Result<WriteOutcome> {
    write_tree(out_dir, files, force).map_err(|err| match not_writable(&err, out_dir) {
        Some(why) => UsageError(format!("cannot write {}: {why}", paths::display(out_dir))).into(),
        None => err,
    })
}

/// Why the file system refused to take `out_dir`, and what to do, when that was the failure.
fn not_writable(err: &anyhow::Error, out_dir: &Path) -> Option<String> {
    let at = out_dir.parent().unwrap_or(out_dir).display();
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .find_map(|io| match io.kind() {
            std::io::ErrorKind::PermissionDenied => Some(format!(
                "permission denied at {at}; make it writable, or choose another --out"
            )),
            std::io::ErrorKind::ReadOnlyFilesystem => Some(format!(
                "the file system at {at} is read-only; choose another --out"
            )),
            std::io::ErrorKind::NotADirectory => {
                Some("part of its path is a file, not a directory; choose another --out".to_owned())
            }
            _ => None,
        })
}

fn write_tree(
    out_dir: &Path,
    files: &BTreeMap<String, String>,
    force: bool,
) -> anyhow::Result<WriteOutcome> {
    let shown = paths::display(out_dir);
    let existing = read_tree(out_dir)?;
    if !existing.is_empty() && !existing.contains_key(MANIFEST) {
        return Err(UsageError(format!(
            "{shown} exists and was not written by provision (it has no {MANIFEST}); refusing to replace it, even with --force. Choose another --out, or move it away"
        ))
        .into());
    }
    let recorded = match existing.get(MANIFEST) {
        Some(OnDisk::File(bytes)) => parse_manifest(&String::from_utf8_lossy(bytes)),
        _ => BTreeMap::new(),
    };

    let mut outcome = WriteOutcome::default();
    let mut hand_edited = Vec::new();
    for (path, on_disk) in &existing {
        let wanted = files.get(path);
        let same = matches!((on_disk, wanted), (OnDisk::File(bytes), Some(text)) if bytes == text.as_bytes());
        if same {
            if path != MANIFEST {
                outcome.unchanged += 1;
            }
            continue;
        }
        if path != MANIFEST {
            let ours = match on_disk {
                OnDisk::File(bytes) => recorded.get(path) == Some(&sha256_hex(bytes)),
                OnDisk::Other => false,
            };
            if !ours {
                hand_edited.push(path.clone());
            }
            if wanted.is_some() {
                outcome.updated.push(path.clone());
            } else {
                outcome.removed.push(path.clone());
            }
        } else if wanted.is_none() {
            outcome.removed.push(path.clone());
        }
    }
    for path in files.keys() {
        if path != MANIFEST && !existing.contains_key(path) {
            outcome.created.push(path.clone());
        }
    }
    if !hand_edited.is_empty() && !force {
        let list: Vec<String> = hand_edited
            .iter()
            .map(|p| paths::display(&out_dir.join(p)))
            .collect();
        return Err(UsageError(format!(
            "refusing to overwrite {} edited by hand since provision wrote {}: {}. Put the change in the spec or in a local blueprint (blueprints/<path>.j2 beside the spec), or discard it with `provision render --force`",
            if list.len() == 1 { "a file" } else { "files" },
            if list.len() == 1 { "it" } else { "them" },
            list.join(", ")
        ))
        .into());
    }
    let manifest_same = matches!(existing.get(MANIFEST), Some(OnDisk::File(b)) if files.get(MANIFEST).is_some_and(|t| t.as_bytes() == b.as_slice()));
    if !outcome.changed() && manifest_same {
        return Ok(outcome);
    }
    if let Some(warning) =
        replace_dir(out_dir, files).with_context(|| format!("writing {shown}"))?
    {
        outcome.warnings.push(warning);
    }
    Ok(outcome)
}

/// Every entry under `dir` by relative path; empty when `dir` does not exist.
fn read_tree(dir: &Path) -> anyhow::Result<BTreeMap<String, OnDisk>> {
    let mut found = BTreeMap::new();
    match std::fs::symlink_metadata(dir) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(err) => return Err(err).with_context(|| format!("reading {}", dir.display())),
        Ok(meta) if !meta.is_dir() => {
            return Err(UsageError(format!(
                "{} exists and is not a directory; choose another --out",
                paths::display(dir)
            ))
            .into())
        }
        Ok(_) => {}
    }
    for entry in paths::walk(dir)? {
        let value = if entry.file_type.is_file() {
            OnDisk::File(
                std::fs::read(&entry.path)
                    .with_context(|| format!("reading {}", entry.path.display()))?,
            )
        } else {
            OnDisk::Other
        };
        found.insert(entry.rel, value);
    }
    Ok(found)
}

/// Returns a warning when the old tree could not be cleaned up.
fn replace_dir(out_dir: &Path, files: &BTreeMap<String, String>) -> anyhow::Result<Option<String>> {
    let name = out_dir
        .file_name()
        .context("the output directory has no name")?
        .to_string_lossy()
        .into_owned();
    let parent = out_dir
        .parent()
        .context("the output directory has no parent")?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;

    // Dropped (and deleted) on any early return below.
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.provision-new-"))
        .tempdir_in(parent)
        .with_context(|| format!("creating a temporary directory in {}", parent.display()))?;
    for (rel, text) in files {
        let path = staging.path().join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    set_mode(staging.path(), 0o755)?;

    if !out_dir.exists() {
        std::fs::rename(staging.path(), out_dir)
            .with_context(|| format!("moving the new files to {}", out_dir.display()))?;
        let _ = staging.keep();
        return Ok(None);
    }
    // An empty directory can be renamed over; reserve a unique name for the old tree that way.
    let old = tempfile::Builder::new()
        .prefix(&format!(".{name}.provision-old-"))
        .tempdir_in(parent)?
        .keep();
    std::fs::rename(out_dir, &old)
        .with_context(|| format!("moving the old {} aside", out_dir.display()))?;
    if let Err(err) = std::fs::rename(staging.path(), out_dir) {
        let _ = std::fs::rename(&old, out_dir);
        return Err(err).with_context(|| format!("moving the new files to {}", out_dir.display()));
    }
    let _ = staging.keep();
    Ok(std::fs::remove_dir_all(&old)
        .err()
        .map(|err| format!("warning: could not remove {}: {err}", old.display())))
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut files: BTreeMap<String, String> = pairs
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect();
        let manifest = files
            .iter()
            .map(|(p, t)| format!("{}  {p}\n", sha256_hex(t.as_bytes())))
            .collect();
        files.insert(MANIFEST.to_owned(), manifest);
        files
    }

    fn is_usage(err: &anyhow::Error) -> bool {
        err.chain().any(|c| c.is::<UsageError>())
    }

    #[test]
    fn writes_then_finds_nothing_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("generated");
        let files = tree(&[("a.txt", "a\n"), ("sub/b.txt", "b\n")]);
        let first = write(&out, &files, false).unwrap();
        assert_eq!(first.created, ["a.txt", "sub/b.txt"]);
        assert_eq!(
            std::fs::read_to_string(out.join("sub/b.txt")).unwrap(),
            "b\n"
        );
        let second = write(&out, &files, false).unwrap();
        assert!(!second.changed());
        assert_eq!(second.unchanged, 2);
        // Nothing left behind beside the output.
        let siblings: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(siblings.len(), 1);
    }

    #[test]
    fn updates_and_removes_what_provision_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("generated");
        write(&out, &tree(&[("a", "1\n"), ("old", "x\n")]), false).unwrap();
        let outcome = write(&out, &tree(&[("a", "2\n"), ("new", "y\n")]), false).unwrap();
        assert_eq!(outcome.updated, ["a"]);
        assert_eq!(outcome.removed, ["old"]);
        assert_eq!(outcome.created, ["new"]);
        assert!(!out.join("old").exists());
    }

    #[test]
    fn refuses_hand_edits_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("generated");
        write(&out, &tree(&[("a", "1\n"), ("b", "1\n")]), false).unwrap();
        std::fs::write(out.join("a"), "mine\n").unwrap();
        std::fs::write(out.join("extra"), "mine too\n").unwrap();
        let err = write(&out, &tree(&[("a", "2\n"), ("b", "1\n")]), false).unwrap_err();
        assert!(is_usage(&err));
        let text = err.to_string();
        assert!(
            text.contains("generated/a") && text.contains("generated/extra"),
            "{text}"
        );
        assert_eq!(std::fs::read_to_string(out.join("a")).unwrap(), "mine\n");
        // An unchanged render over an edited file is refused too: the edit would be lost later.
        write(&out, &tree(&[("a", "2\n"), ("b", "1\n")]), true).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("a")).unwrap(), "2\n");
        assert!(!out.join("extra").exists());
    }

    #[test]
    fn never_replaces_a_directory_it_did_not_write() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("precious"), "x").unwrap();
        let err = write(dir.path(), &tree(&[("a", "1\n")]), true).unwrap_err();
        assert!(is_usage(&err), "{err}");
        assert!(err.to_string().contains("not written by provision"));
        assert!(dir.path().join("precious").exists());
    }

    #[test]
    fn an_empty_directory_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("generated");
        std::fs::create_dir(&out).unwrap();
        write(&out, &tree(&[("a", "1\n")]), false).unwrap();
        assert!(out.join("a").exists());
    }

    #[test]
    fn a_failed_write_leaves_the_old_tree() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("generated");
        write(&out, &tree(&[("a", "1\n")]), false).unwrap();
        // A path that cannot be created (a file where a directory must go) fails mid-write.
        let mut bad = tree(&[("a", "2\n"), ("x", "file\n")]);
        bad.insert("x/y".into(), "under a file\n".into());
        assert!(write(&out, &bad, false).is_err());
        assert_eq!(std::fs::read_to_string(out.join("a")).unwrap(), "1\n");
        let siblings: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(siblings.len(), 1, "the temporary directory was removed");
    }
}
