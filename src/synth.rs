//! Synthetic data in the real file layouts, for tests, benchmarks and samples: NPZ archives written like
//! numpy's `savez`, model files in the exact `SMPLX_*.npz` key layout with random but structurally valid
//! contents (never SMPL-X data), and per-frame parameter files in each naming and key layout.

use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};
use std::path::Path;

use npyz::WriterBuilder;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::body::joints::{NUM_JOINTS, NUM_POSE_FEATURES, PARENTS};

/// The values of one array.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    U32(Vec<u32>),
    Bool(Vec<bool>),
    Text(Vec<String>),
    /// A complete `.npy` file as bytes, written as-is (pickled object arrays, hostile headers).
    RawNpy(Vec<u8>),
}

/// One array of an archive.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub key: String,
    pub shape: Vec<u64>,
    pub values: Values,
}

/// The arrays of an NPZ archive, in order; tests edit them before writing to inject faults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NpzContents {
    pub entries: Vec<Entry>,
}

impl NpzContents {
    pub fn push(&mut self, key: impl Into<String>, shape: &[u64], values: Values) {
        self.entries.push(Entry {
            key: key.into(),
            shape: shape.to_vec(),
            values,
        });
    }

    /// A float array, stored as float64 when `float64` is set (the values are exact either way).
    pub fn push_floats(
        &mut self,
        key: impl Into<String>,
        shape: &[u64],
        values: &[f32],
        float64: bool,
    ) {
        let values = if float64 {
            Values::F64(values.iter().map(|v| f64::from(*v)).collect())
        } else {
            Values::F32(values.to_vec())
        };
        self.push(key, shape, values);
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.key == key)
    }

    pub fn remove(&mut self, key: &str) -> Option<Entry> {
        let position = self.entries.iter().position(|e| e.key == key)?;
        Some(self.entries.remove(position))
    }

    pub fn keys(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.key.as_str()).collect()
    }

    /// Writes the archive like numpy: one `<key>.npy` entry each, zip64 headers, stored (`savez`) or deflated
    /// (`savez_compressed`).
    pub fn write(&self, path: &Path, compressed: bool) -> io::Result<()> {
        let mut out = BufWriter::new(File::create(path)?);
        self.write_to(&mut out, compressed)?;
        out.flush()
    }

    pub fn to_bytes(&self, compressed: bool) -> io::Result<Vec<u8>> {
        let mut out = io::Cursor::new(Vec::new());
        self.write_to(&mut out, compressed)?;
        Ok(out.into_inner())
    }

    fn write_to<W: Write + Seek>(&self, out: W, compressed: bool) -> io::Result<()> {
        let method = if compressed {
            CompressionMethod::Deflated
        } else {
            CompressionMethod::Stored
        };
        let options = SimpleFileOptions::default()
            .compression_method(method)
            .large_file(true);
        let mut zip = ZipWriter::new(out);
        for entry in &self.entries {
            zip.start_file(format!("{}.npy", entry.key), options)
                .map_err(io::Error::other)?;
            entry.write_npy(&mut zip)?;
        }
        zip.finish().map_err(io::Error::other)?;
        Ok(())
    }
}

impl Entry {
    fn write_npy(&self, out: &mut impl Write) -> io::Result<()> {
        fn numbers<T: npyz::AutoSerialize + Copy>(
            out: &mut impl Write,
            shape: &[u64],
            values: &[T],
        ) -> io::Result<()> {
            let mut writer = npyz::WriteOptions::new()
                .default_dtype()
                .shape(shape)
                .writer(out)
                .begin_nd()?;
            writer.extend(values.iter().copied())?;
            writer.finish()
        }
        match &self.values {
            Values::F32(v) => numbers(out, &self.shape, v),
            Values::F64(v) => numbers(out, &self.shape, v),
            Values::I64(v) => numbers(out, &self.shape, v),
            Values::U32(v) => numbers(out, &self.shape, v),
            Values::Bool(v) => numbers(out, &self.shape, v),
            Values::Text(v) => {
                let width = v
                    .iter()
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(1)
                    .max(1);
                let dtype = npyz::DType::Plain(
                    format!("<U{width}")
                        .parse()
                        .map_err(|e| io::Error::other(format!("{e}")))?,
                );
                let mut writer = npyz::WriteOptions::<str>::new()
                    .dtype(dtype)
                    .shape(&self.shape)
                    .writer(out)
                    .begin_nd()?;
                for s in v {
                    writer.push(s.as_str())?;
                }
                writer.finish()
            }
            Values::RawNpy(bytes) => out.write_all(bytes),
        }
    }
}

