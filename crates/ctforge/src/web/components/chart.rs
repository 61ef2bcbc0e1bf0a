//! Server-rendered, accessible SVG line charts (no JavaScript library): `role="img"` with a
//! `<title>` and a `<desc>` summarising min/max/last per series, y-axis labels in the right
//! units (bytes as KiB/MiB/GiB, rates as B/s, KiB/s…), gaps where Proxmox omitted a value
//! (the polyline is split into separate `<path>` segments; missing points are never drawn as
//! zero) and a hover read-out through `<title>` elements on invisible per-point rects.
//! [`rrd_charts`] turns Proxmox `rrddata` into the five resource charts.

use std::fmt::Write as _;

use ctforge_pve::types::{RrdPoint, Timeframe};
use maud::{Markup, html};
use time::OffsetDateTime;

/// Charts are downsampled to at most this many points (bucket averages; a bucket without any
/// value stays a gap).
pub const MAX_POINTS: usize = 240;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 26.0;
const TICKS: usize = 4;

/// The unit of a chart's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Percent (values already multiplied by 100).
    Percent,
    /// Bytes (binary prefixes).
    Bytes,
    /// Bytes per second (binary prefixes).
    BytesPerSec,
}

/// One line of a chart: a label and one optional value per time of the chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label (`Used`, `In`, …).
    pub label: String,
    /// Values aligned with [`Chart::times`]; `None` is a gap.
    pub values: Vec<Option<f64>>,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Element id prefix (unique on the page).
    pub id: String,
    /// Heading and SVG title.
    pub title: String,
    /// Unit of every series.
    pub unit: Unit,
    /// Unix seconds of each point.
    pub times: Vec<i64>,
    /// The lines.
    pub series: Vec<Series>,
}

const BIN_UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/// The binary-prefix exponent for `v` (0 = B, 1 = KiB, …).
fn exponent(v: f64) -> usize {
    let mut e = 0;
    let mut x = v.abs();
    while x >= 1024.0 && e < BIN_UNITS.len() - 1 {
        x /= 1024.0;
        e += 1;
    }
    e
}

fn trim_num(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

fn with_exponent(v: f64, e: usize, unit: Unit) -> String {
    let scaled = v / 1024f64.powi(e as i32);
    let suffix = if unit == Unit::BytesPerSec { "/s" } else { "" };
    let decimals = if scaled.abs() >= 100.0 || e == 0 {
        0
    } else {
        1
    };
    format!("{} {}{suffix}", trim_num(scaled, decimals), BIN_UNITS[e])
}

/// A value as a human reads it: `12.5 %`, `1.5 GiB`, `3.2 KiB/s`.
pub fn fmt_value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Percent => format!("{} %", trim_num(v, if v.abs() < 10.0 { 2 } else { 1 })),
        Unit::Bytes | Unit::BytesPerSec => with_exponent(v, exponent(v), unit),
    }
}

/// A "nice" step (1, 2, 2.5, 5 × 10ⁿ) at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let n = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 2.5 {
        2.5
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    n * mag
}

/// Y-axis step and the exponent used for its labels.
fn axis(unit: Unit, max: f64) -> (f64, usize) {
    match unit {
        Unit::Percent => (nice_step(max.max(1.0) / TICKS as f64), 0),
        Unit::Bytes | Unit::BytesPerSec => {
            let e = exponent(max);
            let base = 1024f64.powi(e as i32);
            let step = nice_step((max / base).max(1e-9) / TICKS as f64) * base;
            (step, e)
        }
    }
}

fn tick_label(unit: Unit, v: f64, e: usize) -> String {
    match unit {
        Unit::Percent => format!("{} %", trim_num(v, 2)),
        Unit::Bytes | Unit::BytesPerSec => {
            let scaled = v / 1024f64.powi(e as i32);
            let suffix = if unit == Unit::BytesPerSec { "/s" } else { "" };
            format!("{} {}{suffix}", trim_num(scaled, 2), BIN_UNITS[e])
        }
    }
}

