//! The one place that runs `docker` and `docker compose` (through duct), and the preflight.
//!
//! Every call carries a human summary ("building images") that becomes the progress line and the
//! start of the error message; stderr is captured and put in the error, so a failure explains
//! itself without re-running anything. A missing binary becomes "docker is not installed or not on
//! PATH". Calls that change something are marked, so that `--dry-run` prints them instead.

mod compose;
mod containers;
pub mod preflight;

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader};
use std::time::Duration;

use anyhow::Context;

pub use compose::{parse_ps, Compose, ComposeConfig, ConfigService, PsEntry, UpOptions};
pub use containers::{
    of_service, parse_inspect, with_secrets, without_secrets, Container, CONFIG_LABEL,
    RESTART_KEY_LABEL,
};

use crate::printer::Printer;
use crate::ToolError;

/// How many trailing lines of a failed command's output go into the error message.
const ERROR_TAIL_LINES: usize = 25;

/// Runs docker. Cheap to create; holds the progress display and the dry-run switch.
#[derive(Debug, Clone)]
pub struct Docker {
    program: OsString,
    dry_run: bool,
    printer: Printer,
}

impl Docker {
    /// `docker` from PATH.
    pub fn new(printer: Printer) -> Self {
        Docker {
            program: "docker".into(),
            dry_run: false,
            printer,
        }
    }

    /// Calls marked with [`Call::changes_state`] are printed on stdout instead of run.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    pub fn printer(&self) -> &Printer {
        &self.printer
    }

    /// A docker invocation: `summary` says what it is for, in words a user understands.
    pub fn call<I, S>(&self, summary: impl Into<String>, args: I) -> Call<'_>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Call {
            docker: self,
            summary: summary.into(),
            args: args.into_iter().map(Into::into).collect(),
            changes_state: false,
            timeout: None,
            stdin: None,
            env: Vec::new(),
        }
    }

    /// Which of `images` (references) are present locally, in order.
    pub fn images_present(&self, images: &[String]) -> anyhow::Result<Vec<bool>> {
        Ok(self
            .image_ids(images)?
            .into_iter()
            .map(|id| id.is_some())
            .collect())
    }

    /// The image ID of each of `images` (references), in order; None for one that is not
    /// present. One `docker image inspect` for all: it prints the IDs of the images it found
    /// and names the missing ones on stderr.
    pub fn image_ids(&self, images: &[String]) -> anyhow::Result<Vec<Option<String>>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec!["image", "inspect", "--format", "{{.Id}}"];
        args.extend(images.iter().map(String::as_str));
        let out = self
            .call("looking for images", args)
            .timeout(Duration::from_secs(20))
            .output_unchecked()?;
        let missing = if out.success {
            Vec::new()
        } else {
            missing_images(&out.stderr, images).ok_or_else(|| {
                failure(
                    "looking for images",
                    "docker image inspect ...",
                    &out.stderr,
                    &out.stdout,
                )
            })?
        };
        let mut ids = out.stdout.lines().map(|l| l.trim().to_owned());
        Ok(images
            .iter()
            .map(|i| {
                if missing.contains(i) {
                    None
                } else {
                    ids.next()
                }
            })
            .collect())
    }

    /// The layers (`RootFS.Layers`, diff IDs) of each of `images`, in order; None for one that
    /// is not present. An image built FROM another starts with that image's layers.
    pub fn image_layers(&self, images: &[String]) -> anyhow::Result<Vec<Option<Vec<String>>>> {
        let ids = self.image_ids(images)?;
        let mut found = Vec::with_capacity(images.len());
        for (image, id) in images.iter().zip(ids) {
            let Some(id) = id else {
                found.push(None);
                continue;
            };
            let json = self
                .call(
                    format!("reading the layers of {image}"),
                    [
                        "image",
                        "inspect",
                        "--format",
                        "{{json .RootFS.Layers}}",
                        id.as_str(),
                    ],
                )
                .timeout(Duration::from_secs(20))
                .output()?;
            let layers: Vec<String> = serde_json::from_str(json.trim())
                .with_context(|| format!("reading the layers of {image}: {json}"))?;
            found.push(Some(layers));
        }
        Ok(found)
    }

    /// Every container of a Compose project (running or not), oldest first within a service.
    pub fn project_containers(&self, project: &str) -> anyhow::Result<Vec<Container>> {
        let label = format!("label=com.docker.compose.project={project}");
        let ids = self
            .call(
                format!("listing the containers of project {project}"),
                [
                    "ps",
                    "--all",
                    "--quiet",
                    "--no-trunc",
                    "--filter",
                    label.as_str(),
                ],
            )
            .timeout(Duration::from_secs(30))
            .output()?;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec!["inspect"];
        args.extend(&ids);
        let json = self
            .call(
                format!("inspecting the containers of project {project}"),
                args,
            )
            .timeout(Duration::from_secs(30))
            .output_unchecked()?;
        // A container removed between `ps` and `inspect` makes inspect fail for that one id
        // only; it still prints the others.
        let mut containers = parse_inspect(&json.stdout)
            .with_context(|| format!("reading `docker inspect` output for project {project}"))?;
        containers.retain(|c| c.project == project && !c.oneoff);
        containers.sort_by(|a, b| (&a.service, a.number).cmp(&(&b.service, b.number)));
        Ok(containers)
    }
}

