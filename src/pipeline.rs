//! Frame → meshes: the one place that decides how a person's mesh is made (posed from parameters, or the
//! vertices the recovery model saved), shared by every command that needs meshes.
//!
//! Later stages (fallback policy, pixels) build on this; `frames` and `body` stay unaware of each other's
//! callers.

use std::path::Path;
use std::time::Instant;

use crate::body::{BodyModel, BodyParams, ForwardOptions, ModelLoadError, load_smplx};
use crate::frames::npz::NpzLimits;
use crate::frames::{FrameError, FrameParams, PersonParams, ReadOptions, Sequence, read_frame};
use crate::render::camera::{CameraOptions, Intrinsics, auto_framing, choose_intrinsics};
use crate::render::{Look, PersonView, RenderHandle, RgbaImage, composite, placeholder, prepare};
use crate::report::FrameStatus;

/// The user's SMPL-X model, or the stand-in when none is given; the choice and the model's warnings go to the log.
/// Every command and the server load their model here.
pub fn load_model(path: Option<&Path>) -> Result<BodyModel, ModelLoadError> {
    let model = match path {
        Some(path) => load_smplx(path, NpzLimits::MODEL)?,
        None => {
            tracing::info!("no --model given: using the built-in stand-in body (not SMPL-X)");
            BodyModel::stand_in()
        }
    };
    for warning in &model.warnings {
        tracing::warn!("{warning}");
    }
    Ok(model)
}

/// Where a person's vertices come from (`--mesh-source`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MeshSource {
    /// Pose the model from the parameters. Saved vertices share the real model's topology only, and the
    /// parameters are the ground truth of what the recovery model predicted, so auto poses from parameters.
    #[default]
    Auto,
    /// Always pose the model from the parameters.
    Params,
    /// Use the vertices saved in the frame (`smplx_mesh_cam`) when they match the model's vertex count; pose from
    /// the parameters otherwise (and say so). Needs the real SMPL-X model for its faces.
    Saved,
}

/// How a person's mesh was actually made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MeshOrigin {
    Params,
    Saved,
}

/// One person's mesh in camera coordinates (vertices; the faces are the model's).
#[derive(Clone, Debug, PartialEq)]
pub struct PersonMesh {
    pub person: u32,
    pub vertices: Vec<[f32; 3]>,
    pub origin: MeshOrigin,
}

/// Settings that turn parameters into meshes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MeshSettings {
    pub source: MeshSource,
    pub forward: ForwardOptions,
}

impl MeshSettings {
    /// Whether frames must be read with their saved vertices.
    pub fn needs_saved_vertices(&self) -> bool {
        self.source == MeshSource::Saved
    }
}

/// Why settings cannot work with a model.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "--mesh-source saved needs the real SMPL-X model (--model SMPLX_NEUTRAL.npz): saved vertices have SMPL-X's \
         topology, which the stand-in body does not share"
    )]
    SavedNeedsRealModel,
}

/// Checks that the settings can work with this model.
pub fn check_settings(model: &BodyModel, settings: &MeshSettings) -> Result<(), SettingsError> {
    if settings.source == MeshSource::Saved && model.is_stand_in() {
        return Err(SettingsError::SavedNeedsRealModel);
    }
    Ok(())
}

/// Saved vertices usable for this person, if the settings ask for them and they fit the model.
fn saved_vertices<'a>(
    model: &BodyModel,
    person: &'a PersonParams,
    settings: &MeshSettings,
) -> Option<&'a [[f32; 3]]> {
    let saved = person.saved_vertices.as_deref()?;
    (settings.source == MeshSource::Saved && saved.len() == model.num_vertices()).then_some(saved)
}

/// The meshes of every person of a frame, in person order.
pub fn frame_meshes(
    model: &BodyModel,
    frame: &FrameParams,
    settings: &MeshSettings,
) -> Vec<PersonMesh> {
    let mut meshes = frames_meshes(model, &[frame], settings);
    meshes.pop().expect("one frame in, one frame out")
}

/// The meshes of every person of several frames, in frame and person order. Everyone posed from parameters is
/// posed in one batch, which streams the pose-corrective matrix once for all of them.
pub fn frames_meshes(
    model: &BodyModel,
    frames: &[&FrameParams],
    settings: &MeshSettings,
) -> Vec<Vec<PersonMesh>> {
    let to_pose: Vec<BodyParams> = frames
        .iter()
        .flat_map(|frame| frame.persons.iter())
        .filter(|p| saved_vertices(model, p, settings).is_none())
        .map(PersonParams::body_params)
        .collect();
    let mut posed = model.pose_batch(&to_pose, &settings.forward).into_iter();
    frames
        .iter()
        .map(|frame| {
            frame
                .persons
                .iter()
                .map(|person| match saved_vertices(model, person, settings) {
                    Some(saved) => PersonMesh {
                        person: person.id,
                        vertices: saved.to_vec(),
                        origin: MeshOrigin::Saved,
                    },
                    None => PersonMesh {
                        person: person.id,
                        vertices: posed
                            .next()
                            .expect("one posed body per person without saved vertices")
                            .vertices,
                        origin: MeshOrigin::Params,
                    },
                })
                .collect()
        })
        .collect()
}

