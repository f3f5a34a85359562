//! The SMPL-X forward pass (linear blend skinning), in f32, as named steps:
//! full pose → rotations → shape blend → joint regression → pose correctives → kinematic chain → skinning.
//!
//! Follows smplx's `SMPLX.forward` and `lbs` (DOMAIN.md B.3); joints are regressed through precomputed joint
//! directions (exact by linearity), and skinning uses sparse weights.

use half::f16;
use half::slice::HalfFloatSliceExt;
use nalgebra::{Matrix3, Vector3};

use super::joints::{LEFT_HAND_FIRST, NUM_HAND_JOINTS, NUM_JOINTS, NUM_POSE_FEATURES};
use super::{BlendDirs, BodyModel, BodyParams, PoseDirs};
use crate::parallel::{available_cores, run_parts};

/// Choices that change how parameters become a mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardOptions {
    /// Add the model's mean hand pose to the hand poses. OSX builds its SMPL-X layer with smplx's defaults, where
    /// `flat_hand_mean` is false, so its hand poses are relative to the mean: on by default.
    pub add_hand_mean: bool,
}

impl Default for ForwardOptions {
    fn default() -> Self {
        ForwardOptions {
            add_hand_mean: true,
        }
    }
}

/// A posed body: vertices and joints in the output frame (camera coordinates when `transl` is OSX's
/// `cam_trans`).
#[derive(Clone, Debug, PartialEq)]
pub struct PosedBody {
    pub vertices: Vec<[f32; 3]>,
    pub joints: [[f32; 3]; NUM_JOINTS],
}

/// A rigid transform as a row-major 3×4 matrix `[R | t]`.
type Affine = [f32; 12];

impl BodyModel {
    /// Poses the model with `params`.
    pub fn pose(&self, params: &BodyParams, options: &ForwardOptions) -> PosedBody {
        let mut bodies = self.pose_batch(std::slice::from_ref(params), options);
        bodies.pop().expect("one body in, one body out")
    }

    /// Poses several bodies (persons of a frame, or consecutive frames) at once. Cheaper per body than posing
    /// them one by one: the pose correctives read a 31 MB matrix for SMPL-X (61 MB in the file, held at half
    /// precision), which is memory-bound, and a batch streams it once for all its bodies. Each body comes out bit
    /// for bit as [`BodyModel::pose`] gives it.
    pub fn pose_batch(&self, params: &[BodyParams], options: &ForwardOptions) -> Vec<PosedBody> {
        let rotations: Vec<Vec<Matrix3<f32>>> = params
            .iter()
            .map(|p| {
                self.full_pose(p, options)
                    .iter()
                    .map(|r| rodrigues(*r))
                    .collect()
            })
            .collect();
        let mut vertices: Vec<Vec<f32>> = params
            .iter()
            .map(|p| self.blend_shapes(&p.betas, &p.expression))
            .collect();
        if let Some(posedirs) = &self.posedirs {
            let features: Vec<[f32; NUM_POSE_FEATURES]> =
                rotations.iter().map(|r| pose_features(r)).collect();
            add_pose_correctives(posedirs, &features, &mut vertices);
        }
        params
            .iter()
            .zip(rotations)
            .zip(vertices)
            .map(|((p, rotations), vertices)| {
                let rest_joints = self.regress_joints(&p.betas, &p.expression);
                let (skinning, posed_joints) =
                    kinematic_chain(&rotations, &rest_joints, &self.parents);
                let vertices = self.skin(&vertices, &skinning, p.transl);
                let joints = std::array::from_fn(|j| {
                    let joint = posed_joints[j];
                    [
                        joint[0] + p.transl[0],
                        joint[1] + p.transl[1],
                        joint[2] + p.transl[2],
                    ]
                });
                PosedBody { vertices, joints }
            })
            .collect()
    }

    /// Step 1: the 55 axis-angles, with the mean hand added when asked for and present.
    fn full_pose(&self, params: &BodyParams, options: &ForwardOptions) -> [[f32; 3]; NUM_JOINTS] {
        let mut pose = params.pose;
        if let (true, Some(mean)) = (options.add_hand_mean, &self.hands_mean) {
            let hands = &mut pose[LEFT_HAND_FIRST..LEFT_HAND_FIRST + 2 * NUM_HAND_JOINTS];
            for (joint, mean) in hands.iter_mut().zip(mean.chunks_exact(3)) {
                for axis in 0..3 {
                    joint[axis] += mean[axis];
                }
            }
        }
        pose
    }

    /// Step 3: `v_template + Σ betas·shape_dirs + Σ expression·expression_dirs`, flat (x, y, z per vertex).
    fn blend_shapes(&self, betas: &[f32], expression: &[f32]) -> Vec<f32> {
        let mut vertices: Vec<f32> = self.v_template.iter().flatten().copied().collect();
        add_blend(&mut vertices, &self.shape_dirs, betas);
        add_blend(&mut vertices, &self.expression_dirs, expression);
        vertices
    }