/// A `.npy` file holding a pickled 0-d object array, as numpy writes `joint2num` (a dict) in SMPL-X files.
pub fn pickled_object_npy() -> Vec<u8> {
    let header = "{'descr': '|O', 'fortran_order': False, 'shape': (), }";
    npy_with_header(header, b"\x80\x02}q\x00X\x06\x00\x00\x00pelvisq\x01K\x00s.")
}

/// A version 1.0 `.npy` file with the given header dict text and raw data bytes.
pub fn npy_with_header(header: &str, data: &[u8]) -> Vec<u8> {
    // The magic, version and length take 10 bytes; numpy pads the header with spaces to a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    let padding = (64 - unpadded % 64) % 64;
    let text = format!("{header}{}\n", " ".repeat(padding));
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(data);
    out
}

/// A seeded source of test values.
pub struct Rng(fastrand::Rng);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(fastrand::Rng::with_seed(seed))
    }

    /// Uniform in [-scale, scale).
    pub fn symmetric(&mut self, scale: f32) -> f32 {
        (self.0.f32() * 2.0 - 1.0) * scale
    }

    pub fn vec(&mut self, len: usize, scale: f32) -> Vec<f32> {
        (0..len).map(|_| self.symmetric(scale)).collect()
    }

    pub fn index(&mut self, below: usize) -> usize {
        self.0.usize(..below)
    }

    pub fn unit(&mut self) -> f32 {
        self.0.f32()
    }
}

/// What kind of SMPL-X-layout model file to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelSpec {
    pub num_vertices: usize,
    pub num_faces: usize,
    /// 400 for v1.1/2020 files (300 shape + 100 expression), 20 for v1.0 (10 + 10).
    pub num_shape_components: usize,
    pub float64: bool,
    /// Faces as int64 (otherwise uint32).
    pub faces_int64: bool,
    pub hand_mean: bool,
    /// Include the MANO PCA arrays (`hands_components*`, `hands_coeffs*`), which the forward pass never needs.
    pub hand_pca: bool,
    /// Include the pickled `joint2num`/`part2num` dictionaries.
    pub pickled_extras: bool,
    pub compressed: bool,
}

impl ModelSpec {
    /// A small model (fast in tests) with the v1.1 component layout.
    pub fn small() -> ModelSpec {
        ModelSpec {
            num_vertices: 300,
            num_faces: 500,
            num_shape_components: 400,
            float64: false,
            faces_int64: false,
            hand_mean: true,
            hand_pca: true,
            pickled_extras: true,
            compressed: false,
        }
    }

    /// The real SMPL-X sizes: 10,475 vertices, 20,908 faces, 400 shape+expression components.
    pub fn real_size() -> ModelSpec {
        ModelSpec {
            num_vertices: 10_475,
            num_faces: 20_908,
            ..ModelSpec::small()
        }
    }
}

/// A generated model: the arrays as written, kept for reference implementations in tests.
#[derive(Clone, Debug)]
pub struct SynthModel {
    pub spec: ModelSpec,
    /// (V, 3)
    pub v_template: Vec<f32>,
    pub faces: Vec<[u32; 3]>,
    /// (55, V), dense, few non-zeros per row.
    pub j_regressor: Vec<f32>,
    /// (V, 55), dense, 1–4 non-zeros per row, rows sum to 1.
    pub weights: Vec<f32>,
    /// (V, 3, S)
    pub shapedirs: Vec<f32>,
    /// (V, 3, 486)
    pub posedirs: Vec<f32>,
    /// (90,): left 45 then right 45.
    pub hands_mean: Vec<f32>,
}

