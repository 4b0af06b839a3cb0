//! The command line: clap types only. Every field's doc comment is its `--help` text; the
//! examples and the exit-code table below are shown by `--help` and written into the man pages
//! (`provision man --dir DIR`), so the two can never disagree.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::deploy::canary::CanaryArg;
use crate::spec::number::WholeNumber;

/// The output directory when `--out` is not given.
pub const DEFAULT_OUT: &str = "generated";

/// The exit codes, shown by `provision --help` and in every man page's EXIT STATUS section.
pub const EXIT_CODES: &[(u8, &str)] = &[
    (
        0,
        "success; also when a reader closed stdout early (`provision status | head -1`)",
    ),
    (
        1,
        "a check or probe failed: verify, render --check, doctor, a rolled-back apply",
    ),
    (
        2,
        "bad input or usage: the spec, a flag, a missing file, a busy project lock",
    ),
    (3, "docker, Compose or another tool failed or is missing"),
    (4, "internal error (a bug, or an unexpected I/O error)"),
];

/// The environment variables provision reads, for `--help` and the man pages' ENVIRONMENT.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    ("PROVISION_SPEC", "the spec file, as --spec"),
    (
        "NO_COLOR",
        "when set (to anything), no colour in provision's output",
    ),
    (
        "CLICOLOR_FORCE",
        "when set (and not 0), colour even on a pipe",
    ),
    (
        "DOCKER_HOST",
        "the Docker engine to talk to, as for the docker CLI",
    ),
];

const ROOT_EXAMPLES: &str = "\
Examples:
  provision doctor                  check docker, Compose and the images first
  provision init --yes              write provision.yaml with the defaults
  provision apply                   render, build and start the stack
  provision verify --scale 5        scale web to 5 replicas and prove the stack works
  provision status --json | jq .    what runs, as JSON
  provision destroy                 stop it (the redis volume is kept)";

/// The command line with everything `--help` shows: the examples, exit codes and environment.
/// Use this rather than `Cli::command()`, which lacks the two tables.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let table = |rows: Vec<(String, &str)>| -> String {
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("  {k:width$}  {v}\n"))
            .collect()
    };
    let codes = table(
        EXIT_CODES
            .iter()
            .map(|(c, m)| (c.to_string(), *m))
            .collect(),
    );
    let environment = table(
        ENVIRONMENT
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
    );
    Cli::command().after_help(format!(
        "{ROOT_EXAMPLES}\n\nExit status:\n{codes}\nEnvironment:\n{environment}\n\
         Output: results on stdout, progress and notes on stderr; --quiet keeps the results only."
    ))
}

/// Parses `std::env::args` against [`command`].
pub fn parse() -> Cli {
    use clap::FromArgMatches;
    Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit())
}

const INIT_EXAMPLES: &str = "\
Examples:
  provision init                                   answer the questions (on a terminal)
  provision init --yes                             take every default, never prompt
  provision init -y --project shop --replicas 3    defaults, except these
  provision -f stacks/shop.yaml init -y            write the spec somewhere else";

const RENDER_EXAMPLES: &str = "\
Examples:
  provision render                      write generated/ from provision.yaml
  provision render --check              exit 1 with a diff when generated/ is stale (CI)
  provision render --out build/stack    render into another directory
  provision render --force              replace files edited by hand";

const APPLY_EXAMPLES: &str = "\
Examples:
  provision apply                  render if needed, build, start, wait until routed
  provision apply --dry-run        print the docker commands, run nothing
  provision apply --batch 2 -y     replace 2 web replicas at a time; restart redis/consul without asking
  provision apply --timeout 600    allow slow builds and health checks

Why apply and verify have different defaults: apply's --batch (1) is how many old replicas are
replaced at once, so it stays small to keep capacity; verify's --batch only adds or drains
replicas, so it is larger. apply's --timeout (300 s) covers image builds and health checks;
verify's (120 s) covers routing alone.";

const VERIFY_EXAMPLES: &str = "\
Examples:
  provision verify                              check the stack as it stands
  provision verify --scale 5                    scale web to 5 replicas first
  provision verify --scale 5 --load 50          ... under 50 requests/s, none may fail
  provision verify --json > report.json         the report as JSON (docs/json.md)
  provision verify --junit verify.xml           also a JUnit XML report for CI";

