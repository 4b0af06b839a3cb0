//! Rules for single values: formats, and the replica bound of each discovery mode. Each returns
//! a message that says what is allowed; the caller (serde_yaml, or the validation pass) adds the
//! field, line and column.
//!
//! The rules are deliberately narrow: a value that passes can be written into YAML, a Dockerfile,
//! a shell word, HAProxy config or a Go template without any way to break out of its place.

use super::model::{Discovery, TargetKind};
use super::number::WholeNumber;

fn all_chars(value: &str, allowed: impl Fn(char) -> bool) -> bool {
    value.chars().all(allowed)
}

pub fn project_name(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && all_chars(value, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid project name {value:?}: allowed are 1 to 63 lowercase letters, digits, `-` and `_`, starting with a letter or digit"
        ))
    }
}

pub fn simple_name(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && all_chars(value, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid name {value:?}: allowed are 1 to 63 letters, digits, `-`, `_` and `.`, starting with a letter or digit"
        ))
    }
}

pub fn image_ref(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 255
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && !value.ends_with([':', '/', '@'])
        && !value.contains("//")
        && all_chars(value, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid image reference {value:?}: expected `[registry[:port]/]name[:tag][@sha256:digest]` using letters, digits, `.`, `_`, `-`, `/`, `:` and `@`"
        ))
    }
}

/// A registry prefix: an image reference without tag or digest (`host[:port][/path]`).
pub fn registry(value: &str) -> Result<(), String> {
    let ok = image_ref(value).is_ok()
        && !value.contains('@')
        && value.split('/').skip(1).all(|part| !part.contains(':'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid registry {value:?}: expected `host[:port][/path]`, such as `127.0.0.1:5000` or `registry.example.com/team`"
        ))
    }
}

/// A Swarm placement constraint: `FIELD == VALUE` or `FIELD != VALUE`, where both sides are
/// plain words (so it is safe in YAML and on a command line).
pub fn constraint(value: &str) -> Result<(), String> {
    let word = |w: &str| {
        !w.is_empty()
            && all_chars(w, |c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')
            })
    };
    let ok = [" == ", " != "].iter().any(|op| {
        value
            .split_once(op)
            .is_some_and(|(l, r)| word(l.trim()) && word(r.trim()))
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid placement constraint {value:?}: expected `FIELD == VALUE` or `FIELD != VALUE`, such as `node.role == manager` or `node.labels.db == yes`"
        ))
    }
}

pub fn url_path(value: &str) -> Result<(), String> {
    let ok = value.starts_with('/')
        && value.len() <= 200
        && all_chars(value, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.' | '~')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid URL path {value:?}: expected a path starting with `/` using letters, digits, `/`, `-`, `_`, `.` and `~`"
        ))
    }
}

pub fn safe_relative_path(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 255
        && !value.starts_with('/')
        && !value.starts_with('-')
        && all_chars(value, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid path {value:?}: expected a relative directory path using letters, digits, `/`, `-`, `_` and `.`"
        ))
    }
}

/// A file beside the spec (`web.env_file`, a secret's file): relative, and without `..`, so it
/// resolves inside the spec's directory (symbolic links are checked when the file is read).
pub fn spec_file(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 255
        && !value.starts_with('/')
        && !value.starts_with('-')
        && !value.split('/').any(|part| part == "..")
        && all_chars(value, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid file {value:?}: expected a path inside the spec's directory (no `..`, not absolute) using letters, digits, `/`, `-`, `_` and `.`"
        ))
    }
}

/// A DNS name (RFC 1123 labels, optionally a leading `*.` wildcard) for a certificate's names.
pub fn dns_name(value: &str) -> Result<(), String> {
    let bare = value.strip_prefix("*.").unwrap_or(value);
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && all_chars(label, |c| c.is_ascii_alphanumeric() || c == '-')
    };
    if value.len() <= 253 && bare.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "invalid DNS name {value:?}: expected labels of letters, digits and `-` separated by `.`"
        ))
    }
}

/// An environment variable's name as POSIX shells and Compose accept it.
pub fn env_name(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && !value.starts_with(|c: char| c.is_ascii_digit())
        && all_chars(value, |c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid variable name {value:?}: expected 1 to 64 letters, digits and `_`, not starting with a digit"
        ))
    }
}

/// Text `verify` looks for in an answer. Only compared, never written into a generated file; kept
/// to one printable line so that it reads back the same in messages.
pub fn body_text(value: &str) -> Result<(), String> {
    let ok = !value.is_empty() && value.len() <= 200 && all_chars(value, |c| !c.is_control());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid text {value:?}: expected 1 to 200 bytes of printable text on one line"
        ))
    }
}

pub fn version(value: &str) -> Result<(), String> {
    let mut parts = value.split('.');
    let numeric =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && all_chars(p, |c| c.is_ascii_digit()));
    let ok = numeric(parts.next())
        && numeric(parts.next())
        && numeric(parts.next())
        && parts.next().is_none();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid version {value:?}: expected MAJOR.MINOR.PATCH, such as 0.41.2"
        ))
    }
}

