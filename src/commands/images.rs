//! `provision images build`: the offline images (see `images/`), made from Debian's mirror as a
//! product command. Asks the engine first, so a machine that has them needs neither root nor
//! mmdebstrap; otherwise checks root and the host tools before it changes anything.

use std::time::Instant;

use crate::cli::{ImagesBuildArgs, ImagesCommand};
use crate::commands::Global;
use crate::docker::{preflight, Docker};
use crate::images::build::{self, Outcome};
use crate::images::OfflineImages;
use crate::{ExitStatus, UsageError};

pub fn run(global: &Global, command: ImagesCommand) -> anyhow::Result<ExitStatus> {
    match command {
        ImagesCommand::Build(args) => build_images(global, args),
    }
}

fn build_images(global: &Global, args: ImagesBuildArgs) -> anyhow::Result<ExitStatus> {
    let started = Instant::now();
    let images = OfflineImages::new(&args.prefix);
    // The spec's own rule for image names, so what is built can be named in a spec.
    for image in images.all() {
        crate::spec::rules::image_ref(&image)
            .map_err(|e| UsageError(format!("--prefix {:?}: {e}", args.prefix)))?;
    }
    let printer = &global.printer;
    let docker = Docker::new(*printer);
    // The engine must answer; Compose and the API version matter to apply, not here.
    let mut engine = preflight::check_engine(&docker);
    engine
        .findings
        .retain(|f| f.check == "docker" || f.check == "daemon");
    engine.into_result()?;
    let work = build::plan(&docker, &images, args.force)?;
    let outcomes = if work.is_empty() {
        images
            .all()
            .into_iter()
            .map(|image| (image, Outcome::Kept))
            .collect()
    } else {
        let sources = build::require_host(&work)?;
        build::run(&docker, &images, &work, &sources)?
    };
    for (image, outcome) in &outcomes {
        match outcome {
            Outcome::Kept => printer
                .stdout()
                .line(format!("kept   {image} (present, up to date)"))?,
            Outcome::Built { seconds, version } => printer
                .stdout()
                .line(format!("built  {image} in {seconds:.1} s ({version})"))?,
        }
    }
    printer.note(format!(
        "offline images ready in {:.1} s; next: `provision init --offline`",
        started.elapsed().as_secs_f64()
    ));
    Ok(ExitStatus::Success)
}
