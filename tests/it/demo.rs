//! The committed demo (`data-samples/demo`): its files are what the generator writes, its video carries every
//! frame's code and shows what the generator draws, and meshreel's check and render agree with its manifest —
//! with the overlay on the actor.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use meshreel::demo::{self, Demo, HEIGHT, MANIFEST_FILE, VIDEO_FILE, WIDTH};
use serde_json::Value;

use crate::support::temp_dir;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data-samples/demo")
}

/// The generator's ground truth, computed once for all tests.
fn generator() -> &'static Demo {
    static DEMO: OnceLock<Demo> = OnceLock::new();
    DEMO.get_or_init(Demo::new)
}

fn manifest() -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join(MANIFEST_FILE)).unwrap()).unwrap()
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn meshreel(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let output = Command::new(env!("CARGO_BIN_EXE_meshreel"))
        .args(args)
        .env_remove("MESHREEL_MODEL")
        .output()
        .expect("run meshreel");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn the_committed_demo_is_what_the_generator_writes() {
    let dir = temp_dir();
    generator().write_files(dir.path()).unwrap();
    let (written, committed) = (dir.path().join("frames"), root().join("frames"));
    let names = file_names(&written);
    assert_eq!(
        names,
        file_names(&committed),
        "the frame files differ: rerun {}",
        demo::REGENERATE
    );
    assert_eq!(names.len(), 299, "300 frames, one of them missing");
    for name in &names {
        assert!(
            std::fs::read(written.join(name)).unwrap()
                == std::fs::read(committed.join(name)).unwrap(),
            "{name} differs from what the generator writes: rerun {}",
            demo::REGENERATE
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join(MANIFEST_FILE)).unwrap(),
        std::fs::read_to_string(root().join(MANIFEST_FILE)).unwrap(),
        "the manifest differs: rerun {}",
        demo::REGENERATE
    );
}

#[test]
fn the_demo_folder_stays_small() {
    let mut total = 0;
    for dir in [root(), root().join("frames")] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let metadata = entry.unwrap().metadata().unwrap();
            if metadata.is_file() {
                total += metadata.len();
            }
        }
    }
    assert!(total < 5 << 20, "data-samples/demo holds {total} bytes");
}

/// The top-level boxes of an MP4 file: (type, size).
fn mp4_boxes(bytes: &[u8]) -> Vec<(String, u64)> {
    let mut boxes = Vec::new();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let mut size = u64::from(u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()));
        let kind = String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned();
        if size == 1 {
            size = u64::from_be_bytes(bytes[at + 8..at + 16].try_into().unwrap());
        }
        assert!(size >= 8, "box {kind} at {at} has size {size}");
        boxes.push((kind, size));
        at += size as usize;
    }
    assert_eq!(at, bytes.len(), "the boxes span the file exactly");
    boxes
}

#[test]
fn the_demo_video_is_an_mp4_with_its_index_first() {
    let bytes = std::fs::read(root().join(VIDEO_FILE)).unwrap();
    assert!(
        (50_000..4_000_000).contains(&bytes.len()),
        "{} bytes",
        bytes.len()
    );
    let kinds: Vec<String> = mp4_boxes(&bytes).into_iter().map(|(k, _)| k).collect();
    let position = |kind: &str| kinds.iter().position(|k| k == kind);
    assert_eq!(position("ftyp"), Some(0), "{kinds:?}");
    let (moov, mdat) = (position("moov").unwrap(), position("mdat").unwrap());
    assert!(
        moov < mdat,
        "faststart: the index comes before the media data ({kinds:?})"
    );
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("avc1") && text.contains("avcC"), "H.264");
}

/// The video decoded to RGBA frames by ffmpeg, or `None` (with the reason printed) when ffmpeg is missing
/// outside CI. In CI a missing ffmpeg fails the test.
fn decoded_video() -> Option<Vec<Vec<u8>>> {
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(root().join(VIDEO_FILE))
        .args(["-f", "rawvideo", "-pix_fmt", "rgba", "-"])
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) if std::env::var_os("CI").is_none() => {
            eprintln!("skipping the video decode check: cannot run ffmpeg ({error})");
            return None;
        }
        Err(error) => panic!("ffmpeg must be installed in CI: {error}"),
    };
    let mut raw = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut raw).unwrap();
    assert!(child.wait().unwrap().success(), "ffmpeg decodes the video");
    let frame_bytes = (WIDTH * HEIGHT * 4) as usize;
    assert_eq!(raw.len() % frame_bytes, 0);
    Some(raw.chunks_exact(frame_bytes).map(<[u8]>::to_vec).collect())
}

#[test]
fn every_decoded_video_frame_carries_its_code_and_shows_what_the_generator_draws() {
    let Some(frames) = decoded_video() else {
        return;
    };
    assert_eq!(frames.len(), demo::NUM_FRAMES as usize);
    for (index, frame) in frames.iter().enumerate() {
        assert_eq!(
            demo::read_frame_code(frame, WIDTH, HEIGHT),
            Some(index as u32),
            "decoded frame {index}"
        );
    }
    // The video is not stale: decoded frames match the generator's frames up to compression.
    for index in (0..frames.len()).step_by(23) {
        let drawn = generator().video_frame(index);
        let total: u64 = frames[index]
            .iter()
            .zip(&drawn.pixels)
            .map(|(a, b)| u64::from(a.abs_diff(*b)))
            .sum();
        let mean = total as f64 / frames[index].len() as f64;
        assert!(
            mean < 2.0,
            "frame {index}: mean difference {mean:.2} from the generator's; rerun {}",
            demo::REGENERATE
        );
    }
}

