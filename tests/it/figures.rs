//! Every figure README.md, bench/README.md and docs/ state names where it comes from, so that the
//! rule holds as the text grows.
//!
//! A figure is a number with a unit (`ms`, `s`, `req/s`, `%`, `MB`, `MiB`, `KiB`, `GB`, `bytes`)
//! in prose: outside fenced code blocks and inline code. Each paragraph, list item or table row
//! that states one must carry a source on the same unit of text:
//!
//! - a measurement: a footnote `[^run-…]` whose definition names a run file
//!   `bench/runs/YYYY-MM-DD-….md` that exists, or a link to such a file;
//! - a setting (a value the blueprints or code choose, not a measurement): a footnote `[^set-…]`
//!   whose definition names an existing file of the repository in backticks.
//!
//! Sample output and command lines sit in code blocks; they are not figures of the text.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::harness::repo_root;

const UNITS: &[&str] = &[
    "req/s", "ms", "s", "%", "MB", "MiB", "KiB", "KB", "GB", "GiB", "bytes",
];

/// The figures (number and unit) in `text`, which must already be free of code.
fn figures(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts_number = chars[i].is_ascii_digit()
            && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '.'));
        if !starts_number {
            i += 1;
            continue;
        }
        let mut end = i;
        while end < chars.len()
            && (chars[end].is_ascii_digit()
                || (matches!(chars[end], '.' | ',')
                    && chars.get(end + 1).is_some_and(char::is_ascii_digit)))
        {
            end += 1;
        }
        let mut unit_at = end;
        let spaced = chars.get(unit_at) == Some(&' ');
        if spaced {
            unit_at += 1;
        }
        let rest: String = chars[unit_at..].iter().take(8).collect();
        let unit = UNITS.iter().find(|unit| {
            // A bare `s` after a number is a plural ("503s") unless spaced as a unit ("5 s").
            (spaced || **unit != "s")
                && rest.starts_with(*unit)
                && rest[unit.len()..]
                    .chars()
                    .next()
                    .is_none_or(|c| !c.is_alphanumeric() && c != '/')
        });
        if let Some(unit) = unit {
            let number: String = chars[i..end].iter().collect();
            found.push(format!("{number} {unit}"));
        }
        i = end.max(i + 1);
    }
    found
}

/// `line` without its inline code spans.
fn without_code(line: &str) -> String {
    line.split('`').step_by(2).collect::<Vec<_>>().join(" ")
}

/// The units of prose of a Markdown text, each with its first line number: paragraphs, list
/// items and table rows; code blocks and footnote definitions left out.
fn prose_units(text: &str) -> Vec<(usize, String)> {
    let mut units: Vec<(usize, String)> = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let mut in_fence = false;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            in_fence = !in_fence;
            units.extend(current.take());
            continue;
        }
        if in_fence || trimmed.starts_with("<!--") {
            continue;
        }
        let starts_unit = trimmed.is_empty()
            || trimmed.starts_with('|')
            || trimmed.starts_with('#')
            || trimmed.starts_with("- ")
            || trimmed.starts_with("* ")
            || trimmed.starts_with("[^")
            || trimmed.split_once(". ").is_some_and(|(n, _)| {
                !n.is_empty() && n.len() <= 2 && n.chars().all(|c| c.is_ascii_digit())
            });
        if starts_unit {
            units.extend(current.take());
        }
        if trimmed.is_empty() || trimmed.starts_with("[^") && trimmed.contains("]:") {
            continue;
        }
        match &mut current {
            Some((_, unit)) => {
                unit.push('\n');
                unit.push_str(line);
            }
            None => current = Some((n + 1, line.to_owned())),
        }
        if trimmed.starts_with('|') || trimmed.starts_with('#') {
            units.extend(current.take());
        }
    }
    units.extend(current);
    units
}

/// The footnote definitions of `text`: name (without `[^`) → definition.
fn footnotes(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix("[^")?;
            let (name, definition) = rest.split_once("]:")?;
            Some((name.to_owned(), definition.trim().to_owned()))
        })
        .collect()
}

/// The `bench/runs/….md` paths named in `text`.
fn run_files(text: &str) -> Vec<String> {
    text.match_indices("bench/runs/")
        .filter_map(|(at, _)| {
            let tail = &text[at..];
            let end = tail.find(".md")? + 3;
            Some(tail[..end].to_owned())
        })
        .collect()
}