    /// Step 4: rest joints of the shaped body. The regressor was folded into the joint directions at load time
    /// (`J_regressor · (v_template + D·c) = J_template + (J_regressor·D)·c`), so this costs O(55·3·k).
    fn regress_joints(&self, betas: &[f32], expression: &[f32]) -> Vec<Vector3<f32>> {
        let mut joints: Vec<f32> = self.j_template.iter().flatten().copied().collect();
        add_blend(&mut joints, &self.j_shape_dirs, betas);
        add_blend(&mut joints, &self.j_expression_dirs, expression);
        joints
            .chunks_exact(3)
            .map(|j| Vector3::new(j[0], j[1], j[2]))
            .collect()
    }

    /// Step 8: `v_out = Σ_j w_vj · A_j · v + transl`, with each vertex's few weights blended into one 3×4.
    fn skin(&self, vertices: &[f32], skinning: &[Affine], transl: [f32; 3]) -> Vec<[f32; 3]> {
        vertices
            .chunks_exact(3)
            .enumerate()
            .map(|(vertex, v)| {
                let mut m = [0.0f32; 12];
                for (joint, weight) in self.lbs_weights.of_vertex(vertex) {
                    for (acc, a) in m.iter_mut().zip(&skinning[joint]) {
                        *acc += weight * a;
                    }
                }
                [
                    m[0] * v[0] + m[1] * v[1] + m[2] * v[2] + m[3] + transl[0],
                    m[4] * v[0] + m[5] * v[1] + m[6] * v[2] + m[7] + transl[1],
                    m[8] * v[0] + m[9] * v[1] + m[10] * v[2] + m[11] + transl[2],
                ]
            })
            .collect()
    }
}

/// `target += Σ_c coefficients[c] · dirs[c]`, over the components the model has (extra coefficients are
/// ignored, as smplx does when a file has fewer directions than asked for).
fn add_blend(target: &mut [f32], dirs: &BlendDirs, coefficients: &[f32]) {
    for (c, &coefficient) in coefficients.iter().enumerate().take(dirs.num_components()) {
        if coefficient == 0.0 {
            continue;
        }
        for (t, d) in target.iter_mut().zip(dirs.component(c)) {
            *t += coefficient * d;
        }
    }
}

/// Step 2: axis-angle to rotation matrix, `R = I + A·[r]× + B·[r]×²` with `A = sin θ/θ`,
/// `B = (1 − cos θ)/θ²`, using their Taylor series near θ = 0 so tiny rotations stay exact.
pub fn rodrigues(r: [f32; 3]) -> Matrix3<f32> {
    let [x, y, z] = r.map(f64::from);
    let theta_sq = x * x + y * y + z * z;
    let (a, b) = if theta_sq < 1e-8 {
        (1.0 - theta_sq / 6.0, 0.5 - theta_sq / 24.0)
    } else {
        let theta = theta_sq.sqrt();
        (theta.sin() / theta, (1.0 - theta.cos()) / theta_sq)
    };
    let k = nalgebra::Matrix3::new(0.0, -z, y, z, 0.0, -x, -y, x, 0.0);
    let rotation = Matrix3::<f64>::identity() + k * a + k * k * b;
    rotation.cast::<f32>()
}

/// Step 5: the pose feature vector, `R_j − I` flattened row-major for joints 1..54 (the root is excluded).
fn pose_features(rotations: &[Matrix3<f32>]) -> [f32; NUM_POSE_FEATURES] {
    let mut features = [0.0f32; NUM_POSE_FEATURES];
    for (joint, rotation) in rotations.iter().enumerate().skip(1) {
        let base = (joint - 1) * 9;
        for row in 0..3 {
            for col in 0..3 {
                let identity = if row == col { 1.0 } else { 0.0 };
                features[base + 3 * row + col] = rotation[(row, col)] - identity;
            }
        }
    }
    features
}

/// Step 6: `v += posedirs · features` for every body of a batch. posedirs is vertex-major (one contiguous row of
/// 486 values per vertex coordinate), so this is one streaming pass over the matrix, each block of rows applied to
/// all bodies while it is in cache. A batch of one or two bodies is memory-bound: its rows are split over the cores
/// (contiguous blocks, each row still computed the same way), which cuts a lone frame's latency.
///
/// The matrix is held times a power of two ([`PoseDirs::scale`]); the features are divided by it instead, which
/// is exact, so every product is the one of the unscaled values, bit for bit.
fn add_pose_correctives(
    posedirs: &PoseDirs,
    features: &[[f32; NUM_POSE_FEATURES]],
    vertices: &mut [Vec<f32>],
) {
    let features = scaled_features(features, posedirs.scale());
    let features = features.as_slice();
    let rows = posedirs.rows();
    let posedirs = posedirs.scaled();
    let threads = if vertices.len() <= 2 && rows >= PARALLEL_MIN_ROWS {
        available_cores().min(4)
    } else {
        1
    };
    let rows_per_thread = rows.div_ceil(threads).max(1);
    let mut blocks: Vec<Vec<&mut [f32]>> = (0..threads).map(|_| Vec::new()).collect();
    for body in vertices.iter_mut() {
        let rows_of_body = rows.min(body.len());
        for (block, chunk) in blocks
            .iter_mut()
            .zip(body[..rows_of_body].chunks_mut(rows_per_thread))
        {
            block.push(chunk);
        }
    }
    let block_dirs = posedirs.chunks(rows_per_thread * NUM_POSE_FEATURES);
    let parts: Vec<_> = blocks.into_iter().zip(block_dirs).collect();
    run_parts(parts, |(mut block, dirs)| {
        correctives_block(dirs, features, &mut block)
    });
}

