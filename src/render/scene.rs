//! From posed meshes and cameras to screen-space triangles with their final colours, for any backend.
//!
//! Each person is projected through its own intrinsics (u = fx·X/Z + cx exactly), shaded per face with OSX's
//! look (base colour × min(1, 0.3 ambient + 0.7 head-light·max(0, −n_z)), no gamma), and given a depth slab so
//! the nearest person is drawn on top. A backend only rasterizes with a depth test.

use std::mem::MaybeUninit;

use super::RgbaImage;
use super::camera::Intrinsics;

/// How meshes look.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Look {
    /// Base colour, linear RGB in 0..1. OSX's is (1.0, 1.0, 0.9).
    pub colour: [f32; 3],
    /// Alpha of mesh pixels, 0..1.
    pub opacity: f32,
    /// Gouraud shading from vertex normals instead of OSX's flat faces.
    pub smooth: bool,
    /// Composite over this solid colour instead of a transparent background.
    pub background: Option<[u8; 3]>,
}

/// OSX's look: `render_mesh` in OSX's `vis.py`, flat shaded, opaque, on a transparent background.
pub const OSX_LOOK: Look = Look {
    colour: [1.0, 1.0, 0.9],
    opacity: 1.0,
    smooth: false,
    background: None,
};

impl Default for Look {
    fn default() -> Self {
        OSX_LOOK
    }
}

const AMBIENT: f32 = 0.3;
const HEAD_LIGHT: f32 = 0.7;
/// Vertices closer to the camera plane than this (metres) make their triangles invisible: meshes crossing the
/// camera plane are not clipped, their crossing triangles are dropped.
pub const NEAR_LIMIT: f32 = 1e-3;

/// One person to draw: camera-space vertices and the camera that shows them.
#[derive(Clone, Copy, Debug)]
pub struct PersonView<'a> {
    pub vertices: &'a [[f32; 3]],
    pub intrinsics: Intrinsics,
}

/// Triangles ready to rasterize: three vertices per face per person (NDC x, y, z in -1..1, y up) with an RGBA
/// colour each. Hidden faces (back-facing or behind the camera) are collapsed to a point, so the count depends
/// only on the topology and the number of persons: GPU buffers keep their size from frame to frame.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Triangles {
    pub positions: Vec<[f32; 3]>,
    pub colours: Vec<[f32; 4]>,
    /// Flat shading: all three vertices of a face carry the same colour.
    pub flat: bool,
}

/// Projects and shades every person's mesh into one triangle list for an image of `size`.
pub fn prepare(
    persons: &[PersonView<'_>],
    faces: &[[u32; 3]],
    size: (u32, u32),
    look: &Look,
) -> Triangles {
    let per_person = faces.len() * 3;
    let total = persons.len() * per_person;
    let mut positions = Vec::with_capacity(total);
    let mut colours = Vec::with_capacity(total);
    let shared_camera = persons
        .windows(2)
        .all(|w| w[0].intrinsics == w[1].intrinsics);
    let depth_ranges: Vec<(f32, f32)> = persons.iter().map(|p| depth_range(p.vertices)).collect();
    let common = depth_ranges.iter().fold((f32::MAX, f32::MIN), |acc, r| {
        (acc.0.min(r.0), acc.1.max(r.1))
    });
    // Persons seen through different virtual cameras have incomparable depths: order them by approximate real
    // depth (mean Z / fx) and give each its own slice of the depth range, nearest first.
    let mut order: Vec<usize> = (0..persons.len()).collect();
    order.sort_by(|a, b| real_depth(&persons[*a]).total_cmp(&real_depth(&persons[*b])));
    let slots = positions.spare_capacity_mut()[..total]
        .chunks_mut(per_person.max(1))
        .zip(colours.spare_capacity_mut()[..total].chunks_mut(per_person.max(1)));
    for (index, (person, slots)) in persons.iter().zip(slots).enumerate() {
        let rank = order.iter().position(|i| *i == index).unwrap_or(index);
        let slab = if shared_camera {
            Slab {
                range: common,
                first: -1.0,
                width: 2.0,
            }
        } else {
            let width = 2.0 / persons.len() as f32;
            Slab {
                range: depth_ranges[index],
                first: -1.0 + rank as f32 * width,
                width,
            }
        };
        let camera = Camera::new(person.intrinsics, size, slab);
        add_person(slots, person.vertices, faces, &camera, look);
    }
    // SAFETY: `add_person` wrote every one of the `total` slots: three positions and three colours per face of
    // every person, hidden faces included.
    unsafe {
        positions.set_len(total);
        colours.set_len(total);
    }
    Triangles {
        positions,
        colours,
        flat: !look.smooth,
    }
}

/// The slice of NDC depth a person's depth range maps to.
#[derive(Clone, Copy, Debug)]
struct Slab {
    range: (f32, f32),
    first: f32,
    width: f32,
}

impl Slab {
    /// NDC depth of camera depth `z`: linear in 1/z (as a perspective projection is), 0.999 of the slab used so
    /// slabs never touch.
    fn ndc(&self, z: f32) -> f32 {
        let (near, far) = self.range;
        let t = if far > near {
            (1.0 / near - 1.0 / z) / (1.0 / near - 1.0 / far)
        } else {
            0.5
        };
        self.first + self.width * 0.999 * t.clamp(0.0, 1.0)
    }
}

fn depth_range(vertices: &[[f32; 3]]) -> (f32, f32) {
    vertices
        .iter()
        .map(|v| v[2])
        .filter(|z| *z > NEAR_LIMIT)
        .fold((f32::MAX, f32::MIN), |(lo, hi), z| (lo.min(z), hi.max(z)))
}

fn real_depth(person: &PersonView<'_>) -> f32 {
    let n = person.vertices.len().max(1) as f32;
    let mean_z = person.vertices.iter().map(|v| v[2]).sum::<f32>() / n;
    mean_z / person.intrinsics.fx
}

/// A person's projection to NDC: u = fx·X/Z + cx, with pixel (i, j) centred on (u, v) = (i, j), as GL samples
/// window coordinate i + ½; depth from the person's slab.
struct Camera {
    k: Intrinsics,
    size: (f32, f32),
    slab: Slab,
}

impl Camera {
    fn new(k: Intrinsics, size: (u32, u32), slab: Slab) -> Camera {
        Camera {
            k,
            size: (size.0 as f32, size.1 as f32),
            slab,
        }
    }

    fn ndc(&self, v: [f32; 3]) -> [f32; 3] {
        let k = &self.k;
        let (u, w) = (k.fx * v[0] / v[2] + k.cx, k.fy * v[1] / v[2] + k.cy);
        [
            2.0 * (u + 0.5) / self.size.0 - 1.0,
            1.0 - 2.0 * (w + 0.5) / self.size.1,
            self.slab.ndc(v[2]),
        ]
    }
}

/// A person's share of the output: three positions and three colours per face, to be written.
type Slots<'a> = (
    &'a mut [MaybeUninit<[f32; 3]>],
    &'a mut [MaybeUninit<[f32; 4]>],
);

