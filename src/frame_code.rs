//! The frame code: twelve black-and-white block pairs that make an image say which frame it is, drawn and read
//! at any size. Two layouts, one strip apart: the demo video's ([`CodeLayout::VIDEO`], rows 0–99) and the stamp
//! `meshreel serve --stamp-frame-code` puts on every overlay ([`CodeLayout::OVERLAY`], rows 100–159), so a
//! screenshot of the player shows both codes and whether the overlay belongs to the video frame under it.

use std::ops::Range;

use crate::render::RgbaImage;

/// Bits of the frame code: it holds the 0-based frame index modulo 4096.
pub const CODE_BITS: u32 = 12;
/// The grey of the strip around the blocks.
pub const CODE_GREY: [u8; 4] = [128, 128, 128, 255];
const WHITE: [u8; 4] = [255, 255, 255, 255];
const BLACK: [u8; 4] = [0, 0, 0, 255];
/// Layouts are defined on this reference and scaled by (width/640, height/480).
const REFERENCE_WIDTH: u32 = 640;
const REFERENCE_HEIGHT: u32 = 480;
/// Block k (k = 0 the most significant bit) spans x = 24 + 50·k … +42 on the reference, in every layout.
const BLOCK_FIRST_X: u32 = 24;
const BLOCK_PITCH: u32 = 50;
const BLOCK_WIDTH: u32 = 42;
/// A bit reads only where its two blocks differ by this much in mean brightness (0–255); black and white
/// differ by about 255 after H.264 and yuv420p.
const MIN_CONTRAST: u32 = 64;

/// Where a frame code lies, in rows of the 640×480 reference: a grey strip across the whole width, and in it
/// row A (white for a 1 bit, black for 0) above row B (the inverse).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeLayout {
    pub(crate) strip_top: u32,
    /// The row after the strip.
    pub(crate) strip_end: u32,
    pub(crate) row_a_y: u32,
    pub(crate) row_b_y: u32,
    pub(crate) block_height: u32,
}

impl CodeLayout {
    /// The demo video's code: strip y 0–99, row A y 8–47, row B y 52–91.
    pub const VIDEO: CodeLayout = CodeLayout {
        strip_top: 0,
        strip_end: 100,
        row_a_y: 8,
        row_b_y: 52,
        block_height: 40,
    };

    /// The overlay stamp of `serve --stamp-frame-code`, one strip below the video's: strip y 100–159, row A
    /// y 108–127, row B y 132–151.
    pub const OVERLAY: CodeLayout = CodeLayout {
        strip_top: 100,
        strip_end: 160,
        row_a_y: 108,
        row_b_y: 132,
        block_height: 20,
    };

    /// The rows the strip covers in an image `height` pixels high.
    pub fn strip_rows(&self, height: u32) -> Range<u32> {
        let scale = |y: u32| scale(y, height, REFERENCE_HEIGHT);
        scale(self.strip_top)..scale(self.strip_end)
    }

    fn block_rect(&self, bit: u32, row_y: u32, size: (u32, u32)) -> Rect {
        let x = BLOCK_FIRST_X + BLOCK_PITCH * bit;
        scaled_rect(x, row_y, BLOCK_WIDTH, self.block_height, size)
    }
}

/// The value the frame code of frame `index` (0-based) holds.
pub fn value(index: u32) -> u32 {
    index % (1 << CODE_BITS)
}

/// A rectangle `[x0, x1) × [y0, y1)` in image pixels.
type Rect = (u32, u32, u32, u32);

/// `v` on the reference axis of length `reference`, scaled to an image axis of length `size`.
fn scale(v: u32, size: u32, reference: u32) -> u32 {
    (v as f32 * (size as f32 / reference as f32)).round() as u32
}

