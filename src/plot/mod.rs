//! Charts rendered with plotters and a bundled font (no system fonts): line charts, bar charts,
//! attention heatmaps. Output format follows the file extension (`.png` or `.svg`).
//! (Scaffold: the API is fixed, the bodies are to be implemented.)

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{path}: {msg}")]
    Render { path: PathBuf, msg: String },
}

/// One named line.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
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
pub fn line_chart(path: &Path, chart: &LineChart, size: (u32, u32)) -> Result<(), PlotError> {
    let _ = (chart, size);
    Err(not_yet(path))
}

/// Draws a bar chart with value labels to `path` (`.png` or `.svg`) at `size` pixels.
pub fn bar_chart(path: &Path, chart: &BarChart, size: (u32, u32)) -> Result<(), PlotError> {
    let _ = (chart, size);
    Err(not_yet(path))
}

/// Draws the heads side by side as heatmaps with token labels on both axes and a colour scale.
/// The image size follows from the number of heads and tokens; it is returned.
pub fn attention_map(path: &Path, map: &AttentionMap) -> Result<(u32, u32), PlotError> {
    let _ = map;
    Err(not_yet(path))
}

fn not_yet(path: &Path) -> PlotError {
    PlotError::Render {
        path: path.to_path_buf(),
        msg: "plotting is not implemented yet".into(),
    }
}
