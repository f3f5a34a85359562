//! The forward pass against the dense reference, on model files in each published variant.

use std::path::PathBuf;

use meshreel::body::joints::{NUM_JOINTS, PARENTS, joint_index};
use meshreel::body::{
    BodyModel, BodyParams, ForwardOptions, ModelKind, ModelLoadError, PoseDirs, PosedBody,
    load_smplx,
};
use meshreel::frames::npz::NpzLimits;
use meshreel::synth::{ModelSpec, Rng, SynthModel};

use crate::support::{max_difference, reference_pose, temp_dir};

/// Our f32 forward pass against the f64 reference on the same matrices (the pose correctives as meshreel holds
/// them, at half precision).
const TOLERANCE_METRES: f64 = 1e-5;
/// Against the reference on the file's own float32 pose correctives: holding them at half precision moves
/// vertices by hundredths of a millimetre more (the synthetic models' correctives are dense, random, and large).
const HALF_PRECISION_TOLERANCE_METRES: f64 = 5e-5;

fn write_model(spec: ModelSpec, seed: u64) -> (tempfile::TempDir, PathBuf, SynthModel) {
    let dir = temp_dir();
    let path = dir.path().join("SMPLX_NEUTRAL.npz");
    let synth = SynthModel::generate(spec, seed);
    synth.write(&path).expect("write model");
    (dir, path, synth)
}

fn random_params(rng: &mut Rng, num_betas: usize, num_expression: usize) -> BodyParams {
    let values = rng.vec(NUM_JOINTS * 3, 0.6);
    BodyParams {
        pose: std::array::from_fn(|j| [values[3 * j], values[3 * j + 1], values[3 * j + 2]]),
        betas: rng.vec(num_betas, 2.0),
        expression: rng.vec(num_expression, 2.0),
        transl: [
            rng.symmetric(0.5),
            rng.symmetric(0.5),
            20.0 + rng.symmetric(5.0),
        ],
    }
}

fn assert_matches_reference(
    model: &BodyModel,
    synth: &SynthModel,
    params: &BodyParams,
    add_hand_mean: bool,
) {
    let ours = model.pose(params, &ForwardOptions { add_hand_mean });
    assert_close_to_reference(&ours, model, synth, params, add_hand_mean);
}

/// `ours` against the reference pass with the pose correctives as meshreel holds them (within
/// [`TOLERANCE_METRES`]) and as the file has them (within [`HALF_PRECISION_TOLERANCE_METRES`]).
fn assert_close_to_reference(
    ours: &PosedBody,
    model: &BodyModel,
    synth: &SynthModel,
    params: &BodyParams,
    add_hand_mean: bool,
) {
    let mut held = synth.clone();
    held.posedirs = model.posedirs.as_ref().expect("a posedirs matrix").to_f32();
    for (synth, tolerance) in [
        (&held, TOLERANCE_METRES),
        (synth, HALF_PRECISION_TOLERANCE_METRES),
    ] {
        let reference = reference_pose(
            synth,
            &params.pose,
            &params.betas,
            &params.expression,
            params.transl,
            add_hand_mean,
        );
        let difference = max_difference(&ours.vertices, &reference);
        assert!(
            difference < tolerance,
            "max vertex difference {difference} m (tolerance {tolerance} m)"
        );
    }
}

#[test]
fn forward_pass_matches_dense_reference_for_random_poses_shapes_and_expressions() {
    let (_dir, path, synth) = write_model(ModelSpec::small(), 1);
    let model = load_smplx(&path, NpzLimits::MODEL).unwrap();
    let mut rng = Rng::new(2);
    for (num_betas, num_expression) in [(10, 10), (16, 12), (300, 100), (0, 0)] {
        let params = random_params(&mut rng, num_betas, num_expression);
        assert_matches_reference(&model, &synth, &params, true);
    }
}

