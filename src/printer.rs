//! Printer on stderr: an indicatif spinner on a terminal, plain lines otherwise, nothing with
//! `--quiet`. stdout stays for results, so piping a command's output never captures progress.

use std::cell::RefCell;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Quiet,
    Plain,
    Terminal,
}

/// Where and how progress is shown; decided once per command.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    mode: Mode,
}

impl Printer {
    /// A spinner when stderr is a terminal, plain lines when it is not, nothing when `quiet`.
    pub fn detect(quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Terminal
        } else {
            Mode::Plain
        };
        Printer { mode }
    }

    pub fn quiet() -> Self {
        Printer { mode: Mode::Quiet }
    }

    /// Whether nothing is shown (`--quiet`): work done only to say something can be skipped.
    pub fn is_silent(&self) -> bool {
        self.mode == Mode::Quiet
    }

    /// A log line on stderr (hidden with --quiet).
    pub fn note(&self, message: impl AsRef<str>) {
        if self.mode != Mode::Quiet {
            eprintln!("{}", message.as_ref());
        }
    }

    /// Starts a step: a spinner with `summary` on a terminal, a `summary...` line otherwise.
    pub fn step(&self, summary: &str) -> Step {
        let bar = match self.mode {
            Mode::Terminal => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                // No colours: the house style honours NO_COLOR by never needing it.
                let style =
                    ProgressStyle::with_template("{spinner} {prefix} ({elapsed}) {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner());
                bar.set_style(style);
                bar.set_prefix(summary.to_owned());
                bar.enable_steady_tick(Duration::from_millis(120));
                Some(bar)
            }
            Mode::Plain => {
                eprintln!("{summary}...");
                None
            }
            Mode::Quiet => None,
        };
        Step {
            bar,
            mode: self.mode,
            summary: summary.to_owned(),
            started: Instant::now(),
            last_status: RefCell::new(String::new()),
        }
    }
}

/// One step in progress. Dropping it without `finish` or `fail` clears the spinner.
#[derive(Debug)]
pub struct Step {
    bar: Option<ProgressBar>,
    mode: Mode,
    summary: String,
    started: Instant,
    /// Plain mode prints a status only when it changes, so a long wait stays readable.
    last_status: RefCell<String>,
}

impl Step {
    /// The latest line of a tool's output, shown beside the spinner (terminal only).
    pub fn output_line(&self, line: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(line.trim().to_owned());
        }
    }

    /// A short status shown beside the spinner, or as its own line when not on a terminal.
    pub fn status(&self, message: &str) {
        match (&self.bar, self.mode) {
            (Some(bar), _) => bar.set_message(message.to_owned()),
            (None, Mode::Plain) => {
                let mut last = self.last_status.borrow_mut();
                if *last != message {
                    eprintln!(
                        "  {message} ({:.1} s)",
                        self.started.elapsed().as_secs_f64()
                    );
                    message.clone_into(&mut last);
                }
            }
            _ => {}
        }
    }

    pub fn finish(self) {
        self.end("done");
    }

    pub fn fail(self) {
        self.end("failed");
    }

    fn end(mut self, outcome: &str) {
        let line = format!(
            "{}: {outcome} after {:.1} s",
            self.summary,
            self.started.elapsed().as_secs_f64()
        );
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            eprintln!("{line}");
        } else if self.mode == Mode::Plain {
            eprintln!("{line}");
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
