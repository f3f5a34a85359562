//! Writes `data-samples/mini`: a 2-second, 30 fps sequence of per-frame NPZ files in the OSX users' layout with
//! the faults real output has, and `manifest.json` saying which fault is where. Deterministic.
//!
//! `cargo run --example make_samples` regenerates it.

use std::collections::BTreeMap;
use std::f32::consts::PI;
use std::path::Path;

use meshreel::body::joints::joint_index;
use meshreel::synth::{Fault, KeyStyle, SynthPerson, frame_contents, write_frame_file};

const NUM_FRAMES: u32 = 60;

/// A person waving: arms lowered from the T-pose, the right forearm swinging, a slow turn of the body.
fn waving(frame: u32, shift_x: f32) -> SynthPerson {
    let t = frame as f32 / 30.0;
    let mut body = vec![0.0f32; 63];
    let mut set = |name: &str, r: [f32; 3]| {
        let j = joint_index(name).expect("SMPL-X joint name") - 1;
        body[3 * j..3 * j + 3].copy_from_slice(&r);
    };
    set("left_shoulder", [0.0, 0.0, -1.2]);
    set("right_shoulder", [0.0, 0.0, 0.3]);
    set("right_elbow", [0.0, 0.6 * (2.0 * PI * t).sin() - 1.0, 0.0]);
    set("left_elbow", [0.0, 0.3, 0.0]);
    set("left_knee", [0.15, 0.0, 0.0]);
    set("head", [0.1 * (PI * t).sin(), 0.2 * (PI * t).cos(), 0.0]);
    SynthPerson {
        // OSX's root pose includes the turn from the model frame (y up) to the camera frame (y down).
        root_pose: [PI, 0.3 * (0.5 * PI * t).sin(), 0.0],
        body_pose: body,
        lhand_pose: vec![0.0; 45],
        rhand_pose: vec![0.0; 45],
        jaw_pose: [0.1 * (4.0 * PI * t).sin().abs(), 0.0, 0.0],
        betas: vec![0.0; 10],
        expression: vec![0.0; 10],
        cam_trans: [shift_x, 0.35, 50.0],
        focal: [19_531.0, 19_531.0],
        princpt: [640.0, 360.0],
        bbox_xywh: [265.0, -140.0, 750.0, 1000.0],
    }
}

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data-samples/mini");
    let frames = root.join("frames");
    if frames.exists() {
        std::fs::remove_dir_all(&frames)?;
    }
    std::fs::create_dir_all(&frames)?;
    let mut faults: BTreeMap<u32, String> = BTreeMap::new();
    for number in 1..=NUM_FRAMES {
        let path = frames.join(format!("frame_{number:04}_params.npz"));
        let mut persons = vec![waving(number, 0.0)];
        if (40..=47).contains(&number) {
            persons.push(waving(number + 15, 1.2));
        }
        let float64 = number % 3 == 0;
        let compressed = number % 4 == 0;
        let contents = frame_contents(KeyStyle::OsxPrefixed, &persons, float64);
        let fault = match number {
            12 => Some(Fault::MissingFile),
            20..=22 => Some(Fault::NoPerson),
            30 => Some(Fault::Truncated),
            33 => Some(Fault::MissingKey("person_0_smplx_body_pose".into())),
            51 => Some(Fault::NotFinite("person_0_cam_trans".into())),
            _ => None,
        };
        if let Some(fault) = &fault {
            faults.insert(number, fault.reason());
        }
        write_frame_file(&path, contents, fault.as_ref(), compressed)?;
    }
    let manifest = serde_json::json!({
        "description": "meshreel sample: 60 frames at 30 fps in the OSX users' layout, stand-in motion, injected faults",
        "fps": 30,
        "num_frames": NUM_FRAMES,
        "first_frame_number": 1,
        "two_persons": "frames 40-47",
        "float64_frames": "every 3rd frame number",
        "compressed_frames": "every 4th frame number",
        "faults": faults,
        "regenerate": "cargo run --example make_samples",
    });
    std::fs::write(
        root.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)? + "\n",
    )?;
    println!("wrote {}", root.display());
    Ok(())
}
