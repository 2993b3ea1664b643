//! Small inline SVG charts for the HTML report: a histogram of data against reference, and
//! grouped bars for categories. Hand-written SVG keeps the report self-contained and small
//! (one path per series, not one element per bar).

use super::escape_attr;
use super::escape_text;
use std::fmt::Write as _;

const W: f64 = 420.0;
const H: f64 = 150.0;
const PAD_L: f64 = 8.0;
const PAD_B: f64 = 22.0;
const PAD_T: f64 = 8.0;

/// Colour of the reference series.
pub const REFERENCE: &str = "#9aa5b1";
/// Colour of the data series.
pub const DATA: &str = "#d9480f";

/// A histogram: `edges` (n+1 increasing values), shares per bin for the reference (optional)
/// and the data. Both series are drawn as step outlines, the reference filled.
pub fn histogram(edges: &[f64], reference: Option<&[f64]>, data: &[f64], label: &str) -> String {
    let n = data.len();
    if n == 0 || edges.len() != n + 1 {
        return String::new();
    }
    let top = data
        .iter()
        .chain(reference.into_iter().flatten())
        .fold(0.0f64, |a, &b| a.max(b))
        .max(1e-12);
    let plot_w = W - PAD_L * 2.0;
    let plot_h = H - PAD_T - PAD_B;
    let x = |i: usize| PAD_L + plot_w * i as f64 / n as f64;
    let y = |v: f64| PAD_T + plot_h * (1.0 - v / top);
    let step = |shares: &[f64], close: bool| {
        let mut d = format!("M{:.1} {:.1}", x(0), y(0.0));
        for (i, &v) in shares.iter().enumerate() {
            let _ = write!(d, "L{:.1} {:.1}L{:.1} {:.1}", x(i), y(v), x(i + 1), y(v));
        }
        let _ = write!(d, "L{:.1} {:.1}", x(n), y(0.0));
        if close {
            d.push('Z');
        }
        d
    };
    let mut svg = open(label);
    if let Some(r) = reference {
        let _ = write!(
            svg,
            r#"<path d="{}" fill="{REFERENCE}" fill-opacity="0.45" stroke="{REFERENCE}"/>"#,
            step(r, true)
        );
    }
    let _ = write!(
        svg,
        r#"<path d="{}" fill="none" stroke="{DATA}" stroke-width="1.6"/>"#,
        step(data, false)
    );
    axis(&mut svg, &fmt(edges[0]), &fmt(edges[n]));
    svg.push_str("</svg>");
    svg
}

/// Grouped horizontal bars: (category, reference share, data share).
pub fn bars(rows: &[(String, Option<f64>, f64)], label: &str) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let row_h = 16.0;
    let height = PAD_T + row_h * rows.len() as f64 + 4.0;
    let label_w = 120.0;
    let plot_w = W - label_w - 60.0;
    let top = rows
        .iter()
        .map(|(_, r, d)| r.unwrap_or(0.0).max(*d))
        .fold(0.0f64, f64::max)
        .max(1e-12);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{W}" height="{height:.0}" viewBox="0 0 {W} {height:.0}" role="img" aria-label="{}">"#,
        escape_attr(label)
    );
    for (i, (name, r, d)) in rows.iter().enumerate() {
        let y0 = PAD_T + row_h * i as f64;
        let short: String = name.chars().take(18).collect();
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" font-size="10">{}</text>"#,
            label_w - 4.0,
            y0 + 11.0,
            escape_text(&short)
        );
        if let Some(r) = r {
            let _ = write!(
                svg,
                r#"<rect x="{label_w}" y="{:.1}" width="{:.1}" height="6" fill="{REFERENCE}"/>"#,
                y0 + 2.0,
                plot_w * r / top
            );
        }
        let _ = write!(
            svg,
            r#"<rect x="{label_w}" y="{:.1}" width="{:.1}" height="6" fill="{DATA}"/><text x="{:.1}" y="{:.1}" font-size="9">{:.1}%</text>"#,
            y0 + 8.0,
            plot_w * d / top,
            label_w + plot_w * d / top + 3.0,
            y0 + 14.0,
            100.0 * d
        );
    }
    svg.push_str("</svg>");
    svg
}

fn open(label: &str) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="{}">"#,
        escape_attr(label)
    )
}

fn axis(svg: &mut String, lo: &str, hi: &str) {
    let yb = H - PAD_B;
    let _ = write!(
        svg,
        r##"<line x1="{PAD_L}" y1="{yb}" x2="{:.1}" y2="{yb}" stroke="#444"/><text x="{PAD_L}" y="{:.1}" font-size="10">{}</text><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
        W - PAD_L,
        H - 6.0,
        escape_text(lo),
        W - PAD_L,
        H - 6.0,
        escape_text(hi)
    );
}

fn fmt(x: f64) -> String {
    super::fmt_num(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_one_path_per_series() {
        let svg = histogram(&[0.0, 1.0, 2.0], Some(&[0.5, 0.5]), &[0.2, 0.8], "x<y");
        assert_eq!(svg.matches("<path").count(), 2);
        assert!(svg.contains("aria-label=\"x&lt;y\""));
        assert!(svg.ends_with("</svg>"));
        assert!(histogram(&[0.0], None, &[1.0], "bad").is_empty());
    }

    #[test]
    fn bars_escape_labels() {
        let svg = bars(&[("<b>".into(), Some(0.5), 0.25)], "c");
        assert!(svg.contains("&lt;b&gt;"));
        assert_eq!(svg.matches("<rect").count(), 2);
    }
}
