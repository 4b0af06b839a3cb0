//! A secret's name: what the file under `/run/secrets/` is called in a container, part of a Swarm
//! secret's name, and (upper-cased) of an app's environment variable. Lowercase letters, digits
//! and `_`, starting with a letter, at most 64 characters: valid in every one of those places.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretName(String);

impl SecretName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a text is not a secret name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a secret name: 1 to 64 lowercase letters, digits and `_`, starting with a letter"
)]
pub struct BadSecretName(String);

impl FromStr for SecretName {
    type Err = BadSecretName;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut chars = text.chars();
        let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if starts_with_letter && rest_ok && text.len() <= 64 {
            Ok(SecretName(text.to_owned()))
        } else {
            Err(BadSecretName(text.to_owned()))
        }
    }
}

impl TryFrom<String> for SecretName {
    type Error = BadSecretName;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<SecretName> for String {
    fn from(name: SecretName) -> String {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_fit_a_file_a_swarm_secret_and_an_env_var() {
        for good in ["a", "redis_password", "api_key2"] {
            assert!(good.parse::<SecretName>().is_ok(), "{good}");
        }
        for bad in ["", "2fa", "Api", "api-key", "a/b", "../x", &"a".repeat(65)] {
            assert!(bad.parse::<SecretName>().is_err(), "{bad}");
        }
    }
}
