//! Loading the user's `SMPLX_{NEUTRAL,MALE,FEMALE}.npz` in every published variant into a [`BodyModel`].
//!
//! Only what the forward pass needs is required. Floats may be float32 or float64, faces uint32 or int64; the
//! root parent stored as 4294967295 is forced to -1; pickled entries (`joint2num`, `part2num`) and the hand PCA
//! arrays are never read.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use super::joints::{NUM_JOINTS, NUM_POSE_FEATURES};
use super::{BlendDirs, BodyModel, ModelKind, PoseDirs, SmplxInfo, SparseWeights};
use crate::frames::npz::{NpzArchive, NpzError, NpzLimits, shape_string};

/// Why a model file could not be used. Messages say what failed, then the file.
#[derive(Debug, thiserror::Error)]
pub enum ModelLoadError {
    #[error("cannot read the SMPL-X model: {source}: {path}")]
    Npz {
        path: PathBuf,
        #[source]
        source: NpzError,
    },
    #[error("the SMPL-X model lacks '{key}', which the forward pass needs: {path}")]
    MissingKey { key: &'static str, path: PathBuf },
    #[error("the SMPL-X model's '{key}' has shape {actual}, expected {expected}: {path}")]
    BadShape {
        key: &'static str,
        expected: String,
        actual: String,
        path: PathBuf,
    },
    #[error("the SMPL-X model's '{key}' is invalid ({detail}): {path}")]
    Invalid {
        key: &'static str,
        detail: String,
        path: PathBuf,
    },
}

/// Loads an SMPL-X model file.
pub fn load_smplx(path: &Path, limits: NpzLimits) -> Result<BodyModel, ModelLoadError> {
    let archive = NpzArchive::open(path, limits).map_err(|source| ModelLoadError::Npz {
        path: path.to_path_buf(),
        source,
    })?;
    ModelReader { archive }.load()
}

struct ModelReader<R: Read + Seek> {
    archive: NpzArchive<R>,
}

/// Where a file's expression directions live inside `shapedirs`, following smplx: files with 400 components
/// (v1.1, 2020, locked-head) hold 300 shape then 100 expression directions; older files (v1.0) hold 10 + 10.
struct ComponentLayout {
    num_shape: usize,
    expression_offset: usize,
    num_expression: usize,
    variant: String,
}

impl ComponentLayout {
    fn of(num_components: usize) -> ComponentLayout {
        if num_components >= 400 {
            ComponentLayout {
                num_shape: 300,
                expression_offset: 300,
                num_expression: 100,
                variant: "v1.1 (300 shape + 100 expression components)".to_string(),
            }
        } else if num_components >= 20 {
            ComponentLayout {
                num_shape: 10,
                expression_offset: 10,
                num_expression: 10,
                variant: "v1.0 (10 shape + 10 expression components)".to_string(),
            }
        } else {
            ComponentLayout {
                num_shape: num_components,
                expression_offset: num_components,
                num_expression: 0,
                variant: format!("{num_components} shape components, no expression"),
            }
        }
    }
}

impl<R: Read + Seek> ModelReader<R> {
    fn path(&self) -> PathBuf {
        self.archive.path().to_path_buf()
    }

    fn floats(&mut self, key: &'static str) -> Result<(Vec<u64>, Vec<f32>), ModelLoadError> {
        let (shape, data) = self
            .archive
            .read_f32(key)
            .map_err(|e| self.map_err(key, e))?;
        if let Some(position) = data.iter().position(|v| !v.is_finite()) {
            return Err(ModelLoadError::Invalid {
                key,
                detail: format!("value {position} is not finite"),
                path: self.path(),
            });
        }
        Ok((shape, data))
    }

    fn map_err(&self, key: &'static str, error: NpzError) -> ModelLoadError {
        match error {
            NpzError::MissingKey { .. } => ModelLoadError::MissingKey {
                key,
                path: self.path(),
            },
            source => ModelLoadError::Npz {
                path: self.path(),
                source,
            },
        }
    }

    fn expect_shape(
        &self,
        key: &'static str,
        actual: &[u64],
        expected: &[u64],
    ) -> Result<(), ModelLoadError> {
        if actual == expected {
            Ok(())
        } else {
            Err(ModelLoadError::BadShape {
                key,
                expected: shape_string(expected),
                actual: shape_string(actual),
                path: self.path(),
            })
        }
    }

