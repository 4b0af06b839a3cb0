//! Escaping filters, one per target format. A blueprint writes a value with the filter of the
//! place it lands in: `{{ plan.project | yaml }}` in compose.yaml, `{{ path | haproxy }}` in
//! haproxy.cfg. Each filter returns a *safe* string, and the environment's formatter refuses to
//! print any other string (see `mod.rs`), so a value cannot reach a file unescaped by accident.
//!
//! Two kinds of filter: those that can quote anything (`yaml`, `json`, `py`, `gotmpl`,
//! `mermaid`) and those for formats without a reliable quoting (`haproxy`, `word`, `hcl` in
//! part), which refuse anything outside a small safe alphabet. The spec's own rules
//! (`spec::rules`) already keep values narrow; these filters are the second wall.

use minijinja::value::{Value, ValueKind};
use minijinja::{Error, ErrorKind};

/// Registers every filter on `env`.
pub fn register(env: &mut minijinja::Environment<'static>) {
    env.add_filter("yaml", yaml);
    env.add_filter("yaml_block", yaml_block);
    env.add_filter("json", json);
    env.add_filter("py", py);
    env.add_filter("haproxy", haproxy);
    env.add_filter("word", word);
    env.add_filter("hcl", hcl);
    env.add_filter("gotmpl", gotmpl);
    env.add_filter("mermaid", mermaid);
}

fn refuse(filter: &str, value: &Value, allowed: &str) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("the `{filter}` filter refuses {value:?}: only {allowed} can be written there"),
    )
}

/// Strings and numbers only; anything else in these filters is a blueprint bug.
fn scalar_text(filter: &str, value: &Value) -> Result<String, Error> {
    match value.kind() {
        ValueKind::String => Ok(value.as_str().unwrap_or_default().to_owned()),
        ValueKind::Number | ValueKind::Bool => Ok(value.to_string()),
        _ => {
            require_defined(filter, value)?;
            Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "the `{filter}` filter takes a string or number, got {}",
                    value.kind()
                ),
            ))
        }
    }
}

/// minijinja's strict mode errors when an undefined value is printed or iterated, but hands it
/// to filters as it is; a filter must refuse it (and none), or a typo would become `null`.
fn require_defined(filter: &str, value: &Value) -> Result<(), Error> {
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => Err(Error::new(
            ErrorKind::UndefinedError,
            format!("the `{filter}` filter got an undefined or none value"),
        )),
        ValueKind::Seq => {
            for item in value.try_iter()? {
                require_defined(filter, &item)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn to_json(filter: &str, value: &Value) -> Result<String, Error> {
    require_defined(filter, value)?;
    // A flat list reads better as `["a", "b"]` (a Dockerfile CMD, a Python list) than compact.
    if value.kind() == ValueKind::Seq {
        let items: Vec<Value> = value.try_iter()?.collect();
        if items
            .iter()
            .all(|item| !matches!(item.kind(), ValueKind::Seq | ValueKind::Map))
        {
            let parts = items
                .iter()
                .map(|item| to_json(filter, item))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(format!("[{}]", parts.join(", ")));
        }
    }
    serde_json::to_string(value).map_err(|err| {
        Error::new(
            ErrorKind::BadSerialization,
            format!("the `{filter}` filter cannot serialize {value:?}: {err}"),
        )
    })
}

/// YAML for Compose files: a JSON scalar or flow sequence/mapping. JSON is valid YAML, and a
/// JSON-quoted string cannot end its line, open a new key or start a comment, whatever it
/// contains. Every `$` is doubled: Compose reads `$NAME` and `${NAME}` in any value as an
/// interpolation and `$$` as a literal `$`, so no value can pull in the environment, even if a
/// spec rule is loosened later.
pub fn yaml(value: &Value) -> Result<Value, Error> {
    Ok(Value::from_safe_string(
        to_json("yaml", value)?.replace('$', "$$"),
    ))
}

/// A multi-line string (a script carried in a Compose or stack file) as a YAML literal block
/// scalar: `|`, then every line indented by `indent` spaces, so that no line can end the block,
/// and `$` doubled as in [`yaml`]. A first line that starts with a space or tab is refused: YAML
/// would take its indentation for the block's.
pub fn yaml_block(value: &Value, indent: usize) -> Result<Value, Error> {
    let text = scalar_text("yaml_block", value)?;
    if text.starts_with([' ', '\t']) {
        return Err(refuse(
            "yaml_block",
            value,
            "text whose first line starts with neither a space nor a tab",
        ));
    }
    let pad = " ".repeat(indent);
    let mut out = String::from("|");
    for line in text.replace('$', "$$").lines() {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
    }
    Ok(Value::from_safe_string(out))
}

/// JSON, for Dockerfile exec-form arrays (`CMD ["a", "b"]`) and JSON files.
pub fn json(value: &Value) -> Result<Value, Error> {
    Ok(Value::from_safe_string(to_json("json", value)?))
}

/// A Python literal: a JSON-quoted string is a valid Python string literal (same escapes);
/// numbers are written as they are.
pub fn py(value: &Value) -> Result<Value, Error> {
    match value.kind() {
        ValueKind::String | ValueKind::Number => json(value),
        ValueKind::Bool => Ok(Value::from_safe_string(
            if value.is_true() { "True" } else { "False" }.to_owned(),
        )),
        _ => {
            require_defined("py", value)?;
            Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "the `py` filter takes a string, number or bool, got {}",
                    value.kind()
                ),
            ))
        }
    }
}

