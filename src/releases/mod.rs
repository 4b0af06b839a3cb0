//! Releases: every apply that deployed a new set of rendered files, and every rollback, is kept
//! in the project's state directory (`state.rs`) as `releases/<id>/`:
//!
//! - `release.json`: the [`Release`] (id, time, what changed, images, hashes);
//! - `spec.yaml`: the spec as it was;
//! - `generated/`: a copy of the rendered files the release ran, so that `provision rollback`
//!   deploys exactly them again, whatever the spec and the output directory hold now.
//!
//! Neither the spec nor the rendered files hold a secret's value (the spec names where a secret
//! is; issue 18's `web.secrets` are delivered from there, never rendered into `generated/`), so
//! neither does a release; still, every file is 0600 and every directory 0700, as the files say
//! how the stack is built and where it listens. A release is written under a temporary name and renamed into
//! place: a crash never leaves half a release, and ids are never reused.
//!
//! Which releases keep their images is `prune.rs`.

pub mod prune;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::render::{paths, sha256_hex, MANIFEST};
use crate::state;

/// How many releases keep their images when the spec does not say (`web.keep_releases`).
pub const DEFAULT_KEEP: u32 = 5;

/// Why a release was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// `provision apply` deployed the files rendered from the spec.
    Apply,
    /// `provision rollback` deployed the files of release `to` again.
    Rollback { to: u32 },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Apply => f.write_str("apply"),
            Origin::Rollback { to } => write!(f, "rollback to {to}"),
        }
    }
}

/// One image a release ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseImage {
    pub service: String,
    /// The reference in the Compose or stack file (`hits-web:3f2a9c01b2de`).
    pub reference: String,
    /// Its image ID when the release was made (None when the engine did not have it, as an
    /// image only a Swarm's nodes pulled).
    pub id: Option<String>,
    /// Whether provision builds it (and so may remove it once no kept release uses it).
    pub built: bool,
}

/// One release, as `release.json` holds it and `provision history --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// 1, 2, 3, ... in the order they were made.
    pub id: u32,
    /// When it was made, RFC 3339 in UTC.
    pub time: String,
    pub origin: Origin,
    /// What the deploy changed, one line per service (apply's plan).
    pub changes: Vec<String>,
    pub images: Vec<ReleaseImage>,
    /// sha256 of the spec file.
    pub spec_sha256: String,
    /// sha256 of the rendered files' manifest: two releases with the same value ran the same files.
    pub files_sha256: String,
    /// `compose` or `swarm`.
    pub target: String,
}

/// What a new release is made of; the id and time are given when it is written.
#[derive(Debug, Clone)]
pub struct NewRelease<'a> {
    pub origin: Origin,
    pub changes: Vec<String>,
    pub images: Vec<ReleaseImage>,
    pub spec_text: &'a str,
    /// The rendered files it runs (the output directory, or an earlier release's copy).
    pub files: &'a Path,
    pub target: &'a str,
}

/// One project's releases.
#[derive(Debug, Clone)]
pub struct Releases {
    /// `<state>/<project>/releases`.
    dir: PathBuf,
}

const RELEASE_FILE: &str = "release.json";
const SPEC_FILE: &str = "spec.yaml";
const FILES_DIR: &str = "generated";

impl Releases {
    /// `project`'s releases (the directory is created by the first `record`).
    pub fn of(project: &str) -> anyhow::Result<Releases> {
        Ok(Releases::at(&state::require_project_dir(project)?))
    }

    /// The releases under one project's state directory.
    pub fn at(project_state: &Path) -> Releases {
        Releases {
            dir: project_state.join("releases"),
        }
    }

