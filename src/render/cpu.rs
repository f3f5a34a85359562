//! The CPU backend: rasterizes prepared triangles exactly as GL does, with no system packages.
//!
//! Vertices snap to 1/256 pixel, coverage comes from exact 64-bit integer edge functions with the top-left fill
//! rule, depth is interpolated in screen space and tested "less" in submission order, as GL does. Rows are split
//! between threads; every pixel is computed from its triangle's own constants, so the image does not depend on
//! the number of threads.

use super::RgbaImage;
use super::scene::Triangles;

/// Sub-pixel precision: 8 bits, as llvmpipe uses.
const SUBPIXEL_BITS: u32 = 8;
const SUBPIXEL: f64 = (1 << SUBPIXEL_BITS) as f64;
/// Triangles reaching further than this many pixels outside the image are dropped rather than risk overflowing
/// the fixed-point arithmetic (meshes seen through OSX's cameras stay far inside it).
const MAX_OFFSCREEN_PIXELS: f64 = 65_536.0;

/// A triangle in fixed-point window coordinates (x right, y down), oriented with positive area.
#[derive(Clone, Copy, Debug)]
struct Setup {
    x: [i64; 3],
    y: [i64; 3],
    z: [f32; 3],
    area: i64,
    /// Per edge (b→c, c→a, a→b): 0 for top-left edges, -1 otherwise.
    bias: [i64; 3],
    /// Pixel bounding box, inclusive, clipped to the image.
    min: (i64, i64),
    max: (i64, i64),
    /// Index of the triangle's first vertex in the input.
    first: usize,
    /// Whether the second and third vertices were swapped to orient it.
    swapped: bool,
}

