//! A tiny evaluator for the Go-template constructs that lb/haproxy.ctmpl uses, so the static
//! checks can turn the ctmpl into a haproxy.cfg and give it to `haproxy -c` without a
//! consul-template binary (none can be had offline).
//!
//! It implements exactly: text; `{{ range service "NAME" }}…{{ else }}…{{ end }}` over a list of
//! sample instances; the fields `.ID`, `.Name`, `.Address`, `.Port` inside the range; comments
//! `{{/* … */}}`; and Go's whitespace trimming (`{{- ` trims the white space before the action,
//! ` -}}` the white space after it). Anything else is an error, so a blueprint change that uses
//! more of consul-template's language fails this check loudly instead of being mis-rendered.
//! Like consul-template's `service`, the sample lists hold passing instances only.

use std::collections::BTreeMap;

/// One instance of a service, as consul-template's `service` returns it.
#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    pub name: String,
    pub address: String,
    pub port: u16,
}

#[derive(Debug, PartialEq)]
enum Node {
    Text(String),
    Field(String),
    Range {
        service: String,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug, PartialEq)]
enum Token {
    Text(String),
    Action(String),
}

/// Renders `template` with `services` (service name → passing instances).
pub fn render(
    template: &str,
    services: &BTreeMap<String, Vec<Instance>>,
) -> Result<String, String> {
    let tokens = tokenize(template)?;
    let mut position = 0;
    let (nodes, stop) = parse(&tokens, &mut position)?;
    if let Some(stop) = stop {
        return Err(format!("unexpected {{{{ {stop} }}}} at top level"));
    }
    let mut out = String::new();
    evaluate(&nodes, services, None, &mut out)?;
    Ok(out)
}

fn tokenize(template: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = template;
    let mut trim_next_text = false;
    while !rest.is_empty() {
        let (text, after) = match rest.find("{{") {
            Some(at) => (&rest[..at], Some(&rest[at..])),
            None => (rest, None),
        };
        let mut text = text.to_owned();
        if trim_next_text {
            text = text.trim_start().to_owned();
        }
        let Some(action) = after else {
            tokens.push(Token::Text(text));
            break;
        };
        // `{{- ` trims the preceding white space (the dash must be followed by a space).
        let trim_before = action.starts_with("{{- ");
        if trim_before {
            text = text.trim_end().to_owned();
        }
        tokens.push(Token::Text(text));
        let inner_start = if trim_before { 4 } else { 2 };
        let end = find_action_end(&action[inner_start..])
            .ok_or_else(|| "an action is not closed with }}".to_owned())?;
        let mut inner = &action[inner_start..inner_start + end];
        trim_next_text = inner.ends_with(" -");
        if trim_next_text {
            inner = &inner[..inner.len() - 2];
        }
        tokens.push(Token::Action(inner.trim().to_owned()));
        rest = &action[inner_start + end + 2..];
    }
    Ok(tokens)
}

/// The offset of the `}}` that closes an action, skipping quoted strings.
fn find_action_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'}' if !in_string && bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Parses until `{{ else }}`/`{{ end }}` (returned) or the end of input.
fn parse(tokens: &[Token], position: &mut usize) -> Result<(Vec<Node>, Option<String>), String> {
    let mut nodes = Vec::new();
    while *position < tokens.len() {
        let token = &tokens[*position];
        *position += 1;
        match token {
            Token::Text(text) if !text.is_empty() => nodes.push(Node::Text(text.clone())),
            Token::Text(_) => {}
            Token::Action(action) if action.starts_with("/*") && action.ends_with("*/") => {}
            Token::Action(action) if action == "else" || action == "end" => {
                return Ok((nodes, Some(action.clone())))
            }
            Token::Action(action) if action.starts_with('.') => {
                nodes.push(Node::Field(action[1..].to_owned()))
            }
            Token::Action(action) if action.starts_with("range service ") => {
                let literal = action["range service ".len()..].trim();
                let service: String = serde_json::from_str(literal).map_err(|e| {
                    format!("range service takes one string literal, got {literal}: {e}")
                })?;
                let (body, stop) = parse(tokens, position)?;
                let otherwise = match stop.as_deref() {
                    Some("end") => Vec::new(),
                    Some("else") => match parse(tokens, position)? {
                        (otherwise, Some(end)) if end == "end" => otherwise,
                        _ => return Err("{{ else }} without {{ end }}".into()),
                    },
                    _ => return Err("{{ range }} without {{ end }}".into()),
                };
                nodes.push(Node::Range {
                    service,
                    body,
                    otherwise,
                });
            }
            Token::Action(action) => {
                return Err(format!(
                    "unsupported Go template action {{{{ {action} }}}}: extend tests/it/gotmpl.rs"
                ))
            }
        }
    }
    Ok((nodes, None))
}