    fn load(mut self) -> Result<BodyModel, ModelLoadError> {
        let (shape, v_template) = self.floats("v_template")?;
        let num_vertices = match shape.as_slice() {
            [n, 3] if *n > 0 => *n as usize,
            _ => {
                return Err(ModelLoadError::BadShape {
                    key: "v_template",
                    expected: "(V, 3)".to_string(),
                    actual: shape_string(&shape),
                    path: self.path(),
                });
            }
        };
        let v = num_vertices as u64;
        let v_template: Vec<[f32; 3]> = v_template
            .chunks_exact(3)
            .map(|p| [p[0], p[1], p[2]])
            .collect();

        let faces = self.faces(num_vertices)?;
        let parents = self.parents()?;

        let (shape, weights) = self.floats("weights")?;
        self.expect_shape("weights", &shape, &[v, NUM_JOINTS as u64])?;
        let lbs_weights = SparseWeights::from_dense(&weights, num_vertices);
        drop(weights);

        let (shape, regressor) = self.floats("J_regressor")?;
        self.expect_shape("J_regressor", &shape, &[NUM_JOINTS as u64, v])?;
        let regressor = SparseRegressor::from_dense(&regressor, num_vertices);
        let j_template = regressor.apply_to_points(&v_template);

        // shapedirs before posedirs, so the transient transpose buffer is freed before the largest array arrives.
        let (shapedirs, layout) = self.shapedirs(num_vertices, &regressor)?;
        // Held at half precision; the file's float32 copy is freed at the end of this statement.
        let posedirs = PoseDirs::from_f32(&self.posedirs(num_vertices)?);

        let mut warnings = Vec::new();
        let hands_mean = self.hands_mean(&mut warnings)?;
        let info = SmplxInfo {
            path: self.path(),
            variant: layout.variant.clone(),
            num_shape_components: shapedirs.shape.num_components(),
            num_expression_components: shapedirs.expression.num_components(),
            expression_offset: layout.expression_offset,
            has_hand_mean: hands_mean.is_some(),
        };
        Ok(BodyModel {
            kind: ModelKind::Smplx(info),
            v_template,
            faces,
            shape_dirs: shapedirs.shape,
            expression_dirs: shapedirs.expression,
            j_template,
            j_shape_dirs: shapedirs.joint_shape,
            j_expression_dirs: shapedirs.joint_expression,
            posedirs: Some(posedirs),
            parents,
            lbs_weights,
            hands_mean,
            warnings,
        })
    }

    fn faces(&mut self, num_vertices: usize) -> Result<Vec<[u32; 3]>, ModelLoadError> {
        let (shape, faces) = self
            .archive
            .read_i64("f")
            .map_err(|e| self.map_err("f", e))?;
        if !matches!(shape.as_slice(), [_, 3]) {
            return Err(ModelLoadError::BadShape {
                key: "f",
                expected: "(F, 3)".to_string(),
                actual: shape_string(&shape),
                path: self.path(),
            });
        }
        if let Some(bad) = faces
            .iter()
            .find(|i| !(0..num_vertices as i64).contains(*i))
        {
            return Err(ModelLoadError::Invalid {
                key: "f",
                detail: format!("vertex index {bad} is outside 0..{num_vertices}"),
                path: self.path(),
            });
        }
        Ok(faces
            .chunks_exact(3)
            .map(|f| [f[0] as u32, f[1] as u32, f[2] as u32])
            .collect())
    }

    fn parents(&mut self) -> Result<[i32; NUM_JOINTS], ModelLoadError> {
        let (shape, table) = self
            .archive
            .read_i64("kintree_table")
            .map_err(|e| self.map_err("kintree_table", e))?;
        self.expect_shape("kintree_table", &shape, &[2, NUM_JOINTS as u64])?;
        let mut parents = [-1i32; NUM_JOINTS];
        // Files store the root's parent as 4294967295 (u32 -1); it is the root whatever the value.
        for joint in 1..NUM_JOINTS {
            let parent = table[joint];
            if !(0..joint as i64).contains(&parent) {
                return Err(ModelLoadError::Invalid {
                    key: "kintree_table",
                    detail: format!("joint {joint} has parent {parent}, which does not precede it"),
                    path: self.path(),
                });
            }
            parents[joint] = parent as i32;
        }
        Ok(parents)
    }

    fn shapedirs(
        &mut self,
        num_vertices: usize,
        regressor: &SparseRegressor,
    ) -> Result<(ShapeDirections, ComponentLayout), ModelLoadError> {
        let (shape, shapedirs) = self.floats("shapedirs")?;
        let num_components = match shape.as_slice() {
            [v, 3, s] if *v as usize == num_vertices && *s > 0 => *s as usize,
            _ => {
                return Err(ModelLoadError::BadShape {
                    key: "shapedirs",
                    expected: format!("({num_vertices}, 3, S)"),
                    actual: shape_string(&shape),
                    path: self.path(),
                });
            }
        };
        let layout = ComponentLayout::of(num_components);
        let pick = |first: usize, count: usize| {
            let components: Vec<usize> = (first..first + count).collect();
            (
                component_major(&shapedirs, num_components, &components),
                regressor.apply_to_directions(&shapedirs, num_components, &components),
            )
        };
        let (shape_dirs, joint_shape) = pick(0, layout.num_shape);
        let (expression, joint_expression) = pick(layout.expression_offset, layout.num_expression);
        Ok((
            ShapeDirections {
                shape: shape_dirs,
                expression,
                joint_shape,
                joint_expression,
            },
            layout,
        ))
    }