const STATUS_EXAMPLES: &str = "\
Examples:
  provision status                        services, replicas, the load balancer's backends
  provision status --json | jq .state     running, degraded or stopped";

const DESTROY_EXAMPLES: &str = "\
Examples:
  provision destroy        stop and remove the stack; keep the redis volume
  provision destroy -v     also remove the volume (the hit counter is lost)";

const DOCTOR_EXAMPLES: &str = "\
Examples:
  provision doctor               check this machine (and the images provision.yaml needs)
  provision doctor -q            only what is wrong, and a summary line
  provision doctor --json        the findings as JSON (docs/json.md)";

const HISTORY_EXAMPLES: &str = "\
Examples:
  provision history                      every release: id, time, origin, what changed
  provision history --json | jq '.releases[-1]'    the latest release as JSON";

const ROLLBACK_EXAMPLES: &str = "\
Examples:
  provision rollback             deploy the previous release again (rolling, like apply)
  provision rollback 3           deploy release 3 again (`provision history` lists them)
  provision rollback --dry-run   print what would change, change nothing";

const LOGS_EXAMPLES: &str = "\
Examples:
  provision logs                        every service's logs, each line prefixed by its replica
  provision logs web -f                 follow web's replicas (Ctrl-C stops)
  provision logs web --since 10m        the last 10 minutes of web
  provision logs lb --tail 20           the last 20 lines of the load balancer";

const MAINTENANCE_EXAMPLES: &str = "\
Examples:
  provision maintenance on                      the lb answers 503 and a short page; replicas keep running
  provision maintenance on --retry-after 300    ... telling clients to come back in 5 minutes
  provision maintenance off                     serve again";

const COMPLETIONS_EXAMPLES: &str = "\
Install:
  bash:  provision completions bash > ~/.local/share/bash-completion/completions/provision
  zsh:   provision completions zsh > ~/.zfunc/_provision
         then in ~/.zshrc, before compinit:  fpath=(~/.zfunc $fpath)
  fish:  provision completions fish > ~/.config/fish/completions/provision.fish
Open a new shell afterwards.";

const IMAGES_EXAMPLES: &str = "\
Examples:
  sudo provision images build             build what is missing (about 2 min the first time)
  sudo provision images build --force     rebuild every image
  provision init --offline                then write a spec that uses them (docs/offline.md)";

const SECRETS_EXAMPLES: &str = "\
Examples:
  provision secrets list                  names and versions (never values)
  provision secrets rotate probe_token    a new value; the next apply rolls the lb
  provision secrets rotate --all          every secret of the stack
  provision apply --rotate-secrets        rotate every secret and apply at once
Values live in $XDG_STATE_HOME/provision/<project>/secrets/ (docs/security.md).";

const MAN_EXAMPLES: &str = "\
Examples:
  provision man | man -l -                       read the main page now
  provision man --dir ~/.local/share/man/man1    install every page (provision-verify(1), ...)";

/// Turn a short declarative spec into a running, load-balanced, service-discovered container
/// stack, and prove that it works.
#[derive(Debug, Parser)]
#[command(
    name = "provision",
    version,
    about,
    long_about = None,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// The spec file [default: provision.yaml in the current directory or the nearest parent
    /// directory that has one; `init` writes it in the current directory].
    #[arg(long, short = 'f', value_name = "FILE", env = "PROVISION_SPEC")]
    pub spec: Option<PathBuf>,

    /// Print results only: no progress, no notes, no details of what is fine.
    #[arg(long, short)]
    pub quiet: bool,
}

impl Cli {
    /// `--spec` and `--quiet` as given before the subcommand (`provision -q -f s.yaml apply`,
    /// as scripts write it), or from `PROVISION_SPEC`.
    pub fn before_command(&self) -> CommonArgs {
        CommonArgs {
            spec: self.spec.clone(),
            quiet: self.quiet,
        }
    }
}

/// `--spec` and `--quiet`: accepted before the subcommand and on each subcommand where they
/// mean something (not on `completions` and `man`). The subcommand's win.
#[derive(Debug, Clone, Default, Args)]
pub struct CommonArgs {
    /// The spec file [default: provision.yaml, or PROVISION_SPEC].
    #[arg(long, short = 'f', value_name = "FILE")]
    pub spec: Option<PathBuf>,

