//! The demo sequence (`data-samples/demo`): a 10 s, 30 fps video of the stand-in body as an actor moving
//! naturally, the per-frame parameter files a recovery model would have written for it (ground truth plus small
//! noise, with realistic faults) and a manifest saying what was injected where. Every video frame carries its
//! frame code in the video's layout of [`crate::frame_code`], which makes it say which frame it is.
//!
//! Deterministic: `cargo run --release --example make_demo` rewrites the folder (the video needs ffmpeg; this
//! module only draws its frames), and a test checks that the committed files are what this module writes.

use std::collections::BTreeMap;
use std::f64::consts::{FRAC_PI_2, PI, TAU};
use std::io;
use std::path::Path;

use nalgebra::{UnitQuaternion, Vector3};

use crate::body::joints::joint_index;
use crate::body::{BodyModel, BodyParams, ForwardOptions};
use crate::frame_code::CodeLayout;
use crate::pipeline::{DEFAULT_MAX_HOLD, FallbackSettings, Plan, plan_frames};
use crate::render::camera::{Intrinsics, intrinsics_from_bbox};
use crate::render::cpu::render_cpu;
use crate::render::{Look, PersonView, RgbaImage, draw_badge_at, prepare};
use crate::synth::{Fault, KeyStyle, Rng, SynthPerson, Values, frame_contents, write_frame_file};

pub const WIDTH: u32 = 640;
pub const HEIGHT: u32 = 480;
pub const FPS: u32 = 30;
pub const NUM_FRAMES: u32 = 300;
/// The command that rewrites `data-samples/demo`.
pub const REGENERATE: &str = "cargo run --release --example make_demo";
pub const VIDEO_FILE: &str = "video.mp4";
pub const MANIFEST_FILE: &str = "manifest.json";

// ---------------------------------------------------------------------------------------------------------------
// The frame code: the video's layout of [`crate::frame_code`].

pub use crate::frame_code::CODE_BITS;
/// Rows of the grey strip holding the code, on the 640×480 reference.
pub const CODE_STRIP_ROWS: u32 = CodeLayout::VIDEO.strip_end;

/// The value the frame code of video frame `index` (0-based) holds.
pub fn frame_code(index: u32) -> u32 {
    crate::frame_code::value(index)
}

/// Draws the code of video frame `index` over the top of the image: the grey strip and its 12 block pairs.
pub fn draw_frame_code(image: &mut RgbaImage, index: u32) {
    crate::frame_code::draw(image, index, &CodeLayout::VIDEO);
}

/// Reads the video's frame code from RGBA pixels (rows top to bottom) of a `width`×`height` image: the 0-based
/// video frame index modulo 4096, or `None` when the image carries no readable code. How a bit is read:
/// [`crate::frame_code::read`]; the player in the browser reads the code the same way.
pub fn read_frame_code(rgba: &[u8], width: u32, height: u32) -> Option<u32> {
    crate::frame_code::read(rgba, width, height, &CodeLayout::VIDEO)
}

// ---------------------------------------------------------------------------------------------------------------
// The scene: a camera, a backdrop, and two people.

/// The video's camera: a long lens, like OSX's virtual camera, centred on the image. Each person's own camera
/// (from the box around them, as OSX derives it) reproduces this view, see [`Shot`].
const VIDEO_FOCAL: f64 = 8000.0;
const VIDEO_CENTRE: [f64; 2] = [WIDTH as f64 / 2.0, HEIGHT as f64 / 2.0];
/// The floor lies this far below the optical axis (metres), the wall this far away.
const FLOOR_BELOW: f64 = 1.25;
const WALL_DEPTH: f64 = 100.0;
/// The actor stands at the centre, 180 pixels per metre away, soles on row 465.
const ACTOR_DEPTH: f64 = VIDEO_FOCAL / 180.0;
const ACTOR_U: f64 = 320.0;
/// The passer-by walks across behind the actor, 125 pixels per metre away.
const PASSER_DEPTH: f64 = VIDEO_FOCAL / 125.0;
/// Video frames the passer-by crosses the image in: pelvis from x = 720 (off the right edge) to x = -80.
const PASSER_FIRST_INDEX: usize = 170;
const PASSER_LAST_INDEX: usize = 290;
const PASSER_START_U: f64 = 720.0;
const PASSER_END_U: f64 = -80.0;
/// The detector finds the passer-by while the pelvis is this far inside the image.
const PASSER_DETECTION_MARGIN: f64 = 40.0;

const ACTOR_BETAS: [f32; 2] = [0.4, 0.2];
const PASSER_BETAS: [f32; 2] = [-0.6, -0.3];
/// The actors' looks: smooth-shaded clay and sage, unlike meshreel's flat cream overlay.
const ACTOR_COLOUR: [f32; 3] = [0.86, 0.52, 0.36];
const PASSER_COLOUR: [f32; 3] = [0.45, 0.68, 0.50];
const ACTOR_LOOK: Look = Look {
    colour: ACTOR_COLOUR,
    opacity: 1.0,
    smooth: true,
    background: None,
};

