//! The one output layer (uv's `printer.rs` model): built once in `lib::run` from the global flags
//! and passed to every command. Results go to [`Printer::stdout`]; progress and notes go to stderr
//! through [`Printer::note`], [`Printer::step`] and [`Printer::stderr`].
//!
//! - `--quiet` hides everything on stderr except the final `error:` line, and asks commands to
//!   print their result only (a summary line and what failed, never the details of what is fine).
//! - Progress is an indicatif spinner when stderr is a terminal, plain lines otherwise.
//! - Colour (PASS, FAIL, warn, `error:`) only where the stream is a terminal and `NO_COLOR` is
//!   unset; anstream decides, the same rule clap uses for its own messages.
//! - Writing to stdout returns `io::Result`: a reader that went away (`provision status | head -1`)
//!   surfaces as `BrokenPipe`, which `main` turns into a quiet exit 0 (see [`is_closed_pipe`]).
//!   Writing to stderr never fails a command: a closed stderr loses the progress, not the work.
//!
//! This is the only module allowed to print (clippy's `print_stdout`/`print_stderr` lints are on
//! everywhere else, see Cargo.toml's `[lints]`).

use std::cell::RefCell;
use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use anstyle::{AnsiColor, Style};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// `--quiet`: nothing.
    Hidden,
    /// Not a terminal: one line per step and status change.
    Plain,
    /// A spinner.
    Spinner,
}

/// Where and how output is shown; decided once per process, in `lib::run`.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    progress: Progress,
    quiet: bool,
    stdout_colour: bool,
    stderr_colour: bool,
}

impl Printer {
    /// Detects the terminals: a spinner when stderr is one, colour where the stream is one and
    /// `NO_COLOR` is unset; `quiet` hides progress and notes.
    pub fn detect(quiet: bool) -> Self {
        let progress = if quiet {
            Progress::Hidden
        } else if io::stderr().is_terminal() {
            Progress::Spinner
        } else {
            Progress::Plain
        };
        Printer {
            progress,
            quiet,
            stdout_colour: colour_on(&io::stdout()),
            stderr_colour: colour_on(&io::stderr()),
        }
    }

    /// Shows nothing on stderr and never colours: for tests and for work done on the side.
    pub fn quiet() -> Self {
        Printer {
            progress: Progress::Hidden,
            quiet: true,
            stdout_colour: false,
            stderr_colour: false,
        }
    }

    /// `--quiet`: commands print their result only (and work done only to say something can
    /// be skipped).
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// The sink for results. Write errors are real: `?` them, so a closed pipe ends the command.
    pub fn stdout(&self) -> Stdout {
        Stdout {
            inner: io::stdout().lock(),
        }
    }

    /// The sink for progress and notes on stderr: hidden with `--quiet`, and never an error.
    pub fn stderr(&self) -> Stderr {
        Stderr { shown: !self.quiet }
    }

    /// A log line on stderr (hidden with `--quiet`).
    pub fn note(&self, message: impl AsRef<str>) {
        if !self.quiet {
            stderr_line(message.as_ref());
        }
    }

    /// Why a command fails (exit 1) after printing its report: `error: {message}` on stderr,
    /// shown even with `--quiet`, like any error.
    pub fn failure(&self, message: &str) {
        stderr_line(&format!(
            "{} {message}",
            self.stderr_palette().error("error:")
        ));
    }

    /// Colours for text bound for stdout (none on a pipe or under `NO_COLOR`).
    pub fn palette(&self) -> Palette {
        Palette {
            on: self.stdout_colour,
        }
    }

    /// Colours for text bound for stderr (the final `error:` line).
    pub fn stderr_palette(&self) -> Palette {
        Palette {
            on: self.stderr_colour,
        }
    }

    /// Starts a step: a spinner with `summary` on a terminal, a `summary...` line otherwise.
    pub fn step(&self, summary: &str) -> Step {
        let bar = match self.progress {
            Progress::Spinner => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                let style =
                    ProgressStyle::with_template("{spinner} {prefix} ({elapsed}) {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner());
                bar.set_style(style);
                bar.set_prefix(summary.to_owned());
                bar.enable_steady_tick(Duration::from_millis(120));
                Some(bar)
            }
            Progress::Plain => {
                stderr_line(&format!("{summary}..."));
                None
            }
            Progress::Hidden => None,
        };
        Step {
            bar,
            progress: self.progress,
            summary: summary.to_owned(),
            started: Instant::now(),
            last_status: RefCell::new(String::new()),
        }
    }
}

