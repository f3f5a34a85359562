//! The SMPL-X forward pass (linear blend skinning), in f32, as named steps:
//! full pose → rotations → shape blend → joint regression → pose correctives → kinematic chain → skinning.
//!
//! Follows smplx's `SMPLX.forward` and `lbs` (DOMAIN.md B.3); joints are regressed through precomputed joint
//! directions (exact by linearity), and skinning uses sparse weights.

use nalgebra::{Matrix3, Vector3};

use super::joints::{LEFT_HAND_FIRST, NUM_HAND_JOINTS, NUM_JOINTS, NUM_POSE_FEATURES};
use super::{BlendDirs, BodyModel, BodyParams};

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
    /// them one by one: the pose correctives read a 61 MB matrix for SMPL-X, which is memory-bound, and a batch
    /// streams it once for all its bodies.
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

/// Step 6: `v += posedirs · features` for every body of a batch. posedirs is vertex-major (one contiguous row
/// of 486 values per vertex coordinate), so this is one streaming pass over the matrix, each row applied to all
/// bodies while it is in cache. A batch of one or two bodies is memory-bound: its rows are split over the cores
/// (contiguous blocks, each row still computed the same way), which cuts a lone frame's latency.
fn add_pose_correctives(
    posedirs: &[f32],
    features: &[[f32; NUM_POSE_FEATURES]],
    vertices: &mut [Vec<f32>],
) {
    let rows = posedirs.len() / NUM_POSE_FEATURES;
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
    let mut work = blocks.into_iter().zip(block_dirs);
    let Some((mut own, own_dirs)) = work.next() else {
        return;
    };
    std::thread::scope(|scope| {
        for (mut block, dirs) in work {
            scope.spawn(move || correctives_block(dirs, features, &mut block));
        }
        correctives_block(own_dirs, features, &mut own);
    });
}

/// Matrices with fewer rows than this (small test models) are not worth a thread.
const PARALLEL_MIN_ROWS: usize = 4096;

fn available_cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// Step 6 over one block of rows: `bodies[b][r] += posedirs row r · features[b]`.
fn correctives_block(
    posedirs: &[f32],
    features: &[[f32; NUM_POSE_FEATURES]],
    bodies: &mut [&mut [f32]],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA, checked just above.
        unsafe { pose_correctives_avx2(posedirs, features, bodies) };
        return;
    }
    pose_correctives(posedirs, features, bodies);
}

/// The same sums with AVX2 and FMA intrinsics, each `body[r] += dot(row r, features)` computed exactly as
/// [`dot`] does (fused multiply-adds are exactly rounded everywhere), so the result is bit-identical to the
/// portable build. Only the order of the (independent) sums differs: blocks of rows stay in L1 while every
/// body's features pass over them, and rows go in pairs so each features load serves two rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn pose_correctives_avx2(
    posedirs: &[f32],
    features: &[[f32; NUM_POSE_FEATURES]],
    vertices: &mut [&mut [f32]],
) {
    /// Rows per block: 8 rows of 486 floats (15.5 KB) stay in L1.
    const BLOCK_ROWS: usize = 8;
    let rows: Vec<&[f32]> = posedirs.chunks_exact(NUM_POSE_FEATURES).collect();
    for (block_index, block) in rows.chunks(BLOCK_ROWS).enumerate() {
        let first_row = block_index * BLOCK_ROWS;
        for (body, features) in vertices.iter_mut().zip(features) {
            let body = &mut body[first_row..first_row + block.len()];
            let (pairs, last) = block.as_chunks::<2>();
            for (pair_index, [a, b]) in pairs.iter().enumerate() {
                let (da, db) = dot2_avx2(a, b, features);
                body[2 * pair_index] += da;
                body[2 * pair_index + 1] += db;
            }
            if let Some(row) = last.first() {
                body[block.len() - 1] += dot_avx2(row, features);
            }
        }
    }
}

/// [`dot`] with four 8-wide accumulators.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let (a_chunks, a_rest) = a.as_chunks::<DOT_LANES>();
    let (b_chunks, b_rest) = b.as_chunks::<DOT_LANES>();
    let mut acc = [_mm256_setzero_ps(); DOT_LANES / 8];
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for (k, sum) in acc.iter_mut().enumerate() {
            // SAFETY: both chunks hold DOT_LANES floats and 8·k + 8 <= DOT_LANES.
            let (xv, yv) = unsafe {
                (
                    _mm256_loadu_ps(x.as_ptr().add(8 * k)),
                    _mm256_loadu_ps(y.as_ptr().add(8 * k)),
                )
            };
            *sum = _mm256_fmadd_ps(xv, yv, *sum);
        }
    }
    fold_avx2(acc) + dot_tail(a_rest, b_rest)
}