/// The features divided by the matrix's scale (a power of two: exact).
fn scaled_features(
    features: &[[f32; NUM_POSE_FEATURES]],
    scale: f32,
) -> Vec<[f32; NUM_POSE_FEATURES]> {
    let inverse = 1.0 / scale;
    features.iter().map(|f| f.map(|x| x * inverse)).collect()
}

/// Matrices with fewer rows than this (small test models) are not worth a thread.
const PARALLEL_MIN_ROWS: usize = 4096;

/// Step 6 over one block of rows: `bodies[b][r] += posedirs row r · features[b]`.
///
/// Every path sums in one order, so they all give the same bits: per body and row, a chain of fused
/// multiply-adds over the features in order starting from zero, `acc = p[k]·f[k] + acc`, then `body[r] += acc`.
/// A body's result therefore does not depend on the batch it is posed in, the rows' split over threads, or the
/// CPU's instruction set (fused multiply-adds are exactly rounded everywhere, and widening f16 to f32 is exact).
fn correctives_block(
    posedirs: &[f16],
    features: &[[f32; NUM_POSE_FEATURES]],
    bodies: &mut [&mut [f32]],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
    {
        // SAFETY: the CPU supports AVX2, FMA and F16C, checked just above.
        unsafe { avx2::pose_correctives(posedirs, features, bodies) };
        return;
    }
    pose_correctives(posedirs, features, bodies);
}