/// The frame-number label in the bottom-left corner.
const LABEL_SCALE: u32 = 2;
const LABEL_ORIGIN: (u32, u32) = (8, HEIGHT - 36);

const SEED: u64 = 0x5eed_de30;

/// Who a person is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Actor,
    PasserBy,
}

/// One person in one video frame: the true parameters, including the camera meshreel will derive (focal and
/// principal point from OSX's processed box around the body, `cam_trans` in that camera), so that meshreel,
/// reading these parameters, draws the body exactly where the video shows it.
#[derive(Clone, Debug)]
struct Shot {
    role: Role,
    truth: SynthPerson,
    /// Whether the "detector" found this person (the frame files hold only detected persons).
    detected: bool,
    /// Where the pelvis stands in the video (pixels) and how far away (metres, video camera).
    pelvis_px: [f64; 2],
    depth: f64,
}

/// The demo: the ground truth of every frame, computed once.
pub struct Demo {
    model: BodyModel,
    shots: Vec<Vec<Shot>>,
    backdrop: RgbaImage,
}

impl Default for Demo {
    fn default() -> Self {
        Demo::new()
    }
}

impl Demo {
    pub fn new() -> Demo {
        let model = BodyModel::stand_in();
        let shots = (0..NUM_FRAMES as usize)
            .map(|index| frame_shots(&model, index))
            .collect();
        Demo {
            model,
            shots,
            backdrop: backdrop(),
        }
    }

    pub fn num_frames(&self) -> usize {
        self.shots.len()
    }

    /// Writes `frames/frame_0001_params.npz` … (faults injected) and `manifest.json` under `root`. The video is
    /// written by the example, which needs ffmpeg.
    pub fn write_files(&self, root: &Path) -> io::Result<()> {
        self.write_frames(root, true)?;
        let text = serde_json::to_string_pretty(&self.manifest()).map_err(io::Error::other)?;
        std::fs::write(root.join(MANIFEST_FILE), text + "\n")
    }

    /// Writes the frame files as [`Demo::write_files`] does but with the exact truth, no noise: meshreel's
    /// overlay of these covers the people of the video pixel for pixel (tests check the camera chain with it).
    pub fn write_noise_free_frames(&self, root: &Path) -> io::Result<()> {
        self.write_frames(root, false)
    }

    fn write_frames(&self, root: &Path, noisy: bool) -> io::Result<()> {
        let frames = root.join("frames");
        std::fs::create_dir_all(&frames)?;
        let formats = file_formats();
        for (index, shots) in self.shots.iter().enumerate() {
            let number = index as u32 + 1;
            let persons: Vec<SynthPerson> = shots
                .iter()
                .filter(|s| s.detected)
                .enumerate()
                .map(|(person, shot)| match noisy {
                    true => with_noise(&shot.truth, number, person as u64),
                    false => shot.truth.clone(),
                })
                .collect();
            let (float64, compressed) = formats[index];
            let mut contents = frame_contents(KeyStyle::OsxPrefixed, &persons, float64);
            if let Some(entry) = contents.get_mut("image_size") {
                entry.values = Values::I64(vec![i64::from(HEIGHT), i64::from(WIDTH)]);
            }
            if let Some(entry) = contents.get_mut("image_path") {
                entry.values = Values::Text(vec![format!("frames/frame_{number:04}.jpg")]);
            }
            let path = frames.join(format!("frame_{number:04}_params.npz"));
            write_frame_file(&path, contents, injected_fault(number).as_ref(), compressed)?;
        }
        Ok(())
    }

