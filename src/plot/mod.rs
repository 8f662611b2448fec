//! Charts rendered with plotters and a bundled font (DejaVu Sans from the `dejavu` crate, so no
//! system fonts are needed): line charts, bar charts, attention heatmaps and the training-curves
//! figure. The output format follows the file extension (`.png` or `.svg`).

mod attention;
mod chart;
mod colour;
pub mod html;
mod png;

use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Once;

pub use chart::{smooth_ema, EpochPoint, TrainingCurves};

/// Runs a backend-generic drawing function on whichever backend the area holds.
macro_rules! on_area {
    ($area:expr, |$root:ident| $body:expr) => {
        match $area {
            $crate::plot::AnyArea::Png($root) => $body,
            $crate::plot::AnyArea::Svg($root) => $body,
        }
    };
}

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{path}: {msg}")]
    Render { path: PathBuf, msg: String },
}

/// One named line.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Optional (low, high) range of each point (e.g. min and max of repeated timings), drawn
    /// as a vertical bar; empty for none.
    pub ranges: Vec<(f64, f64)>,
}

/// A chart of one or more lines sharing axes.
#[derive(Debug, Clone)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Logarithmic y axis.
    pub log_y: bool,
}

/// A bar chart: one bar per label.
#[derive(Debug, Clone)]
pub struct BarChart {
    pub title: String,
    pub y_label: String,
    pub bars: Vec<(String, f64)>,
}

/// Attention weights of every head of one layer for one sentence.
#[derive(Debug, Clone)]
pub struct AttentionMap {
    pub title: String,
    /// Token labels, used on both axes (rows are queries, columns keys).
    pub tokens: Vec<String>,
    /// One `n × n` row-major matrix per head, n = tokens.len(); entries in [0, 1].
    pub heads: Vec<Vec<f32>>,
}

/// Draws a line chart (with legend) to `path` (`.png` or `.svg`) at `size` pixels.
/// Series with few points (≤ 30) also get point markers; non-finite points are skipped.
pub fn line_chart(path: &Path, chart: &LineChart, size: (u32, u32)) -> Result<(), PlotError> {
    chart::check_line(chart).map_err(|msg| err(path, msg))?;
    render(path, size, |a| {
        on_area!(a, |r| chart::draw_line_chart(r, chart))
    })
}

/// Draws a bar chart with value labels to `path` (`.png` or `.svg`) at `size` pixels.
pub fn bar_chart(path: &Path, chart: &BarChart, size: (u32, u32)) -> Result<(), PlotError> {
    chart::check_bar(chart).map_err(|msg| err(path, msg))?;
    render(path, size, |a| {
        on_area!(a, |r| chart::draw_bar_chart(r, chart))
    })
}

/// Draws the heads side by side as heatmaps with token labels on both axes and a colour scale.
/// The image size follows from the number of heads and tokens; it is returned.
pub fn attention_map(path: &Path, map: &AttentionMap) -> Result<(u32, u32), PlotError> {
    attention::check(map).map_err(|msg| err(path, msg))?;
    ensure_fonts();
    let layout = attention::Layout::new(map);
    let size = layout.size();
    render(path, size, |a| {
        on_area!(a, |r| attention::draw(r, map, &layout))
    })?;
    Ok(size)
}

/// Draws the training-curves figure (two panels: training loss per step, raw and smoothed, with
/// validation loss at the end of each epoch; validation perplexity per epoch) to `path`.
pub fn training_curves(
    path: &Path,
    curves: &TrainingCurves,
    size: (u32, u32),
) -> Result<(), PlotError> {
    chart::check_curves(curves).map_err(|msg| err(path, msg))?;
    render(path, size, |a| {
        on_area!(a, |r| chart::draw_training_curves(r, curves))
    })
}

fn err(path: &Path, msg: impl Into<String>) -> PlotError {
    PlotError::Render {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// The font family every chart uses; registered from bundled bytes on first use.
pub(crate) const FONT: &str = "sans-serif";

/// Registers DejaVu Sans (regular and bold) under the `sans-serif` family, once per process.
pub(crate) fn ensure_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font shipped inside the `dejavu` crate; a failure
        // here is a build problem, and text would simply be missing, so it is not fatal.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

/// Opens the backend chosen by the file extension, fills it white, draws, and writes the file.
fn render<F>(path: &Path, size: (u32, u32), draw: F) -> Result<(), PlotError>
where
    F: Fn(&AnyArea<'_>) -> Result<(), String>,
{
    ensure_fonts();
    if size.0 < 50 || size.1 < 50 {
        return Err(err(
            path,
            format!("image size {}x{} is too small", size.0, size.1),
        ));
    }
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|e| err(path, e.to_string()))?;
        }
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("png") => {
            let root = png::PngBackend(BitMapBackend::new(path, size)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| err(path, e.to_string()))?;
            draw(&AnyArea::Png(root.clone())).map_err(|m| err(path, m))?;
            root.present().map_err(|e| err(path, e.to_string()))
        }
        Some("svg") => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            root.fill(&WHITE).map_err(|e| err(path, e.to_string()))?;
            draw(&AnyArea::Svg(root.clone())).map_err(|m| err(path, m))?;
            root.present().map_err(|e| err(path, e.to_string()))
        }
        _ => Err(err(
            path,
            "unsupported image format: the file name must end in .png or .svg",
        )),
    }
}

/// The root drawing area of either backend.
pub(crate) enum AnyArea<'a> {
    Png(DrawingArea<png::PngBackend<'a>, Shift>),
    Svg(DrawingArea<SVGBackend<'a>, Shift>),
}

/// Short, readable tick labels: no trailing zeros, thousands without decimals.
pub(crate) fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let a = v.abs();
    let s = if a == 0.0 {
        "0".to_string()
    } else if !(1e-3..1e6).contains(&a) {
        format!("{v:.2e}")
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 10.0 {
        format!("{v:.2}")
    } else if a >= 1.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.4}")
    };
    if s.contains('.') && !s.contains('e') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests;