fn evaluate(
    nodes: &[Node],
    services: &BTreeMap<String, Vec<Instance>>,
    dot: Option<&Instance>,
    out: &mut String,
) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Field(field) => {
                let instance = dot.ok_or_else(|| format!(".{field} outside a range"))?;
                match field.as_str() {
                    "ID" => out.push_str(&instance.id),
                    "Name" => out.push_str(&instance.name),
                    "Address" => out.push_str(&instance.address),
                    "Port" => out.push_str(&instance.port.to_string()),
                    other => return Err(format!("unknown field .{other}")),
                }
            }
            Node::Range {
                service,
                body,
                otherwise,
            } => {
                let instances = services.get(service).map(Vec::as_slice).unwrap_or(&[]);
                if instances.is_empty() {
                    evaluate(otherwise, services, dot, out)?;
                }
                for instance in instances {
                    evaluate(body, services, Some(instance), out)?;
                }
            }
        }
    }
    Ok(())
}

/// `count` sample instances of `service` as registrator names them (`host:container:port`).
pub fn sample_instances(service: &str, count: usize, port: u16) -> Vec<Instance> {
    (1..=count)
        .map(|i| Instance {
            id: format!("registrator:hits-{service}-{i}:{port}"),
            name: service.to_owned(),
            address: format!("172.18.0.{}", 10 + i),
            port,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services(n: usize) -> BTreeMap<String, Vec<Instance>> {
        BTreeMap::from([("web".to_owned(), sample_instances("web", n, 5000))])
    }

    const TEMPLATE: &str = "backend web\n    balance roundrobin\n{{- range service \"web\" }}\n    server {{ .ID }} {{ .Address }}:{{ .Port }} check\n{{- else }}\n    # none\n{{- end }}\n";

    #[test]
    fn renders_each_instance() {
        assert_eq!(
            render(TEMPLATE, &services(2)).unwrap(),
            "backend web\n    balance roundrobin\n    server registrator:hits-web-1:5000 172.18.0.11:5000 check\n    server registrator:hits-web-2:5000 172.18.0.12:5000 check\n"
        );
    }

    #[test]
    fn renders_else_when_there_is_none() {
        assert_eq!(
            render(TEMPLATE, &services(0)).unwrap(),
            "backend web\n    balance roundrobin\n    # none\n"
        );
    }

    #[test]
    fn trims_like_go() {
        let t = "a  {{- /* c */ -}}  b {{ range service \"web\" -}}\n x{{ .Port }}\n{{ end }}";
        assert_eq!(render(t, &services(1)).unwrap(), "ab x5000\n");
    }

    #[test]
    fn quoted_braces_do_not_close_an_action() {
        let t = "{{ range service \"a}}b\" }}x{{ else }}none{{ end }}";
        assert_eq!(render(t, &services(1)).unwrap(), "none");
    }

    #[test]
    fn refuses_what_it_does_not_implement() {
        for t in [
            "{{ key \"x\" }}",
            "{{ range services }}{{ end }}",
            "{{ .Tags }}",
            "{{ range service \"web\" }}",
            "{{ end }}",
            "{{ .ID }}",
            "{{ oops",
        ] {
            assert!(render(t, &services(1)).is_err(), "{t:?} should be refused");
        }
    }
}
