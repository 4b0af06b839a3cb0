//! Whole numbers in the spec (ports, counts, an HTTP status): one rule per kind of number, used
//! both while provision.yaml is deserialized and by `provision init`'s prompts, so a value is
//! refused with the same words wherever it is typed.
//!
//! A number may be written quoted (`replicas: "3"`). YAML users quote values out of habit, and
//! tools that template YAML (envsubst, Helm, Ansible) often emit quoted scalars; Docker Compose
//! accepts a string for every integer it reads (compose-spec `schema/compose-spec.json`, e.g.
//! `deploy.restart_policy.max_attempts`, `placement.max_replicas_per_node`: `"type": ["integer",
//! "string"]`). A quoted numeral has one meaning, so refusing it would only be pedantry. Anything
//! else in quotes (`"3.0"`, `" 3"`, `"three"`) is refused with the range the field takes.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, Visitor};

/// A whole number between `min` and `max`, and how to name it in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WholeNumber {
    pub min: u64,
    pub max: u64,
    /// What the number is, when that says more than "a whole number" ("a port").
    noun: Option<&'static str>,
}

impl WholeNumber {
    /// A host or container port.
    pub const PORT: WholeNumber = WholeNumber::new(1, 65_535).named("a port");
    /// A count whose real bound depends on other fields (replicas, lb.max_replicas); the
    /// cross-field rules in `validate.rs` say which range applies.
    pub const COUNT: WholeNumber = WholeNumber::new(0, u32::MAX as u64);
    /// gunicorn workers per replica.
    pub const WORKERS: WholeNumber = WholeNumber::new(1, 64);
    /// Releases whose images are kept (`web.keep_releases`).
    pub const KEEP_RELEASES: WholeNumber = WholeNumber::new(1, 100);
    /// The status `verify` expects of your own app.
    pub const HTTP_STATUS: WholeNumber = WholeNumber::new(100, 599).named("an HTTP status");

    pub const fn new(min: u64, max: u64) -> Self {
        WholeNumber {
            min,
            max,
            noun: None,
        }
    }

    const fn named(self, noun: &'static str) -> Self {
        WholeNumber {
            noun: Some(noun),
            ..self
        }
    }

    /// The same kind of number with a tighter upper bound (the replicas a spec allows).
    pub fn at_most(self, max: u64) -> Self {
        WholeNumber {
            max: max.min(self.max),
            ..self
        }
    }

    /// Parses what a user typed (at a prompt, or quoted in the spec); the error says what is
    /// allowed and what was given.
    pub fn parse(&self, text: &str) -> Result<u64, String> {
        let trimmed = text.trim();
        // Digits only: `+3`, `3.0`, `0x1F` and `1e3` are numbers to some parsers and not to others.
        if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(value) = trimmed.parse::<u64>() {
                return self.check(value);
            }
            return Err(self.refusal(trimmed));
        }
        Err(self.refusal(&format!("{text:?}")))
    }

    /// Checks a number that is already one.
    pub fn check(&self, value: u64) -> Result<u64, String> {
        if (self.min..=self.max).contains(&value) {
            Ok(value)
        } else {
            Err(self.refusal(&value.to_string()))
        }
    }

    fn refusal(&self, got: &str) -> String {
        format!("must be {self}, got {got}")
    }
}

/// "a whole number between 1 and 64", "a port between 1 and 65535".
impl fmt::Display for WholeNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let noun = self.noun.unwrap_or("a whole number");
        if self.min == 0 && self.max == u32::MAX as u64 {
            f.write_str(noun)
        } else {
            write!(f, "{noun} between {} and {}", self.min, self.max)
        }
    }
}

