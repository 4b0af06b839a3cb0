//! The host's own apt sources, re-aimed at another Debian suite.
//!
//! The offline images come from whatever Debian mirror this machine is already configured for:
//! its sources are read at run time and rewritten with another suite (trixie for the base image,
//! bullseye for consul). No mirror host name is ever written into the repository or the images'
//! recipe, and a machine behind a private mirror or a snapshot archive keeps using it.
//!
//! Both apt formats are read: deb822 `.sources` files (bookworm and later) and one-line `.list`
//! files (what the debian-installer writes). Only Debian archive entries are kept: those whose
//! suite is the host's own release (or its `-updates` / `-security` pockets) with the `main`
//! component, so a third-party repository (`nodistro`, `stable`) is never re-aimed by mistake.

use std::path::Path;

/// One `deb` entry of the host's apt configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub uri: String,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    pub signed_by: Option<String>,
}

/// The pockets of a release that an entry may carry besides the release itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pockets {
    /// The release alone (a frozen release such as bullseye, for one package).
    ReleaseOnly,
    /// The release with its `-updates` and `-security` pockets, as the host has them.
    WithUpdates,
}

/// The Debian archive entries of the host, for its release `host_suite`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSources {
    host_suite: String,
    entries: Vec<Entry>,
}

impl HostSources {
    /// Reads `/etc/os-release` and every file under `/etc/apt/sources.list*`.
    pub fn read() -> anyhow::Result<Self> {
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let host_suite = os_release_codename(&os_release).ok_or_else(|| {
            crate::UsageError(
                "this machine's /etc/os-release names no Debian release (VERSION_CODENAME): \
                 provision images build needs a Debian host and its apt sources"
                    .into(),
            )
        })?;
        let mut texts = Vec::new();
        let mut paths = vec![Path::new("/etc/apt/sources.list").to_path_buf()];
        if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
            let mut more: Vec<_> = dir.filter_map(Result::ok).map(|e| e.path()).collect();
            more.sort();
            paths.extend(more);
        }
        for path in paths {
            let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
                continue;
            };
            if !matches!(ext, "sources" | "list") || !path.is_file() {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(&path) {
                texts.push((ext == "sources", text));
            }
        }
        Ok(Self::parse(&host_suite, &texts))
    }

    /// The Debian entries of these files (`true`: deb822 format, `false`: one-line format).
    pub fn parse(host_suite: &str, files: &[(bool, String)]) -> Self {
        let entries = files
            .iter()
            .flat_map(|(deb822, text)| {
                if *deb822 {
                    parse_deb822(text)
                } else {
                    parse_one_line(text)
                }
            })
            .filter(|e| e.components.iter().any(|c| c == "main"))
            .filter(|e| e.suites.iter().any(|s| pocket_of(s, host_suite).is_some()))
            .collect();
        HostSources {
            host_suite: host_suite.to_owned(),
            entries,
        }
    }

    /// A deb822 sources file for `suite` on the host's mirrors; None when the host has no
    /// Debian archive entry at all.
    pub fn for_suite(&self, suite: &str, pockets: Pockets) -> Option<String> {
        let mut out = String::new();
        for entry in &self.entries {
            let suites: Vec<String> = entry
                .suites
                .iter()
                .filter_map(|s| pocket_of(s, &self.host_suite))
                .filter(|pocket| pockets == Pockets::WithUpdates || pocket.is_empty())
                .map(|pocket| format!("{suite}{pocket}"))
                .collect();
            if suites.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!(
                "Types: deb\nURIs: {}\nSuites: {}\nComponents: main\n",
                entry.uri,
                suites.join(" ")
            ));
            if let Some(keyring) = &entry.signed_by {
                out.push_str(&format!("Signed-By: {keyring}\n"));
            }
        }
        (!out.is_empty()).then_some(out)
    }
}

/// `""`, `"-updates"` or `"-security"` when `suite` is `host_suite` or one of its pockets.
fn pocket_of<'a>(suite: &'a str, host_suite: &str) -> Option<&'a str> {
    let pocket = suite.strip_prefix(host_suite)?;
    matches!(pocket, "" | "-updates" | "-security").then_some(pocket)
}

/// `VERSION_CODENAME` of an os-release file.
pub fn os_release_codename(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
}