fn fmt_time(t: i64, span: i64) -> String {
    let Ok(dt) = OffsetDateTime::from_unix_timestamp(t) else {
        return t.to_string();
    };
    if span <= 2 * 86_400 {
        format!("{:02}:{:02}", dt.hour(), dt.minute())
    } else if span <= 40 * 86_400 {
        format!(
            "{:02}-{:02} {:02}:00",
            u8::from(dt.month()),
            dt.day(),
            dt.hour()
        )
    } else {
        format!("{}-{:02}-{:02}", dt.year(), u8::from(dt.month()), dt.day())
    }
}

fn fmt_full_time(t: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(t) {
        Ok(dt) => format!(
            "{}-{:02}-{:02} {:02}:{:02} UTC",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute()
        ),
        Err(_) => t.to_string(),
    }
}

fn clean(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// Averages consecutive buckets so that at most [`MAX_POINTS`] remain; a bucket whose values
/// are all missing stays missing.
fn downsample(chart: &Chart) -> (Vec<i64>, Vec<Vec<Option<f64>>>) {
    let n = chart.times.len();
    let size = n.div_ceil(MAX_POINTS).max(1);
    let times: Vec<i64> = chart.times.iter().step_by(size).copied().collect();
    let series = chart
        .series
        .iter()
        .map(|s| {
            (0..times.len())
                .map(|b| {
                    let vals: Vec<f64> = (b * size..((b + 1) * size).min(n))
                        .filter_map(|i| clean(s.values.get(i).copied().flatten()))
                        .collect();
                    (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64)
                })
                .collect()
        })
        .collect();
    (times, series)
}

/// Min, max and last value of a series.
fn summary(values: &[Option<f64>]) -> Option<(f64, f64, f64)> {
    let present: Vec<f64> = values.iter().filter_map(|v| clean(*v)).collect();
    let last = *present.last()?;
    let min = present.iter().copied().fold(f64::INFINITY, f64::min);
    let max = present.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((min, max, last))
}

/// Renders a chart as an accessible SVG figure with a legend.
pub fn line_chart(chart: &Chart) -> Markup {
    let (times, series) = downsample(chart);
    let unit = chart.unit;
    let id = &chart.id;
    let data_max = series
        .iter()
        .flatten()
        .filter_map(|v| clean(*v))
        .fold(0.0f64, f64::max);
    let (step, e) = axis(unit, data_max);
    let steps = if data_max > 0.0 {
        (data_max / step).ceil().max(1.0)
    } else {
        TICKS as f64
    };
    let y_max = step * steps;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let n = times.len();
    let x_of = |i: usize| {
        if n <= 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * i as f64 / (n - 1) as f64
        }
    };
    let y_of = |v: f64| TOP + plot_h - plot_h * (v / y_max).clamp(0.0, 1.0);

    let mut desc = String::new();
    for (s, values) in chart.series.iter().zip(&series) {
        match summary(values) {
            Some((min, max, last)) => {
                let _ = write!(
                    desc,
                    "{}: min {}, max {}, last {}. ",
                    s.label,
                    fmt_value(unit, min),
                    fmt_value(unit, max),
                    fmt_value(unit, last)
                );
            }
            None => {
                let _ = write!(desc, "{}: no data. ", s.label);
            }
        }
    }
    let missing = series.iter().all(|v| v.iter().all(|x| x.is_none()));
    if missing {
        desc = "No data for this period.".to_owned();
    }
    let span = match (times.first(), times.last()) {
        (Some(a), Some(b)) => b - a,
        _ => 0,
    };
    if let (Some(a), Some(b)) = (times.first(), times.last()) {
        let _ = write!(
            desc,
            " From {} to {}.",
            fmt_full_time(*a),
            fmt_full_time(*b)
        );
    }

    // Gapped line segments per series.
    let paths: Vec<Vec<String>> = series
        .iter()
        .map(|values| {
            let mut segs = Vec::new();
            let mut cur = String::new();
            for (i, v) in values.iter().enumerate() {
                match clean(*v) {
                    Some(v) => {
                        let cmd = if cur.is_empty() { 'M' } else { 'L' };
                        let _ = write!(cur, "{cmd}{:.1} {:.1} ", x_of(i), y_of(v));
                    }
                    None if !cur.is_empty() => segs.push(std::mem::take(&mut cur)),
                    None => {}
                }
            }
            if !cur.is_empty() {
                segs.push(cur);
            }
            // A lone point still needs a visible mark.
            segs.into_iter()
                .map(|s| {
                    if s.matches('L').count() == 0 {
                        format!("{s}h0.1")
                    } else {
                        s.trim_end().to_owned()
                    }
                })
                .collect()
        })
        .collect();

    let col_w = if n > 1 {
        plot_w / (n - 1) as f64
    } else {
        plot_w
    };
    let x_labels: Vec<(f64, String, &str)> = match n {
        0 => Vec::new(),
        1 => vec![(x_of(0), fmt_time(times[0], span), "middle")],
        _ => vec![
            (x_of(0), fmt_time(times[0], span), "start"),
            (x_of(n / 2), fmt_time(times[n / 2], span), "middle"),
            (x_of(n - 1), fmt_time(times[n - 1], span), "end"),
        ],
    };

    html! {
        figure.chart id=(id) {
            figcaption.chart-title { (chart.title) }
            svg.chart-svg role="img" viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } xmlns="http://www.w3.org/2000/svg"
                aria-labelledby={ (id) "-t " (id) "-d" } preserveAspectRatio="xMidYMid meet" {
                title id={ (id) "-t" } { (chart.title) }
                desc id={ (id) "-d" } { (desc.trim()) }
                g.chart-grid {
                    @for k in 0..=(steps as usize) {
                        @let v = step * k as f64;
                        @let y = y_of(v);
                        line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(format!("{y:.1}")) y2=(format!("{y:.1}")) {}
                        text.chart-ylabel x=(LEFT - 6.0) y=(format!("{:.1}", y + 4.0)) text-anchor="end" { (tick_label(unit, v, e)) }
                    }
                }
                g.chart-xaxis {
                    @for (x, label, anchor) in &x_labels {
                        text.chart-xlabel x=(format!("{x:.1}")) y=(HEIGHT - 8.0) text-anchor=(anchor) { (label) }
                    }
                }
                @for (si, segs) in paths.iter().enumerate() {
                    @for d in segs {
                        path class={ "chart-line chart-s" (si) } d=(d) {}
                    }
                }
                @if !missing {
                    g.chart-hits {
                        @for i in 0..n {
                            @let x = (x_of(i) - col_w / 2.0).max(LEFT);
                            @let w = (x_of(i) + col_w / 2.0).min(WIDTH - RIGHT) - x;
                            rect.chart-hit x=(format!("{x:.1}")) y=(TOP) width=(format!("{w:.2}")) height=(plot_h) {
                                title { (hover_text(chart, &series, &times, i)) }
                            }
                        }
                    }
                }
            }
            ul.chart-legend {
                @for (si, (s, values)) in chart.series.iter().zip(&series).enumerate() {
                    li {
                        span class={ "chart-swatch chart-s" (si) } aria-hidden="true" {}
                        (s.label) " "
                        span.muted { @match summary(values) { Some((_, _, last)) => (fmt_value(unit, last)), None => "no data" } }
                    }
                }
            }
        }
    }
}

