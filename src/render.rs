//! Plan → in-memory files → atomic write, or a --check diff against what is on disk.
//!
//! TEMPORARY stand-in on the `docker` branch: it only loads the spec and assumes the generated
//! files already exist. The render branch provides the real implementation with the same API.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::spec::Plan;

/// A stack whose files are on disk and current.
#[derive(Debug, Clone)]
pub struct RenderedStack {
    pub plan: Plan,
    /// Absolute.
    pub out_dir: PathBuf,
    pub compose_file: PathBuf,
    /// Whether this call wrote anything.
    pub changed: bool,
}

/// Loads the spec and (in the real version) renders it into `out` when the files are stale.
pub fn ensure_rendered(
    spec_path: &Path,
    out: &Path,
    _quiet: bool,
) -> anyhow::Result<RenderedStack> {
    let plan = crate::spec::load(spec_path)?;
    let spec_dir = spec_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let out_dir = std::path::absolute(spec_dir.join(out))
        .with_context(|| format!("resolving {}", out.display()))?;
    let compose_file = out_dir.join("compose.yaml");
    Ok(RenderedStack {
        plan,
        out_dir,
        compose_file,
        changed: false,
    })
}