    /// Print results only: no progress, no notes, no details of what is fine.
    #[arg(long, short)]
    pub quiet: bool,
}

impl CommonArgs {
    /// The spec file when none is given.
    pub const DEFAULT_SPEC: &'static str = "provision.yaml";

    /// These flags given on a subcommand, over those given before it.
    pub fn over(&self, before: &CommonArgs) -> CommonArgs {
        CommonArgs {
            spec: self.spec.clone().or_else(|| before.spec.clone()),
            quiet: self.quiet || before.quiet,
        }
    }
}

/// `--lock-timeout`, on the commands that take the project's lock.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// Seconds to wait for another provision command on the same project to finish before
    /// giving up (exit 2).
    #[arg(long, value_name = "SECONDS", default_value = "300", value_parser = seconds)]
    pub lock_timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a new spec (provision.yaml): prompts on a terminal, defaults and flags otherwise.
    #[command(after_help = INIT_EXAMPLES)]
    Init(InitArgs),
    /// Expand the spec through the blueprints into the output directory (default `generated/`).
    #[command(after_help = RENDER_EXAMPLES)]
    Render(RenderArgs),
    /// Render if needed, then build and start the stack: `docker compose`, or `docker stack
    /// deploy` when the spec's target is a swarm.
    #[command(after_help = APPLY_EXAMPLES)]
    Apply(ApplyArgs),
    /// Scale web (optionally), wait for the load balancer to converge, and probe the stack.
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify(VerifyArgs),
    /// Show what runs: replicas, health, the load balancer's backends.
    #[command(after_help = STATUS_EXAMPLES)]
    Status(StatusArgs),
    /// Stop and remove the stack; the redis volume is kept unless `--volumes`.
    #[command(after_help = DESTROY_EXAMPLES)]
    Destroy(DestroyArgs),
    /// Check the machine: docker, its daemon and API version, Compose v2, the images the spec needs.
    #[command(after_help = DOCTOR_EXAMPLES)]
    Doctor(DoctorArgs),
    /// List the releases: every apply that deployed new files, and every rollback.
    #[command(after_help = HISTORY_EXAMPLES)]
    History(HistoryArgs),
    /// Deploy an earlier release again (default: the one before the latest), rolling like
    /// apply, and record it as a new release.
    #[command(after_help = ROLLBACK_EXAMPLES)]
    Rollback(RollbackArgs),
    /// Print the logs of the stack's containers (or of one service), each line prefixed by its
    /// replica or task.
    #[command(after_help = LOGS_EXAMPLES)]
    Logs(LogsArgs),
    /// Switch maintenance mode: the load balancer answers 503 with Retry-After and a short
    /// page; the replicas are not touched.
    #[command(after_help = MAINTENANCE_EXAMPLES)]
    Maintenance(MaintenanceArgs),
    /// Build the images an offline machine needs (no container registry), from Debian's mirror.
    #[command(subcommand, after_help = IMAGES_EXAMPLES)]
    Images(ImagesCommand),
    /// The stack's own secrets (redis' password, the probe token, the stats password): list
    /// their names and versions, or rotate them. Values are never printed.
    #[command(after_help = SECRETS_EXAMPLES)]
    Secrets(SecretsArgs),
    /// Print a shell completion script (bash, zsh or fish) on stdout.
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions(CompletionsArgs),
    /// Print the manual page (roff) on stdout, or write one page per command with --dir.
    #[command(after_help = MAN_EXAMPLES)]
    Man(ManArgs),
}

