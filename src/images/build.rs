//! Building the offline images: decide what is missing or out of date, then make it. The base
//! with mmdebstrap from the host's own apt sources (imported into the engine), consul's binary
//! from Debian bullseye's package through the same mirror, then each derived image with
//! `docker build` FROM the base. Everything is kept when it is present and its inputs did not
//! change, so a second run only asks the engine and returns.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::host::{self, APT_GET, DPKG_DEB, MMDEBSTRAP};
use super::recipe::{self, Derived, OfflineImages, CONSUL_SUITE, INPUTS_LABEL, SUITE};
use super::sources::{HostSources, Pockets};
use crate::docker::Docker;
use crate::UsageError;

/// What happened to one image.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Present with the same inputs: left alone.
    Kept,
    /// Made now, in this many seconds; `version` is what the image printed when run.
    Built { seconds: f64, version: String },
}

/// What must happen to each image before anything runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work {
    /// The base must be made (missing, or `--force`).
    pub base: bool,
    /// The derived images to build (missing, built from other inputs, or `--force`).
    pub derived: Vec<Derived>,
}

impl Work {
    pub fn is_empty(&self) -> bool {
        !self.base && self.derived.is_empty()
    }
}

/// Asks the engine which images are missing or out of date.
pub fn plan(docker: &Docker, images: &OfflineImages, force: bool) -> anyhow::Result<Work> {
    let base_id = docker.image_ids(&[images.base()])?.remove(0);
    let base = force || base_id.is_none();
    let mut derived = Vec::new();
    for d in images.derived() {
        let stale = match (&base_id, base) {
            (Some(base_id), false) => {
                label_of(docker, &d.image)?.as_deref() != Some(&d.inputs_hash(base_id))
            }
            _ => true,
        };
        if stale {
            derived.push(d);
        }
    }
    Ok(Work { base, derived })
}

/// The inputs label of `image`; None when it is missing or has none.
fn label_of(docker: &Docker, image: &str) -> anyhow::Result<Option<String>> {
    let format = format!("{{{{index .Config.Labels \"{INPUTS_LABEL}\"}}}}");
    let out = docker
        .call(
            format!("reading the inputs label of {image}"),
            ["image", "inspect", "--format", format.as_str(), image],
        )
        .timeout(Duration::from_secs(20))
        .output_unchecked()?;
    let label = out.stdout.trim();
    Ok((out.success && !label.is_empty() && label != "<no value>").then(|| label.to_owned()))
}

/// Checks what the work needs from the host before anything runs: root, the tools, and a
/// Debian archive in the apt sources. Environment errors (exit 2) name what to install.
pub fn require_host(work: &Work) -> anyhow::Result<HostSources> {
    host::require_root("provision images build")?;
    if work.base {
        MMDEBSTRAP.locate()?;
    }
    if work.derived.iter().any(|d| d.needs_consul_binary) {
        APT_GET.locate()?;
        DPKG_DEB.locate()?;
    }
    let sources = HostSources::read()?;
    if sources.for_suite(SUITE, Pockets::ReleaseOnly).is_none() {
        return Err(UsageError(
            "no Debian archive (a `deb` entry with the `main` component for this machine's \
             release) in /etc/apt/sources.list or /etc/apt/sources.list.d/: the offline images \
             are downloaded through the mirror configured there"
                .into(),
        )
        .into());
    }
    Ok(sources)
}

/// Does the work, in order; returns the outcome of every image (base first).
pub fn run(
    docker: &Docker,
    images: &OfflineImages,
    work: &Work,
    sources: &HostSources,
) -> anyhow::Result<Vec<(String, Outcome)>> {
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let mut outcomes = Vec::new();
    let base = images.base();
    if work.base {
        let started = Instant::now();
        build_base(docker, &base, sources, scratch.path())?;
        outcomes.push((base.clone(), built(started, "Debian trixie minbase".into())));
    } else {
        outcomes.push((base.clone(), Outcome::Kept));
    }
    let base_id = docker.image_ids(std::slice::from_ref(&base))?.remove(0);
    let base_id = base_id.with_context(|| format!("{base} is missing after it was built"))?;
    let consul_binary = if work.derived.iter().any(|d| d.needs_consul_binary) {
        Some(fetch_consul(docker, sources, scratch.path())?)
    } else {
        None
    };
    for d in images.derived() {
        if !work.derived.contains(&d) {
            outcomes.push((d.image.clone(), Outcome::Kept));
            continue;
        }
        let started = Instant::now();
        let extra = if d.needs_consul_binary {
            consul_binary.as_deref()
        } else {
            None
        };
        build_derived(docker, &d, &base, &base_id, extra, scratch.path())?;
        let version = prove(docker, &d)?;
        outcomes.push((d.image.clone(), built(started, version)));
    }
    Ok(outcomes)
}

