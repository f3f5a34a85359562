//! The CPU backend: rasterizes prepared triangles exactly as GL does, with no system packages.
//!
//! Vertices snap to 1/256 pixel, coverage comes from exact 64-bit integer edge functions with the top-left fill
//! rule, depth is interpolated in screen space and tested "less" in submission order, as GL does. Rows are split
//! between threads; every pixel is computed from its triangle's own constants, so the image does not depend on
//! the number of threads.

use std::cell::RefCell;

use super::RgbaImage;
use super::scene::Triangles;
use crate::parallel::run_parts;

/// Sub-pixel precision: 8 bits, as llvmpipe uses.
const SUBPIXEL_BITS: u32 = 8;
const SUBPIXEL: f64 = (1 << SUBPIXEL_BITS) as f64;
const ONE: i64 = 1 << SUBPIXEL_BITS;
const HALF: i64 = 1 << (SUBPIXEL_BITS - 1);
/// Triangles reaching further than this many pixels outside the image are dropped rather than risk overflowing
/// the fixed-point arithmetic (meshes seen through OSX's cameras stay far inside it).
const MAX_OFFSCREEN_PIXELS: f64 = 65_536.0;
/// Rows wider than this are solved for their covered span with divisions; narrower ones are scanned, which is
/// cheaper for the small triangles of a body mesh. Both give exactly the same pixels.
const SCAN_MAX_WIDTH: i64 = 24;
/// Triangles whose vertices lie within this many pixels of each other both ways, and whose box is at most
/// `LANES` pixels wide, are drawn a row of lanes at a time with 32-bit edge values, which cannot overflow for
/// them: |Δx|, |Δy| ≤ 2¹⁴ and offsets within the box plus lanes < 2¹⁵, so each edge value stays below 2³⁰.
const SMALL_EXTENT: i64 = 64 * ONE;
/// Columns evaluated at once by the small-triangle path.
const LANES: usize = 16;
/// Triangles whose vertices' depths are all within ±this need no per-pixel depth clipping.
const DEPTH_MARGIN: f64 = 0.999_99;

/// A triangle in fixed-point window coordinates (x right, y down), oriented with positive area.
#[derive(Clone, Copy, Debug)]
struct Setup {
    /// Edge functions (b→c, c→a, a→b) at the centre of the bounding box's top-left pixel, plus the edge's
    /// fill-rule bias (0 for top-left edges, -1 otherwise): a pixel is covered when all three are ≥ 0.
    origin: [i64; 3],
    /// How each edge function changes one pixel right, and one pixel down.
    step_x: [i64; 3],
    step_y: [i64; 3],
    /// NDC depth as a plane over pixel offsets from the bounding box's top-left pixel: z0 + dz_dx·i + dz_dy·j.
    z0: f64,
    dz_dx: f64,
    dz_dy: f64,
    area: i64,
    /// Pixel bounding box, inclusive, clipped to the image.
    min: (i64, i64),
    max: (i64, i64),
    /// Index of the triangle's first vertex in the input.
    first: usize,
    /// Whether the second and third vertices were swapped to orient it.
    swapped: bool,
    /// Whether the small-triangle path may draw it (see `SMALL_EXTENT`).
    small: bool,
    /// Whether some pixels may have depth outside -1..1 and need clipping (a vertex near or beyond ±1).
    clips_depth: bool,
}