impl SynthModel {
    /// Random but structurally valid contents: vertices around a body-sized box, joint regressor rows of eight
    /// vertices, weights on one to four joints, small blend directions.
    pub fn generate(spec: ModelSpec, seed: u64) -> SynthModel {
        let mut rng = Rng::new(seed);
        let v = spec.num_vertices;
        let v_template: Vec<f32> = (0..v)
            .flat_map(|_| {
                [
                    rng.symmetric(0.6),
                    rng.symmetric(0.9) - 0.4,
                    rng.symmetric(0.15),
                ]
            })
            .collect();
        let faces = (0..spec.num_faces)
            .map(|_| {
                let a = rng.index(v);
                let b = (a + 1 + rng.index(v - 2)) % v;
                let mut c = rng.index(v);
                while c == a || c == b {
                    c = (c + 1) % v;
                }
                [a as u32, b as u32, c as u32]
            })
            .collect();
        let mut j_regressor = vec![0.0f32; NUM_JOINTS * v];
        for row in j_regressor.chunks_exact_mut(v) {
            let raw: Vec<f32> = (0..8).map(|_| 0.1 + rng.unit()).collect();
            let total: f32 = raw.iter().sum();
            for w in raw {
                row[rng.index(v)] += w / total;
            }
        }
        let mut weights = vec![0.0f32; v * NUM_JOINTS];
        for row in weights.chunks_exact_mut(NUM_JOINTS) {
            let count = 1 + rng.index(4);
            let raw: Vec<f32> = (0..count).map(|_| 0.1 + rng.unit()).collect();
            let total: f32 = raw.iter().sum();
            for w in raw {
                row[rng.index(NUM_JOINTS)] += w / total;
            }
        }
        SynthModel {
            spec,
            v_template,
            faces,
            j_regressor,
            weights,
            shapedirs: rng.vec(v * 3 * spec.num_shape_components, 0.01),
            posedirs: rng.vec(v * 3 * NUM_POSE_FEATURES, 0.005),
            hands_mean: rng.vec(90, 0.3),
        }
    }

    /// A model at SMPL-X's exact sizes whose mesh is the stand-in body: its 10,410 vertices and 20,700 faces padded
    /// to 10,475 and 20,908 (spare vertices hold the joints, so the regressor is exact; spare faces are
    /// degenerate), with small random blend shapes. Real-size cost in every stage, body-like pixels — what
    /// benchmarks of the whole pipeline need, where random faces would fill the screen.
    pub fn stand_in_shaped(seed: u64) -> SynthModel {
        let spec = ModelSpec::real_size();
        let body = crate::body::BodyModel::stand_in();
        let (v, n) = (spec.num_vertices, body.num_vertices());
        assert!(
            n + NUM_JOINTS <= v,
            "the stand-in leaves room for the joints"
        );
        let mut rng = Rng::new(seed);
        let mut v_template: Vec<f32> = body.v_template.iter().flatten().copied().collect();
        v_template.extend(body.j_template.iter().flatten());
        v_template.resize(v * 3, 0.0);
        let mut faces = body.faces.clone();
        faces.resize(spec.num_faces, [0, 0, 0]);
        let mut j_regressor = vec![0.0f32; NUM_JOINTS * v];
        for joint in 0..NUM_JOINTS {
            j_regressor[joint * v + n + joint] = 1.0;
        }
        let mut weights = vec![0.0f32; v * NUM_JOINTS];
        for vertex in 0..v {
            if vertex < n {
                for (joint, weight) in body.lbs_weights.of_vertex(vertex) {
                    weights[vertex * NUM_JOINTS + joint] = weight;
                }
            } else {
                weights[vertex * NUM_JOINTS] = 1.0;
            }
        }
        SynthModel {
            spec,
            v_template,
            faces,
            j_regressor,
            weights,
            shapedirs: rng.vec(v * 3 * spec.num_shape_components, 0.001),
            posedirs: rng.vec(v * 3 * NUM_POSE_FEATURES, 0.0002),
            hands_mean: body
                .hands_mean
                .map_or_else(|| vec![0.0; 90], |m| m.to_vec()),
        }
    }