/// A rectangle of the 640×480 reference, scaled to an image of `size` by (width/640, height/480).
fn scaled_rect(x: u32, y: u32, width: u32, height: u32, size: (u32, u32)) -> Rect {
    let sx = |v: u32| scale(v, size.0, REFERENCE_WIDTH);
    let sy = |v: u32| scale(v, size.1, REFERENCE_HEIGHT);
    (sx(x), sy(y), sx(x + width), sy(y + height))
}

/// Draws the code of frame `index` in `layout`'s place: the opaque grey strip and its 12 block pairs. Pixels
/// outside the strip are left as they are.
pub fn draw(image: &mut RgbaImage, index: u32, layout: &CodeLayout) {
    let size = (image.width, image.height);
    let strip = scaled_rect(
        0,
        layout.strip_top,
        REFERENCE_WIDTH,
        layout.strip_end - layout.strip_top,
        size,
    );
    fill_rect(image, strip, CODE_GREY);
    let code = value(index);
    for bit in 0..CODE_BITS {
        let one = code >> (CODE_BITS - 1 - bit) & 1 == 1;
        let (a, b) = if one { (WHITE, BLACK) } else { (BLACK, WHITE) };
        fill_rect(image, layout.block_rect(bit, layout.row_a_y, size), a);
        fill_rect(image, layout.block_rect(bit, layout.row_b_y, size), b);
    }
}

/// Reads the code in `layout`'s place from RGBA pixels (rows top to bottom) of a `width`×`height` image: the
/// 0-based frame index modulo 4096, or `None` when the image carries no readable code there.
///
/// Each bit compares the mean brightness ((R + G + B) / 3) of the middle half (in each direction) of its row-A
/// block with that of its row-B block: 1 when A is brighter by at least 64, 0 when B is, unreadable otherwise.
/// The player in the browser reads the video's code the same way.
pub fn read(rgba: &[u8], width: u32, height: u32, layout: &CodeLayout) -> Option<u32> {
    if width == 0 || height == 0 || rgba.len() < width as usize * height as usize * 4 {
        return None;
    }
    let size = (width, height);
    let mut code = 0;
    for bit in 0..CODE_BITS {
        let block = |row_y| middle(layout.block_rect(bit, row_y, size));
        let a = mean_brightness(rgba, width, block(layout.row_a_y))?;
        let b = mean_brightness(rgba, width, block(layout.row_b_y))?;
        let value = if a >= b + MIN_CONTRAST {
            1
        } else if b >= a + MIN_CONTRAST {
            0
        } else {
            return None;
        };
        code = code << 1 | value;
    }
    Some(code)
}

/// The middle half of a rectangle in each direction, away from the edges that compression blurs.
fn middle((x0, y0, x1, y1): Rect) -> Rect {
    let (dx, dy) = ((x1 - x0) / 4, (y1 - y0) / 4);
    (x0 + dx, y0 + dy, x1 - dx, y1 - dy)
}

fn mean_brightness(rgba: &[u8], width: u32, (x0, y0, x1, y1): Rect) -> Option<u32> {
    let (mut sum, mut count) = (0u64, 0u64);
    for y in y0..y1 {
        for x in x0..x1 {
            let i = (y as usize * width as usize + x as usize) * 4;
            let pixel = rgba.get(i..i + 3)?;
            sum += pixel.iter().map(|c| u64::from(*c)).sum::<u64>();
            count += 3;
        }
    }
    (count > 0).then(|| (sum / count) as u32)
}