fn hover_text(chart: &Chart, series: &[Vec<Option<f64>>], times: &[i64], i: usize) -> String {
    let mut out = times.get(i).map(|t| fmt_full_time(*t)).unwrap_or_default();
    for (s, values) in chart.series.iter().zip(series) {
        let v = values
            .get(i)
            .copied()
            .flatten()
            .filter(|v| v.is_finite())
            .map(|v| fmt_value(chart.unit, v))
            .unwrap_or_else(|| "no data".to_owned());
        let _ = write!(out, " — {}: {v}", s.label);
    }
    out
}

/// Where rrddata came from: the fields differ between CTs and nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RrdSource {
    /// `/nodes/{node}/lxc/{vmid}/rrddata`.
    Container,
    /// `/nodes/{node}/rrddata`.
    Node,
}

fn other(p: &RrdPoint, key: &str) -> Option<f64> {
    p.other.get(key).and_then(serde_json::Value::as_f64)
}

/// The five resource charts (CPU, memory, disk, network, disk I/O) of rrddata points.
pub fn rrd_charts(points: &[RrdPoint], source: RrdSource) -> Markup {
    let times: Vec<i64> = points.iter().map(|p| p.time).collect();
    let col = |f: &dyn Fn(&RrdPoint) -> Option<f64>| points.iter().map(f).collect::<Vec<_>>();
    let series = |label: &str, values: Vec<Option<f64>>| Series {
        label: label.to_owned(),
        values,
    };
    let node = source == RrdSource::Node;
    let mk = |id: &str, title: &str, unit: Unit, series: Vec<Series>| Chart {
        id: format!("chart-{id}"),
        title: title.to_owned(),
        unit,
        times: times.clone(),
        series,
    };
    let charts = [
        mk(
            "cpu",
            "CPU usage",
            Unit::Percent,
            vec![series("CPU", col(&|p| p.cpu.map(|c| c * 100.0)))],
        ),
        mk(
            "mem",
            "Memory",
            Unit::Bytes,
            if node {
                vec![
                    series("Used", col(&|p| p.mem.or_else(|| other(p, "memused")))),
                    series("Total", col(&|p| p.maxmem.or_else(|| other(p, "memtotal")))),
                ]
            } else {
                vec![
                    series("Used", col(&|p| p.mem)),
                    series("Limit", col(&|p| p.maxmem)),
                ]
            },
        ),
        mk(
            "disk",
            if node { "Root disk" } else { "Disk" },
            Unit::Bytes,
            if node {
                vec![
                    series("Used", col(&|p| p.disk.or_else(|| other(p, "rootused")))),
                    series(
                        "Size",
                        col(&|p| p.maxdisk.or_else(|| other(p, "roottotal"))),
                    ),
                ]
            } else {
                vec![
                    series("Used", col(&|p| p.disk)),
                    series("Size", col(&|p| p.maxdisk)),
                ]
            },
        ),
        mk(
            "net",
            "Network traffic",
            Unit::BytesPerSec,
            vec![
                series("In", col(&|p| p.netin)),
                series("Out", col(&|p| p.netout)),
            ],
        ),
        mk(
            "io",
            "Disk I/O",
            Unit::BytesPerSec,
            vec![
                series("Read", col(&|p| p.diskread)),
                series("Write", col(&|p| p.diskwrite)),
            ],
        ),
    ];
    html! {
        div.charts {
            @for c in &charts { (line_chart(c)) }
        }
    }
}