#[test]
fn v1_0_files_take_expression_directions_from_component_10() {
    let spec = ModelSpec {
        num_shape_components: 20,
        ..ModelSpec::small()
    };
    let (_dir, path, synth) = write_model(spec, 3);
    let model = load_smplx(&path, NpzLimits::MODEL).unwrap();
    let ModelKind::Smplx(info) = &model.kind else {
        panic!("a real model")
    };
    assert_eq!(
        (
            info.num_shape_components,
            info.expression_offset,
            info.num_expression_components
        ),
        (10, 10, 10)
    );
    assert!(info.variant.starts_with("v1.0"), "{}", info.variant);
    let mut rng = Rng::new(4);
    assert_matches_reference(&model, &synth, &random_params(&mut rng, 10, 10), true);

    // The same expression moves vertices differently in a v1.1 file: the offset really is read from the file.
    let (_dir11, path11, _) = write_model(ModelSpec::small(), 3);
    let v11 = load_smplx(&path11, NpzLimits::MODEL).unwrap();
    let ModelKind::Smplx(info11) = &v11.kind else {
        panic!("a real model")
    };
    assert_eq!(
        (info11.num_shape_components, info11.expression_offset),
        (300, 300)
    );
}

#[test]
fn float64_files_with_int64_faces_and_compression_load_and_match() {
    let spec = ModelSpec {
        float64: true,
        faces_int64: true,
        compressed: true,
        ..ModelSpec::small()
    };
    let (_dir, path, synth) = write_model(spec, 5);
    let model = load_smplx(&path, NpzLimits::MODEL).unwrap();
    assert_eq!(model.faces, synth.faces);
    assert_eq!(
        model.parents, PARENTS,
        "root parent stored as 4294967295 becomes -1"
    );
    let mut rng = Rng::new(6);
    assert_matches_reference(&model, &synth, &random_params(&mut rng, 10, 10), true);
}

#[test]
fn hand_mean_can_be_turned_off() {
    let (_dir, path, synth) = write_model(ModelSpec::small(), 7);
    let model = load_smplx(&path, NpzLimits::MODEL).unwrap();
    let mut rng = Rng::new(8);
    let params = random_params(&mut rng, 10, 10);
    assert_matches_reference(&model, &synth, &params, false);
    let with = model.pose(
        &params,
        &ForwardOptions {
            add_hand_mean: true,
        },
    );
    let without = model.pose(
        &params,
        &ForwardOptions {
            add_hand_mean: false,
        },
    );
    let wrist = joint_index("left_wrist").unwrap();
    let index3 = joint_index("left_index3").unwrap();
    assert_eq!(
        with.joints[wrist], without.joints[wrist],
        "the mean only moves the hands"
    );
    assert_ne!(with.joints[index3], without.joints[index3]);
}

#[test]
fn zero_pose_with_flat_hands_returns_the_shaped_template() {
    let (_dir, path, synth) = write_model(ModelSpec::small(), 9);
    let model = load_smplx(&path, NpzLimits::MODEL).unwrap();
    let params = BodyParams {
        betas: vec![1.5, -0.5],
        ..BodyParams::default()
    };
    let posed = model.pose(
        &params,
        &ForwardOptions {
            add_hand_mean: false,
        },
    );
    let s = synth.spec.num_shape_components;
    for (v, vertex) in posed.vertices.iter().enumerate() {
        for a in 0..3 {
            let dirs = &synth.shapedirs[(v * 3 + a) * s..];
            let expected = synth.v_template[v * 3 + a] + 1.5 * dirs[0] - 0.5 * dirs[1];
            assert!((vertex[a] - expected).abs() < 1e-6, "vertex {v} axis {a}");
        }
    }
}

#[test]
fn files_without_hand_pca_load_and_pose_hands() {
    let spec = ModelSpec {
        hand_pca: false,
        pickled_extras: false,
        ..ModelSpec::small()
    };
    let (_dir, path, synth) = write_model(spec, 10);
    let model = load_smplx(&path, NpzLimits::MODEL).unwrap();
    assert!(model.warnings.is_empty(), "{:?}", model.warnings);
    let mut rng = Rng::new(11);
    assert_matches_reference(&model, &synth, &random_params(&mut rng, 10, 10), true);
}

#[test]
fn files_without_hand_mean_warn_and_pose_flat_hands() {
    let spec = ModelSpec {
        hand_mean: false,
        ..ModelSpec::small()
    };
    let (_dir, path, synth) = write_model(spec, 12);
    let model = load_smplx(&path, NpzLimits::MODEL).unwrap();
    assert_eq!(model.warnings.len(), 1);
    assert!(
        model.warnings[0].contains("hands_meanl"),
        "{}",
        model.warnings[0]
    );
    let mut rng = Rng::new(13);
    // Asking for the mean cannot add what the file lacks: the result is the flat-hand pose.
    let params = random_params(&mut rng, 10, 10);
    let ours = model.pose(
        &params,
        &ForwardOptions {
            add_hand_mean: true,
        },
    );
    assert_close_to_reference(&ours, &model, &synth, &params, false);
}