/// [`dot`] of two rows with the same features, each summed exactly as [`dot_avx2`] sums one.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot2_avx2(a: &[f32], b: &[f32], features: &[f32]) -> (f32, f32) {
    use std::arch::x86_64::*;
    let (a_chunks, a_rest) = a.as_chunks::<DOT_LANES>();
    let (b_chunks, b_rest) = b.as_chunks::<DOT_LANES>();
    let (f_chunks, f_rest) = features.as_chunks::<DOT_LANES>();
    let mut acc_a = [_mm256_setzero_ps(); DOT_LANES / 8];
    let mut acc_b = [_mm256_setzero_ps(); DOT_LANES / 8];
    for ((x, y), f) in a_chunks.iter().zip(b_chunks).zip(f_chunks) {
        for k in 0..DOT_LANES / 8 {
            // SAFETY: all three chunks hold DOT_LANES floats and 8·k + 8 <= DOT_LANES.
            let (xv, yv, fv) = unsafe {
                (
                    _mm256_loadu_ps(x.as_ptr().add(8 * k)),
                    _mm256_loadu_ps(y.as_ptr().add(8 * k)),
                    _mm256_loadu_ps(f.as_ptr().add(8 * k)),
                )
            };
            acc_a[k] = _mm256_fmadd_ps(xv, fv, acc_a[k]);
            acc_b[k] = _mm256_fmadd_ps(yv, fv, acc_b[k]);
        }
    }
    (
        fold_avx2(acc_a) + dot_tail(a_rest, f_rest),
        fold_avx2(acc_b) + dot_tail(b_rest, f_rest),
    )
}

/// The folds of [`dot`]: lanes 0..16 += 16..32, 0..8 += 8..16, 0..4 += 4..8, 0..2 += 2..4, 0 += 1.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fold_avx2(acc: [std::arch::x86_64::__m256; DOT_LANES / 8]) -> f32 {
    use std::arch::x86_64::*;
    let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
    let q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let h = _mm_add_ps(q, _mm_movehl_ps(q, q));
    let s = _mm_add_ss(h, _mm_shuffle_ps::<1>(h, h));
    _mm_cvtss_f32(s)
}

#[inline(always)]
fn pose_correctives(
    posedirs: &[f32],
    features: &[[f32; NUM_POSE_FEATURES]],
    vertices: &mut [&mut [f32]],
) {
    for (row_index, row) in posedirs.chunks_exact(NUM_POSE_FEATURES).enumerate() {
        for (body, features) in vertices.iter_mut().zip(features) {
            body[row_index] += dot(row, features);
        }
    }
}

/// Accumulator lanes of [`dot`]: four independent 8-wide sums, enough to hide the add latency.
const DOT_LANES: usize = 32;

/// Dot product with a fixed summation order (lane-wise, then the lanes, then the tail).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; DOT_LANES];
    let (a_chunks, a_rest) = a.as_chunks::<DOT_LANES>();
    let (b_chunks, b_rest) = b.as_chunks::<DOT_LANES>();
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for lane in 0..DOT_LANES {
            acc[lane] = x[lane].mul_add(y[lane], acc[lane]);
        }
    }
    let tail = dot_tail(a_rest, b_rest);
    // Pairwise reduction (vector adds, then a short tree) rather than 32 dependent scalar adds.
    fold_half::<16>(&mut acc);
    fold_half::<8>(&mut acc);
    fold_half::<4>(&mut acc);
    fold_half::<2>(&mut acc);
    fold_half::<1>(&mut acc);
    acc[0] + tail
}

/// The elements after the last full chunk, fused multiply-adds in order.
#[inline(always)]
fn dot_tail(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .fold(0.0f32, |sum, (x, y)| x.mul_add(*y, sum))
}

/// `acc[i] += acc[i + HALF]` for the first `HALF` lanes.
#[inline(always)]
fn fold_half<const HALF: usize>(acc: &mut [f32; DOT_LANES]) {
    for lane in 0..HALF {
        acc[lane] += acc[lane + HALF];
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
    ) -> (Vec<f32>, Vec<[f32; NUM_POSE_FEATURES]>, Vec<Vec<f32>>) {
        let mut rng = fastrand::Rng::with_seed(7);
        let posedirs = (0..rows * NUM_POSE_FEATURES)
            .map(|_| rng.f32() - 0.5)
            .collect();
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
        let (posedirs, features, start) = correctives_case(37, 3);
        let mut dispatched = start.clone();
        add_pose_correctives(&posedirs, &features, &mut dispatched);
        let mut portable = start.clone();
        let mut slices: Vec<&mut [f32]> = portable.iter_mut().map(Vec::as_mut_slice).collect();
        pose_correctives(&posedirs, &features, &mut slices);
        assert_eq!(bits(&dispatched), bits(&portable));
        assert_ne!(bits(&dispatched), bits(&start));
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
            correctives_block(&posedirs, &features, &mut slices);
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
    fn dot_handles_tails() {
        let a: Vec<f32> = (0..75).map(|i| i as f32).collect();
        let b = vec![1.0; 75];
        assert_eq!(dot(&a, &b), (0..75).sum::<i32>() as f32);
    }

    #[test]
    fn a_batch_poses_each_body_exactly_as_alone() {
        let mut model = toy_model();
        let rows = model.num_vertices() * 3;
        model.posedirs = Some(
            (0..rows * NUM_POSE_FEATURES)
                .map(|i| ((i % 13) as f32 - 6.0) * 1e-3)
                .collect(),
        );
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
