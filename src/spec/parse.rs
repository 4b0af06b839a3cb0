//! Spec text → the serde model, reporting every problem in one pass, in the spec's own words.
//!
//! serde stops at the first value it cannot read. To find all of them, the text is parsed into a
//! YAML tree first (a syntax error is the one problem that ends the pass: nothing after it can be
//! trusted), then deserialized into `Spec` repeatedly: each failure names the field it happened
//! at (serde_path_to_error), is reworded from serde's (`invalid type: sequence, expected u16`)
//! into the spec's (`must be a port between 1 and 65535, got a list`), and that field is taken
//! out of the tree so that its default stands in and the next attempt reaches the next problem.
//! The model types stay the one description of what a spec may hold; nothing here lists fields.

use serde_path_to_error::Segment;
use serde_yaml::{Mapping, Value};

use super::locate;
use super::model::Spec;
use super::Problem;

/// What reading the spec found: the model (when the tree could be read at all, with defaults
/// standing in for fields that could not), each problem, and which fields those were.
pub struct Reading {
    pub spec: Option<Spec>,
    pub problems: Vec<Problem>,
    /// Dotted paths of the fields that were written but could not be read.
    pub unreadable: Vec<String>,
}

/// More problems than this in one file is not a spec with mistakes but something else; the
/// cap also bounds the work on hostile input (each attempt removes one field).
const MAX_PROBLEMS: usize = 64;

/// The placeholder for a missing `project`, so that the rest of the spec is still checked.
const MISSING_PROJECT: &str = "missing-project";

pub fn read(text: &str) -> Reading {
    let mut reading = Reading {
        spec: None,
        problems: Vec::new(),
        unreadable: Vec::new(),
    };
    let mut tree: Value = match serde_yaml::from_str(text) {
        Ok(tree) => tree,
        Err(err) => {
            reading.problems.push(problem_from_yaml(&err, text));
            return reading;
        }
    };
    match &mut tree {
        Value::Null => {
            reading.problems.push(root_problem(
                text,
                "the spec is empty; it needs at least `project: NAME`".to_owned(),
            ));
            return reading;
        }
        Value::Mapping(_) => {}
        other => {
            let got = describe(other);
            reading.problems.push(root_problem(
                text,
                format!("the spec must be a mapping of fields such as `project: NAME`, got {got}"),
            ));
            return reading;
        }
    }
    stringify_keys(&mut tree);

    // Every attempt but the last either removes a field or adds the missing project, so the
    // attempts are bounded by the problems (and one more for the project).
    for _attempt in 0..=MAX_PROBLEMS + 1 {
        if reading.problems.len() >= MAX_PROBLEMS {
            break;
        }
        let err = match serde_path_to_error::deserialize::<_, Spec>(&tree) {
            Ok(spec) => {
                reading.spec = Some(spec);
                break;
            }
            Err(err) => err,
        };
        let Some(path) = keys_of(err.path()) else {
            reading
                .problems
                .push(root_problem(text, err.inner().to_string()));
            break;
        };
        let serde_message = err.into_inner().to_string();
        if serde_message.starts_with("missing field `project`") && path.is_empty() {
            if !reading.unreadable.iter().any(|field| field == "project") {
                reading.problems.push(Problem {
                    field: Some("project".to_owned()),
                    line: None,
                    column: None,
                    message: "missing; the spec needs at least `project: NAME`".to_owned(),
                });
            }
            if let Some(root) = tree.as_mapping_mut() {
                root.insert("project".into(), MISSING_PROJECT.into());
            }
            continue;
        }
        let Some(node) = node_at(&tree, &path) else {
            reading.problems.push(root_problem(text, serde_message));
            break;
        };
        let wording = reworded(&serde_message, node, &tree, &path);
        reading.problems.push(located(text, &path, wording));
        reading.unreadable.push(path.join("."));
        if path.is_empty() || remove(&mut tree, &path).is_none() {
            break;
        }
    }
    if reading.problems.len() >= MAX_PROBLEMS {
        reading.spec = None;
    }
    reading
}

/// The keys along serde's path; None when it goes through something that is not a named key
/// (a list item, a key that is not a plain scalar).
fn keys_of(path: &serde_path_to_error::Path) -> Option<Vec<String>> {
    path.iter()
        .map(|segment| match segment {
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { .. } | Segment::Seq { .. } | Segment::Unknown => None,
        })
        .collect()
}

fn node_at<'a>(tree: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(tree, |node, key| node.as_mapping()?.get(key.as_str()))
}

fn remove(tree: &mut Value, path: &[String]) -> Option<Value> {
    let (last, parents) = path.split_last()?;
    let mut node = tree;
    for key in parents {
        node = node.as_mapping_mut()?.get_mut(key.as_str())?;
    }
    node.as_mapping_mut()?.remove(last.as_str())
}