/// Whether anstream would keep colour on `stream` (terminal, `NO_COLOR`, `CLICOLOR_FORCE`).
fn colour_on<S: anstream::stream::RawStream>(stream: &S) -> bool {
    anstream::AutoStream::choice(stream) != anstream::ColorChoice::Never
}

/// One line on stderr; a closed stderr is ignored (it only carries progress).
fn stderr_line(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// Writes `error: {message}` on stderr, `error:` in red on a terminal. For `main` only.
pub fn error_line(message: &str) {
    Printer::detect(false).failure(message);
}

/// Whether `err` comes from writing to a reader that went away (`| head`): not a failure.
pub fn is_closed_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// stdout, locked for one command's result.
pub struct Stdout {
    inner: io::StdoutLock<'static>,
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Stdout {
    /// Writes all of `text` and flushes, so a closed pipe shows up here and not at exit.
    pub fn text(mut self, text: &str) -> io::Result<()> {
        self.inner.write_all(text.as_bytes())?;
        self.inner.flush()
    }

    /// Writes `line` and a newline.
    pub fn line(self, line: impl AsRef<str>) -> io::Result<()> {
        self.text(&format!("{}\n", line.as_ref()))
    }
}

/// stderr for progress and notes: silent with `--quiet`; write errors are swallowed.
pub struct Stderr {
    shown: bool,
}

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.shown {
            let _ = io::stderr().write_all(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

/// The few colours provision uses: PASS/ok green, FAIL/`error:` red, warn/SKIP yellow. No
/// colour codes ever go into error messages or JSON; only text printed by a command.
#[derive(Debug, Clone, Copy, Default)]
pub struct Palette {
    on: bool,
}

impl Palette {
    /// No colour at all: what tests, files and pipes get.
    pub fn plain() -> Self {
        Palette { on: false }
    }

    pub fn pass(&self, text: &str) -> String {
        self.paint(AnsiColor::Green.on_default(), text)
    }

    pub fn fail(&self, text: &str) -> String {
        self.paint(AnsiColor::Red.on_default().bold(), text)
    }

    pub fn warn(&self, text: &str) -> String {
        self.paint(AnsiColor::Yellow.on_default(), text)
    }

    pub fn error(&self, text: &str) -> String {
        self.paint(AnsiColor::Red.on_default().bold(), text)
    }

    fn paint(&self, style: Style, text: &str) -> String {
        if self.on {
            format!("{style}{text}{style:#}")
        } else {
            text.to_owned()
        }
    }
}

/// One step in progress. Dropping it without `finish` or `fail` clears the spinner.
#[derive(Debug)]
pub struct Step {
    bar: Option<ProgressBar>,
    progress: Progress,
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
        match (&self.bar, self.progress) {
            (Some(bar), _) => bar.set_message(message.to_owned()),
            (None, Progress::Plain) => {
                let mut last = self.last_status.borrow_mut();
                if *last != message {
                    stderr_line(&format!(
                        "  {message} ({:.1} s)",
                        self.started.elapsed().as_secs_f64()
                    ));
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
            stderr_line(&line);
        } else if self.progress == Progress::Plain {
            stderr_line(&line);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_palette_adds_nothing_and_a_coloured_one_resets() {
        assert_eq!(Palette::plain().fail("FAIL"), "FAIL");
        let red = Palette { on: true }.fail("FAIL");
        assert!(red.starts_with("\u{1b}[") && red.contains("FAIL") && red.ends_with("\u{1b}[0m"));
    }

    #[test]
    fn a_broken_pipe_anywhere_in_the_chain_is_a_closed_pipe() {
        let err = anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe))
            .context("printing the status");
        assert!(is_closed_pipe(&err));
        let other = anyhow::Error::from(io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(!is_closed_pipe(&other));
    }
}