/// What a frame without valid parameters shows (`--fallback`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FallbackPolicy {
    /// The nearest earlier valid frame's mesh, if at most --max-hold frames back; else a placeholder.
    #[default]
    LastValid,
    /// A transparent placeholder with a badge naming the reason.
    Placeholder,
    /// No image at all (the report still lists the frame).
    Skip,
}

impl FallbackPolicy {
    pub fn name(self) -> &'static str {
        match self {
            FallbackPolicy::LastValid => "last-valid",
            FallbackPolicy::Placeholder => "placeholder",
            FallbackPolicy::Skip => "skip",
        }
    }
}

/// How far back (in frames) a fallback may reach by default: one second at 30 fps.
pub const DEFAULT_MAX_HOLD: u32 = 30;

/// The fallback policy and its reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FallbackSettings {
    pub policy: FallbackPolicy,
    pub max_hold: u32,
}

impl Default for FallbackSettings {
    fn default() -> Self {
        FallbackSettings {
            policy: FallbackPolicy::LastValid,
            max_hold: DEFAULT_MAX_HOLD,
        }
    }
}

/// The fate of one frame, decided from the whole sequence's validity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Draw the meshes of frame `source` (a video index): the frame itself when `reason` is `None`, else a
    /// fallback for a frame that is not valid for `reason`.
    Draw {
        source: usize,
        reason: Option<String>,
    },
    /// Draw a placeholder naming the reason.
    Placeholder { reason: String },
    /// Write no image.
    Skip { reason: String },
}

/// Decides every frame's fate. "Nearest earlier valid" is a property of the sequence, not of the order frames
/// are asked for, so every caller (batch, shards, server) gets the same plan, hence the same bytes.
pub fn plan_frames(validity: &[Result<usize, String>], settings: &FallbackSettings) -> Vec<Plan> {
    let mut last_valid: Option<usize> = None;
    validity
        .iter()
        .enumerate()
        .map(|(index, status)| match status {
            Ok(_) => {
                last_valid = Some(index);
                Plan::Draw {
                    source: index,
                    reason: None,
                }
            }
            Err(reason) => {
                let reason = reason.clone();
                match settings.policy {
                    FallbackPolicy::Skip => Plan::Skip { reason },
                    FallbackPolicy::Placeholder => Plan::Placeholder { reason },
                    FallbackPolicy::LastValid => match last_valid {
                        Some(source) if index - source <= settings.max_hold as usize => {
                            Plan::Draw {
                                source,
                                reason: Some(reason),
                            }
                        }
                        _ => Plan::Placeholder { reason },
                    },
                }
            }
        })
        .collect()
}

/// Everything that decides a frame's pixels besides its parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RenderSettings {
    pub size: (u32, u32),
    pub camera: CameraOptions,
    pub look: Look,
    pub mesh: MeshSettings,
}

/// What one pass over the sequence found: each frame's validity (persons, or the reason string) and the first
/// valid frame's `image_size`.
#[derive(Clone, Debug, PartialEq)]
pub struct Scan {
    pub validity: Vec<Result<usize, String>>,
    pub image_size: Option<[f32; 2]>,
}

/// Reads every frame once, on `threads` threads, to learn which are valid.
pub fn scan(sequence: &Sequence, threads: usize) -> Scan {
    let options = ReadOptions::default();
    let slots = &sequence.frames;
    let chunk = slots.len().div_ceil(threads.max(1)).max(1);
    let results: Vec<Result<FrameParams, FrameError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = slots
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|slot| read_frame(slot, &options))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let image_size = results
        .iter()
        .find_map(|r| r.as_ref().ok().and_then(|f| f.image_size));
    let validity = results
        .into_iter()
        .map(|r| match r {
            Ok(frame) => Ok(frame.persons.len()),
            Err(error) => {
                tracing::debug!(%error, "invalid frame");
                Err(error.reason().to_string())
            }
        })
        .collect();
    Scan {
        validity,
        image_size,
    }
}