/// The AVX2, FMA and F16C kernels of [`correctives_block`].
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::NUM_POSE_FEATURES;

    /// The sums of [`super::correctives_block`] with AVX2 and FMA. Eight lanes run eight chains side by side: for a
    /// batch, one body per lane ([`bodies_in_lanes`]); for one or two bodies, which would leave most of those lanes
    /// idle, one row per lane ([`rows_in_lanes`]).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn pose_correctives(
        posedirs: &[f16],
        features: &[[f32; NUM_POSE_FEATURES]],
        bodies: &mut [&mut [f32]],
    ) {
        let (rows, _) = posedirs.as_chunks::<NUM_POSE_FEATURES>();
        match features {
            [_] => rows_in_lanes::<1>(rows, features, bodies),
            [_, _] => rows_in_lanes::<2>(rows, features, bodies),
            _ => bodies_in_lanes(rows, 0, features, bodies),
        }
    }

    /// Bodies per vector in [`bodies_in_lanes`], rows per tile in [`rows_in_lanes`].
    const LANES: usize = 8;

    /// One feature of eight bodies, aligned for vector loads.
    #[derive(Clone, Copy)]
    #[repr(C, align(32))]
    struct Lanes([f32; LANES]);

    /// The features of eight bodies, feature-major (`group[k].0[lane]`), zero for missing bodies; or of one body in
    /// every lane.
    type Group = [Lanes; NUM_POSE_FEATURES];

    /// Rows per pass over the bodies: these rows are widened to f32 (23 KB, in L1) and all body groups go over
    /// them, so the matrix streams from memory once whatever the batch size. A multiple of [`PAIR_ROWS`] and
    /// [`SINGLE_ROWS`].
    const BLOCK_ROWS: usize = 12;
    /// Rows × two groups (16 bodies) per micro-kernel call: 12 accumulators, two feature vectors and a broadcast
    /// fill the 16 vector registers, and each k costs 8 loads for 12 fused multiply-adds.
    const PAIR_ROWS: usize = 6;
    /// Rows × one group (up to 8 bodies), for the group left over: 12 independent chains hide the FMA latency.
    const SINGLE_ROWS: usize = 12;
    const _: () =
        assert!(BLOCK_ROWS.is_multiple_of(PAIR_ROWS) && BLOCK_ROWS.is_multiple_of(SINGLE_ROWS));

    /// The batch kernel, rows from `first_row` on: the features are transposed into groups of eight bodies; each
    /// block of rows is widened to f32, and a register-blocked micro-kernel runs the chains of several rows × 8 or
    /// 16 bodies at once, each step broadcasting one matrix value per row against a vector of eight bodies'
    /// features. Lanes of missing bodies compute zeros that are never stored.
    #[target_feature(enable = "avx2,fma,f16c")]
    fn bodies_in_lanes(
        rows: &[[f16; NUM_POSE_FEATURES]],
        first_row: usize,
        features: &[[f32; NUM_POSE_FEATURES]],
        bodies: &mut [&mut [f32]],
    ) {
        let mut groups: Vec<Group> =
            vec![[Lanes([0.0; LANES]); NUM_POSE_FEATURES]; features.len().div_ceil(LANES)];
        for (body, features) in features.iter().enumerate() {
            let group = &mut groups[body / LANES];
            for (lanes, &value) in group.iter_mut().zip(features) {
                lanes.0[body % LANES] = value;
            }
        }
        let (pairs, single) = groups.as_chunks::<2>();
        let single: &[[Group; 1]] = single.as_chunks::<1>().0;
        let single_body = pairs.len() * 2 * LANES;
        let mut block = [[0.0f32; NUM_POSE_FEATURES]; BLOCK_ROWS];
        let (blocks, rest) = rows.as_chunks::<BLOCK_ROWS>();
        for (index, halves) in blocks.iter().enumerate() {
            let row = first_row + index * BLOCK_ROWS;
            widen(halves, &mut block);
            let (pair_rows, _) = block.as_chunks::<PAIR_ROWS>();
            bodies_in_lanes_pass(pair_rows, row, pairs, 0, bodies);
            let (single_rows, _) = block.as_chunks::<SINGLE_ROWS>();
            bodies_in_lanes_pass(single_rows, row, single, single_body, bodies);
        }
        let row = first_row + blocks.len() * BLOCK_ROWS;
        let rest_block = &mut block[..rest.len()];
        widen(rest, rest_block);
        let (rest, _) = rest_block.as_chunks::<1>();
        bodies_in_lanes_pass(rest, row, pairs, 0, bodies);
        bodies_in_lanes_pass(rest, row, single, single_body, bodies);
    }

    /// `out = rows` widened to f32 (exact). The rows are contiguous in memory and read in order, which the
    /// hardware prefetchers follow.
    #[target_feature(enable = "avx2,fma,f16c")]
    fn widen(rows: &[[f16; NUM_POSE_FEATURES]], out: &mut [[f32; NUM_POSE_FEATURES]]) {
        let (halves, halves_rest) = rows.as_flattened().as_chunks::<LANES>();
        let (floats, floats_rest) = out.as_flattened_mut().as_chunks_mut::<LANES>();
        for (floats, halves) in floats.iter_mut().zip(halves) {
            // SAFETY: eight halves (16 bytes) are read and eight floats written.
            unsafe {
                let halves = _mm_loadu_si128(halves.as_ptr().cast());
                _mm256_storeu_ps(floats.as_mut_ptr(), _mm256_cvtph_ps(halves));
            }
        }
        for (float, half) in floats_rest.iter_mut().zip(halves_rest) {
            *float = half.to_f32();
        }
    }

    /// Consecutive sets of `R` rows from `first_row` applied to the bodies of `groups` (from body `first_body`),
    /// `G` groups per micro-kernel call; each set of rows stays in L1 while all the groups pass over it.
    #[target_feature(enable = "avx2,fma,f16c")]
    fn bodies_in_lanes_pass<const R: usize, const G: usize>(
        rows: &[[[f32; NUM_POSE_FEATURES]; R]],
        first_row: usize,
        groups: &[[Group; G]],
        first_body: usize,
        bodies: &mut [&mut [f32]],
    ) {
        for (set, rows) in rows.iter().enumerate() {
            let row = first_row + set * R;
            for (index, groups) in groups.iter().enumerate() {
                let sums = bodies_in_lanes_kernel(rows, groups);
                let group_body = first_body + index * G * LANES;
                for (offset, row_sums) in sums.iter().enumerate() {
                    for (group, &vector) in row_sums.iter().enumerate() {
                        let mut lanes = Lanes([0.0; LANES]);
                        // SAFETY: `lanes` is 8 floats aligned to 32 bytes.
                        unsafe { _mm256_store_ps(lanes.0.as_mut_ptr(), vector) };
                        let body = group_body + group * LANES;
                        for (body, sum) in bodies.iter_mut().skip(body).zip(lanes.0) {
                            body[row + offset] += sum;
                        }
                    }
                }
            }
        }
    }

    /// The batch micro-kernel: for `R` rows × `G` groups of eight bodies, the chains `acc = p[k]·f[k] + acc` over
    /// every k, in registers.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn bodies_in_lanes_kernel<const R: usize, const G: usize>(
        rows: &[[f32; NUM_POSE_FEATURES]; R],
        groups: &[Group; G],
    ) -> [[__m256; G]; R] {
        let mut acc = [[_mm256_setzero_ps(); G]; R];
        for k in 0..NUM_POSE_FEATURES {
            let mut f = [_mm256_setzero_ps(); G];
            for (f, group) in f.iter_mut().zip(groups) {
                // SAFETY: `group[k]` is 8 floats aligned to 32 bytes.
                *f = unsafe { _mm256_load_ps(group[k].0.as_ptr()) };
            }
            for (acc, row) in acc.iter_mut().zip(rows) {
                let p = _mm256_set1_ps(row[k]);
                for (acc, &f) in acc.iter_mut().zip(&f) {
                    *acc = _mm256_fmadd_ps(p, f, *acc);
                }
            }
        }
        acc
    }

    /// Tiles of eight rows per call of [`rows_in_lanes_kernel`]: each body gets one chain per tile, and four
    /// independent chains keep the FMA latency hidden behind the transposes.
    const TILES: usize = 4;
    const TILE_SET_ROWS: usize = TILES * LANES;

    /// The kernel for one or two bodies (`B`): lanes hold eight consecutive rows, whose values at eight
    /// consecutive features are widened and transposed in registers (the matrix is row-major), and each body's
    /// features are broadcast. Rows after the last full set of [`TILE_SET_ROWS`] go to the batch kernel, which
    /// sums alike.
    #[target_feature(enable = "avx2,fma,f16c")]
    fn rows_in_lanes<const B: usize>(
        rows: &[[f16; NUM_POSE_FEATURES]],
        features: &[[f32; NUM_POSE_FEATURES]],
        bodies: &mut [&mut [f32]],
    ) {
        let splats: Vec<Group> = features
            .iter()
            .map(|features| features.map(|value| Lanes([value; LANES])))
            .collect();
        let splats: &[Group; B] = splats
            .as_slice()
            .try_into()
            .expect("one set of features per body");
        let (sets, rest) = rows.as_chunks::<TILE_SET_ROWS>();
        for (index, set) in sets.iter().enumerate() {
            let sums = rows_in_lanes_kernel(set, splats);
            for (tile, sums) in sums.iter().enumerate() {
                let row = index * TILE_SET_ROWS + tile * LANES;
                for (body, &sum) in bodies.iter_mut().zip(sums) {
                    let out = &mut body[row..row + LANES];
                    // SAFETY: `out` holds 8 floats.
                    unsafe {
                        let before = _mm256_loadu_ps(out.as_ptr());
                        _mm256_storeu_ps(out.as_mut_ptr(), _mm256_add_ps(before, sum));
                    }
                }
            }
        }
        bodies_in_lanes(rest, sets.len() * TILE_SET_ROWS, features, bodies);
    }

    /// The micro-kernel for one or two bodies: [`TILES`] tiles of eight rows × `B` bodies, each tile's chains
    /// `acc = p[k]·f[k] + acc` over every k in the lanes of one register.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn rows_in_lanes_kernel<const B: usize>(
        rows: &[[f16; NUM_POSE_FEATURES]; TILE_SET_ROWS],
        splats: &[Group; B],
    ) -> [[__m256; B]; TILES] {
        /// The last eight features; 486 is not a multiple of 8, so the final step re-reads two and skips them.
        const LAST: usize = NUM_POSE_FEATURES - LANES;
        const DONE: usize = NUM_POSE_FEATURES / LANES * LANES;
        let (tiles, _) = rows.as_chunks::<LANES>();
        let mut acc = [[_mm256_setzero_ps(); B]; TILES];
        for k in (0..DONE).step_by(LANES) {
            for (acc, tile) in acc.iter_mut().zip(tiles) {
                if k % 32 == 0 {
                    // The same features of the next set's rows, one cache line per row every 32 features.
                    for row in tile {
                        prefetch(
                            row.as_ptr()
                                .wrapping_add(k + TILE_SET_ROWS * NUM_POSE_FEATURES),
                        );
                    }
                }
                let columns = transpose_tile(tile, k);
                for (j, column) in columns.iter().enumerate() {
                    for (acc, splat) in acc.iter_mut().zip(splats) {
                        // SAFETY: `splat[k + j]` is 8 floats aligned to 32 bytes (k + j < DONE).
                        let f = unsafe { _mm256_load_ps(splat[k + j].0.as_ptr()) };
                        *acc = _mm256_fmadd_ps(*column, f, *acc);
                    }
                }
            }
        }
        for (acc, tile) in acc.iter_mut().zip(tiles) {
            for row in tile {
                prefetch(
                    row.as_ptr()
                        .wrapping_add(LAST + TILE_SET_ROWS * NUM_POSE_FEATURES),
                );
            }
            let columns = transpose_tile(tile, LAST);
            for (j, column) in columns.iter().enumerate().skip(DONE - LAST) {
                for (acc, splat) in acc.iter_mut().zip(splats) {
                    // SAFETY: `splat[LAST + j]` is 8 floats aligned to 32 bytes (LAST + j < 486).
                    let f = unsafe { _mm256_load_ps(splat[LAST + j].0.as_ptr()) };
                    *acc = _mm256_fmadd_ps(*column, f, *acc);
                }
            }
        }
        acc
    }

    /// The values of eight rows at features `k..k + 8`, widened to f32, as eight vectors of one feature each
    /// (lane i: row i). Rows i and i + 4 share a vector (features `k..k + 4` of both, then `k + 4..k + 8`), so the
    /// transposes stay within 128-bit halves.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn transpose_tile(tile: &[[f16; NUM_POSE_FEATURES]; LANES], k: usize) -> [__m256; LANES] {
        assert!(k + LANES <= NUM_POSE_FEATURES);
        let mut low = [_mm256_setzero_ps(); 4];
        let mut high = [_mm256_setzero_ps(); 4];
        for i in 0..4 {
            // SAFETY: rows i and i + 4 of the tile hold features k..k + 8 (asserted above): 16 bytes each.
            let (top, bottom) = unsafe {
                (
                    _mm_loadu_si128(tile[i].as_ptr().add(k).cast()),
                    _mm_loadu_si128(tile[i + 4].as_ptr().add(k).cast()),
                )
            };
            low[i] = _mm256_cvtph_ps(_mm_unpacklo_epi64(top, bottom));
            high[i] = _mm256_cvtph_ps(_mm_unpackhi_epi64(top, bottom));
        }
        let [a0, a1, a2, a3] = transpose_halves(low);
        let [b0, b1, b2, b3] = transpose_halves(high);
        [a0, a1, a2, a3, b0, b1, b2, b3]
    }

    /// A 4×4 transpose within each 128-bit half: lane i of output j is lane j of input i.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn transpose_halves(v: [__m256; 4]) -> [__m256; 4] {
        // Shuffles rather than unpacks: these run on two ports of current Intel cores, unpacks on one.
        let low01 = _mm256_shuffle_ps::<0x44>(v[0], v[1]);
        let high01 = _mm256_shuffle_ps::<0xEE>(v[0], v[1]);
        let low23 = _mm256_shuffle_ps::<0x44>(v[2], v[3]);
        let high23 = _mm256_shuffle_ps::<0xEE>(v[2], v[3]);
        [
            _mm256_shuffle_ps::<0x88>(low01, low23),
            _mm256_shuffle_ps::<0xDD>(low01, low23),
            _mm256_shuffle_ps::<0x88>(high01, high23),
            _mm256_shuffle_ps::<0xDD>(high01, high23),
        ]
    }

    /// Asks for the cache line holding `address` ahead of its use, into L2, while the kernels work on the rows
    /// before it: rows read side by side, a few bytes each per step, mostly escape the hardware prefetchers.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn prefetch<T>(address: *const T) {
        // SAFETY: a prefetch only hints the cache; it never faults, whatever the address. (Newer toolchains than
        // the minimum supported one declare it safe.)
        #[allow(unused_unsafe)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T1>(address.cast())
        };
    }
}

