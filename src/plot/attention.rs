//! Attention heatmaps: one n×n panel per head side by side (rows = queries, columns = keys),
//! token labels on both axes (rotated on x), a viridis colour bar; laid out in pixels so the
//! image size follows from the number of heads and tokens and no label is clipped.

use super::colour::viridis;
use super::{fmt_num, AttentionMap, FONT};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const TITLE_SIZE: f64 = 22.0;
const HEAD_SIZE: f64 = 16.0;
const TOKEN_SIZE: f64 = 14.0;
const DESC_SIZE: f64 = 16.0;
const GAP: u32 = 26;
const BAR_W: u32 = 18;

pub(super) fn check(map: &AttentionMap) -> Result<(), String> {
    let n = map.tokens.len();
    if n == 0 {
        return Err(format!("attention map `{}` has no tokens", map.title));
    }
    if map.heads.is_empty() {
        return Err(format!("attention map `{}` has no heads", map.title));
    }
    for (h, m) in map.heads.iter().enumerate() {
        if m.len() != n * n {
            return Err(format!(
                "attention map `{}`: head {} has {} weights, expected {n}×{n} = {} for {n} tokens",
                map.title,
                h + 1,
                m.len(),
                n * n
            ));
        }
    }
    Ok(())
}

/// Pixel layout of the figure, computed from the text it holds.
pub(super) struct Layout {
    cell: u32,
    panel: u32,
    /// Panels per row: all heads side by side unless that row would exceed `MAX_ROW` pixels.
    cols: u32,
    /// Height of one row of panels: head title, panel, rotated key labels.
    row_h: u32,
    left: u32,
    /// Top of the first row's panels.
    top: u32,
    label_w: u32,
    tick_w: u32,
    width: u32,
    height: u32,
}

/// Widest row of panels before the heads wrap onto a grid of rows (fits a 1400 px page).
const MAX_ROW: u32 = 1400;

/// Measures text with the bundled font on a throw-away SVG canvas.
fn text_width(text: &str, size: f64, bold: bool) -> u32 {
    let mut buf = String::new();
    let area = SVGBackend::with_string(&mut buf, (10, 10)).into_drawing_area();
    let font = if bold {
        (FONT, size, FontStyle::Bold).into_font()
    } else {
        (FONT, size).into_font()
    };
    area.estimate_text_size(text, &TextStyle::from(font))
        .map(|s| s.0)
        .unwrap_or((text.chars().count() as f64 * size * 0.62) as u32)
}

impl Layout {
    pub(super) fn new(map: &AttentionMap) -> Self {
        let n = map.tokens.len() as u32;
        let heads = map.heads.len() as u32;
        // Cells big enough for a label line, panels at least ~170 px, the whole row of heads
        // about 1800 px wide where that allows.
        let cell = (1800 / (heads * n).max(1))
            .clamp(18, 34)
            .max(170u32.div_ceil(n).min(40));
        let panel = cell * n;
        let fit = ((MAX_ROW + GAP) / (panel + GAP)).max(1);
        let rows = heads.div_ceil(fit.min(heads));
        let cols = heads.div_ceil(rows);
        let label_w = map
            .tokens
            .iter()
            .map(|t| text_width(t, TOKEN_SIZE, false))
            .max()
            .unwrap_or(0);
        let tick_w = text_width("0.75", TOKEN_SIZE, false);
        let head_h = HEAD_SIZE as u32 + 10;
        let row_h = head_h + panel + 8 + label_w + 16;
        let left = 14 + DESC_SIZE as u32 + 10 + label_w + 8;
        let top = 12 + TITLE_SIZE as u32 + 16 + head_h;
        let bottom = DESC_SIZE as u32 + 14;
        let right = 28 + BAR_W + 8 + tick_w + 12 + DESC_SIZE as u32 + 16;
        let body = cols * panel + (cols - 1) * GAP;
        let title_w = text_width(&map.title, TITLE_SIZE, true) + 40;
        let content = left + body + right;
        let width = content.max(title_w);
        // Centre the panels under a title wider than they are.
        let left = left + (width - content) / 2;
        let height = top - head_h + rows * row_h + bottom;
        Layout {
            cell,
            panel,
            cols,
            row_h,
            left,
            top,
            label_w,
            tick_w,
            width,
            height,
        }
    }

    pub(super) fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }
}

