//! `render --check`: compare a fresh render with the output directory and show each difference
//! as a unified diff.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use similar::TextDiff;

use super::paths;

/// One file that differs between disk and a fresh render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub path: String,
    pub kind: DifferenceKind,
    /// Unified diff from disk to the fresh render.
    pub diff: String,
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
    let on_disk = read_texts(out_dir)?;
    let all: BTreeSet<&String> = files.keys().chain(on_disk.keys()).collect();
    let mut differences = Vec::new();
    for path in all {
        let fresh = files.get(path);
        let disk = on_disk.get(path);
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
        let diff = TextDiff::from_lines(old, new)
            .unified_diff()
            .context_radius(3)
            .header(
                &format!("{shown} (on disk)"),
                &format!("{shown} (rendered from the spec)"),
            )
            .to_string();
        differences.push(Difference {
            path: path.clone(),
            kind,
            diff,
        });
    }
    Ok(differences)
}

/// Every entry under `dir` (none when it is not a directory) as text. Anything unreadable (a
/// dangling symlink, a socket) reads as empty, and non-UTF-8 bytes are replaced.
fn read_texts(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    if !dir.is_dir() {
        return Ok(BTreeMap::new());
    }
    Ok(paths::walk(dir)?
        .into_iter()
        // Only what resolves to a regular file is read: reading a FIFO would block forever.
        .filter(|entry| std::fs::metadata(&entry.path).is_ok_and(|m| m.is_file()))
        .map(|entry| {
            let bytes = std::fs::read(&entry.path).unwrap_or_default();
            (entry.rel, String::from_utf8_lossy(&bytes).into_owned())
        })
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
