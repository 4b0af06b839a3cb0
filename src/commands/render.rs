//! `provision render [--check] [--out DIR] [--force]`: expand the spec into the output directory,
//! or (`--check`) show how the output directory differs from a fresh render.

use crate::cli::RenderArgs;
use crate::commands::Global;
use crate::printer::Printer;
use crate::render::{self, drift, output, paths, Project};
use crate::{CheckFailed, ExitStatus};

pub fn run(global: &Global, args: RenderArgs) -> anyhow::Result<ExitStatus> {
    let project = Project::load(&global.spec, &args.out)?;
    let rendered = render::render(&project)?;
    let shown = paths::display(&project.out_dir);
    let printer = Printer::detect(global.quiet);
    for name in &rendered.local_blueprints {
        printer.note(format!(
            "using local blueprint {}",
            paths::display(&project.spec_dir.join("blueprints").join(name))
        ));
    }

    if args.check {
        let differences = drift::compare(&project.out_dir, &rendered.files)?;
        if differences.is_empty() {
            println!("{shown} is up to date ({} files)", rendered.files.len() - 1);
            return Ok(ExitStatus::Success);
        }
        for difference in &differences {
            print!("{}", difference.diff);
        }
        let list: Vec<String> = differences
            .iter()
            .map(|d| format!("{} ({})", d.path, d.kind.as_str()))
            .collect();
        return Err(CheckFailed(format!(
            "{shown} differs from the spec in {} file{}: {}; run `provision render` to update it",
            differences.len(),
            if differences.len() == 1 { "" } else { "s" },
            list.join(", ")
        ))
        .into());
    }

    let outcome = output::write(&project.out_dir, &rendered.files, args.force)?;
    outcome.warnings.iter().for_each(|w| printer.note(w));
    for (verb, list) in [
        ("created", &outcome.created),
        ("updated", &outcome.updated),
        ("removed", &outcome.removed),
    ] {
        for path in list {
            println!("{verb} {}", paths::display(&project.out_dir.join(path)));
        }
    }
    println!("{}", outcome.summary(&shown));
    Ok(ExitStatus::Success)
}
