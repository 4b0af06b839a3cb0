//! The recipe of the offline images, as data: their names, the Dockerfiles built FROM the base,
//! the hash of each image's inputs, and the exact command lines. Nothing here runs anything, so
//! every command can be checked by a unit test (and no mirror host name can slip into one: the
//! sources are a file the host's configuration is copied into at run time).

use std::ffi::OsString;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Where the offline images live unless `PROVISION_RIG_PREFIX` says otherwise. `localhost/` is
/// a registry host that cannot exist, so these names never shadow a public image.
pub const DEFAULT_PREFIX: &str = "localhost/provision-rig";
/// The Debian release of the base image (and so of every image built on it).
pub const SUITE: &str = "trixie";
/// The last Debian release with a consul package (1.8.7): frozen, so its binary never changes.
pub const CONSUL_SUITE: &str = "bullseye";
/// The label that carries the hash of an image's inputs.
pub const INPUTS_LABEL: &str = "org.provision.images.inputs";

/// The names of the offline images under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineImages {
    prefix: String,
}

impl OfflineImages {
    /// Images under `prefix` (a trailing `/` is ignored).
    pub fn new(prefix: &str) -> Self {
        OfflineImages {
            prefix: prefix.trim_end_matches('/').to_owned(),
        }
    }

    /// Under `PROVISION_RIG_PREFIX`, or the default prefix.
    pub fn from_env() -> Self {
        match std::env::var("PROVISION_RIG_PREFIX") {
            Ok(prefix) if !prefix.trim().is_empty() => Self::new(prefix.trim()),
            _ => Self::new(DEFAULT_PREFIX),
        }
    }

    /// The Debian base every image of an offline stack is built FROM.
    pub fn base(&self) -> String {
        format!("{}/debian:{SUITE}", self.prefix)
    }

    /// consul, in place of hashicorp/consul.
    pub fn consul(&self) -> String {
        format!("{}/consul:1.8.7", self.prefix)
    }

    /// HAProxy 3.0, for checking generated configs with `haproxy -c`.
    pub fn haproxy(&self) -> String {
        format!("{}/haproxy:{SUITE}", self.prefix)
    }

    /// Every image, base first (each later one is built FROM it).
    pub fn all(&self) -> [String; 3] {
        [self.base(), self.consul(), self.haproxy()]
    }

    /// The images built FROM the base with a Dockerfile, in build order.
    pub fn derived(&self) -> [Derived; 2] {
        [
            Derived {
                image: self.consul(),
                what: "consul 1.8.7 (Debian bullseye's package)",
                dockerfile: include_str!("consul.Dockerfile"),
                needs_consul_binary: true,
                proof: &["version"],
            },
            Derived {
                image: self.haproxy(),
                what: "HAProxy 3.0 (Debian trixie's package)",
                dockerfile: include_str!("haproxy.Dockerfile"),
                needs_consul_binary: false,
                proof: &["-v"],
            },
        ]
    }
}

/// An image built FROM the base with one of the embedded Dockerfiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    pub image: String,
    /// What it holds, for progress lines.
    pub what: &'static str,
    pub dockerfile: &'static str,
    /// Its build context holds `consul`, the binary of Debian bullseye's package.
    pub needs_consul_binary: bool,
    /// Arguments that prove the image runs: `docker run --rm IMAGE ARGS...` prints a version.
    pub proof: &'static [&'static str],
}

