//! Per-person parameters from a frame's NPZ file(s): key aliases, person discovery, shape and finiteness checks.
//!
//! Keys resolve in order: `person_{i}_smplx_<name>` for persons with a prefix; `smplx_<name>`, then the smplx API
//! name (`global_orient`, `betas`, …) for files holding one person without a prefix. Persons are the
//! `person_<n>_` prefixes actually present: `person_ids` is not trusted over the keys.

use std::collections::BTreeSet;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use super::npz::{ArrayData, NpzArchive, NpzError, NpzLimits, shape_string};
use super::{FrameError, FrameSlot, PersonFile};
use crate::body::joints::{
    BODY_FIRST, JAW, LEFT_EYE, LEFT_HAND_FIRST, NUM_BODY_JOINTS, NUM_HAND_JOINTS, RIGHT_EYE,
    RIGHT_HAND_FIRST, ROOT,
};
use crate::body::{BodyParams, NUM_JOINTS};

/// Largest SMPLer-X camera sidecar read.
const MAX_SIDECAR_BYTES: u64 = 1024 * 1024;

/// Choices for reading frame files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadOptions {
    pub limits: NpzLimits,
    /// Also read saved vertices (`smplx_mesh_cam`), for `--mesh-source saved`.
    pub saved_vertices: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            limits: NpzLimits::FRAME,
            saved_vertices: false,
        }
    }
}

/// The valid parameters of one frame: one or more persons.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameParams {
    pub number: u32,
    /// `image_size` as stored, when present.
    pub image_size: Option<[f32; 2]>,
    /// Sorted by person id; never empty.
    pub persons: Vec<PersonParams>,
}

/// One detected person's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct PersonParams {
    pub id: u32,
    /// Axis-angle per SMPL-X joint. OSX's pose blocks (root, body, lhand, rhand, jaw) are placed at SMPL-X's joint
    /// numbers (root 0, body 1–21, jaw 22, eyes 23–24, left hand 25–39, right hand 40–54).
    pub pose: [[f32; 3]; NUM_JOINTS],
    pub betas: Vec<f32>,
    pub expression: Vec<f32>,
    /// Camera-space translation added to the mesh; `None` when the file has none.
    pub cam_trans: Option<[f32; 3]>,
    pub focal: Option<[f32; 2]>,
    pub princpt: Option<[f32; 2]>,
    pub bbox_xywh: Option<[f32; 4]>,
    /// Vertices saved by the recovery model (camera coordinates), when asked for and present.
    pub saved_vertices: Option<Vec<[f32; 3]>>,
}

impl PersonParams {
    /// The parameters of the forward pass; the translation is `cam_trans` (zero when absent).
    pub fn body_params(&self) -> BodyParams {
        BodyParams {
            pose: self.pose,
            betas: self.betas.clone(),
            expression: self.expression.clone(),
            transl: self.cam_trans.unwrap_or([0.0; 3]),
        }
    }
}

/// A pose block: OSX's key name, the smplx API name, where it goes in SMPL-X's joint order, and whether a
/// frame without it is invalid (eye poses are never predicted by OSX and default to zero).
struct PoseBlock {
    osx_name: &'static str,
    api_name: &'static str,
    first_joint: usize,
    num_joints: usize,
    required: bool,
}

const POSE_BLOCKS: [PoseBlock; 7] = [
    PoseBlock {
        osx_name: "root_pose",
        api_name: "global_orient",
        first_joint: ROOT,
        num_joints: 1,
        required: true,
    },
    PoseBlock {
        osx_name: "body_pose",
        api_name: "body_pose",
        first_joint: BODY_FIRST,
        num_joints: NUM_BODY_JOINTS,
        required: true,
    },
    PoseBlock {
        osx_name: "lhand_pose",
        api_name: "left_hand_pose",
        first_joint: LEFT_HAND_FIRST,
        num_joints: NUM_HAND_JOINTS,
        required: true,
    },
    PoseBlock {
        osx_name: "rhand_pose",
        api_name: "right_hand_pose",
        first_joint: RIGHT_HAND_FIRST,
        num_joints: NUM_HAND_JOINTS,
        required: true,
    },
    PoseBlock {
        osx_name: "jaw_pose",
        api_name: "jaw_pose",
        first_joint: JAW,
        num_joints: 1,
        required: true,
    },
    PoseBlock {
        osx_name: "leye_pose",
        api_name: "leye_pose",
        first_joint: LEFT_EYE,
        num_joints: 1,
        required: false,
    },
    PoseBlock {
        osx_name: "reye_pose",
        api_name: "reye_pose",
        first_joint: RIGHT_EYE,
        num_joints: 1,
        required: false,
    },
];