impl Command {
    /// The subcommand's name, as typed (and as `command` in a JSON envelope).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Init(_) => "init",
            Command::Render(_) => "render",
            Command::Apply(_) => "apply",
            Command::Verify(_) => "verify",
            Command::Status(_) => "status",
            Command::Destroy(_) => "destroy",
            Command::Doctor(_) => "doctor",
            Command::History(_) => "history",
            Command::Rollback(_) => "rollback",
            Command::Logs(_) => "logs",
            Command::Maintenance(_) => "maintenance",
            Command::Completions(_) => "completions",
            Command::Images(_) => "images",
            Command::Secrets(_) => "secrets",
            Command::Man(_) => "man",
        }
    }

    /// `--spec` and `--quiet` as given on the subcommand; None where they mean nothing.
    pub fn common(&self) -> Option<CommonArgs> {
        let common = match self {
            Command::Logs(args) => {
                return Some(CommonArgs {
                    spec: args.spec.clone(),
                    quiet: args.quiet,
                })
            }
            Command::Init(args) => Some(&args.common),
            Command::Render(args) => Some(&args.common),
            Command::Apply(args) => Some(&args.common),
            Command::Verify(args) => Some(&args.common),
            Command::Status(args) => Some(&args.common),
            Command::Destroy(args) => Some(&args.common),
            Command::Doctor(args) => Some(&args.common),
            Command::History(args) => Some(&args.common),
            Command::Rollback(args) => Some(&args.common),
            Command::Maintenance(args) => Some(&args.common),
            Command::Secrets(args) => Some(&args.common),
            Command::Images(_) | Command::Completions(_) | Command::Man(_) => None,
        };
        common.cloned()
    }

    /// `--lock-timeout` of the commands that take the project's lock.
    pub fn lock_timeout(&self) -> Option<Duration> {
        match self {
            Command::Apply(args) => Some(args.lock.lock_timeout),
            Command::Verify(args) => Some(args.lock.lock_timeout),
            Command::Destroy(args) => Some(args.lock.lock_timeout),
            Command::Rollback(args) => Some(args.lock.lock_timeout),
            Command::Maintenance(args) => Some(args.lock.lock_timeout),
            _ => None,
        }
    }

    /// Whether the result was asked for as JSON (`--json`).
    pub fn json(&self) -> bool {
        match self {
            Command::Verify(args) => args.json,
            Command::Status(args) => args.json,
            Command::Doctor(args) => args.json,
            Command::History(args) => args.json,
            _ => false,
        }
    }
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
    #[arg(long, value_name = "NAME")]
    pub project: Option<String>,
    /// How the load balancer discovers web replicas.
    #[arg(long, value_enum)]
    pub discovery: Option<DiscoveryArg>,
    /// Number of web replicas to start with (1 to lb.max_replicas, 10 by default) [default: 1].
    #[arg(long, value_name = "N", value_parser = whole_number::<u32>(WholeNumber::COUNT))]
    pub replicas: Option<u32>,
    /// Host port the load balancer publishes (1 to 65535) [default: 8080].
    #[arg(long, value_name = "PORT", value_parser = whole_number::<u16>(WholeNumber::PORT))]
    pub lb_port: Option<u16>,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Use the images `provision images build` makes (no registry needed); consul-dns unless
    /// --discovery docker-dns. Chosen by itself when no image registry answers.
    #[arg(long, conflicts_with = "online")]
    pub offline: bool,
    /// Use the public images (Docker Hub) even when no image registry answers from here.
    #[arg(long)]
    pub online: bool,
}

