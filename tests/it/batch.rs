//! The `render` batch end to end under EGL: fallbacks, the report, resume, shards and merge, same bytes as the
//! pipeline, and a golden image.

use std::path::Path;
use std::process::Command;

use meshreel::body::BodyModel;
use meshreel::encode::{ImageFormat, encode};
use meshreel::frames::{SequenceOptions, discover};
use meshreel::pipeline::{
    FallbackSettings, MeshSettings, RenderSettings, plan_frames, render_planned, scan,
};
use meshreel::render::OSX_LOOK;
use meshreel::render::camera::CameraOptions;
use meshreel::report::Report;
use meshreel::synth::{Rng, SynthPerson};

use crate::render::gl_or_skip;
use crate::support::{faulty_sequence, temp_dir, write_osx_frame};

const SIZE: &str = "160x120";

fn meshreel(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_meshreel"))
        .args(args)
        .env_remove("MESHREEL_MODEL")
        .output()
        .expect("run meshreel")
}

fn render(sequence: &Path, out: &Path, extra: &[&str]) -> Report {
    let mut args = vec![
        "render",
        sequence.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--size",
        SIZE,
    ];
    if !extra.contains(&"--renderer") {
        args.extend_from_slice(&["--renderer", "gl"]);
    }
    args.extend_from_slice(extra);
    let output = meshreel(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let name = if extra.contains(&"--shard") {
        None
    } else {
        Some("render_report.json")
    };
    let path = match name {
        Some(name) => out.join(name),
        None => {
            let shard = extra[extra.iter().position(|a| *a == "--shard").unwrap() + 1];
            let (k, n) = shard.split_once('/').unwrap();
            out.join(format!("render_report.shard-{k}-of-{n}.json"))
        }
    };
    Report::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn statuses(report: &Report) -> Vec<(u32, String, Option<String>, Option<u32>)> {
    report
        .frames
        .iter()
        .map(|f| {
            (
                f.number,
                format!("{:?}", f.status),
                f.reason.clone(),
                f.source_frame,
            )
        })
        .collect()
}

#[test]
fn every_frame_gets_an_image_and_an_honest_record() {
    if gl_or_skip().is_none() {
        return;
    }
    let dir = temp_dir();
    let sequence = faulty_sequence(dir.path());
    let out = dir.path().join("out");
    let report = render(&sequence, &out, &["--max-hold", "1"]);
    let images = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "png")
        })
        .count();
    assert_eq!(images, 12, "one image per input frame, gaps included");
    assert_eq!(report.counts.total, 12);
    assert_eq!(
        (
            report.counts.ok,
            report.counts.fallback,
            report.counts.placeholder
        ),
        (6, 2, 4)
    );
    let s = statuses(&report);
    assert_eq!(
        s[2],
        (3, "Fallback".into(), Some("no_person".into()), Some(2))
    );
    assert_eq!(
        s[3],
        (4, "Placeholder".into(), Some("missing_file".into()), None),
        "frame 4 is two frames after the last valid one: over a hold of 1"
    );
    assert_eq!(s[4].1, "Placeholder");
    assert_eq!(
        s[8],
        (9, "Fallback".into(), Some("no_person".into()), Some(8))
    );
    assert_eq!(s[9].1, "Placeholder");
    assert_eq!(report.reasons.get("no_person"), Some(&4));
    assert_eq!(report.reasons.get("corrupt_npz"), Some(&1));
    assert_eq!(report.reasons.get("missing_file"), Some(&1));
    assert_eq!(report.inputs.missing_numbers, vec![4]);
    assert_eq!(report.inputs.model.kind, "stand_in");
    assert!(report.environment.renderer.contains("OpenGL"));
    // The report validates against the documented schema.
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/render_report.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("render_report.json")).unwrap())
            .unwrap();
    assert!(jsonschema::is_valid(&schema, &document));

    // A placeholder is transparent but for its badge in the top-left corner.
    let placeholder = decode(&std::fs::read(out.join("frame_0004.png")).unwrap());
    let alpha = |x: u32, y: u32| placeholder.2[((y * placeholder.0 + x) * 4 + 3) as usize];
    assert!(alpha(10, 10) > 0, "the badge");
    assert_eq!(alpha(150, 110), 0, "transparent elsewhere");

    // Skip writes nothing for invalid frames; WebP is lossless RIFF/WEBP.
    let skip_out = dir.path().join("skip");
    let skipped = render(
        &sequence,
        &skip_out,
        &["--fallback", "skip", "--format", "webp"],
    );
    let webp = std::fs::read(skip_out.join("frame_0002.webp")).unwrap();
    assert!(webp.starts_with(b"RIFF") && &webp[8..12] == b"WEBP");
    assert_eq!(skipped.counts.skipped, 6);
    assert!(!skip_out.join("frame_0003.webp").exists());
}