impl<'de> DeserializeSeed<'de> for WholeNumber {
    type Value = u64;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for WholeNumber {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<u64, E> {
        self.check(value).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<u64, E> {
        match u64::try_from(value) {
            Ok(value) => self.visit_u64(value),
            Err(_) => Err(E::custom(self.refusal(&value.to_string()))),
        }
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<u64, E> {
        Err(E::custom(self.refusal(&value.to_string())))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<u64, E> {
        self.parse(value).map_err(E::custom)
    }
}

fn narrow<T: TryFrom<u64>, E: de::Error>(value: u64, kind: WholeNumber) -> Result<T, E> {
    // The kinds above never allow a value wider than the field's type; this is the proof.
    T::try_from(value).map_err(|_| E::custom(kind.refusal(&value.to_string())))
}

/// `#[serde(deserialize_with)]` for a port.
pub fn port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    narrow(WholeNumber::PORT.deserialize(d)?, WholeNumber::PORT)
}

/// `#[serde(deserialize_with)]` for a port that may be left out (the field is then `None`).
pub fn optional_port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    port(d).map(Some)
}

/// `#[serde(deserialize_with)]` for a count checked further by a cross-field rule.
pub fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    narrow(WholeNumber::COUNT.deserialize(d)?, WholeNumber::COUNT)
}

/// `#[serde(deserialize_with)]` for `web.workers`.
pub fn workers<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    narrow(WholeNumber::WORKERS.deserialize(d)?, WholeNumber::WORKERS)
}

/// `#[serde(deserialize_with)]` for `web.keep_releases`.
pub fn keep_releases<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    narrow(
        WholeNumber::KEEP_RELEASES.deserialize(d)?,
        WholeNumber::KEEP_RELEASES,
    )
}

/// `#[serde(deserialize_with)]` for `web.expect.status`, which may be left out.
pub fn http_status<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    struct MaybeStatus;
    impl<'de> Visitor<'de> for MaybeStatus {
        type Value = Option<u16>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt::Display::fmt(&WholeNumber::HTTP_STATUS, f)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            let status = WholeNumber::HTTP_STATUS.deserialize(d)?;
            narrow(status, WholeNumber::HTTP_STATUS).map(Some)
        }
    }
    d.deserialize_option(MaybeStatus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_say_their_range() {
        let port = WholeNumber::PORT;
        assert_eq!(port.parse("8080"), Ok(8080));
        assert_eq!(port.parse(" 8080 "), Ok(8080));
        assert_eq!(
            port.parse("70000").unwrap_err(),
            "must be a port between 1 and 65535, got 70000"
        );
        assert_eq!(
            port.parse("0").unwrap_err(),
            "must be a port between 1 and 65535, got 0"
        );
        assert_eq!(
            port.parse("abc").unwrap_err(),
            "must be a port between 1 and 65535, got \"abc\""
        );
        for bad in [
            "",
            "-1",
            "+3",
            "3.0",
            "0x1F",
            "1e3",
            "99999999999999999999999",
        ] {
            assert!(port.parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn counts_and_narrowed_ranges() {
        assert_eq!(WholeNumber::COUNT.to_string(), "a whole number");
        let replicas = WholeNumber::new(1, u64::MAX).at_most(10);
        assert_eq!(replicas.parse("10"), Ok(10));
        assert_eq!(
            replicas.parse("12").unwrap_err(),
            "must be a whole number between 1 and 10, got 12"
        );
    }

    #[test]
    fn quoted_numerals_deserialize_like_numbers() {
        #[derive(serde::Deserialize, Debug)]
        struct Doc {
            #[serde(deserialize_with = "port")]
            port: u16,
            #[serde(default, deserialize_with = "http_status")]
            status: Option<u16>,
        }
        let doc: Doc = serde_yaml::from_str("port: \"8080\"\nstatus: 204\n").unwrap();
        assert_eq!((doc.port, doc.status), (8080, Some(204)));
        let doc: Doc = serde_yaml::from_str("port: 1\nstatus:\n").unwrap();
        assert_eq!(doc.status, None);
        let err = serde_yaml::from_str::<Doc>("port: -5\n").unwrap_err();
        assert!(err.to_string().contains("got -5"), "{err}");
        let err = serde_yaml::from_str::<Doc>("port: 1\nstatus: 700\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("must be an HTTP status between 100 and 599, got 700"),
            "{err}"
        );
    }
}
