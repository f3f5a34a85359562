//! Shared helpers: temporary folders, model files, and an independent dense reference forward pass.

use std::path::{Path, PathBuf};

use meshreel::body::joints::{NUM_JOINTS, NUM_POSE_FEATURES, PARENTS};
use meshreel::synth::{KeyStyle, NpzContents, Rng, SynthModel, SynthPerson, no_person_contents};

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create a temporary folder")
}

/// Person `n` of the 160×120 test sequences: a random pose 50 m away, seen through OSX's frame camera.
pub fn framed_person(n: u32) -> SynthPerson {
    let mut p = SynthPerson::random(&mut Rng::new(u64::from(n)), 0.3);
    p.cam_trans = [0.0, 0.3, 50.0];
    p.bbox_xywh = [-15.0, -40.0, 190.0, 253.0];
    p.focal = [4950.0, 4950.0];
    p.princpt = [80.0, 60.0];
    p
}

/// Frames 1–12 in `dir/frames`: valid except 3 (no person), 4 (missing file), 5 (corrupt), 9–11 (no person;
/// with a hold of 1, 9 falls back to 8 and 10–11 are placeholders). Returns `dir`.
pub fn faulty_sequence(dir: &Path) -> PathBuf {
    let frames = dir.join("frames");
    std::fs::create_dir_all(&frames).expect("create the frames folder");
    for n in [1, 2, 6, 7, 8, 12] {
        write_osx_frame(&frames, n, &[framed_person(n)]);
    }
    for n in [3, 9, 10, 11] {
        write_npz(
            &frames,
            &format!("frame_{n:04}_params.npz"),
            &no_person_contents(),
            false,
        );
    }
    std::fs::write(frames.join("frame_0005_params.npz"), b"garbage")
        .expect("write a corrupt frame");
    dir.to_path_buf()
}

/// Writes `contents` to `dir/name` and returns the path.
pub fn write_npz(dir: &Path, name: &str, contents: &NpzContents, compressed: bool) -> PathBuf {
    let path = dir.join(name);
    contents
        .write(&path, compressed)
        .expect("write test archive");
    path
}

/// Writes a frame file in the OSX users' layout.
pub fn write_osx_frame(dir: &Path, number: u32, persons: &[SynthPerson]) -> PathBuf {
    let contents = meshreel::synth::frame_contents(KeyStyle::OsxPrefixed, persons, false);
    write_npz(
        dir,
        &format!("frame_{number:04}_params.npz"),
        &contents,
        false,
    )
}

