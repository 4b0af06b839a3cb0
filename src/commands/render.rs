//! `provision render [--check] [--out DIR] [--force]`: expand the spec into the output directory,
//! or (`--check`) show how the output directory differs from a fresh render.
//!
//! Results on stdout: the files created, updated and removed, then a summary line (with `-q`
//! the summary line only); `--check` prints the diff, or that the directory is up to date.

use crate::cli::RenderArgs;
use crate::commands::Global;
use crate::render::{self, drift, output, paths, Project};
use crate::ExitStatus;

pub fn run(global: &Global, args: RenderArgs) -> anyhow::Result<ExitStatus> {
    let printer = &global.printer;
    let project = Project::load(&global.spec, &args.out)?;
    let rendered = render::render(&project)?;
    let shown = paths::display(&project.out_dir);
    for name in &rendered.local_blueprints {
        printer.note(format!(
            "using local blueprint {}",
            paths::display(&project.spec_dir.join("blueprints").join(name))
        ));
    }

    // The render command as the advice below must say it: this spec, this output directory.
    let mut render_line = global.command_line("render");
    if args.out != std::path::Path::new(crate::cli::DEFAULT_OUT) {
        render_line.push_str(&format!(
            " --out {}",
            crate::commands::shell_word(&args.out.display().to_string())
        ));
    }
    if args.check {
        if !project.out_dir.exists() {
            printer.failure(&format!(
                "{shown}/ does not exist; run `{render_line}` to write it"
            ));
            return Ok(ExitStatus::Failure);
        }
        let differences = drift::compare(&project.out_dir, &rendered.files)?;
        if differences.is_empty() {
            printer.stdout().line(format!(
                "{shown} is up to date ({} files)",
                rendered.files.len() - 1
            ))?;
            return Ok(ExitStatus::Success);
        }
        let diff: String = differences.iter().map(|d| d.diff.as_str()).collect();
        printer.stdout().text(&diff)?;
        printer.failure(&drift::verdict(
            &project.out_dir,
            &shown,
            &differences,
            &render_line,
        ));
        return Ok(ExitStatus::Failure);
    }

    let outcome = output::write(&project.out_dir, &rendered.files, args.force)?;
    outcome.warnings.iter().for_each(|w| printer.note(w));
    let mut text = String::new();
    if !printer.is_quiet() {
        for (verb, list) in [
            ("created", &outcome.created),
            ("updated", &outcome.updated),
            ("removed", &outcome.removed),
        ] {
            for path in list {
                text.push_str(&format!(
                    "{verb} {}\n",
                    paths::display(&project.out_dir.join(path))
                ));
            }
        }
    }
    text.push_str(&outcome.summary(&shown));
    text.push('\n');
    printer.stdout().text(&text)?;
    Ok(ExitStatus::Success)
}
