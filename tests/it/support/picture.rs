//! The picture of a run (`--report FILE.html`), checked the way a reader meets it: the page's
//! SVG parsed for its lines and event marks, and the page opened in headless Chromium with no
//! network, its screenshot kept under `target/ci-artifacts/` (a CI artifact).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::harness::{external_tool, repo_root};

/// Where CI picks up what the tests leave for people to look at.
pub(crate) fn artifacts_dir() -> PathBuf {
    let dir = repo_root().join("target/ci-artifacts");
    std::fs::create_dir_all(&dir).expect("creating target/ci-artifacts");
    dir
}

/// The `<text>` contents and the polylines (stroke, number of points) of the page's one SVG.
pub(crate) struct Drawn {
    pub texts: Vec<String>,
    pub lines: Vec<(String, usize)>,
}

pub(crate) fn drawn(html: &str) -> Drawn {
    let start = html.find("<svg").expect("no <svg> in the page");
    let end = html.rfind("</svg>").expect("no </svg> in the page") + "</svg>".len();
    let doc = roxmltree::Document::parse(&html[start..end]).expect("the SVG is well-formed XML");
    Drawn {
        texts: doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text().map(|t| t.trim().to_owned()))
            .collect(),
        lines: doc
            .descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .map(|n| {
                (
                    n.attribute("stroke").unwrap_or_default().to_uppercase(),
                    n.attribute("points")
                        .unwrap_or_default()
                        .split_whitespace()
                        .count(),
                )
            })
            .collect(),
    }
}

/// The page of a `verify --scale N --load R --report` run that started `new_replicas`: its plot
/// has the load's series (one point per second of `report`'s `per_second`), the servers UP,
/// and a labelled mark for each batch and each replica routed, as `report`'s timeline lists.
pub(crate) fn assert_report_page(html: &str, report: &Value, new_replicas: usize) {
    let seconds = report["load"]["per_second"]
        .as_array()
        .expect("load.per_second in the JSON report")
        .len();
    assert!(seconds >= 3, "{seconds} seconds of load");
    let drawn = drawn(html);
    let colour = |c: plotters_rgb::Rgb| format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2);
    for (label, rgb, points) in [
        ("requests/s", plotters_rgb::SENT, Some(seconds)),
        ("failed/s", plotters_rgb::FAILED, Some(seconds)),
        ("p99 ms", plotters_rgb::P99, None),
        ("servers UP (HAProxy)", plotters_rgb::UP, None),
    ] {
        assert!(
            drawn.texts.iter().any(|t| t == label),
            "no legend {label:?}: {:?}",
            drawn.texts
        );
        let longest = drawn
            .lines
            .iter()
            .filter(|(stroke, _)| *stroke == colour(rgb))
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0);
        match points {
            Some(n) => assert_eq!(longest, n, "{label}: points of its line"),
            None => assert!(longest >= 3, "{label}: a line of {longest} points"),
        }
    }
    let events = report["timeline"]["events"]
        .as_array()
        .expect("timeline.events in the JSON report");
    let routed = events.iter().filter(|e| e["kind"] == "routed").count();
    assert!(
        routed >= new_replicas,
        "{routed} replicas routed in the timeline, {new_replicas} started: {events:?}"
    );
    assert!(events.iter().any(|e| e["kind"] == "batch_started"));
    for event in events {
        let kind = event["kind"].as_str().unwrap().replace('_', " ");
        let what = event["what"].as_str().unwrap();
        // A long label is cut (with an ellipsis) to fit the panel.
        let label = format!("{kind} {what}");
        let prefix: String = label.chars().take(30).collect();
        assert!(
            drawn
                .texts
                .iter()
                .any(|t| *t == label || t.starts_with(&prefix) && t.ends_with('…')),
            "no mark labelled {label:?} in the plot"
        );
    }
    let up: Vec<u64> = report["timeline"]["servers_up"]["samples"]
        .as_array()
        .expect("timeline.servers_up.samples")
        .iter()
        .map(|s| s["up"].as_u64().unwrap())
        .collect();
    assert!(
        up.iter().max() > up.first(),
        "the servers UP never grew during the scale-up: {up:?}"
    );
}

/// The series colours of `provision::picture::svg`, as plain numbers (the test reads the SVG as
/// any reader would, not through the library's types).
mod plotters_rgb {
    #[derive(Clone, Copy)]
    pub struct Rgb(pub u8, pub u8, pub u8);
    pub const SENT: Rgb = Rgb(0x1f, 0x77, 0xb4);
    pub const FAILED: Rgb = Rgb(0xd6, 0x27, 0x28);
    pub const P99: Rgb = Rgb(0xff, 0x7f, 0x0e);
    pub const UP: Rgb = Rgb(0x94, 0x67, 0xbd);
}

/// Opens `page` in headless Chromium, without a network (in a new network namespace where
/// `unshare` may make one), and saves a 1200x900 screenshot as `target/ci-artifacts/NAME`.
/// None (skipped by the skip rule) without Chromium.
pub(crate) fn screenshot(page: &Path, name: &str) -> Option<PathBuf> {
    let chromium = external_tool("chromium", "the report's screenshot in headless Chromium")?;
    let out = artifacts_dir().join(name);
    let _ = std::fs::remove_file(&out);
    let profile = tempfile::tempdir().expect("a profile directory");
    let args: Vec<String> = vec![
        "--headless".into(),
        "--no-sandbox".into(),
        "--disable-background-networking".into(),
        "--disable-gpu".into(),
        "--hide-scrollbars".into(),
        format!("--user-data-dir={}", profile.path().display()),
        format!("--screenshot={}", out.display()),
        "--window-size=1200,900".into(),
        format!(
            "file://{}",
            page.canonicalize().expect("the page").display()
        ),
    ];
    // No network at all where a namespace can be made (root, or user namespaces allowed).
    let isolated = Command::new("unshare")
        .args(["--net", "--map-root-user", "true"])
        .status()
        .is_ok_and(|s| s.success());
    let mut command = if isolated {
        let mut c = Command::new("unshare");
        c.args(["--net", "--map-root-user"]).arg(&chromium);
        c
    } else {
        Command::new(&chromium)
    };
    let ran = command.args(&args).output().expect("running chromium");
    assert!(
        ran.status.success() && out.exists(),
        "chromium did not save a screenshot ({}):\n{}{}",
        ran.status,
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr)
    );
    let png = std::fs::read(&out).unwrap();
    assert_eq!(&png[1..4], b"PNG", "not a PNG");
    // IHDR: width and height, big-endian, at bytes 16..24.
    let size = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from_be_bytes(png[20..24].try_into().unwrap()),
    );
    assert_eq!(size, (1200, 900), "screenshot size");
    // A blank or error page compresses to a few kB; the plot's lines and text take tens
    // (87 and 163 kB for the two pages the tests take).
    assert!(
        png.len() > 30_000,
        "the screenshot is {} bytes: is the page blank?",
        png.len()
    );
    Some(out)
}

/// A local server that answers every connection `200 OK` with its name in `X-Provision-Server`.
pub(crate) fn answering_server() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a local port");
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nX-Provision-Server: web1 127.0.0.1:1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
            );
        }
    });
    url
}
