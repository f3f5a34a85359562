//! The image for a frame with nothing to show (no detection, corrupt file, …): transparent, with a small badge
//! that says why. Drawn on the CPU with font8x8's 8×8 ASCII glyphs, so it needs no GL and is byte-identical
//! everywhere.

use font8x8::{BASIC_FONTS, UnicodeFonts};

use super::RgbaImage;

const GLYPH_SIZE: u32 = 8;
const BADGE_COLOR: [u8; 4] = [20, 20, 20, 200];
const TEXT_COLOR: [u8; 4] = [255, 255, 255, 255];
const ELLIPSIS: &str = "...";
/// Margin, padding and corner radius, in glyph pixels (multiplied by the scale like the glyphs).
const MARGIN: u32 = 4;
const PADDING: u32 = 3;
const CORNER_RADIUS: u32 = 3;

/// A transparent `width`×`height` image with a badge saying `text`.
pub fn placeholder(width: u32, height: u32, text: &str) -> RgbaImage {
    let mut image = RgbaImage::transparent(width, height);
    draw_badge(&mut image, text);
    image
}

/// Draws a badge saying `text` in the top-left corner, replacing the pixels under it. Text too wide for the
/// image is cut and ends with "..."; where not even that fits, or `text` is empty, nothing is drawn.
pub fn draw_badge(image: &mut RgbaImage, text: &str) {
    let scale = glyph_scale(image.height);
    let margin = MARGIN * scale;
    draw_badge_at(image, text, (margin, margin), scale);
}

/// Draws a badge saying `text` with its top-left corner at `origin`, each glyph pixel `scale`×`scale` image
/// pixels, keeping a margin to the image's right edge. Text too wide is cut as [`draw_badge`] cuts it; where the
/// badge does not fit below `origin`, nothing is drawn.
pub fn draw_badge_at(image: &mut RgbaImage, text: &str, origin: (u32, u32), scale: u32) {
    let scale = scale.max(1);
    let (margin, padding) = (MARGIN * scale, PADDING * scale);
    let max_text_width = image
        .width
        .saturating_sub(origin.0)
        .saturating_sub(margin + 2 * padding);
    let glyphs = fit_text(text, max_text_width, scale);
    let badge_height = GLYPH_SIZE * scale + 2 * padding;
    if glyphs.is_empty() || origin.1.saturating_add(badge_height) > image.height {
        return;
    }
    let badge_width = text_width(glyphs.len(), scale) + 2 * padding;
    fill_rounded_rect(
        image,
        origin,
        (badge_width, badge_height),
        CORNER_RADIUS * scale,
        BADGE_COLOR,
    );
    let (text_x, text_y) = (origin.0 + padding, origin.1 + padding);
    for (position, &glyph) in (0..).zip(&glyphs) {
        let x = text_x + position * GLYPH_SIZE * scale;
        draw_glyph(image, glyph, (x, text_y), scale, TEXT_COLOR);
    }
}

/// How many image pixels each glyph pixel covers. Growing with the height keeps the badge about the same
/// size on screen, since the browser fits every frame to the same player; capped so it never shouts.
fn glyph_scale(image_height: u32) -> u32 {
    (1 + image_height / 400).min(4)
}

/// The width of `num_glyphs` glyphs side by side; font8x8 glyphs carry their own spacing.
fn text_width(num_glyphs: usize, scale: u32) -> u32 {
    u32::try_from(num_glyphs)
        .unwrap_or(u32::MAX)
        .saturating_mul(GLYPH_SIZE * scale)
}

/// The glyphs of `text` that fit in `max_width`: printable ASCII as is, anything else as '?', and a cut text
/// ending with "...".
fn fit_text(text: &str, max_width: u32, scale: u32) -> Vec<char> {
    let max_glyphs = (max_width / (GLYPH_SIZE * scale)) as usize;
    let printable = |c: char| {
        if c == ' ' || c.is_ascii_graphic() {
            c
        } else {
            '?'
        }
    };
    let mut glyphs: Vec<char> = text.chars().take(max_glyphs + 1).map(printable).collect();
    if glyphs.len() > max_glyphs {
        glyphs.truncate(max_glyphs.saturating_sub(ELLIPSIS.len()));
        glyphs.extend(ELLIPSIS.chars().take(max_glyphs - glyphs.len()));
    }
    glyphs
}

/// Draws the font8x8 glyph of `glyph` with its top-left corner at `origin`, each glyph pixel a
/// `scale`×`scale` square; unset glyph pixels are left alone.
fn draw_glyph(image: &mut RgbaImage, glyph: char, origin: (u32, u32), scale: u32, color: [u8; 4]) {
    let rows = BASIC_FONTS.get(glyph).unwrap_or_default();
    for (row, bits) in (0..).zip(rows) {
        for column in 0..GLYPH_SIZE {
            // font8x8 keeps the leftmost pixel in the lowest bit.
            if bits >> column & 1 == 1 {
                let x = origin.0.saturating_add(column * scale);
                let y = origin.1.saturating_add(row * scale);
                fill_rounded_rect(image, (x, y), (scale, scale), 0, color);
            }
        }
    }
}