/// One rendered frame: its image (none when skipped or failed) and what happened.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameOutput {
    pub image: Option<RgbaImage>,
    pub status: FrameStatus,
    pub reason: Option<String>,
    /// Frame number whose meshes a fallback shows.
    pub source_frame: Option<u32>,
    pub persons: u32,
    pub read_ms: f64,
    pub forward_ms: f64,
    pub render_ms: f64,
}

/// The badge text of a placeholder.
fn placeholder_text(reason: &str) -> &str {
    if reason == "no_person" {
        "no detection"
    } else {
        reason
    }
}

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Renders frame `index` of the sequence as `plan` decides. A pure function of the sequence's files, the
/// model, the plan and the settings: the batch and the server give the same pixels for the same frame.
pub fn render_planned(
    model: &BodyModel,
    sequence: &Sequence,
    plan: &[Plan],
    index: usize,
    settings: &RenderSettings,
    renderer: &RenderHandle,
) -> FrameOutput {
    let mut result = None;
    render_planned_frames(
        model,
        sequence,
        plan,
        &[index],
        settings,
        renderer,
        |_, output| result = Some(output),
    );
    result.expect("one frame in, one frame out")
}

/// A frame on its way through the stages.
enum Stage {
    /// Finished early (placeholder, skip, error).
    Done(FrameOutput),
    /// Parameters read; waiting for the forward pass.
    Read {
        output: FrameOutput,
        frame: FrameParams,
    },
}

/// Renders several frames (consecutive ones, typically) as [`render_planned`] would one by one, with one
/// forward pass for all their persons: the pose-corrective matrix is streamed once per call, not per frame.
/// Each frame goes to `on_frame` (with its index) as soon as it is drawn, so only one image is alive at a time.
pub fn render_planned_frames(
    model: &BodyModel,
    sequence: &Sequence,
    plan: &[Plan],
    indices: &[usize],
    settings: &RenderSettings,
    renderer: &RenderHandle,
    mut on_frame: impl FnMut(usize, FrameOutput),
) {
    let stages: Vec<Stage> = indices
        .iter()
        .map(|&index| read_planned(sequence, plan, index, settings))
        .collect();

    // One forward pass over every person of every frame that needs posing.
    let start = Instant::now();
    let read: Vec<&FrameParams> = stages
        .iter()
        .filter_map(|stage| match stage {
            Stage::Read { frame, .. } => Some(frame),
            Stage::Done(_) => None,
        })
        .collect();
    let mut meshes = frames_meshes(model, &read, &settings.mesh).into_iter();
    let forward_ms = millis(start) / read.len().max(1) as f64;

    for (&index, stage) in indices.iter().zip(stages) {
        let output = match stage {
            Stage::Done(output) => output,
            Stage::Read { mut output, frame } => {
                let start = Instant::now();
                let vertices = meshes
                    .next()
                    .expect("one set of meshes per frame read")
                    .into_iter()
                    .map(|mesh| mesh.vertices)
                    .collect();
                let framed = frame_cameras(vertices, &frame, settings);
                output.persons = framed.len() as u32;
                output.forward_ms = forward_ms + millis(start);
                draw(output, &framed, model, settings, renderer)
            }
        };
        on_frame(index, output);
    }
}

/// Stage 1: the plan's decision, and the source frame's parameters for frames that draw meshes.
fn read_planned(
    sequence: &Sequence,
    plan: &[Plan],
    index: usize,
    settings: &RenderSettings,
) -> Stage {
    let mut output = FrameOutput {
        image: None,
        status: FrameStatus::Ok,
        reason: None,
        source_frame: None,
        persons: 0,
        read_ms: 0.0,
        forward_ms: 0.0,
        render_ms: 0.0,
    };
    let fail = |mut output: FrameOutput, message: String| {
        output.status = FrameStatus::RenderError;
        output.reason = Some(message);
        Stage::Done(output)
    };
    let (source, reason) = match plan.get(index) {
        Some(Plan::Draw { source, reason }) => (*source, reason.clone()),
        Some(Plan::Placeholder { reason }) => {
            let start = Instant::now();
            let image = placeholder(settings.size.0, settings.size.1, placeholder_text(reason));
            output.image = Some(finish_image(image, settings));
            output.render_ms = millis(start);
            output.status = FrameStatus::Placeholder;
            output.reason = Some(reason.clone());
            return Stage::Done(output);
        }
        Some(Plan::Skip { reason }) => {
            output.status = FrameStatus::Skipped;
            output.reason = Some(reason.clone());
            return Stage::Done(output);
        }
        None => {
            return fail(
                output,
                format!("frame index {index} is outside the sequence"),
            );
        }
    };
    if reason.is_some() {
        output.status = FrameStatus::Fallback;
        output.reason = reason;
        output.source_frame = sequence.frame(source).map(|slot| slot.number);
    }
    let start = Instant::now();
    let options = ReadOptions {
        saved_vertices: settings.mesh.needs_saved_vertices(),
        ..ReadOptions::default()
    };
    let Some(slot) = sequence.frame(source) else {
        return fail(
            output,
            format!("source frame index {source} is outside the sequence"),
        );
    };
    match read_frame(slot, &options) {
        Ok(frame) => {
            output.read_ms = millis(start);
            Stage::Read { output, frame }
        }
        // The scan found it valid; it changed since.
        Err(error) => fail(
            output,
            format!("the frame's file changed since the scan: {error}"),
        ),
    }
}

