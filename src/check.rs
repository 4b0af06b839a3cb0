//! The result of one check, as probes and preflight produce it and `report` prints it: a name,
//! an outcome, a sentence, and the numbers behind it.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
}

/// Named numbers in the order they were added (JSON objects keep that order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Numbers(pub Vec<(String, Value)>);

impl Numbers {
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.push((key.to_owned(), value.into()));
        self
    }
}

impl Serialize for Numbers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// One check: a name, its outcome, a sentence, and the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    pub outcome: Outcome,
    pub message: String,
    pub numbers: Numbers,
}

impl Check {
    pub fn new(name: &str, outcome: Outcome, message: impl Into<String>) -> Self {
        Check {
            name: name.to_owned(),
            outcome,
            message: message.into(),
            numbers: Numbers::default(),
        }
    }

    pub fn pass_if(name: &str, ok: bool, message: impl Into<String>) -> Self {
        let outcome = if ok { Outcome::Pass } else { Outcome::Fail };
        Check::new(name, outcome, message)
    }

    pub fn numbers(mut self, numbers: Numbers) -> Self {
        self.numbers = numbers;
        self
    }
}

/// Seconds rounded to a tenth, as reports give them.
pub fn round1(seconds: f64) -> f64 {
    (seconds * 10.0).round() / 10.0
}