/// Sets up triangle `index`, whose vertices are `vertices`, for an image of `size`; `None` when it covers no
/// pixel centre (or lies too far outside the image).
#[inline(always)]
fn setup(vertices: &[[f32; 3]; 3], index: usize, size: (u32, u32)) -> Option<Setup> {
    let first = index * 3;
    let (width, height) = (f64::from(size.0), f64::from(size.1));
    // NDC → fixed-point window coordinates, y down: pixel (i, j) covers [i, i+1) × [j, j+1), sampled at its
    // centre.
    let (scale_x, scale_y) = (0.5 * width * SUBPIXEL, 0.5 * height * SUBPIXEL);
    let limit_x = (width + MAX_OFFSCREEN_PIXELS) * SUBPIXEL;
    let limit_y = (height + MAX_OFFSCREEN_PIXELS) * SUBPIXEL;
    let mut x = [0i64; 3];
    let mut y = [0i64; 3];
    let mut z = [0f64; 3];
    for (k, &[nx, ny, nz]) in vertices.iter().enumerate() {
        let wx = (f64::from(nx) + 1.0) * scale_x;
        let wy = (1.0 - f64::from(ny)) * scale_y;
        if !(wx.abs() < limit_x && wy.abs() < limit_y) {
            return None;
        }
        x[k] = round_to_i64(wx);
        y[k] = round_to_i64(wy);
        z[k] = f64::from(nz);
    }
    let mut area = (x[1] - x[0]) * (y[2] - y[0]) - (x[2] - x[0]) * (y[1] - y[0]);
    let swapped = area < 0;
    if swapped {
        x.swap(1, 2);
        y.swap(1, 2);
        z.swap(1, 2);
        area = -area;
    }
    if area == 0 {
        return None;
    }
    let lowest = |v: &[i64; 3]| v[0].min(v[1]).min(v[2]);
    let highest = |v: &[i64; 3]| v[0].max(v[1]).max(v[2]);
    let (low, high) = ((lowest(&x), lowest(&y)), (highest(&x), highest(&y)));
    // Pixels whose centre (i + ½) can lie inside: from ceil(min - ½) to floor(max - ½).
    let first_centre = |v: i64| (v - HALF + ONE - 1) >> SUBPIXEL_BITS;
    let last_centre = |v: i64| (v - HALF) >> SUBPIXEL_BITS;
    let min = (first_centre(low.0).max(0), first_centre(low.1).max(0));
    let max = (
        last_centre(high.0).min(i64::from(size.0) - 1),
        last_centre(high.1).min(i64::from(size.1) - 1),
    );
    if min.0 > max.0 || min.1 > max.1 {
        return None;
    }
    let small = high.0 - low.0 <= SMALL_EXTENT
        && high.1 - low.1 <= SMALL_EXTENT
        && max.0 - min.0 < LANES as i64;
    let (px, py) = (min.0 * ONE + HALF, min.1 * ONE + HALF);
    let mut origin = [0i64; 3];
    let mut step_x = [0i64; 3];
    let mut step_y = [0i64; 3];
    let (mut z0, mut dz_dx, mut dz_dy) = (0.0, 0.0, 0.0);
    let inverse_area = 1.0 / area as f64;
    for (k, (a, b)) in [(1, 2), (2, 0), (0, 1)].into_iter().enumerate() {
        let (dx, dy) = (x[b] - x[a], y[b] - y[a]);
        let e = dx * (py - y[a]) - dy * (px - x[a]);
        // In y-down coordinates with positive area, an edge a→b is a top edge when horizontal going right,
        // and a left edge when going up; the others lose the pixels exactly on them.
        let top_left = dy < 0 || (dy == 0 && dx > 0);
        origin[k] = e - i64::from(!top_left);
        step_x[k] = -dy * ONE;
        step_y[k] = dx * ONE;
        // Edge k's value is vertex k's barycentric weight times the area.
        let z_per_e = z[k] * inverse_area;
        z0 += e as f64 * z_per_e;
        dz_dx += step_x[k] as f64 * z_per_e;
        dz_dy += step_y[k] as f64 * z_per_e;
    }
    Some(Setup {
        origin,
        step_x,
        step_y,
        z0,
        dz_dx,
        dz_dy,
        area,
        min,
        max,
        first,
        swapped,
        small,
        // Pixel depths are convex combinations of the vertices' (up to rounding far below this margin).
        clips_depth: !z.iter().all(|z| z.abs() < DEPTH_MARGIN),
    })
}

/// `v` rounded to the nearest integer, ties to even. `f64::round` is a libm call on x86-64 CPUs without SSE4.1,
/// and this runs six times per triangle; SSE2's conversion rounds in the default mode, which Rust never changes.
#[inline(always)]
fn round_to_i64(v: f64) -> i64 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_cvtsd_si64, _mm_set_sd};
        // SAFETY: SSE2 is part of every x86-64 CPU.
        unsafe { _mm_cvtsd_si64(_mm_set_sd(v)) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        v.round_ties_even() as i64
    }
}

/// Calls `span(row, first, last, e)` for every row of `rows` (a half-open range) that the triangle covers,
/// with its covered columns `first..=last` and the edge values (bias included) at column `first`; stepping
/// them by `step_x` gives the values further right. The pixels are exactly those whose centre passes all
/// three edge tests.
fn spans(setup: &Setup, rows: (i64, i64), mut span: impl FnMut(i64, i64, i64, [i64; 3])) {
    let (row_start, row_end) = (setup.min.1.max(rows.0), setup.max.1.min(rows.1 - 1));
    let columns = setup.max.0 - setup.min.0;
    let step = setup.step_x;
    let down = row_start - setup.min.1;
    let mut next: [i64; 3] = std::array::from_fn(|k| setup.origin[k] + setup.step_y[k] * down);
    for row in row_start..row_end + 1 {
        let start = next;
        for (value, step) in next.iter_mut().zip(setup.step_y) {
            *value += step;
        }
        let (first, last) = if columns <= SCAN_MAX_WIDTH {
            // Scan: the covered columns are contiguous, so stop at the first miss after a hit.
            let mut e = start;
            let mut first = -1;
            let mut last = -1;
            for n in 0..columns + 1 {
                if (e[0] | e[1] | e[2]) >= 0 {
                    if first < 0 {
                        first = n;
                    }
                    last = n;
                } else if first >= 0 {
                    break;
                }
                for k in 0..3 {
                    e[k] += step[k];
                }
            }
            if first < 0 {
                continue;
            }
            (first, last)
        } else {
            // Solve step·n + start >= 0 for n exactly in integers, per edge.
            let (mut first, mut last) = (0i64, columns);
            for k in 0..3 {
                let need = -start[k];
                match step[k].signum() {
                    1 => {
                        first = first.max(
                            need.div_euclid(step[k]) + i64::from(need.rem_euclid(step[k]) != 0),
                        )
                    }
                    -1 => last = last.min((-need).div_euclid(-step[k])),
                    _ if need > 0 => last = -1,
                    _ => {}
                }
            }
            if first > last {
                continue;
            }
            (first, last)
        };
        let e = std::array::from_fn(|k| start[k] + step[k] * first);
        span(row, setup.min.0 + first, setup.min.0 + last, e);
    }
}