fn setup(triangles: &Triangles, index: usize, size: (u32, u32)) -> Option<Setup> {
    let first = index * 3;
    let (width, height) = (f64::from(size.0), f64::from(size.1));
    let mut x = [0i64; 3];
    let mut y = [0i64; 3];
    let mut z = [0f32; 3];
    for k in 0..3 {
        let [nx, ny, nz] = triangles.positions[first + k];
        // NDC → window pixels, y down: pixel (i, j) covers [i, i+1) × [j, j+1), sampled at its centre.
        let wx = (f64::from(nx) + 1.0) * 0.5 * width;
        let wy = (1.0 - f64::from(ny)) * 0.5 * height;
        if !(wx.abs() < width + MAX_OFFSCREEN_PIXELS && wy.abs() < height + MAX_OFFSCREEN_PIXELS) {
            return None;
        }
        x[k] = (wx * SUBPIXEL).round() as i64;
        y[k] = (wy * SUBPIXEL).round() as i64;
        z[k] = nz;
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
    // In y-down coordinates with positive area, an edge a→b is a top edge when horizontal going right, and a
    // left edge when going up.
    let top_left = |a: usize, b: usize| {
        let (dx, dy) = (x[b] - x[a], y[b] - y[a]);
        (dy == 0 && dx > 0) || dy < 0
    };
    let bias = [(1, 2), (2, 0), (0, 1)].map(|(a, b)| if top_left(a, b) { 0 } else { -1 });
    let half = 1i64 << (SUBPIXEL_BITS - 1);
    let one = 1i64 << SUBPIXEL_BITS;
    // Pixels whose centre (i + ½) can lie inside: from ceil(min - ½) to floor(max - ½).
    let lo = |v: &[i64; 3]| (v.iter().min().copied().unwrap_or(0) - half + one - 1).div_euclid(one);
    let hi = |v: &[i64; 3]| (v.iter().max().copied().unwrap_or(0) - half).div_euclid(one);
    let min = (lo(&x).max(0), lo(&y).max(0));
    let max = (
        hi(&x).min(i64::from(size.0) - 1),
        hi(&y).min(i64::from(size.1) - 1),
    );
    if min.0 > max.0 || min.1 > max.1 {
        return None;
    }
    Some(Setup {
        x,
        y,
        z,
        area,
        bias,
        min,
        max,
        first,
        swapped,
    })
}

/// Calls `pixel(x, y, weights)` for every pixel centre of rows `rows` inside the triangle, with the
/// barycentric weights of its three (oriented) vertices as edge-function values (they sum to `area`).
fn rasterize(setup: &Setup, rows: (i64, i64), mut pixel: impl FnMut(i64, i64, [i64; 3])) {
    let (x, y) = (&setup.x, &setup.y);
    let half = 1i64 << (SUBPIXEL_BITS - 1);
    let one = 1i64 << SUBPIXEL_BITS;
    let edge = |a: usize, b: usize, px: i64, py: i64| {
        (x[b] - x[a]) * (py - y[a]) - (y[b] - y[a]) * (px - x[a])
    };
    let edges = [(1, 2), (2, 0), (0, 1)];
    let (row_start, row_end) = (setup.min.1.max(rows.0), setup.max.1.min(rows.1 - 1));
    // Moving one pixel right changes edge a→b by -(y_b - y_a)·one.
    let step = edges.map(|(a, b)| -(y[b] - y[a]) * one);
    for row in row_start..=row_end {
        let py = row * one + half;
        let px0 = setup.min.0 * one + half;
        let start = edges.map(|(a, b)| edge(a, b, px0, py));
        // The columns where all three edges pass (e + bias >= 0), solved exactly in integers per edge, so the
        // covered span is the same set of pixels a per-pixel test would give.
        let (mut first, mut last) = (0i64, setup.max.0 - setup.min.0);
        for k in 0..3 {
            let need = -setup.bias[k] - start[k]; // step·n >= need
            match step[k].signum() {
                1 => {
                    first = first
                        .max(need.div_euclid(step[k]) + i64::from(need.rem_euclid(step[k]) != 0))
                }
                -1 => last = last.min((-need).div_euclid(-step[k])),
                _ if need > 0 => last = -1,
                _ => {}
            }
        }
        for n in first..=last {
            let e = [0, 1, 2].map(|k| start[k] + step[k] * n);
            pixel(setup.min.0 + n, row, e);
        }
    }
}

/// Renders triangles into a transparent RGBA image on `threads` threads (rows split into contiguous bands).
pub fn render_cpu(triangles: &Triangles, size: (u32, u32), threads: usize) -> RgbaImage {
    let (width, height) = (size.0 as usize, size.1 as usize);
    let mut image = RgbaImage::transparent(size.0, size.1);
    if width == 0 || height == 0 {
        return image;
    }
    let setups: Vec<Setup> = triangles
        .positions
        .chunks_exact(3)
        .enumerate()
        // Hidden faces arrive collapsed to a point: skip them before any arithmetic.
        .filter(|(_, t)| !(t[0] == t[1] && t[1] == t[2]))
        .filter_map(|(index, _)| setup(triangles, index, size))
        .collect();
    let rows_per_band = height.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        for (band, pixels) in image
            .pixels
            .chunks_mut(rows_per_band * width * 4)
            .enumerate()
        {
            let setups = &setups;
            scope.spawn(move || {
                let first_row = (band * rows_per_band) as i64;
                let rows = (first_row, first_row + (pixels.len() / (width * 4)) as i64);
                let mut depth = vec![f32::INFINITY; pixels.len() / 4];
                for setup in setups {
                    if setup.max.1 < rows.0 || setup.min.1 >= rows.1 {
                        continue;
                    }
                    let colours = colours_of(triangles, setup);
                    let area = setup.area as f64;
                    rasterize(setup, rows, |column, row, e| {
                        let w = e.map(|v| v as f64 / area);
                        let z = (w[0] * f64::from(setup.z[0])
                            + w[1] * f64::from(setup.z[1])
                            + w[2] * f64::from(setup.z[2])) as f32;
                        let at = (row - rows.0) as usize * width + column as usize;
                        if z >= depth[at] || !(-1.0..=1.0).contains(&z) {
                            return;
                        }
                        depth[at] = z;
                        let colour = if triangles.flat {
                            colours[2]
                        } else {
                            std::array::from_fn(|c| {
                                (w[0] * f64::from(colours[0][c])
                                    + w[1] * f64::from(colours[1][c])
                                    + w[2] * f64::from(colours[2][c]))
                                    as f32
                            })
                        };
                        for c in 0..4 {
                            pixels[at * 4 + c] = (colour[c].clamp(0.0, 1.0) * 255.0 + 0.5) as u8;
                        }
                    });
                }
            });
        }
    });
    image
}

/// The colours of a triangle's oriented vertices (GL's flat shading takes the last vertex's).
fn colours_of(triangles: &Triangles, setup: &Setup) -> [[f32; 4]; 3] {
    let c = &triangles.colours[setup.first..setup.first + 3];
    if setup.swapped {
        [c[0], c[2], c[1]]
    } else {
        [c[0], c[1], c[2]]
    }
}

/// How many times each pixel is covered by the triangles, ignoring depth (tests of the fill rule).
pub fn coverage_counts(triangles: &Triangles, size: (u32, u32)) -> Vec<u32> {
    let mut counts = vec![0u32; size.0 as usize * size.1 as usize];
    for index in 0..triangles.positions.len() / 3 {
        if let Some(setup) = setup(triangles, index, size) {
            rasterize(&setup, (0, i64::from(size.1)), |x, y, _| {
                counts[y as usize * size.0 as usize + x as usize] += 1
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
    fn jittered_triangle_grids_cover_every_pixel_exactly_once() {
        for (seed, size, cells) in [
            (1, (64, 48), (13, 9)),
            (2, (101, 77), (40, 31)),
            (3, (32, 32), (32, 32)),
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
        let size = (64, 48);
        let counts = coverage_counts(&grid(size, (16, 12), 0, 0.0, 0.5), size);
        let wrong = counts.iter().filter(|c| **c != 1).count();
        assert_eq!(wrong, 0, "{wrong} pixels covered 0 or 2+ times");
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