/// The portable sums, in the order of [`correctives_block`]; the bodies' chains of a row run side by side.
fn pose_correctives(
    posedirs: &[f16],
    features: &[[f32; NUM_POSE_FEATURES]],
    bodies: &mut [&mut [f32]],
) {
    let mut sums = vec![0.0f32; features.len()];
    let mut row = [0.0f32; NUM_POSE_FEATURES];
    for (row_index, halves) in posedirs.chunks_exact(NUM_POSE_FEATURES).enumerate() {
        // Widened a row at a time (exact), with the CPU's conversion instructions where `half` finds them.
        halves.convert_to_f32_slice(&mut row);
        sums.fill(0.0);
        for (k, &p) in row.iter().enumerate() {
            for (sum, features) in sums.iter_mut().zip(features) {
                *sum = p.mul_add(features[k], *sum);
            }
        }
        for (body, sum) in bodies.iter_mut().zip(&sums) {
            body[row_index] += sum;
        }
    }
}

/// Step 7: world transforms down the kinematic chain. Returns the skinning transforms
/// `A_j = G_j · [I | −J_j]` (rest space → posed space) and the posed joint positions.
fn kinematic_chain(
    rotations: &[Matrix3<f32>],
    rest_joints: &[Vector3<f32>],
    parents: &[i32; NUM_JOINTS],
) -> (Vec<Affine>, Vec<Vector3<f32>>) {
    let mut world_rotation: Vec<Matrix3<f32>> = Vec::with_capacity(NUM_JOINTS);
    let mut world_translation: Vec<Vector3<f32>> = Vec::with_capacity(NUM_JOINTS);
    for joint in 0..NUM_JOINTS {
        let (rotation, translation) = match usize::try_from(parents[joint]) {
            Ok(parent) => {
                let local_offset = rest_joints[joint] - rest_joints[parent];
                (
                    world_rotation[parent] * rotations[joint],
                    world_rotation[parent] * local_offset + world_translation[parent],
                )
            }
            Err(_) => (rotations[joint], rest_joints[joint]),
        };
        world_rotation.push(rotation);
        world_translation.push(translation);
    }
    let skinning = (0..NUM_JOINTS)
        .map(|joint| {
            let r = &world_rotation[joint];
            let t = world_translation[joint] - r * rest_joints[joint];
            [
                r[(0, 0)],
                r[(0, 1)],
                r[(0, 2)],
                t.x,
                r[(1, 0)],
                r[(1, 1)],
                r[(1, 2)],
                t.y,
                r[(2, 0)],
                r[(2, 1)],
                r[(2, 2)],
                t.z,
            ]
        })
        .collect();
    (skinning, world_translation)
}