#[test]
fn a_model_missing_posedirs_is_refused_naming_the_key_and_file() {
    let dir = temp_dir();
    let path = dir.path().join("SMPLX_MALE.npz");
    let mut contents = SynthModel::generate(ModelSpec::small(), 14).contents();
    contents.remove("posedirs");
    contents.write(&path, false).unwrap();
    let error = load_smplx(&path, NpzLimits::MODEL).unwrap_err();
    assert!(
        matches!(
            error,
            ModelLoadError::MissingKey {
                key: "posedirs",
                ..
            }
        ),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("posedirs") && message.contains("SMPLX_MALE.npz"),
        "{message}"
    );
}

#[test]
fn a_model_with_wrong_shapes_or_bad_faces_is_refused() {
    let dir = temp_dir();
    let path = dir.path().join("SMPLX_NEUTRAL.npz");
    let synth = SynthModel::generate(ModelSpec::small(), 15);

    let mut contents = synth.contents();
    let regressor = contents.get_mut("J_regressor").unwrap();
    regressor.shape = vec![54, 300];
    regressor.values = meshreel::synth::Values::F32(vec![0.0; 54 * 300]);
    contents.write(&path, false).unwrap();
    let error = load_smplx(&path, NpzLimits::MODEL).unwrap_err().to_string();
    assert!(
        error.contains("'J_regressor' has shape (54, 300), expected (55, 300)"),
        "{error}"
    );

    let mut contents = synth.contents();
    let faces = contents.get_mut("f").unwrap();
    faces.values = meshreel::synth::Values::U32(vec![999_999; 500 * 3]);
    contents.write(&path, false).unwrap();
    let error = load_smplx(&path, NpzLimits::MODEL).unwrap_err().to_string();
    assert!(error.contains("vertex index 999999"), "{error}");
}

#[test]
fn real_size_model_loads_and_matches_reference() {
    let (_dir, path, synth) = write_model(ModelSpec::real_size(), 16);
    let model = load_smplx(&path, NpzLimits::MODEL).unwrap();
    assert_eq!(model.num_vertices(), 10_475);
    assert_eq!(model.faces.len(), 20_908);
    assert!(
        model
            .describe()
            .contains("pose correctives held at half precision"),
        "the model's one line says its correctives are not the file's to the bit: {}",
        model.describe()
    );
    assert_eq!(
        model.posedirs.as_ref().map(PoseDirs::len),
        Some(10_475 * 3 * 486)
    );
    let mut rng = Rng::new(17);
    assert_matches_reference(&model, &synth, &random_params(&mut rng, 10, 10), true);
}

/// The bits of a posed body, so that equal means identical (signed zeros and NaNs included).
fn bits(body: &PosedBody) -> Vec<u32> {
    body.vertices
        .iter()
        .chain(&body.joints)
        .flatten()
        .map(|x| x.to_bits())
        .collect()
}

#[test]
fn a_batch_poses_every_body_bit_for_bit_as_alone() {
    // Batch sizes on both sides of the kernels' groups of 8 and 16 bodies; 903 pose-corrective rows end in part
    // blocks of rows. The real size splits a lone body's rows over the threads.
    for (spec, seed) in [
        (
            ModelSpec {
                num_vertices: 301,
                ..ModelSpec::small()
            },
            21,
        ),
        (ModelSpec::real_size(), 22),
    ] {
        let (_dir, path, _) = write_model(spec, seed);
        let model = load_smplx(&path, NpzLimits::MODEL).unwrap();
        assert!(model.posedirs.is_some());
        let mut rng = Rng::new(seed);
        let params: Vec<BodyParams> = (0..33).map(|_| random_params(&mut rng, 10, 10)).collect();
        let options = ForwardOptions::default();
        let alone: Vec<PosedBody> = params.iter().map(|p| model.pose(p, &options)).collect();
        for size in [2, 3, 8, 9, 17, 33] {
            let batch = model.pose_batch(&params[..size], &options);
            assert_eq!(batch.len(), size);
            for (index, (together, alone)) in batch.iter().zip(&alone).enumerate() {
                assert_eq!(
                    bits(together),
                    bits(alone),
                    "body {index} in a batch of {size}, {} vertices",
                    spec.num_vertices
                );
            }
        }
    }
}

