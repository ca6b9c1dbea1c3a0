//! Metrics as pictures, where people look rather than read: confusion-matrix heat maps,
//! precision–recall curves and training curves, as PNG files (feature `plot`, on by default).
//!
//! Text in the PNGs uses DejaVu Sans, embedded (its licence is in `core/assets/`), so drawing needs
//! no system fonts.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use super::detection::DetectionReport;
use super::render::name;
use crate::error::{Error, Result};

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

fn ensure_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // The embedded font is valid; a failure here would only mean plotters rejects it, and
        // drawing then reports its own error.
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn draw_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{}: drawing failed: {e}", path.display()))
}

/// Draws a square matrix as a heat map PNG with row and column labels and the value in each cell
/// (`values` row-major, `size × size`; colours scaled to the largest value). `rows`/`cols` name
/// the axes (e.g. "true" and "predicted").
pub fn heatmap_png(
    path: &Path,
    title: &str,
    values: &[f64],
    labels: &[String],
    axes: (&str, &str),
    integer: bool,
) -> Result<()> {
    ensure_font();
    let n = labels.len();
    if values.len() != n * n || n == 0 {
        return Err(Error::Invalid(format!(
            "{}: heat map needs {n}×{n} values",
            path.display()
        )));
    }
    let cell = (560 / n as u32).clamp(16, 80);
    let side = cell * n as u32 + 160;
    let root = BitMapBackend::new(path, (side, side)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
    let max = values
        .iter()
        .cloned()
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE);
    // Discrete axes; row 0 is drawn at the top, so the y position of row r is n − 1 − r.
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d((0..n - 1).into_segmented(), (0..n - 1).into_segmented())
        .map_err(|e| draw_err(path, e))?;
    let x_label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(k) => labels.get(*k).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let y_label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(k) if *k < n => labels.get(n - 1 - k).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(axes.1)
        .y_desc(axes.0)
        .x_labels(n)
        .y_labels(n)
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| draw_err(path, e))?;
    let cells = || (0..n).flat_map(|r| (0..n).map(move |c| (r, c)));
    // Plotters' integer ranges include their end, so n cells span 0..=n−1; the far edge is `Last`.
    let edge = |v: usize| {
        if v == n {
            SegmentValue::Last
        } else {
            SegmentValue::Exact(v)
        }
    };
    chart
        .draw_series(cells().map(|(r, c)| {
            let v = values[r * n + c] / max;
            let shade = (255.0 * (1.0 - 0.85 * v)) as u8;
            let y = n - 1 - r;
            Rectangle::new(
                [(edge(c), edge(y)), (edge(c + 1), edge(y + 1))],
                RGBColor(shade, shade, 255).filled(),
            )
        }))
        .map_err(|e| draw_err(path, e))?;
    if cell >= 28 {
        chart
            .draw_series(cells().map(|(r, c)| {
                let v = values[r * n + c];
                let text = if integer {
                    format!("{v:.0}")
                } else {
                    format!("{v:.2}")
                };
                let pos = (SegmentValue::CenterOf(c), SegmentValue::CenterOf(n - 1 - r));
                Text::new(text, pos, ("sans-serif", 12).into_font().color(&BLACK))
            }))
            .map_err(|e| draw_err(path, e))?;
    }
    root.present().map_err(|e| draw_err(path, e))
}

/// Draws each class's precision–recall curve (the precision envelope at IoU 0.5 sampled on a
/// recall grid) with AP50 in the legend, as Ultralytics' `PR_curve.png`.
pub fn pr_curves_png(path: &Path, r: &DetectionReport, names: &[String]) -> Result<()> {
    ensure_font();
    let root = BitMapBackend::new(path, (800, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Precision-recall (mAP50 {:.3})", r.map50),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0f64..1.0, 0.0f64..1.05)
        .map_err(|e| draw_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("Recall")
        .y_desc("Precision")
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| draw_err(path, e))?;
    for (i, (curve, cls)) in r.pr_curves.iter().zip(&r.per_class).enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = curve
            .recall
            .iter()
            .copied()
            .zip(curve.precision.iter().copied())
            .collect();
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(1)))
            .map_err(|e| draw_err(path, e))?
            .label(format!("{} {:.3}", name(names, cls.class), cls.ap50))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], colour));
    }
    if r.pr_curves.len() <= 20 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 11))
            .draw()
            .map_err(|e| draw_err(path, e))?;
    }
    root.present().map_err(|e| draw_err(path, e))
}

/// Draws every column of a run's `results.csv` (loss, metrics, learning rate…) against epoch,
/// one small panel each, into `out`.
pub fn results_png(csv: &Path, out: &Path) -> Result<()> {
    ensure_font();
    let text = std::fs::read_to_string(csv).map_err(|e| Error::io(csv, e))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let rows: Vec<Vec<f64>> = lines
        .enumerate()
        .map(|(i, l)| {
            l.split(',')
                .map(|v| {
                    v.parse::<f64>().map_err(|_| {
                        Error::Invalid(format!(
                            "{}: line {}: {v:?} is not a number",
                            csv.display(),
                            i + 2
                        ))
                    })
                })
                .collect()
        })
        .collect::<Result<_>>()?;
    let columns: Vec<usize> = (1..header.len())
        .filter(|&c| header[c] != "seconds")
        .collect();
    if rows.is_empty() || columns.is_empty() {
        return Ok(());
    }
    let cols = 3usize.min(columns.len());
    let panel_rows = columns.len().div_ceil(cols);
    let root =
        BitMapBackend::new(out, (360 * cols as u32, 260 * panel_rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_err(out, e))?;
    let panels = root.split_evenly((panel_rows, cols));
    let last_epoch = rows.iter().map(|r| r[0]).fold(1.0, f64::max);
    for (panel, &c) in panels.iter().zip(&columns) {
        let ys: Vec<f64> = rows.iter().map(|r| r[c]).collect();
        let (lo, hi) = ys
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| {
                (a.min(y), b.max(y))
            });
        let pad = ((hi - lo) * 0.1).max(1e-12);
        let mut chart = ChartBuilder::on(panel)
            .caption(header[c], ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(25)
            .y_label_area_size(55)
            .build_cartesian_2d(1.0f64..last_epoch.max(2.0), (lo - pad)..(hi + pad))
            .map_err(|e| draw_err(out, e))?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(|e| draw_err(out, e))?;
        let points: Vec<(f64, f64)> = rows.iter().map(|r| (r[0], r[c])).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), BLUE.stroke_width(2)))
            .map_err(|e| draw_err(out, e))?;
        chart
            .draw_series(points.into_iter().map(|p| Circle::new(p, 3, BLUE.filled())))
            .map_err(|e| draw_err(out, e))?;
    }
    root.present().map_err(|e| draw_err(out, e))
}