/// The manifest's faults as check's JSON lists them: frame numbers by reason.
fn faults_by_reason(manifest: &Value) -> BTreeMap<String, Vec<u64>> {
    let mut expected: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (number, reason) in manifest["faults"].as_object().unwrap() {
        expected
            .entry(reason.as_str().unwrap().to_string())
            .or_default()
            .push(number.parse().unwrap());
    }
    for numbers in expected.values_mut() {
        numbers.sort();
    }
    expected
}

#[test]
fn check_agrees_with_the_demo_manifest() {
    let manifest = manifest();
    let output = meshreel(&["check".as_ref(), root().as_os_str(), "--json".as_ref()]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["num_frames"], manifest["num_frames"]);
    let found: BTreeMap<String, Vec<u64>> =
        serde_json::from_value(report["invalid"].clone()).unwrap();
    assert_eq!(found, faults_by_reason(&manifest));
    assert_eq!(report["multi_person"], manifest["two_person_frames"]);
    let no_person = found["no_person"].len() as f64 / 300.0;
    assert!((0.08..0.15).contains(&no_person), "{no_person}");
}

fn decode_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut reader = png::Decoder::new(file).read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    pixels.truncate(info.buffer_size());
    (info.width, info.height, pixels)
}

/// Renders a sequence with `meshreel render --renderer cpu` into `out` and returns its report.
fn render(sequence: &Path, out: &Path) -> Value {
    meshreel(&[
        "render".as_ref(),
        sequence.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--renderer".as_ref(),
        "cpu".as_ref(),
    ]);
    serde_json::from_str(&std::fs::read_to_string(out.join("render_report.json")).unwrap()).unwrap()
}

/// How well meshreel's overlay of frame `number` (any pixel drawn) matches the people the frame files hold
/// (pixels at least half covered): intersection over union.
fn overlay_iou(out: &Path, number: u64) -> f64 {
    let (width, height, overlay) = decode_png(&out.join(format!("frame_{number:04}.png")));
    assert_eq!((width, height), (WIDTH, HEIGHT));
    let people = generator().people(number as usize - 1, true);
    let (mut both, mut either) = (0u32, 0u32);
    for (o, p) in overlay.chunks_exact(4).zip(people.pixels.chunks_exact(4)) {
        let (in_overlay, in_people) = (o[3] > 0, p[3] >= 128);
        both += u32::from(in_overlay && in_people);
        either += u32::from(in_overlay || in_people);
    }
    f64::from(both) / f64::from(either)
}

#[test]
fn render_agrees_with_the_demo_manifest_and_the_overlay_lies_on_the_people() {
    let manifest = manifest();
    let expected = &manifest["expected_render"];
    let dir = temp_dir();
    let out = dir.path().join("out");
    let report = render(&root(), &out);
    for status in ["ok", "fallback", "placeholder", "skipped", "render_error"] {
        assert_eq!(
            report["counts"][status], expected["counts"][status],
            "{status}"
        );
    }
    let faults = manifest["faults"].as_object().unwrap();
    let mut ok_numbers = Vec::new();
    for frame in report["frames"].as_array().unwrap() {
        let number = frame["number"].as_u64().unwrap();
        let key = number.to_string();
        match frame["status"].as_str().unwrap() {
            "ok" => {
                assert!(!faults.contains_key(&key), "frame {number}");
                ok_numbers.push(number);
            }
            "fallback" => {
                assert_eq!(frame["reason"], faults[&key], "frame {number}");
                assert_eq!(
                    frame["source_frame"], expected["fallback_source"][&key],
                    "frame {number}"
                );
            }
            "placeholder" => {
                assert_eq!(frame["reason"], faults[&key], "frame {number}");
                let placeholders = expected["placeholder_frames"].as_array().unwrap();
                assert!(placeholders.contains(&number.into()), "frame {number}");
            }
            other => panic!("frame {number}: {other}"),
        }
    }
    // The files carry noise (a pixel or two at the limbs), so thin arms and legs overlap only in part.
    for &number in ok_numbers.iter().step_by(13) {
        let iou = overlay_iou(&out, number);
        assert!(iou > 0.8, "frame {number}: overlay/people IoU {iou:.3}");
    }
}

#[test]
fn without_noise_the_overlay_covers_the_people_pixel_for_pixel() {
    let dir = temp_dir();
    generator().write_noise_free_frames(dir.path()).unwrap();
    let out = dir.path().join("out");
    let report = render(dir.path(), &out);
    let mut checked = 0;
    for frame in report["frames"].as_array().unwrap() {
        let number = frame["number"].as_u64().unwrap();
        if frame["status"] != "ok" || number % 7 != 0 {
            continue;
        }
        // meshreel samples each pixel at its centre, the video at four points around it: they may differ only
        // where the video's pixel is partly covered (its anti-aliased edge).
        let overlay = decode_png(&out.join(format!("frame_{number:04}.png"))).2;
        let people = generator().people(number as usize - 1, true);
        let (mut area, mut wrong) = (0u32, 0u32);
        for (o, p) in overlay.chunks_exact(4).zip(people.pixels.chunks_exact(4)) {
            area += u32::from(p[3] == 255);
            wrong += u32::from((p[3] == 255 && o[3] == 0) || (p[3] == 0 && o[3] > 0));
        }
        assert!(
            wrong * 1000 <= area,
            "frame {number}: {wrong} pixels of {area} disagree away from the edges"
        );
        checked += 1;
    }
    assert!(checked > 30);
}
