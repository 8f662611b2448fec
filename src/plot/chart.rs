//! Line, bar and training-curve charts: one generic "panel" drawer (title, axis labels, legend,
//! tick labels sized from the text they hold so nothing is clipped) used by every line figure.

use super::colour;
use super::{fmt_num, BarChart, LineChart, FONT};
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const TITLE_SIZE: f64 = 22.0;
const DESC_SIZE: f64 = 17.0;
const TICK_SIZE: f64 = 14.0;
const LEGEND_SIZE: f64 = 15.0;

/// Everything the training-curves figure shows.
#[derive(Debug, Clone)]
pub struct TrainingCurves {
    pub title: String,
    /// Training loss per optimisation step: (step, loss).
    pub train_loss: Vec<(f64, f64)>,
    /// Smoothed training loss per step: (step, loss); drawn over the raw curve when non-empty.
    pub smoothed: Vec<(f64, f64)>,
    /// Legend text of the smoothed curve, e.g. `EMA (0.9)`.
    pub smoothed_label: String,
    /// One entry per epoch, in order.
    pub epochs: Vec<EpochPoint>,
}

/// Per-epoch numbers of the training-curves figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochPoint {
    pub epoch: u32,
    /// The last optimisation step of this epoch (where its validation loss is drawn).
    pub end_step: f64,
    pub val_loss: f64,
    pub val_perplexity: f64,
}

/// Exponential moving average with bias correction (as TensorBoard's smoothing): `weight` is
/// the weight of the history, in [0, 1); 0 returns the values unchanged. Non-finite values are
/// skipped (the average carries over them).
pub fn smooth_ema(values: &[f64], weight: f64) -> Vec<f64> {
    let w = weight.clamp(0.0, 0.999_999);
    let mut avg = 0.0;
    let mut norm = 0.0;
    let mut out = Vec::with_capacity(values.len());
    for &v in values {
        if v.is_finite() {
            avg = w * avg + (1.0 - w) * v;
            norm = w * norm + (1.0 - w);
        }
        out.push(if norm > 0.0 { avg / norm } else { f64::NAN });
    }
    out
}

/// One drawn line of a panel.
struct Line {
    name: Option<String>,
    points: Vec<(f64, f64)>,
    colour: RGBColor,
    width: u32,
    alpha: f64,
    markers: bool,
    /// Write each point's y value above it.
    value_labels: bool,
    /// A vertical (low, high) range per point (empty: none), drawn as a bar with caps.
    ranges: Vec<(f64, f64)>,
}

/// One chart with axes.
struct Panel<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    lines: Vec<Line>,
    log_y: bool,
    /// Only whole-number x ticks are labelled (epochs).
    integer_x: bool,
    /// Grey vertical guide lines at these x values.
    guides: Vec<f64>,
}

pub(super) fn check_line(chart: &LineChart) -> Result<(), String> {
    let finite = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite() && (!chart.log_y || *y > 0.0))
        .count();
    if finite == 0 {
        return Err(format!(
            "line chart `{}` has no finite{} points to draw",
            chart.title,
            if chart.log_y { " positive" } else { "" }
        ));
    }
    Ok(())
}

pub(super) fn check_bar(chart: &BarChart) -> Result<(), String> {
    if chart.bars.is_empty() {
        return Err(format!("bar chart `{}` has no bars", chart.title));
    }
    if let Some((label, v)) = chart.bars.iter().find(|(_, v)| !v.is_finite()) {
        return Err(format!(
            "bar chart `{}`: bar `{label}` has the non-finite value {v}",
            chart.title
        ));
    }
    Ok(())
}

pub(super) fn check_curves(c: &TrainingCurves) -> Result<(), String> {
    if c.train_loss.is_empty() {
        return Err("training curves: no training-loss points".into());
    }
    if c.epochs.is_empty() {
        return Err("training curves: no epochs".into());
    }
    // Non-finite numbers (a diverged run) leave their panel empty with a note.
    Ok(())
}

pub(super) fn draw_line_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &LineChart,
) -> Result<(), String> {
    let lines = chart
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| Line {
            name: Some(s.name.clone()),
            markers: s.points.len() <= 30,
            points: s.points.clone(),
            colour: colour::series(i),
            width: 2,
            alpha: 1.0,
            value_labels: false,
            ranges: s.ranges.clone(),
        })
        .collect();
    let panel = Panel {
        title: &chart.title,
        x_label: &chart.x_label,
        y_label: &chart.y_label,
        lines,
        log_y: chart.log_y,
        integer_x: false,
        guides: Vec::new(),
    };
    draw_panel(&root.margin(6, 6, 6, 14), &panel)
}