    /// Every release, oldest first. A directory that is not a release (a crash's leftover) is
    /// skipped; a release file that does not parse is an error naming it.
    pub fn list(&self) -> anyhow::Result<Vec<Release>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            other => other.with_context(|| format!("reading {}", self.dir.display()))?,
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", self.dir.display()))?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let file = entry.path().join(RELEASE_FILE);
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let release: Release = serde_json::from_str(&text)
                .with_context(|| format!("reading {}: not a release record", file.display()))?;
            if release.id != id {
                anyhow::bail!("{} says it is release {}", file.display(), release.id);
            }
            found.push(release);
        }
        found.sort_by_key(|r| r.id);
        Ok(found)
    }

    /// Release `id`, or an error that says which releases there are.
    pub fn get(&self, id: u32) -> anyhow::Result<Release> {
        let all = self.list()?;
        let ids: Vec<String> = all.iter().map(|r| r.id.to_string()).collect();
        all.into_iter().find(|r| r.id == id).ok_or_else(|| {
            crate::UsageError(if ids.is_empty() {
                format!("there is no release {id}: no release was recorded yet (`provision apply` records one)")
            } else {
                format!("there is no release {id}; the releases are {}", ids.join(", "))
            })
            .into()
        })
    }

    /// The copy of the rendered files release `id` ran.
    pub fn files_dir(&self, id: u32) -> PathBuf {
        self.dir.join(id.to_string()).join(FILES_DIR)
    }

    /// A copy of release `id`'s rendered files to deploy from, in a new directory under the
    /// project's state directory (0700, so only its owner reaches it), removed when the value
    /// is dropped. The files in it are 0644 and its directories 0755, as a render writes them:
    /// `docker cp` and a build context carry a file's mode into a container, where HAProxy
    /// runs as its own user and must read the configuration a reload in place delivers.
    pub fn checkout(&self, id: u32) -> anyhow::Result<tempfile::TempDir> {
        let project_state = self
            .dir
            .parent()
            .context("releases live in a project's state")?;
        state::create_private_dir(project_state)?;
        let scratch = tempfile::Builder::new()
            .prefix(".deploying-")
            .tempdir_in(project_state)
            .with_context(|| format!("creating a directory in {}", project_state.display()))?;
        for entry in paths::walk(&self.files_dir(id))? {
            let target = scratch.path().join(&entry.rel);
            let parent = target.parent().context("a file has a parent directory")?;
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
            std::fs::copy(&entry.path, &target)
                .with_context(|| format!("copying {}", entry.path.display()))?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644))
                .with_context(|| format!("setting the mode of {}", target.display()))?;
        }
        Ok(scratch)
    }

    /// The spec release `id` was rendered from.
    pub fn spec_text(&self, id: u32) -> anyhow::Result<String> {
        let file = self.dir.join(id.to_string()).join(SPEC_FILE);
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))
    }

    /// Whether `files` (a rendered directory) differs from what the latest release ran: only
    /// then does an apply make a new release, so an apply that changed nothing adds none.
    pub fn is_new(&self, files: &Path) -> anyhow::Result<bool> {
        let hash = files_hash(files)?;
        Ok(self.list()?.last().is_none_or(|r| r.files_sha256 != hash))
    }

    /// Writes a new release with the next id and returns it.
    pub fn record(&self, new: NewRelease<'_>) -> anyhow::Result<Release> {
        state::create_private_dir(&self.dir)?;
        let id = self.list()?.last().map_or(1, |r| r.id + 1);
        let release = Release {
            id,
            time: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            origin: new.origin,
            changes: new.changes,
            images: new.images,
            spec_sha256: sha256_hex(new.spec_text.as_bytes()),
            files_sha256: files_hash(new.files)?,
            target: new.target.to_owned(),
        };
        let building = tempfile::Builder::new()
            .prefix(".new-")
            .tempdir_in(&self.dir)
            .with_context(|| format!("creating a release in {}", self.dir.display()))?;
        copy_tree(new.files, &building.path().join(FILES_DIR))?;
        state::write_private(&building.path().join(SPEC_FILE), new.spec_text.as_bytes())?;
        let mut json = serde_json::to_string_pretty(&release)?;
        json.push('\n');
        state::write_private(&building.path().join(RELEASE_FILE), json.as_bytes())?;
        let target = self.dir.join(id.to_string());
        std::fs::rename(building.keep(), &target)
            .with_context(|| format!("writing {}", target.display()))?;
        Ok(release)
    }
}