/// The `deb` stanzas of a deb822 file (one URI per entry; a stanza with several URIs gives
/// several entries).
fn parse_deb822(text: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    for stanza in text.split("\n\n") {
        let mut types = Vec::new();
        let mut uris = Vec::new();
        let mut suites = Vec::new();
        let mut components = Vec::new();
        let mut signed_by = None;
        let mut enabled = true;
        for line in stanza.lines().map(str::trim) {
            if line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let words = || value.split_whitespace().map(str::to_owned);
            match key.trim().to_ascii_lowercase().as_str() {
                "types" => types.extend(words()),
                "uris" => uris.extend(words()),
                "suites" => suites.extend(words()),
                "components" => components.extend(words()),
                // A keyring path; an inline key block is multi-line and not a path: left out.
                "signed-by" if value.trim().starts_with('/') => {
                    signed_by = Some(value.trim().to_owned())
                }
                "enabled" => enabled = !value.trim().eq_ignore_ascii_case("no"),
                _ => {}
            }
        }
        if !enabled || !types.iter().any(|t| t == "deb") {
            continue;
        }
        for uri in uris {
            entries.push(Entry {
                uri,
                suites: suites.clone(),
                components: components.clone(),
                signed_by: signed_by.clone(),
            });
        }
    }
    entries
}

/// The `deb` lines of a one-line sources.list.
fn parse_one_line(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or("").trim();
            let rest = line.strip_prefix("deb ")?;
            // `[signed-by=/usr/share/keyrings/x.gpg arch=amd64]`
            let (options, rest) = match rest.trim_start().strip_prefix('[') {
                Some(after) => after.split_once(']')?,
                None => ("", rest),
            };
            let signed_by = options
                .split_whitespace()
                .find_map(|o| o.strip_prefix("signed-by="))
                .map(str::to_owned);
            let mut words = rest.split_whitespace();
            let uri = words.next()?.to_owned();
            let suite = words.next()?.to_owned();
            Some(Entry {
                uri,
                suites: vec![suite],
                components: words.map(str::to_owned).collect(),
                signed_by,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Hosts here are made up (example.org): the point is that whatever the host has is used.
    const DEB822: &str = "Types: deb
# a comment
URIs: http://mirror.example.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: https://deb.nodesource.example.org/node_20.x
Suites: nodistro
Components: main
";

    #[test]
    fn deb822_sources_are_re_aimed_with_their_pockets() {
        let host = HostSources::parse("bookworm", &[(true, DEB822.to_owned())]);
        let trixie = host.for_suite("trixie", Pockets::WithUpdates).unwrap();
        assert_eq!(
            trixie,
            "Types: deb\nURIs: http://mirror.example.org/debian\nSuites: trixie trixie-updates\n\
             Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
             Types: deb\nURIs: http://mirror.example.org/debian-security\nSuites: trixie-security\n\
             Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        );
        assert!(!trixie.contains("nodesource"), "{trixie}");
    }

    #[test]
    fn a_frozen_release_gets_the_main_archive_only() {
        let host = HostSources::parse("bookworm", &[(true, DEB822.to_owned())]);
        let bullseye = host.for_suite("bullseye", Pockets::ReleaseOnly).unwrap();
        assert_eq!(
            bullseye,
            "Types: deb\nURIs: http://mirror.example.org/debian\nSuites: bullseye\n\
             Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        );
    }

    #[test]
    fn one_line_sources_are_read_too() {
        let list = "# deb cdrom:[Debian]/ bookworm main\n\
                    deb http://ftp.example.org/debian/ bookworm main non-free-firmware\n\
                    deb [signed-by=/usr/share/keyrings/k.gpg] http://sec.example.org/ bookworm-security main\n\
                    deb https://download.example.com/linux/debian bookworm stable\n";
        let host = HostSources::parse("bookworm", &[(false, list.to_owned())]);
        assert_eq!(
            host.for_suite("trixie", Pockets::WithUpdates).unwrap(),
            "Types: deb\nURIs: http://ftp.example.org/debian/\nSuites: trixie\nComponents: main\n\n\
             Types: deb\nURIs: http://sec.example.org/\nSuites: trixie-security\nComponents: main\n\
             Signed-By: /usr/share/keyrings/k.gpg\n"
        );
    }

    #[test]
    fn no_debian_entry_means_no_sources() {
        let host = HostSources::parse(
            "bookworm",
            &[(
                true,
                "Types: deb\nURIs: http://x.example.org/\nSuites: nodistro\nComponents: main\n"
                    .into(),
            )],
        );
        assert_eq!(host.for_suite("trixie", Pockets::WithUpdates), None);
        let disabled = "Types: deb\nURIs: http://x.example.org/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n";
        let host = HostSources::parse("bookworm", &[(true, disabled.into())]);
        assert_eq!(host.for_suite("trixie", Pockets::WithUpdates), None);
    }

    #[test]
    fn codename_comes_from_os_release() {
        assert_eq!(
            os_release_codename("NAME=\"Debian GNU/Linux\"\nVERSION_CODENAME=bookworm\n"),
            Some("bookworm".into())
        );
        assert_eq!(os_release_codename("NAME=Arch\n"), None);
    }
}