/// Why `unit` has no valid source, or None when it has one.
fn unsourced(unit: &str, notes: &BTreeMap<String, String>, root: &Path) -> Option<String> {
    let code_free = without_code(unit);
    let figures = figures(&code_free);
    if figures.is_empty() {
        return None;
    }
    let run_exists = |name: &str| {
        let file = name.rsplit('/').next().unwrap_or_default();
        file.len() > 11
            && file[..10].chars().filter(|c| *c == '-').count() == 2
            && root.join(name).is_file()
    };
    if run_files(unit).iter().any(|f| run_exists(f)) {
        return None;
    }
    for reference in unit.match_indices("[^").map(|(at, _)| &unit[at + 2..]) {
        let Some(name) = reference.split(']').next() else {
            continue;
        };
        let Some(definition) = notes.get(name) else {
            return Some(format!("the footnote [^{name}] is not defined"));
        };
        if name.starts_with("run-") && run_files(definition).iter().any(|f| run_exists(f)) {
            return None;
        }
        if name.starts_with("set-")
            && definition
                .split('`')
                .skip(1)
                .step_by(2)
                .any(|path| path.contains('/') && root.join(path).exists())
        {
            return None;
        }
    }
    Some(format!(
        "{} without a source ([^run-…] naming bench/runs/YYYY-MM-DD-….md, or [^set-…] naming the file that sets it)",
        figures.join(", ")
    ))
}

/// Every unsourced figure in the Markdown file `rel`, as `rel:line: why`.
fn problems_in(rel: &str, text: &str, root: &Path) -> Vec<String> {
    let notes = footnotes(text);
    prose_units(text)
        .into_iter()
        .filter_map(|(line, unit)| {
            unsourced(&unit, &notes, root).map(|why| format!("{rel}:{line}: {why}\n    {unit}"))
        })
        .collect()
}

#[test]
fn every_figure_in_the_docs_names_its_source() {
    let root = repo_root();
    let mut files = vec!["README.md".to_owned(), "bench/README.md".to_owned()];
    if let Ok(entries) = std::fs::read_dir(root.join("docs")) {
        for entry in entries {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".md") {
                files.push(format!("docs/{name}"));
            }
        }
    }
    let mut problems = Vec::new();
    for rel in &files {
        let text = std::fs::read_to_string(root.join(rel)).unwrap();
        problems.extend(problems_in(rel, &text, &root));
    }
    assert!(
        problems.is_empty(),
        "{} figures without a source:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_figure_check_finds_what_it_must() {
    assert_eq!(
        figures("took 2.2 s, p99 48.0 ms at 50 req/s; 5% of a core; 32767 bytes; 1,500 MB"),
        [
            "2.2 s",
            "48.0 ms",
            "50 req/s",
            "5 %",
            "32767 bytes",
            "1,500 MB"
        ]
    );
    assert_eq!(
        figures("HAProxy 2.6, Python 3.13, 24 nodes, 2 services, v2 s, 3 seconds, fast 503s"),
        Vec::<String>::new()
    );
    let root = repo_root();
    let none = BTreeMap::new();
    assert!(unsourced("apply took 3.1 s", &none, &root).is_some());
    assert!(unsourced("apply took `3.1 s`", &none, &root).is_none());
    assert!(
        unsourced(
            "apply took 3.1 s (bench/runs/1999-01-01-none.md)",
            &none,
            &root
        )
        .is_some(),
        "a run file that does not exist"
    );
    assert!(unsourced("apply took 3.1 s[^run-x]", &none, &root).is_some());
    let notes = BTreeMap::from([(
        "set-health".to_owned(),
        "set in `blueprints/stack.yaml.j2`".to_owned(),
    )]);
    assert!(unsourced("every 5 s[^set-health]", &notes, &root).is_none());
    let text = "A paragraph without figures.\n\n- an item: 3 s\n- another: fine\n\n\
                | a | 4 ms |\n\n```text\n9 s in a code block\n```\n";
    let problems = problems_in("x.md", text, &root);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].starts_with("x.md:3: 3 s without a source"));
    assert!(problems[1].starts_with("x.md:6: 4 ms without a source"));
}