pub(super) fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    map: &AttentionMap,
    l: &Layout,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let n = map.tokens.len();
    let heads = map.heads.len();
    let (cell, panel) = (l.cell as i32, l.panel as i32);
    let (left, top) = (l.left as i32, l.top as i32);
    let cols = l.cols as i32;
    let rows = (heads as i32 + cols - 1) / cols;
    let body_w = cols * panel + (cols - 1) * GAP as i32;

    // Title, centred over the panels.
    let title_font = (FONT, TITLE_SIZE, FontStyle::Bold)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    let tw = text_width(&map.title, TITLE_SIZE, true) as i32;
    let title_x =
        (left + body_w / 2).clamp(tw / 2 + 10, (l.width as i32 - tw / 2 - 10).max(tw / 2 + 10));
    root.draw(&Text::new(map.title.as_str(), (title_x, 12), title_font))
        .map_err(e)?;

    let head_font = (FONT, HEAD_SIZE)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    let token_font = (FONT, TOKEN_SIZE).into_font().color(&BLACK);
    let ylab_font = token_font.clone().pos(Pos::new(HPos::Right, VPos::Center));
    let xlab_font = token_font
        .clone()
        .transform(FontTransform::Rotate90)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let desc_font = (FONT, DESC_SIZE).into_font().color(&BLACK);

    for (h, weights) in map.heads.iter().enumerate() {
        let (r, c) = (h as i32 / cols, h as i32 % cols);
        let x0 = left + c * (panel + GAP as i32);
        let y0 = top + r * l.row_h as i32;
        root.draw(&Text::new(
            format!("head {}", h + 1),
            (x0 + panel / 2, y0 - 8),
            head_font.clone(),
        ))
        .map_err(e)?;
        for q in 0..n {
            for k in 0..n {
                let v = weights[q * n + k] as f64;
                let (cx, cy) = (x0 + k as i32 * cell, y0 + q as i32 * cell);
                root.draw(&Rectangle::new(
                    [(cx, cy), (cx + cell, cy + cell)],
                    viridis(v).filled(),
                ))
                .map_err(e)?;
            }
        }
        root.draw(&Rectangle::new(
            [(x0, y0), (x0 + panel, y0 + panel)],
            BLACK.mix(0.5).stroke_width(1),
        ))
        .map_err(e)?;
        // Key labels under every panel, reading downwards.
        for (k, tok) in map.tokens.iter().enumerate() {
            root.draw(&Text::new(
                tok.as_str(),
                (x0 + k as i32 * cell + cell / 2, y0 + panel + 6),
                xlab_font.clone(),
            ))
            .map_err(e)?;
        }
    }
    // Query labels left of the first panel of each row (rows are shared by its heads).
    for r in 0..rows {
        let y0 = top + r * l.row_h as i32;
        for (q, tok) in map.tokens.iter().enumerate() {
            root.draw(&Text::new(
                tok.as_str(),
                (left - 8, y0 + q as i32 * cell + cell / 2),
                ylab_font.clone(),
            ))
            .map_err(e)?;
        }
        root.draw(&Text::new(
            "query",
            (14 + DESC_SIZE as i32 / 2, y0 + panel / 2),
            desc_font
                .clone()
                .transform(FontTransform::Rotate270)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(e)?;
    }
    let last_row_y = top + (rows - 1) * l.row_h as i32;
    root.draw(&Text::new(
        "key",
        (
            left + body_w / 2,
            last_row_y + panel + 8 + l.label_w as i32 + 12,
        ),
        desc_font.clone().pos(Pos::new(HPos::Center, VPos::Top)),
    ))
    .map_err(e)?;

    // Colour bar from 0 (bottom) to 1 (top), beside the first row.
    let bx = left + body_w + 28;
    let steps = 100;
    for i in 0..steps {
        let y_hi = top + panel * i / steps;
        let y_lo = top + panel * (i + 1) / steps;
        let t = 1.0 - (i as f64 + 0.5) / steps as f64;
        root.draw(&Rectangle::new(
            [(bx, y_hi), (bx + BAR_W as i32, y_lo)],
            viridis(t).filled(),
        ))
        .map_err(e)?;
    }
    root.draw(&Rectangle::new(
        [(bx, top), (bx + BAR_W as i32, top + panel)],
        BLACK.mix(0.5).stroke_width(1),
    ))
    .map_err(e)?;
    let tick_font = token_font.clone().pos(Pos::new(HPos::Left, VPos::Center));
    for i in 0..=4 {
        let t = i as f64 / 4.0;
        let y = top + panel - (panel as f64 * t).round() as i32;
        root.draw(&PathElement::new(
            vec![(bx + BAR_W as i32, y), (bx + BAR_W as i32 + 4, y)],
            BLACK,
        ))
        .map_err(e)?;
        root.draw(&Text::new(
            fmt_num(t),
            (bx + BAR_W as i32 + 8, y),
            tick_font.clone(),
        ))
        .map_err(e)?;
    }
    root.draw(&Text::new(
        "attention weight",
        (
            bx + BAR_W as i32 + 8 + l.tick_w as i32 + 12 + DESC_SIZE as i32 / 2,
            top + panel / 2,
        ),
        desc_font
            .transform(FontTransform::Rotate90)
            .pos(Pos::new(HPos::Center, VPos::Center)),
    ))
    .map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bold_text_is_measured_as_bold_and_fits() {
        super::super::ensure_fonts();
        let t = "Layer 1 attention: \"there was a brave explorer\"";
        let (regular, bold) = (text_width(t, 22.0, false), text_width(t, 22.0, true));
        assert!(bold > regular + 20, "bold {bold} regular {regular}");
        let l = Layout::new(&AttentionMap {
            title: t.into(),
            tokens: vec!["a".into(), "b".into(), "c".into()],
            heads: vec![vec![0.0; 9]],
        });
        assert!(
            l.size().0 >= bold + 20,
            "{:?} for a title {bold} wide",
            l.size()
        );
    }
}