    fn posedirs(&mut self, num_vertices: usize) -> Result<Vec<f32>, ModelLoadError> {
        let (shape, posedirs) = self.floats("posedirs")?;
        let (v, p) = (num_vertices as u64, NUM_POSE_FEATURES as u64);
        // (V, 3, 486) as published; (V·3, 486) in some flattened conversions. Both are vertex-major already.
        if shape.as_slice() != [v, 3, p] && shape.as_slice() != [v * 3, p] {
            return Err(ModelLoadError::BadShape {
                key: "posedirs",
                expected: shape_string(&[v, 3, p]),
                actual: shape_string(&shape),
                path: self.path(),
            });
        }
        Ok(posedirs)
    }

    fn hands_mean(
        &mut self,
        warnings: &mut Vec<String>,
    ) -> Result<Option<[f32; 90]>, ModelLoadError> {
        if !(self.archive.contains("hands_meanl") && self.archive.contains("hands_meanr")) {
            warnings.push(
                "the model has no hands_meanl/hands_meanr: hands are posed flat, unlike OSX, which adds the mean \
                 hand pose"
                    .to_string(),
            );
            return Ok(None);
        }
        let mut mean = [0.0f32; 90];
        for (key, half) in [("hands_meanl", 0), ("hands_meanr", 45)] {
            let (shape, values) = self.floats(key)?;
            if values.len() != 45 {
                return Err(ModelLoadError::BadShape {
                    key,
                    expected: "(45,)".to_string(),
                    actual: shape_string(&shape),
                    path: self.path(),
                });
            }
            mean[half..half + 45].copy_from_slice(&values);
        }
        Ok(Some(mean))
    }
}

struct ShapeDirections {
    shape: BlendDirs,
    expression: BlendDirs,
    joint_shape: BlendDirs,
    joint_expression: BlendDirs,
}

/// Copies the chosen components out of a (V·3, S) vertex-major matrix into component-major rows.
fn component_major(shapedirs: &[f32], num_components: usize, components: &[usize]) -> BlendDirs {
    let stride = shapedirs.len() / num_components;
    let mut data = vec![0.0f32; components.len() * stride];
    for (row, values) in shapedirs.chunks_exact(num_components).enumerate() {
        for (slot, &c) in components.iter().enumerate() {
            data[slot * stride + row] = values[c];
        }
    }
    BlendDirs { data, stride }
}

/// The joint regressor's non-zero entries per joint. SMPL-X regresses each joint from a few dozen vertices, so
/// folding it into the shape directions at load time is cheap this way.
struct SparseRegressor {
    rows: Vec<Vec<(usize, f64)>>,
}

impl SparseRegressor {
    fn from_dense(dense: &[f32], num_vertices: usize) -> SparseRegressor {
        let rows = dense
            .chunks_exact(num_vertices)
            .map(|row| {
                row.iter()
                    .enumerate()
                    .filter(|(_, w)| **w != 0.0)
                    .map(|(v, w)| (v, f64::from(*w)))
                    .collect()
            })
            .collect();
        SparseRegressor { rows }
    }

    fn apply_to_points(&self, points: &[[f32; 3]]) -> [[f32; 3]; NUM_JOINTS] {
        let mut joints = [[0.0f32; 3]; NUM_JOINTS];
        for (joint, row) in joints.iter_mut().zip(&self.rows) {
            let mut sum = [0.0f64; 3];
            for &(v, w) in row {
                for axis in 0..3 {
                    sum[axis] += w * f64::from(points[v][axis]);
                }
            }
            *joint = sum.map(|s| s as f32);
        }
        joints
    }

    /// `J_regressor · shapedirs[..., c]` for each chosen component, component-major over joints.
    fn apply_to_directions(
        &self,
        shapedirs: &[f32],
        num_components: usize,
        components: &[usize],
    ) -> BlendDirs {
        let stride = NUM_JOINTS * 3;
        let mut sums = vec![0.0f64; components.len() * stride];
        for (joint, row) in self.rows.iter().enumerate() {
            for &(v, w) in row {
                for axis in 0..3 {
                    let values = &shapedirs[(v * 3 + axis) * num_components..][..num_components];
                    for (slot, &c) in components.iter().enumerate() {
                        sums[slot * stride + joint * 3 + axis] += w * f64::from(values[c]);
                    }
                }
            }
        }
        BlendDirs {
            data: sums.into_iter().map(|s| s as f32).collect(),
            stride,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_layout_follows_smplx_for_each_release() {
        let v11 = ComponentLayout::of(400);
        assert_eq!(
            (v11.num_shape, v11.expression_offset, v11.num_expression),
            (300, 300, 100)
        );
        let v10 = ComponentLayout::of(20);
        assert_eq!(
            (v10.num_shape, v10.expression_offset, v10.num_expression),
            (10, 10, 10)
        );
        let shape_only = ComponentLayout::of(10);
        assert_eq!((shape_only.num_shape, shape_only.num_expression), (10, 0));
    }

    #[test]
    fn component_major_transposes_chosen_columns() {
        // Two rows (V·3 = 2), three components.
        let shapedirs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let dirs = component_major(&shapedirs, 3, &[2, 0]);
        assert_eq!(dirs.stride, 2);
        assert_eq!(dirs.component(0), &[3.0, 6.0]);
        assert_eq!(dirs.component(1), &[1.0, 4.0]);
    }
}
