//! Sequences and frame files: every naming layout, every key layout, every reason a frame is not valid.

use std::fs;

use meshreel::body::joints::{JAW, LEFT_HAND_FIRST, RIGHT_HAND_FIRST, joint_index};
use meshreel::frames::{
    FrameError, Layout, ReadOptions, Sequence, SequenceOptions, discover, read_frame,
};
use meshreel::synth::{
    KeyStyle, Rng, SynthPerson, Values, frame_contents, no_person_contents, pickled_object_npy,
};

use crate::support::{temp_dir, write_npz, write_osx_frame};

fn person(seed: u64) -> SynthPerson {
    SynthPerson::random(&mut Rng::new(seed), 0.5)
}

fn open(path: &std::path::Path) -> Sequence {
    discover(path, &SequenceOptions::default()).unwrap()
}

fn reason(sequence: &Sequence, number: u32) -> String {
    match read_frame(sequence.by_number(number).unwrap(), &ReadOptions::default()) {
        Ok(_) => "valid".to_string(),
        Err(e) => e.reason().to_string(),
    }
}

#[test]
fn osx_frames_map_number_n_to_video_frame_n_minus_1_and_gaps_are_missing_files() {
    let dir = temp_dir();
    for number in [1, 2, 4] {
        write_osx_frame(dir.path(), number, &[person(u64::from(number))]);
    }
    fs::write(dir.path().join("notes.txt"), "not a frame").unwrap();
    fs::write(dir.path().join("summary.npz"), "not a frame").unwrap();
    let sequence = open(dir.path());
    assert_eq!(sequence.layout, Layout::OsxFrames);
    assert_eq!(sequence.first_number, 1);
    assert_eq!(sequence.len(), 4);
    assert_eq!(sequence.frame(0).unwrap().number, 1);
    assert_eq!(sequence.by_number(4).unwrap().video_index, 3);
    assert_eq!(sequence.missing_numbers(), vec![3]);
    assert_eq!(reason(&sequence, 3), "missing_file");
    assert_eq!(reason(&sequence, 4), "valid");
    assert_eq!(
        sequence.ignored.len(),
        1,
        "summary.npz is reported: {:?}",
        sequence.ignored
    );
}

#[test]
fn the_first_frame_number_is_an_option() {
    let dir = temp_dir();
    for number in [1, 2] {
        write_osx_frame(dir.path(), number, &[person(1)]);
    }
    let sequence = discover(
        dir.path(),
        &SequenceOptions {
            first_number: Some(0),
        },
    )
    .unwrap();
    assert_eq!(sequence.len(), 3);
    assert_eq!(sequence.by_number(1).unwrap().video_index, 1);
    assert_eq!(sequence.missing_numbers(), vec![0]);

    let sequence = discover(
        dir.path(),
        &SequenceOptions {
            first_number: Some(2),
        },
    )
    .unwrap();
    assert_eq!(sequence.len(), 1);
    assert_eq!(sequence.frame(0).unwrap().number, 2);
    assert_eq!(
        sequence.ignored.len(),
        1,
        "frame 1 is before the first number and reported"
    );
}