/// A thread's reusable depth buffer for a band of rows. Everything outside `dirty` is +∞ already, so a frame
/// clears only what the previous one drew.
#[derive(Default)]
struct DepthBuffer {
    values: Vec<f32>,
    width: usize,
    /// Rows and columns written since the last clear, inclusive, relative to the band.
    dirty: Option<((usize, usize), (usize, usize))>,
}

impl DepthBuffer {
    /// Makes the buffer `width` × `rows`, all +∞.
    fn reset(&mut self, width: usize, rows: usize) {
        if self.width != width || self.values.len() != width * rows {
            self.values.clear();
            self.values.resize(width * rows, f32::INFINITY);
            self.width = width;
        } else if let Some(((x0, y0), (x1, y1))) = self.dirty {
            for row in y0..=y1 {
                self.values[row * width + x0..=row * width + x1].fill(f32::INFINITY);
            }
        }
        self.dirty = None;
    }

    fn touch(&mut self, from: (usize, usize), to: (usize, usize)) {
        self.dirty = Some(match self.dirty {
            None => (from, to),
            Some((a, b)) => (
                (a.0.min(from.0), a.1.min(from.1)),
                (b.0.max(to.0), b.1.max(to.1)),
            ),
        });
    }
}

thread_local! {
    /// The thread's depth buffer, reused from frame to frame: a caller's for the first band, a pool thread's for
    /// the others.
    static DEPTH: RefCell<DepthBuffer> = RefCell::default();
}

/// Renders triangles into a transparent RGBA image on `threads` threads (rows split into contiguous bands; the
/// first band is drawn by the calling thread).
pub fn render_cpu(triangles: &Triangles, size: (u32, u32), threads: usize) -> RgbaImage {
    render_with(triangles, size, threads, true)
}

/// `render_cpu`, with the small-triangle path allowed or not (tests compare the two).
fn render_with(
    triangles: &Triangles,
    size: (u32, u32),
    threads: usize,
    small_path: bool,
) -> RgbaImage {
    let (width, height) = (size.0 as usize, size.1 as usize);
    let mut image = RgbaImage::transparent(size.0, size.1);
    if width == 0 || height == 0 {
        return image;
    }
    let rows_per_band = height.div_ceil(threads.max(1)).max(1);
    let bands: Vec<_> = image
        .pixels
        .chunks_mut(rows_per_band * width * 4)
        .enumerate()
        .collect();
    run_parts(bands, |(band, pixels)| {
        DEPTH.with_borrow_mut(|depth| {
            draw_band(
                triangles,
                size,
                pixels,
                band * rows_per_band,
                depth,
                small_path,
            )
        })
    });
    image
}

/// Draws every triangle touching the band of rows starting at `first_row` into `pixels` (that band's bytes).
/// Each band sets up the triangles it needs itself: cheaper than sharing a list of setups, and exactly the same.
fn draw_band(
    triangles: &Triangles,
    size: (u32, u32),
    pixels: &mut [u8],
    first_row: usize,
    depth: &mut DepthBuffer,
    small_path: bool,
) {
    let width = size.0 as usize;
    let num_rows = pixels.len() / (width * 4);
    depth.reset(width, num_rows);
    let rows = (first_row as i64, (first_row + num_rows) as i64);
    // The band in NDC y, widened by a pixel, to skip most triangles outside it before setting them up.
    let ndc_y = |row: i64| 1.0 - 2.0 * row as f32 / size.1 as f32;
    let (band_top, band_bottom) = (ndc_y(rows.0 - 1), ndc_y(rows.1 + 1));
    let (triangles_3, _) = triangles.positions.as_chunks::<3>();
    for (index, t) in triangles_3.iter().enumerate() {
        // Hidden faces arrive collapsed to a point: skip them before any arithmetic.
        if t[0] == t[1] && t[1] == t[2] {
            continue;
        }
        if t.iter().all(|v| v[1] > band_top) || t.iter().all(|v| v[1] < band_bottom) {
            continue;
        }
        let Some(setup) = setup(t, index, size) else {
            continue;
        };
        if setup.max.1 < rows.0 || setup.min.1 >= rows.1 {
            continue;
        }
        if setup.small && small_path {
            draw_small(triangles, &setup, pixels, rows, width, depth);
        } else {
            draw_triangle(triangles, &setup, pixels, rows, width, depth);
        }
    }
}