/// Each person's camera: its own intrinsics, or automatic framing (which may move the body into view).
fn frame_cameras(
    meshes: Vec<Vec<[f32; 3]>>,
    frame: &FrameParams,
    settings: &RenderSettings,
) -> Vec<(Vec<[f32; 3]>, Intrinsics)> {
    meshes
        .into_iter()
        .zip(&frame.persons)
        .map(|(vertices, person)| {
            match choose_intrinsics(
                person.focal,
                person.princpt,
                person.bbox_xywh,
                &settings.camera,
                settings.size,
            ) {
                Some((intrinsics, _)) => (vertices, intrinsics),
                None => {
                    let (intrinsics, offset) = auto_framing(&vertices, settings.size);
                    let moved = vertices
                        .iter()
                        .map(|v| [v[0] + offset[0], v[1] + offset[1], v[2] + offset[2]])
                        .collect();
                    (moved, intrinsics)
                }
            }
        })
        .collect()
}

/// Stage 3: pixels, on the render thread.
fn draw(
    mut output: FrameOutput,
    framed: &[(Vec<[f32; 3]>, Intrinsics)],
    model: &BodyModel,
    settings: &RenderSettings,
    renderer: &RenderHandle,
) -> FrameOutput {
    let start = Instant::now();
    let views: Vec<PersonView<'_>> = framed
        .iter()
        .map(|(vertices, intrinsics)| PersonView {
            vertices,
            intrinsics: *intrinsics,
        })
        .collect();
    let triangles = prepare(&views, &model.faces, settings.size, &settings.look);
    match renderer.render(triangles, settings.size) {
        Ok(image) => output.image = Some(finish_image(image, settings)),
        Err(error) => {
            output.status = FrameStatus::RenderError;
            output.reason = Some(error.to_string());
        }
    }
    output.render_ms = millis(start);
    output
}

/// Composites over the background colour when the look asks for one.
fn finish_image(mut image: RgbaImage, settings: &RenderSettings) -> RgbaImage {
    if let Some(background) = settings.look.background {
        composite(&mut image, background);
    }
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validity(pattern: &str) -> Vec<Result<usize, String>> {
        pattern
            .chars()
            .map(|c| {
                if c == 'v' {
                    Ok(1)
                } else {
                    Err("no_person".to_string())
                }
            })
            .collect()
    }

    #[test]
    fn last_valid_holds_at_most_max_hold_frames_then_shows_placeholders() {
        let settings = FallbackSettings {
            policy: FallbackPolicy::LastValid,
            max_hold: 2,
        };
        let plan = plan_frames(&validity("xvxxxv"), &settings);
        assert_eq!(
            plan[0],
            Plan::Placeholder {
                reason: "no_person".into()
            },
            "nothing valid before frame 0"
        );
        assert_eq!(
            plan[1],
            Plan::Draw {
                source: 1,
                reason: None
            }
        );
        assert_eq!(
            plan[2],
            Plan::Draw {
                source: 1,
                reason: Some("no_person".into())
            }
        );
        assert_eq!(
            plan[3],
            Plan::Draw {
                source: 1,
                reason: Some("no_person".into())
            }
        );
        assert_eq!(
            plan[4],
            Plan::Placeholder {
                reason: "no_person".into()
            },
            "three back is over the hold"
        );
        assert_eq!(
            plan[5],
            Plan::Draw {
                source: 5,
                reason: None
            }
        );
    }

    #[test]
    fn placeholder_and_skip_policies_never_reuse_meshes() {
        for (policy, skip) in [
            (FallbackPolicy::Placeholder, false),
            (FallbackPolicy::Skip, true),
        ] {
            let plan = plan_frames(
                &validity("vx"),
                &FallbackSettings {
                    policy,
                    max_hold: 30,
                },
            );
            assert_eq!(matches!(plan[1], Plan::Skip { .. }), skip);
            assert!(!matches!(plan[1], Plan::Draw { .. }));
        }
    }
}