    /// What the folder holds and what was injected where: the oracle for tests of reports.
    pub fn manifest(&self) -> serde_json::Value {
        let numbers_where = |keep: &dyn Fn(usize) -> bool| -> Vec<u32> {
            (0..self.num_frames())
                .filter(|i| keep(*i))
                .map(|i| i as u32 + 1)
                .collect()
        };
        let faults: BTreeMap<u32, String> = (1..=NUM_FRAMES)
            .filter_map(|n| injected_fault(n).map(|f| (n, f.reason())))
            .collect();
        let detected = |index: usize| self.shots[index].iter().filter(|s| s.detected).count();
        let two_persons =
            numbers_where(&|i| detected(i) > 1 && injected_fault(i as u32 + 1).is_none());
        let formats = file_formats();
        let float64 = numbers_where(&|i| formats[i].0 && writes_npz(i as u32 + 1));
        let compressed = numbers_where(&|i| formats[i].1 && writes_npz(i as u32 + 1));

        let validity: Vec<Result<usize, String>> = (0..self.num_frames())
            .map(|i| match injected_fault(i as u32 + 1) {
                Some(fault) => Err(fault.reason()),
                None => Ok(detected(i)),
            })
            .collect();
        let plan = plan_frames(&validity, &FallbackSettings::default());
        let mut fallback = BTreeMap::new();
        let mut placeholder = Vec::new();
        for (index, step) in plan.iter().enumerate() {
            let number = index as u32 + 1;
            match step {
                Plan::Draw {
                    source,
                    reason: Some(_),
                } => {
                    fallback.insert(number, *source as u32 + 1);
                }
                Plan::Placeholder { .. } => placeholder.push(number),
                _ => {}
            }
        }
        let num_ok = self.num_frames() - fallback.len() - placeholder.len();

        serde_json::json!({
            "description": "meshreel demo: a 10 s, 30 fps video of the stand-in body as an actor (walking in \
                place, waving, turning; a passer-by crosses behind), and the per-frame parameter files a recovery \
                model would have written for it: the ground truth with small noise, in the OSX users' layout, with \
                injected faults. Synthetic; no SMPL-X data.",
            "regenerate": REGENERATE,
            "fps": FPS,
            "num_frames": NUM_FRAMES,
            "first_frame_number": 1,
            "image_size": [WIDTH, HEIGHT],
            "video": {
                "file": VIDEO_FILE,
                "codec": "H.264 (libx264), yuv420p, moov atom first (faststart)",
                "frame_number_label": "the frame number (as in the frame file names, 1-based) printed bottom-left",
                "frame_code": {
                    "value": "0-based video frame index modulo 4096, 12 bits, most significant bit first",
                    "reference_size": [640, 480],
                    "scaling": "x by width/640, y by height/480",
                    "strip": "grey, rows 0-99",
                    "blocks": "bit k (k = 0..11) at x = 24 + 50*k, 42 wide",
                    "row_a": "y 8-47: white for 1, black for 0",
                    "row_b": "y 52-91: the inverse of row A",
                    "reading": "per bit, mean (R+G+B)/3 over the middle half of each block; 1 if A exceeds B by \
                        64 or more, 0 if B exceeds A by 64 or more, otherwise no code",
                },
            },
            "motion": [
                format!("{}: walking in place", frames_between(0.0, WALK_STOPS.0)),
                format!("{}: walking stops", frames_between(WALK_STOPS.0, WALK_STOPS.1)),
                format!("{}: the right arm rises", frames_between(WAVE_STARTS.0, WAVE_STARTS.1)),
                format!("{}: waving with the right hand", frames_between(WAVE_STARTS.1, WAVE_ENDS.0)),
                format!("{}: the arm lowers", frames_between(WAVE_ENDS.0, WAVE_ENDS.1)),
                format!("{}: walking in place resumes", frames_between(WALK_RESUMES.0, WALK_RESUMES.1)),
                format!("{}: a full turn about the vertical, walking in place", frames_between(TURN.0, TURN.1)),
                format!(
                    "frames {}-{}: a passer-by crosses behind the actor, right to left",
                    PASSER_FIRST_INDEX + 1,
                    PASSER_LAST_INDEX + 1
                ),
            ],
            "persons": {
                "person_0": "the actor (clay colour in the video), in every frame where anyone is detected",
                "person_1": "the passer-by (sage colour), detected while its pelvis is at least 40 px inside the \
                    image",
            },
            "camera": "each person's focal/princpt follow OSX's rules from its bbox_xywh (the box around the \
                projected body, clipped to the image, widened to 3:4 and scaled by 1.25); cam_trans places the body \
                in that camera. The video draws every person through exactly these values, so meshreel's overlay \
                of noise-free parameters covers the people pixel for pixel (up to anti-aliased edges).",
            "noise": "uniform, added to the truth in the files only: root pose ±0.01 rad, body pose ±0.02 rad per \
                component, hand poses ±0.03 rad, jaw ±0.01 rad, betas ±0.02, cam_trans x/y ±4 mm and z ±0.2 %; \
                focal, princpt and bbox_xywh are exact",
            "two_person_frames": two_persons,
            "float64_frames": float64,
            "compressed_frames": compressed,
            "faults": faults,
            "no_person_runs": no_person_runs(),
            "expected_render": {
                "settings": "defaults: --fallback last-valid --max-hold 30",
                "counts": {
                    "ok": num_ok,
                    "fallback": fallback.len(),
                    "placeholder": placeholder.len(),
                    "skipped": 0,
                    "render_error": 0,
                },
                "fallback_source": fallback,
                "placeholder_frames": placeholder,
            },
        })
    }

    /// Video frame `index` (0-based): the backdrop, the people, the frame code and the frame-number label.
    /// Opaque.
    pub fn video_frame(&self, index: usize) -> RgbaImage {
        let mut image = self.backdrop.clone();
        for shot in self.shots.get(index).into_iter().flatten() {
            draw_shadow(&mut image, shot);
        }
        let people = self.people(index, false);
        for (out, over) in image
            .pixels
            .chunks_exact_mut(4)
            .zip(people.pixels.chunks_exact(4))
        {
            let alpha = u32::from(over[3]);
            for channel in 0..3 {
                let value =
                    u32::from(over[channel]) * alpha + u32::from(out[channel]) * (255 - alpha);
                out[channel] = ((value + 127) / 255) as u8;
            }
        }
        draw_frame_code(&mut image, index as u32);
        draw_badge_at(
            &mut image,
            &format!("frame {:04}", index + 1),
            LABEL_ORIGIN,
            LABEL_SCALE,
        );
        for pixel in image.pixels.chunks_exact_mut(4) {
            pixel[3] = 255;
        }
        image
    }