#[test]
fn osx_parameters_land_at_smplx_joint_numbers() {
    let dir = temp_dir();
    let p = person(5);
    write_osx_frame(dir.path(), 1, std::slice::from_ref(&p));
    let sequence = open(dir.path());
    let frame = read_frame(sequence.frame(0).unwrap(), &ReadOptions::default()).unwrap();
    let got = &frame.persons[0];
    assert_eq!(got.pose[0], p.root_pose);
    assert_eq!(
        got.pose[joint_index("left_hip").unwrap()],
        [p.body_pose[0], p.body_pose[1], p.body_pose[2]]
    );
    // OSX packs root | body | lhand | rhand | jaw; SMPL-X puts jaw and eyes before the hands.
    assert_eq!(got.pose[JAW], p.jaw_pose);
    assert_eq!(
        got.pose[LEFT_HAND_FIRST],
        [p.lhand_pose[0], p.lhand_pose[1], p.lhand_pose[2]]
    );
    assert_eq!(
        got.pose[RIGHT_HAND_FIRST + 14],
        [p.rhand_pose[42], p.rhand_pose[43], p.rhand_pose[44]]
    );
    assert_eq!(
        got.pose[joint_index("left_eye_smplhf").unwrap()],
        [0.0; 3],
        "eyes default to zero"
    );
    assert_eq!(got.betas, p.betas);
    assert_eq!(got.expression, p.expression);
    assert_eq!(got.cam_trans, Some(p.cam_trans));
    assert_eq!(got.focal, Some(p.focal));
    assert_eq!(got.princpt, Some(p.princpt));
    assert_eq!(got.bbox_xywh, Some(p.bbox_xywh));
    assert_eq!(frame.image_size, Some([720.0, 1280.0]));
    assert_eq!(
        got.saved_vertices, None,
        "saved vertices are read only when asked for"
    );
}

#[test]
fn persons_come_from_the_keys_present_not_person_ids() {
    let dir = temp_dir();
    let mut contents = frame_contents(KeyStyle::OsxPrefixed, &[person(1), person(2)], false);
    let ids = contents.get_mut("person_ids").unwrap();
    ids.shape = vec![3];
    ids.values = Values::I64(vec![0, 1, 2]);
    write_npz(dir.path(), "frame_0001_params.npz", &contents, false);
    let sequence = open(dir.path());
    let frame = read_frame(sequence.frame(0).unwrap(), &ReadOptions::default()).unwrap();
    assert_eq!(
        frame.persons.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert_eq!(frame.persons[1].cam_trans, Some(person(2).cam_trans));
}

#[test]
fn missing_shape_and_expression_default_to_zeros() {
    let dir = temp_dir();
    let mut contents = frame_contents(KeyStyle::OsxPrefixed, &[person(1)], true);
    contents.remove("person_0_smplx_shape");
    contents.remove("person_0_smplx_expr");
    write_npz(dir.path(), "frame_0001_params.npz", &contents, true);
    let sequence = open(dir.path());
    let frame = read_frame(sequence.frame(0).unwrap(), &ReadOptions::default()).unwrap();
    assert!(frame.persons[0].betas.is_empty() && frame.persons[0].expression.is_empty());
    assert!(
        frame.persons[0]
            .body_params()
            .betas
            .iter()
            .all(|b| *b == 0.0)
    );
}

#[test]
fn every_invalid_frame_gets_its_precise_reason() {
    let dir = temp_dir();
    let d = dir.path();
    let good = || frame_contents(KeyStyle::OsxPrefixed, &[person(1)], false);
    write_osx_frame(d, 1, &[person(1)]);
    write_npz(d, "frame_0002_params.npz", &no_person_contents(), false);
    fs::write(
        d.join("frame_0003_params.npz"),
        b"this is not a zip archive",
    )
    .unwrap();
    let mut c = good();
    c.remove("person_0_smplx_body_pose");
    write_npz(d, "frame_0004_params.npz", &c, false);
    let mut c = good();
    let body = c.get_mut("person_0_smplx_body_pose").unwrap();
    body.shape = vec![60];
    body.values = Values::F32(vec![0.0; 60]);
    write_npz(d, "frame_0005_params.npz", &c, false);
    let mut c = good();
    c.get_mut("person_0_cam_trans").unwrap().values = Values::F32(vec![0.0, f32::NAN, 20.0]);
    write_npz(d, "frame_0006_params.npz", &c, false);
    let mut c = good();
    c.get_mut("person_0_smplx_jaw_pose").unwrap().values =
        Values::F64(vec![0.0, f64::INFINITY, 0.0]);
    write_npz(d, "frame_0007_params.npz", &c, false);
    let mut c = good();
    let root = c.get_mut("person_0_smplx_root_pose").unwrap();
    root.values = Values::RawNpy(pickled_object_npy());
    write_npz(d, "frame_0008_params.npz", &c, false);
    // A directory where a file should be: the read fails with an I/O error.
    fs::create_dir(d.join("frame_0009_params.npz")).unwrap();
    fs::write(d.join("frame_0010_params.npz"), b"").unwrap();
    let mut c = good();
    c.get_mut("person_0_smplx_lhand_pose").unwrap().values = Values::Text(vec!["oops".into()]);
    c.get_mut("person_0_smplx_lhand_pose").unwrap().shape = vec![];
    write_npz(d, "frame_0011_params.npz", &c, false);

    let sequence = open(d);
    let reasons: Vec<String> = (1..=12)
        .map(|n| {
            if n <= 11 {
                reason(&sequence, n)
            } else {
                String::new()
            }
        })
        .collect();
    assert_eq!(
        &reasons[..11],
        &[
            "valid",
            "no_person",
            "corrupt_npz",
            "missing_key:person_0_smplx_body_pose",
            "bad_shape:person_0_smplx_body_pose",
            "non_finite:person_0_cam_trans",
            "non_finite:person_0_smplx_jaw_pose",
            "bad_shape:person_0_smplx_root_pose",
            "unreadable",
            "corrupt_npz",
            "bad_shape:person_0_smplx_lhand_pose",
        ]
    );
    // Messages name the file and the problem.
    let error = read_frame(sequence.by_number(5).unwrap(), &ReadOptions::default()).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("frame_0005_params.npz") && message.contains("(60,)"),
        "{message}"
    );
    assert!(matches!(error, FrameError::BadShape { .. }));
}

