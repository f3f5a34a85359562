//! Frame → meshes: the one place that decides how a person's mesh is made (posed from parameters, or the
//! vertices the recovery model saved), shared by every command that needs meshes.
//!
//! Later stages (fallback policy, pixels) build on this; `frames` and `body` stay unaware of each other's
//! callers.

use crate::body::{BodyModel, BodyParams, ForwardOptions};
use crate::frames::{FrameParams, PersonParams};

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

/// The meshes of every person of a frame, in person order. Persons posed from parameters are posed as one batch.
pub fn frame_meshes(
    model: &BodyModel,
    frame: &FrameParams,
    settings: &MeshSettings,
) -> Vec<PersonMesh> {
    let to_pose: Vec<BodyParams> = frame
        .persons
        .iter()
        .filter(|p| saved_vertices(model, p, settings).is_none())
        .map(PersonParams::body_params)
        .collect();
    let mut posed = model.pose_batch(&to_pose, &settings.forward).into_iter();
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
}