/// One docker invocation being prepared.
#[derive(Debug)]
pub struct Call<'a> {
    docker: &'a Docker,
    summary: String,
    args: Vec<OsString>,
    changes_state: bool,
    timeout: Option<Duration>,
    stdin: Option<Vec<u8>>,
    env: Vec<(OsString, OsString)>,
}

/// What a finished call printed.
#[derive(Debug, Clone)]
pub struct CallOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Call<'_> {
    /// This call changes the engine's state: in a dry run it is printed, not run.
    pub fn changes_state(mut self) -> Self {
        self.changes_state = true;
        self
    }

    /// Kill the command and fail when it runs longer than this.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets an environment variable for this call (shown before the command in a dry run).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// The exact command line, quoted for a POSIX shell.
    pub fn command_line(&self) -> String {
        let env = self
            .env
            .iter()
            .map(|(name, value)| {
                let mut pair = name.clone();
                pair.push("=");
                pair.push(value);
                pair
            })
            .collect::<Vec<_>>();
        env.iter()
            .map(OsString::as_os_str)
            .chain(std::iter::once(self.docker.program.as_os_str()))
            .chain(self.args.iter().map(OsString::as_os_str))
            .map(shell_quote)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs and returns stdout; a non-zero exit is an error carrying stderr.
    pub fn output(self) -> anyhow::Result<String> {
        let summary = self.summary.clone();
        let line = self.command_line();
        let out = self.output_unchecked()?;
        if out.success {
            Ok(out.stdout)
        } else {
            Err(failure(&summary, &line, &out.stderr, &out.stdout))
        }
    }

    /// Runs and returns whatever happened; only a failure to start (or a timeout) is an error.
    pub fn output_unchecked(self) -> anyhow::Result<CallOutput> {
        if self.is_skipped()? {
            return Ok(CallOutput {
                success: true,
                stdout: String::new(),
                stderr: String::new(),
            });
        }
        let line = self.command_line();
        let mut expr = self
            .expression()
            .stdout_capture()
            .stderr_capture()
            .unchecked();
        if let Some(bytes) = &self.stdin {
            expr = expr.stdin_bytes(bytes.clone());
        } else {
            expr = expr.stdin_null();
        }
        let handle = expr.start().map_err(|e| spawn_error(&self.summary, e))?;
        let output = match self.timeout {
            None => handle.wait(),
            Some(limit) => match handle.wait_timeout(limit) {
                Ok(Some(output)) => Ok(output),
                Ok(None) => {
                    let _ = handle.kill();
                    return Err(ToolError(format!(
                        "{} timed out after {} s: `{line}`",
                        self.summary,
                        limit.as_secs()
                    ))
                    .into());
                }
                Err(e) => Err(e),
            },
        }
        .with_context(|| format!("waiting for `{line}`"))?;
        Ok(CallOutput {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs a long command, showing its summary as a progress step and its latest output line
    /// on a terminal; the output's tail goes into the error when it fails.
    pub fn run_with_progress(self) -> anyhow::Result<()> {
        if self.is_skipped()? {
            return Ok(());
        }
        let step = self.docker.printer.step(&self.summary);
        let ran = self.each_line(|text| {
            step.output_line(text);
            Ok(())
        });
        match ran {
            Ok(()) => step.finish(),
            Err(_) => step.fail(),
        }
        ran
    }

    /// Runs, handing `each` every line docker prints (stdout and stderr together, as
    /// `docker service logs` puts a container's stderr on its own) as it comes: for `logs`,
    /// which may follow until interrupted. A non-zero exit is an error carrying the last lines.
    pub fn each_line(self, mut each: impl FnMut(&str) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let line = self.command_line();
        let reader = self
            .expression()
            .stdin_null()
            .stderr_to_stdout()
            .unchecked()
            .reader()
            .map_err(|e| spawn_error(&self.summary, e))?;
        let mut tail: Vec<String> = Vec::new();
        for bytes in BufReader::new(&reader).split(b'\n') {
            let bytes = bytes.with_context(|| format!("reading the output of `{line}`"))?;
            let text = String::from_utf8_lossy(&bytes);
            each(&text)?;
            tail.push(text.into_owned());
            if tail.len() > 2 * ERROR_TAIL_LINES {
                tail.drain(..ERROR_TAIL_LINES);
            }
        }
        let status = reader
            .try_wait()
            .with_context(|| format!("waiting for `{line}`"))?
            .map(|out| out.status.success());
        if status == Some(true) {
            Ok(())
        } else {
            Err(failure(&self.summary, &line, &tail.join("\n"), ""))
        }
    }

    /// A dry run prints a command that would change state (the result, on stdout) instead of
    /// running it.
    fn is_skipped(&self) -> anyhow::Result<bool> {
        if self.changes_state && self.docker.dry_run {
            self.docker.printer.stdout().line(self.command_line())?;
            return Ok(true);
        }
        Ok(false)
    }

    fn expression(&self) -> duct::Expression {
        self.env
            .iter()
            .fold(duct::cmd(&self.docker.program, &self.args), |e, (k, v)| {
                e.env(k, v)
            })
    }
}

/// The images that `docker image inspect` said do not exist; None when stderr says anything
/// else (a real failure).
fn missing_images(stderr: &str, images: &[String]) -> Option<Vec<String>> {
    let mut missing = Vec::new();
    for line in stderr.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (_, reference) = line.rsplit_once("No such image: ")?;
        let reference = reference.trim();
        let image = images.iter().find(|i| i.as_str() == reference)?;
        missing.push(image.clone());
    }
    (!missing.is_empty()).then_some(missing)
}

fn spawn_error(summary: &str, err: std::io::Error) -> anyhow::Error {
    if err.kind() == std::io::ErrorKind::NotFound {
        ToolError(format!(
            "{summary}: docker is not installed or not on PATH (install Docker Engine and the \
             Compose v2 plugin, then check with `provision doctor`)"
        ))
        .into()
    } else {
        anyhow::Error::new(err).context(format!("{summary}: cannot start docker"))
    }
}

fn failure(summary: &str, line: &str, stderr: &str, stdout: &str) -> anyhow::Error {
    let text = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let start = lines.len().saturating_sub(ERROR_TAIL_LINES);
    let mut message = format!("{summary} failed: `{line}`");
    if lines.is_empty() {
        message.push_str(" exited with an error and printed nothing");
    } else {
        message.push_str(" said:");
        for l in &lines[start..] {
            message.push_str("\n  ");
            message.push_str(l);
        }
    }
    ToolError(message).into()
}

/// Quotes one word for a POSIX shell, leaving plain words alone.
pub fn shell_quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
    if plain {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote(OsStr::new("compose")), "compose");
        assert_eq!(
            shell_quote(OsStr::new("/tmp/a b/compose.yaml")),
            "'/tmp/a b/compose.yaml'"
        );
        assert_eq!(shell_quote(OsStr::new("{{.Id}}")), "'{{.Id}}'");
        assert_eq!(shell_quote(OsStr::new("it's")), r"'it'\''s'");
        assert_eq!(shell_quote(OsStr::new("")), "''");
    }

    #[test]
    fn failure_keeps_the_tail_of_stderr() {
        let stderr: String = (1..=40).map(|i| format!("line {i}\n")).collect();
        let err = failure("building images", "docker compose build", &stderr, "");
        let text = err.to_string();
        assert!(text.starts_with("building images failed: `docker compose build` said:"));
        assert!(text.contains("line 40") && text.contains("line 16"));
        assert!(!text.contains("line 15\n"));
        assert!(err.is::<ToolError>());
    }

    #[test]
    fn missing_images_are_read_from_stderr() {
        let images = vec!["base:1".to_owned(), "nope:1".to_owned(), "a/b:2".to_owned()];
        let stderr = "Error response from daemon: no such image: nope:1: No such image: nope:1\n\
                      Error response from daemon: no such image: a/b:2: No such image: a/b:2\n";
        assert_eq!(
            missing_images(stderr, &images),
            Some(vec!["nope:1".to_owned(), "a/b:2".to_owned()])
        );
        assert_eq!(missing_images("permission denied\n", &images), None);
        assert_eq!(missing_images("", &images), None);
    }

    #[test]
    fn missing_binary_is_named_plainly() {
        let docker = Docker {
            program: "/nonexistent/docker".into(),
            dry_run: false,
            printer: Printer::quiet(),
        };
        let err = docker
            .call("checking docker", ["version"])
            .output()
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("docker is not installed or not on PATH"),
            "{err:#}"
        );
        assert!(err.is::<ToolError>());
    }

    #[test]
    fn an_environment_variable_shows_before_the_command() {
        let docker = Docker::new(Printer::quiet());
        let call = docker
            .call("deploying", ["stack", "deploy", "hits"])
            .env("PROVISION_WEB_REPLICAS", "4");
        assert_eq!(
            call.command_line(),
            "PROVISION_WEB_REPLICAS=4 docker stack deploy hits"
        );
    }

    #[test]
    fn dry_run_skips_calls_that_change_state() {
        let docker = Docker {
            program: "/nonexistent/docker".into(),
            dry_run: true,
            printer: Printer::quiet(),
        };
        let out = docker
            .call("starting", ["compose", "up"])
            .changes_state()
            .output()
            .unwrap();
        assert_eq!(out, "");
    }
}
