//! The report's plot, drawn by `plotters` into one SVG: three panels over the same time axis
//! (requests and failures per second; p50 and p99 latency per second; servers UP and replicas
//! answering), and a vertical mark with its label for each event, on every panel.
//!
//! Colours are fixed per series ([`SERIES`]) so that a reader, or a test parsing the SVG, can
//! tell the lines apart without a script.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::Picture;
use crate::timeline::EventKind;

/// Width and height of the SVG, in pixels.
pub const SIZE: (u32, u32) = (1100, 780);

/// A plotted series: its legend label and the colour of its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesStyle {
    pub label: &'static str,
    pub colour: RGBColor,
}

pub const SENT: SeriesStyle = SeriesStyle {
    label: "requests/s",
    colour: RGBColor(0x1f, 0x77, 0xb4),
};
pub const FAILED: SeriesStyle = SeriesStyle {
    label: "failed/s",
    colour: RGBColor(0xd6, 0x27, 0x28),
};
pub const P50: SeriesStyle = SeriesStyle {
    label: "p50 ms",
    colour: RGBColor(0x2c, 0xa0, 0x2c),
};
pub const P99: SeriesStyle = SeriesStyle {
    label: "p99 ms",
    colour: RGBColor(0xff, 0x7f, 0x0e),
};
pub const UP: SeriesStyle = SeriesStyle {
    label: "servers UP (HAProxy)",
    colour: RGBColor(0x94, 0x67, 0xbd),
};
pub const ANSWERING: SeriesStyle = SeriesStyle {
    label: "replicas answering",
    colour: RGBColor(0x17, 0xbe, 0xcf),
};
/// Every series, in drawing order.
pub const SERIES: [SeriesStyle; 6] = [SENT, FAILED, P50, P99, UP, ANSWERING];

/// The colour of an event's mark.
pub fn event_colour(kind: EventKind) -> RGBColor {
    match kind {
        EventKind::BatchStarted => RGBColor(0x55, 0x55, 0x55),
        EventKind::Routed => RGBColor(0x2c, 0xa0, 0x2c),
        EventKind::Drained => RGBColor(0x8c, 0x56, 0x4b),
        EventKind::Reloaded => RGBColor(0x17, 0x6f, 0xcf),
        EventKind::CanaryStarted => RGBColor(0xbc, 0xbd, 0x22),
        EventKind::Promoted => RGBColor(0x1a, 0x8a, 0x1a),
        EventKind::RolledBack => RGBColor(0xd6, 0x27, 0x28),
    }
}

type Points = Vec<(f64, f64)>;

/// One panel: a caption, a y-axis name, and its series.
struct Panel<'a> {
    caption: &'a str,
    y_desc: &'a str,
    series: Vec<(SeriesStyle, Points)>,
    /// Draw each event's label in this panel (only the top one, to keep the others readable).
    labels: bool,
}

/// The SVG of `picture`.
pub fn render(picture: &Picture<'_>) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let seconds = &picture.load.per_second;
        // A point at the middle of its second: requests due in [s, s+1).
        let mid = |s: u64| s as f64 + 0.5;
        let sent: Points = seconds
            .iter()
            .map(|s| (mid(s.at_secs), s.sent as f64))
            .collect();
        let failed: Points = seconds
            .iter()
            .map(|s| (mid(s.at_secs), s.failed as f64))
            .collect();
        let p50: Points = seconds
            .iter()
            .filter_map(|s| Some((mid(s.at_secs), s.p50_ms?)))
            .collect();
        let p99: Points = seconds
            .iter()
            .filter_map(|s| Some((mid(s.at_secs), s.p99_ms?)))
            .collect();
        let up: Points = picture
            .up
            .samples
            .iter()
            .map(|s| (s.at_secs, f64::from(s.up)))
            .collect();
        let answering: Points = seconds
            .iter()
            .map(|s| (mid(s.at_secs), s.answering as f64))
            .collect();
        let panels = [
            Panel {
                caption: "requests per second through the load balancer",
                y_desc: "requests",
                series: vec![(SENT, sent), (FAILED, failed)],
                labels: true,
            },
            Panel {
                caption: "latency per second (from when each request was due)",
                y_desc: "ms",
                series: vec![(P50, p50), (P99, p99)],
                labels: false,
            },
            Panel {
                caption: "web replicas",
                y_desc: "replicas",
                series: vec![(UP, up), (ANSWERING, answering)],
                labels: false,
            },
        ];
        let end = picture.end_secs();
        let areas = root.split_evenly((panels.len(), 1));
        for (panel, area) in panels.iter().zip(&areas) {
            draw_panel(area, panel, end, picture)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    panel: &Panel<'_>,
    end: f64,
    picture: &Picture<'_>,
) -> anyhow::Result<()> {
    let top = panel
        .series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.1))
        .fold(0.0_f64, f64::max);
    // Head room for the legend; at least 1 so that an all-zero series still has an axis.
    let y_max = (top * 1.2).max(1.0);
    let mut chart = ChartBuilder::on(area)
        .caption(panel.caption, ("sans-serif", 17))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..end, 0.0..y_max)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(panel.y_desc)
        .light_line_style(RGBColor(0xee, 0xee, 0xee))
        .draw()
        .map_err(plot_error)?;
    for event in picture.events {
        let colour = event_colour(event.kind);
        chart
            .draw_series(LineSeries::new(
                [(event.at_secs, 0.0), (event.at_secs, y_max)],
                colour.stroke_width(1),
            ))
            .map_err(plot_error)?;
        if panel.labels {
            let style = ("sans-serif", 11)
                .into_font()
                .transform(FontTransform::Rotate90)
                .color(&colour)
                .pos(Pos::new(HPos::Left, VPos::Top));
            chart
                .draw_series(std::iter::once(Text::new(
                    mark_label(event.kind, &event.what),
                    (event.at_secs, y_max),
                    style,
                )))
                .map_err(plot_error)?;
        }
    }
    for (style, points) in &panel.series {
        let colour = style.colour;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(plot_error)?
            .label(style.label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(0xaa, 0xaa, 0xaa))
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

/// Longest label drawn along a mark: about the height of a panel at 11 px (the full text is in
/// the page's table of events).
pub const MARK_LABEL_CHARS: usize = 30;

/// The label of an event's mark: its kind and what it was about, cut to [`MARK_LABEL_CHARS`].
pub fn mark_label(kind: EventKind, what: &str) -> String {
    let full = format!("{} {what}", kind.label());
    match full.char_indices().nth(MARK_LABEL_CHARS) {
        Some((cut, _)) => format!("{}…", &full[..cut]),
        None => full,
    }
}

/// plotters' drawing errors carry the backend's error type; the text is what matters.
fn plot_error<E: std::error::Error + Send + Sync>(err: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow::anyhow!("drawing the report's plot: {err}")
}
