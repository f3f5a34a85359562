//! Body models: the user's SMPL-X file or the built-in stand-in, and the forward pass that poses them.
//!
//! Pure: no I/O after loading, no GL. Both kinds of model share one representation ([`BodyModel`]) and one
//! forward pass, so the stand-in is driven by exactly the same parameters as the real model.

mod forward;
pub mod joints;
mod posedirs;
mod smplx_file;
mod standin;

use std::path::PathBuf;

pub use forward::{ForwardOptions, PosedBody, rodrigues};
pub use joints::{NUM_JOINTS, NUM_POSE_FEATURES};
pub use posedirs::PoseDirs;
pub use smplx_file::{ModelLoadError, load_smplx};

/// Where a model came from.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelKind {
    /// The user's own licensed SMPL-X file.
    Smplx(SmplxInfo),
    /// The procedural stand-in body generated in code: not SMPL-X, and always labelled as such.
    StandIn,
}

/// Facts about a loaded SMPL-X file, for reports and `doctor`.
#[derive(Clone, Debug, PartialEq)]
pub struct SmplxInfo {
    pub path: PathBuf,
    /// "v1.0 (10 shape + 10 expression components)" or "v1.1 (300 shape + 100 expression components)".
    pub variant: String,
    /// Number of shape (beta) directions available.
    pub num_shape_components: usize,
    /// Number of expression directions available.
    pub num_expression_components: usize,
    /// Where the expression directions start in the file's `shapedirs` (300 for v1.1, 10 for v1.0).
    pub expression_offset: usize,
    /// Whether `hands_meanl`/`hands_meanr` were present.
    pub has_hand_mean: bool,
}

/// Per-vertex skinning weights stored sparsely: vertex `v` is influenced by
/// `joints[offsets[v]..offsets[v + 1]]` with the matching `weights`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SparseWeights {
    pub offsets: Vec<u32>,
    pub joints: Vec<u8>,
    pub weights: Vec<f32>,
}

impl SparseWeights {
    /// Builds sparse weights from a dense row-major (num_vertices × NUM_JOINTS) matrix, keeping non-zeros.
    pub fn from_dense(dense: &[f32], num_vertices: usize) -> SparseWeights {
        let mut out = SparseWeights {
            offsets: Vec::with_capacity(num_vertices + 1),
            ..SparseWeights::default()
        };
        out.offsets.push(0);
        for row in dense.chunks_exact(NUM_JOINTS).take(num_vertices) {
            for (joint, &weight) in row.iter().enumerate() {
                if weight != 0.0 {
                    out.joints.push(joint as u8);
                    out.weights.push(weight);
                }
            }
            out.offsets.push(out.joints.len() as u32);
        }
        out
    }

    /// The (joint, weight) pairs of one vertex.
    pub fn of_vertex(&self, vertex: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let range = self.offsets[vertex] as usize..self.offsets[vertex + 1] as usize;
        self.joints[range.clone()]
            .iter()
            .zip(&self.weights[range])
            .map(|(j, w)| (*j as usize, *w))
    }
}

/// Linear blend directions stored component-major: direction `c` is
/// `data[c * stride..(c + 1) * stride]`, with `stride = num_vertices * 3` for vertices or `NUM_JOINTS * 3` for
/// joints. Component-major means a frame with 10 betas reads 10 contiguous rows, whatever the file's 400.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BlendDirs {
    pub data: Vec<f32>,
    pub stride: usize,
}

impl BlendDirs {
    pub fn num_components(&self) -> usize {
        self.data.len().checked_div(self.stride).unwrap_or(0)
    }

    pub fn component(&self, c: usize) -> &[f32] {
        &self.data[c * self.stride..(c + 1) * self.stride]
    }
}

/// A body model ready for the forward pass. Both SMPL-X files and the stand-in produce one of these.
#[derive(Clone, Debug)]
pub struct BodyModel {
    pub kind: ModelKind,
    /// Rest mesh in the model frame (metres, +y up, facing +z, +x the body's left).
    pub v_template: Vec<[f32; 3]>,
    pub faces: Vec<[u32; 3]>,
    /// Shape (beta) directions over vertices, component-major.
    pub shape_dirs: BlendDirs,
    /// Expression directions over vertices, component-major (empty for the stand-in).
    pub expression_dirs: BlendDirs,
    /// Rest joints of the template (the joint regressor applied to `v_template`).
    pub j_template: [[f32; 3]; NUM_JOINTS],
    /// Joint offsets per shape component (the joint regressor applied to each shape direction).
    pub j_shape_dirs: BlendDirs,
    /// Joint offsets per expression component.
    pub j_expression_dirs: BlendDirs,
    /// Pose-corrective blend shapes (at half precision), vertex-major: row `3 * v + axis` holds NUM_POSE_FEATURES
    /// values. `None` for the stand-in, which has no correctives.
    pub posedirs: Option<PoseDirs>,
    /// Parent of each joint (root: -1). Parents precede children.
    pub parents: [i32; NUM_JOINTS],
    pub lbs_weights: SparseWeights,
    /// Mean hand pose (left 45 ‖ right 45, axis-angle), added to the hand poses unless flat hands are asked for.
    pub hands_mean: Option<[f32; 90]>,
    /// Things the user should know about this model (they reach reports and logs).
    pub warnings: Vec<String>,
}

impl BodyModel {
    /// The built-in procedural stand-in body (not SMPL-X): used when the user has no model file.
    pub fn stand_in() -> BodyModel {
        standin::build()
    }

    pub fn num_vertices(&self) -> usize {
        self.v_template.len()
    }

    pub fn is_stand_in(&self) -> bool {
        self.kind == ModelKind::StandIn
    }

    /// One line saying which model this is, e.g. for logs and file headers.
    pub fn describe(&self) -> String {
        match &self.kind {
            ModelKind::Smplx(info) => {
                // Said wherever the model is named (logs, reports, exported meshes): the one place its values
                // are not the file's to the bit.
                format!(
                    "SMPL-X {} from {} (pose correctives held at half precision)",
                    info.variant,
                    info.path.display()
                )
            }
            ModelKind::StandIn => "built-in stand-in body (not SMPL-X)".to_string(),
        }
    }
}

/// The parameters that pose one body, in SMPL-X joint order.
#[derive(Clone, Debug, PartialEq)]
pub struct BodyParams {
    /// Axis-angle rotation per SMPL-X joint (root, 21 body, jaw, eyes, 15 left-hand, 15 right-hand), without the
    /// hand mean.
    pub pose: [[f32; 3]; NUM_JOINTS],
    /// Shape coefficients; components beyond what the model has are ignored.
    pub betas: Vec<f32>,
    /// Expression coefficients; components beyond what the model has are ignored.
    pub expression: Vec<f32>,
    /// Translation added last (OSX's `cam_trans`: the result is in camera coordinates).
    pub transl: [f32; 3],
}

impl Default for BodyParams {
    fn default() -> Self {
        BodyParams {
            pose: [[0.0; 3]; NUM_JOINTS],
            betas: Vec::new(),
            expression: Vec::new(),
            transl: [0.0; 3],
        }
    }
}
