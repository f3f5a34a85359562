//! The binary end to end: `check` and `mesh` on sequences written in the users' layouts.

use std::process::Command;

use meshreel::synth::{KeyStyle, ModelSpec, Rng, SynthModel, SynthPerson, Values, frame_contents};

use crate::support::{temp_dir, write_npz, write_osx_frame};

fn meshreel(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_meshreel"))
        .args(args)
        .env_remove("MESHREEL_MODEL")
        .output()
        .expect("run meshreel")
}

macro_rules! args {
    ($($a:expr),* $(,)?) => { &[$(std::ffi::OsStr::new(&$a)),*] };
}

fn person(seed: u64) -> SynthPerson {
    SynthPerson::random(&mut Rng::new(seed), 0.4)
}

#[test]
fn check_reports_counts_by_reason_as_json() {
    let dir = temp_dir();
    let d = dir.path();
    write_osx_frame(d, 1, &[person(1)]);
    write_osx_frame(d, 2, &[person(2), person(3)]);
    write_npz(
        d,
        "frame_0003_params.npz",
        &meshreel::synth::no_person_contents(),
        false,
    );
    write_osx_frame(d, 5, &[person(4)]);
    let output = meshreel(args!["check", d.as_os_str(), "--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["num_frames"], 5);
    assert_eq!(report["num_valid"], 3);
    assert_eq!(report["invalid"]["no_person"], serde_json::json!([3]));
    assert_eq!(report["invalid"]["missing_file"], serde_json::json!([4]));
    assert_eq!(report["multi_person"], serde_json::json!([2]));
}

#[test]
fn mesh_writes_one_obj_object_per_person_with_the_stand_in() {
    let dir = temp_dir();
    write_osx_frame(dir.path(), 1, &[person(1), person(2)]);
    let out = dir.path().join("frame1.obj");
    let output = meshreel(args![
        "mesh",
        dir.path().as_os_str(),
        "--frame",
        "1",
        "--out",
        out.as_os_str()
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let obj = std::fs::read_to_string(&out).unwrap();
    assert!(
        obj.contains("stand-in body (not SMPL-X)"),
        "the file says it is the stand-in"
    );
    assert!(obj.contains("o person_0\n") && obj.contains("o person_1\n"));
    let stand_in = meshreel::body::BodyModel::stand_in();
    let vertices = obj.lines().filter(|l| l.starts_with("v ")).count();
    let faces = obj.lines().filter(|l| l.starts_with("f ")).count();
    assert_eq!(vertices, 2 * stand_in.num_vertices());
    assert_eq!(faces, 2 * stand_in.faces.len());
    // Camera coordinates: the bodies sit at cam_trans depth (about 20 m).
    let depth: f64 = obj
        .lines()
        .find(|l| l.starts_with("v "))
        .unwrap()
        .split(' ')
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    assert!((10.0..30.0).contains(&depth), "depth {depth}");
}

#[test]
fn mesh_uses_saved_vertices_with_the_real_model_when_asked() {
    let dir = temp_dir();
    let model_path = dir.path().join("SMPLX_NEUTRAL.npz");
    let spec = ModelSpec::small();
    SynthModel::generate(spec, 1).write(&model_path).unwrap();
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    let mut contents = frame_contents(KeyStyle::OsxPrefixed, &[person(1)], false);
    let saved: Vec<f32> = (0..spec.num_vertices * 3)
        .map(|i| i as f32 * 0.001)
        .collect();
    contents.push(
        "person_0_smplx_mesh_cam",
        &[1, spec.num_vertices as u64, 3],
        Values::F32(saved),
    );
    write_npz(&frames, "frame_0001_params.npz", &contents, false);

    let saved_obj = dir.path().join("saved.obj");
    let output = meshreel(args![
        "mesh",
        dir.path().as_os_str(),
        "--frame",
        "1",
        "--model",
        model_path.as_os_str(),
        "--mesh-source",
        "saved",
        "--out",
        saved_obj.as_os_str()
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let obj = std::fs::read_to_string(&saved_obj).unwrap();
    assert!(obj.contains("SMPL-X v1.1"));
    let second_vertex = obj.lines().filter(|l| l.starts_with("v ")).nth(1).unwrap();
    assert_eq!(second_vertex, "v 0.003000 0.004000 0.005000");

    let params_ply = dir.path().join("params.ply");
    let output = meshreel(args![
        "mesh",
        dir.path().as_os_str(),
        "--frame",
        "1",
        "--model",
        model_path.as_os_str(),
        "--out",
        params_ply.as_os_str()
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("from parameters"));
    assert!(
        std::fs::read(&params_ply)
            .unwrap()
            .starts_with(b"ply\nformat binary_little_endian 1.0\n")
    );
}

/// Runs `meshreel mesh <dir> --out <out> <extra…>` and returns its stderr, asserting exit code 2.
fn mesh_fails(dir: &std::path::Path, out: &std::path::Path, extra: &[&std::ffi::OsStr]) -> String {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "mesh".as_ref(),
        dir.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ];
    args.extend_from_slice(extra);
    let output = meshreel(&args);
    assert_eq!(output.status.code(), Some(2));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn mesh_refuses_invalid_frames_and_impossible_options_with_exit_code_2() {
    let dir = temp_dir();
    let mut contents = frame_contents(KeyStyle::OsxPrefixed, &[person(1)], false);
    contents.remove("person_0_smplx_rhand_pose");
    write_npz(dir.path(), "frame_0001_params.npz", &contents, false);
    let out = dir.path().join("x.obj");
    let stderr = mesh_fails(dir.path(), &out, args!["--frame", "1"]);
    assert!(
        stderr.contains("missing_key:person_0_smplx_rhand_pose")
            && stderr.contains("frame_0001_params.npz"),
        "{stderr}"
    );
    assert!(!out.exists());
    assert!(mesh_fails(dir.path(), &out, args!["--frame", "7"]).contains("outside the sequence"));
    let stderr = mesh_fails(
        dir.path(),
        &out,
        args!["--frame", "1", "--mesh-source", "saved"],
    );
    assert!(stderr.contains("needs the real SMPL-X model"), "{stderr}");
    let missing_model = dir.path().join("SMPLX_NEUTRAL.npz");
    let stderr = mesh_fails(
        dir.path(),
        &out,
        args!["--frame", "1", "--model", missing_model.as_os_str()],
    );
    assert!(stderr.contains("SMPLX_NEUTRAL.npz"), "{stderr}");
}

#[test]
fn the_bundled_sample_matches_its_manifest() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data-samples/mini");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("manifest.json")).unwrap())
            .unwrap();
    let output = meshreel(args!["check", root.as_os_str(), "--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["num_frames"], manifest["num_frames"]);
    let mut expected: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for (number, reason) in manifest["faults"].as_object().unwrap() {
        expected
            .entry(reason.as_str().unwrap().to_string())
            .or_default()
            .push(number.parse().unwrap());
    }
    let found: std::collections::BTreeMap<String, Vec<u64>> =
        serde_json::from_value(report["invalid"].clone()).unwrap();
    assert_eq!(found, expected);
}
