//! `provision doctor`: the preflight on its own. Checks docker, its daemon, the API version, the
//! Compose v2 plugin and, when a spec is at hand, every image the stack needs.

use serde::Serialize;

use crate::cli::DoctorArgs;
use crate::commands::Global;
use crate::docker::preflight::{self, Finding, Preflight, Status};
use crate::docker::Docker;
use crate::printer::Printer;
use crate::render::Project;
use crate::{CheckFailed, ExitStatus};

#[derive(Serialize)]
struct DoctorReport<'a> {
    ok: bool,
    spec: Option<String>,
    #[serde(flatten)]
    preflight: &'a Preflight,
}

pub fn run(global: &Global, args: DoctorArgs) -> anyhow::Result<ExitStatus> {
    let docker = Docker::new(Printer::detect(global.quiet || args.json));
    let mut pre = preflight::check_engine(&docker);
    let mut spec_note = None;
    if !pre.failed() {
        if global.spec.is_file() {
            // A spec that does not validate is the user's to fix: exit 2 with its problems.
            let project = Project::load(&global.spec, &args.out)?;
            let plan = project.plan;
            if let Some(target) = plan.swarm() {
                pre.findings
                    .extend(crate::deploy::swarm::doctor::doctor(&docker, target));
            }
            let compose_file = project.out_dir.join("compose.yaml");
            let config = preflight::read_config(&docker, &plan.project, &compose_file);
            let needs = preflight::image_needs(&plan, config.as_ref());
            pre.findings
                .extend(preflight::check_images(&docker, &needs, config.is_some()));
            spec_note = Some(global.spec.display().to_string());
        } else {
            pre.findings.push(Finding {
                check: "images".into(),
                status: Status::Warn,
                detail: format!(
                    "no spec at {}: the images a stack needs were not checked",
                    global.spec.display()
                ),
                fix: Some("run doctor beside provision.yaml, or pass --spec FILE".into()),
            });
        }
    }
    let failures = pre
        .findings
        .iter()
        .filter(|f| f.status == Status::Fail)
        .count();
    if args.json {
        let report = DoctorReport {
            ok: failures == 0,
            spec: spec_note,
            preflight: &pre,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", to_text(&pre));
    }
    if failures > 0 {
        return Err(CheckFailed(format!(
            "doctor found {failures} problem{}",
            if failures == 1 { "" } else { "s" }
        ))
        .into());
    }
    Ok(ExitStatus::Success)
}

fn to_text(pre: &Preflight) -> String {
    let width = pre
        .findings
        .iter()
        .map(|f| f.check.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for f in &pre.findings {
        let status = match f.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        out.push_str(&format!("{status}  {:width$}  {}\n", f.check, f.detail));
        if let Some(fix) = &f.fix {
            out.push_str(&format!("{:width$}        what to do: {fix}\n", ""));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_up_and_gives_advice() {
        let pre = Preflight {
            engine: Default::default(),
            findings: vec![
                Finding {
                    check: "docker".into(),
                    status: Status::Ok,
                    detail: "docker CLI 28.2.2".into(),
                    fix: None,
                },
                Finding {
                    check: "compose".into(),
                    status: Status::Fail,
                    detail: "the Compose v2 plugin is missing".into(),
                    fix: Some("install it".into()),
                },
            ],
        };
        insta::assert_snapshot!(to_text(&pre), @r"
        ok    docker   docker CLI 28.2.2
        FAIL  compose  the Compose v2 plugin is missing
                       what to do: install it
        ");
    }
}
