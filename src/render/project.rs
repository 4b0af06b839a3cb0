//! A spec on disk, loaded and validated, with the directories it renders from and to.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::paths;
use crate::spec::{self, Plan};
use crate::UsageError;

/// A loaded spec and the directories it renders from and to.
#[derive(Debug, Clone)]
pub struct Project {
    pub plan: Plan,
    /// Absolute, with symlinks resolved.
    pub spec_dir: PathBuf,
    /// Absolute, normalized.
    pub out_dir: PathBuf,
}

impl Project {
    /// Loads and validates the spec; resolves `out` against the spec's directory.
    pub fn load(spec_path: &Path, out: &Path) -> anyhow::Result<Project> {
        let plan = spec::load(spec_path)?;
        let parent = spec_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let spec_dir = parent
            .canonicalize()
            .with_context(|| format!("resolving the spec's directory {}", parent.display()))?;
        let out_dir = paths::normalize(&spec_dir.join(out));
        if spec_dir.starts_with(&out_dir) {
            return Err(UsageError(format!(
                "--out {} would replace the directory that holds the spec; choose a directory inside it, such as `generated`",
                out.display()
            ))
            .into());
        }
        if let Some(app_dir) = &plan.web.app_dir {
            let app = paths::normalize(&spec_dir.join(app_dir));
            if out_dir.starts_with(&app) || app.starts_with(&out_dir) {
                return Err(UsageError(format!(
                    "--out {} and web.app {app_dir} overlap; the output directory must be outside the app's directory and not contain it",
                    out.display()
                ))
                .into());
            }
        }
        Ok(Project {
            plan,
            spec_dir,
            out_dir,
        })
    }

    pub(super) fn local_blueprint_display(&self, name: &str) -> String {
        paths::display(&self.spec_dir.join("blueprints").join(name))
    }
}