/// Marks the part of the triangle's box inside the band `rows` as written.
fn touch_box(setup: &Setup, rows: (i64, i64), depth: &mut DepthBuffer) {
    depth.touch(
        (
            setup.min.0 as usize,
            (setup.min.1.max(rows.0) - rows.0) as usize,
        ),
        (
            setup.max.0 as usize,
            (setup.max.1.min(rows.1 - 1) - rows.0) as usize,
        ),
    );
}

/// `draw_triangle` for a small triangle (`Setup::small`): the three edge values of 8 columns at a time are
/// stepped down the rows together in 32 bits, and the covered columns come out as a bit mask. The same integers
/// as the general path, so the same pixels.
fn draw_small(
    triangles: &Triangles,
    setup: &Setup,
    pixels: &mut [u8],
    rows: (i64, i64),
    width: usize,
    depth: &mut DepthBuffer,
) {
    touch_box(setup, rows, depth);
    let (colours, flat) = colours_of(triangles, setup);
    let (row_start, row_end) = (setup.min.1.max(rows.0), setup.max.1.min(rows.1 - 1));
    let down = row_start - setup.min.1;
    let columns = setup.max.0 - setup.min.0 + 1;
    let values = &mut depth.values;
    // In range by SMALL_EXTENT.
    let narrow = |v: i64| v as i32;
    let step_y = setup.step_y.map(narrow);
    for chunk in (0..columns).step_by(EdgeLanes::LANES) {
        let mut lanes = EdgeLanes::new(std::array::from_fn(|k| {
            (
                narrow(setup.origin[k] + setup.step_y[k] * down + setup.step_x[k] * chunk),
                narrow(setup.step_x[k]),
            )
        }));
        // Columns past the box's right end may pass the edge tests where the box was clipped to the image.
        let in_box = (1u32 << (columns - chunk).min(EdgeLanes::LANES as i64)) - 1;
        // Depth changes along the row, per lane: the same products the per-pixel path computes.
        let dz: [f64; EdgeLanes::LANES] =
            std::array::from_fn(|lane| setup.dz_dx * (chunk + lane as i64) as f64);
        for row in row_start..row_end + 1 {
            let mut covered = lanes.inside() & in_box;
            if covered != 0 {
                let line = (row - rows.0) as usize * width + (setup.min.0 + chunk) as usize;
                let z_row = setup.z0 + setup.dz_dy * (row - setup.min.1) as f64;
                if let Some(colour) = flat
                    && write_flat_lanes(
                        covered,
                        (z_row, &dz),
                        setup.clips_depth,
                        (values, pixels),
                        line,
                        colour,
                    )
                {
                    covered = 0;
                }
                while covered != 0 {
                    let lane = covered.trailing_zeros() as usize;
                    covered &= covered - 1;
                    let z = (z_row + dz[lane]) as f32;
                    let at = line + lane;
                    if z >= values[at] || (setup.clips_depth && !(-1.0..=1.0).contains(&z)) {
                        continue;
                    }
                    values[at] = z;
                    let colour = flat.unwrap_or_else(|| {
                        let e = std::array::from_fn(|k| {
                            setup.origin[k]
                                + setup.step_y[k] * (row - setup.min.1)
                                + setup.step_x[k] * (chunk + lane as i64)
                        });
                        shaded(setup, &colours, e)
                    });
                    pixels[at * 4..at * 4 + 4].copy_from_slice(&colour);
                }
            }
            lanes.step(step_y);
        }
    }
}