#[cfg(test)]
mod tests {
    use super::super::joints::PARENTS;
    use super::super::{ModelKind, SparseWeights};
    use super::*;

    /// Random posedirs, features and starting vertices for `bodies` bodies of `rows` coordinates.
    fn correctives_case(
        rows: usize,
        bodies: usize,
    ) -> (PoseDirs, Vec<[f32; NUM_POSE_FEATURES]>, Vec<Vec<f32>>) {
        let mut rng = fastrand::Rng::with_seed(7);
        let values: Vec<f32> = (0..rows * NUM_POSE_FEATURES)
            .map(|_| (rng.f32() - 0.5) * 0.01)
            .collect();
        let posedirs = PoseDirs::from_f32(&values);
        let features = (0..bodies)
            .map(|_| std::array::from_fn(|_| rng.f32() * 2.0 - 1.0))
            .collect();
        let start = (0..bodies)
            .map(|_| (0..rows).map(|_| rng.f32()).collect())
            .collect();
        (posedirs, features, start)
    }

    fn bits(v: &[Vec<f32>]) -> Vec<u32> {
        v.iter().flatten().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn pose_correctives_match_the_portable_loop_bit_for_bit() {
        // Batch sizes around the 8-body groups and their pairs. 81 rows are 6 blocks of 12 and 9 rows more for the
        // batch kernel, 2 sets of 32 rows and 17 more (a block and 5 rows) for the one- and two-body kernel.
        for bodies in [1, 2, 3, 8, 9, 17, 33] {
            let (posedirs, features, start) = correctives_case(81, bodies);
            let mut dispatched = start.clone();
            add_pose_correctives(&posedirs, &features, &mut dispatched);
            let mut portable = start.clone();
            let mut slices: Vec<&mut [f32]> = portable.iter_mut().map(Vec::as_mut_slice).collect();
            let scaled = scaled_features(&features, posedirs.scale());
            pose_correctives(posedirs.scaled(), &scaled, &mut slices);
            assert_eq!(bits(&dispatched), bits(&portable), "{bodies} bodies");
            for (body, start) in dispatched.iter().zip(&start) {
                assert!(
                    body.iter().zip(start).all(|(a, b)| a != b),
                    "{bodies} bodies: every row of every body changes"
                );
            }
        }
    }

    #[test]
    fn pose_correctives_are_one_fused_chain_per_row_and_body() {
        // The order every path follows, written out, over the matrix as held and the features as given: a body's
        // sums depend neither on its batch nor on the scale the matrix is held at.
        for bodies in [1, 2, 9] {
            let (posedirs, features, start) = correctives_case(77, bodies);
            assert!(posedirs.scale() > 1000.0, "the case exercises the scale");
            let mut batch = start.clone();
            add_pose_correctives(&posedirs, &features, &mut batch);
            let held = posedirs.to_f32();
            for (body, (features, start)) in batch.iter().zip(features.iter().zip(&start)) {
                for (row, (out, start)) in held
                    .chunks_exact(NUM_POSE_FEATURES)
                    .zip(body.iter().zip(start))
                {
                    let chain = row
                        .iter()
                        .zip(features)
                        .fold(0.0f32, |acc, (p, f)| p.mul_add(*f, acc));
                    assert_eq!(out.to_bits(), (start + chain).to_bits(), "{bodies} bodies");
                }
            }
        }
    }

    #[test]
    fn rows_split_over_threads_give_the_same_bits() {
        // One or two bodies of a large matrix are split over the cores; the result must not change.
        for bodies in [1, 2] {
            let (posedirs, features, start) = correctives_case(PARALLEL_MIN_ROWS + 5, bodies);
            let mut split = start.clone();
            add_pose_correctives(&posedirs, &features, &mut split);
            let mut whole = start.clone();
            let mut slices: Vec<&mut [f32]> = whole.iter_mut().map(Vec::as_mut_slice).collect();
            let scaled = scaled_features(&features, posedirs.scale());
            correctives_block(posedirs.scaled(), &scaled, &mut slices);
            assert_eq!(bits(&split), bits(&whole), "{bodies} bodies");
        }
    }

    /// A two-vertex-per-joint toy model: vertex 2j sits at joint j, vertex 2j+1 one unit above it; each vertex
    /// belongs wholly to its joint.
    fn toy_model() -> BodyModel {
        let j_template: [[f32; 3]; NUM_JOINTS] =
            std::array::from_fn(|j| [j as f32 * 0.1, -(j as f32) * 0.05, 0.0]);
        let v_template: Vec<[f32; 3]> = j_template
            .iter()
            .flat_map(|j| [*j, [j[0], j[1] + 1.0, j[2]]])
            .collect();
        let num_vertices = v_template.len();
        let mut dense = vec![0.0; num_vertices * NUM_JOINTS];
        for v in 0..num_vertices {
            dense[v * NUM_JOINTS + v / 2] = 1.0;
        }
        let shape_dirs = BlendDirs {
            data: (0..num_vertices * 3)
                .map(|i| (i % 3) as f32 * 0.01)
                .collect(),
            stride: num_vertices * 3,
        };
        BodyModel {
            kind: ModelKind::StandIn,
            v_template,
            faces: vec![],
            shape_dirs,
            expression_dirs: BlendDirs {
                data: vec![],
                stride: num_vertices * 3,
            },
            j_template,
            j_shape_dirs: BlendDirs {
                data: vec![0.0; NUM_JOINTS * 3],
                stride: NUM_JOINTS * 3,
            },
            j_expression_dirs: BlendDirs {
                data: vec![],
                stride: NUM_JOINTS * 3,
            },
            posedirs: None,
            parents: PARENTS,
            lbs_weights: SparseWeights::from_dense(&dense, num_vertices),
            hands_mean: Some([0.1; 90]),
            warnings: vec![],
        }
    }

    #[test]
    fn rodrigues_matches_a_quarter_turn_about_z() {
        let r = rodrigues([0.0, 0.0, std::f32::consts::FRAC_PI_2]);
        let x = r * Vector3::new(1.0, 0.0, 0.0);
        assert!((x - Vector3::new(0.0, 1.0, 0.0)).norm() < 1e-6);
    }

    #[test]
    fn rodrigues_of_tiny_rotation_is_first_order_exact() {
        let r = rodrigues([1e-6, 0.0, 0.0]);
        assert!((r[(2, 1)] - 1e-6).abs() < 1e-12);
        assert!((r[(1, 1)] - 1.0).abs() < 1e-12);
        assert_eq!(rodrigues([0.0; 3]), Matrix3::identity());
    }

    #[test]
    fn zero_pose_returns_shaped_template() {
        let model = toy_model();
        let params = BodyParams {
            betas: vec![2.0],
            ..BodyParams::default()
        };
        let posed = model.pose(
            &params,
            &ForwardOptions {
                add_hand_mean: false,
            },
        );
        for (vertex, (out, rest)) in posed.vertices.iter().zip(&model.v_template).enumerate() {
            for axis in 0..3 {
                let expected = rest[axis] + 2.0 * model.shape_dirs.component(0)[vertex * 3 + axis];
                assert!((out[axis] - expected).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn rotating_left_elbow_moves_only_vertices_skinned_to_its_subtree() {
        let model = toy_model();
        let options = ForwardOptions {
            add_hand_mean: false,
        };
        let rest = model.pose(&BodyParams::default(), &options);
        let mut params = BodyParams::default();
        let left_elbow = super::super::joints::joint_index("left_elbow").unwrap();
        params.pose[left_elbow] = [0.0, 0.0, 1.0];
        let bent = model.pose(&params, &options);
        let in_subtree = |mut joint: usize| loop {
            if joint == left_elbow {
                return true;
            }
            match usize::try_from(PARENTS[joint]) {
                Ok(parent) => joint = parent,
                Err(_) => return false,
            }
        };
        for vertex in 0..model.num_vertices() {
            let moved =
                (0..3).any(|a| (bent.vertices[vertex][a] - rest.vertices[vertex][a]).abs() > 1e-6);
            let joint = vertex / 2;
            // The vertex at the elbow joint itself is the rotation centre and stays put.
            let expected = in_subtree(joint) && !(joint == left_elbow && vertex % 2 == 0);
            assert_eq!(moved, expected, "vertex {vertex} of joint {joint}");
        }
    }

    #[test]
    fn hand_mean_is_added_only_when_asked() {
        let model = toy_model();
        let with = model.pose(
            &BodyParams::default(),
            &ForwardOptions {
                add_hand_mean: true,
            },
        );
        let without = model.pose(
            &BodyParams::default(),
            &ForwardOptions {
                add_hand_mean: false,
            },
        );
        let index2 = super::super::joints::joint_index("left_index2").unwrap();
        assert_ne!(with.joints[index2], without.joints[index2]);
        let knee = super::super::joints::joint_index("left_knee").unwrap();
        assert_eq!(with.joints[knee], without.joints[knee]);
    }

    #[test]
    fn a_batch_poses_each_body_exactly_as_alone() {
        let mut model = toy_model();
        let rows = model.num_vertices() * 3;
        let values: Vec<f32> = (0..rows * NUM_POSE_FEATURES)
            .map(|i| ((i % 13) as f32 - 6.0) * 1e-3)
            .collect();
        model.posedirs = Some(PoseDirs::from_f32(&values));
        let options = ForwardOptions::default();
        let batch: Vec<BodyParams> = (0..3)
            .map(|k| {
                let mut p = BodyParams {
                    betas: vec![k as f32],
                    ..BodyParams::default()
                };
                p.pose[5] = [0.2 * k as f32, 0.1, -0.3];
                p.pose[30] = [0.0, 0.4, 0.1 * k as f32];
                p
            })
            .collect();
        let together = model.pose_batch(&batch, &options);
        for (params, body) in batch.iter().zip(&together) {
            assert_eq!(&model.pose(params, &options), body);
        }
    }
}