#[test]
fn resume_keeps_complete_images_and_redoes_the_rest_identically() {
    if gl_or_skip().is_none() {
        return;
    }
    let dir = temp_dir();
    let sequence = faulty_sequence(dir.path());
    let out = dir.path().join("out");
    render(&sequence, &out, &[]);
    let original = std::fs::read(out.join("frame_0007.png")).unwrap();
    // An interrupted run: one image missing, one cut short.
    std::fs::remove_file(out.join("frame_0007.png")).unwrap();
    let eight = std::fs::read(out.join("frame_0008.png")).unwrap();
    std::fs::write(out.join("frame_0008.png"), &eight[..eight.len() / 2]).unwrap();
    let report = render(&sequence, &out, &["--resume"]);
    assert_eq!(
        report.counts.total, 12,
        "the final report covers all frames"
    );
    assert_eq!(report.frames.iter().filter(|f| f.resumed).count(), 10);
    assert_eq!(std::fs::read(out.join("frame_0007.png")).unwrap(), original);
    assert_eq!(std::fs::read(out.join("frame_0008.png")).unwrap(), eight);
    assert!(!report.interrupted);
}

#[test]
fn resume_keeps_nothing_drawn_another_way() {
    let dir = temp_dir();
    let sequence = faulty_sequence(dir.path());
    let out = dir.path().join("out");
    let first = render(&sequence, &out, &["--renderer", "cpu"]);
    assert_eq!(first.environment.backend, "cpu");
    let same = render(&sequence, &out, &["--renderer", "cpu", "--resume"]);
    assert_eq!(same.frames.iter().filter(|f| f.resumed).count(), 12);
    // Another fallback rule changes what frames show: nothing is kept.
    let changed = render(
        &sequence,
        &out,
        &["--renderer", "cpu", "--resume", "--max-hold", "1"],
    );
    assert_eq!(changed.frames.iter().filter(|f| f.resumed).count(), 0);
    assert_eq!(changed.counts.total, 12);
}