/// Depth-tests and writes the `covered` lanes (bits) of a row of `EdgeLanes::LANES` pixels starting at `at`,
/// all in one flat colour, without branches: z = z_row + dz[lane] rounded to f32, written where it is nearer
/// (and within -1..1 when `clips`), exactly as the per-pixel loop does. Returns false, writing nothing, where
/// the lanes would run past the buffers (the caller then draws pixel by pixel).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn write_flat_lanes(
    covered: u32,
    (z_row, dz): (f64, &[f64; EdgeLanes::LANES]),
    clips: bool,
    (depth, pixels): (&mut [f32], &mut [u8]),
    at: usize,
    colour: [u8; 4],
) -> bool {
    use std::arch::x86_64::*;
    let (Some(depth), Some(pixels)) = (
        depth.get_mut(at..at + EdgeLanes::LANES),
        pixels.get_mut(at * 4..(at + EdgeLanes::LANES) * 4),
    ) else {
        return false;
    };
    // SAFETY: SSE2 is part of every x86-64 CPU; the slices hold 8 floats and 32 bytes, read and written as two
    // unaligned halves each.
    unsafe {
        let bits = _mm_setr_epi32(1, 2, 4, 8);
        let colour = _mm_set1_epi32(i32::from_ne_bytes(colour));
        let z_row = _mm_set1_pd(z_row);
        for half in 0..2 {
            let lane_bits = _mm_set1_epi32((covered >> (4 * half)) as i32);
            let inside = _mm_castsi128_ps(_mm_cmpeq_epi32(_mm_and_si128(lane_bits, bits), bits));
            let offsets = dz.as_ptr().add(4 * half);
            let z = _mm_movelh_ps(
                _mm_cvtpd_ps(_mm_add_pd(z_row, _mm_loadu_pd(offsets))),
                _mm_cvtpd_ps(_mm_add_pd(z_row, _mm_loadu_pd(offsets.add(2)))),
            );
            let depth_at = depth.as_mut_ptr().add(4 * half);
            let old = _mm_loadu_ps(depth_at);
            let mut write = _mm_and_ps(inside, _mm_cmplt_ps(z, old));
            if clips {
                let within = _mm_and_ps(
                    _mm_cmpge_ps(z, _mm_set1_ps(-1.0)),
                    _mm_cmple_ps(z, _mm_set1_ps(1.0)),
                );
                write = _mm_and_ps(write, within);
            }
            _mm_storeu_ps(
                depth_at,
                _mm_or_ps(_mm_and_ps(write, z), _mm_andnot_ps(write, old)),
            );
            let pixels_at = pixels.as_mut_ptr().add(16 * half).cast::<__m128i>();
            let write = _mm_castps_si128(write);
            let old = _mm_loadu_si128(pixels_at);
            _mm_storeu_si128(
                pixels_at,
                _mm_or_si128(_mm_and_si128(write, colour), _mm_andnot_si128(write, old)),
            );
        }
    }
    true
}

#[cfg(not(target_arch = "x86_64"))]
fn write_flat_lanes(
    _covered: u32,
    _z: (f64, &[f64; EdgeLanes::LANES]),
    _clips: bool,
    _buffers: (&mut [f32], &mut [u8]),
    _at: usize,
    _colour: [u8; 4],
) -> bool {
    false
}

/// The three edge values of `LANES` adjacent columns, stepped a row at a time.
#[cfg(target_arch = "x86_64")]
struct EdgeLanes {
    /// Per edge, columns 0..4 and 4..8.
    values: [[std::arch::x86_64::__m128i; 2]; 3],
}

#[cfg(target_arch = "x86_64")]
impl EdgeLanes {
    const LANES: usize = 8;

    /// Edge values `(at column 0, step per column)`.
    #[inline(always)]
    fn new(edges: [(i32, i32); 3]) -> EdgeLanes {
        use std::arch::x86_64::{_mm_add_epi32, _mm_set1_epi32, _mm_setr_epi32};
        EdgeLanes {
            values: edges.map(|(e, d)| {
                let (e1, e2, e3) = (
                    e.wrapping_add(d),
                    e.wrapping_add(2 * d),
                    e.wrapping_add(3 * d),
                );
                let four = 4 * d;
                // SAFETY: SSE2 is part of every x86-64 CPU.
                unsafe {
                    let low = _mm_setr_epi32(e, e1, e2, e3);
                    [low, _mm_add_epi32(low, _mm_set1_epi32(four))]
                }
            }),
        }
    }

    /// Bit n set when column n passes all three edge tests (no value negative).
    #[inline(always)]
    fn inside(&self) -> u32 {
        use std::arch::x86_64::{_mm_castsi128_ps, _mm_movemask_ps, _mm_or_si128};
        let [a, b, c] = &self.values;
        // SAFETY: SSE2 is part of every x86-64 CPU.
        unsafe {
            let low = _mm_or_si128(_mm_or_si128(a[0], b[0]), c[0]);
            let high = _mm_or_si128(_mm_or_si128(a[1], b[1]), c[1]);
            let outside = _mm_movemask_ps(_mm_castsi128_ps(low))
                | (_mm_movemask_ps(_mm_castsi128_ps(high)) << 4);
            !(outside as u32) & 0xff
        }
    }

