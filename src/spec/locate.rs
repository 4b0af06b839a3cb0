//! Finds where a field is written in the spec text, so that errors found after parsing (which
//! loses positions) still name a line and column. It understands block-style mappings, which is
//! what `provision init` writes and what people write by hand; for anything else it answers None
//! and the error names the field alone.

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// The position of a dotted `field` itself, only when the text writes that key.
pub fn locate_exact(text: &str, field: &str) -> Option<Position> {
    let path: Vec<&str> = field.split('.').collect();
    deepest(text, &path).and_then(|(depth, position)| (depth == path.len()).then_some(position))
}

/// The position of the value of a dotted `field`, when the text writes it on the key's line
/// (`port: 70000`); None for a value on the lines below, or an empty one.
pub fn locate_value(text: &str, field: &str) -> Option<Position> {
    let key = locate_exact(text, field)?;
    let line = text.lines().nth(key.line - 1)?;
    let from_key = &line[key.column - 1..];
    let colon = from_key.find(':')?;
    let after = &from_key[colon + 1..];
    let value = after.trim_start();
    if value.is_empty() || value.starts_with('#') {
        return None;
    }
    Some(Position {
        line: key.line,
        column: key.column + colon + 1 + (after.len() - value.len()),
    })
}

/// The position of the deepest key along a dotted `field` that the text contains.
pub fn locate(text: &str, field: &str) -> Option<Position> {
    let path: Vec<&str> = field.split('.').collect();
    deepest(text, &path).map(|(_, position)| position)
}

fn deepest(text: &str, path: &[&str]) -> Option<(usize, Position)> {
    let mut stack: Vec<(usize, &str)> = Vec::new();
    let mut best: Option<(usize, Position)> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let Some(key) = key_of(trimmed) else { continue };
        while stack.last().is_some_and(|&(i, _)| i >= indent) {
            stack.pop();
        }
        stack.push((indent, key));
        let depth = stack.len();
        if depth <= path.len() && stack.iter().zip(path).all(|(&(_, k), p)| k == *p) {
            let position = Position {
                line: index + 1,
                column: indent + 1,
            };
            if best.is_none_or(|(d, _)| depth > d) {
                best = Some((depth, position));
            }
            if depth == path.len() {
                break;
            }
        }
    }
    best
}

fn key_of(trimmed: &str) -> Option<&str> {
    let colon = trimmed.find(':')?;
    let after = &trimmed[colon + 1..];
    if !(after.is_empty() || after.starts_with(' ') || after.starts_with('\t')) {
        return None;
    }
    let key = trimmed[..colon].trim();
    let key = key.trim_matches(|c| c == '"' || c == '\'');
    (!key.is_empty() && !key.starts_with('-')).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "\
# comment
project: hits
web:
  replicas: 3   # trailing
  port: 5000
lb:
  port: 8080
";

    #[test]
    fn finds_nested_keys() {
        assert_eq!(
            locate(SPEC, "web.port"),
            Some(Position { line: 5, column: 3 })
        );
        assert_eq!(
            locate(SPEC, "lb.port"),
            Some(Position { line: 7, column: 3 })
        );
        assert_eq!(
            locate(SPEC, "project"),
            Some(Position { line: 2, column: 1 })
        );
    }

    #[test]
    fn exact_lookup_does_not_fall_back() {
        assert_eq!(
            locate_exact(SPEC, "web.port"),
            Some(Position { line: 5, column: 3 })
        );
        assert_eq!(locate_exact(SPEC, "web.workers"), None);
    }

    #[test]
    fn values_on_the_keys_line() {
        assert_eq!(
            locate_value(SPEC, "web.replicas"),
            Some(Position {
                line: 4,
                column: 13
            })
        );
        assert_eq!(locate_value(SPEC, "web"), None);
        assert_eq!(locate_value(SPEC, "web.workers"), None);
    }

    #[test]
    fn falls_back_to_the_deepest_parent() {
        assert_eq!(
            locate(SPEC, "web.workers"),
            Some(Position { line: 3, column: 1 })
        );
        assert_eq!(locate(SPEC, "consul.http_port"), None);
    }
}