#[test]
fn shards_merged_equal_one_run_and_the_same_bytes() {
    if gl_or_skip().is_none() {
        return;
    }
    let dir = temp_dir();
    let sequence = faulty_sequence(dir.path());
    let whole = render(&sequence, &dir.path().join("whole"), &[]);
    let sharded = dir.path().join("sharded");
    let first = render(&sequence, &sharded, &["--shard", "0/2"]);
    let second = render(&sequence, &sharded, &["--shard", "1/2"]);
    assert_eq!(first.counts.total + second.counts.total, 12);
    let output = meshreel(&[
        "merge-reports",
        sharded
            .join("render_report.shard-0-of-2.json")
            .to_str()
            .unwrap(),
        sharded
            .join("render_report.shard-1-of-2.json")
            .to_str()
            .unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let merged =
        Report::from_json(&std::fs::read_to_string(sharded.join("render_report.json")).unwrap())
            .unwrap();
    assert_eq!(merged.counts, whole.counts);
    assert_eq!(merged.reasons, whole.reasons);
    assert_eq!(statuses(&merged), statuses(&whole));
    for n in 1..=12 {
        let name = format!("frame_{n:04}.png");
        assert_eq!(
            std::fs::read(sharded.join(&name)).unwrap(),
            std::fs::read(dir.path().join("whole").join(&name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn batch_bytes_equal_pipeline_bytes() {
    let Some(gl) = gl_or_skip() else { return };
    let dir = temp_dir();
    let sequence_dir = faulty_sequence(dir.path());
    let out = dir.path().join("out");
    render(&sequence_dir, &out, &[]);
    let sequence = discover(&sequence_dir, &SequenceOptions::default()).unwrap();
    let model = BodyModel::stand_in();
    let scan = scan(&sequence, 2);
    let plan = plan_frames(&scan.validity, &FallbackSettings::default());
    let settings = RenderSettings {
        size: (160, 120),
        camera: CameraOptions::default(),
        look: OSX_LOOK,
        mesh: MeshSettings::default(),
    };
    for index in [0, 2, 6] {
        let output = render_planned(&model, &sequence, &plan, index, &settings, &gl);
        let bytes = encode(&output.image.unwrap(), ImageFormat::Png).unwrap();
        let name = format!("frame_{:04}.png", sequence.frames[index].number);
        assert_eq!(bytes, std::fs::read(out.join(name)).unwrap());
    }
}

/// Decodes a PNG to RGBA.
fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    pixels.truncate(info.buffer_size());
    (info.width, info.height, pixels)
}

#[test]
fn golden_image_matches_within_tolerance() {
    let Some(gl) = gl_or_skip() else { return };
    let dir = temp_dir();
    let sequence_dir = faulty_sequence(dir.path());
    let sequence = discover(&sequence_dir, &SequenceOptions::default()).unwrap();
    let scan = scan(&sequence, 2);
    let plan = plan_frames(&scan.validity, &FallbackSettings::default());
    let settings = RenderSettings {
        size: (160, 120),
        camera: CameraOptions::default(),
        look: OSX_LOOK,
        mesh: MeshSettings::default(),
    };
    let image = render_planned(&BodyModel::stand_in(), &sequence, &plan, 0, &settings, &gl)
        .image
        .unwrap();
    let golden_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/stand_in_frame_0001.png");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(golden_path.parent().unwrap()).unwrap();
        std::fs::write(&golden_path, encode(&image, ImageFormat::Png).unwrap()).unwrap();
    }
    let (width, height, golden) =
        decode(&std::fs::read(&golden_path).expect("golden image (UPDATE_SNAPSHOTS=1 makes it)"));
    assert_eq!((width, height), (image.width, image.height));
    let differing = golden
        .chunks_exact(4)
        .zip(image.pixels.chunks_exact(4))
        .filter(|(a, b)| a.iter().zip(b.iter()).any(|(x, y)| x.abs_diff(*y) > 2))
        .count();
    let covered = image.pixels.chunks_exact(4).filter(|p| p[3] > 0).count();
    assert!(covered > 500, "the body is in view ({covered} pixels)");
    assert!(
        differing * 200 <= covered,
        "{differing} of {covered} pixels differ from the golden image"
    );
}

#[test]
fn look_options_change_the_pixels_as_documented() {
    if gl_or_skip().is_none() {
        return;
    }
    let dir = temp_dir();
    let sequence = faulty_sequence(dir.path());
    let out = dir.path().join("look");
    render(
        &sequence,
        &out,
        &[
            "--background",
            "#102030",
            "--opacity",
            "0.5",
            "--colour",
            "1,0,0",
        ],
    );
    let (width, height, pixels) = decode(&std::fs::read(out.join("frame_0001.png")).unwrap());
    assert_eq!(
        &pixels[..4],
        &[16, 32, 48, 255],
        "the corner shows the background"
    );
    assert!(
        pixels.chunks_exact(4).all(|p| p[3] == 255),
        "composited images are opaque"
    );
    // Half-transparent red over the background: red rises, green and blue fall to half the background's.
    let body: Vec<&[u8]> = pixels.chunks_exact(4).filter(|p| p[0] > 60).collect();
    assert!(
        body.len() > 200 && body.iter().all(|p| p[1] <= 17 && p[2] <= 25),
        "{width}x{height}"
    );
}

#[test]
fn doctor_reports_the_renderer_and_the_model() {
    if gl_or_skip().is_none() {
        return;
    }
    let output = meshreel(&["doctor"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "EGL devices:",
        "GL backend:",
        "CPU backend:",
        "--renderer auto uses:",
        "OpenGL",
        "model: built-in stand-in body (not SMPL-X)",
        "test render 720x720",
        "ready to render",
    ] {
        assert!(stdout.contains(expected), "{expected} in {stdout}");
    }
}

#[test]
fn ctrl_c_leaves_complete_images_and_a_consistent_report() {
    if gl_or_skip().is_none() {
        return;
    }
    let dir = temp_dir();
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    let mut rng = Rng::new(4);
    for n in 1..=800 {
        write_osx_frame(&frames, n, &[SynthPerson::random(&mut rng, 0.2)]);
    }
    let out = dir.path().join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshreel"))
        .args([
            "render",
            frames.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--size",
            "640x480",
        ])
        .env_remove("MESHREEL_MODEL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until rendering has begun, then press Ctrl-C.
    let started = std::time::Instant::now();
    while !out.join("frame_0001.png").exists() && started.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let report =
        Report::from_json(&std::fs::read_to_string(out.join("render_report.json")).unwrap())
            .unwrap();
    assert!(
        report.interrupted,
        "the run was stopped before its 800 frames"
    );
    assert_eq!(status.code(), Some(1));
    assert!(report.frames.len() < 800);
    for frame in &report.frames {
        let path = out.join(frame.output.as_ref().unwrap());
        assert!(
            meshreel::batch::is_complete(&path, ImageFormat::Png),
            "{}",
            path.display()
        );
    }
    let partial = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".partial")
        })
        .count();
    assert_eq!(partial, 0, "no half-written files");
}

#[test]
fn the_cpu_backend_renders_a_batch_without_egl_and_matches_gl() {
    let dir = temp_dir();
    let sequence = faulty_sequence(dir.path());
    let cpu = render(&sequence, &dir.path().join("cpu"), &["--renderer", "cpu"]);
    assert_eq!((cpu.counts.total, cpu.counts.ok), (12, 6));
    assert!(
        cpu.environment.renderer.contains("CPU rasterizer"),
        "the report names the backend"
    );
    if gl_or_skip().is_none() {
        return;
    }
    let gl = render(&sequence, &dir.path().join("gl"), &[]);
    assert_eq!(statuses(&cpu), statuses(&gl));
    for n in [1, 2, 6] {
        let name = format!("frame_{n:04}.png");
        let a = decode(&std::fs::read(dir.path().join("cpu").join(&name)).unwrap()).2;
        let b = decode(&std::fs::read(dir.path().join("gl").join(&name)).unwrap()).2;
        let differing = a
            .chunks_exact(4)
            .zip(b.chunks_exact(4))
            .filter(|(x, y)| x != y)
            .count();
        assert!(
            differing <= 3,
            "{name}: {differing} pixels differ between the CPU and GL backends"
        );
    }
}
