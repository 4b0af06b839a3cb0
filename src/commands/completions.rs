//! `provision completions SHELL` and `provision man [--dir DIR]`: generated from the clap
//! definitions (`cli::command()`), so they can never drift from the real command line.
//!
//! The man pages are clap_mangen's sections plus three of ours, from the same tables `--help`
//! shows: EXAMPLES (a subcommand's `after_help`), EXIT STATUS and ENVIRONMENT.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use roff::{bold, roman, Roff};

use crate::cli::{self, CompletionsArgs, ManArgs, Shell};
use crate::printer::Printer;
use crate::ExitStatus;

pub fn completions(printer: &Printer, args: CompletionsArgs) -> anyhow::Result<ExitStatus> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cli::command(), "provision", &mut out);
    printer.stdout().write_all(&out)?;
    Ok(ExitStatus::Success)
}

pub fn man(printer: &Printer, args: ManArgs) -> anyhow::Result<ExitStatus> {
    let Some(dir) = args.dir else {
        let mut out = Vec::new();
        render_page(&cli::command(), None, &mut out)?;
        printer.stdout().write_all(&out)?;
        return Ok(ExitStatus::Success);
    };
    if !dir.is_dir() {
        return Err(crate::UsageError(format!(
            "--dir {}: no such directory (create it first)",
            dir.display()
        ))
        .into());
    }
    let pages = write_pages(&dir)?;
    printer
        .stdout()
        .line(format!("wrote {} man pages to {}", pages, dir.display()))?;
    Ok(ExitStatus::Success)
}

/// Writes provision.1 and provision-<sub>.1 for every subcommand; returns how many.
fn write_pages(dir: &Path) -> anyhow::Result<usize> {
    let root = cli::command();
    let mut pages = vec![("provision".to_owned(), root.clone(), None)];
    for sub in root.get_subcommands() {
        let name = format!("provision-{}", sub.get_name());
        pages.push((name, sub.clone(), Some(&root)));
    }
    for (name, command, parent) in &pages {
        // clap wants a static name; a handful of pages per process, so leaking is harmless.
        let named: &'static str = name.clone().leak();
        let command = command.clone().name(named).bin_name(name.replace('-', " "));
        let mut out = Vec::new();
        render_page(&command, *parent, &mut out)?;
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(pages.len())
}

/// One page: clap_mangen's sections, then EXAMPLES, EXIT STATUS, ENVIRONMENT and SEE ALSO.
fn render_page(
    command: &clap::Command,
    parent: Option<&clap::Command>,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    // The examples are rendered below as their own section, not as clap_mangen's EXTRA.
    let examples = command.get_after_help().map(|h| h.to_string());
    let bare = command.clone().after_help("").after_long_help("");
    let man = clap_mangen::Man::new(bare.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    if bare.has_subcommands() {
        man.render_subcommands_section(out)?;
    }

    let mut roff = Roff::new();
    if let Some(examples) = examples {
        // The root's after_help also holds the two tables: its examples end at the first
        // blank line.
        let (title, body) = examples.split_once('\n').unwrap_or(("Examples:", ""));
        let body = body.split("\n\n").next().unwrap_or("");
        roff.control("SH", [title.trim_end_matches(':').to_uppercase().as_str()]);
        roff.control("nf", [] as [&str; 0]);
        for line in body.lines() {
            roff.text([roman(line.trim_start())]);
        }
        roff.control("fi", [] as [&str; 0]);
    }
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in cli::EXIT_CODES {
        roff.control("TP", [] as [&str; 0]);
        roff.text([bold(code.to_string())]);
        roff.text([roman(*meaning)]);
    }
    roff.control("SH", ["ENVIRONMENT"]);
    for (name, meaning) in cli::ENVIRONMENT {
        roff.control("TP", [] as [&str; 0]);
        roff.text([bold(*name)]);
        roff.text([roman(*meaning)]);
    }
    roff.control("SH", ["SEE ALSO"]);
    let see_also: Vec<String> = match parent {
        Some(_) => vec!["provision(1)".to_owned()],
        None => bare
            .get_subcommands()
            .map(|s| format!("provision-{}(1)", s.get_name()))
            .collect(),
    };
    roff.text([roman(see_also.join(", "))]);
    roff.to_writer(out)?;
    // Subcommands get their version only when clap builds the tree: the root's page says it.
    if parent.is_none() {
        man.render_version_section(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_gets_a_script_that_knows_the_subcommands() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cli::command(), "provision", &mut out);
            let text = String::from_utf8(out).unwrap();
            // fish names long options without their dashes.
            let scale = match shell {
                clap_complete::Shell::Fish => "-l scale",
                _ => "--scale",
            };
            assert!(text.contains("verify") && text.contains(scale), "{shell}");
        }
    }

    #[test]
    fn the_main_page_lists_every_subcommand_page_and_the_exit_codes() {
        let mut out = Vec::new();
        render_page(&cli::command(), None, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(".ie"), "not roff: {}", &text[..40]);
        for sub in cli::command().get_subcommands() {
            assert!(
                text.contains(&format!("provision\\-{}(1)", sub.get_name())),
                "no reference to the page of {}",
                sub.get_name()
            );
        }
        for section in ["EXAMPLES", "EXIT STATUS", "ENVIRONMENT", "SEE ALSO"] {
            assert!(
                text.contains(&format!(".SH {section}"))
                    || text.contains(&format!(".SH \"{section}\"")),
                "no {section}"
            );
        }
        assert!(text.contains("NO_COLOR"), "{text}");
    }

    #[test]
    fn man_dir_writes_one_page_per_subcommand_with_its_options_and_examples() {
        let dir = tempfile::tempdir().unwrap();
        let pages = write_pages(dir.path()).unwrap();
        assert_eq!(pages, 1 + cli::command().get_subcommands().count());
        let verify = std::fs::read_to_string(dir.path().join("provision-verify.1")).unwrap();
        assert!(
            verify.contains("\\-\\-scale"),
            "verify's options are missing"
        );
        assert!(verify.contains(".SH EXAMPLES"), "{verify}");
        assert!(
            verify.contains("provision verify \\-\\-scale 5"),
            "{verify}"
        );
        assert!(verify.contains("EXIT STATUS"), "{verify}");
        let completions =
            std::fs::read_to_string(dir.path().join("provision-completions.1")).unwrap();
        assert!(completions.contains(".SH INSTALL"), "{completions}");
    }
}