/// How one person's keys are named in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Naming {
    /// `person_{i}_smplx_root_pose`, `person_{i}_cam_trans` (the OSX users' layout).
    Prefixed(u32),
    /// `smplx_root_pose`, `cam_trans` (one person per file), falling back to smplx API names.
    Unprefixed,
}

impl Naming {
    /// Candidate keys for an SMPL-X parameter, in resolution order.
    fn smplx_keys(self, osx_name: &str, api_name: &str) -> Vec<String> {
        match self {
            Naming::Prefixed(i) => vec![format!("person_{i}_smplx_{osx_name}")],
            Naming::Unprefixed => vec![format!("smplx_{osx_name}"), api_name.to_string()],
        }
    }

    /// Candidate keys for a camera value; persons with a prefix fall back to a frame-wide value.
    fn camera_keys(self, name: &str) -> Vec<String> {
        match self {
            Naming::Prefixed(i) => vec![format!("person_{i}_{name}"), name.to_string()],
            Naming::Unprefixed => vec![name.to_string()],
        }
    }

    fn cam_trans_keys(self) -> Vec<String> {
        match self {
            Naming::Prefixed(i) => vec![format!("person_{i}_cam_trans")],
            Naming::Unprefixed => vec!["cam_trans".to_string(), "transl".to_string()],
        }
    }
}

/// Reads the parameters of one frame slot: every file of the slot, every person of every file.
pub fn read_frame(slot: &FrameSlot, options: &ReadOptions) -> Result<FrameParams, FrameError> {
    let Some(first) = slot.files.first() else {
        return Err(FrameError::MissingFile {
            number: slot.number,
        });
    };
    let mut persons = Vec::new();
    let mut image_size = None;
    for file in &slot.files {
        let mut reader = FileReader::open(&file.path, options)?;
        image_size = image_size.or(reader.image_size()?);
        persons.extend(reader.persons(file)?);
    }
    if persons.is_empty() {
        return Err(FrameError::NoPerson {
            file: first.path.clone(),
        });
    }
    persons.sort_by_key(|p| p.id);
    Ok(FrameParams {
        number: slot.number,
        image_size,
        persons,
    })
}

struct FileReader<R: Read + Seek> {
    archive: NpzArchive<R>,
    options: ReadOptions,
}

impl FileReader<std::io::Cursor<Vec<u8>>> {
    fn open(path: &Path, options: &ReadOptions) -> Result<Self, FrameError> {
        let archive = NpzArchive::read_file(path, options.limits).map_err(|e| match e {
            NpzError::Io(io) => FrameError::Unreadable {
                file: path.to_path_buf(),
                detail: io.to_string(),
            },
            other => FrameError::CorruptNpz {
                file: path.to_path_buf(),
                detail: other.to_string(),
            },
        })?;
        Ok(FileReader {
            archive,
            options: *options,
        })
    }
}

impl<R: Read + Seek> FileReader<R> {
    fn file(&self) -> PathBuf {
        self.archive.path().to_path_buf()
    }

    /// The persons of this file: its `person_<n>_` prefixes, or one unprefixed person.
    fn persons(&mut self, source: &PersonFile) -> Result<Vec<PersonParams>, FrameError> {
        let prefixed: BTreeSet<u32> = self.archive.keys().filter_map(person_prefix).collect();
        if !prefixed.is_empty() {
            return prefixed
                .into_iter()
                .map(|id| self.person(Naming::Prefixed(id), id, source))
                .collect();
        }
        if self.has_unprefixed_person() {
            let id = source.person.unwrap_or(0);
            return Ok(vec![self.person(Naming::Unprefixed, id, source)?]);
        }
        Ok(Vec::new())
    }

    fn has_unprefixed_person(&self) -> bool {
        let naming = Naming::Unprefixed;
        let mut keys = POSE_BLOCKS
            .iter()
            .flat_map(|b| naming.smplx_keys(b.osx_name, b.api_name))
            .chain(naming.smplx_keys("shape", "betas"))
            .chain(naming.cam_trans_keys());
        keys.any(|k| self.archive.contains(&k))
    }

