//! What the user's app is given at run time, as the spec writes it: plain environment values
//! (`web.env`), a dotenv file beside the spec (`web.env_file`) and secrets (`web.secrets`), and
//! the rules that relate them (names provision sets itself, a name given twice).
//!
//! Only names and places are read here; the values of `env_file` and of secrets are read at apply
//! time (`crate::inputs`), so that `render` neither needs them nor can write them anywhere.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::model::{EnvName, SpecFile, Web};

/// A value of `web.env`: any YAML scalar, kept as the text the app will see (`DEBUG: 1` is `"1"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct EnvValue(pub(crate) String);

impl EnvValue {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<EnvValue> for String {
    fn from(value: EnvValue) -> String {
        value.0
    }
}

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Scalar;
        impl serde::de::Visitor<'_> for Scalar {
            type Value = EnvValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a text, number or boolean")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<EnvValue, E> {
                if v.contains('\0') {
                    return Err(E::custom("must not contain a NUL character"));
                }
                Ok(EnvValue(v.to_owned()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
        }
        d.deserialize_any(Scalar)
    }
}

/// Where a secret's value is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum SecretSource {
    /// A file beside the spec (its whole contents; one trailing newline is dropped).
    File(SpecFile),
    /// A variable of the shell that runs provision: `{env: VARIABLE}`.
    Env { env: EnvName },
}

impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Source;
        impl<'de> serde::de::Visitor<'de> for Source {
            type Value = SecretSource;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a file beside the spec, or `{env: VARIABLE}`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SecretSource, E> {
                SpecFile::try_from(v.to_owned())
                    .map(SecretSource::File)
                    .map_err(E::custom)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<SecretSource, A::Error> {
                use serde::de::Error as _;
                let mut env = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "env" if env.is_none() => env = Some(map.next_value::<EnvName>()?),
                        "env" => return Err(A::Error::duplicate_field("env")),
                        other => return Err(A::Error::unknown_field(other, &["env"])),
                    }
                }
                env.map(|env| SecretSource::Env { env })
                    .ok_or_else(|| A::Error::missing_field("env"))
            }
        }
        d.deserialize_any(Source)
    }
}

/// Names provision itself sets in every web replica, or that a process depends on: refused in
/// `web.env`, `web.env_file` and `web.secrets`.
pub const RESERVED: &[&str] = &[
    "PORT",
    "REDIS_HOST",
    "REDIS_PORT",
    "PATH",
    "HOME",
    "HOSTNAME",
];

/// Why `name` cannot be one of the app's variables, if it cannot.
pub fn reserved(name: &str, secrets: &BTreeMap<EnvName, SecretSource>) -> Option<String> {
    if RESERVED.contains(&name) {
        return Some(format!(
            "`{name}` is set by provision or the container itself; choose another name"
        ));
    }
    let stem = name.strip_suffix("_FILE")?;
    secrets
        .keys()
        .any(|s| s.as_str() == stem)
        .then(|| format!("`{name}` is set by provision: it names the file of the secret {stem}"))
}

/// One broken rule of this module: the field (dotted) and the message.
pub type Finding = (String, String);

/// The rules over the names of `web.env` and `web.secrets` (reserved, given twice). The files
/// they name are not read here: a secret's file or an env file is often kept out of version
/// control, and `render` (say `render --check` in CI) neither needs nor may see it; `apply`
/// reads them (`crate::inputs`, with [`inside`]).
pub fn check(web: &Web) -> Vec<Finding> {
    let mut found = Vec::new();
    for name in web.env.keys() {
        let field = format!("web.env.{name}");
        if let Some(why) = reserved(name.as_str(), &web.secrets) {
            found.push((field, why));
        } else if web.secrets.contains_key(name) {
            found.push((
                field,
                format!("`{name}` is also a secret (web.secrets); give it in one place"),
            ));
        }
    }
    for name in web.secrets.keys() {
        if let Some(why) = reserved(name.as_str(), &web.secrets) {
            found.push((format!("web.secrets.{name}"), why));
        }
    }
    found
}

/// The absolute path of `file`, a regular file inside `base_dir` once links are resolved.
pub fn inside(base_dir: &Path, file: &SpecFile) -> Result<std::path::PathBuf, String> {
    let path = base_dir.join(file.as_str());
    let real = path.canonicalize().map_err(|err| {
        if err.kind() == std::io::ErrorKind::NotFound {
            format!(
                "file {} does not exist (relative to the spec's directory)",
                path.display()
            )
        } else {
            format!("cannot read {}: {err}", path.display())
        }
    })?;
    let root = base_dir
        .canonicalize()
        .map_err(|err| format!("cannot read the spec's directory: {err}"))?;
    if !real.starts_with(&root) {
        return Err(format!(
            "{} leads outside the spec's directory (a symbolic link?)",
            path.display()
        ));
    }
    if !real.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(yaml: &str) -> Web {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn scalars_become_text_and_sources_read_both_ways() {
        let w = web("env: {DEBUG: 1, NAME: x, ON: true}\nsecrets:\n  A: a.txt\n  B: {env: VAR}\n");
        let values: Vec<&str> = w.env.values().map(EnvValue::as_str).collect();
        assert_eq!(values, ["1", "x", "true"]);
        assert!(
            matches!(&w.secrets[&EnvName("A".into())], SecretSource::File(f) if f.as_str() == "a.txt")
        );
        assert!(
            matches!(&w.secrets[&EnvName("B".into())], SecretSource::Env { env } if env.as_str() == "VAR")
        );
    }

    #[test]
    fn a_source_map_takes_env_only() {
        let err = serde_yaml::from_str::<Web>("secrets:\n  A: {file: x}\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `file`"), "{err}");
        let err = serde_yaml::from_str::<Web>("secrets:\n  A: ../x\n").unwrap_err();
        assert!(err.to_string().contains("no `..`"), "{err}");
    }

    #[test]
    fn reserved_and_doubled_names_are_found() {
        let w = web(
            "env: {PORT: 1, API_KEY_FILE: x, TOKEN: y}\nenv_file: missing.env\n\
             secrets:\n  API_KEY: key.txt\n  TOKEN: {env: T}\n  GONE: gone.txt\n",
        );
        let found = check(&w);
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            ["web.env.API_KEY_FILE", "web.env.PORT", "web.env.TOKEN"],
            "{found:?}"
        );
        assert!(
            found[0].1.contains("file of the secret API_KEY"),
            "{found:?}"
        );
    }

    #[test]
    fn a_link_out_of_the_spec_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("key.txt")).unwrap();
        let err = inside(dir.path(), &SpecFile("key.txt".into())).unwrap_err();
        assert!(err.contains("outside the spec's directory"), "{err}");
    }
}