/// Writes one person's triangles into `slots`: projected and coloured when visible, collapsed to a point and
/// transparent when back-facing or not wholly in front of the camera.
fn add_person(
    (positions, colours): Slots<'_>,
    vertices: &[[f32; 3]],
    faces: &[[u32; 3]],
    camera: &Camera,
    look: &Look,
) {
    // Each vertex is projected once, not once per face it belongs to.
    let projected: Vec<[f32; 3]> = vertices.iter().map(|v| camera.ndc(*v)).collect();
    let vertex_shades = look.smooth.then(|| vertex_shades(vertices, faces));
    let alpha = look.opacity.clamp(0.0, 1.0);
    let colour = |shade: f32| {
        [
            look.colour[0] * shade,
            look.colour[1] * shade,
            look.colour[2] * shade,
            alpha,
        ]
    };
    let vertex = |i: u32| vertices.get(i as usize).copied().unwrap_or([0.0; 3]);
    let (positions, _) = positions.as_chunks_mut::<3>();
    let (colours, _) = colours.as_chunks_mut::<3>();
    for ((face, position), colours) in faces.iter().zip(positions).zip(colours) {
        let [a, b, c] = face.map(vertex);
        let in_front = a[2] > NEAR_LIMIT && b[2] > NEAR_LIMIT && c[2] > NEAR_LIMIT;
        let normal = cross(sub(b, a), sub(c, a));
        // Facing the camera: the normal points back along the ray to the face.
        let facing = dot(normal, a) < 0.0;
        if !(in_front && facing) {
            for (position, colour) in position.iter_mut().zip(colours) {
                position.write([0.0; 3]);
                colour.write([0.0; 4]);
            }
            continue;
        }
        for (slot, &i) in position.iter_mut().zip(face) {
            slot.write(projected.get(i as usize).copied().unwrap_or([0.0; 3]));
        }
        match &vertex_shades {
            Some(shades) => {
                for (slot, &i) in colours.iter_mut().zip(face) {
                    slot.write(colour(shades.get(i as usize).copied().unwrap_or(0.0)));
                }
            }
            None => {
                let flat = colour(shade(normalize(normal)));
                for slot in colours {
                    slot.write(flat);
                }
            }
        }
    }
}

/// OSX's lighting: 0.3 ambient plus a head-light along the view axis, clamped at 1.
fn shade(normal: [f32; 3]) -> f32 {
    (AMBIENT + HEAD_LIGHT * (-normal[2]).max(0.0)).min(1.0)
}