pub(super) fn draw_training_curves<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    c: &TrainingCurves,
) -> Result<(), String> {
    let (w, _) = root.dim_in_pixel();
    let root = root.margin(4, 6, 6, 10);
    let root = if c.title.is_empty() {
        root
    } else {
        root.titled(
            &c.title,
            (FONT, TITLE_SIZE + 2.0, FontStyle::Bold).into_font(),
        )
        .map_err(|e| e.to_string())?
    };
    let (left, right) = root.split_horizontally((w as f64 * 0.6) as i32);

    let mut lines = vec![Line {
        name: Some("training loss (per step)".into()),
        points: c.train_loss.clone(),
        colour: colour::series(0),
        width: 1,
        alpha: if c.smoothed.is_empty() { 1.0 } else { 0.3 },
        markers: c.train_loss.len() <= 30,
        value_labels: false,
        ranges: Vec::new(),
    }];
    if !c.smoothed.is_empty() {
        lines.push(Line {
            name: Some(format!("training loss, {}", c.smoothed_label)),
            points: c.smoothed.clone(),
            colour: colour::series(0),
            width: 3,
            alpha: 1.0,
            markers: false,
            value_labels: false,
            ranges: Vec::new(),
        });
    }
    lines.push(Line {
        name: Some("validation loss (end of epoch)".into()),
        points: c.epochs.iter().map(|e| (e.end_step, e.val_loss)).collect(),
        colour: colour::series(1),
        width: 2,
        alpha: 1.0,
        markers: true,
        value_labels: c.epochs.len() <= 12,
        ranges: Vec::new(),
    });
    let guides = c
        .epochs
        .iter()
        .take(c.epochs.len().saturating_sub(1))
        .map(|e| e.end_step)
        .collect();
    draw_panel(
        &left.margin(0, 0, 0, 16),
        &Panel {
            title: "Loss",
            x_label: "step",
            y_label: "cross-entropy loss (nats/token)",
            lines,
            log_y: false,
            integer_x: false,
            guides,
        },
    )?;
    draw_panel(
        &right.margin(0, 0, 16, 0),
        &Panel {
            title: "Validation perplexity",
            x_label: "epoch",
            y_label: "perplexity",
            lines: vec![Line {
                name: Some("validation perplexity".into()),
                points: c
                    .epochs
                    .iter()
                    .map(|e| (e.epoch as f64, e.val_perplexity))
                    .collect(),
                colour: colour::series(2),
                width: 2,
                alpha: 1.0,
                markers: true,
                value_labels: c.epochs.len() <= 12,
                ranges: Vec::new(),
            }],
            log_y: false,
            integer_x: true,
            guides: Vec::new(),
        },
    )
}

/// Data range of finite values, padded so lines and value labels are not on the frame.
fn span(values: impl Iterator<Item = f64>, log: bool, pad: f64) -> Option<(f64, f64)> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return None;
    }
    if log {
        let (l, h) = (lo.log10(), hi.log10());
        let d = if h - l < 1e-9 { 0.5 } else { (h - l) * pad };
        return Some((10f64.powf(l - d), 10f64.powf(h + d)));
    }
    if hi - lo < 1e-12 * hi.abs().max(1.0) {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return Some((lo - d, hi + d));
    }
    let d = (hi - lo) * pad;
    Some((lo - d, hi + d))
}

/// The range `lo..hi` raised at the top so that its top `frac` is free of `lo..hi` (in log
/// space for a log axis).
fn raise_top(lo: f64, hi: f64, log: bool, frac: f64) -> (f64, f64) {
    if log {
        let (l, h) = (lo.log10(), hi.log10());
        (lo, 10f64.powf((h - frac * l) / (1.0 - frac)))
    } else {
        (lo, (hi - frac * lo) / (1.0 - frac))
    }
}