    /// Moves every column one row down.
    #[inline(always)]
    fn step(&mut self, down: [i32; 3]) {
        use std::arch::x86_64::{_mm_add_epi32, _mm_set1_epi32};
        for (values, down) in self.values.iter_mut().zip(down) {
            // SAFETY: SSE2 is part of every x86-64 CPU.
            unsafe {
                let down = _mm_set1_epi32(down);
                values[0] = _mm_add_epi32(values[0], down);
                values[1] = _mm_add_epi32(values[1], down);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
struct EdgeLanes {
    values: [[i32; 8]; 3],
}

#[cfg(not(target_arch = "x86_64"))]
impl EdgeLanes {
    const LANES: usize = 8;

    fn new(edges: [(i32, i32); 3]) -> EdgeLanes {
        EdgeLanes {
            values: edges
                .map(|(e, d)| std::array::from_fn(|n| e.wrapping_add(d.wrapping_mul(n as i32)))),
        }
    }

    fn inside(&self) -> u32 {
        let [a, b, c] = &self.values;
        (0..Self::LANES).fold(0, |mask, n| {
            mask | (u32::from((a[n] | b[n] | c[n]) >= 0) << n)
        })
    }

    fn step(&mut self, down: [i32; 3]) {
        for (values, down) in self.values.iter_mut().zip(down) {
            for value in values {
                *value = value.wrapping_add(down);
            }
        }
    }
}

/// Depth-tests and writes one triangle's pixels within the band `rows`.
fn draw_triangle(
    triangles: &Triangles,
    setup: &Setup,
    pixels: &mut [u8],
    rows: (i64, i64),
    width: usize,
    depth: &mut DepthBuffer,
) {
    touch_box(setup, rows, depth);
    let (colours, flat) = colours_of(triangles, setup);
    let values = &mut depth.values;
    spans(setup, rows, |row, first, last, e| {
        let line = (row - rows.0) as usize * width;
        let z_row = setup.z0 + setup.dz_dy * (row - setup.min.1) as f64;
        // Exclusive ranges: inclusive ones cost an extra test per step in this innermost loop.
        for column in first..last + 1 {
            let n = column - first;
            let z = (z_row + setup.dz_dx * (column - setup.min.0) as f64) as f32;
            let at = line + column as usize;
            // Depth outside -1..1 is clipped, as GL clips at the near and far planes.
            if z >= values[at] || (setup.clips_depth && !(-1.0..=1.0).contains(&z)) {
                continue;
            }
            values[at] = z;
            let colour = flat.unwrap_or_else(|| {
                shaded(
                    setup,
                    &colours,
                    std::array::from_fn(|k| e[k] + setup.step_x[k] * n),
                )
            });
            pixels[at * 4..at * 4 + 4].copy_from_slice(&colour);
        }
    });
}

/// The Gouraud colour at a pixel whose edge values (bias included) are `e`: the edge values over the area are
/// the vertices' barycentric weights.
fn shaded(setup: &Setup, colours: &[[f32; 4]; 3], e: [i64; 3]) -> [u8; 4] {
    let area = setup.area as f64;
    let w: [f64; 3] = std::array::from_fn(|k| e[k] as f64 / area);
    to_bytes(std::array::from_fn(|c| {
        (w[0] * f64::from(colours[0][c])
            + w[1] * f64::from(colours[1][c])
            + w[2] * f64::from(colours[2][c])) as f32
    }))
}

/// A colour in 0..1 to RGBA bytes, rounded to nearest as GL's unorm conversion does.
#[inline(always)]
fn to_bytes(colour: [f32; 4]) -> [u8; 4] {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of every x86-64 CPU. The same steps as below, four at once: max(NaN, 0) is 0 as
        // the cast of NaN is, and truncating 0.5..=255.5 fits a byte.
        unsafe {
            let c = _mm_loadu_ps(colour.as_ptr());
            let c = _mm_min_ps(_mm_max_ps(c, _mm_setzero_ps()), _mm_set1_ps(1.0));
            let c = _mm_cvttps_epi32(_mm_add_ps(
                _mm_mul_ps(c, _mm_set1_ps(255.0)),
                _mm_set1_ps(0.5),
            ));
            let c = _mm_packus_epi16(_mm_packs_epi32(c, c), c);
            (_mm_cvtsi128_si32(c) as u32).to_ne_bytes()
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    colour.map(|c| (c.clamp(0.0, 1.0) * 255.0 + 0.5) as u8)
}

/// The colours of a triangle's oriented vertices for Gouraud shading, or its one colour in bytes when flat
/// (GL's flat shading takes the last vertex's; prepared flat triangles carry it on all three).
fn colours_of(triangles: &Triangles, setup: &Setup) -> ([[f32; 4]; 3], Option<[u8; 4]>) {
    let c = &triangles.colours[setup.first..setup.first + 3];
    if triangles.flat {
        ([[0.0; 4]; 3], Some(to_bytes(c[2])))
    } else if setup.swapped {
        ([c[0], c[2], c[1]], None)
    } else {
        ([c[0], c[1], c[2]], None)
    }
}

/// How many times each pixel is covered by the triangles, ignoring depth (tests of the fill rule).
pub fn coverage_counts(triangles: &Triangles, size: (u32, u32)) -> Vec<u32> {
    let mut counts = vec![0u32; size.0 as usize * size.1 as usize];
    let (triangles_3, _) = triangles.positions.as_chunks::<3>();
    for (index, vertices) in triangles_3.iter().enumerate() {
        if let Some(setup) = setup(vertices, index, size) {
            spans(&setup, (0, i64::from(size.1)), |row, first, last, _| {
                for column in first..last + 1 {
                    counts[row as usize * size.0 as usize + column as usize] += 1;
                }
            });
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grid of jittered points over a w×h image, split into two triangles per cell (shared edges, shared
    /// corners), in NDC.
    fn jittered_grid(size: (u32, u32), cells: (usize, usize), seed: u64) -> Triangles {
        grid(size, cells, seed, 0.45, 0.0)
    }

    /// The grid with a given jitter (fraction of a cell) and interior vertices shifted by `offset` pixels.
    fn grid(
        size: (u32, u32),
        cells: (usize, usize),
        seed: u64,
        amount: f64,
        offset: f64,
    ) -> Triangles {
        let mut rng = fastrand::Rng::with_seed(seed);
        let (w, h) = (f64::from(size.0), f64::from(size.1));
        // Points on the image border stay on it so the grid covers the whole image.
        let point = |i: usize, j: usize, rng: &mut fastrand::Rng| -> [f32; 3] {
            let jitter = |n: usize, k: usize, rng: &mut fastrand::Rng| {
                if k == 0 || k == n {
                    0.0
                } else {
                    rng.f64() - 0.5
                }
            };
            let inner = |n: usize, k: usize| if k == 0 || k == n { 0.0 } else { offset };
            let px = (i as f64 / cells.0 as f64) * w
                + jitter(cells.0, i, rng) * amount * w / cells.0 as f64
                + inner(cells.0, i);
            let py = (j as f64 / cells.1 as f64) * h
                + jitter(cells.1, j, rng) * amount * h / cells.1 as f64
                + inner(cells.1, j);
            [
                (px / w * 2.0 - 1.0) as f32,
                (1.0 - py / h * 2.0) as f32,
                0.0,
            ]
        };
        let grid: Vec<Vec<[f32; 3]>> = (0..=cells.1)
            .map(|j| (0..=cells.0).map(|i| point(i, j, &mut rng)).collect())
            .collect();
        let mut triangles = Triangles {
            flat: true,
            ..Triangles::default()
        };
        for j in 0..cells.1 {
            for i in 0..cells.0 {
                let (a, b, c, d) = (
                    grid[j][i],
                    grid[j][i + 1],
                    grid[j + 1][i],
                    grid[j + 1][i + 1],
                );
                triangles.positions.extend([a, b, d, a, d, c]);
                triangles.colours.extend([[1.0; 4]; 6]);
            }
        }
        triangles
    }

    #[test]
    fn rounding_to_fixed_point_is_to_nearest_even() {
        for (v, expected) in [
            (2.4, 2),
            (2.5, 2),
            (3.5, 4),
            (2.6, 3),
            (-2.4, -2),
            (-2.5, -2),
            (-3.5, -4),
            (-2.6, -3),
            (0.0, 0),
            (-0.0, 0),
            (1e12 + 0.5, 1_000_000_000_000),
        ] {
            assert_eq!(round_to_i64(v), expected, "{v}");
        }
    }

    #[test]
    fn colours_convert_to_bytes_as_gl_unorm_does() {
        let scalar = |c: f32| (c.clamp(0.0, 1.0) * 255.0 + 0.5) as u8;
        let values = [
            0.0,
            1.0,
            0.5,
            -0.25,
            7.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.501_960_8,
            0.998,
            1.0 / 510.0,
            3.0 / 510.0,
        ];
        for window in values.windows(4) {
            let colour = [window[0], window[1], window[2], window[3]];
            assert_eq!(to_bytes(colour), colour.map(scalar), "{colour:?}");
        }
        for step in 0..=2550 {
            let c = step as f32 / 2550.0;
            assert_eq!(to_bytes([c; 4]), [scalar(c); 4], "{c}");
        }
    }

    #[test]
    fn jittered_triangle_grids_cover_every_pixel_exactly_once() {
        for (seed, size, cells) in [
            (1, (64, 48), (13, 9)),
            (2, (101, 77), (40, 31)),
            (3, (32, 32), (32, 32)),
            // Cells wider than SCAN_MAX_WIDTH: rows solved with divisions rather than scanned.
            (4, (300, 160), (4, 3)),
            (5, (97, 300), (1, 5)),
        ] {
            let counts = coverage_counts(&jittered_grid(size, cells, seed), size);
            let wrong: Vec<usize> = (0..counts.len()).filter(|i| counts[*i] != 1).collect();
            assert!(
                wrong.is_empty(),
                "seed {seed}: {} pixels covered 0 or 2+ times, e.g. {:?}",
                wrong.len(),
                &wrong[..wrong.len().min(5)]
            );
        }
    }

    #[test]
    fn edges_through_pixel_centres_follow_the_top_left_rule() {
        // Vertices exactly on pixel centres: every grid line and diagonal passes through centres, so a pixel
        // on a shared edge is counted twice or never unless the fill rule gives it to exactly one triangle.
        // Small cells are scanned, large ones solved.
        for (size, cells) in [((64, 48), (16, 12)), ((256, 192), (4, 3))] {
            let counts = coverage_counts(&grid(size, cells, 0, 0.0, 0.5), size);
            let wrong = counts.iter().filter(|c| **c != 1).count();
            assert_eq!(wrong, 0, "{size:?}: {wrong} pixels covered 0 or 2+ times");
        }
    }

    #[test]
    fn output_does_not_depend_on_the_number_of_threads() {
        let mut triangles = jittered_grid((90, 70), (17, 11), 5);
        for (k, colour) in triangles.colours.iter_mut().enumerate() {
            *colour = [(k % 7) as f32 / 7.0, (k % 5) as f32 / 5.0, 0.5, 1.0];
        }
        for (k, position) in triangles.positions.iter_mut().enumerate() {
            position[2] = ((k * 37) % 100) as f32 / 100.0 - 0.5;
        }
        let one = render_cpu(&triangles, (90, 70), 1);
        for threads in [2, 3, 8, 70, 200] {
            assert_eq!(
                render_cpu(&triangles, (90, 70), threads),
                one,
                "{threads} threads"
            );
        }
    }

    #[test]
    fn small_triangles_draw_the_same_pixels_as_the_general_path() {
        // Overlapping grids of small triangles at random depths (some beyond ±1, so clipped), flat and smooth,
        // on images whose right edge clips boxes mid-lane; wider cells take the general path in both.
        for (seed, size, cells) in [
            (7, (61, 45), (9, 7)),
            (8, (100, 37), (30, 9)),
            (9, (203, 64), (13, 4)),
        ] {
            let mut triangles = jittered_grid(size, cells, seed);
            let shifted = jittered_grid(size, (cells.0 + 3, cells.1 + 2), seed + 100);
            for t in shifted.positions.chunks_exact(3) {
                // Shift right by a third of a cell so triangles hang over the right edge.
                triangles
                    .positions
                    .extend(t.iter().map(|p| [p[0] + 0.7 / cells.0 as f32, p[1], p[2]]));
            }
            triangles.colours = Vec::new();
            let mut rng = fastrand::Rng::with_seed(seed);
            for position in triangles.positions.iter_mut() {
                position[2] = rng.f32() * 3.0 - 1.5;
                triangles
                    .colours
                    .push([rng.f32(), rng.f32(), rng.f32(), 1.0]);
            }
            // The first grid again, in other colours: equal depths, so the first drawn must keep each pixel.
            let again = triangles.positions[..cells.0 * cells.1 * 6].to_vec();
            triangles.positions.extend(again);
            triangles
                .colours
                .resize(triangles.positions.len(), [0.0, 1.0, 0.0, 1.0]);
            for flat in [true, false] {
                triangles.flat = flat;
                for threads in [1, 3] {
                    assert_eq!(
                        render_with(&triangles, size, threads, true),
                        render_with(&triangles, size, threads, false),
                        "seed {seed}, flat {flat}, {threads} threads"
                    );
                }
            }
        }
    }

    #[test]
    fn huge_and_off_screen_triangles_neither_crash_nor_smear() {
        let triangles = Triangles {
            positions: vec![
                [-1e9, -1e9, 0.0],
                [1e9, -1e9, 0.0],
                [0.0, 1e9, 0.0],
                [5.0, 5.0, 0.0],
                [6.0, 5.0, 0.0],
                [5.0, 6.0, 0.0],
                [f32::NAN, 0.0, 0.0],
                [0.5, 0.5, 0.0],
                [0.0, 0.5, 0.0],
            ],
            colours: vec![[1.0; 4]; 9],
            flat: true,
        };
        let image = render_cpu(&triangles, (40, 30), 2);
        assert!(image.pixels.iter().all(|p| *p == 0), "nothing is drawn");
    }

    #[test]
    fn the_nearer_triangle_wins_whatever_the_order() {
        let square = |z: f32| {
            vec![
                [-1.0, -1.0, z],
                [1.0, -1.0, z],
                [1.0, 1.0, z],
                [-1.0, -1.0, z],
                [1.0, 1.0, z],
                [-1.0, 1.0, z],
            ]
        };
        let mut positions = square(0.5);
        positions.extend(square(-0.5));
        let mut colours = vec![[1.0, 0.0, 0.0, 1.0]; 6];
        colours.extend(vec![[0.0, 1.0, 0.0, 1.0]; 6]);
        let image = render_cpu(
            &Triangles {
                positions,
                colours,
                flat: true,
            },
            (8, 8),
            2,
        );
        assert_eq!(image.pixel(3, 3), [0, 255, 0, 255]);
    }
}
