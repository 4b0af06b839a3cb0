//! Memory limits: how a spec writes one (`256m`, `1g`) and what follows from it. A container's
//! limit is the hard wall; the services that manage memory themselves are sized from it, so the
//! kernel's OOM killer is the last resort, never the first: HAProxy refuses connections beyond
//! `maxconn` and redis refuses writes beyond `maxmemory` before their container reaches its limit.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Smallest limit a spec may set: below it Python, consul or redis do not even start.
const MIN_MIB: u64 = 32;
/// Largest: 64 GiB, far beyond what this stack's services use; a typo (`256g`) is caught.
const MAX_MIB: u64 = 64 * 1024;
/// What HAProxy holds per connection, counted generously: two 16 KiB buffers (request and
/// response, HAProxy's default `tune.bufsize`) plus the stream and both sides' connection state.
const HAPROXY_BYTES_PER_CONNECTION: u64 = 64 * 1024;

/// A memory limit as Docker reads it: a whole number of mebibytes (`m`) or gibibytes (`g`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    mib: u64,
}

impl Memory {
    pub const fn mib(mib: u64) -> Self {
        Memory { mib }
    }

    pub fn bytes(self) -> u64 {
        self.mib * 1024 * 1024
    }

    /// HAProxy's global `maxconn` for a container of this size: connections past it wait in
    /// the kernel's accept queue instead of growing HAProxy until the kernel kills it.
    pub fn haproxy_maxconn(self) -> u64 {
        (self.bytes() / HAPROXY_BYTES_PER_CONNECTION).max(64)
    }

    /// redis' `maxmemory` for a container of this size: half of it. An append-only-file
    /// rewrite forks redis, and pages the parent writes meanwhile are copied: the other half is
    /// room for those copies, the AOF buffers and the server's own overhead.
    pub fn redis_maxmemory(self) -> u64 {
        self.bytes() / 2
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mib.is_multiple_of(1024) {
            write!(f, "{}g", self.mib / 1024)
        } else {
            write!(f, "{}m", self.mib)
        }
    }
}

impl TryFrom<&str> for Memory {
    type Error = String;
    fn try_from(text: &str) -> Result<Self, String> {
        let err = || {
            format!(
                "invalid memory limit {text:?}: expected a whole number followed by `m` \
                 (MiB) or `g` (GiB), such as 256m, from {MIN_MIB}m to {}g",
                MAX_MIB / 1024
            )
        };
        let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        let (digits, unit) = text.split_at(split);
        let number: u64 = digits.parse().map_err(|_| err())?;
        let mib = match unit {
            "m" | "M" => number,
            "g" | "G" => number.checked_mul(1024).ok_or_else(err)?,
            _ => return Err(err()),
        };
        if !(MIN_MIB..=MAX_MIB).contains(&mib) {
            return Err(err());
        }
        Ok(Memory { mib })
    }
}

impl<'de> Deserialize<'de> for Memory {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        super::model::deserialize_checked(d, "a memory limit such as 256m", |text| {
            Memory::try_from(text.as_str())
        })
    }
}

impl Serialize for Memory {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_and_print_back() {
        for (text, mib, printed) in [
            ("256m", 256, "256m"),
            ("1g", 1024, "1g"),
            ("1024m", 1024, "1g"),
            ("32M", 32, "32m"),
        ] {
            let memory = Memory::try_from(text).unwrap();
            assert_eq!(memory, Memory::mib(mib), "{text}");
            assert_eq!(memory.to_string(), printed, "{text}");
        }
        for bad in [
            "",
            "256",
            "m",
            "256mb",
            "1.5g",
            "-1m",
            "31m",
            "65g",
            "99999999999999999999g",
        ] {
            let err = Memory::try_from(bad).unwrap_err();
            assert!(err.contains("expected a whole number"), "{bad}: {err}");
        }
    }

    #[test]
    fn services_are_sized_below_their_limit() {
        let lb = Memory::mib(256);
        assert_eq!(lb.haproxy_maxconn(), 4096);
        assert!(lb.haproxy_maxconn() * HAPROXY_BYTES_PER_CONNECTION <= lb.bytes());
        assert_eq!(Memory::mib(32).haproxy_maxconn(), 512);
        assert_eq!(Memory::mib(256).redis_maxmemory(), 128 * 1024 * 1024);
    }
}
