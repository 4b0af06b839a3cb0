//! Path arithmetic for rendering: lexical normalization, the build context path as Compose
//! reads it (relative to compose.yaml), short paths for messages, and the one directory walk
//! (over walkdir) behind hashing an app directory, `--check` and writing the output.

use std::fs::FileType;
use std::path::{Component, Path, PathBuf};

use anyhow::Context as _;
use walkdir::WalkDir;

/// Resolves `.` and `..` without touching the file system (the output directory may not exist
/// yet). `path` should be absolute.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `target` relative to `base` (both absolute, normalized), with `/` separators and a leading
/// `./` when it does not start with `..`, as a Compose `build.context` is usually written.
pub fn relative_for_compose(base: &Path, target: &Path) -> String {
    let base = normalize(base);
    let target = normalize(target);
    let base_parts: Vec<_> = base.components().collect();
    let target_parts: Vec<_> = target.components().collect();
    let common = base_parts
        .iter()
        .zip(&target_parts)
        .take_while(|(a, b)| a == b)
        .count();
    let mut parts: Vec<String> =
        std::iter::repeat_n("..".to_owned(), base_parts.len() - common).collect();
    parts.extend(
        target_parts[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        return ".".to_owned();
    }
    let joined = parts.join("/");
    if joined.starts_with("..") {
        joined
    } else {
        format!("./{joined}")
    }
}

/// `path` under `base` with `/` separators (for manifests and hashing).
pub fn slash_relative(base: &Path, path: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// An entry found by [`walk`]: anything but a directory.
#[derive(Debug, Clone)]
pub struct WalkEntry {
    /// Relative to the walked directory, with `/` separators.
    pub rel: String,
    /// The walked directory joined with `rel`.
    pub path: PathBuf,
    /// The entry's own type: a symlink is a symlink, whatever it points to.
    pub file_type: FileType,
}

/// Every entry below `dir` except directories, sorted by relative path. Symlinks are listed,
/// never followed (only `dir` itself may be one). `dir` must be a directory: a missing one, a
/// file or a directory that cannot be read is an error ("reading <path>: …").
pub fn walk(dir: &Path) -> anyhow::Result<Vec<WalkEntry>> {
    let mut found = Vec::new();
    for entry in WalkDir::new(dir) {
        let entry = entry.map_err(walk_error)?;
        let file_type = entry.file_type();
        if entry.depth() == 0 {
            // walkdir yields a root that is not a directory as its only entry; refuse it instead,
            // as `read_dir` does.
            let is_dir = file_type.is_dir() || (file_type.is_symlink() && dir.is_dir());
            if !is_dir {
                return Err(std::io::Error::other("not a directory"))
                    .with_context(|| format!("reading {}", dir.display()));
            }
        } else if !file_type.is_dir() {
            found.push(WalkEntry {
                rel: slash_relative(dir, entry.path()),
                path: entry.into_path(),
                file_type,
            });
        }
    }
    found.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(found)
}

/// A walkdir error in the words of `std::fs`: the I/O error, in the context "reading <path>"
/// when walkdir knows the path (not when listing a directory failed midway).
fn walk_error(err: walkdir::Error) -> anyhow::Error {
    let context = err.path().map(|path| format!("reading {}", path.display()));
    let err = match err.into_io_error() {
        Some(io) => anyhow::Error::new(io),
        // walkdir's only other error, which needs followed links.
        None => anyhow::anyhow!("a symbolic link loop"),
    };
    match context {
        Some(context) => err.context(context),
        None => err,
    }
}

/// A path for messages: relative to the current directory when it is below it.
pub fn display(path: &Path) -> String {
    let cwd = std::env::current_dir()
        .ok()
        .and_then(|d| d.canonicalize().ok());
    match cwd.as_deref().and_then(|cwd| path.strip_prefix(cwd).ok()) {
        Some(rel) if rel.as_os_str().is_empty() => ".".to_owned(),
        Some(rel) => rel.display().to_string(),
        None => path.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_lexically() {
        assert_eq!(normalize(Path::new("/a/b/../c/./d")), Path::new("/a/c/d"));
        assert_eq!(
            normalize(Path::new("/a/examples/../generated")),
            Path::new("/a/generated")
        );
        assert_eq!(normalize(Path::new("/..")), Path::new("/"));
    }

    #[test]
    fn compose_contexts_are_relative_to_the_output() {
        let rel = |a: &str, b: &str| relative_for_compose(Path::new(a), Path::new(b));
        assert_eq!(rel("/p/generated", "/p/app"), "../app");
        assert_eq!(
            rel("/p/examples/../generated", "/p/examples/app"),
            "../examples/app"
        );
        assert_eq!(rel("/p/out/deep", "/p/out/deep/app"), "./app");
        assert_eq!(rel("/p", "/p"), ".");
    }

    #[test]
    fn walk_lists_every_non_directory_sorted_with_slashes() {
        let dir = tempfile::tempdir().unwrap();
        for (rel, text) in [("lb/x", "1"), ("lb.y", "2"), ("a/b/c", "3")] {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        let rels =
            |dir: &Path| -> Vec<String> { walk(dir).unwrap().into_iter().map(|e| e.rel).collect() };
        // Sorted as strings ("lb.y" before "lb/x"), not directory by directory.
        assert_eq!(rels(dir.path()), ["a/b/c", "lb.y", "lb/x"]);
        let entries = walk(dir.path()).unwrap();
        assert!(entries.iter().all(|e| e.file_type.is_file()));
        assert_eq!(entries[0].path, dir.path().join("a/b/c"));

        #[cfg(unix)]
        {
            // Symlinks are listed as such, never descended into; a symlinked root is walked.
            std::os::unix::fs::symlink(dir.path().join("a"), dir.path().join("to-a")).unwrap();
            let entries = walk(dir.path()).unwrap();
            let link = entries.iter().find(|e| e.rel == "to-a").unwrap();
            assert!(link.file_type.is_symlink());
            assert!(!entries.iter().any(|e| e.rel.starts_with("to-a/")));
            assert_eq!(rels(&dir.path().join("to-a")), ["b/c"]);
        }
    }

    #[test]
    fn walk_refuses_a_missing_directory_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let err = walk(&missing).unwrap_err();
        assert_eq!(err.to_string(), format!("reading {}", missing.display()));
        assert!(err.chain().any(
            |c| c.downcast_ref::<std::io::Error>().map(std::io::Error::kind)
                == Some(std::io::ErrorKind::NotFound)
        ));
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let err = walk(&file).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            format!("reading {}: not a directory", file.display())
        );
    }

    #[test]
    fn slash_relative_paths() {
        assert_eq!(
            slash_relative(Path::new("/a"), Path::new("/a/b/c.txt")),
            "b/c.txt"
        );
    }
}
