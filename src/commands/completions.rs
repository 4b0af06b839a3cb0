//! `provision completions SHELL` and `provision man`: generated from the clap definitions, so
//! they can never drift from the real command line.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, Shell};
use crate::ExitStatus;

pub fn completions(args: CompletionsArgs) -> anyhow::Result<ExitStatus> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "provision", &mut out);
    print_all(&out)
}

pub fn man() -> anyhow::Result<ExitStatus> {
    let mut out = Vec::new();
    render_man(&mut out)?;
    print_all(&out)
}

/// Writes to stdout; a reader that stops early (`| head`) is not an error.
fn print_all(bytes: &[u8]) -> anyhow::Result<ExitStatus> {
    match std::io::stdout().write_all(bytes) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(ExitStatus::Success),
    }
}

/// The manual page: the main command, then a section per subcommand.
fn render_man(out: &mut Vec<u8>) -> std::io::Result<()> {
    let command = Cli::command();
    clap_mangen::Man::new(command.clone()).render(out)?;
    // clap wants a static name; the page is printed once per process, so leaking is harmless.
    for sub in command.get_subcommands() {
        let name: &'static str = format!("provision-{}", sub.get_name()).leak();
        let man = clap_mangen::Man::new(sub.clone().name(name));
        man.render_title(out)?;
        man.render_description_section(out)?;
        man.render_options_section(out)?;
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
            clap_complete::generate(shell, &mut Cli::command(), "provision", &mut out);
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
    fn the_man_page_names_every_subcommand() {
        let mut out = Vec::new();
        render_man(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(".ie"), "not roff: {}", &text[..40]);
        for sub in Cli::command().get_subcommands() {
            assert!(
                text.contains(&format!("provision\\-{}", sub.get_name())),
                "no section for {}",
                sub.get_name()
            );
        }
        assert!(text.contains("\\-\\-scale"), "verify's options are missing");
    }
}