/// Tick values for a log axis on [lo, hi]: powers of ten, then 1-2-5 or 1…9 multiples when the
/// range spans too few decades to show at least four ticks.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (e0, e1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    for mults in [
        &[1.0][..],
        &[1.0, 2.0, 5.0],
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
    ] {
        let ticks: Vec<f64> = (e0..=e1)
            .flat_map(|e| mults.iter().map(move |m| m * 10f64.powi(e)))
            .filter(|v| *v >= lo && *v <= hi)
            .collect();
        if ticks.len() >= 4 || mults.len() == 9 {
            return ticks;
        }
    }
    unreachable!("the last multiplier set always returns")
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &Panel) -> Result<(), String> {
    let ok = |x: &f64, y: &f64| x.is_finite() && y.is_finite() && (!p.log_y || *y > 0.0);
    let xs = p
        .lines
        .iter()
        .flat_map(|l| l.points.iter())
        .filter(|(x, y)| ok(x, y));
    if xs.clone().next().is_none() {
        // Nothing finite to draw (e.g. a diverged run): say so instead of failing.
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        let area = area
            .titled(p.title, (FONT, TITLE_SIZE, FontStyle::Bold).into_font())
            .map_err(e)?;
        let (w, h) = area.dim_in_pixel();
        area.draw(&Text::new(
            "no finite values to draw",
            (w as i32 / 2, h as i32 / 2),
            (FONT, DESC_SIZE)
                .into_font()
                .color(&BLACK.mix(0.6))
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(e)?;
        return Ok(());
    }
    let (x0, x1) = if p.integer_x {
        let (lo, hi) = span(xs.clone().map(|q| q.0), false, 0.0).ok_or("no points")?;
        (lo.round() - 0.4, hi.round() + 0.4)
    } else {
        let (lo, hi) = span(xs.clone().map(|q| q.0), false, 0.0).ok_or("no points")?;
        let pad = if p.lines.iter().any(|l| l.markers) {
            0.03
        } else {
            0.0
        };
        let d = (hi - lo) * pad;
        // Room for the value label right of the last point.
        let extra = if p.lines.iter().any(|l| l.value_labels) {
            (hi - lo) * 0.05
        } else {
            0.0
        };
        (lo - d, hi + d + extra)
    };
    let top_pad = if p.lines.iter().any(|l| l.value_labels) {
        0.14
    } else {
        0.06
    };
    let range_ys = p
        .lines
        .iter()
        .flat_map(|l| l.ranges.iter().flat_map(|r| [r.0, r.1]))
        .filter(|y| y.is_finite() && (!p.log_y || *y > 0.0));
    let (y0, y1) = span(xs.map(|q| q.1).chain(range_ys), p.log_y, top_pad).ok_or("no points")?;
    // The legend (upper right) gets a band of its own above every point, so it hides none.
    let named = p.lines.iter().filter(|l| l.name.is_some()).count();
    let (y0, y1) = if named == 0 {
        (y0, y1)
    } else {
        let h = area.dim_in_pixel().1 as f64;
        let band = (LEGEND_SIZE * 1.6 * named as f64 + 28.0) / (h - 90.0).max(120.0);
        raise_top(y0, y1, p.log_y, band.min(0.6))
    };
    let x: RangedCoordf64 = (x0..x1).into();
    if p.log_y {
        let y = (y0..y1).log_scale().with_key_points(log_ticks(y0, y1));
        draw_panel_in(area, p, x, y)
    } else {
        let y: RangedCoordf64 = (y0..y1).into();
        draw_panel_in(area, p, x, y)
    }
}

fn draw_panel_in<DB, Y>(
    area: &DrawingArea<DB, Shift>,
    p: &Panel,
    x: RangedCoordf64,
    y: Y,
) -> Result<(), String>
where
    DB: DrawingBackend,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let (x0, x1) = (x.range().start, x.range().end);
    let tick_font = (FONT, TICK_SIZE).into_font();
    // Size the y label area from the widest tick label it will hold.
    let y_ticks: Vec<f64> = y.key_points(8);
    let widest = y_ticks
        .iter()
        .map(|v| {
            area.estimate_text_size(&fmt_num(*v), &TextStyle::from(tick_font.clone()))
                .map(|s| s.0)
                .unwrap_or(40)
        })
        .max()
        .unwrap_or(40);
    let y_area = widest + 14 + DESC_SIZE as u32 + 12;
    let x_area = TICK_SIZE as u32 + 14 + DESC_SIZE as u32 + 10;

    let mut chart = ChartBuilder::on(area)
        .caption(p.title, (FONT, TITLE_SIZE, FontStyle::Bold).into_font())
        .margin_top(4)
        .margin_right(12)
        .x_label_area_size(x_area)
        .y_label_area_size(y_area)
        .build_cartesian_2d(x, y)
        .map_err(e)?;

    let int_fmt = |v: &f64| {
        if (v - v.round()).abs() < 1e-9 {
            format!("{}", v.round() as i64)
        } else {
            String::new()
        }
    };
    let num_fmt = |v: &f64| fmt_num(*v);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(p.x_label)
        .y_desc(p.y_label)
        .label_style(tick_font.clone())
        .axis_desc_style((FONT, DESC_SIZE))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04))
        .x_labels(if p.integer_x {
            ((x1 - x0).round() as usize + 1).clamp(2, 20)
        } else {
            8
        })
        .y_labels(8)
        .y_label_formatter(&num_fmt);
    if p.integer_x {
        mesh.x_label_formatter(&int_fmt);
    } else {
        mesh.x_label_formatter(&num_fmt);
    }
    mesh.draw().map_err(e)?;

    let y_range = chart.y_range();
    let (ylo, yhi) = (y_range.start, y_range.end);
    for g in &p.guides {
        chart
            .draw_series(LineSeries::new(
                vec![(*g, ylo), (*g, yhi)],
                ShapeStyle::from(BLACK.mix(0.25)).stroke_width(1),
            ))
            .map_err(e)?;
    }

    let log = p.log_y;
    let mut named = 0;
    for line in &p.lines {
        let pts: Vec<(f64, f64)> = line
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log || *y > 0.0))
            .collect();
        let style = ShapeStyle::from(line.colour.mix(line.alpha)).stroke_width(line.width);
        let series = chart
            .draw_series(LineSeries::new(pts.clone(), style))
            .map_err(e)?;
        if let Some(name) = &line.name {
            named += 1;
            let legend_style = ShapeStyle::from(line.colour.mix(line.alpha.max(0.5)))
                .stroke_width(line.width.max(2));
            series.label(name.clone()).legend(move |(lx, ly)| {
                PathElement::new(vec![(lx, ly), (lx + 24, ly)], legend_style)
            });
        }
        let ok = |y: f64| y.is_finite() && (!log || y > 0.0);
        for (&(x, _), &(lo, hi)) in line.points.iter().zip(&line.ranges) {
            if x.is_finite() && ok(lo) && ok(hi) {
                let style = ShapeStyle::from(line.colour.mix(0.8)).stroke_width(2);
                let dx = (x1 - x0) * 0.006;
                chart
                    .draw_series([
                        PathElement::new(vec![(x, lo), (x, hi)], style),
                        PathElement::new(vec![(x - dx, lo), (x + dx, lo)], style),
                        PathElement::new(vec![(x - dx, hi), (x + dx, hi)], style),
                    ])
                    .map_err(e)?;
            }
        }
        if line.markers {
            let c = line.colour;
            chart
                .draw_series(pts.iter().map(|&q| Circle::new(q, 4, c.filled())))
                .map_err(e)?;
        }
        if line.value_labels {
            // Up and right of the point: clear of a falling curve.
            let font = (FONT, TICK_SIZE)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Left, VPos::Bottom));
            chart
                .draw_series(
                    pts.iter().map(|&q| {
                        EmptyElement::at(q) + Text::new(fmt_num(q.1), (7, -5), font.clone())
                    }),
                )
                .map_err(e)?;
        }
    }
    if named > 0 {
        chart
            .configure_series_labels()
            .label_font((FONT, LEGEND_SIZE))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .position(SeriesLabelPosition::UpperRight)
            .margin(10)
            .draw()
            .map_err(e)?;
    }
    Ok(())
}