/// The timeframes, in toggle order.
pub const TIMEFRAMES: [Timeframe; 5] = [
    Timeframe::Hour,
    Timeframe::Day,
    Timeframe::Week,
    Timeframe::Month,
    Timeframe::Year,
];

/// Parses a `timeframe` query value; anything unknown is the hour.
pub fn parse_timeframe(s: Option<&str>) -> Timeframe {
    TIMEFRAMES
        .into_iter()
        .find(|t| Some(t.as_str()) == s)
        .unwrap_or(Timeframe::Hour)
}

/// The hour/day/week/month/year toggle as links; `href` maps a timeframe to its URL.
pub fn timeframe_toggle(current: Timeframe, href: &dyn Fn(Timeframe) -> String) -> Markup {
    html! {
        nav.timeframes aria-label="Time frame" {
            @for t in TIMEFRAMES {
                @let label = match t {
                    Timeframe::Hour => "Hour",
                    Timeframe::Day => "Day",
                    Timeframe::Week => "Week",
                    Timeframe::Month => "Month",
                    Timeframe::Year => "Year",
                };
                @if t == current {
                    a.btn.btn-primary href=(href(t)) aria-current="page" { (label) }
                } @else {
                    a.btn href=(href(t)) { (label) }
                }
            }
        }
    }
}