#[test]
fn per_person_files_merge_into_frames_numbered_from_zero() {
    let dir = temp_dir();
    let d = dir.path();
    let unprefixed = |seed| frame_contents(KeyStyle::SmplxUnprefixed, &[person(seed)], false);
    write_npz(d, "hello_vid1_000000_p0.npz", &unprefixed(1), false);
    write_npz(d, "hello_vid1_000000_p1.npz", &unprefixed(2), true);
    write_npz(d, "hello_vid1_000012_p0.npz", &unprefixed(3), false);
    let sequence = open(d);
    assert_eq!(sequence.layout, Layout::PerPerson);
    assert_eq!(
        sequence.first_number, 0,
        "a file numbered 0 means 0-based numbering"
    );
    assert_eq!(sequence.len(), 13);
    assert_eq!(sequence.missing_numbers().len(), 11);
    let frame = read_frame(sequence.by_number(0).unwrap(), &ReadOptions::default()).unwrap();
    assert_eq!(frame.persons.len(), 2);
    assert_eq!(frame.persons[1].id, 1);
    let body = &person(2).body_pose;
    assert_eq!(
        frame.persons[1].pose[2],
        [body[3], body[4], body[5]],
        "(21, 3) body pose flattens"
    );
}

#[test]
fn smplerx_output_reads_api_names_and_camera_sidecars() {
    let dir = temp_dir();
    let root = dir.path();
    fs::create_dir_all(root.join("smplx")).unwrap();
    fs::create_dir_all(root.join("meta")).unwrap();
    let api = |seed| frame_contents(KeyStyle::SmplxApi, &[person(seed)], true);
    write_npz(&root.join("smplx"), "00001_0.npz", &api(1), false);
    write_npz(&root.join("smplx"), "00001_1.npz", &api(2), false);
    write_npz(&root.join("smplx"), "00002_0.npz", &api(3), false);
    fs::write(
        root.join("meta/00001_0.json"),
        r#"{"focal": [5000.0, 5000.0], "princpt": [320.5, 240.0], "bbox": [10, 20, 300, 400], "img_path": "x.jpg"}"#,
    )
    .unwrap();
    fs::write(root.join("meta/00001_1.json"), "{ not json").unwrap();
    let sequence = open(root);
    assert_eq!(sequence.layout, Layout::SmplerX);
    assert!(sequence.dir.ends_with("smplx"));
    assert_eq!(sequence.len(), 2);
    let frame = read_frame(sequence.frame(0).unwrap(), &ReadOptions::default()).unwrap();
    assert_eq!(frame.persons.len(), 2);
    let first = &frame.persons[0];
    assert_eq!(first.focal, Some([5000.0, 5000.0]));
    assert_eq!(first.princpt, Some([320.5, 240.0]));
    assert_eq!(first.bbox_xywh, Some([10.0, 20.0, 300.0, 400.0]));
    assert_eq!(
        first.cam_trans,
        Some(person(1).cam_trans),
        "transl is the camera translation"
    );
    assert_eq!(first.betas, person(1).betas, "(1, 10) betas flatten");
    assert_eq!(
        frame.persons[1].focal, None,
        "a broken sidecar is ignored, not fatal"
    );
}