    /// The arrays in the `SMPLX_*.npz` key layout.
    pub fn contents(&self) -> NpzContents {
        let spec = self.spec;
        let (v, f) = (spec.num_vertices as u64, spec.num_faces as u64);
        let j = NUM_JOINTS as u64;
        let mut out = NpzContents::default();
        let float64 = spec.float64;
        out.push_floats("v_template", &[v, 3], &self.v_template, float64);
        let face_indices = self.faces.iter().flatten();
        if spec.faces_int64 {
            out.push(
                "f",
                &[f, 3],
                Values::I64(face_indices.map(|i| i64::from(*i)).collect()),
            );
        } else {
            out.push("f", &[f, 3], Values::U32(face_indices.copied().collect()));
        }
        out.push_floats("J_regressor", &[j, v], &self.j_regressor, float64);
        out.push_floats("weights", &[v, j], &self.weights, float64);
        // Files store the root's parent as u32 -1 (4294967295), also when the table is int64.
        let root_parent = u32::MAX;
        let table: Vec<i64> = PARENTS
            .iter()
            .map(|p| {
                if *p < 0 {
                    i64::from(root_parent)
                } else {
                    i64::from(*p)
                }
            })
            .chain((0..NUM_JOINTS as i64).collect::<Vec<_>>())
            .collect();
        out.push("kintree_table", &[2, j], Values::I64(table));
        out.push_floats(
            "shapedirs",
            &[v, 3, spec.num_shape_components as u64],
            &self.shapedirs,
            float64,
        );
        out.push_floats(
            "posedirs",
            &[v, 3, NUM_POSE_FEATURES as u64],
            &self.posedirs,
            float64,
        );
        if spec.hand_mean {
            out.push_floats("hands_meanl", &[45], &self.hands_mean[..45], float64);
            out.push_floats("hands_meanr", &[45], &self.hands_mean[45..], float64);
        }
        if spec.hand_pca {
            let mut rng = Rng::new(7);
            for side in ["l", "r"] {
                out.push_floats(
                    format!("hands_components{side}"),
                    &[45, 45],
                    &rng.vec(45 * 45, 1.0),
                    float64,
                );
                out.push_floats(
                    format!("hands_coeffs{side}"),
                    &[1554, 45],
                    &rng.vec(1554 * 45, 1.0),
                    float64,
                );
            }
        }
        let mut rng = Rng::new(11);
        out.push(
            "lmk_faces_idx",
            &[51],
            Values::I64((0..51).map(|i| i % f as i64).collect()),
        );
        out.push_floats("lmk_bary_coords", &[51, 3], &rng.vec(51 * 3, 1.0), float64);
        out.push(
            "dynamic_lmk_faces_idx",
            &[79, 17],
            Values::I64((0..79 * 17).map(|i| i % f as i64).collect()),
        );
        out.push_floats(
            "dynamic_lmk_bary_coords",
            &[79, 17, 3],
            &rng.vec(79 * 17 * 3, 1.0),
            float64,
        );
        out.push_floats(
            "vt",
            &[v + 6, 2],
            &rng.vec((v as usize + 6) * 2, 1.0),
            float64,
        );
        out.push(
            "ft",
            &[f, 3],
            Values::I64(self.faces.iter().flatten().map(|i| i64::from(*i)).collect()),
        );
        if spec.pickled_extras {
            out.push("joint2num", &[], Values::RawNpy(pickled_object_npy()));
            out.push("part2num", &[], Values::RawNpy(pickled_object_npy()));
        }
        out
    }

    pub fn write(&self, path: &Path) -> io::Result<()> {
        self.contents().write(path, self.spec.compressed)
    }
}

/// One synthetic person's parameters, in OSX's blocks.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthPerson {
    pub root_pose: [f32; 3],
    pub body_pose: Vec<f32>,
    pub lhand_pose: Vec<f32>,
    pub rhand_pose: Vec<f32>,
    pub jaw_pose: [f32; 3],
    pub betas: Vec<f32>,
    pub expression: Vec<f32>,
    pub cam_trans: [f32; 3],
    pub focal: [f32; 2],
    pub princpt: [f32; 2],
    pub bbox_xywh: [f32; 4],
}