/// `lb.max_replicas`: at least one, at most what the discovery mode can route to and the
/// target can run.
pub fn max_replicas(value: u32, discovery: Discovery, target: TargetKind) -> Result<(), String> {
    let by_mode = discovery.replica_ceiling();
    let by_target = target.replica_ceiling();
    if (1..=by_mode.min(by_target)).contains(&value) {
        Ok(())
    } else if by_target < by_mode {
        Err(format!(
            "must be between 1 and {by_target}, the most web tasks a swarm target runs (its overlay network is a /24, shared with every node and service), got {value}; the compose target goes to {by_mode}"
        ))
    } else {
        Err(format!(
            "must be between 1 and {by_mode}, the most replicas {discovery} discovery can route to, got {value}"
        ))
    }
}

/// `web.replicas`: at least one, at most `lb.max_replicas` (the load balancer's server slots).
pub fn replicas(max_replicas: u32) -> WholeNumber {
    WholeNumber::new(1, max_replicas.into())
}

/// Parses `500ms`, `2s`, `1m` into milliseconds.
pub fn duration_millis(value: &str) -> Result<u64, String> {
    let err = || {
        format!("invalid duration {value:?}: expected a whole number followed by `ms`, `s` or `m`, such as 2s")
    };
    let split = value.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (digits, unit) = value.split_at(split);
    let number: u64 = digits.parse().map_err(|_| err())?;
    let millis = match unit {
        "ms" => number,
        "s" => number.checked_mul(1000).ok_or_else(err)?,
        "m" => number.checked_mul(60_000).ok_or_else(err)?,
        _ => return Err(err()),
    };
    if millis == 0 {
        return Err(format!(
            "invalid duration {value:?}: must be greater than zero"
        ));
    }
    Ok(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_and_constraints() {
        for good in [
            "127.0.0.1:5000",
            "registry.example.com/team",
            "r.io:443/a/b",
        ] {
            assert!(registry(good).is_ok(), "{good:?} should pass");
        }
        for bad in ["", "r.io/a:tag", "r.io@sha256:0", "r.io/", "a b"] {
            assert!(registry(bad).is_err(), "{bad:?} should be rejected");
        }
        for good in [
            "node.role == manager",
            "node.labels.db != no",
            "node.hostname == n-1",
        ] {
            assert!(constraint(good).is_ok(), "{good:?} should pass");
        }
        for bad in [
            "node.role",
            "node.role==manager",
            "a == b == c",
            "a == \"b\"",
            "a == $X",
        ] {
            assert!(constraint(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn project_names() {
        assert!(project_name("hits").is_ok());
        assert!(project_name("my-stack_2").is_ok());
        for bad in [
            "",
            "Hits",
            "-x",
            "a b",
            "a\nb",
            "a\"b",
            "a{{b}}",
            &"a".repeat(64),
        ] {
            assert!(project_name(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn image_refs() {
        for good in [
            "debian:trixie-slim",
            "hashicorp/consul:1.21",
            "registry.example:5000/team/web:1.0",
            "redis@sha256:0123abcd",
        ] {
            assert!(image_ref(good).is_ok(), "{good:?} should pass");
        }
        for bad in [
            "",
            "x y",
            "a\nb",
            "a'b",
            "-x",
            "x:",
            "a//b",
            "{{x}}",
            "a;rm -rf /",
        ] {
            assert!(image_ref(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn url_paths() {
        assert!(url_path("/health").is_ok());
        assert!(url_path("/api/v1/ready").is_ok());
        for bad in ["health", "/a b", "/a\nb", "/a?b", "/{{x}}", "/a'b", "/a%20"] {
            assert!(url_path(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn relative_paths() {
        assert!(spec_file("secrets/api_key.txt").is_ok());
        for bad in ["../x", "a/../../x", "/etc/passwd", "", "-x", "a b"] {
            assert!(spec_file(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(env_name("API_KEY").is_ok() && env_name("_x1").is_ok());
        for bad in ["1A", "", "A-B", "A B", "A=B"] {
            assert!(env_name(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(safe_relative_path("app").is_ok());
        assert!(safe_relative_path("../shared/app").is_ok());
        for bad in ["/abs", "", "a b", "-rf", "a\nb"] {
            assert!(
                safe_relative_path(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn versions() {
        assert!(version("0.41.2").is_ok());
        for bad in ["0.41", "v0.41.2", "0.41.2.1", "0..1", "1.2.x"] {
            assert!(version(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn max_replicas_stop_at_each_modes_ceiling() {
        for discovery in [
            Discovery::ConsulTemplate,
            Discovery::ConsulDns,
            Discovery::DockerDns,
        ] {
            let ceiling = discovery.replica_ceiling();
            let compose = TargetKind::Compose;
            assert!(max_replicas(1, discovery, compose).is_ok());
            assert!(max_replicas(ceiling, discovery, compose).is_ok());
            assert!(max_replicas(0, discovery, compose).is_err());
            let swarm = TargetKind::Swarm;
            assert!(max_replicas(200, discovery, swarm).is_ok());
            let err = max_replicas(201, discovery, swarm).unwrap_err();
            assert!(
                err.contains("a swarm target runs") && err.contains("compose target goes to 256"),
                "{err}"
            );
            let err = max_replicas(ceiling + 1, discovery, compose).unwrap_err();
            assert!(
                err.contains(&format!("between 1 and {ceiling}"))
                    && err.contains(discovery.as_str()),
                "{err}"
            );
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration_millis("500ms"), Ok(500));
        assert_eq!(duration_millis("2s"), Ok(2000));
        assert_eq!(duration_millis("1m"), Ok(60_000));
        for bad in ["", "2", "s", "2h", "0s", "1.5s", "-1s", "2 s"] {
            assert!(duration_millis(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