#[test]
fn model_arrays_over_the_limit_are_refused() {
    let (_dir, path, _) = write_model(ModelSpec::small(), 18);
    let limits = NpzLimits {
        max_array_bytes: 100_000,
        ..NpzLimits::MODEL
    };
    let error = load_smplx(&path, limits).unwrap_err().to_string();
    assert!(error.contains("over the limit"), "{error}");
}

/// Vertices with no weight on `joint` or its descendants.
fn unaffected_vertices(model: &BodyModel, joint: usize) -> Vec<usize> {
    let in_subtree = |mut j: usize| loop {
        if j == joint {
            return true;
        }
        match usize::try_from(PARENTS[j]) {
            Ok(parent) => j = parent,
            Err(_) => return false,
        }
    };
    (0..model.num_vertices())
        .filter(|v| model.lbs_weights.of_vertex(*v).all(|(j, _)| !in_subtree(j)))
        .collect()
}

fn assert_rotation_moves_only_skinned_vertices(model: &BodyModel, joint_name: &str) {
    let joint = joint_index(joint_name).unwrap();
    let options = ForwardOptions {
        add_hand_mean: false,
    };
    let rest = model.pose(&BodyParams::default(), &options);
    let mut params = BodyParams::default();
    params.pose[joint] = [0.3, -0.8, 0.5];
    let bent = model.pose(&params, &options);
    let still = unaffected_vertices(model, joint);
    assert!(!still.is_empty() && still.len() < model.num_vertices());
    for v in &still {
        assert_eq!(
            bent.vertices[*v], rest.vertices[*v],
            "vertex {v} is not skinned to {joint_name}"
        );
    }
    let moved = (0..model.num_vertices())
        .filter(|v| bent.vertices[*v] != rest.vertices[*v])
        .count();
    assert_eq!(
        moved,
        model.num_vertices() - still.len(),
        "every vertex skinned to {joint_name} moves"
    );
}

#[test]
fn rotating_one_joint_moves_only_vertices_skinned_to_it() {
    // Pose correctives spread a rotation over the whole mesh by design; without them skinning alone must be
    // local.
    let dir = temp_dir();
    let path = dir.path().join("SMPLX_NEUTRAL.npz");
    let mut synth = SynthModel::generate(ModelSpec::small(), 19);
    synth.posedirs.iter_mut().for_each(|p| *p = 0.0);
    synth.write(&path).unwrap();
    let model = load_smplx(&path, NpzLimits::MODEL).unwrap();
    assert_rotation_moves_only_skinned_vertices(&model, "left_elbow");
    assert_rotation_moves_only_skinned_vertices(&BodyModel::stand_in(), "left_elbow");
    assert_rotation_moves_only_skinned_vertices(&BodyModel::stand_in(), "right_knee");
}

#[test]
fn stand_in_is_labelled_and_posed_by_the_same_parameters() {
    let model = BodyModel::stand_in();
    assert!(model.is_stand_in());
    assert!(model.describe().contains("not SMPL-X"));
    let mut rng = Rng::new(20);
    let params = random_params(&mut rng, 10, 10);
    let posed = model.pose(&params, &ForwardOptions::default());
    assert_eq!(posed.vertices.len(), model.num_vertices());
    assert!(posed.vertices.iter().flatten().all(|v| v.is_finite()));
    // cam_trans places it: the pelvis joint lands at the rest pelvis + translation (root rotation about it).
    let pelvis = posed.joints[0];
    for a in 0..3 {
        let shaped_rest = model.j_template[0][a]
            + params
                .betas
                .iter()
                .take(model.j_shape_dirs.num_components())
                .enumerate()
                .map(|(c, b)| b * model.j_shape_dirs.component(c)[a])
                .sum::<f32>();
        assert!((pelvis[a] - (shaped_rest + params.transl[a])).abs() < 1e-4);
    }
}

#[test]
fn the_real_size_stand_in_shaped_model_has_smplx_sizes_and_exact_joints() {
    let dir = temp_dir();
    let path = dir.path().join("SMPLX_NEUTRAL.npz");
    SynthModel::stand_in_shaped(1).write(&path).unwrap();
    let model = load_smplx(&path, NpzLimits::MODEL).unwrap();
    assert_eq!((model.num_vertices(), model.faces.len()), (10_475, 20_908));
    let stand_in = BodyModel::stand_in();
    for (ours, theirs) in model.j_template.iter().zip(&stand_in.j_template) {
        assert_eq!(ours, theirs);
    }
}
