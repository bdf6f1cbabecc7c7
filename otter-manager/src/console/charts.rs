//! Server-side SVG line charts (no JavaScript, nothing fetched by the browser).

use std::fmt::Write;

const W: f64 = 640.0;
const H: f64 = 180.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 22.0;
const COLORS: [&str; 6] = [
    "#1f6fd1", "#d1521f", "#2a9d46", "#8a3fd1", "#c9a100", "#444",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One line: a label and `(ms since the epoch, value)` points, oldest first.
pub struct Series {
    /// Shown in the legend.
    pub label: String,
    /// The points.
    pub points: Vec<(i64, f64)>,
}

/// An SVG chart of `series` over `[from_ms, to_ms]`, the y axis from 0 to the largest value.
/// Series without points are left out; with none at all the chart says "no data yet".
pub fn line_chart(title: &str, unit: &str, from_ms: i64, to_ms: i64, series: &[Series]) -> String {
    let span = (to_ms - from_ms).max(1) as f64;
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let top = if max > 0.0 { max * 1.1 } else { 1.0 };
    let x = |t: i64| LEFT + (t - from_ms) as f64 / span * (W - LEFT - 8.0);
    let y = |v: f64| (H - BOTTOM) - v / top * (H - BOTTOM - 8.0);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" role="img" aria-label="{t}"><title>{t}</title>"#,
        h = H + 18.0,
        t = escape(title)
    );
    let _ = write!(
        out,
        r##"<rect x="{LEFT}" y="8" width="{}" height="{}" fill="#fafbfd" stroke="#ccd"/>"##,
        W - LEFT - 8.0,
        H - BOTTOM - 8.0
    );
    let _ = write!(
        out,
        r#"<text x="4" y="16" font-size="11">{:.1} {u}</text><text x="4" y="{}" font-size="11">0</text>"#,
        top,
        H - BOTTOM,
        u = escape(unit)
    );
    let minutes = span / 60_000.0;
    let _ = write!(
        out,
        r#"<text x="{LEFT}" y="{}" font-size="11">−{:.0} min</text><text x="{}" y="{}" font-size="11" text-anchor="end">now</text>"#,
        H - 6.0,
        minutes,
        W - 8.0,
        H - 6.0
    );
    let mut drawn = 0;
    for (i, s) in series.iter().filter(|s| !s.points.is_empty()).enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
            .collect();
        // The newest and the largest value, for a reader of the page (and the browser test).
        let last = s.points.last().map_or(0.0, |p| p.1);
        let largest = s.points.iter().map(|p| p.1).fold(0.0f64, f64::max);
        let _ = write!(
            out,
            r#"<polyline class="series" data-label="{l}" data-last="{last:.3}" data-max="{largest:.3}" fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
            pts.join(" "),
            l = escape(&s.label)
        );
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" font-size="11" fill="{color}">{}</text>"#,
            LEFT + 6.0 + 120.0 * i as f64,
            H + 12.0,
            escape(&s.label)
        );
        drawn += 1;
    }
    if drawn == 0 {
        let _ = write!(
            out,
            r##"<text x="{}" y="{}" font-size="13" text-anchor="middle" fill="#888">no data yet</text>"##,
            LEFT + (W - LEFT) / 2.0,
            H / 2.0
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_land_inside_the_plot_and_labels_are_escaped() {
        let svg = line_chart(
            "delay <p1>",
            "s",
            0,
            10_000,
            &[Series {
                label: "pipeline <1>".into(),
                points: vec![(0, 0.0), (10_000, 2.0)],
            }],
        );
        assert!(svg.contains(&format!(
            "points=\"{LEFT:.1},{:.1} {:.1},",
            H - BOTTOM,
            W - 8.0
        )));
        assert!(svg.contains("pipeline &lt;1&gt;"));
        assert!(svg.contains("data-last=\"2.000\" data-max=\"2.000\""));
        assert!(!svg.contains("<p1>"));
        assert!(line_chart("t", "s", 0, 1, &[]).contains("no data yet"));
    }
}