    fn person(
        &mut self,
        naming: Naming,
        id: u32,
        source: &PersonFile,
    ) -> Result<PersonParams, FrameError> {
        let mut pose = [[0.0f32; 3]; NUM_JOINTS];
        for block in &POSE_BLOCKS {
            let keys = naming.smplx_keys(block.osx_name, block.api_name);
            let Some(values) = self.fixed(&keys, block.num_joints * 3, block.required)? else {
                continue;
            };
            for (joint, axis_angle) in pose[block.first_joint..]
                .iter_mut()
                .zip(values.chunks_exact(3))
            {
                joint.copy_from_slice(axis_angle);
            }
        }
        let betas = self.coefficients(&naming.smplx_keys("shape", "betas"))?;
        let expression = self.coefficients(&naming.smplx_keys("expr", "expression"))?;
        let cam_trans = self
            .fixed(&naming.cam_trans_keys(), 3, false)?
            .map(|v| [v[0], v[1], v[2]]);
        let mut focal = self
            .fixed(&naming.camera_keys("focal"), 2, false)?
            .map(|v| [v[0], v[1]]);
        let mut princpt = self
            .fixed(&naming.camera_keys("princpt"), 2, false)?
            .map(|v| [v[0], v[1]]);
        let mut bbox_xywh = self
            .fixed(&naming.camera_keys("bbox_xywh"), 4, false)?
            .map(|v| [v[0], v[1], v[2], v[3]]);
        if let Some(meta) = &source.meta {
            let sidecar = read_sidecar(meta);
            focal = focal.or(sidecar.focal);
            princpt = princpt.or(sidecar.princpt);
            bbox_xywh = bbox_xywh.or(sidecar.bbox);
        }
        let saved_vertices = if self.options.saved_vertices {
            let key = match naming {
                Naming::Prefixed(i) => format!("person_{i}_smplx_mesh_cam"),
                Naming::Unprefixed => "smplx_mesh_cam".to_string(),
            };
            self.saved_vertices(&[key])?
        } else {
            None
        };
        Ok(PersonParams {
            id,
            pose,
            betas,
            expression,
            cam_trans,
            focal,
            princpt,
            bbox_xywh,
            saved_vertices,
        })
    }

    fn image_size(&mut self) -> Result<Option<[f32; 2]>, FrameError> {
        Ok(self
            .fixed(&["image_size".to_string()], 2, false)?
            .map(|v| [v[0], v[1]]))
    }

    /// The first candidate key present, or the missing-key error naming the first candidate.
    fn resolve<'k>(
        &self,
        keys: &'k [String],
        required: bool,
    ) -> Result<Option<&'k str>, FrameError> {
        if let Some(key) = keys.iter().find(|k| self.archive.contains(k)) {
            return Ok(Some(key));
        }
        if required {
            return Err(FrameError::MissingKey {
                key: keys[0].clone(),
                file: self.file(),
            });
        }
        Ok(None)
    }

    /// A parameter with a fixed number of values: shapes (k,), (1, k), (k/3, 3), (1, k/3, 3) all flatten.
    fn fixed(
        &mut self,
        keys: &[String],
        len: usize,
        required: bool,
    ) -> Result<Option<Vec<f32>>, FrameError> {
        let Some(key) = self.resolve(keys, required)? else {
            return Ok(None);
        };
        let (shape, values) = self.numbers(key)?;
        let core = strip_leading_ones(&shape);
        let fits = match core {
            [n] => *n as usize == len,
            [n, 3] => *n as usize * 3 == len,
            [] => len == 1,
            _ => false,
        };
        if !fits {
            return Err(self.bad_shape(key, format!("{len} values"), shape_string(&shape)));
        }
        Ok(Some(values))
    }

    /// Shape or expression coefficients: any length, zero when absent.
    fn coefficients(&mut self, keys: &[String]) -> Result<Vec<f32>, FrameError> {
        let Some(key) = self.resolve(keys, false)? else {
            return Ok(Vec::new());
        };
        let (shape, values) = self.numbers(key)?;
        if strip_leading_ones(&shape).len() > 1 {
            return Err(self.bad_shape(
                key,
                "a vector (k,) or (1, k)".to_string(),
                shape_string(&shape),
            ));
        }
        Ok(values)
    }

    /// Saved vertices, (n, 3) or (1, n, 3).
    fn saved_vertices(&mut self, keys: &[String]) -> Result<Option<Vec<[f32; 3]>>, FrameError> {
        let Some(key) = self.resolve(keys, false)? else {
            return Ok(None);
        };
        let (shape, values) = self.numbers(key)?;
        if !matches!(strip_leading_ones(&shape), [_, 3]) {
            return Err(self.bad_shape(key, "(n, 3) vertices".to_string(), shape_string(&shape)));
        }
        Ok(Some(
            values.chunks_exact(3).map(|v| [v[0], v[1], v[2]]).collect(),
        ))
    }

    /// Reads a numeric array and checks every value is finite.
    fn numbers(&mut self, key: &str) -> Result<(Vec<u64>, Vec<f32>), FrameError> {
        let array = self
            .archive
            .read(key)
            .map_err(|e| self.array_error(key, e))?;
        let values = match &array.data {
            ArrayData::Text(_) => {
                return Err(self.bad_shape(key, "numbers".to_string(), array.describe()));
            }
            _ => array.to_f32().unwrap_or_default(),
        };
        if values.iter().any(|v| !v.is_finite()) {
            return Err(FrameError::NonFinite {
                key: key.to_string(),
                file: self.file(),
            });
        }
        Ok((array.shape, values))
    }

    fn bad_shape(&self, key: &str, expected: String, actual: String) -> FrameError {
        FrameError::BadShape {
            key: key.to_string(),
            expected,
            actual,
            file: self.file(),
        }
    }

    fn array_error(&self, key: &str, error: NpzError) -> FrameError {
        match error {
            NpzError::Pickled { .. } => self.bad_shape(
                key,
                "numbers".to_string(),
                "a pickled object array (never unpickled)".to_string(),
            ),
            NpzError::WrongDtype { dtype, .. } => {
                self.bad_shape(key, "numbers".to_string(), format!("dtype {dtype}"))
            }
            NpzError::Io(io) => FrameError::Unreadable {
                file: self.file(),
                detail: io.to_string(),
            },
            other => FrameError::CorruptNpz {
                file: self.file(),
                detail: other.to_string(),
            },
        }
    }
}