/// sha256 of a rendered directory's manifest (every file's sha256 and path).
fn files_hash(files: &Path) -> anyhow::Result<String> {
    let manifest = files.join(MANIFEST);
    let text =
        std::fs::read(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    Ok(sha256_hex(&text))
}

/// Copies the regular files under `from` to `to` (0600 files, 0700 directories). A rendered
/// directory holds no symlinks; one found is refused rather than followed.
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    state::create_private_dir(to)?;
    for entry in paths::walk(from)? {
        if !entry.file_type.is_file() {
            anyhow::bail!(
                "{} is not a regular file; a release copies rendered files only",
                entry.path.display()
            );
        }
        let bytes = std::fs::read(&entry.path)
            .with_context(|| format!("reading {}", entry.path.display()))?;
        state::write_private(&to.join(&entry.rel), &bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(dir: &Path, web: &str) {
        std::fs::create_dir_all(dir.join("web")).unwrap();
        std::fs::write(dir.join("compose.yaml"), "services: {}\n").unwrap();
        std::fs::write(dir.join("web/app.py"), web).unwrap();
        std::fs::write(
            dir.join(MANIFEST),
            format!("{}  web/app.py\n", sha256_hex(web.as_bytes())),
        )
        .unwrap();
    }

    fn new_release<'a>(files: &'a Path, origin: Origin) -> NewRelease<'a> {
        NewRelease {
            origin,
            changes: vec!["web: replaced rolling".into()],
            images: vec![ReleaseImage {
                service: "web".into(),
                reference: "hits-web:abc".into(),
                id: Some("sha256:1".into()),
                built: true,
            }],
            spec_text: "project: hits\n",
            files,
            target: "compose",
        }
    }

    #[test]
    fn releases_are_numbered_kept_whole_and_private() {
        let base = tempfile::tempdir().unwrap();
        let out = base.path().join("generated");
        let releases = Releases::at(&base.path().join("state/hits"));
        assert!(releases.list().unwrap().is_empty());
        rendered(&out, "v1");
        assert!(releases.is_new(&out).unwrap());
        let first = releases.record(new_release(&out, Origin::Apply)).unwrap();
        assert_eq!(first.id, 1);
        assert!(
            !releases.is_new(&out).unwrap(),
            "same files, no new release"
        );
        rendered(&out, "v2");
        assert!(releases.is_new(&out).unwrap());
        releases.record(new_release(&out, Origin::Apply)).unwrap();
        let back = releases
            .record(new_release(
                &releases.files_dir(1),
                Origin::Rollback { to: 1 },
            ))
            .unwrap();
        assert_eq!(back.id, 3);
        assert_eq!(back.files_sha256, first.files_sha256);
        assert_eq!(
            std::fs::read_to_string(releases.files_dir(3).join("web/app.py")).unwrap(),
            "v1"
        );
        let listed = releases.list().unwrap();
        assert_eq!(listed.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(listed[2].origin.to_string(), "rollback to 1");
        assert_eq!(releases.spec_text(2).unwrap(), "project: hits\n");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&releases.files_dir(2).join("web/app.py")), 0o600);
        assert_eq!(mode(&releases.files_dir(2).join("web")), 0o700);
        assert_eq!(mode(&releases.dir), 0o700);
        let checkout = releases.checkout(1).unwrap();
        assert_eq!(mode(&checkout.path().join("web/app.py")), 0o644);
        assert_eq!(
            std::fs::read_to_string(checkout.path().join("web/app.py")).unwrap(),
            "v1"
        );
        assert!(checkout.path().starts_with(base.path().join("state/hits")));
        let err = releases.get(9).unwrap_err().to_string();
        assert_eq!(err, "there is no release 9; the releases are 1, 2, 3");
    }

    #[test]
    fn a_leftover_of_a_crashed_write_is_not_a_release() {
        let base = tempfile::tempdir().unwrap();
        let releases = Releases::at(base.path());
        std::fs::create_dir_all(base.path().join("releases/.new-x")).unwrap();
        assert!(releases.list().unwrap().is_empty());
    }
}