/// The straightforward SMPL-X forward pass, written for clarity, not speed: f64 throughout, dense joint
/// regressor, dense skinning weights, 4×4 matrices. Shares no code with meshreel's forward pass.
pub fn reference_pose(
    model: &SynthModel,
    pose: &[[f32; 3]; NUM_JOINTS],
    betas: &[f32],
    expression: &[f32],
    transl: [f32; 3],
    add_hand_mean: bool,
) -> Vec<[f64; 3]> {
    let v_count = model.spec.num_vertices;
    let s = model.spec.num_shape_components;
    let (num_shape, expr_offset, num_expr) = if s >= 400 {
        (300, 300, 100)
    } else {
        (10, 10, 10)
    };

    // Full pose, with the hand mean on joints 25..55.
    let mut full: Vec<[f64; 3]> = pose.iter().map(|r| r.map(f64::from)).collect();
    if add_hand_mean {
        for k in 0..90 {
            full[25 + k / 3][k % 3] += f64::from(model.hands_mean[k]);
        }
    }

    // Shape and expression blend.
    let mut shaped = vec![[0.0f64; 3]; v_count];
    for v in 0..v_count {
        for a in 0..3 {
            let mut value = f64::from(model.v_template[v * 3 + a]);
            let dirs = &model.shapedirs[(v * 3 + a) * s..(v * 3 + a + 1) * s];
            for (l, beta) in betas.iter().enumerate().take(num_shape) {
                value += f64::from(*beta) * f64::from(dirs[l]);
            }
            for (m, psi) in expression.iter().enumerate().take(num_expr) {
                value += f64::from(*psi) * f64::from(dirs[expr_offset + m]);
            }
            shaped[v][a] = value;
        }
    }

    // Joint regression on the shaped mesh.
    let mut joints = vec![[0.0f64; 3]; NUM_JOINTS];
    for j in 0..NUM_JOINTS {
        for v in 0..v_count {
            let w = f64::from(model.j_regressor[j * v_count + v]);
            for a in 0..3 {
                joints[j][a] += w * shaped[v][a];
            }
        }
    }

    // Rotations.
    let rotations: Vec<[[f64; 3]; 3]> = full.iter().map(|r| textbook_rodrigues(*r)).collect();

    // Pose correctives.
    let mut features = vec![0.0f64; NUM_POSE_FEATURES];
    for j in 1..NUM_JOINTS {
        for row in 0..3 {
            for col in 0..3 {
                let identity = if row == col { 1.0 } else { 0.0 };
                features[(j - 1) * 9 + row * 3 + col] = rotations[j][row][col] - identity;
            }
        }
    }
    let mut posed = shaped.clone();
    for v in 0..v_count {
        for a in 0..3 {
            let row = &model.posedirs
                [(v * 3 + a) * NUM_POSE_FEATURES..(v * 3 + a + 1) * NUM_POSE_FEATURES];
            posed[v][a] += row
                .iter()
                .zip(&features)
                .map(|(p, f)| f64::from(*p) * f)
                .sum::<f64>();
        }
    }

    // Kinematic chain with 4×4 matrices.
    let mut world: Vec<[[f64; 4]; 4]> = Vec::new();
    for j in 0..NUM_JOINTS {
        let offset = if PARENTS[j] < 0 {
            joints[j]
        } else {
            let p = PARENTS[j] as usize;
            [
                joints[j][0] - joints[p][0],
                joints[j][1] - joints[p][1],
                joints[j][2] - joints[p][2],
            ]
        };
        let local = homogeneous(rotations[j], offset);
        world.push(if PARENTS[j] < 0 {
            local
        } else {
            matmul4(&world[PARENTS[j] as usize], &local)
        });
    }
    let skinning: Vec<[[f64; 4]; 4]> = (0..NUM_JOINTS)
        .map(|j| {
            let rest = homogeneous(identity3(), [-joints[j][0], -joints[j][1], -joints[j][2]]);
            matmul4(&world[j], &rest)
        })
        .collect();

    // Dense skinning over all 55 joints.
    (0..v_count)
        .map(|v| {
            let mut out = [0.0f64; 3];
            for j in 0..NUM_JOINTS {
                let w = f64::from(model.weights[v * NUM_JOINTS + j]);
                let m = &skinning[j];
                for a in 0..3 {
                    out[a] += w
                        * (m[a][0] * posed[v][0]
                            + m[a][1] * posed[v][1]
                            + m[a][2] * posed[v][2]
                            + m[a][3]);
                }
            }
            [
                out[0] + f64::from(transl[0]),
                out[1] + f64::from(transl[1]),
                out[2] + f64::from(transl[2]),
            ]
        })
        .collect()
}

fn textbook_rodrigues(r: [f64; 3]) -> [[f64; 3]; 3] {
    let theta = (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt();
    if theta == 0.0 {
        return identity3();
    }
    let k = [r[0] / theta, r[1] / theta, r[2] / theta];
    let kx = [[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]];
    let mut out = identity3();
    for i in 0..3 {
        for j in 0..3 {
            let kx2: f64 = (0..3).map(|m| kx[i][m] * kx[m][j]).sum();
            out[i][j] += theta.sin() * kx[i][j] + (1.0 - theta.cos()) * kx2;
        }
    }
    out
}

fn identity3() -> [[f64; 3]; 3] {
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
}

fn homogeneous(r: [[f64; 3]; 3], t: [f64; 3]) -> [[f64; 4]; 4] {
    [
        [r[0][0], r[0][1], r[0][2], t[0]],
        [r[1][0], r[1][1], r[1][2], t[1]],
        [r[2][0], r[2][1], r[2][2], t[2]],
        [0.0, 0.0, 0.0, 1.0],
    ]
}

fn matmul4(a: &[[f64; 4]; 4], b: &[[f64; 4]; 4]) -> [[f64; 4]; 4] {
    let mut out = [[0.0; 4]; 4];
    for i in 0..4 {
        for j in 0..4 {
            out[i][j] = (0..4).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

/// Largest absolute coordinate difference between two vertex lists.
pub fn max_difference(ours: &[[f32; 3]], reference: &[[f64; 3]]) -> f64 {
    assert_eq!(ours.len(), reference.len(), "vertex counts differ");
    ours.iter()
        .zip(reference)
        .flat_map(|(a, b)| (0..3).map(move |k| (f64::from(a[k]) - b[k]).abs()))
        .fold(0.0, f64::max)
}
