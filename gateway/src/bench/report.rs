//! The benchmark report as a terminal table, Markdown and an SVG chart.

use std::fmt::Write;

use super::{Report, VariantResult};

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.digits$}"))
}

fn rows(r: &Report) -> Vec<[String; 12]> {
    r.variants
        .iter()
        .map(|v: &VariantResult| {
            [
                v.label(),
                format!("{:.0}", v.delivered_per_sec),
                opt(v.deliveries_per_cpu_sec, 0),
                opt(v.deliveries_per_cpu_sec.map(|d| 1e6 / d), 2),
                format!("{:.2}", v.latency_ms.p50),
                format!("{:.2}", v.latency_ms.p90),
                format!("{:.2}", v.latency_ms.p99),
                format!("{:.2}", v.latency_ms.max),
                v.lost.to_string(),
                opt(v.bytes_per_delivery, 0),
                v.gateway_rss_kib
                    .map_or_else(|| "n/a".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
                format!("{:.0}", v.connect_per_sec),
            ]
        })
        .collect()
}

const HEADERS: [&str; 12] = [
    "variant",
    "deliveries/s",
    "deliveries/CPU-s",
    "CPU us/delivery",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "max ms",
    "lost",
    "bytes/delivery",
    "RSS MiB",
    "connects/s",
];

fn summary(r: &Report) -> String {
    let rate = if r.rate == 0 {
        "as fast as acknowledged".to_owned()
    } else {
        format!("{}/s", r.rate)
    };
    let mut s = format!(
        "{} subscribers, {} B payloads, {rate}, {:.0} s per variant",
        r.subscribers, r.size, r.duration_secs
    );
    if let Some(k) = r.idle_kib_per_connection {
        let _ = write!(
            s,
            "; idle WebSocket connection: {k:.2} KiB each ({} measured)",
            r.idle_connections
        );
    }
    s
}

/// A fixed-width table for the terminal.
pub fn table(r: &Report) -> String {
    let rows = rows(r);
    let mut widths: Vec<usize> = HEADERS.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = summary(r) + "\n";
    let line = |cells: Vec<&str>, out: &mut String| {
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i == 0 {
                let _ = write!(out, "{c:<w$}");
            } else {
                let _ = write!(out, "  {c:>w$}");
            }
        }
        out.push('\n');
    };
    line(HEADERS.to_vec(), &mut out);
    for row in &rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// A Markdown table.
pub fn markdown(r: &Report) -> String {
    let mut out = format!("{}\n\n| {} |\n|", summary(r), HEADERS.join(" | "));
    for i in 0..HEADERS.len() {
        out.push_str(if i == 0 { "---|" } else { "---:|" });
    }
    out.push('\n');
    for row in rows(r) {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Two bar charts side by side: deliveries per gateway CPU-second (higher is
/// better) and p99 latency (lower is better), one bar per variant.
pub fn svg(r: &Report) -> String {
    let n = r.variants.len().max(1);
    let (bar, gap, left, top, chart_h) = (34.0, 18.0, 60.0, 50.0, 260.0);
    let panel_w = left + n as f64 * (bar + gap) + 20.0;
    let width = panel_w * 2.0;
    let height = top + chart_h + 90.0;
    let mut out = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#fff"/>
<text x="10" y="20" font-size="13">{}</text>
"##,
        escape(&summary(r))
    );
    type Metric = fn(&VariantResult) -> f64;
    let panels: [(&str, Metric, &str); 2] = [
        (
            "deliveries per gateway CPU-second (higher is better)",
            |v| v.deliveries_per_cpu_sec.unwrap_or(0.0),
            "#3b6fd8",
        ),
        (
            "p99 latency, ms (lower is better)",
            |v| v.latency_ms.p99,
            "#d8743b",
        ),
    ];
    for (p, (title, value, color)) in panels.iter().enumerate() {
        let x0 = p as f64 * panel_w;
        let max = r
            .variants
            .iter()
            .map(value)
            .fold(0.0_f64, f64::max)
            .max(1e-9);
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}">{}</text>"#,
            x0 + 10.0,
            top - 12.0,
            escape(title)
        );
        let _ = writeln!(
            out,
            r##"<line x1="{0}" y1="{1}" x2="{0}" y2="{2}" stroke="#888"/><line x1="{0}" y1="{2}" x2="{3}" y2="{2}" stroke="#888"/>"##,
            x0 + left - 8.0,
            top,
            top + chart_h,
            x0 + panel_w - 10.0
        );
        for (i, v) in r.variants.iter().enumerate() {
            let val = value(v);
            let h = val / max * chart_h;
            let x = x0 + left + i as f64 * (bar + gap);
            let y = top + chart_h - h;
            let _ = writeln!(
                out,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{bar}" height="{h:.1}" fill="{color}"><title>{}: {val:.2}</title></rect>"#,
                escape(&v.label())
            );
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"#,
                x + bar / 2.0,
                (y - 4.0).max(top - 2.0),
                if val >= 1000.0 {
                    format!("{:.0}k", val / 1000.0)
                } else {
                    format!("{val:.1}")
                }
            );
            let _ = writeln!(
                out,
                r#"<text x="{0:.1}" y="{1:.1}" font-size="10" text-anchor="end" transform="rotate(-40 {0:.1} {1:.1})">{2}</text>"#,
                x + bar / 2.0,
                top + chart_h + 14.0,
                escape(&v.label())
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Latency, Report, VariantResult};
    use super::*;

    fn report() -> Report {
        let v = |t, e, dps: f64, p99: f64| VariantResult {
            server: "livegate".into(),
            transport: t,
            encoding: e,
            compression: None,
            subscribers: 10,
            published: 100,
            delivered: 1000,
            lost: 0,
            delivered_per_sec: 500.0,
            gateway_cpu_secs: 0.5,
            deliveries_per_cpu_sec: Some(dps),
            latency_ms: Latency {
                p50: 1.0,
                p90: 2.0,
                p99,
                max: 9.0,
            },
            bytes_per_delivery: Some(300.0),
            gateway_rss_kib: Some(10_240),
            connect_per_sec: 1000.0,
            slow_consumers_dropped: 0,
        };
        Report {
            subscribers: 10,
            rate: 0,
            size: 256,
            duration_secs: 2.0,
            variants: vec![v("ws", "json", 2000.0, 3.0), v("sse", "json", 1000.0, 6.0)],
            idle_kib_per_connection: Some(6.2),
            idle_connections: 100,
        }
    }

    #[test]
    fn renders_every_variant_in_every_format() {
        let r = report();
        let t = table(&r);
        assert!(
            t.contains("ws/json") && t.contains("sse/json") && t.contains("6.20 KiB each"),
            "{t}"
        );
        let m = markdown(&r);
        assert_eq!(
            m.lines()
                .filter(|l| l.starts_with("| ws/json") || l.starts_with("| sse/json"))
                .count(),
            2
        );
        let s = svg(&r);
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        // Bars scale to the largest value: ws is twice sse on the CPU panel.
        assert!(s.contains(r##"height="260.0" fill="#3b6fd8""##), "{s}");
        assert!(s.contains(r##"height="130.0" fill="#3b6fd8""##), "{s}");
    }
}