/// Fills a rectangle with corners rounded to `radius`, clipped to the image. A pixel of a corner is filled
/// when its centre lies inside the corner's circle, so the shape is exact and symmetric.
fn fill_rounded_rect(
    image: &mut RgbaImage,
    origin: (u32, u32),
    size: (u32, u32),
    radius: u32,
    color: [u8; 4],
) {
    let (width, height) = size;
    let radius = radius.min(width / 2).min(height / 2);
    // Doubled distance from a corner circle's centre to the centre of pixel `offset` of the span, or None
    // outside the corner bands.
    let corner_offset = |offset: u32, span: u32| -> Option<u64> {
        if offset < radius {
            Some(u64::from(2 * (radius - 1 - offset) + 1))
        } else if offset >= span - radius {
            Some(u64::from(2 * (offset - (span - radius)) + 1))
        } else {
            None
        }
    };
    let radius_squared = 4 * u64::from(radius) * u64::from(radius);
    for dy in 0..height.min(image.height.saturating_sub(origin.1)) {
        for dx in 0..width.min(image.width.saturating_sub(origin.0)) {
            if let (Some(cx), Some(cy)) = (corner_offset(dx, width), corner_offset(dy, height))
                && cx * cx + cy * cy > radius_squared
            {
                continue;
            }
            put_pixel(image, origin.0 + dx, origin.1 + dy, color);
        }
    }
}