    /// The people of video frame `index` alone on a transparent background (alpha is coverage), all of them or
    /// only those the frame files hold: what meshreel's overlay should cover.
    pub fn people(&self, index: usize, only_detected: bool) -> RgbaImage {
        let shots: Vec<&Shot> = self
            .shots
            .get(index)
            .into_iter()
            .flatten()
            .filter(|s| s.detected || !only_detected)
            .collect();
        // 2×2 supersampling: pixel (i, j) of the big image is centred on (i/2 - 1/4, j/2 - 1/4) of the small.
        let big = (2 * WIDTH, 2 * HEIGHT);
        let posed: Vec<(Vec<[f32; 3]>, Intrinsics)> = shots
            .iter()
            .map(|shot| {
                let vertices = self.model.pose(&params(&shot.truth), &FORWARD).vertices;
                let (focal, princpt) = (shot.truth.focal, shot.truth.princpt);
                let intrinsics = Intrinsics {
                    fx: 2.0 * focal[0],
                    fy: 2.0 * focal[1],
                    cx: 2.0 * princpt[0] + 0.5,
                    cy: 2.0 * princpt[1] + 0.5,
                };
                (vertices, intrinsics)
            })
            .collect();
        let views: Vec<PersonView<'_>> = posed
            .iter()
            .map(|(vertices, intrinsics)| PersonView {
                vertices,
                intrinsics: *intrinsics,
            })
            .collect();
        let mut triangles = prepare(&views, &self.model.faces, big, &ACTOR_LOOK);
        let per_person = self.model.faces.len() * 3;
        for (person, shot) in shots.iter().enumerate() {
            if shot.role == Role::PasserBy {
                let range = person * per_person..(person + 1) * per_person;
                for colour in &mut triangles.colours[range] {
                    for channel in 0..3 {
                        colour[channel] *= PASSER_COLOUR[channel] / ACTOR_COLOUR[channel];
                    }
                }
            }
        }
        downsample(&render_cpu(&triangles, big, 2))
    }
}

/// "frames A-B": the frame numbers from `start` to `end` seconds.
fn frames_between(start: f64, end: f64) -> String {
    let number = |t: f64| (t * f64::from(FPS)).round() as u32 + 1;
    format!("frames {}-{}", number(start), number(end))
}

const FORWARD: ForwardOptions = ForwardOptions {
    add_hand_mean: true,
};

fn params(person: &SynthPerson) -> BodyParams {
    let mut params = BodyParams {
        betas: person.betas.clone(),
        expression: person.expression.clone(),
        transl: person.cam_trans,
        ..BodyParams::default()
    };
    params.pose[0] = person.root_pose;
    for (j, r) in person.body_pose.chunks_exact(3).enumerate() {
        params.pose[1 + j] = [r[0], r[1], r[2]];
    }
    params.pose[22] = person.jaw_pose;
    for (j, r) in person.lhand_pose.chunks_exact(3).enumerate() {
        params.pose[25 + j] = [r[0], r[1], r[2]];
    }
    for (j, r) in person.rhand_pose.chunks_exact(3).enumerate() {
        params.pose[40 + j] = [r[0], r[1], r[2]];
    }
    params
}

/// Averages 2×2 blocks of a supersampled image: alpha is coverage, colour is the covered pixels' mean.
fn downsample(big: &RgbaImage) -> RgbaImage {
    let (width, height) = (big.width / 2, big.height / 2);
    let mut out = RgbaImage::transparent(width, height);
    for y in 0..height {
        for x in 0..width {
            let (mut alpha, mut colour) = (0u32, [0u32; 3]);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = big.pixel(2 * x + dx, 2 * y + dy);
                let a = u32::from(p[3]);
                alpha += a;
                for channel in 0..3 {
                    colour[channel] += u32::from(p[channel]) * a;
                }
            }
            if alpha == 0 {
                continue;
            }
            let i = (y as usize * width as usize + x as usize) * 4;
            for (value, sum) in out.pixels[i..i + 3].iter_mut().zip(colour) {
                *value = ((sum + alpha / 2) / alpha) as u8;
            }
            out.pixels[i + 3] = ((alpha + 2) / 4) as u8;
        }
    }
    out
}

/// Row where the floor meets something `depth` metres away in the video.
fn floor_row(depth: f64) -> f64 {
    VIDEO_CENTRE[1] + VIDEO_FOCAL * FLOOR_BELOW / depth
}