/// Keys are field names. A key YAML reads as a number or a boolean (`1:`, `yes:` is a string
/// in YAML 1.2) is compared as the text it is written as, as serde_yaml does when it reads a
/// struct straight from text; without this, serde would take an integer key for a field's
/// position (`0: hits` as `project: hits`).
fn stringify_keys(node: &mut Value) {
    match node {
        Value::Mapping(mapping) => {
            let entries = std::mem::take(mapping);
            *mapping = entries
                .into_iter()
                .map(|(key, mut value)| {
                    stringify_keys(&mut value);
                    let key = match key {
                        Value::Number(n) => Value::String(n.to_string()),
                        Value::Bool(b) => Value::String(b.to_string()),
                        Value::Null => Value::String("null".to_owned()),
                        key => key,
                    };
                    (key, value)
                })
                .collect::<Mapping>();
        }
        Value::Sequence(items) => items.iter_mut().for_each(stringify_keys),
        Value::Tagged(tagged) => stringify_keys(&mut tagged.value),
        _ => {}
    }
}

/// A problem located in the text: at the value when it is on the key's line, else at the key,
/// else at the deepest enclosing key that is written.
fn located(text: &str, path: &[String], wording: Wording) -> Problem {
    let field = path.join(".");
    let (field, message, position) = match wording {
        Wording::Value(message) => {
            let position =
                locate::locate_value(text, &field).or_else(|| locate::locate(text, &field));
            (Some(field), message, position)
        }
        // An unknown key is told against the mapping it is in (the message names the key); a
        // top-level one by its line alone, or by its name when it cannot be found.
        Wording::UnknownKey(message) => {
            let position = locate::locate(text, &field);
            let parent = match path.split_last() {
                Some((_, parents)) if !parents.is_empty() => Some(parents.join(".")),
                _ => position.is_none().then_some(field),
            };
            (parent, message, position)
        }
    };
    Problem {
        field,
        line: position.map(|p| p.line),
        column: position.map(|p| p.column),
        message,
    }
}

/// A problem with the document as a whole, pointed at its first line of content.
fn root_problem(text: &str, message: String) -> Problem {
    let first = text
        .lines()
        .position(|line| {
            let line = line.trim();
            !line.is_empty() && !line.starts_with('#') && line != "---"
        })
        .unwrap_or(0);
    Problem {
        field: None,
        line: Some(first + 1),
        column: None,
        message,
    }
}

/// A reworded message: about a value, or about a key that is not a field.
enum Wording {
    Value(String),
    UnknownKey(String),
}

/// serde's message in the spec's words. `node` is the value that could not be read.
fn reworded(serde_message: &str, node: &Value, tree: &Value, path: &[String]) -> Wording {
    if let Some(rest) = serde_message.strip_prefix("unknown field `") {
        let (key, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let known = backticked(expected);
        let advice = match closest(key, &known) {
            Some(candidate) => format!("did you mean `{candidate}`?"),
            None if known.is_empty() => "there are no fields here".to_owned(),
            None => format!("the fields here are {}", listed(&known)),
        };
        return Wording::UnknownKey(format!("unknown field `{key}`; {advice}"));
    }
    Wording::Value(value_wording(serde_message, node, tree, path))
}

fn value_wording(serde_message: &str, node: &Value, tree: &Value, path: &[String]) -> String {
    if let Some(rest) = serde_message.strip_prefix("unknown variant `") {
        let (value, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let known = backticked(expected);
        let advice = closest(value, &known)
            .map(|candidate| format!("; did you mean `{candidate}`?"))
            .unwrap_or_default();
        return format!("must be one of {}, got `{value}`{advice}", listed(&known));
    }
    let expected = serde_message
        .strip_prefix("invalid type: ")
        .or_else(|| serde_message.strip_prefix("invalid value: "))
        .and_then(|rest| rest.rsplit_once(", expected "))
        .map(|(_, expected)| expected);
    let Some(expected) = expected else {
        // Our own rules' words (number.rs, rules.rs) already say what is allowed.
        return serde_message.to_owned();
    };
    let got = describe(node);
    if expected.ends_with("Value::Tagged enum") {
        // A choice written as something other than a word; ask serde for the choices.
        let choices = choices_at(tree, path).unwrap_or_default();
        return format!("must be one of {}, got {got}", listed(&choices));
    }
    let expected = match expected {
        e if e.starts_with("struct ") => "a mapping of fields (`name: value`, one per line)",
        "field identifier" => "a field name",
        e => e,
    };
    // YAML reads `12` or `true` as a number or a boolean; when the same written in quotes is
    // a good value here, say so.
    let hint = match node {
        Value::Number(_) | Value::Bool(_) if reads_as_text(tree, path, &got) => {
            format!("; put it in quotes to mean the text: \"{got}\"")
        }
        _ => String::new(),
    };
    format!("must be {expected}, got {got}{hint}")
}

/// Whether `text` as a string at `path` gets past the problem there.
fn reads_as_text(tree: &Value, path: &[String], text: &str) -> bool {
    let Some(probe) = replaced(tree, path, Value::String(text.to_owned())) else {
        return false;
    };
    match serde_path_to_error::deserialize::<_, Spec>(&probe) {
        Ok(_) => true,
        Err(err) => keys_of(err.path()).is_none_or(|at| at != path),
    }
}

/// A copy of `tree` with the value at `path` replaced.
fn replaced(tree: &Value, path: &[String], value: Value) -> Option<Value> {
    let mut copy = tree.clone();
    let (last, parents) = path.split_last()?;
    let mut node = &mut copy;
    for key in parents {
        node = node.as_mapping_mut()?.get_mut(key.as_str())?;
    }
    node.as_mapping_mut()?.insert(last.as_str().into(), value);
    Some(copy)
}

/// The choices of the enum at `path`, read from serde's answer to a word that is none of them.
fn choices_at(tree: &Value, path: &[String]) -> Option<Vec<String>> {
    let probe = replaced(tree, path, Value::String(String::new()))?;
    let err = serde_path_to_error::deserialize::<_, Spec>(&probe).err()?;
    let message = err.into_inner().to_string();
    let expected = message.strip_prefix("unknown variant ``")?;
    Some(backticked(expected))
}

/// The `quoted` words of serde's "expected one of `a`, `b`" (or "`a` or `b`").
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The known word closest to what was typed, when one is close enough to be what was meant.
fn closest<'a>(typed: &str, known: &'a [String]) -> Option<&'a str> {
    // clap's threshold for its own "did you mean" (clap_builder/src/parser/features/suggestions.rs).
    known
        .iter()
        .map(|candidate| (strsim::jaro(typed, candidate), candidate))
        .filter(|(confidence, _)| *confidence > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate.as_str())
}