impl Derived {
    /// The hash of everything the image is made from: its Dockerfile and the base image's ID.
    /// (consul's binary comes from a frozen release, so it is not an input that can change.)
    pub fn inputs_hash(&self, base_id: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.dockerfile.as_bytes());
        hasher.update(b"\0");
        hasher.update(base_id.trim().as_bytes());
        let digest = hasher.finalize();
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// `docker build` of this image in `context` (the classic builder: what a CLI without the
    /// buildx plugin has; the caller sets `DOCKER_BUILDKIT=0` so it does not warn).
    pub fn build_args(&self, base: &str, hash: &str, context: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = [
            "build".to_owned(),
            "--build-arg".to_owned(),
            format!("BASE={base}"),
            "--label".to_owned(),
            format!("{INPUTS_LABEL}={hash}"),
            "--tag".to_owned(),
            self.image.clone(),
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        args.push(context.as_os_str().to_owned());
        args
    }
}

/// `mmdebstrap` making a minbase `SUITE` root file system as a tarball at `tarball`, from the
/// apt sources in `sources` (a deb822 file written from the host's own configuration).
pub fn mmdebstrap_args(tarball: &Path, sources: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["--variant=minbase", "--mode=root", SUITE]
        .into_iter()
        .map(OsString::from)
        .collect();
    args.push(tarball.as_os_str().to_owned());
    args.push(sources.as_os_str().to_owned());
    args
}

/// `docker import` of that tarball as the base image.
pub fn import_args(tarball: &Path, image: &str) -> Vec<OsString> {
    vec![
        "import".into(),
        tarball.as_os_str().to_owned(),
        image.into(),
    ]
}

/// apt-get options that make it use only the files under `dir` (sources, lists, cache), so a
/// package of another release is downloaded without touching the host's apt state.
pub fn apt_options(dir: &Path) -> Vec<OsString> {
    let at = |sub: &str| dir.join(sub).into_os_string();
    let mut opts: Vec<OsString> = Vec::new();
    let mut opt = |value: OsString| {
        opts.push("-o".into());
        opts.push(value);
    };
    opt("Dir::Etc::SourceList=/dev/null".into());
    opt(prefixed("Dir::Etc::SourceParts=", at("sources")));
    opt(prefixed("Dir::State::Lists=", at("lists")));
    opt(prefixed("Dir::Cache::Archives=", at("archives")));
    opt("Dir::Cache::pkgcache=".into());
    opt("Dir::Cache::srcpkgcache=".into());
    // Root writes into a directory only root can enter: apt's _apt sandbox user could not.
    opt("APT::Sandbox::User=root".into());
    opts.push("--quiet".into());
    opts
}

fn prefixed(key: &str, value: OsString) -> OsString {
    let mut out = OsString::from(key);
    out.push(value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn names_keep_what_the_tests_and_ci_expect() {
        let images = OfflineImages::new(DEFAULT_PREFIX);
        assert_eq!(
            images.all(),
            [
                "localhost/provision-rig/debian:trixie".to_owned(),
                "localhost/provision-rig/consul:1.8.7".to_owned(),
                "localhost/provision-rig/haproxy:trixie".to_owned(),
            ]
        );
        assert_eq!(
            OfflineImages::new("127.0.0.1:5000/x/").base(),
            "127.0.0.1:5000/x/debian:trixie"
        );
    }

    #[test]
    fn the_base_is_bootstrapped_from_a_sources_file_and_imported() {
        let tarball = Path::new("/tmp/t/base.tar");
        let sources = Path::new("/tmp/t/trixie.sources");
        assert_eq!(
            words(&mmdebstrap_args(tarball, sources)),
            [
                "--variant=minbase",
                "--mode=root",
                "trixie",
                "/tmp/t/base.tar",
                "/tmp/t/trixie.sources"
            ]
        );
        assert_eq!(
            words(&import_args(
                tarball,
                "localhost/provision-rig/debian:trixie"
            )),
            [
                "import",
                "/tmp/t/base.tar",
                "localhost/provision-rig/debian:trixie"
            ]
        );
    }

    #[test]
    fn derived_images_build_from_the_base_with_their_hash() {
        let images = OfflineImages::new(DEFAULT_PREFIX);
        let [consul, haproxy] = images.derived();
        assert!(consul.needs_consul_binary && !haproxy.needs_consul_binary);
        assert!(consul
            .dockerfile
            .contains("COPY consul /usr/local/bin/consul"));
        assert!(haproxy
            .dockerfile
            .contains("apt-get install -y --no-install-recommends haproxy"));
        let hash = consul.inputs_hash("sha256:abc");
        assert_eq!(hash.len(), 16);
        assert_eq!(hash, consul.inputs_hash("sha256:abc\n"));
        assert_ne!(
            hash,
            consul.inputs_hash("sha256:abd"),
            "a new base rebuilds"
        );
        assert_ne!(hash, haproxy.inputs_hash("sha256:abc"), "per Dockerfile");
        assert_eq!(
            words(&consul.build_args(&images.base(), &hash, Path::new("/tmp/ctx"))),
            [
                "build",
                "--build-arg",
                "BASE=localhost/provision-rig/debian:trixie",
                "--label",
                &format!("org.provision.images.inputs={hash}"),
                "--tag",
                "localhost/provision-rig/consul:1.8.7",
                "/tmp/ctx"
            ]
        );
    }

    #[test]
    fn apt_uses_only_its_own_directory() {
        let opts = words(&apt_options(Path::new("/tmp/apt")));
        assert!(opts.contains(&"Dir::Etc::SourceList=/dev/null".to_owned()));
        assert!(opts.contains(&"Dir::Etc::SourceParts=/tmp/apt/sources".to_owned()));
        assert!(opts.contains(&"Dir::State::Lists=/tmp/apt/lists".to_owned()));
        assert!(opts.contains(&"Dir::Cache::Archives=/tmp/apt/archives".to_owned()));
    }

    #[test]
    fn no_mirror_host_is_written_into_the_recipe() {
        // The mirror comes from the host's apt configuration at run time, never from here.
        let images = OfflineImages::new(DEFAULT_PREFIX);
        let mut texts: Vec<String> = images
            .derived()
            .iter()
            .map(|d| d.dockerfile.to_owned())
            .collect();
        texts.push(words(&mmdebstrap_args(Path::new("b.tar"), Path::new("s.sources"))).join(" "));
        texts.push(words(&apt_options(Path::new("/d"))).join(" "));
        texts.push(include_str!("build.rs").to_owned());
        texts.push(include_str!("sources.rs").to_owned());
        for text in &texts {
            for host_sign in ["http://", "https://", "deb.debian.org", "debian.org"] {
                let offending: Vec<&str> = text
                    .lines()
                    .filter(|l| l.contains(host_sign) && !l.contains(".example."))
                    .collect();
                assert!(offending.is_empty(), "{host_sign} in {offending:?}");
            }
        }
    }
}