#[test]
fn numbered_layout_and_random_bytes_in_frame_files() {
    let dir = temp_dir();
    let d = dir.path();
    let unprefixed = frame_contents(KeyStyle::SmplxUnprefixed, &[person(1)], false);
    write_npz(d, "clip_000001.npz", &unprefixed, false);
    let mut rng = Rng::new(3);
    for n in 2..40 {
        let bytes: Vec<u8> = (0..rng.index(400))
            .map(|_| (rng.unit() * 256.0) as u8)
            .collect();
        fs::write(d.join(format!("clip_{n:06}.npz")), bytes).unwrap();
    }
    let sequence = open(d);
    assert_eq!(sequence.layout, Layout::Numbered);
    assert_eq!(reason(&sequence, 1), "valid");
    for n in 2..40 {
        assert_eq!(reason(&sequence, n), "corrupt_npz", "frame {n}");
    }
}

#[test]
fn saved_vertices_are_read_when_asked_for() {
    let dir = temp_dir();
    let mut contents = frame_contents(KeyStyle::OsxPrefixed, &[person(1)], false);
    contents.push(
        "person_0_smplx_mesh_cam",
        &[1, 4, 3],
        Values::F32((0..12).map(|v| v as f32).collect()),
    );
    write_npz(dir.path(), "frame_0001_params.npz", &contents, false);
    let sequence = open(dir.path());
    let options = ReadOptions {
        saved_vertices: true,
        ..ReadOptions::default()
    };
    let frame = read_frame(sequence.frame(0).unwrap(), &options).unwrap();
    let saved = frame.persons[0].saved_vertices.as_ref().unwrap();
    assert_eq!(
        saved,
        &vec![
            [0.0, 1.0, 2.0],
            [3.0, 4.0, 5.0],
            [6.0, 7.0, 8.0],
            [9.0, 10.0, 11.0]
        ]
    );
}

#[test]
fn discovering_1800_frames_opens_no_file() {
    let dir = temp_dir();
    // Empty files would be corrupt if opened: discovery must only list names.
    for number in 1..=1800 {
        fs::write(
            dir.path().join(format!("frame_{number:04}_params.npz")),
            b"",
        )
        .unwrap();
    }
    let sequence = open(dir.path());
    assert_eq!(sequence.len(), 1800);
    assert!(sequence.missing_numbers().is_empty());
    assert!(sequence.ignored.is_empty());
}

#[test]
fn folders_without_frames_and_absurd_numbering_are_clear_errors() {
    let dir = temp_dir();
    let error = discover(dir.path(), &SequenceOptions::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("no frame files"), "{error}");
    let error = discover(&dir.path().join("nope"), &SequenceOptions::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("cannot list"), "{error}");
    fs::write(dir.path().join("frame_0001_params.npz"), b"").unwrap();
    fs::write(dir.path().join("frame_99999999_params.npz"), b"").unwrap();
    let error = discover(dir.path(), &SequenceOptions::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("more than"), "{error}");
}
