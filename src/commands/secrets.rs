//! `provision secrets list | rotate`: the stack's own secrets (`secrets::stack`) by name and
//! version. No value is ever printed: an operator who needs one reads its file in the state
//! directory, which only they can open.

use crate::cli::{SecretsAction, SecretsArgs};
use crate::commands::Global;
use crate::secrets::stack::{self, StackSecret};
use crate::secrets::SecretStore;
use crate::{spec, ExitStatus, UsageError};

pub fn run(global: &Global, args: SecretsArgs) -> anyhow::Result<ExitStatus> {
    let plan = spec::load(&global.spec)?;
    let store = SecretStore::of(&plan.project)?;
    let printer = global.printer;
    match args.action {
        SecretsAction::List => {
            let mut lines = Vec::new();
            for secret in StackSecret::of(&plan) {
                let version = store
                    .get(&secret.secret_name())?
                    .map(|s| s.version)
                    .unwrap_or_else(|| "(made on the next apply)".to_owned());
                lines.push(format!(
                    "{:<20} {:<26} read by {}",
                    secret.name,
                    version,
                    secret
                        .readers(&plan)
                        .iter()
                        .map(|s| s.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            printer.stdout().text(&(lines.join("\n") + "\n"))?;
            printer.note(format!(
                "values: {} (never printed)",
                store.state_dir().join("secrets").display()
            ));
        }
        SecretsAction::Rotate(rotate) => {
            let chosen = if rotate.all {
                Vec::new()
            } else {
                rotate
                    .names
                    .iter()
                    .map(|name| {
                        StackSecret::named(name)
                            .filter(|s| !s.readers(&plan).is_empty())
                            .ok_or_else(|| {
                                UsageError(format!(
                                    "no secret called `{name}` in this stack: its secrets are {}",
                                    StackSecret::of(&plan)
                                        .iter()
                                        .map(|s| s.name)
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ))
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?
            };
            let _lock = global.lock(&plan.project, "secrets rotate", &printer)?;
            let rotated = stack::rotate(&store, &plan, &chosen)?;
            for stored in &rotated {
                printer
                    .stdout()
                    .line(format!("{}: new version {}", stored.name, stored.version))?;
            }
            printer.note(format!(
                "run `{}` to roll the services that read them",
                global.command_line("apply")
            ));
        }
    }
    Ok(ExitStatus::Success)
}
