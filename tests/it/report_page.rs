//! The report page of a real load run against a local server (no engine needed): written by
//! `Picture::write`, its plot parsed, and opened in headless Chromium without a network
//! (screenshot: target/ci-artifacts/report-local.png). The e2e test `e2e.rs` does the same with
//! `verify --scale 10 --load 100 --report` on a real stack.

use std::time::Duration;

use provision::picture::Picture;
use provision::probe::load::LoadOptions;
use provision::probe::measure;
use provision::timeline::{self, EventKind};

use crate::support::harness::Project;
use crate::support::picture::{answering_server, drawn, screenshot};

#[test]
fn a_report_page_of_a_real_load_opens_in_headless_chromium() {
    let mut options = LoadOptions::new(answering_server(), 50.0);
    options.header = Some("X-Provision-Server".into());
    let measuring = measure::start(options, None, "web", None).unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    timeline::mark(EventKind::BatchStarted, "web 2 -> 4");
    std::thread::sleep(Duration::from_millis(1200));
    timeline::mark(EventKind::Routed, "web-3");
    std::thread::sleep(Duration::from_millis(900));
    let (load, seen) = measuring.stop();
    assert_eq!(load.failed, 0, "{load:#?}");
    let project = Project::new();
    let path = project.path().join("report.html");
    Picture {
        title: "a local load".into(),
        project: "hits",
        passed: true,
        verdict: load.summary_lines(),
        load: &load,
        up: &seen.servers_up,
        events: &seen.events,
    }
    .write(&path)
    .unwrap();
    let page = project.read("report.html");
    let drawn = drawn(&page);
    for label in [
        "batch started web 2 -> 4",
        "routed web-3",
        "requests/s",
        "p99 ms",
    ] {
        assert!(
            drawn.texts.iter().any(|t| t == label),
            "no {label:?} in {:?}",
            drawn.texts
        );
    }
    assert!(
        drawn.lines.iter().any(|(_, n)| *n == load.per_second.len()),
        "no line with one point per second ({}): {:?}",
        load.per_second.len(),
        drawn.lines
    );
    screenshot(&path, "report-local.png");
}
