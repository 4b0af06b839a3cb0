//! The page and its SVG, parsed: every series is a line with as many points as it has values,
//! every event a mark with its label, and the page carries nothing from the network.

use super::svg::{self, SeriesStyle};
use super::Picture;
use crate::probe::load::{LoadReport, Second};
use crate::probe::up_watch::{UpSample, UpSeries};
use crate::timeline::{EventKind, PlacedEvent};

fn load(seconds: Vec<Second>) -> LoadReport {
    LoadReport {
        url: "http://127.0.0.1:8080/".into(),
        target_rate_per_sec: 100.0,
        achieved_rate_per_sec: 100.0,
        duration_secs: seconds.len() as f64,
        intended: 100 * seconds.len() as u64,
        sent: seconds.iter().map(|s| s.sent).sum(),
        not_sent: 0,
        succeeded: seconds.iter().map(|s| s.sent - s.failed).sum(),
        failed: seconds.iter().map(|s| s.failed).sum(),
        failures: Default::default(),
        failure_samples: Vec::new(),
        last_failure_secs: None,
        latency: None,
        send_lag: None,
        workers: 4,
        waited_for_worker: 0,
        served_by: None,
        joined: None,
        problems: Vec::new(),
        per_second: seconds,
    }
}

fn second(at_secs: u64, failed: u64, p99_ms: Option<f64>, answering: u64) -> Second {
    Second {
        at_secs,
        sent: 100,
        failed,
        p50_ms: p99_ms.map(|p| p / 4.0),
        p99_ms,
        answering,
    }
}

fn colour(style: SeriesStyle) -> String {
    let c = style.colour;
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

/// The `points` of every polyline of `colour`, as (x, y) pairs.
fn lines_of(doc: &roxmltree::Document<'_>, colour: &str) -> Vec<Vec<(f64, f64)>> {
    doc.descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter(|n| {
            n.attribute("stroke")
                .is_some_and(|s| s.eq_ignore_ascii_case(colour))
        })
        .map(|n| {
            n.attribute("points")
                .unwrap_or_default()
                .split_whitespace()
                .map(|p| {
                    let (x, y) = p.split_once(',').expect("x,y");
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect()
        })
        .collect()
}

#[test]
fn the_svg_has_every_series_and_every_event_mark() {
    let seconds = vec![
        second(0, 0, Some(8.0), 3),
        second(1, 0, Some(9.0), 3),
        // A second whose latencies are unknown: no p99 point, the line skips it.
        Second {
            sent: 0,
            ..second(2, 0, None, 0)
        },
        second(3, 7, Some(40.0), 4),
        second(4, 0, Some(8.0), 4),
    ];
    let report = load(seconds);
    let up = UpSeries {
        samples: (0..20)
            .map(|i| UpSample {
                at_secs: f64::from(i) * 0.25,
                up: if i < 10 { 3 } else { 4 },
                servers: 4,
            })
            .collect(),
        unread: 0,
        first_error: None,
    };
    let events = [
        PlacedEvent {
            at_secs: 1.2,
            kind: EventKind::BatchStarted,
            what: "web 3 -> 4".into(),
        },
        PlacedEvent {
            at_secs: 2.6,
            kind: EventKind::Routed,
            what: "web-4 <172.20.0.9>".into(),
        },
        PlacedEvent {
            at_secs: 3.9,
            kind: EventKind::RolledBack,
            what: "error rate".into(),
        },
    ];
    let picture = Picture {
        title: "provision verify --scale 4 --load 100".into(),
        project: "hits",
        passed: true,
        verdict: vec!["load: 500 sent".into()],
        load: &report,
        up: &up,
        events: &events,
    };
    let text = svg::render(&picture).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("the SVG is well-formed XML");

    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_owned()))
        .collect();
    for (style, points) in [
        (svg::SENT, 5),
        (svg::FAILED, 5),
        (svg::P50, 4),
        (svg::P99, 4),
        (svg::UP, 20),
        (svg::ANSWERING, 5),
    ] {
        let lines = lines_of(&doc, &colour(style));
        // The series' line and its legend's sample (2 points).
        assert!(
            lines.iter().any(|l| l.len() == points),
            "{}: no line of {points} points among {lines:?}",
            style.label
        );
        assert!(
            texts.iter().any(|t| t == style.label),
            "{}: no legend in {texts:?}",
            style.label
        );
    }
    // The failures' peak is the highest point (smallest y) of the failed line.
    let failed = lines_of(&doc, &colour(svg::FAILED))
        .into_iter()
        .find(|l| l.len() == 5)
        .unwrap();
    let peak = failed
        .iter()
        .enumerate()
        .min_by(|a, b| a.1 .1.total_cmp(&b.1 .1))
        .unwrap()
        .0;
    assert_eq!(
        peak, 3,
        "the failures plotted at the wrong second: {failed:?}"
    );

    for event in &events {
        let label = svg::mark_label(event.kind, &event.what);
        assert!(texts.contains(&label), "no label {label:?} in {texts:?}");
        let c = svg::event_colour(event.kind);
        let marks = lines_of(&doc, &format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2));
        // A vertical line in each of the three panels.
        let vertical = marks
            .iter()
            .filter(|l| l.len() == 2 && l[0].0 == l[1].0)
            .count();
        assert_eq!(vertical, 3, "{label}: marks {marks:?}");
    }
    // Marks are in time order left to right.
    let x_of = |kind: EventKind| {
        let c = svg::event_colour(kind);
        lines_of(&doc, &format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2))[0][0].0
    };
    assert!(x_of(EventKind::BatchStarted) < x_of(EventKind::Routed));
    assert!(x_of(EventKind::Routed) < x_of(EventKind::RolledBack));
}