/// The cross product: a face's normal scaled by twice its area, from two of its edges.
fn cross(e1: [f32; 3], e2: [f32; 3]) -> [f32; 3] {
    [
        e1[1] * e2[2] - e1[2] * e2[1],
        e1[2] * e2[0] - e1[0] * e2[2],
        e1[0] * e2[1] - e1[1] * e2[0],
    ]
}

/// Per-vertex shades from area-weighted vertex normals (smooth shading).
fn vertex_shades(vertices: &[[f32; 3]], faces: &[[u32; 3]]) -> Vec<f32> {
    let mut normals = vec![[0.0f32; 3]; vertices.len()];
    for face in faces {
        let [a, b, c] = face.map(|i| vertices.get(i as usize).copied().unwrap_or([0.0; 3]));
        let weighted = cross(sub(b, a), sub(c, a));
        for i in face {
            if let Some(n) = normals.get_mut(*i as usize) {
                for axis in 0..3 {
                    n[axis] += weighted[axis];
                }
            }
        }
    }
    normals.into_iter().map(|n| shade(normalize(n))).collect()
}

fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn dot(a: [f32; 3], b: [f32; 3]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn normalize(v: [f32; 3]) -> [f32; 3] {
    let length = dot(v, v).sqrt();
    if length > 0.0 {
        [v[0] / length, v[1] / length, v[2] / length]
    } else {
        [0.0; 3]
    }
}

/// Lays an image over a solid background (the composited look): `rgb·a + background·(1 − a)`, opaque.
pub fn composite(image: &mut RgbaImage, background: [u8; 3]) {
    for pixel in image.pixels.chunks_exact_mut(4) {
        let alpha = u32::from(pixel[3]);
        for channel in 0..3 {
            let value =
                u32::from(pixel[channel]) * alpha + u32::from(background[channel]) * (255 - alpha);
            pixel[channel] = ((value + 127) / 255) as u8;
        }
        pixel[3] = 255;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: Intrinsics = Intrinsics {
        fx: 100.0,
        fy: 100.0,
        cx: 50.0,
        cy: 50.0,
    };

    #[test]
    fn a_face_towards_the_camera_gets_full_head_light_and_projects_exactly() {
        // Counter-clockwise seen from the camera (y down): normal towards -z.
        let vertices = [[0.0, 0.0, 2.0], [0.0, 0.2, 2.0], [0.2, 0.0, 2.0]];
        let person = PersonView {
            vertices: &vertices,
            intrinsics: K,
        };
        let tri = prepare(&[person], &[[0, 1, 2]], (100, 100), &OSX_LOOK);
        assert_eq!(tri.colours[0], [1.0, 1.0, 0.9, 1.0]);
        // (0, 0, 2) lands on pixel (50, 50): NDC of its centre.
        assert_eq!(
            &tri.positions[0][..2],
            &[2.0 * 50.5 / 100.0 - 1.0, 1.0 - 2.0 * 50.5 / 100.0]
        );
    }

    #[test]
    fn back_faces_and_faces_behind_the_camera_collapse() {
        let vertices = [
            [0.0, 0.0, 2.0],
            [0.2, 0.0, 2.0],
            [0.0, 0.2, 2.0],
            [0.0, 0.0, -1.0],
        ];
        let person = PersonView {
            vertices: &vertices,
            intrinsics: K,
        };
        let tri = prepare(&[person], &[[0, 1, 2], [0, 3, 1]], (100, 100), &OSX_LOOK);
        assert_eq!(
            tri.positions.len(),
            6,
            "buffer size is fixed by the topology"
        );
        assert!(tri.positions.iter().all(|p| *p == [0.0; 3]));
    }

    #[test]
    fn persons_with_their_own_cameras_get_depth_slabs_nearest_first() {
        let near = [[0.0, 0.0, 5.0], [0.0, 0.2, 5.0], [0.2, 0.0, 5.0]];
        let far = [[0.0, 0.0, 9.0], [0.0, 0.2, 9.0], [0.2, 0.0, 9.0]];
        let other = Intrinsics { fx: 120.0, ..K };
        let persons = [
            PersonView {
                vertices: &far,
                intrinsics: K,
            },
            PersonView {
                vertices: &near,
                intrinsics: other,
            },
        ];
        let tri = prepare(&persons, &[[0, 1, 2]], (100, 100), &OSX_LOOK);
        let (far_z, near_z) = (tri.positions[0][2], tri.positions[3][2]);
        assert!(near_z < 0.0 && far_z >= 0.0, "near {near_z} far {far_z}");
    }

    #[test]
    fn composite_blends_over_the_background() {
        let mut image = RgbaImage {
            width: 2,
            height: 1,
            pixels: vec![200, 100, 0, 255, 9, 9, 9, 0],
        };
        composite(&mut image, [10, 20, 30]);
        assert_eq!(image.pixels, vec![200, 100, 0, 255, 10, 20, 30, 255]);
    }
}