impl SynthPerson {
    /// Random poses (up to `pose_scale` radians per axis), 10 betas and 10 expression coefficients, and an
    /// OSX-like camera: the body about 20 m away seen through a long focal length.
    pub fn random(rng: &mut Rng, pose_scale: f32) -> SynthPerson {
        let mut axis_angle = |n| rng.vec(n, pose_scale);
        let root = axis_angle(3);
        let jaw = axis_angle(3);
        SynthPerson {
            root_pose: [std::f32::consts::PI + root[0], root[1], root[2]],
            body_pose: axis_angle(63),
            lhand_pose: axis_angle(45),
            rhand_pose: axis_angle(45),
            jaw_pose: [jaw[0], jaw[1], jaw[2]],
            betas: rng.vec(10, 1.0),
            expression: rng.vec(10, 1.0),
            cam_trans: [
                rng.symmetric(0.2),
                rng.symmetric(0.2),
                20.0 + rng.symmetric(5.0),
            ],
            focal: [19_531.0, 19_531.0],
            princpt: [640.0, 360.0],
            bbox_xywh: [265.0, -140.0, 750.0, 1000.0],
        }
    }
}

/// How a frame file names its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyStyle {
    /// OSX users' layout: `person_{i}_smplx_root_pose` (3,), `person_ids`, `image_size`, …
    OsxPrefixed,
    /// WLASL/SignBank: `smplx_root_pose` (3,), `smplx_body_pose` (21, 3), `cam_trans`, `focal`, `princpt`.
    SmplxUnprefixed,
    /// SMPLer-X: smplx API names with (1, k) shapes: `global_orient` (1, 3), `body_pose` (1, 21, 3), `transl`.
    SmplxApi,
}

/// The arrays of one frame file holding `persons` in the given key style.
pub fn frame_contents(style: KeyStyle, persons: &[SynthPerson], float64: bool) -> NpzContents {
    let mut out = NpzContents::default();
    match style {
        KeyStyle::OsxPrefixed => {
            out.push(
                "image_path",
                &[],
                Values::Text(vec!["frames/frame_0001.jpg".to_string()]),
            );
            out.push("image_size", &[2], Values::I64(vec![720, 1280]));
            out.push(
                "person_ids",
                &[persons.len() as u64],
                Values::I64((0..persons.len() as i64).collect()),
            );
            out.push("cfg_output_hm_shape", &[3], Values::I64(vec![16, 16, 12]));
            out.push("cfg_input_img_shape", &[2], Values::I64(vec![512, 384]));
            for (i, p) in persons.iter().enumerate() {
                let key = |name: &str| format!("person_{i}_{name}");
                out.push_floats(key("smplx_root_pose"), &[3], &p.root_pose, float64);
                out.push_floats(key("smplx_body_pose"), &[63], &p.body_pose, float64);
                out.push_floats(key("smplx_lhand_pose"), &[45], &p.lhand_pose, float64);
                out.push_floats(key("smplx_rhand_pose"), &[45], &p.rhand_pose, float64);
                out.push_floats(key("smplx_jaw_pose"), &[3], &p.jaw_pose, float64);
                out.push_floats(key("smplx_shape"), &[10], &p.betas, float64);
                out.push_floats(key("smplx_expr"), &[10], &p.expression, float64);
                out.push_floats(key("cam_trans"), &[3], &p.cam_trans, float64);
                out.push_floats(key("focal"), &[2], &p.focal, float64);
                out.push_floats(key("princpt"), &[2], &p.princpt, float64);
                out.push_floats(key("bbox_xywh"), &[4], &p.bbox_xywh, float64);
                out.push_floats(key("joint_img"), &[65, 3], &[0.5; 65 * 3], float64);
                out.push_floats(key("smplx_joint_proj"), &[137, 2], &[0.5; 137 * 2], float64);
            }
        }
        KeyStyle::SmplxUnprefixed => {
            if let Some(p) = persons.first() {
                out.push_floats("smplx_root_pose", &[3], &p.root_pose, float64);
                out.push_floats("smplx_body_pose", &[21, 3], &p.body_pose, float64);
                out.push_floats("smplx_lhand_pose", &[15, 3], &p.lhand_pose, float64);
                out.push_floats("smplx_rhand_pose", &[15, 3], &p.rhand_pose, float64);
                out.push_floats("smplx_jaw_pose", &[3], &p.jaw_pose, float64);
                out.push_floats("smplx_shape", &[10], &p.betas, float64);
                out.push_floats("smplx_expr", &[10], &p.expression, float64);
                out.push_floats("cam_trans", &[3], &p.cam_trans, float64);
                out.push_floats("focal", &[2], &p.focal, float64);
                out.push_floats("princpt", &[2], &p.princpt, float64);
            }
        }
        KeyStyle::SmplxApi => {
            if let Some(p) = persons.first() {
                out.push_floats("global_orient", &[1, 3], &p.root_pose, float64);
                out.push_floats("body_pose", &[1, 21, 3], &p.body_pose, float64);
                out.push_floats("left_hand_pose", &[1, 15, 3], &p.lhand_pose, float64);
                out.push_floats("right_hand_pose", &[1, 15, 3], &p.rhand_pose, float64);
                out.push_floats("jaw_pose", &[1, 3], &p.jaw_pose, float64);
                out.push_floats("leye_pose", &[1, 3], &[0.0; 3], float64);
                out.push_floats("reye_pose", &[1, 3], &[0.0; 3], float64);
                out.push_floats("betas", &[1, 10], &p.betas, float64);
                out.push_floats("expression", &[1, 10], &p.expression, float64);
                out.push_floats("transl", &[1, 3], &p.cam_trans, float64);
            }
        }
    }
    out
}

