//! `docker compose` for one project: every call passes `-p <project> -f <compose file>`, so two
//! stacks coexist and nothing depends on the current directory; and `-f <override>` after it
//! for each override file (the stack's secrets, kept outside `generated/`: `secrets::stack`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::{Call, Docker};

/// The Compose project of one stack.
#[derive(Debug, Clone)]
pub struct Compose<'a> {
    docker: &'a Docker,
    project: String,
    file: PathBuf,
    /// Files passed after `file` (`-f` each): what this machine adds to the rendered stack, such
    /// as the app's secrets and env file (`crate::inputs`), kept outside `generated/`.
    overrides: Vec<PathBuf>,
    /// `--project-directory`: where relative paths resolve (default: the file's directory).
    project_dir: Option<PathBuf>,
}

/// Options of `docker compose up`.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// `--scale SERVICE=N`.
    pub scale: Option<(String, u32)>,
    /// `--wait --wait-timeout S`: return once every container is running and healthy.
    pub wait_timeout: Option<Duration>,
    /// Leave existing containers alone even if their configuration changed (used when scaling).
    pub no_recreate: bool,
    /// Remove containers of services that are no longer in the file (a changed discovery mode).
    pub remove_orphans: bool,
    /// Only these services (all when empty).
    pub services: Vec<String>,
    /// `--no-deps`: do not start or update the services these depend on.
    pub no_deps: bool,
}

/// One service in `docker compose config --format json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ConfigService {
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub build: Option<serde_json::Value>,
}

/// The parts of `docker compose config --format json` that provision reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ComposeConfig {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub services: BTreeMap<String, ConfigService>,
}

impl ComposeConfig {
    /// `(service, image)` of every service that Compose builds.
    pub fn built_images(&self) -> Vec<(String, String)> {
        self.services
            .iter()
            .filter(|(_, s)| s.build.is_some())
            .filter_map(|(name, s)| Some((name.clone(), s.image.clone()?)))
            .collect()
    }

    /// `(service, image)` of every service run from an image as it is.
    pub fn pulled_images(&self) -> Vec<(String, String)> {
        self.services
            .iter()
            .filter(|(_, s)| s.build.is_none())
            .filter_map(|(name, s)| Some((name.clone(), s.image.clone()?)))
            .collect()
    }
}