/// A flag's number, read by the spec's own rule (number.rs), so a flag is refused with the
/// same words as the spec field it fills.
fn whole_number<T: TryFrom<u64> + Clone + Send + Sync + 'static>(
    kind: WholeNumber,
) -> impl clap::builder::TypedValueParser<Value = T> {
    use clap::builder::TypedValueParser as _;
    clap::builder::StringValueParser::new().try_map(move |text: String| {
        kind.parse(&text)
            .and_then(|n| T::try_from(n).map_err(|_| format!("{n} is too large")))
    })
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Do not write; exit 1 with a diff when the output directory differs from a fresh render.
    #[arg(long)]
    pub check: bool,
    /// Output directory (relative paths are relative to the spec's directory).
    #[arg(long, short, value_name = "DIR", default_value = DEFAULT_OUT)]
    pub out: PathBuf,
    /// Replace files in the output directory that were edited by hand.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// How a deploy rolls out and is measured: the options apply and rollback share.
#[derive(Debug, Clone, Args)]
pub struct RolloutArgs {
    /// Seconds to wait for every service to become healthy, and for each new web replica of a
    /// rolling replacement to be routed (past it, the rollout is rolled back). Swarm: for each
    /// step of Swarm's own rolling update (a new task running, or a service's update state
    /// changing); past it, provision asks Swarm to roll the update back.
    #[arg(long, value_name = "SECONDS", default_value = "300", value_parser = seconds)]
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
    /// Send this many requests per second through the load balancer during the deploy, for
    /// --report (open loop, as verify --load).
    #[arg(long, value_name = "RATE")]
    pub load: Option<f64>,
    /// Write a picture of the deploy to this HTML file: the --load requests, failures and
    /// latency per second, the servers UP, and a mark for each batch, canary, drain, reload and
    /// rollback (see docs/report.md).
    #[arg(long, value_name = "FILE.html", requires = "load")]
    pub report: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Print the commands that would run, run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Pull the base image (`images.base`) first, and rebuild every built image without the
    /// layer cache, so that a new base and Debian's package updates arrive. A base that cannot
    /// be pulled (offline, or a local-only image) is said and kept. Without it, an image built
    /// on an older base than the one present is rebuilt anyway.
    #[arg(long)]
    pub pull: bool,
    /// Give every secret of the stack a new value first (`provision secrets rotate --all`):
    /// the services that read them are replaced.
    #[arg(long, conflicts_with = "dry_run")]
    pub rotate_secrets: bool,
    /// Output directory of the render step.
    #[arg(long, short, value_name = "DIR", default_value = DEFAULT_OUT)]
    pub out: PathBuf,
    #[command(flatten)]
    pub rollout: RolloutArgs,
    /// Before a rolling replacement of web, run one replica of the new version beside the old
    /// ones with PERCENT of the requests (HAProxy server weights, set at run time) for SECONDS
    /// [default: 60], judged against the old ones by the spec's deploy.max_error_rate and
    /// deploy.max_latency_ratio: promoted (the rollout goes on) or rolled back (exit 1, the old
    /// replicas keep serving). One host (Compose) only. See docs/canary.md.
    #[arg(long, value_name = "PERCENT[:SECONDS]")]
    pub canary: Option<CanaryArg>,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Scale web to this many replicas first; without it, check the stack as it stands.
    #[arg(long, value_name = "N")]
    pub scale: Option<u32>,
    /// Replicas started (or drained and stopped) at once while scaling, each batch routed by
    /// the load balancer before the next [default: twice the number of cores, or half the
    /// change when that is more, so a scale takes two batches at most]. Larger than
    /// apply's --batch (1), which replaces running replicas and so keeps capacity by going slow.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: Option<u32>,
    /// Seconds to wait for the load balancer to route to every replica (apply's --timeout is
    /// 300: it also covers image builds and health checks).
    #[arg(long, value_name = "SECONDS", default_value = "120", value_parser = seconds)]
    pub timeout: Duration,
    /// Requests to send through the load balancer [default: enough to reach every replica].
    #[arg(long, value_name = "N")]
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
    /// Print the report as JSON on stdout (the envelope in docs/json.md).
    #[arg(long)]
    pub json: bool,
    /// Also write the report as JUnit XML to this file.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also write a picture of the run to this HTML file: the --load requests, failures and
    /// p50/p99 latency per second, the servers UP, and a mark for each event of the scale step
    /// (one self-contained page, opens offline; see docs/report.md).
    #[arg(long, value_name = "FILE.html", requires = "load")]
    pub report: Option<PathBuf>,
    /// Output directory of the render step.
    #[arg(long, short, value_name = "DIR", default_value = DEFAULT_OUT)]
    pub out: PathBuf,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print as JSON on stdout (the envelope in docs/json.md).
    #[arg(long)]
    pub json: bool,
    /// Output directory of the render step.
    #[arg(long, short, value_name = "DIR", default_value = DEFAULT_OUT)]
    pub out: PathBuf,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Also remove the redis volume: the hit counter is lost.
    #[arg(long, short = 'v')]
    pub volumes: bool,
    /// Output directory of the render step.
    #[arg(long, short, value_name = "DIR", default_value = DEFAULT_OUT)]
    pub out: PathBuf,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print as JSON on stdout (the envelope in docs/json.md).
    #[arg(long)]
    pub json: bool,
    /// Output directory of the render step (its compose.yaml names the built images' tags).
    #[arg(long, short, value_name = "DIR", default_value = DEFAULT_OUT)]
    pub out: PathBuf,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Print as JSON on stdout (the envelope in docs/json.md).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The release to deploy again [default: the one before the latest].
    #[arg(value_name = "RELEASE", value_parser = clap::value_parser!(u32).range(1..))]
    pub release: Option<u32>,
    /// Print the plan and the commands, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output directory of the render step (the spec's stack; the release's own files are
    /// deployed).
    #[arg(long, short, value_name = "DIR", default_value = DEFAULT_OUT)]
    pub out: PathBuf,
    #[command(flatten)]
    pub rollout: RolloutArgs,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The service (web, lb, redis, consul, registrator) [default: every service].
    #[arg(value_name = "SERVICE")]
    pub service: Option<String>,
    /// Keep printing new lines until interrupted.
    #[arg(long, short)]
    pub follow: bool,
    /// Only lines newer than this: a duration (`10m`, `1h30m`) or a timestamp, as docker takes it.
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Only the last N lines of each container.
    #[arg(long, value_name = "N")]
    pub tail: Option<u32>,
    /// Output directory of the render step.
    #[arg(long, short, value_name = "DIR", default_value = DEFAULT_OUT)]
    pub out: PathBuf,
    /// The spec file [default: provision.yaml, or PROVISION_SPEC]. Here `-f` is --follow, as
    /// for `docker logs`; `provision -f FILE logs` names the spec too.
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// Print results only: no progress, no notes.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Args)]
pub struct MaintenanceArgs {
    /// on: every request gets 503 and a short page; off: serve again.
    pub switch: Switch,
    /// Seconds clients are told to wait (the Retry-After header), with `on`.
    #[arg(long, value_name = "SECONDS", default_value_t = crate::deploy::maintenance::DEFAULT_RETRY_AFTER, value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub retry_after: u32,
    /// Output directory of the render step.
    #[arg(long, short, value_name = "DIR", default_value = DEFAULT_OUT)]
    pub out: PathBuf,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `provision images ...`
#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Build the Debian base, consul and HAProxy images locally from the host's apt mirror (as
    /// root, with mmdebstrap); images that are present and up to date are kept.
    ///
    /// Then `provision init --offline` writes a spec that uses them.
    Build(ImagesBuildArgs),
}

#[derive(Debug, Args)]
pub struct ImagesBuildArgs {
    /// Rebuild every image, even those present and up to date.
    #[arg(long)]
    pub force: bool,
    /// Where the images are tagged: PREFIX/debian:trixie, PREFIX/consul:1.8.7, PREFIX/haproxy:trixie.
    #[arg(long, value_name = "PREFIX", env = "PROVISION_RIG_PREFIX", default_value = crate::images::recipe::DEFAULT_PREFIX)]
    pub prefix: String,
}

#[derive(Debug, Args)]
pub struct SecretsArgs {
    #[command(subcommand)]
    pub action: SecretsAction,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `provision secrets ...`
#[derive(Debug, Subcommand)]
pub enum SecretsAction {
    /// Each secret's name, version and the services that read it.
    List,
    /// Give secrets a new value (and version); the next `provision apply` rolls the services
    /// that read them.
    Rotate(SecretsRotateArgs),
}

#[derive(Debug, Args)]
pub struct SecretsRotateArgs {
    /// The secrets to rotate (see `provision secrets list`).
    #[arg(
        value_name = "NAME",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub names: Vec<String>,
    /// Rotate every secret of the stack.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write provision.1 and one page per subcommand (provision-verify.1, ...) into this
    /// directory instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
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
        command().debug_assert();
    }

    #[test]
    fn help_shows_every_exit_code_and_every_subcommand_has_examples() {
        let help = command().render_help().to_string();
        for (code, meaning) in EXIT_CODES {
            assert!(help.contains(&format!("  {code}  {meaning}")), "{help}");
        }
        for sub in command().get_subcommands_mut() {
            let help = sub.render_help().to_string();
            assert!(
                help.contains("Examples:") || help.contains("Install:"),
                "{} --help has no examples",
                sub.get_name()
            );
        }
    }
}