pub(super) fn draw_bar_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    c: &BarChart,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let area = root.margin(6, 6, 6, 14);
    let n = c.bars.len() as i32;
    let max = c.bars.iter().map(|b| b.1).fold(0.0f64, f64::max);
    let min = c.bars.iter().map(|b| b.1).fold(0.0f64, f64::min);
    let (lo, hi) = if max - min <= 0.0 {
        (0.0, 1.0)
    } else {
        let d = max - min;
        (
            if min < 0.0 { min - 0.12 * d } else { 0.0 },
            if max > 0.0 { max + 0.14 * d } else { 0.0 },
        )
    };
    let tick_font = (FONT, TICK_SIZE).into_font();
    let label_font = (FONT, LEGEND_SIZE).into_font();
    let y: RangedCoordf64 = (lo..hi).into();
    let widest = y
        .key_points(8)
        .iter()
        .map(|v| {
            area.estimate_text_size(&fmt_num(*v), &TextStyle::from(tick_font.clone()))
                .map(|s| s.0)
                .unwrap_or(40)
        })
        .max()
        .unwrap_or(40);
    let mut chart = ChartBuilder::on(&area)
        .caption(&c.title, (FONT, TITLE_SIZE, FontStyle::Bold).into_font())
        .margin_top(4)
        .margin_right(12)
        .x_label_area_size(LEGEND_SIZE as u32 + 16)
        .y_label_area_size(widest + 14 + DESC_SIZE as u32 + 12)
        .build_cartesian_2d(-0.5..n as f64 - 0.5, y)
        .map_err(e)?;
    let y_fmt = |v: &f64| fmt_num(*v);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(&c.y_label)
        .y_label_style(tick_font)
        .axis_desc_style((FONT, DESC_SIZE))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04))
        .x_labels(0)
        .y_label_formatter(&y_fmt)
        .draw()
        .map_err(e)?;
    chart
        .draw_series(c.bars.iter().enumerate().map(|(i, b)| {
            let x = i as f64;
            Rectangle::new(
                [(x - 0.32, 0.0), (x + 0.32, b.1)],
                colour::series(i).filled(),
            )
        }))
        .map_err(e)?;
    // Category labels under the axis, centred on their bars (in root pixel coordinates).
    let base = chart.y_range().start;
    let slot = chart.plotting_area().dim_in_pixel().0 as f64 / n as f64;
    let mut label_font = label_font;
    for size in [14.0, 13.0, 12.0, 11.0, 10.0] {
        let widest = c
            .bars
            .iter()
            .filter_map(|(l, _)| {
                root.estimate_text_size(l, &TextStyle::from(label_font.clone()))
                    .ok()
            })
            .map(|s| s.0)
            .max()
            .unwrap_or(0);
        if (widest as f64) < slot * 0.95 {
            break;
        }
        label_font = (FONT, size).into_font();
    }
    for (i, (label, _)) in c.bars.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64, base));
        root.draw(&Text::new(
            label.as_str(),
            (px, py + 8),
            label_font
                .clone()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(e)?;
    }
    let value_font = (FONT, LEGEND_SIZE).into_font().color(&BLACK);
    chart
        .draw_series(c.bars.iter().enumerate().map(|(i, b)| {
            let (off, anchor) = if b.1 >= 0.0 {
                (-6, VPos::Bottom)
            } else {
                (6, VPos::Top)
            };
            EmptyElement::at((i as f64, b.1))
                + Text::new(
                    fmt_num(b.1),
                    (0, off),
                    value_font.clone().pos(Pos::new(HPos::Center, anchor)),
                )
        }))
        .map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ema_smooths_and_debiases() {
        assert_eq!(smooth_ema(&[1.0, 2.0, 3.0], 0.0), vec![1.0, 2.0, 3.0]);
        let s = smooth_ema(&[4.0, 4.0, 4.0], 0.9);
        assert!(s.iter().all(|v| (v - 4.0).abs() < 1e-12), "{s:?}");
        let s = smooth_ema(&[0.0, 10.0], 0.5);
        // (0.5*0.5*0 + 0.5*10) / (0.5*0.5 + 0.5) = 5 / 0.75
        assert!((s[1] - 5.0 / 0.75).abs() < 1e-12);
        let s = smooth_ema(&[f64::NAN, 2.0], 0.5);
        assert!(s[0].is_nan() && (s[1] - 2.0).abs() < 1e-12);
    }

    #[test]
    fn spans_are_padded_and_never_empty() {
        assert_eq!(span([2.0, 2.0].into_iter(), false, 0.1), Some((1.8, 2.2)));
        assert_eq!(span([0.0].into_iter(), false, 0.1), Some((-1.0, 1.0)));
        let (lo, hi) = span([1.0, 100.0].into_iter(), true, 0.0).unwrap();
        assert!((lo - 1.0).abs() < 1e-9 && (hi - 100.0).abs() < 1e-9);
        assert_eq!(span([f64::NAN].into_iter(), false, 0.1), None);
    }

    #[test]
    fn log_ticks_fill_narrow_ranges() {
        assert_eq!(log_ticks(1.0, 1000.0), vec![1.0, 10.0, 100.0, 1000.0]);
        assert_eq!(log_ticks(150.0, 3000.0), vec![200.0, 500.0, 1000.0, 2000.0]);
        assert_eq!(log_ticks(3.0, 5.5).len(), 3);
    }
}