/// A frame file of the OSX users' layout in which no person was detected: frame-level keys only.
pub fn no_person_contents() -> NpzContents {
    let mut contents = frame_contents(KeyStyle::OsxPrefixed, &[], false);
    if let Some(ids) = contents.get_mut("person_ids") {
        ids.shape = vec![0];
        ids.values = Values::I64(vec![]);
    }
    contents
}

/// A fault real per-frame output has, injected into a frame file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// No file carries the frame number.
    MissingFile,
    /// The file was written but holds no person: frame-level keys only, `person_ids` empty.
    NoPerson,
    /// The archive is cut in half, as an interrupted write leaves it.
    Truncated,
    /// A required key is absent.
    MissingKey(String),
    /// The second value of a key is NaN.
    NotFinite(String),
}

impl Fault {
    /// The reason meshreel gives a frame with this fault (the strings of `FrameError::reason`).
    pub fn reason(&self) -> String {
        match self {
            Fault::MissingFile => "missing_file".to_string(),
            Fault::NoPerson => "no_person".to_string(),
            Fault::Truncated => "corrupt_npz".to_string(),
            Fault::MissingKey(key) => format!("missing_key:{key}"),
            Fault::NotFinite(key) => format!("non_finite:{key}"),
        }
    }
}

/// Writes a frame file of the OSX users' layout with `fault` injected into `contents` (for a missing file,
/// writes nothing).
pub fn write_frame_file(
    path: &Path,
    mut contents: NpzContents,
    fault: Option<&Fault>,
    compressed: bool,
) -> io::Result<()> {
    match fault {
        None => {}
        Some(Fault::MissingFile) => return Ok(()),
        Some(Fault::NoPerson) => {
            contents
                .entries
                .retain(|e| !e.key.starts_with("person_") || e.key == "person_ids");
            if let Some(ids) = contents.get_mut("person_ids") {
                ids.shape = vec![0];
                ids.values = Values::I64(vec![]);
            }
        }
        Some(Fault::Truncated) => {
            let bytes = contents.to_bytes(compressed)?;
            return std::fs::write(path, &bytes[..bytes.len() / 2]);
        }
        Some(Fault::MissingKey(key)) => {
            contents.remove(key);
        }
        Some(Fault::NotFinite(key)) => {
            if let Some(entry) = contents.get_mut(key) {
                match &mut entry.values {
                    Values::F32(v) if v.len() > 1 => v[1] = f32::NAN,
                    Values::F64(v) if v.len() > 1 => v[1] = f64::NAN,
                    _ => {}
                }
            }
        }
    }
    contents.write(path, compressed)
}

/// A synthetic MP4's frame timing: what the sample table says, with no real picture data (the samples are
/// filler bytes, so it does not decode). For testing container timing: rates, B-frame reordering, edit lists.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthMp4 {
    pub width: u16,
    pub height: u16,
    /// Track ticks per second.
    pub timescale: u32,
    /// Decode duration of each frame, in ticks; one entry per frame.
    pub frame_ticks: Vec<u32>,
    /// Composition offsets (`ctts`), one per frame, when the frames are reordered.
    pub composition_offsets: Option<Vec<u32>>,
    /// Edit list: an empty edit of this many movie ticks (timescale 1000), then presentation from this media time.
    pub empty_edit_ms: u32,
    pub edit_media_time: Option<u32>,
}