/// A wall with a vertical gradient, a baseboard, and a floor.
fn backdrop() -> RgbaImage {
    let mut image = RgbaImage::transparent(WIDTH, HEIGHT);
    let wall_end = floor_row(WALL_DEPTH).round() as u32;
    let lerp = |a: [f64; 3], b: [f64; 3], t: f64| -> [u8; 4] {
        let c = |k: usize| (a[k] + (b[k] - a[k]) * t).round() as u8;
        [c(0), c(1), c(2), 255]
    };
    for y in 0..HEIGHT {
        let colour = if y + 4 < wall_end {
            lerp(
                [58.0, 70.0, 88.0],
                [112.0, 124.0, 140.0],
                f64::from(y) / f64::from(wall_end),
            )
        } else if y < wall_end {
            [62, 62, 66, 255]
        } else {
            lerp(
                [150.0, 142.0, 128.0],
                [104.0, 96.0, 86.0],
                f64::from(y - wall_end) / f64::from(HEIGHT - wall_end),
            )
        };
        let row = (y * WIDTH * 4) as usize..((y + 1) * WIDTH * 4) as usize;
        for pixel in image.pixels[row].chunks_exact_mut(4) {
            pixel.copy_from_slice(&colour);
        }
    }
    image
}

/// A soft shadow on the floor under a person's feet.
fn draw_shadow(image: &mut RgbaImage, shot: &Shot) {
    let scale = VIDEO_FOCAL / shot.depth;
    let (cx, cy) = (shot.pelvis_px[0], floor_row(shot.depth));
    let (rx, ry) = (0.45 * scale, 0.08 * scale);
    let rows =
        ((cy - ry).floor().max(0.0) as u32)..((cy + ry).ceil().min(f64::from(HEIGHT)) as u32);
    let columns =
        ((cx - rx).floor().max(0.0) as u32)..((cx + rx).ceil().clamp(0.0, f64::from(WIDTH)) as u32);
    for y in rows {
        for x in columns.clone() {
            let (dx, dy) = ((f64::from(x) - cx) / rx, (f64::from(y) - cy) / ry);
            let d = dx * dx + dy * dy;
            if d >= 1.0 {
                continue;
            }
            let darken = 1.0 - 0.35 * (1.0 - d);
            let i = (y as usize * WIDTH as usize + x as usize) * 4;
            for channel in 0..3 {
                image.pixels[i + channel] =
                    (f64::from(image.pixels[i + channel]) * darken).round() as u8;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Motion: axis-angle rotations per joint, in f64, stored rounded to 1e-5 so that last-digit differences between
// platforms' sin/cos cannot change a file.

type AxisAngle = [f64; 3];

fn quaternion(r: AxisAngle) -> UnitQuaternion<f64> {
    UnitQuaternion::from_scaled_axis(Vector3::new(r[0], r[1], r[2]))
}

fn axis_angle(q: UnitQuaternion<f64>) -> AxisAngle {
    let v = q.scaled_axis();
    [v.x, v.y, v.z]
}

/// Rotation `first`, then `second` about the parent's axes.
fn then(first: AxisAngle, second: AxisAngle) -> AxisAngle {
    axis_angle(quaternion(second) * quaternion(first))
}

fn blend(a: AxisAngle, b: AxisAngle, weight: f64) -> AxisAngle {
    axis_angle(quaternion(a).slerp(&quaternion(b), weight))
}

fn stored(v: f64) -> f32 {
    ((v * 1e5).round() / 1e5) as f32
}

/// 0 before `start`, 1 after `end`, smooth in between.
fn ramp(t: f64, start: f64, end: f64) -> f64 {
    let x = ((t - start) / (end - start)).clamp(0.0, 1.0);
    x * x * (3.0 - 2.0 * x)
}

/// A pose under construction: root and the 21 body joints.
struct Pose {
    root: AxisAngle,
    body: [AxisAngle; 21],
    jaw: AxisAngle,
}

impl Pose {
    /// Standing, arms lowered from the T-pose, facing the camera: OSX's root pose includes the turn from the
    /// model frame (y up) to the camera frame (y down), here followed by `heading` about the vertical.
    fn standing(heading: f64) -> Pose {
        let mut pose = Pose {
            root: then([PI, 0.0, 0.0], [0.0, heading, 0.0]),
            body: [[0.0; 3]; 21],
            jaw: [0.0; 3],
        };
        pose.set("left_shoulder", [0.0, 0.0, -1.25]);
        pose.set("right_shoulder", [0.0, 0.0, 1.25]);
        pose.set("left_elbow", [0.0, -0.25, 0.0]);
        pose.set("right_elbow", [0.0, 0.25, 0.0]);
        pose
    }

    fn set(&mut self, joint: &str, r: AxisAngle) {
        let j = joint_index(joint).expect("an SMPL-X joint name");
        self.body[j - 1] = r;
    }

    fn get(&self, joint: &str) -> AxisAngle {
        self.body[joint_index(joint).expect("an SMPL-X joint name") - 1]
    }

    /// Swings an arm forward (positive) or back about the shoulder, after its lowering.
    fn swing_arm(&mut self, shoulder: &str, forward: f64) {
        let lowered = self.get(shoulder);
        self.set(shoulder, then(lowered, [-forward, 0.0, 0.0]));
    }

    /// Hip flexion (forward positive) and knee bend of one leg.
    fn leg(&mut self, side: &str, hip_forward: f64, knee: f64, ankle: f64) {
        self.set(&format!("{side}_hip"), [-hip_forward, 0.0, 0.0]);
        self.set(&format!("{side}_knee"), [knee, 0.0, 0.0]);
        self.set(&format!("{side}_ankle"), [ankle, 0.0, 0.0]);
    }
}

/// When (seconds) the actor stops walking, starts waving, stops waving, walks again and turns round: each
/// change eases in over the given span.
const WALK_STOPS: (f64, f64) = (2.9, 3.5);
const WAVE_STARTS: (f64, f64) = (3.2, 3.8);
const WAVE_ENDS: (f64, f64) = (6.0, 6.6);
const WALK_RESUMES: (f64, f64) = (6.3, 6.9);
const TURN: (f64, f64) = (7.0, 9.6);

/// The actor at `t` seconds: walking in place, then waving, then turning round while walking in place.
fn actor_pose(t: f64) -> Pose {
    let during = |(start, end): (f64, f64)| ramp(t, start, end);
    let walking = 1.0 - during(WALK_STOPS) + during(WALK_RESUMES);
    let waving = during(WAVE_STARTS) - during(WAVE_ENDS);
    let heading = TAU * during(TURN) + 0.06 * (TAU * t / 4.0).sin();
    let mut pose = Pose::standing(heading);

    // One step with each foot every 1.1 s; arms swing against the legs.
    let step = (TAU * t / 1.1).sin();
    let (left_lift, right_lift) = (walking * step.max(0.0), walking * (-step).max(0.0));
    pose.leg("left", 0.6 * left_lift, 1.2 * left_lift, 0.25 * left_lift);
    pose.leg(
        "right",
        0.6 * right_lift,
        1.2 * right_lift,
        0.25 * right_lift,
    );
    pose.swing_arm("left_shoulder", -0.3 * walking * step);
    pose.swing_arm("right_shoulder", 0.3 * walking * step);
    pose.set("spine2", [0.0, 0.05 * walking * step, 0.0]);

    // The wave: the right upper arm out to the side, the forearm up, swinging side to side twice a second.
    let shoulder = pose.get("right_shoulder");
    let elbow = pose.get("right_elbow");
    let wave_shoulder = then([0.0, 0.0, 0.1], [-0.25, 0.0, 0.0]);
    let wave_elbow = [0.0, 0.0, -1.55 - 0.4 * (TAU * 1.7 * t).sin()];
    pose.set("right_shoulder", blend(shoulder, wave_shoulder, waving));
    pose.set("right_elbow", blend(elbow, wave_elbow, waving));
    pose.set(
        "head",
        [
            0.06 * (TAU * 0.3 * t).sin(),
            0.1 * (TAU * 0.23 * t).sin(),
            -0.12 * waving,
        ],
    );
    pose.jaw = [0.04 + 0.04 * waving * (TAU * 3.0 * t).sin().abs(), 0.0, 0.0];
    pose
}

/// The passer-by at `t` seconds: walking to the image's left, turned a little towards the camera. Returns the
/// pose and how far the pelvis dips (metres) as the legs spread.
fn passer_pose(t: f64) -> (Pose, f64) {
    let mut pose = Pose::standing(FRAC_PI_2 - 0.35);
    let phase = TAU * t / 1.0;
    for (side, offset) in [("left", 0.0), ("right", PI)] {
        let hip = 0.5 * (phase + offset).sin();
        let knee = 0.1 + 0.8 * (phase + offset).cos().max(0.0);
        pose.leg(side, hip, knee, -0.1 * hip);
    }
    pose.swing_arm("left_shoulder", -0.35 * phase.sin());
    pose.swing_arm("right_shoulder", 0.35 * phase.sin());
    let leg_length = 0.85;
    let dip = leg_length * (1.0 - (0.5 * phase.sin()).cos());
    (pose, dip)
}

fn person_from_pose(pose: &Pose, betas: [f32; 2]) -> SynthPerson {
    let mut body_betas = vec![0.0; 10];
    body_betas[..2].copy_from_slice(&betas);
    SynthPerson {
        root_pose: pose.root.map(stored),
        body_pose: pose.body.iter().flatten().map(|v| stored(*v)).collect(),
        lhand_pose: vec![0.0; 45],
        rhand_pose: vec![0.0; 45],
        jaw_pose: pose.jaw.map(stored),
        betas: body_betas,
        expression: vec![0.0; 10],
        cam_trans: [0.0; 3],
        focal: [0.0; 2],
        princpt: [0.0; 2],
        bbox_xywh: [0.0; 4],
    }
}

/// The people of video frame `index` with their cameras.
fn frame_shots(model: &BodyModel, index: usize) -> Vec<Shot> {
    let t = index as f64 / f64::from(FPS);
    let mut shots = Vec::new();

    let actor = person_from_pose(&actor_pose(t), ACTOR_BETAS);
    let pelvis_v =
        floor_row(ACTOR_DEPTH) - pelvis_height(model, &actor.betas) * VIDEO_FOCAL / ACTOR_DEPTH;
    shots.push(place(
        model,
        Role::Actor,
        actor,
        [ACTOR_U, pelvis_v],
        ACTOR_DEPTH,
    ));

    if (PASSER_FIRST_INDEX..=PASSER_LAST_INDEX).contains(&index) {
        let (pose, dip) = passer_pose(t);
        let passer = person_from_pose(&pose, PASSER_BETAS);
        let progress =
            (index - PASSER_FIRST_INDEX) as f64 / (PASSER_LAST_INDEX - PASSER_FIRST_INDEX) as f64;
        let u = PASSER_START_U + (PASSER_END_U - PASSER_START_U) * progress;
        let scale = VIDEO_FOCAL / PASSER_DEPTH;
        let v = floor_row(PASSER_DEPTH) - (pelvis_height(model, &passer.betas) - dip) * scale;
        let mut shot = place(model, Role::PasserBy, passer, [u, v], PASSER_DEPTH);
        shot.detected =
            (PASSER_DETECTION_MARGIN..=f64::from(WIDTH) - PASSER_DETECTION_MARGIN).contains(&u);
        shots.push(shot);
    }
    shots
}

/// The pelvis's height above the soles (metres) of the body with these betas, standing.
fn pelvis_height(model: &BodyModel, betas: &[f32]) -> f64 {
    let rest = model.pose(
        &BodyParams {
            betas: betas.to_vec(),
            ..BodyParams::default()
        },
        &FORWARD,
    );
    let sole = rest.vertices.iter().map(|v| v[1]).fold(f32::MAX, f32::min);
    f64::from(rest.joints[0][1] - sole)
}

/// Puts a person in the scene with its pelvis at `pelvis_px`, `depth` metres from the video camera, and gives it
/// the camera OSX would: the box around the projected body, processed as OSX processes detections, its focal
/// length and principal point by OSX's rules, and the `cam_trans` that shows the body at the same place and size
/// through that camera.
fn place(
    model: &BodyModel,
    role: Role,
    mut person: SynthPerson,
    pelvis_px: [f64; 2],
    depth: f64,
) -> Shot {
    let rest = model.pose(&params(&person), &FORWARD);
    let pelvis = rest.joints[0].map(f64::from);
    let to_video = [
        (pelvis_px[0] - VIDEO_CENTRE[0]) * depth / VIDEO_FOCAL - pelvis[0],
        (pelvis_px[1] - VIDEO_CENTRE[1]) * depth / VIDEO_FOCAL - pelvis[1],
        depth - pelvis[2],
    ];
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for v in &rest.vertices {
        let z = f64::from(v[2]) + to_video[2];
        let u = VIDEO_FOCAL * (f64::from(v[0]) + to_video[0]) / z + VIDEO_CENTRE[0];
        let w = VIDEO_FOCAL * (f64::from(v[1]) + to_video[1]) / z + VIDEO_CENTRE[1];
        (x0, y0, x1, y1) = (x0.min(u), y0.min(w), x1.max(u), y1.max(w));
    }
    // Half-pixel steps: a last-digit difference in the forward pass's sin/cos cannot move the box.
    let half = |v: f64| ((v * 2.0).round() / 2.0) as f32;
    let tight_box = [half(x0), half(y0), half(x1), half(y1)];
    let bbox_xywh = osx_box(tight_box);
    let k = intrinsics_from_bbox(bbox_xywh).expect("a box around a body in view has an area");
    // Same place and size through the box's camera: depth scaled with the focal length, pelvis on its pixel.
    let (fx, fy) = (f64::from(k.fx), f64::from(k.fy));
    let z = depth * fx / VIDEO_FOCAL;
    let pelvis_camera = [
        (pelvis_px[0] - f64::from(k.cx)) * z / fx,
        (pelvis_px[1] - f64::from(k.cy)) * z / fy,
        z,
    ];
    person.cam_trans = [0, 1, 2].map(|a| (pelvis_camera[a] - pelvis[a]) as f32);
    person.focal = [k.fx, k.fy];
    person.princpt = [k.cx, k.cy];
    person.bbox_xywh = bbox_xywh;
    Shot {
        role,
        truth: person,
        detected: true,
        pelvis_px,
        depth,
    }
}

/// OSX's processing of a detection (`process_bbox`): clipped to the image, widened or heightened to its input
/// crop's 3:4 aspect, scaled by 1.25 about the centre. Returns x, y, w, h.
fn osx_box([x0, y0, x1, y1]: [f32; 4]) -> [f32; 4] {
    let (max_x, max_y) = ((WIDTH - 1) as f32, (HEIGHT - 1) as f32);
    let (x0, y0) = (x0.clamp(0.0, max_x), y0.clamp(0.0, max_y));
    let (x1, y1) = (x1.clamp(0.0, max_x), y1.clamp(0.0, max_y));
    let (mut w, mut h) = (x1 - x0, y1 - y0);
    let (cx, cy) = (x0 + w / 2.0, y0 + h / 2.0);
    let aspect = 384.0 / 512.0;
    if w > aspect * h {
        h = w / aspect;
    } else if w < aspect * h {
        w = h * aspect;
    }
    let (w, h) = (w * 1.25, h * 1.25);
    [cx - w / 2.0, cy - h / 2.0, w, h]
}

/// The recovery model's view of a true person: small noise on the pose, shape and translation; the camera
/// (focal, princpt, box) exact.
fn with_noise(truth: &SynthPerson, number: u32, person: u64) -> SynthPerson {
    let mut rng = Rng::new(SEED ^ (u64::from(number) << 8 | person));
    let mut noisy = truth.clone();
    let mut jitter = |values: &mut [f32], scale: f32| {
        for v in values {
            *v += rng.symmetric(scale);
        }
    };
    jitter(&mut noisy.root_pose, 0.01);
    jitter(&mut noisy.body_pose, 0.02);
    jitter(&mut noisy.lhand_pose, 0.03);
    jitter(&mut noisy.rhand_pose, 0.03);
    jitter(&mut noisy.jaw_pose, 0.01);
    jitter(&mut noisy.betas, 0.02);
    jitter(&mut noisy.cam_trans[..2], 0.004);
    noisy.cam_trans[2] *= 1.0 + rng.symmetric(0.002);
    noisy
}

/// Per frame: written as float64, written compressed — a seeded mix, as files from several tools are.
fn file_formats() -> Vec<(bool, bool)> {
    let mut rng = Rng::new(SEED ^ 0xf0f0);
    (0..NUM_FRAMES)
        .map(|_| (rng.unit() < 0.25, rng.unit() < 0.4))
        .collect()
}

/// The fault injected into frame `number` (1-based, as in the file name).
fn injected_fault(number: u32) -> Option<Fault> {
    match number {
        // Longer than the default --max-hold of 30: the last two become placeholders.
        41..=72 => Some(Fault::NoPerson),
        95 => Some(Fault::MissingFile),
        118..=120 | 147 => Some(Fault::NoPerson),
        130 => Some(Fault::Truncated),
        160 => Some(Fault::MissingKey("person_0_smplx_lhand_pose".into())),
        178 => Some(Fault::NotFinite("person_0_smplx_body_pose".into())),
        _ => None,
    }
}

/// The runs of frames without a person, e.g. "frames 41-72 (32 frames, longer than the default --max-hold of 30)".
fn no_person_runs() -> Vec<String> {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for number in 1..=NUM_FRAMES {
        if injected_fault(number) != Some(Fault::NoPerson) {
            continue;
        }
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == number => *last = number,
            _ => runs.push((number, number)),
        }
    }
    runs.into_iter()
        .map(|(first, last)| {
            let length = last - first + 1;
            let frames = if length == 1 {
                format!("frame {first} (1 frame")
            } else {
                format!("frames {first}-{last} ({length} frames")
            };
            if length > DEFAULT_MAX_HOLD {
                format!("{frames}, longer than the default --max-hold of {DEFAULT_MAX_HOLD})")
            } else {
                format!("{frames})")
            }
        })
        .collect()
}

/// Whether frame `number`'s file is a complete NPZ written in its chosen format.
fn writes_npz(number: u32) -> bool {
    !matches!(
        injected_fault(number),
        Some(Fault::MissingFile | Fault::Truncated)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_people_stay_clear_of_the_code_strip_and_the_label() {
        let demo = Demo::new();
        let label = (
            LABEL_ORIGIN.0 as f32,
            LABEL_ORIGIN.1 as f32,
            (LABEL_ORIGIN.0 + (10 * 8 + 6) * LABEL_SCALE) as f32,
            (LABEL_ORIGIN.1 + (8 + 6) * LABEL_SCALE) as f32,
        );
        let margin = 2.0;
        for (index, shots) in demo.shots.iter().enumerate() {
            for shot in shots {
                let (f, c) = (shot.truth.focal, shot.truth.princpt);
                let vertices = demo.model.pose(&params(&shot.truth), &FORWARD).vertices;
                for v in vertices {
                    let (u, w) = (f[0] * v[0] / v[2] + c[0], f[1] * v[1] / v[2] + c[1]);
                    assert!(
                        w > CODE_STRIP_ROWS as f32 + margin,
                        "frame index {index}: row {w}"
                    );
                    let in_label = u > label.0 - margin
                        && u < label.2 + margin
                        && w > label.1 - margin
                        && w < label.3 + margin;
                    assert!(!in_label, "frame index {index}: ({u}, {w}) under the label");
                }
            }
        }
    }

    #[test]
    fn each_persons_camera_follows_osx_rules_from_its_box() {
        let demo = Demo::new();
        for shot in demo.shots.iter().flatten() {
            let [x, y, w, h] = shot.truth.bbox_xywh;
            assert!((w / h - 0.75).abs() < 1e-4);
            let k = intrinsics_from_bbox(shot.truth.bbox_xywh).unwrap();
            assert_eq!(shot.truth.focal, [k.fx, k.fy]);
            assert_eq!(shot.truth.princpt, [x + w / 2.0, y + h / 2.0]);
            assert!(shot.truth.cam_trans[2] > 10.0 && shot.truth.cam_trans[2] < 56.4);
        }
    }
}
