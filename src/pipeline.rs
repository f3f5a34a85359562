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