/// "`a`, `b`, `c`".
fn listed(words: &[String]) -> String {
    words
        .iter()
        .map(|word| format!("`{word}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A YAML value as a message names it.
fn describe(node: &Value) -> String {
    match node {
        Value::Null => "nothing (an empty value)".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(_) => "a list".to_owned(),
        Value::Mapping(_) => "a mapping".to_owned(),
        Value::Tagged(tagged) => format!("a value tagged {}", tagged.tag),
    }
}

/// serde_yaml writes "path: message at line L column C"; split it into our parts.
fn problem_from_yaml(err: &serde_yaml::Error, text: &str) -> Problem {
    let location = err.location();
    let mut message = err.to_string();
    if let Some(loc) = &location {
        let suffix = format!(" at line {} column {}", loc.line(), loc.column());
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_owned();
        }
    }
    let mut field = None;
    // serde_yaml prefixes the dotted path ("web.port: invalid type ..."); "." is the root.
    if let Some((path, rest)) = message.split_once(": ") {
        if !path.contains(' ') && path != "." {
            field = Some(path.to_owned());
            message = rest.to_owned();
        }
    }
    let mut line = location.as_ref().map(|l| l.line());
    let column = location.as_ref().map(|l| l.column());
    // serde_yaml points a duplicate key at the start of its mapping; point at the second one.
    if let Some(key) = message
        .strip_prefix("duplicate entry with key \"")
        .and_then(|rest| rest.strip_suffix('"'))
    {
        if let Some((at_line, at_column)) = line.zip(column) {
            if let Some(second) = second_occurrence(text, key, at_line, at_column) {
                line = Some(second);
            }
        }
        message = format!("`{key}` is written a second time here; keep one");
    }
    // serde_yaml tells no position for a second document; point at where it starts.
    if line.is_none() && message.contains("more than one document") {
        line = second_document_line(text);
        message = "a second YAML document starts here; the spec is one document (remove this `---` or what follows it)".to_owned();
    }
    Problem {
        field,
        line,
        column,
        message,
    }
}

/// The line of the second `key:` at `column` in the block mapping that starts at
/// `line`:`column`, if the text is written that way.
fn second_occurrence(text: &str, key: &str, line: usize, column: usize) -> Option<usize> {
    let indent = column.checked_sub(1)?;
    let mut seen = 0;
    for (index, written) in text.lines().enumerate().skip(line - 1) {
        let trimmed = written.trim_start();
        let this_indent = written.len() - trimmed.len();
        if trimmed.is_empty() || trimmed.starts_with('#') || this_indent > indent {
            continue;
        }
        if this_indent < indent {
            break;
        }
        let written_key = trimmed.split(':').next().unwrap_or("").trim();
        if written_key.trim_matches(|c| c == '"' || c == '\'') == key {
            seen += 1;
            if seen == 2 {
                return Some(index + 1);
            }
        }
    }
    None
}

/// The line where a second YAML document starts (a second `---`, a directive, content after
/// `...`), found with the same parser: the first line at which the text up to it holds a
/// well-formed first document and the start of another. Only called on the error path.
fn second_document_line(text: &str) -> Option<usize> {
    use serde::Deserialize as _;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    (1..=lines.len()).find(|&count| {
        let prefix = lines[..count].concat();
        let documents: Vec<bool> = serde_yaml::Deserializer::from_str(&prefix)
            .take(2)
            .map(|document| serde::de::IgnoredAny::deserialize(document).is_ok())
            .collect();
        documents.len() == 2 && documents[0]
    })
}