/// One line of `docker compose ps --format json`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PsEntry {
    #[serde(rename(deserialize = "ID"))]
    pub id: String,
    #[serde(rename(deserialize = "Name"))]
    pub name: String,
    #[serde(rename(deserialize = "Service"))]
    pub service: String,
    /// `running`, `exited`, `created`, `restarting`, `paused`, `dead`.
    #[serde(rename(deserialize = "State"))]
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`, or empty without a healthcheck.
    #[serde(rename(deserialize = "Health"), default)]
    pub health: String,
    #[serde(rename(deserialize = "Status"), default)]
    pub status: String,
    #[serde(rename(deserialize = "ExitCode"), default)]
    pub exit_code: i64,
    /// The Swarm node that runs it (a stack's task); empty for a Compose container.
    #[serde(skip_deserializing)]
    pub node: String,
}

/// Parses `docker compose ps --format json`: JSON lines since Compose 2.21, one array before.
pub fn parse_ps(text: &str) -> anyhow::Result<Vec<PsEntry>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    if text.starts_with('[') {
        return serde_json::from_str(text).context("reading `docker compose ps` output (array)");
    }
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("reading `docker compose ps` output, line {}", i + 1))
        })
        .collect()
}

impl<'a> Compose<'a> {
    pub fn new(docker: &'a Docker, project: &str, file: &Path) -> Self {
        Compose {
            docker,
            project: project.to_owned(),
            file: file.to_owned(),
            overrides: Vec::new(),
            project_dir: None,
        }
    }

    /// The same project with `file` passed after the rendered one (it adds to and overrides it).
    pub fn with_override(mut self, file: &Path) -> Self {
        self.overrides.push(file.to_owned());
        self
    }

    /// The files passed after the rendered one.
    pub fn overrides(&self) -> &[PathBuf] {
        &self.overrides
    }

    /// The stack's secrets override of `project` (`secrets::stack`), when an apply wrote it.
    pub fn with_secrets_of(self, project: &str) -> Self {
        match crate::secrets::stack::Overrides::existing(project) {
            Some(overrides) => self.with_override(&overrides.compose),
            None => self,
        }
    }

    /// The same project from a file kept elsewhere, its relative paths resolved from `dir`.
    pub fn with_project_directory(mut self, dir: &Path) -> Self {
        self.project_dir = Some(dir.to_owned());
        self
    }

    /// The Compose project name every call names.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The Compose file every call names.
    pub fn file(&self) -> &Path {
        &self.file
    }

    fn call<I, S>(&self, summary: impl Into<String>, args: I) -> Call<'a>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut all: Vec<OsString> = vec![
            "compose".into(),
            "-p".into(),
            self.project.clone().into(),
            "-f".into(),
            self.file.clone().into(),
        ];
        // `--project-directory` keeps relative paths resolving from the rendered file's
        // directory: without it Compose would resolve them from the first file's anyway.
        for file in &self.overrides {
            all.extend(["-f".into(), file.clone().into()]);
        }
        if let Some(dir) = &self.project_dir {
            all.extend(["--project-directory".into(), dir.clone().into()]);
        }
        all.extend(args.into_iter().map(Into::into));
        self.docker.call(summary, all)
    }

    /// The resolved configuration; also proves that Compose accepts the file.
    pub fn config(&self) -> anyhow::Result<ComposeConfig> {
        let json = self
            .call("reading the Compose file", ["config", "--format", "json"])
            .timeout(Duration::from_secs(60))
            .output()?;
        serde_json::from_str(&json).context("reading `docker compose config` output")
    }

    /// Builds the images of `services`; `no_cache`: every step again (Debian's packages anew).
    pub fn build(&self, services: &[String], no_cache: bool) -> anyhow::Result<()> {
        let mut args = vec!["build".to_owned()];
        if no_cache {
            args.push("--no-cache".to_owned());
        }
        args.extend(services.iter().cloned());
        self.call(format!("building images ({})", services.join(", ")), args)
            .changes_state()
            .run_with_progress()
    }

    /// Creates or updates the stack. Never builds: `apply` builds missing images first, so that
    /// an image that exists is never rebuilt and Compose never tries to pull a local tag.
    pub fn up(&self, summary: &str, options: &UpOptions) -> anyhow::Result<()> {
        self.call(summary, up_args(options))
            .changes_state()
            .run_with_progress()
    }

    /// `docker compose logs` of `services` (all when empty), each line prefixed by its
    /// replica (`web-2 | `), handed to `each` as it comes.
    pub fn logs(
        &self,
        services: &[String],
        options: &[String],
        each: impl FnMut(&str) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        // Compose colours the prefixes on a terminal only; --no-color says so on a pipe too.
        let mut args = vec!["logs".to_owned(), "--no-color".to_owned()];
        args.extend(options.iter().cloned());
        args.extend(services.iter().cloned());
        self.call("reading the stack's logs", args).each_line(each)
    }

    /// Lists the project's containers, stopped ones included.
    pub fn ps(&self) -> anyhow::Result<Vec<PsEntry>> {
        let text = self
            .call(
                "listing the stack's containers",
                ["ps", "--all", "--format", "json"],
            )
            .timeout(Duration::from_secs(60))
            .output()?;
        parse_ps(&text)
    }

    /// Stops and removes the stack; named volumes only with `volumes`.
    pub fn down(&self, volumes: bool) -> anyhow::Result<()> {
        let mut args = vec!["down", "--remove-orphans"];
        if volumes {
            args.push("--volumes");
        }
        self.call("removing the stack", args)
            .changes_state()
            .run_with_progress()
    }
}

fn up_args(options: &UpOptions) -> Vec<String> {
    let mut args: Vec<String> = vec!["up".into(), "--detach".into(), "--no-build".into()];
    if options.no_recreate {
        args.push("--no-recreate".into());
    }
    if options.remove_orphans {
        args.push("--remove-orphans".into());
    }
    if let Some(timeout) = options.wait_timeout {
        args.push("--wait".into());
        args.push("--wait-timeout".into());
        args.push(timeout.as_secs().to_string());
    }
    if let Some((service, n)) = &options.scale {
        args.push("--scale".into());
        args.push(format!("{service}={n}"));
    }
    if options.no_deps {
        args.push("--no-deps".into());
    }
    args.extend(options.services.iter().cloned());
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::printer::Printer;

    const LINE_1: &str = r#"{"Command":"\"consul agent -dev -…\"","CreatedAt":"2026-11-25 09:17:16 +0000 UTC","ExitCode":0,"Health":"healthy","ID":"d9fa33bb2809","Image":"localhost/provision-rig/consul:1.8.7","Labels":"com.docker.compose.container-number=1,com.docker.compose.service=consul","LocalVolumes":"0","Mounts":"","Name":"h2dev-consul-1","Names":"h2dev-consul-1","Networks":"h2dev_default","Ports":"127.0.0.1:28500->8500/tcp","Project":"h2dev","Publishers":[{"URL":"127.0.0.1","TargetPort":8500,"PublishedPort":28500,"Protocol":"tcp"}],"RunningFor":"6 seconds ago","Service":"consul","Size":"0B","State":"running","Status":"Up 5 seconds (healthy)"}"#;
    const LINE_2: &str = r#"{"ExitCode":137,"Health":"","ID":"1a2b3c4d5e6f","Name":"h2dev-web-2","Service":"web","State":"exited","Status":"Exited (137) 3 seconds ago","Publishers":null}"#;

    #[test]
    fn ps_json_lines_since_2_21() {
        let entries = parse_ps(&format!("{LINE_1}\n{LINE_2}\n")).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].service, "consul");
        assert_eq!(entries[0].health, "healthy");
        assert_eq!(entries[1].state, "exited");
        assert_eq!(entries[1].exit_code, 137);
    }

    #[test]
    fn ps_array_before_2_21() {
        let entries = parse_ps(&format!("[{LINE_1},{LINE_2}]")).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].name, "h2dev-web-2");
    }

    #[test]
    fn ps_empty_output_is_no_containers() {
        assert!(parse_ps("").unwrap().is_empty());
        assert!(parse_ps("[]").unwrap().is_empty());
    }

    #[test]
    fn ps_garbage_names_the_line() {
        let err = parse_ps(&format!("{LINE_1}\nnot json\n")).unwrap_err();
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
    }

    #[test]
    fn config_separates_built_and_pulled_images() {
        let config: ComposeConfig = serde_json::from_str(
            r#"{"name":"hits","services":{
                "consul":{"image":"hashicorp/consul:1.21"},
                "web":{"image":"hits-web:0123456789ab","build":{"context":"/x/web","dockerfile":"Dockerfile"}},
                "lb":{"image":"hits-lb:ba9876543210","build":{"context":"/x/lb"}}}}"#,
        )
        .unwrap();
        assert_eq!(
            config.built_images(),
            vec![
                ("lb".to_owned(), "hits-lb:ba9876543210".to_owned()),
                ("web".to_owned(), "hits-web:0123456789ab".to_owned())
            ]
        );
        assert_eq!(
            config.pulled_images(),
            vec![("consul".to_owned(), "hashicorp/consul:1.21".to_owned())]
        );
    }

    #[test]
    fn overrides_follow_the_rendered_file() {
        let docker = Docker::new(Printer::quiet());
        let compose = Compose::new(&docker, "hits", Path::new("/srv/generated/compose.yaml"))
            .with_override(Path::new(
                "/home/u/.local/state/provision/hits/app.compose.yaml",
            ));
        assert_eq!(
            compose.call("x", ["ps"]).command_line(),
            "docker compose -p hits -f /srv/generated/compose.yaml \
             -f /home/u/.local/state/provision/hits/app.compose.yaml ps"
        );
    }

    #[test]
    fn every_compose_call_names_project_and_file() {
        let docker = Docker::new(Printer::quiet());
        let compose = Compose::new(&docker, "hits", Path::new("/srv/my stack/compose.yaml"))
            .with_override(Path::new(
                "/home/u/.local/state/provision/hits/secrets.compose.yaml",
            ));
        let call = compose.call(
            "x",
            up_args(&UpOptions {
                scale: Some(("web".into(), 5)),
                wait_timeout: Some(Duration::from_secs(300)),
                no_recreate: true,
                remove_orphans: false,
                services: vec!["web".into()],
                no_deps: true,
            }),
        );
        assert_eq!(
            call.command_line(),
            "docker compose -p hits -f '/srv/my stack/compose.yaml' -f \
             /home/u/.local/state/provision/hits/secrets.compose.yaml up --detach --no-build \
             --no-recreate --wait --wait-timeout 300 --scale web=5 --no-deps web"
        );
    }
}
