//! `provision init`'s questions. Each answer is checked as it is typed, by loading the spec that
//! the answers so far would write (the spec's own rules, so an answer accepted here is never
//! refused at the end); a refused answer is asked again with the reason. The range a number may
//! take is part of its question.
//!
//! Ctrl-C leaves the terminal as it was found: dialoguer hides the cursor while a menu is open
//! and, on Ctrl-C, console raises SIGINT (console `src/unix_term.rs`, `read_single_key`), whose
//! default action would end the process with the cursor still hidden.

use std::io;

use dialoguer::{Input, Select};

use super::Answers;
use crate::spec::model::{Discovery, LoadBalancer};
use crate::spec::number::WholeNumber;
use crate::spec::rules;

/// The exit status of a command interrupted by Ctrl-C, as a shell reports it (128 + SIGINT).
const INTERRUPTED: i32 = 130;

/// Asks every question, starting from `defaults`; `check` is the spec's verdict on a set of
/// answers (the first problem's message, if any).
pub fn ask(
    defaults: Answers,
    check: &dyn Fn(&Answers) -> Result<(), String>,
) -> anyhow::Result<Answers> {
    // A second handler cannot be installed; only tests would ask twice in one process.
    let _ = ctrlc::set_handler(|| leave_interrupted());
    let mut answers = defaults;

    answers.project = interrupted_is_exit(
        Input::<String>::new()
            .with_prompt("Project name (lowercase letters, digits, `-` and `_`)")
            .default(answers.project.clone())
            .validate_with(|typed: &String| -> Result<(), String> {
                rules::project_name(typed.trim())?;
                check(&Answers {
                    project: typed.trim().to_owned(),
                    ..answers.clone()
                })
            })
            .interact_text(),
    )?
    .trim()
    .to_owned();

    let modes = [
        Discovery::ConsulTemplate,
        Discovery::ConsulDns,
        Discovery::DockerDns,
    ];
    let labels = [
        "consul-template  registrator + consul-template render haproxy.cfg (the reference system)",
        "consul-dns       replicas register themselves in consul; HAProxy reads consul's DNS",
        "docker-dns       HAProxy reads Docker's DNS; no consul",
    ];
    let chosen = interrupted_is_exit(
        Select::new()
            .with_prompt("Service discovery (arrow keys, then Enter)")
            .items(labels)
            .default(
                modes
                    .iter()
                    .position(|m| *m == answers.discovery)
                    .unwrap_or(0),
            )
            .interact(),
    )?;
    answers.discovery = modes[chosen];

    // init writes no lb.max_replicas, so the default bounds the replicas.
    let replicas = rules::replicas(LoadBalancer::default().max_replicas);
    answers.replicas = ask_number(
        &format!(
            "Web replicas to start with ({} to {})",
            replicas.min, replicas.max
        ),
        replicas,
        answers.replicas.into(),
        |n| {
            check(&Answers {
                replicas: u32::try_from(n).unwrap_or(u32::MAX),
                ..answers.clone()
            })
        },
    )?
    .try_into()?;

    let port = WholeNumber::PORT;
    answers.lb_port = ask_number(
        &format!(
            "Host port of the load balancer ({} to {})",
            port.min, port.max
        ),
        port,
        answers.lb_port.into(),
        |n| {
            check(&Answers {
                lb_port: u16::try_from(n).unwrap_or(0),
                ..answers.clone()
            })
        },
    )?
    .try_into()?;
    Ok(answers)
}

/// Asks for a whole number: typed as text, so that `abc` gets the range rather than a parser's
/// words, then checked against the spec.
fn ask_number(
    prompt: &str,
    kind: WholeNumber,
    default: u64,
    check: impl Fn(u64) -> Result<(), String>,
) -> anyhow::Result<u64> {
    let typed = interrupted_is_exit(
        Input::<String>::new()
            .with_prompt(prompt)
            .default(default.to_string())
            .validate_with(|typed: &String| -> Result<(), String> { check(kind.parse(typed)?) })
            .interact_text(),
    )?;
    kind.parse(&typed).map_err(anyhow::Error::msg)
}

/// A prompt's result, where Ctrl-C (which console reports as an interrupted read after raising
/// SIGINT) ends the process the way the signal handler does.
fn interrupted_is_exit<T>(result: dialoguer::Result<T>) -> anyhow::Result<T> {
    match result {
        Ok(value) => Ok(value),
        Err(dialoguer::Error::IO(err)) if err.kind() == io::ErrorKind::Interrupted => {
            leave_interrupted()
        }
        Err(err) => Err(anyhow::Error::new(err).context("asking init's questions")),
    }
}

/// Shows the cursor again, ends the half-drawn line, and exits as an interrupted command does.
/// Nothing has been written at this point: the spec is written after the last answer.
fn leave_interrupted() -> ! {
    let term = console::Term::stderr();
    let _ = term.show_cursor();
    let _ = term.write_line("");
    std::process::exit(INTERRUPTED)
}