#[test]
fn long_mark_labels_are_cut() {
    let label = svg::mark_label(
        EventKind::Routed,
        "provision-e2e-dns-web-10 (container 0123456789ab)",
    );
    assert_eq!(label.chars().count(), svg::MARK_LABEL_CHARS + 1);
    assert!(label.starts_with("routed provision-e2e") && label.ends_with('…'));
    assert_eq!(svg::mark_label(EventKind::Drained, "web3"), "drained web3");
}

#[test]
fn the_page_is_self_contained_and_escapes_what_it_is_told() {
    let report = load(vec![second(0, 0, Some(5.0), 2)]);
    let up = UpSeries::default();
    let events = [PlacedEvent {
        at_secs: 0.5,
        kind: EventKind::Drained,
        what: "<script>alert(1)</script>".into(),
    }];
    let picture = Picture {
        title: "verify & <friends>".into(),
        project: "hits",
        passed: false,
        verdict: vec!["load problem: 1 of 100 requests failed".into()],
        load: &report,
        up: &up,
        events: &events,
    };
    let html = picture.to_html().unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg"), "no inline SVG");
    assert!(!html.contains("<script"), "a script in the page");
    assert!(
        html.contains("&lt;script&gt;"),
        "the event text is not escaped"
    );
    assert!(html.contains("verify &amp; &lt;friends&gt;"));
    // Nothing is fetched: no script, no link, no URL but the SVG namespace's name.
    let urls = html.replace("http://www.w3.org/2000/svg", "");
    for remote in ["http://", "https://", "src=", "<link"] {
        assert!(!urls.contains(remote), "the page refers to {remote}");
    }
    assert!(html.contains("failed"));
}

#[test]
fn the_page_is_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.html");
    let report = load(vec![second(0, 0, Some(5.0), 2)]);
    let picture = Picture {
        title: "t".into(),
        project: "hits",
        passed: true,
        verdict: Vec::new(),
        load: &report,
        up: &UpSeries::default(),
        events: &[],
    };
    picture.write(&path).unwrap();
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(html.contains("no deploy event during the load"));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "a temporary file left"
    );
}
