//! `provision doctor`: the preflight on its own. Checks docker, its daemon, the API version, the
//! Compose v2 plugin and, when a spec is at hand, every image the stack needs.
//!
//! Text: one line per finding, then a summary line; with `-q` only the findings that are not
//! ok, and the summary. `--json`: the envelope (docs/json.md) with the engine and findings.
//! Exit 1 when any finding failed.

use serde::Serialize;

use crate::cli::DoctorArgs;
use crate::commands::Global;
use crate::docker::preflight::{self, Finding, HubReach, Preflight, Status};
use crate::docker::Docker;
use crate::images::OfflineImages;
use crate::printer::Palette;
use crate::render::Project;
use crate::ExitStatus;

/// doctor's fields in the JSON envelope (`ok` is the envelope's).
#[derive(Serialize)]
struct DoctorReport<'a> {
    /// The spec whose images were checked; null when there was none.
    spec: Option<String>,
    #[serde(flatten)]
    preflight: &'a Preflight,
}

pub fn run(global: &Global, args: DoctorArgs) -> anyhow::Result<ExitStatus> {
    let printer = &global.printer;
    // The spec first, before anything asks docker: one that does not validate is the user's to
    // fix (exit 2 with its problems), whatever state the engine is in.
    let project = if global.spec.is_file() {
        Some(Project::load(&global.spec, &args.out)?)
    } else {
        None
    };
    let docker = Docker::new(*printer);
    let mut pre = preflight::check_engine(&docker);
    let mut spec_note = None;
    if !pre.failed() {
        if let Some(project) = project {
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
            pre.findings.extend(certificate_finding(&plan));
            spec_note = Some(global.spec.display().to_string());
        } else {
            pre.findings.extend(registry_finding(&docker));
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
            spec: spec_note,
            preflight: &pre,
        };
        crate::json::print(printer, "doctor", failures == 0, report)?;
    } else {
        let shown = if printer.is_quiet() {
            Shown::Problems
        } else {
            Shown::All
        };
        printer
            .stdout()
            .text(&to_text(&pre, shown, &printer.palette()))?;
    }
    if failures > 0 {
        printer.failure(&format!(
            "doctor found {failures} problem{}",
            if failures == 1 { "" } else { "s" }
        ));
        return Ok(ExitStatus::Failure);
    }
    Ok(ExitStatus::Success)
}

/// The lb's certificate (`lb.tls`), once apply has stored one: a warning when it expires in
/// fewer than `lb_tls::WARN_DAYS` days.
fn certificate_finding(plan: &crate::spec::Plan) -> Option<Finding> {
    plan.lb.tls.as_ref()?;
    let finding = |status, detail: String, fix: Option<&str>| Finding {
        check: "certificate".into(),
        status,
        detail,
        fix: fix.map(str::to_owned),
    };
    Some(match crate::lb_tls::stored_info(&plan.project) {
        Ok(None) => return None,
        Ok(Some(info)) => {
            let now = crate::lb_tls::now();
            if info.days_left(now) < crate::lb_tls::WARN_DAYS {
                finding(
                    Status::Warn,
                    info.describe(now),
                    Some("renew it: replace lb.tls.cert/key, or change lb.tls.names for a new self-signed one, then `provision apply`"),
                )
            } else {
                finding(Status::Ok, info.describe(now), None)
            }
        }
        Err(err) => finding(
            Status::Warn,
            format!("the lb's certificate cannot be read: {err:#}"),
            None,
        ),
    })
}

/// Before there is a spec: can the default images be pulled at all? When Docker Hub does not
/// answer, the way forward is the offline images (built here from Debian's mirror).
fn registry_finding(docker: &Docker) -> Option<Finding> {
    match preflight::hub_reach(docker) {
        HubReach::Answers => Some(Finding::ok(
            "registry",
            "Docker Hub answers: the default images can be pulled",
        )),
        HubReach::Unreachable(why) => Some(offline_advice(docker, &why)),
        HubReach::Unknown(_) => None,
    }
}

fn offline_advice(docker: &Docker, why: &str) -> Finding {
    let images = OfflineImages::from_env();
    let built = docker
        .images_present(&images.all())
        .is_ok_and(|present| present.iter().all(|p| *p));
    let fix = if built {
        "the offline images are present: `provision init --offline` writes a spec on them"
            .to_owned()
    } else {
        "build the offline images from Debian's mirror with `provision images build` (as root), \
         then `provision init --offline` writes a spec on them (docs/offline.md)"
            .to_owned()
    };
    Finding::warn(
        "registry",
        format!("no image registry answers from this machine ({why}): the default images cannot be pulled"),
        fix,
    )
}

/// Which findings the text shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    All,
    /// `-q`: warnings and failures only.
    Problems,
}

fn to_text(pre: &Preflight, shown: Shown, palette: &Palette) -> String {
    let width = pre
        .findings
        .iter()
        .map(|f| f.check.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for f in &pre.findings {
        if shown == Shown::Problems && f.status == Status::Ok {
            continue;
        }
        let status = match f.status {
            Status::Ok => palette.pass("ok  "),
            Status::Warn => palette.warn("warn"),
            Status::Fail => palette.fail("FAIL"),
        };
        out.push_str(&format!("{status}  {:width$}  {}\n", f.check, f.detail));
        if let Some(fix) = &f.fix {
            out.push_str(&format!("{:width$}        what to do: {fix}\n", ""));
        }
    }
    let count = |status| pre.findings.iter().filter(|f| f.status == status).count();
    out.push_str(&format!(
        "doctor: {} ok, {} warning{}, {} failed\n",
        count(Status::Ok),
        count(Status::Warn),
        if count(Status::Warn) == 1 { "" } else { "s" },
        count(Status::Fail)
    ));
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
        insta::assert_snapshot!(to_text(&pre, Shown::All, &Palette::plain()), @r"
        ok    docker   docker CLI 28.2.2
        FAIL  compose  the Compose v2 plugin is missing
                       what to do: install it
        doctor: 1 ok, 0 warnings, 1 failed
        ");
        insta::assert_snapshot!(to_text(&pre, Shown::Problems, &Palette::plain()), @r"
        FAIL  compose  the Compose v2 plugin is missing
                       what to do: install it
        doctor: 1 ok, 0 warnings, 1 failed
        ");
    }
}