/// HAProxy config has quoting, but its rules differ between versions and keywords; a value
/// there must be a plain token or rendering fails.
pub fn haproxy(value: &Value) -> Result<Value, Error> {
    let text = scalar_text("haproxy", value)?;
    let ok = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:/~-".contains(c));
    if !ok {
        return Err(refuse("haproxy", value, "letters, digits and `._:/~-`"));
    }
    Ok(Value::from_safe_string(text))
}

/// A bare word in a Dockerfile (`FROM`, `ARG`, `EXPOSE`): Dockerfiles expand `$` and split on
/// spaces, so only image-reference characters pass.
pub fn word(value: &Value) -> Result<Value, Error> {
    let text = scalar_text("word", value)?;
    let ok = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:/@+=-".contains(c));
    if !ok {
        return Err(refuse("word", value, "letters, digits and `._:/@+=-`"));
    }
    Ok(Value::from_safe_string(text))
}

/// An HCL string (consul-template's config). Quoted like JSON; `${` and `%{` are refused because
/// HCL versions disagree on whether they start an interpolation.
pub fn hcl(value: &Value) -> Result<Value, Error> {
    let text = scalar_text("hcl", value)?;
    if text.contains("${") || text.contains("%{") {
        return Err(refuse("hcl", value, "text without `${` or `%{`"));
    }
    Ok(Value::from_safe_string(to_json("hcl", &Value::from(text))?))
}

/// A Go template string literal (for consul-template's `{{ service "web" }}`): a JSON-quoted
/// string is a valid Go interpreted string literal, and Go's template lexer reads a quoted
/// string to its closing quote, so `}}` inside it cannot end the action.
pub fn gotmpl(value: &Value) -> Result<Value, Error> {
    let text = scalar_text("gotmpl", value)?;
    Ok(Value::from_safe_string(to_json(
        "gotmpl",
        &Value::from(text),
    )?))
}

