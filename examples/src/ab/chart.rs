//! The chart of an A/B run: CTR per window per arm, with each window's Wilson 95% interval, as
//! an SVG (plotters).

use std::path::Path;

use plotters::prelude::*;

use super::report::AbReport;

const COLOURS: [RGBColor; 2] = [RGBColor(31, 119, 180), RGBColor(214, 39, 40)];

/// Writes the chart of `report` to `path` (SVG).
pub fn write_chart(report: &AbReport, path: &Path) -> Result<(), String> {
    draw(report, path).map_err(|e| format!("drawing the chart `{}` failed: {e}", path.display()))
}

fn draw(report: &AbReport, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let minutes = |ms: i64| ms as f64 / 60_000.0;
    let x_end = report.windows.last().map_or(60.0, |w| minutes(w.end));
    let x_start = report.windows.first().map_or(0.0, |w| minutes(w.start));
    let y_top = report
        .windows
        .iter()
        .flat_map(|w| w.arms.iter().flatten().map(|s| s.high))
        .fold(0.01f64, f64::max)
        * 1.1;
    let kind = if report.aa { "A/A" } else { "A/B" };

    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{kind} test, SIMULATED traffic: CTR per 5-minute window (95% intervals)"),
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x_start..x_end, 0.0..y_top)?;
    chart
        .configure_mesh()
        .x_desc("simulated event time (minutes)")
        .x_labels(13)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc("click-through rate")
        .y_label_formatter(&|y| format!("{:.1}%", y * 100.0))
        .draw()?;

    for (arm, colour) in COLOURS.into_iter().enumerate() {
        // The two arms side by side in each window, so their intervals do not overlap.
        let offset = if arm == 0 { -0.4 } else { 0.4 };
        let points: Vec<(f64, f64, f64, f64)> = report
            .windows
            .iter()
            .filter_map(|w| {
                let s = w.arms[arm]?;
                let mid = (minutes(w.start) + minutes(w.end)) / 2.0 + offset;
                Some((mid, s.rate, s.low, s.high))
            })
            .collect();
        chart.draw_series(points.iter().map(|&(x, _, low, high)| {
            PathElement::new(vec![(x, low), (x, high)], colour.stroke_width(1))
        }))?;
        chart.draw_series(
            points
                .iter()
                .map(|&(x, rate, _, _)| Circle::new((x, rate), 3, colour.filled())),
        )?;
        let total = report.totals[arm];
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|&(x, rate, _, _)| (x, rate)),
                colour.stroke_width(2),
            ))?
            .label(format!(
                "{} ({}): CTR {:.2}% overall",
                report.labels[arm],
                report.models[arm],
                100.0 * total.rate()
            ))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