/// `person_3_smplx_root_pose` → 3.
fn person_prefix(key: &str) -> Option<u32> {
    let rest = key.strip_prefix("person_")?;
    let (digits, _) = rest.split_once('_')?;
    if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn strip_leading_ones(shape: &[u64]) -> &[u64] {
    let ones = shape.iter().take_while(|d| **d == 1).count();
    // Keep one dimension of a shape made only of ones, so (1, 1) still reads as one value.
    &shape[ones.min(shape.len().saturating_sub(1))..]
}

/// The camera values of an SMPLer-X sidecar (`meta/<stem>.json`); anything unreadable is left out with a
/// warning, since the camera is optional.
#[derive(Debug, Default, serde::Deserialize)]
struct Sidecar {
    focal: Option<[f32; 2]>,
    princpt: Option<[f32; 2]>,
    bbox: Option<[f32; 4]>,
}

fn read_sidecar(path: &Path) -> Sidecar {
    let read = || -> Result<Sidecar, String> {
        let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
        let mut text = String::new();
        file.take(MAX_SIDECAR_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| e.to_string())?;
        let sidecar: Sidecar = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        Ok(Sidecar {
            focal: sidecar.focal.filter(|v| finite(v)),
            princpt: sidecar.princpt.filter(|v| finite(v)),
            bbox: sidecar.bbox.filter(|v| finite(v)),
        })
    };
    read().unwrap_or_else(|error| {
        tracing::warn!(file = %path.display(), %error, "ignoring unreadable camera sidecar");
        Sidecar::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_prefixes_parse_only_digits() {
        assert_eq!(person_prefix("person_0_smplx_root_pose"), Some(0));
        assert_eq!(person_prefix("person_12_cam_trans"), Some(12));
        assert_eq!(person_prefix("person_ids"), None);
        assert_eq!(person_prefix("person__x"), None);
    }

    #[test]
    fn leading_unit_dimensions_are_stripped() {
        assert_eq!(strip_leading_ones(&[1, 3]), &[3]);
        assert_eq!(strip_leading_ones(&[1, 21, 3]), &[21, 3]);
        assert_eq!(strip_leading_ones(&[1, 1]), &[1]);
        assert_eq!(strip_leading_ones(&[63]), &[63]);
    }

    #[test]
    fn unprefixed_keys_try_osx_names_before_smplx_api_names() {
        assert_eq!(
            Naming::Unprefixed.smplx_keys("root_pose", "global_orient"),
            vec!["smplx_root_pose", "global_orient"]
        );
        assert_eq!(
            Naming::Prefixed(2).smplx_keys("lhand_pose", "left_hand_pose"),
            vec!["person_2_smplx_lhand_pose"]
        );
        assert_eq!(
            Naming::Unprefixed.cam_trans_keys(),
            vec!["cam_trans", "transl"]
        );
    }
}