fn fill_rect(image: &mut RgbaImage, (x0, y0, x1, y1): Rect, colour: [u8; 4]) {
    for y in y0..y1.min(image.height) {
        for x in x0..x1.min(image.width) {
            let i = (y as usize * image.width as usize + x as usize) * 4;
            image.pixels[i..i + 4].copy_from_slice(&colour);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYOUTS: [CodeLayout; 2] = [CodeLayout::VIDEO, CodeLayout::OVERLAY];
    const SIZES: [(u32, u32); 4] = [(640, 480), (1280, 720), (320, 240), (1920, 1080)];
    const INDICES: [u32; 12] = [
        0, 1, 2, 299, 1000, 2047, 2048, 4094, 4095, 4096, 4097, 12345,
    ];

    #[test]
    fn every_frame_code_reads_back_at_the_reference_and_other_sizes() {
        for layout in LAYOUTS {
            for (width, height) in SIZES {
                let mut image = RgbaImage::transparent(width, height);
                for index in INDICES {
                    draw(&mut image, index, &layout);
                    assert_eq!(
                        read(&image.pixels, width, height, &layout),
                        Some(index % 4096),
                        "index {index} at {width}x{height} in {layout:?}"
                    );
                }
            }
            let mut image = RgbaImage::transparent(640, 480);
            for index in 0..4096 {
                draw(&mut image, index, &layout);
                assert_eq!(read(&image.pixels, 640, 480, &layout), Some(index));
            }
        }
    }

    #[test]
    fn the_video_code_is_laid_out_as_documented() {
        let mut image = RgbaImage::transparent(640, 480);
        // 0b1010_0000_0001: bits 0, 2 and 11 (from the most significant) are set.
        draw(&mut image, 0xa01, &CodeLayout::VIDEO);
        assert_eq!(image.pixel(0, 0), CODE_GREY);
        assert_eq!(image.pixel(639, 99), CODE_GREY);
        assert_eq!(image.pixel(23, 8), CODE_GREY);
        assert_eq!(image.pixel(24, 8), WHITE, "bit 0 is 1: row A white");
        assert_eq!(image.pixel(65, 47), WHITE);
        assert_eq!(image.pixel(66, 47), CODE_GREY);
        assert_eq!(image.pixel(24, 52), BLACK, "row B is the inverse");
        assert_eq!(image.pixel(24, 92), CODE_GREY);
        assert_eq!(image.pixel(74, 8), BLACK, "bit 1 is 0");
        assert_eq!(image.pixel(74, 91), WHITE);
        assert_eq!(image.pixel(24 + 50 * 11, 8), WHITE, "bit 11 is 1");
        assert_eq!(image.pixel(0, 100), [0; 4], "the strip ends at row 99");
        assert_eq!(CodeLayout::VIDEO.strip_rows(480), 0..100);
    }

    #[test]
    fn the_overlay_code_is_laid_out_as_documented() {
        let mut image = RgbaImage::transparent(640, 480);
        draw(&mut image, 0xa01, &CodeLayout::OVERLAY);
        assert_eq!(image.pixel(0, 100), CODE_GREY);
        assert_eq!(image.pixel(639, 159), CODE_GREY);
        assert_eq!(image.pixel(23, 108), CODE_GREY);
        assert_eq!(image.pixel(24, 107), CODE_GREY);
        assert_eq!(image.pixel(24, 108), WHITE, "bit 0 is 1: row A white");
        assert_eq!(image.pixel(65, 127), WHITE);
        assert_eq!(image.pixel(66, 127), CODE_GREY);
        assert_eq!(image.pixel(24, 128), CODE_GREY, "row A ends at row 127");
        assert_eq!(image.pixel(24, 131), CODE_GREY);
        assert_eq!(image.pixel(24, 132), BLACK, "row B is the inverse");
        assert_eq!(image.pixel(65, 151), BLACK);
        assert_eq!(image.pixel(24, 152), CODE_GREY, "row B ends at row 151");
        assert_eq!(image.pixel(74, 108), BLACK, "bit 1 is 0");
        assert_eq!(image.pixel(74, 151), WHITE);
        assert_eq!(image.pixel(24 + 50 * 11, 108), WHITE, "bit 11 is 1");
        assert_eq!(image.pixel(24 + 50 * 11 + 41, 132), BLACK);
        assert_eq!(CodeLayout::OVERLAY.strip_rows(480), 100..160);
        assert_eq!(CodeLayout::OVERLAY.strip_rows(720), 150..240);
    }

    #[test]
    fn the_overlay_strip_is_opaque_grey_outside_its_blocks_and_leaves_other_rows_untouched() {
        for (width, height) in SIZES {
            let mut image = RgbaImage::transparent(width, height);
            draw(&mut image, 0x5a3, &CodeLayout::OVERLAY);
            let strip = CodeLayout::OVERLAY.strip_rows(height);
            let blocks: Vec<Rect> = (0..CODE_BITS)
                .flat_map(|bit| {
                    [CodeLayout::OVERLAY.row_a_y, CodeLayout::OVERLAY.row_b_y]
                        .map(|row_y| CodeLayout::OVERLAY.block_rect(bit, row_y, (width, height)))
                })
                .collect();
            for y in 0..height {
                for x in 0..width {
                    let pixel = image.pixel(x, y);
                    let in_block = blocks
                        .iter()
                        .any(|&(x0, y0, x1, y1)| (x0..x1).contains(&x) && (y0..y1).contains(&y));
                    if !strip.contains(&y) {
                        assert_eq!(pixel, [0; 4], "({x}, {y}) at {width}x{height} is touched");
                    } else if in_block {
                        assert!(
                            pixel == WHITE || pixel == BLACK,
                            "({x}, {y}) at {width}x{height}"
                        );
                    } else {
                        assert_eq!(pixel, CODE_GREY, "({x}, {y}) at {width}x{height}");
                    }
                }
            }
        }
    }

    #[test]
    fn an_image_with_both_codes_reads_back_each() {
        for (width, height) in SIZES {
            assert!(
                CodeLayout::VIDEO.strip_rows(height).end
                    <= CodeLayout::OVERLAY.strip_rows(height).start
            );
            for (video, overlay) in [(0, 4095), (4095, 0), (1234, 1235), (299, 7)] {
                let mut image = RgbaImage::transparent(width, height);
                draw(&mut image, video, &CodeLayout::VIDEO);
                draw(&mut image, overlay, &CodeLayout::OVERLAY);
                assert_eq!(
                    read(&image.pixels, width, height, &CodeLayout::VIDEO),
                    Some(video),
                    "{width}x{height}"
                );
                assert_eq!(
                    read(&image.pixels, width, height, &CodeLayout::OVERLAY),
                    Some(overlay),
                    "{width}x{height}"
                );
                // Drawn the other way round, neither strip covers the other.
                let mut image = RgbaImage::transparent(width, height);
                draw(&mut image, overlay, &CodeLayout::OVERLAY);
                draw(&mut image, video, &CodeLayout::VIDEO);
                assert_eq!(
                    read(&image.pixels, width, height, &CodeLayout::OVERLAY),
                    Some(overlay),
                    "{width}x{height}"
                );
            }
        }
    }

    #[test]
    fn images_without_a_code_read_as_none() {
        let grey = RgbaImage {
            width: 640,
            height: 480,
            pixels: CODE_GREY.repeat(640 * 480),
        };
        for layout in LAYOUTS {
            assert_eq!(read(&grey.pixels, 640, 480, &layout), None);
            assert_eq!(read(&[], 0, 0, &layout), None);
            assert_eq!(read(&grey.pixels[..100], 640, 480, &layout), None);
            let transparent = RgbaImage::transparent(640, 480);
            assert_eq!(read(&transparent.pixels, 640, 480, &layout), None);
            let mut tiny = RgbaImage::transparent(4, 3);
            draw(&mut tiny, 5, &layout);
            assert_eq!(read(&tiny.pixels, 4, 3, &layout), None);
        }
        let mut video_only = RgbaImage::transparent(640, 480);
        draw(&mut video_only, 42, &CodeLayout::VIDEO);
        assert_eq!(
            read(&video_only.pixels, 640, 480, &CodeLayout::OVERLAY),
            None
        );
    }
}