/// Writes one pixel; anything outside the image or its buffer is ignored.
fn put_pixel(image: &mut RgbaImage, x: u32, y: u32, color: [u8; 4]) {
    if x >= image.width || y >= image.height {
        return;
    }
    let start = (y as usize * image.width as usize + x as usize) * 4;
    if let Some(pixel) = image.pixels.get_mut(start..start + 4) {
        pixel.copy_from_slice(&color);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The badge's rectangle (x, y, width, height) as `draw_badge` lays it out.
    fn badge_rect(image_width: u32, image_height: u32, text: &str) -> (u32, u32, u32, u32) {
        let scale = glyph_scale(image_height);
        let (margin, padding) = (MARGIN * scale, PADDING * scale);
        let glyphs = fit_text(text, image_width - 2 * (margin + padding), scale);
        (
            margin,
            margin,
            text_width(glyphs.len(), scale) + 2 * padding,
            GLYPH_SIZE * scale + 2 * padding,
        )
    }

    fn inside(rect: (u32, u32, u32, u32), x: u32, y: u32) -> bool {
        x >= rect.0 && x < rect.0 + rect.2 && y >= rect.1 && y < rect.1 + rect.3
    }

    fn count_pixels(image: &RgbaImage, color: [u8; 4]) -> usize {
        image.pixels.chunks_exact(4).filter(|p| *p == color).count()
    }

    #[test]
    fn outside_the_badge_every_pixel_stays_fully_transparent() {
        let image = placeholder(720, 720, "no detection");
        let rect = badge_rect(720, 720, "no detection");
        assert_eq!(rect, (8, 8, 12 * 16 + 12, 16 + 12));
        for y in 0..image.height {
            for x in 0..image.width {
                if !inside(rect, x, y) {
                    assert_eq!(image.pixel(x, y), [0; 4], "pixel ({x}, {y})");
                }
            }
        }
    }

    #[test]
    fn the_badge_has_opaque_white_text_on_a_dark_background() {
        let image = placeholder(720, 720, "no detection");
        assert!(count_pixels(&image, TEXT_COLOR) > 100);
        assert!(count_pixels(&image, BADGE_COLOR) > 1000);
        // Rounded corners: the badge's corner pixel stays transparent, the centre of its edge does not.
        assert_eq!(image.pixel(8, 8), [0; 4]);
        assert_eq!(image.pixel(8, 8 + 14), BADGE_COLOR);
    }

    #[test]
    fn the_letter_a_is_drawn_as_font8x8_defines_it_scaled() {
        let image = placeholder(720, 720, "A");
        let scale = glyph_scale(720);
        assert_eq!(scale, 2);
        let origin = (MARGIN + PADDING) * scale;
        let rows = BASIC_FONTS.get('A').unwrap();
        for (row, bits) in (0..).zip(rows) {
            for column in 0..GLYPH_SIZE {
                let expected = if bits >> column & 1 == 1 {
                    TEXT_COLOR
                } else {
                    BADGE_COLOR
                };
                for (sx, sy) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let x = origin + column * scale + sx;
                    let y = origin + row * scale + sy;
                    assert_eq!(image.pixel(x, y), expected, "glyph pixel ({column}, {row})");
                }
            }
        }
    }

    #[test]
    fn long_text_is_cut_with_an_ellipsis_and_stays_inside_the_image() {
        let text = "frame 000123: corrupt NPZ (truncated zip archive)";
        let (width, height) = (120, 60);
        let image = placeholder(width, height, text);
        // scale 1: 120 - 2 * (4 + 3) = 106 pixels for text, 13 glyphs.
        let glyphs: String = fit_text(text, 106, 1).into_iter().collect();
        assert_eq!(glyphs, "frame 0001...");
        let rect = badge_rect(width, height, text);
        assert!(rect.0 + rect.2 <= width - MARGIN);
        for y in 0..height {
            for x in 0..width {
                if !inside(rect, x, y) {
                    assert_eq!(image.pixel(x, y), [0; 4], "pixel ({x}, {y})");
                }
            }
        }
        // The last glyph cell shows a '.', as font8x8 draws it.
        let last_x = MARGIN + PADDING + 12 * GLYPH_SIZE;
        let dot = BASIC_FONTS.get('.').unwrap();
        for (row, bits) in (0..).zip(dot) {
            for column in 0..GLYPH_SIZE {
                let pixel = image.pixel(last_x + column, MARGIN + PADDING + row);
                assert_eq!(pixel == TEXT_COLOR, bits >> column & 1 == 1);
            }
        }
    }

    #[test]
    fn text_that_fits_is_not_cut() {
        assert_eq!(fit_text("abc", 24, 1), vec!['a', 'b', 'c']);
        assert_eq!(fit_text("abcd", 24, 1), vec!['.', '.', '.']);
        assert_eq!(fit_text("abcde", 16, 1), vec!['.', '.']);
        assert_eq!(fit_text("abc", 0, 1), Vec::<char>::new());
    }

    #[test]
    fn characters_outside_printable_ascii_are_drawn_as_question_marks() {
        assert_eq!(placeholder(300, 300, "é\t✓"), placeholder(300, 300, "???"));
    }

    #[test]
    fn tiny_images_and_empty_text_do_not_panic() {
        let long = "x".repeat(10_000);
        for (width, height) in [
            (0, 0),
            (1, 1),
            (10, 10),
            (0, 720),
            (720, 0),
            (1, 720),
            (720, 1),
            (30, 30),
        ] {
            for text in ["", "?", "no detection", long.as_str()] {
                let image = placeholder(width, height, text);
                assert_eq!(image.pixels.len(), width as usize * height as usize * 4);
            }
        }
        assert_eq!(
            placeholder(10, 10, "no detection"),
            RgbaImage::transparent(10, 10)
        );
        assert_eq!(placeholder(720, 720, ""), RgbaImage::transparent(720, 720));
    }

    #[test]
    fn a_buffer_shorter_than_its_dimensions_is_not_written_past() {
        let mut image = RgbaImage::transparent(720, 720);
        image.pixels.truncate(100);
        draw_badge(&mut image, "no detection");
        assert_eq!(image.pixels.len(), 100);
    }

    #[test]
    fn the_badge_replaces_the_pixels_under_it_and_leaves_the_rest() {
        let red = [200, 0, 0, 255];
        let mut image = RgbaImage {
            width: 400,
            height: 400,
            pixels: red.repeat(400 * 400),
        };
        draw_badge(&mut image, "no detection");
        let rect = badge_rect(400, 400, "no detection");
        assert_eq!(image.pixel(rect.0 + rect.2 / 2, rect.1 + 1), BADGE_COLOR);
        assert_eq!(image.pixel(rect.0 + rect.2, rect.1), red);
        assert_eq!(image.pixel(399, 399), red);
    }

    #[test]
    fn the_same_input_gives_byte_identical_output() {
        let first = placeholder(720, 720, "corrupt file");
        assert_eq!(placeholder(720, 720, "corrupt file").pixels, first.pixels);
    }

    #[test]
    fn a_badge_placed_elsewhere_is_the_corner_badge_moved() {
        let mut corner = RgbaImage::transparent(200, 100);
        draw_badge_at(&mut corner, "frame 0042", (MARGIN, MARGIN), 1);
        let mut moved = RgbaImage::transparent(200, 100);
        draw_badge_at(&mut moved, "frame 0042", (MARGIN + 30, MARGIN + 50), 1);
        for y in 0..50 {
            for x in 0..170 {
                assert_eq!(
                    corner.pixel(x, y),
                    moved.pixel(x + 30, y + 50),
                    "pixel ({x}, {y})"
                );
            }
        }
        assert_eq!(corner, placeholder(200, 100, "frame 0042"));
        // Too low to fit: nothing drawn.
        let mut low = RgbaImage::transparent(200, 100);
        draw_badge_at(&mut low, "frame 0042", (0, 90), 1);
        assert_eq!(low, RgbaImage::transparent(200, 100));
    }

    #[test]
    fn glyphs_grow_with_the_image_height() {
        assert_eq!(glyph_scale(1), 1);
        assert_eq!(glyph_scale(399), 1);
        assert_eq!(glyph_scale(400), 2);
        assert_eq!(glyph_scale(720), 2);
        assert_eq!(glyph_scale(1080), 3);
        assert_eq!(glyph_scale(u32::MAX), 4);
    }
}