fn built(started: Instant, version: String) -> Outcome {
    Outcome::Built {
        seconds: started.elapsed().as_secs_f64(),
        version,
    }
}

/// mmdebstrap into a tarball, then `docker import`.
fn build_base(
    docker: &Docker,
    image: &str,
    sources: &HostSources,
    scratch: &Path,
) -> anyhow::Result<()> {
    let sources_file = scratch.join(format!("{SUITE}.sources"));
    let text = sources
        .for_suite(SUITE, Pockets::WithUpdates)
        .context("no Debian archive in the host's apt sources")?;
    std::fs::write(&sources_file, text)
        .with_context(|| format!("writing {}", sources_file.display()))?;
    let tarball = scratch.join("base.tar");
    MMDEBSTRAP
        .call(
            format!("making a Debian {SUITE} root file system with mmdebstrap (minbase)"),
            recipe::mmdebstrap_args(&tarball, &sources_file),
        )
        .run(docker.printer())?;
    docker
        .call(
            format!("importing it as {image}"),
            recipe::import_args(&tarball, image),
        )
        .changes_state()
        .run_with_progress()?;
    // The tarball is as big as the image: gone as soon as it is imported.
    let _ = std::fs::remove_file(&tarball);
    Ok(())
}

/// Downloads Debian bullseye's consul package through the host's mirror and extracts its
/// static binary; returns the binary's path.
fn fetch_consul(docker: &Docker, sources: &HostSources, scratch: &Path) -> anyhow::Result<PathBuf> {
    let apt = scratch.join("apt");
    for sub in ["sources", "lists/partial", "archives/partial", "debs", "x"] {
        std::fs::create_dir_all(apt.join(sub))
            .with_context(|| format!("creating {}", apt.join(sub).display()))?;
    }
    let stanza = sources
        .for_suite(CONSUL_SUITE, Pockets::ReleaseOnly)
        .context("no Debian archive in the host's apt sources")?;
    std::fs::write(apt.join("sources/debian.sources"), stanza)
        .context("writing the bullseye sources")?;
    let opts = recipe::apt_options(&apt);
    let printer = docker.printer();
    APT_GET
        .call(
            format!("reading Debian {CONSUL_SUITE}'s package lists"),
            opts.iter().cloned().chain(["update".into()]),
        )
        .run(printer)?;
    APT_GET
        .call(
            format!("downloading consul from Debian {CONSUL_SUITE}"),
            opts.iter()
                .cloned()
                .chain(["download".into(), "consul".into()]),
        )
        .dir(&apt.join("debs"))
        .run(printer)?;
    let deb = std::fs::read_dir(apt.join("debs"))
        .context("listing the downloaded package")?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download consul left no .deb")?;
    DPKG_DEB
        .call(
            "unpacking consul's package",
            [
                OsString::from("-x"),
                deb.into_os_string(),
                apt.join("x").into_os_string(),
            ],
        )
        .run(printer)?;
    let binary = apt.join("x/usr/bin/consul");
    anyhow::ensure!(binary.is_file(), "consul's package has no /usr/bin/consul");
    Ok(binary)
}

/// `docker build` of one derived image in a fresh context.
fn build_derived(
    docker: &Docker,
    d: &Derived,
    base: &str,
    base_id: &str,
    consul_binary: Option<&Path>,
    scratch: &Path,
) -> anyhow::Result<()> {
    let context = scratch.join(format!("context-{}", d.image.replace(['/', ':'], "_")));
    std::fs::create_dir_all(&context).with_context(|| format!("creating {}", context.display()))?;
    std::fs::write(context.join("Dockerfile"), d.dockerfile).context("writing the Dockerfile")?;
    if let Some(binary) = consul_binary {
        std::fs::copy(binary, context.join("consul")).context("copying consul's binary")?;
    }
    let hash = d.inputs_hash(base_id);
    docker
        .call(
            format!("building {} ({})", d.image, d.what),
            d.build_args(base, &hash, &context),
        )
        .env("DOCKER_BUILDKIT", "0")
        .changes_state()
        .run_with_progress()
}

/// Runs the new image once: it must start and print its version.
fn prove(docker: &Docker, d: &Derived) -> anyhow::Result<String> {
    let mut args = vec!["run", "--rm", d.image.as_str()];
    args.extend(d.proof);
    let out = docker
        .call(format!("running {} once", d.image), args)
        .timeout(Duration::from_secs(60))
        .output()?;
    Ok(out.lines().next().unwrap_or_default().trim().to_owned())
}
