//! Path arithmetic for rendering: lexical normalization, the build context path as Compose
//! reads it (relative to compose.yaml), and short paths for messages.

use std::path::{Component, Path, PathBuf};

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
    fn slash_relative_paths() {
        assert_eq!(
            slash_relative(Path::new("/a"), Path::new("/a/b/c.txt")),
            "b/c.txt"
        );
    }
}
