//! The PNG backend: plotters' bitmap backend with its own text rendering. plotters 0.3.7's
//! ab_glyph text path drops each glyph's left side bearing (so "2.124" renders as "2.1 24");
//! this wrapper lays glyphs out with ab_glyph correctly (bearings, kerning, anti-aliasing)
//! from the bundled DejaVu Sans, and delegates everything else.

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use plotters::prelude::BitMapBackend;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
    FontStyle,
};
use std::sync::OnceLock;

type Error = <BitMapBackend<'static> as DrawingBackend>::ErrorType;

/// A bitmap backend with correct glyph placement.
pub(crate) struct PngBackend<'a>(pub BitMapBackend<'a>);

fn font(bold: bool) -> &'static FontRef<'static> {
    static REGULAR: OnceLock<FontRef<'static>> = OnceLock::new();
    static BOLD: OnceLock<FontRef<'static>> = OnceLock::new();
    let (cell, bytes) = if bold {
        (&BOLD, dejavu::sans::bold())
    } else {
        (&REGULAR, dejavu::sans::regular())
    };
    cell.get_or_init(|| FontRef::try_from_slice(bytes).expect("the bundled DejaVu font parses"))
}

/// Pixels (x, y, coverage) of `text` with its layout box's top-left corner at (0, 0): the
/// baseline is placed so that capital letters are centred in a box of `box_h` pixels.
fn rasterize(text: &str, size: f32, bold: bool, box_h: f32) -> Vec<(i32, i32, f32)> {
    let font = font(bold);
    let scale = PxScale::from(size);
    let scaled = font.as_scaled(scale);
    let cap_h = font
        .outline_glyph(font.glyph_id('H').with_scale(scale))
        .map(|o| {
            let b = o.px_bounds();
            b.max.y - b.min.y
        })
        .unwrap_or(size * 0.6);
    let baseline = (box_h + cap_h) / 2.0;
    let mut out = Vec::new();
    let mut caret = 0.0f32;
    let mut prev = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = prev {
            caret += scaled.kern(p, id);
        }
        let glyph = id.with_scale_and_position(scale, point(caret, baseline));
        if let Some(outline) = font.outline_glyph(glyph) {
            let b = outline.px_bounds();
            outline.draw(|x, y, cov| {
                if cov > 0.0 {
                    out.push((
                        b.min.x as i32 + x as i32,
                        b.min.y as i32 + y as i32,
                        cov.min(1.0),
                    ));
                }
            });
        }
        caret += scaled.h_advance(id);
        prev = Some(id);
    }
    out
}

impl DrawingBackend for PngBackend<'_> {
    type ErrorType = Error;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Error>> {
        self.0.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Error>> {
        self.0.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Error>> {
        self.0.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Error>> {
        self.0.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Error>> {
        self.0.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Error>> {
        self.0.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Error>> {
        self.0.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Error>> {
        self.0.fill_polygon(vert, style)
    }

    fn draw_text<TStyle: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &TStyle,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Error>> {
        let color = style.color();
        if color.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        // Anchor with the same layout box plotters uses to place and measure text.
        let ((min_x, min_y), (max_x, max_y)) = style
            .layout_box(text)
            .map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
        let (width, height) = (max_x - min_x, max_y - min_y);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -width,
            HPos::Center => -width / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let bold = matches!(style.style(), FontStyle::Bold);
        let trans = style.transform();
        for (x, y, cov) in rasterize(text, style.size() as f32, bold, height as f32) {
            let (x, y) = trans.transform(x + dx, y + dy);
            self.0.draw_pixel(
                (pos.0 + x, pos.1 + y),
                BackendColor {
                    alpha: color.alpha * cov as f64,
                    rgb: color.rgb,
                },
            )?;
        }
        Ok(())
    }

    fn estimate_text_size<TStyle: BackendTextStyle>(
        &self,
        text: &str,
        style: &TStyle,
    ) -> Result<(u32, u32), DrawingErrorKind<Error>> {
        self.0.estimate_text_size(text, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        iwh: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Error>> {
        self.0.blit_bitmap(pos, iwh, src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyphs_keep_their_bearings() {
        // "1" has a wide left bearing in DejaVu: its ink must start well right of the origin,
        // and "11" must be twice as wide in advance as "1" with no overlap.
        let one = rasterize("1", 40.0, false, 32.0);
        let min_x = one.iter().map(|p| p.0).min().unwrap();
        assert!(min_x >= 3, "ink of `1` starts at {min_x}");
        let two = rasterize("11", 40.0, false, 32.0);
        let max1 = one.iter().map(|p| p.0).max().unwrap();
        let max2 = two.iter().map(|p| p.0).max().unwrap();
        assert!(max2 > max1 + 18, "{max1} {max2}");
    }
}
