//! `render --check`: compare a fresh render with the output directory, show each difference
//! as a unified diff, and advise the command that brings the directory in line (which is not
//! plain `provision render` when a file was edited by hand: render refuses to overwrite that).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use similar::TextDiff;

use super::{parse_manifest, paths, sha256_hex, MANIFEST};

/// One file that differs between disk and a fresh render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub path: String,
    pub kind: DifferenceKind,
    /// Unified diff from disk to the fresh render; empty for the manifest, whose lines are
    /// hashes of the other files and say nothing their diffs do not.
    pub diff: String,
    /// On disk, and not what provision last wrote there (or provision never wrote it).
    pub hand_edited: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DifferenceKind {
    /// Rendered, not on disk.
    Missing,
    /// On disk with other contents.
    Stale,
    /// On disk, not rendered.
    Extra,
}

impl DifferenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DifferenceKind::Missing => "missing",
            DifferenceKind::Stale => "stale",
            DifferenceKind::Extra => "extra",
        }
    }
}

/// Compares `files` with `out_dir` (which may not exist).
pub fn compare(
    out_dir: &Path,
    files: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<Difference>> {
    let on_disk = read_files(out_dir)?;
    let recorded = on_disk
        .get(MANIFEST)
        .map(|bytes| parse_manifest(&String::from_utf8_lossy(bytes)))
        .unwrap_or_default();
    let on_disk: BTreeMap<String, (String, bool)> = on_disk
        .into_iter()
        .map(|(path, bytes)| {
            let ours = path == MANIFEST || recorded.get(&path) == Some(&sha256_hex(&bytes));
            (path, (String::from_utf8_lossy(&bytes).into_owned(), !ours))
        })
        .collect();
    let all: BTreeSet<&String> = files.keys().chain(on_disk.keys()).collect();
    let mut differences = Vec::new();
    for path in all {
        let fresh = files.get(path);
        let hand_edited = on_disk.get(path).is_some_and(|(_, edited)| *edited);
        let disk = on_disk.get(path).map(|(text, _)| text);
        let kind = match (disk, fresh) {
            (Some(d), Some(f)) if d == f => continue,
            (Some(_), Some(_)) => DifferenceKind::Stale,
            (None, Some(_)) => DifferenceKind::Missing,
            (Some(_), None) => DifferenceKind::Extra,
            (None, None) => continue,
        };
        let shown = paths::display(&out_dir.join(path));
        let old = disk.map(String::as_str).unwrap_or("");
        let new = fresh.map(String::as_str).unwrap_or("");
        let diff = if path == MANIFEST {
            String::new()
        } else {
            TextDiff::from_lines(old, new)
                .unified_diff()
                .context_radius(3)
                .header(
                    &format!("{shown} (on disk)"),
                    &format!("{shown} (rendered from the spec)"),
                )
                .to_string()
        };
        differences.push(Difference {
            path: path.clone(),
            kind,
            diff,
            hand_edited,
        });
    }
    Ok(differences)
}

/// What `render --check` says about `differences` in `out_dir` (shown as `shown`): which files
/// differ, and the command that makes the directory match the spec; `render` is the command
/// line that renders this project (`provision -f p.yml render`).
pub fn verdict(out_dir: &Path, shown: &str, differences: &[Difference], render: &str) -> String {
    // The manifest changes with every other file; it is named only when it alone differs.
    let files: Vec<&Difference> = match differences.iter().any(|d| d.path != MANIFEST) {
        true => differences.iter().filter(|d| d.path != MANIFEST).collect(),
        false => differences.iter().collect(),
    };
    let list: Vec<String> = files
        .iter()
        .map(|d| format!("{} ({})", d.path, d.kind.as_str()))
        .collect();
    let found = format!(
        "{shown} differs from the spec in {} file{}: {}",
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        list.join(", ")
    );
    let edited: Vec<&str> = files
        .iter()
        .filter(|d| d.hand_edited)
        .map(|d| d.path.as_str())
        .collect();
    let advice = if !out_dir.join(MANIFEST).is_file() {
        // render refuses such a directory even with --force (output.rs): it is not ours.
        format!("{shown} was not written by provision (it has no {MANIFEST}); `{render}` will not replace it: move it away, or render elsewhere with --out DIR")
    } else if edited.is_empty() {
        format!("run `{render}` to update it")
    } else {
        let (was, it) = match edited.len() {
            1 => ("was", "it"),
            _ => ("were", "them"),
        };
        format!(
            "{} {was} edited by hand since provision wrote {it}, and `{render}` refuses to overwrite a hand edit: put the change in the spec or in a local blueprint (blueprints/<path>.j2 beside the spec), or run `{render} --force` to discard {it}",
            edited.join(", "),
        )
    };
    format!("{found}; {advice}")
}

/// Every entry under `dir` (none when it is not a directory) as bytes. Anything unreadable (a
/// dangling symlink, a socket) reads as empty.
fn read_files(dir: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    if !dir.is_dir() {
        return Ok(BTreeMap::new());
    }
    Ok(paths::walk(dir)?
        .into_iter()
        // Only what resolves to a regular file is read: reading a FIFO would block forever.
        .filter(|entry| std::fs::metadata(&entry.path).is_ok_and(|m| m.is_file()))
        .map(|entry| (entry.rel, std::fs::read(&entry.path).unwrap_or_default()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_fifo_in_the_output_is_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let differences = compare(dir.path(), &BTreeMap::new()).unwrap();
        assert!(
            differences.is_empty(),
            "a FIFO is not a file provision wrote or reads"
        );
    }

    #[test]
    fn finds_missing_stale_and_extra_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("same"), "1\n").unwrap();
        std::fs::write(dir.path().join("stale"), "old\n").unwrap();
        std::fs::write(dir.path().join("extra"), "x\n").unwrap();
        let files: BTreeMap<String, String> =
            [("same", "1\n"), ("stale", "new\n"), ("missing", "m\n")]
                .iter()
                .map(|(p, t)| (p.to_string(), t.to_string()))
                .collect();
        let diffs = compare(dir.path(), &files).unwrap();
        let kinds: Vec<_> = diffs.iter().map(|d| (d.path.as_str(), d.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("extra", DifferenceKind::Extra),
                ("missing", DifferenceKind::Missing),
                ("stale", DifferenceKind::Stale)
            ]
        );
        let stale = &diffs[2].diff;
        assert!(
            stale.contains("-old\n") && stale.contains("+new\n"),
            "{stale}"
        );
        assert!(stale.contains("(on disk)"), "{stale}");
    }

    #[test]
    fn a_missing_directory_means_every_file_is_missing() {
        let files = BTreeMap::from([("a".to_owned(), "1\n".to_owned())]);
        let diffs = compare(Path::new("/nonexistent/generated"), &files).unwrap();
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].kind, DifferenceKind::Missing);
    }
}