impl SynthMp4 {
    /// `frames` frames at a constant rate of `timescale / ticks` frames per second.
    pub fn constant(
        frames: usize,
        timescale: u32,
        ticks: u32,
        width: u16,
        height: u16,
    ) -> SynthMp4 {
        SynthMp4 {
            width,
            height,
            timescale,
            frame_ticks: vec![ticks; frames],
            composition_offsets: None,
            empty_edit_ms: 0,
            edit_media_time: None,
        }
    }

    /// The file's bytes: `ftyp`, `mdat`, then `moov` (as a file not made "fast start").
    pub fn to_bytes(&self) -> Vec<u8> {
        let frames = self.frame_ticks.len() as u32;
        let ftyp = mp4_box(
            b"ftyp",
            &[
                b"isom".as_slice(),
                &512u32.to_be_bytes(),
                b"isomiso2avc1mp41",
            ]
            .concat(),
        );
        const SAMPLE_BYTES: u32 = 16;
        let mdat = mp4_box(b"mdat", &vec![0u8; (SAMPLE_BYTES * frames) as usize]);
        let chunk_offset = (ftyp.len() + 8) as u32;
        let media_ticks: u64 = self.frame_ticks.iter().map(|t| u64::from(*t)).sum();
        let movie_ms = (media_ticks * 1000 / u64::from(self.timescale.max(1))) as u32;

        let mut mvhd = full_box_header(0, 0);
        for value in [0u32, 0, 1000, movie_ms, 0x0001_0000] {
            mvhd.extend(value.to_be_bytes());
        }
        mvhd.extend(0x0100u16.to_be_bytes());
        mvhd.extend([0u8; 10]);
        mvhd.extend(unity_matrix());
        mvhd.extend([0u8; 24]);
        mvhd.extend(2u32.to_be_bytes());

        let mut tkhd = full_box_header(0, 3);
        for value in [0u32, 0, 1, 0, movie_ms] {
            tkhd.extend(value.to_be_bytes());
        }
        tkhd.extend([0u8; 8]);
        tkhd.extend([0u8; 8]); // layer, alternate group, volume, reserved
        tkhd.extend(unity_matrix());
        tkhd.extend((u32::from(self.width) << 16).to_be_bytes());
        tkhd.extend((u32::from(self.height) << 16).to_be_bytes());

        let mut edts = Vec::new();
        if self.empty_edit_ms > 0 || self.edit_media_time.is_some() {
            let mut elst = full_box_header(0, 0);
            let mut entries: Vec<(u32, i32)> = Vec::new();
            if self.empty_edit_ms > 0 {
                entries.push((self.empty_edit_ms, -1));
            }
            entries.push((movie_ms, self.edit_media_time.unwrap_or(0) as i32));
            elst.extend((entries.len() as u32).to_be_bytes());
            for (duration, media_time) in entries {
                elst.extend(duration.to_be_bytes());
                elst.extend(media_time.to_be_bytes());
                elst.extend(0x0001_0000u32.to_be_bytes());
            }
            edts = mp4_box(b"edts", &mp4_box(b"elst", &elst));
        }

        let mut mdhd = full_box_header(0, 0);
        for value in [0u32, 0, self.timescale, media_ticks as u32] {
            mdhd.extend(value.to_be_bytes());
        }
        mdhd.extend(0x55c4u16.to_be_bytes());
        mdhd.extend(0u16.to_be_bytes());

        let mut hdlr = full_box_header(0, 0);
        hdlr.extend(0u32.to_be_bytes());
        hdlr.extend(b"vide");
        hdlr.extend([0u8; 12]);
        hdlr.extend(b"VideoHandler\0");

        let mut vmhd = full_box_header(0, 1);
        vmhd.extend([0u8; 8]);
        let mut dref = full_box_header(0, 0);
        dref.extend(1u32.to_be_bytes());
        dref.extend(mp4_box(b"url ", &full_box_header(0, 1)));
        let dinf = mp4_box(b"dinf", &mp4_box(b"dref", &dref));

        // avc1 sample entry with a stand-in avcC (the parser stores it without decoding it).
        let mut avc1 = vec![0u8; 6];
        avc1.extend(1u16.to_be_bytes());
        avc1.extend([0u8; 16]);
        avc1.extend(self.width.to_be_bytes());
        avc1.extend(self.height.to_be_bytes());
        avc1.extend(0x0048_0000u32.to_be_bytes());
        avc1.extend(0x0048_0000u32.to_be_bytes());
        avc1.extend(0u32.to_be_bytes());
        avc1.extend(1u16.to_be_bytes());
        avc1.extend([0u8; 32]);
        avc1.extend(0x0018u16.to_be_bytes());
        avc1.extend((-1i16).to_be_bytes());
        avc1.extend(mp4_box(
            b"avcC",
            &[
                1, 66, 0, 30, 0xff, 0xe1, 0, 4, 0x67, 66, 0, 30, 1, 0, 2, 0x68, 0xce,
            ],
        ));
        let mut stsd = full_box_header(0, 0);
        stsd.extend(1u32.to_be_bytes());
        stsd.extend(mp4_box(b"avc1", &avc1));

        let runs = |values: &[u32]| -> Vec<(u32, u32)> {
            values
                .chunk_by(|a, b| a == b)
                .map(|run| (run.len() as u32, run[0]))
                .collect()
        };
        let run_table = |values: &[u32]| {
            let runs = runs(values);
            let mut table = full_box_header(0, 0);
            table.extend((runs.len() as u32).to_be_bytes());
            for (count, value) in runs {
                table.extend(count.to_be_bytes());
                table.extend(value.to_be_bytes());
            }
            table
        };
        let mut stbl = mp4_box(b"stsd", &stsd);
        stbl.extend(mp4_box(b"stts", &run_table(&self.frame_ticks)));
        if let Some(offsets) = &self.composition_offsets {
            stbl.extend(mp4_box(b"ctts", &run_table(offsets)));
        }
        let mut stsc = full_box_header(0, 0);
        for value in [1u32, 1, frames, 1] {
            stsc.extend(value.to_be_bytes());
        }
        stbl.extend(mp4_box(b"stsc", &stsc));
        let mut stsz = full_box_header(0, 0);
        for value in [0u32, frames] {
            stsz.extend(value.to_be_bytes());
        }
        for _ in 0..frames {
            stsz.extend(SAMPLE_BYTES.to_be_bytes());
        }
        stbl.extend(mp4_box(b"stsz", &stsz));
        let mut stco = full_box_header(0, 0);
        stco.extend(1u32.to_be_bytes());
        stco.extend(chunk_offset.to_be_bytes());
        stbl.extend(mp4_box(b"stco", &stco));

        let minf = [mp4_box(b"vmhd", &vmhd), dinf, mp4_box(b"stbl", &stbl)].concat();
        let mdia = [
            mp4_box(b"mdhd", &mdhd),
            mp4_box(b"hdlr", &hdlr),
            mp4_box(b"minf", &minf),
        ]
        .concat();
        let trak = [mp4_box(b"tkhd", &tkhd), edts, mp4_box(b"mdia", &mdia)].concat();
        let moov = [mp4_box(b"mvhd", &mvhd), mp4_box(b"trak", &trak)].concat();
        [ftyp, mdat, mp4_box(b"moov", &moov)].concat()
    }

    pub fn write(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.to_bytes())
    }
}

fn mp4_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    out.extend(kind);
    out.extend(payload);
    out
}

fn full_box_header(version: u8, flags: u32) -> Vec<u8> {
    let mut out = vec![version];
    out.extend(&flags.to_be_bytes()[1..]);
    out
}

fn unity_matrix() -> Vec<u8> {
    [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_headers_are_padded_like_numpy() {
        let npy = pickled_object_npy();
        let header_len = u16::from_le_bytes([npy[8], npy[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        assert_eq!(npy[10 + header_len - 1], b'\n');
    }

    #[test]
    fn generated_weights_rows_sum_to_one() {
        let model = SynthModel::generate(ModelSpec::small(), 1);
        for row in model.weights.chunks_exact(NUM_JOINTS) {
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5);
            assert!(row.iter().filter(|w| **w != 0.0).count() <= 4);
        }
    }
}