/// A quoted Mermaid label. Mermaid has no backslash escapes; it reads `#<decimal>;` as a
/// character, so everything outside a plain alphabet is written that way.
pub fn mermaid(value: &Value) -> Result<Value, Error> {
    let text = scalar_text("mermaid", value)?;
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || " .,:/()_+=*@-".contains(c) {
            out.push(c);
        } else {
            out.push_str(&format!("#{};", c as u32));
        }
    }
    out.push('"');
    Ok(Value::from_safe_string(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values an attacker (or a typo) could put in a spec if the spec rules ever loosened.
    const HOSTILE: &[&str] = &[
        "a\nb: injected",
        "x\" y: 'z'",
        "{{ evil }}",
        "{% raw %}",
        "$(rm -rf /)",
        "`id`",
        "it's",
        "back\\slash",
        "tab\there",
        "nul\0byte",
        "${HOME}",
        "%{ if }",
        "}} {{",
        "# comment",
        "é ü 🙂",
        "\r\n",
        "",
    ];

    fn s(v: &str) -> Value {
        Value::from(v)
    }

    fn out(r: Result<Value, Error>) -> String {
        let v = r.expect("filter succeeded");
        assert!(v.is_safe(), "filters return safe strings");
        v.as_str().unwrap().to_owned()
    }

    use crate::skip_rule::external_tool;

    #[test]
    fn yaml_keeps_hostile_strings_inside_one_scalar() {
        for raw in HOSTILE {
            let quoted = out(yaml(&s(raw)));
            assert!(!quoted.contains('\n'), "{quoted}");
            let doc = format!("key: {quoted}\nother: 1\n");
            let parsed: serde_yaml::Value = serde_yaml::from_str(&doc).unwrap();
            // YAML keeps the doubled `$`; Compose's interpolation then reads `$$` as `$`.
            let for_compose = raw.replace('$', "$$");
            assert_eq!(parsed["key"].as_str(), Some(for_compose.as_str()), "{doc}");
            assert_eq!(parsed["other"].as_i64(), Some(1), "{doc}");
        }
    }

    #[test]
    fn yaml_never_leaves_a_compose_interpolation() {
        assert_eq!(out(yaml(&s("${HOME}"))), r#""$${HOME}""#);
        assert_eq!(out(yaml(&s("a$b$$c"))), r#""a$$b$$$$c""#);
        assert_eq!(out(yaml(&s("no dollar"))), r#""no dollar""#);
    }

    #[test]
    fn yaml_block_keeps_every_line_inside_the_block() {
        let script = "#!/bin/sh\necho \"$HOME\"\n\nkey: value\n- item\n";
        let doc = format!("a:\n  - {}\n  - next\n", out(yaml_block(&s(script), 4)));
        let parsed: serde_yaml::Value = serde_yaml::from_str(&doc).unwrap();
        assert_eq!(
            parsed["a"][0].as_str().unwrap(),
            script.replace('$', "$$"),
            "{doc}"
        );
        assert_eq!(parsed["a"][1].as_str(), Some("next"));
        assert!(yaml_block(&s(" indented first line"), 4).is_err());
    }

    #[test]
    fn yaml_writes_numbers_and_lists() {
        assert_eq!(out(yaml(&Value::from(8080))), "8080");
        let list = Value::from(vec![s("a b"), s("c\"")]);
        let text = out(yaml(&list));
        assert_eq!(text, r#"["a b", "c\""]"#);
        let parsed: Vec<String> = serde_yaml::from_str(&text).unwrap();
        assert_eq!(parsed, ["a b", "c\""]);
    }

    #[test]
    fn python_literals_round_trip() {
        assert_eq!(out(py(&Value::from(true))), "True");
        assert_eq!(out(py(&Value::from(5000))), "5000");
        let mut values: Vec<(Value, serde_json::Value)> = HOSTILE
            .iter()
            .map(|raw| (s(raw), serde_json::Value::from(*raw)))
            .collect();
        values.push((Value::from(true), serde_json::Value::from(true)));
        values.push((Value::from(false), serde_json::Value::from(false)));
        values.push((Value::from(5000), serde_json::Value::from(5000)));
        let mut source = String::new();
        for (value, _) in &values {
            let lit = out(py(value));
            assert!(!lit.contains('\n'), "{lit}");
            source.push_str(&lit);
            source.push('\n');
        }
        let Some(python) = external_tool("python3", "python3 reads every py literal back") else {
            return;
        };
        // Python's own parser reads each line as one literal (anything else in the line is an
        // error), and writes back what it got as ASCII JSON: a str, a bool or an int.
        let script = r#"
import ast, json, sys
for line in sys.stdin.buffer.read().decode("utf-8").split("\n")[:-1]:
    print(json.dumps(ast.literal_eval(line)))
"#;
        let mut child = std::process::Command::new(python)
            .args(["-I", "-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start python3");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), source.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "python3 could not read the literals:\n{source}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let back: Vec<serde_json::Value> = stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let expected: Vec<serde_json::Value> = values.into_iter().map(|(_, v)| v).collect();
        assert_eq!(back, expected, "{source}");
    }

    #[test]
    fn haproxy_and_word_refuse_anything_but_tokens() {
        assert_eq!(out(haproxy(&s("/health"))), "/health");
        assert_eq!(out(haproxy(&s("2s"))), "2s");
        assert_eq!(
            out(word(&s("localhost:5000/team/web@sha256:ab12"))),
            "localhost:5000/team/web@sha256:ab12"
        );
        for raw in HOSTILE {
            assert!(haproxy(&s(raw)).is_err(), "haproxy accepted {raw:?}");
            assert!(word(&s(raw)).is_err(), "word accepted {raw:?}");
        }
        let err = haproxy(&s("a b")).unwrap_err().to_string();
        assert!(err.contains("refuses \"a b\""), "{err}");
    }

    #[test]
    fn hcl_quotes_and_refuses_interpolation() {
        assert_eq!(out(hcl(&s("consul:8500"))), "\"consul:8500\"");
        assert_eq!(out(hcl(&s("a\"b\nc"))), r#""a\"b\nc""#);
        assert!(hcl(&s("${HOME}")).is_err());
        assert!(hcl(&s("%{ if x }")).is_err());
    }

    /// Where Go's template lexer ends a quoted string that starts `lit` (text/template/parse,
    /// `lexQuote`): at the first `"` not escaped by a backslash. None when it never ends (a
    /// newline or the end of input first), which Go reports as an unterminated string.
    fn go_quote_end(lit: &str) -> Option<usize> {
        let mut chars = lit.char_indices();
        assert_eq!(chars.next().map(|(_, c)| c), Some('"'));
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    None | Some((_, '\n')) => return None,
                    Some(_) => {}
                },
                '\n' => return None,
                '"' => return Some(i),
                _ => {}
            }
        }
        None
    }

    #[test]
    fn gotmpl_strings_cannot_close_the_action() {
        // Go interpreted string literals, written by hand from the Go specification: `\"`,
        // `\\`, `\n`, `\r`, `\t` and `\uXXXX` escapes; any other character as it is.
        let expected: &[(&str, &str)] = &[
            ("web", r#""web""#),
            ("web\" }}{{ evil", r#""web\" }}{{ evil""#),
            ("{{ evil }}", r#""{{ evil }}""#),
            ("}} {{", r#""}} {{""#),
            ("a\nb: injected", r#""a\nb: injected""#),
            ("x\" y: 'z'", r#""x\" y: 'z'""#),
            ("back\\slash", r#""back\\slash""#),
            ("\\\"", r#""\\\"""#),
            ("tab\there", r#""tab\there""#),
            ("\r\n", r#""\r\n""#),
            ("nul\0byte", r#""nul\u0000byte""#),
            ("bell\x07", r#""bell\u0007""#),
            ("`id` $(x) ${HOME}", r#""`id` $(x) ${HOME}""#),
            ("é ü 🙂", "\"é ü 🙂\""),
            ("", r#""""#),
        ];
        for (raw, literal) in expected {
            assert_eq!(out(gotmpl(&s(raw))), *literal, "{raw:?}");
        }
        // Whatever the value, Go's lexer reads the whole literal as one string.
        for raw in HOSTILE.iter().chain(expected.iter().map(|(raw, _)| raw)) {
            let lit = out(gotmpl(&s(raw)));
            assert_eq!(go_quote_end(&lit), Some(lit.len() - 1), "{raw:?} -> {lit}");
        }
    }

    #[test]
    fn mermaid_labels_encode_everything_unusual() {
        assert_eq!(
            out(mermaid(&s("web: gunicorn :5000"))),
            "\"web: gunicorn :5000\""
        );
        assert_eq!(out(mermaid(&s("a\"b\nc"))), "\"a#34;b#10;c\"");
        assert_eq!(out(mermaid(&s("<script>"))), "\"#60;script#62;\"");
        for raw in HOSTILE {
            let label = out(mermaid(&s(raw)));
            let inner = &label[1..label.len() - 1];
            assert!(
                !inner.contains(['"', '\n', '`', '<', '>', '[', ']', '{', '}', '|']),
                "{label}"
            );
        }
    }

    #[test]
    fn filters_refuse_undefined_and_none() {
        type Filter = fn(&Value) -> Result<Value, Error>;
        let filters: [Filter; 8] = [yaml, json, py, haproxy, word, hcl, gotmpl, mermaid];
        for filter in filters {
            for value in [Value::UNDEFINED, Value::from(())] {
                let err = filter(&value).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::UndefinedError, "{err}");
            }
        }
        let list = Value::from(vec![Value::from("a"), Value::UNDEFINED]);
        assert!(yaml(&list).is_err());
    }

    #[test]
    fn filters_reject_maps() {
        let map = Value::from_serialize(std::collections::BTreeMap::from([("a", 1)]));
        assert!(haproxy(&map).is_err());
        assert!(py(&map).is_err());
    }
}
