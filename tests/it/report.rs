//! The render report against its published schema (`docs/render_report.schema.json`): a realistic report passes,
//! broken ones fail, and a report reads back as written.

use std::path::Path;

use meshreel::report::{
    Environment, FrameRecord, FrameStatus, Inputs, ModelInfo, Report, Settings, Shard, StageMs,
};
use serde_json::Value;

fn schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/render_report.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn frame(number: u32, status: FrameStatus) -> FrameRecord {
    let drawn = matches!(status, FrameStatus::Ok | FrameStatus::Fallback);
    let written = !matches!(status, FrameStatus::Skipped | FrameStatus::RenderError);
    FrameRecord {
        number,
        video_index: (number - 1) as usize,
        input_files: vec![format!("frame_{number:04}_params.npz")],
        status,
        reason: None,
        source_frame: None,
        persons: u32::from(drawn),
        output: written.then(|| format!("frame_{number:04}.png")),
        resumed: false,
        ms: 4.25,
        stage_ms: StageMs {
            read: 0.05,
            forward: 2.1,
            render: 1.3,
            encode: 0.6,
            write: 0.1,
        },
    }
}

/// Eight frames of a real-looking run: ok, resumed, fallbacks with a source, a missing file, a placeholder,
/// a render error with a free-text reason; a real model with a checksum and a warning.
fn realistic_report() -> Report {
    let inputs = Inputs {
        sequence: "data-samples/mini/frames".into(),
        layout: "frame_NNNN_params.npz".into(),
        num_frames: 8,
        first_frame_number: 1,
        last_frame_number: 8,
        missing_numbers: vec![5],
        model: ModelInfo {
            kind: "smplx".into(),
            path: Some("models/SMPLX_NEUTRAL.npz".into()),
            sha256: Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into()),
            variant: Some("neutral".into()),
            description: "SMPL-X neutral, 10475 vertices".into(),
            warnings: vec!["the model has 300 shape components; frames use 10".into()],
        },
        hand_mean: true,
        mesh_source: "auto".into(),
    };
    let settings = Settings {
        width: 720,
        height: 720,
        fallback: "last-valid".into(),
        max_hold: 30,
        format: "png".into(),
        shard: Shard { index: 0, count: 1 },
    };
    let environment = Environment {
        backend: "gl".into(),
        renderer: "llvmpipe (LLVM 15.0.6, 256 bits), OpenGL 4.5".into(),
        threads: 2,
    };
    let mut report = Report::new(inputs, settings, environment);

    let mut resumed = frame(2, FrameStatus::Ok);
    resumed.resumed = true;
    resumed.ms = 0.0;
    resumed.stage_ms = StageMs::default();
    let mut no_person = frame(4, FrameStatus::Fallback);
    no_person.reason = Some("no_person".into());
    no_person.source_frame = Some(3);
    let mut missing = frame(5, FrameStatus::Fallback);
    missing.input_files = vec![];
    missing.reason = Some("missing_file".into());
    missing.source_frame = Some(3);
    missing.stage_ms.read = 0.0;
    let mut bad_key = frame(6, FrameStatus::Placeholder);
    bad_key.reason = Some("missing_key:person_0_smplx_body_pose".into());
    let mut render_error = frame(7, FrameStatus::RenderError);
    render_error.reason = Some("GL error 0x0505 (out of memory) while drawing".into());
    report.frames = vec![
        frame(8, FrameStatus::Ok),
        frame(1, FrameStatus::Ok),
        resumed,
        frame(3, FrameStatus::Ok),
        no_person,
        missing,
        bad_key,
        render_error,
    ];
    report.summarize(0.25);
    report
}

fn report_value() -> Value {
    serde_json::from_str(&realistic_report().to_json()).unwrap()
}

#[test]
fn a_realistic_report_satisfies_the_published_schema() {
    let validator = jsonschema::validator_for(&schema()).unwrap();
    let instance = report_value();
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect();
    assert!(errors.is_empty(), "schema errors: {errors:#?}");
}

#[test]
fn the_schema_rejects_a_misspelled_status() {
    let validator = jsonschema::validator_for(&schema()).unwrap();
    let mut instance = report_value();
    instance["frames"][0]["status"] = Value::from("okay");
    assert!(!validator.is_valid(&instance));
}

#[test]
fn the_schema_rejects_a_missing_field() {
    let validator = jsonschema::validator_for(&schema()).unwrap();
    let mut instance = report_value();
    instance["frames"][3]
        .as_object_mut()
        .unwrap()
        .remove("source_frame");
    assert!(!validator.is_valid(&instance));
    let mut instance = report_value();
    instance["timings"]
        .as_object_mut()
        .unwrap()
        .remove("frames_per_sec");
    assert!(!validator.is_valid(&instance));
}

#[test]
fn the_schema_rejects_an_unknown_field() {
    let validator = jsonschema::validator_for(&schema()).unwrap();
    let mut instance = report_value();
    instance["counts"]["okay"] = Value::from(1);
    assert!(!validator.is_valid(&instance));
}

#[test]
fn a_report_reads_back_as_written() {
    let report = realistic_report();
    assert_eq!(report.counts.render_error, 1);
    assert_eq!(report.reasons["missing_file"], 1);
    assert_eq!(Report::from_json(&report.to_json()).unwrap(), report);
}
