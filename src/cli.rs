//! The command line: clap types only. Every field's doc comment is its `--help` text.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Turn a short declarative spec into a running, load-balanced, service-discovered container
/// stack, and prove that it works.
///
/// Exit codes: 0 success, 1 a check or probe failed, 2 bad input or usage, 3 docker or another
/// tool failed, 4 internal error.
#[derive(Debug, Parser)]
#[command(name = "provision", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// The spec file.
    #[arg(
        long,
        short = 'f',
        global = true,
        default_value = "provision.yaml",
        env = "PROVISION_SPEC"
    )]
    pub spec: PathBuf,

    /// Print results only: no progress, no log lines.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// Seconds apply, verify and destroy wait for another provision command on the same project
    /// to finish before giving up (exit 2).
    #[arg(long, global = true, value_name = "S", default_value = "300", value_parser = seconds)]
    pub lock_timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a new spec (provision.yaml): prompts on a terminal, defaults and flags otherwise.
    Init(InitArgs),
    /// Expand the spec through the blueprints into the output directory (default `generated/`).
    Render(RenderArgs),
    /// Render if needed, then build and start the stack: `docker compose`, or `docker stack
    /// deploy` when the spec's target is a swarm.
    Apply(ApplyArgs),
    /// Scale web (optionally), wait for the load balancer to converge, and probe the stack.
    Verify(VerifyArgs),
    /// Show what runs: replicas, health, the load balancer's backends.
    Status(StatusArgs),
    /// Stop and remove the stack; the redis volume is kept unless `--volumes`.
    Destroy(DestroyArgs),
    /// Check the machine: docker, its daemon and API version, Compose v2, the images the spec needs.
    Doctor(DoctorArgs),
    /// Print a shell completion script (bash, zsh or fish) on stdout.
    Completions(CompletionsArgs),
    /// Print the manual page (roff) on stdout: `provision man | man -l -`.
    Man,
}

/// Service discovery modes, as on the command line (same names as in the spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiscoveryArg {
    ConsulTemplate,
    ConsulDns,
    DockerDns,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Accept the defaults for every question not given as a flag; never prompt.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Overwrite an existing spec.
    #[arg(long)]
    pub force: bool,
    /// Project name (the Compose project): lowercase letters, digits, `-` and `_`.
    #[arg(long)]
    pub project: Option<String>,
    /// How the load balancer discovers web replicas.
    #[arg(long, value_enum)]
    pub discovery: Option<DiscoveryArg>,
    /// Number of web replicas to start with.
    #[arg(long)]
    pub replicas: Option<u32>,
    /// Host port the load balancer publishes.
    #[arg(long)]
    pub lb_port: Option<u16>,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Do not write; exit 1 with a diff when the output directory differs from a fresh render.
    #[arg(long)]
    pub check: bool,
    /// Output directory (relative paths are relative to the spec's directory).
    #[arg(long, short, default_value = "generated")]
    pub out: PathBuf,
    /// Replace files in the output directory that were edited by hand.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Print the commands that would run, run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output directory of the render step.
    #[arg(long, short, default_value = "generated")]
    pub out: PathBuf,
    /// Seconds to wait for every service to become healthy, and for each new web replica of a
    /// rolling replacement to be routed (past it, the rollout is rolled back). Swarm: for each
    /// step of Swarm's own rolling update (a new task running, or a service's update state
    /// changing); past it, provision asks Swarm to roll the update back.
    #[arg(long, value_name = "TIMEOUT", default_value = "300", value_parser = seconds)]
    pub timeout: Duration,
    /// Web replicas replaced at once by a rolling replacement (a changed web image or
    /// configuration): started, routed, then as many old ones drained and removed. Swarm: web's
    /// `update_config.parallelism` (and its rollback's).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: u32,
    /// Restart redis or consul without asking when their configuration changed (they keep their
    /// data on their volumes, but requests get 503 while they restart).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Scale web to this many replicas first; without it, check the stack as it stands.
    #[arg(long)]
    pub scale: Option<u32>,
    /// Replicas started (or drained and stopped) at once while scaling, each batch routed by
    /// the load balancer before the next [default: twice the number of cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: Option<u32>,
    /// Seconds to wait for the load balancer to route to every replica.
    #[arg(long, value_name = "TIMEOUT", default_value = "120", value_parser = seconds)]
    pub timeout: Duration,
    /// Requests to send through the load balancer, at least enough to reach every replica.
    #[arg(long)]
    pub requests: Option<u32>,
    /// Also send this many requests per second through the load balancer for the whole scale
    /// step and convergence wait (open loop: latency counts from each request's due time).
    /// Any failed request fails verify, unless --load-max-failed allows it.
    #[arg(long, value_name = "RATE")]
    pub load: Option<f64>,
    /// The fraction of --load requests that may fail (0.01 = 1%).
    #[arg(
        long,
        value_name = "FRACTION",
        default_value_t = 0.0,
        requires = "load"
    )]
    pub load_max_failed: f64,
    /// Fail when the --load requests' p99 latency exceeds this many milliseconds.
    #[arg(long, value_name = "MS", requires = "load")]
    pub load_max_p99: Option<u64>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Also write the report as JUnit XML to this file.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Output directory of the render step.
    #[arg(long, short, default_value = "generated")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Output directory of the render step.
    #[arg(long, short, default_value = "generated")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Also remove the redis volume: the hit counter is lost.
    #[arg(long)]
    pub volumes: bool,
    /// Output directory of the render step.
    #[arg(long, short, default_value = "generated")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Output directory of the render step (its compose.yaml names the built images' tags).
    #[arg(long, short, default_value = "generated")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    pub shell: Shell,
}

/// Shells that `provision completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// A whole number of seconds, as the timeouts are given.
fn seconds(text: &str) -> Result<Duration, std::num::ParseIntError> {
    text.parse().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
