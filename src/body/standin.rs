//! The built-in stand-in body: a procedural mannequin on the SMPL-X skeleton, for users without a model file.
//!
//! Owns its rest joints, its mesh (one closed, rounded part per body segment, blended into its neighbours through
//! the skinning weights), two shape directions (height, girth) and a relaxed-hand mean. No SMPL-X data is used.

use super::joints::{
    JAW, LEFT_EYE, LEFT_HAND_FIRST, NUM_HAND_JOINTS, NUM_JOINTS, PARENTS, RIGHT_EYE,
};
use super::{BlendDirs, BodyModel, ModelKind, SparseWeights};

type Vec3 = [f32; 3];

/// Height of the floor the soles stand on (model frame, metres).
const SOLE_Y: f32 = -1.28;
/// Shape component 0 (height): offset per unit beta, as a fraction of the vector from the sole point.
const HEIGHT_PER_BETA: f32 = 0.06;
/// Shape component 1 (girth): offset per unit beta, as a fraction of the distance from the part's axis.
const GIRTH_PER_BETA: f32 = 0.05;
/// The palm faces -y in the rest pose; curling a finger turns its tip this way.
const PALM_NORMAL: Vec3 = [0.0, -1.0, 0.0];

const PELVIS: usize = 0;
const SPINE1: usize = 3;
const SPINE2: usize = 6;
const SPINE3: usize = 9;
const NECK: usize = 12;
const HEAD: usize = 15;
// Left-side joints; each one's right-side twin follows it, as SMPL-X interleaves the sides.
const LEFT_HIP: usize = 1;
const LEFT_KNEE: usize = 4;
const LEFT_ANKLE: usize = 7;
const LEFT_FOOT: usize = 10;
const LEFT_COLLAR: usize = 13;
const LEFT_SHOULDER: usize = 16;
const LEFT_ELBOW: usize = 18;
const LEFT_WRIST: usize = 20;

/// Centre-line rest joints of a 1.70 m adult standing on `SOLE_Y`, facing +z.
const CENTRE_JOINTS: [(usize, Vec3); 7] = [
    (PELVIS, [0.0, -0.35, 0.0]),
    (SPINE1, [0.0, -0.23, -0.015]),
    (SPINE2, [0.0, -0.10, -0.01]),
    (SPINE3, [0.0, 0.02, -0.015]),
    (NECK, [0.0, 0.15, -0.025]),
    (HEAD, [0.0, 0.245, -0.01]),
    (JAW, [0.0, 0.255, 0.03]),
];

/// The body's two sides; SMPL-X interleaves their joints (left, then right) from the hips to the eyes.
#[derive(Clone, Copy)]
enum Side {
    Left,
    Right,
}

impl Side {
    const BOTH: [Side; 2] = [Side::Left, Side::Right];

    fn pair(self) -> usize {
        self as usize
    }

    /// Geometry is written for the left side (+x) and mirrored across x = 0 for the right.
    fn mirror(self, [x, y, z]: Vec3) -> Vec3 {
        match self {
            Side::Left => [x, y, z],
            Side::Right => [-x, y, z],
        }
    }

    /// The joint on this side matching a left-side joint.
    fn of(self, left_joint: usize) -> usize {
        left_joint + self.pair()
    }

    /// First of the three joints of `finger` (SMPL-X finger order).
    fn finger(self, finger: usize) -> usize {
        LEFT_HAND_FIRST + self.pair() * NUM_HAND_JOINTS + 3 * finger
    }

    /// Rest joints of the limbs and eyes: T-pose, arms along ±x, palms facing -y.
    fn limb_joints(self) -> [(usize, Vec3); 9] {
        [
            (self.of(LEFT_HIP), [0.09, -0.40, 0.0]),
            (self.of(LEFT_KNEE), [0.10, -0.80, 0.005]),
            (self.of(LEFT_ANKLE), [0.10, -1.21, -0.035]),
            (self.of(LEFT_FOOT), [0.115, -1.26, 0.11]),
            (self.of(LEFT_COLLAR), [0.07, 0.09, -0.02]),
            (self.of(LEFT_SHOULDER), [0.18, 0.11, -0.025]),
            (self.of(LEFT_ELBOW), [0.44, 0.11, -0.035]),
            (self.of(LEFT_WRIST), [0.69, 0.11, -0.025]),
            (self.of(LEFT_EYE), [0.032, 0.32, 0.078]),
        ]
        .map(|(joint, p)| (joint, self.mirror(p)))
    }
}

/// One finger of the left hand, as offsets from the wrist (+x along the hand, +y the back of the hand, +z the
/// thumb side).
struct Finger {
    knuckle: Vec3,
    direction: Vec3,
    /// Joint 1 → 2, joint 2 → 3, joint 3 → fingertip.
    phalanges: [f32; 3],
    /// Radius at the knuckle; the finger tapers to 80% of it at the tip.
    radius: f32,
    /// Flexion of each joint in the relaxed-hand mean (radians, towards the palm).
    curl: [f32; 3],
}

/// The fingers in SMPL-X order: index, middle, pinky, ring, thumb.
const FINGERS: [Finger; 5] = [
    Finger {
        knuckle: [0.088, 0.0, 0.026],
        direction: [1.0, 0.0, 0.06],
        phalanges: [0.040, 0.024, 0.021],
        radius: 0.0094,
        curl: [0.20, 0.25, 0.12],
    },
    Finger {
        knuckle: [0.092, 0.0, 0.006],
        direction: [1.0, 0.0, 0.0],
        phalanges: [0.044, 0.028, 0.022],
        radius: 0.0098,
        curl: [0.25, 0.30, 0.15],
    },
    Finger {
        knuckle: [0.078, -0.002, -0.033],
        direction: [1.0, 0.0, -0.10],
        phalanges: [0.032, 0.020, 0.019],
        radius: 0.0080,
        curl: [0.40, 0.45, 0.22],
    },
    Finger {
        knuckle: [0.087, -0.001, -0.014],
        direction: [1.0, 0.0, -0.05],
        phalanges: [0.041, 0.027, 0.021],
        radius: 0.0090,
        curl: [0.32, 0.38, 0.18],
    },
    Finger {
        knuckle: [0.022, -0.014, 0.03],
        direction: [0.75, -0.35, 0.6],
        phalanges: [0.038, 0.032, 0.026],
        radius: 0.0125,
        curl: [0.08, 0.15, 0.10],
    },
];

pub(super) fn build() -> BodyModel {
    let j_template = rest_joints();
    let mut mesh = Mesh::default();
    for part in parts(&j_template) {
        mesh.add(&part);
    }
    let num_vertices = mesh.vertices.len();
    let height = |p: &Vec3| scale(sub(*p, [0.0, SOLE_Y, 0.0]), HEIGHT_PER_BETA);
    let shape_dirs = mesh
        .vertices
        .iter()
        .map(height)
        .chain(mesh.girth)
        .flatten()
        .collect();
    let joint_girth = (0..NUM_JOINTS).map(|joint| joint_girth(&j_template, joint));
    let j_shape_dirs = j_template
        .iter()
        .map(height)
        .chain(joint_girth)
        .flatten()
        .collect();
    let vertex_dirs = |data| BlendDirs {
        data,
        stride: num_vertices * 3,
    };
    let joint_dirs = |data| BlendDirs {
        data,
        stride: NUM_JOINTS * 3,
    };
    BodyModel {
        kind: ModelKind::StandIn,
        v_template: mesh.vertices,
        faces: mesh.faces,
        shape_dirs: vertex_dirs(shape_dirs),
        expression_dirs: vertex_dirs(vec![]),
        j_template,
        j_shape_dirs: joint_dirs(j_shape_dirs),
        j_expression_dirs: joint_dirs(vec![]),
        posedirs: None,
        parents: PARENTS,
        lbs_weights: mesh.weights,
        hands_mean: Some(relaxed_hands(&j_template)),
        warnings: vec![],
    }
}

fn rest_joints() -> [Vec3; NUM_JOINTS] {
    let mut joints = [[0.0; 3]; NUM_JOINTS];
    for (joint, p) in CENTRE_JOINTS {
        joints[joint] = p;
    }
    for side in Side::BOTH {
        for (joint, p) in side.limb_joints() {
            joints[joint] = p;
        }
        let wrist = joints[side.of(LEFT_WRIST)];
        for (f, finger) in FINGERS.iter().enumerate() {
            let direction = side.mirror(normalize(finger.direction));
            let mut p = add(wrist, side.mirror(finger.knuckle));
            for (k, length) in finger.phalanges.iter().enumerate() {
                joints[side.finger(f) + k] = p;
                p = add(p, scale(direction, *length));
            }
        }
    }
    joints
}

/// The relaxed-hand mean (left 15 joints ‖ right 15, axis-angle). It is procedural, not SMPL-X's learned mean:
/// each finger joint flexes about `finger direction × PALM_NORMAL`, so a positive curl moves the fingertip towards
/// the palm (-y) on both hands and the axes mirror between them (left fingers about -z, right about +z).
fn relaxed_hands(joints: &[Vec3; NUM_JOINTS]) -> [f32; 90] {
    let mut mean = [0.0; 90];
    for side in Side::BOTH {
        for (f, finger) in FINGERS.iter().enumerate() {
            let first = side.finger(f);
            let axis = normalize(cross(sub(joints[first + 1], joints[first]), PALM_NORMAL));
            for (k, curl) in finger.curl.iter().enumerate() {
                let at = 45 * side.pair() + 3 * (3 * f + k);
                mean[at..at + 3].copy_from_slice(&scale(axis, *curl));
            }
        }
    }
    mean
}

/// Girth at a joint: the joints on the head (jaw, eyes) scale with the head's surface about its vertical axis;
/// every other joint lies on the axis its parts thicken about, so it stays put.
fn joint_girth(j: &[Vec3; NUM_JOINTS], joint: usize) -> Vec3 {
    if [JAW, LEFT_EYE, RIGHT_EYE].contains(&joint) {
        scale([j[joint][0], 0.0, j[joint][2]], GIRTH_PER_BETA)
    } else {
        [0.0; 3]
    }
}

/// A cross-section of a part at fraction `t` along its axis: half-extents along the part's `across` direction
/// (width) and along `axis × across` (depth), and an offset of its centre from the axis.
#[derive(Clone, Copy)]
struct Section {
    t: f32,
    width: f32,
    depth: f32,
    shift: Vec3,
}

const fn section(t: f32, width: f32, depth: f32) -> Section {
    Section {
        t,
        width,
        depth,
        shift: [0.0; 3],
    }
}

impl Section {
    const fn shifted(self, shift: Vec3) -> Section {
        Section { shift, ..self }
    }

    fn values(&self) -> [f32; 5] {
        [
            self.width,
            self.depth,
            self.shift[0],
            self.shift[1],
            self.shift[2],
        ]
    }
}

/// How a part's vertices follow the skeleton: `joints[k]` drives the stretch of the axis between `stations[k - 1]`
/// and `stations[k]` (distances from the part's start, ascending); around each station the two joints cross-fade
/// over ±`blend`, exactly 0.5/0.5 on the station, so neighbouring parts bend together instead of separating.
struct Skin {
    joints: Vec<usize>,
    stations: Vec<f32>,
    blend: f32,
    /// Whether the tops of the shoulders follow the collars (torso only), so a shrug lifts them with the arms.
    collars: bool,
}

impl Skin {
    fn chain(joints: &[usize], stations: &[f32], blend: f32) -> Skin {
        Skin {
            joints: joints.to_vec(),
            stations: stations.to_vec(),
            blend,
            collars: false,
        }
    }

    fn rigid(joint: usize) -> Skin {
        Skin::chain(&[joint], &[], 0.0)
    }

    /// Weights of a vertex at distance `s` along the axis with rest position `v`: at most three joints.
    fn weights(&self, s: f32, v: Vec3) -> Vec<(usize, f32)> {
        let span = self.stations.iter().filter(|station| **station < s).count();
        let mut weights = vec![(self.joints[span], 1.0)];
        for (k, station) in self.stations.iter().enumerate() {
            if (s - station).abs() < self.blend {
                let towards_next = smoothstep(station - self.blend, station + self.blend, s);
                weights = vec![
                    (self.joints[k], 1.0 - towards_next),
                    (self.joints[k + 1], towards_next),
                ];
            }
        }
        if self.collars {
            let side = if v[0] >= 0.0 { Side::Left } else { Side::Right };
            let share = 0.8 * smoothstep(0.05, 0.15, v[0].abs()) * smoothstep(-0.03, 0.09, v[1]);
            weights.iter_mut().for_each(|(_, w)| *w *= 1.0 - share);
            weights.push((side.of(LEFT_COLLAR), share));
        }
        weights
    }
}

/// The line a part's girth direction pushes away from.
enum Girth {
    OwnAxis,
    /// The part's own axis, horizontally only, so a sole stays on the floor.
    OwnAxisLevel,
    /// The head's vertical axis, for the features on the head.
    HeadAxis,
}

/// One closed mesh part: a tube swept along a straight axis through superelliptic cross-sections interpolated
/// between `sections`, closed by rounded caps of the given lengths.
struct Part {
    start: Vec3,
    axis: Vec3,
    length: f32,
    across: Vec3,
    sections: Vec<Section>,
    caps: [f32; 2],
    /// 2 for ellipses; larger is boxier.
    squareness: f32,
    skin: Skin,
    girth: Girth,
}

impl Part {
    /// A tube from `from` to `to` (sections at t = 0 and 1 sit there), capped by the end sections' smaller radius.
    fn segment(from: Vec3, to: Vec3, across: Vec3, sections: &[Section], skin: Skin) -> Part {
        let axis = normalize(sub(to, from));
        let cap = |s: &Section| s.width.min(s.depth);
        Part {
            start: from,
            axis,
            length: norm(sub(to, from)),
            across: normalize(sub(across, scale(axis, dot(across, axis)))),
            caps: [cap(&sections[0]), cap(&sections[sections.len() - 1])],
            sections: sections.to_vec(),
            squareness: 2.0,
            skin,
            girth: Girth::OwnAxis,
        }
    }

    /// An ellipsoid with semi-axes `radii` along x, y and z.
    fn ellipsoid(centre: Vec3, radii: Vec3, skin: Skin) -> Part {
        let equator = [section(0.0, radii[0], radii[2])];
        let mut part = Part::segment(
            centre,
            add(centre, [0.0, 1.0, 0.0]),
            [1.0, 0.0, 0.0],
            &equator,
            skin,
        );
        part.length = 0.0;
        part.caps = [radii[1], radii[1]];
        part
    }

    /// A limb bone driven by `joint`: it fades into the joint's parent around `from` and into `child` around `to`.
    fn limb(
        from: Vec3,
        to: Vec3,
        across: Vec3,
        sections: &[Section],
        [joint, child]: [usize; 2],
        blend: f32,
    ) -> Part {
        let skin = Skin::chain(
            &[PARENTS[joint] as usize, joint, child],
            &[0.0, norm(sub(to, from))],
            blend,
        );
        Part::segment(from, to, across, sections, skin)
    }

    /// The cross-section at `t`, by cubic Hermite interpolation with finite-difference slopes: smooth profiles
    /// without creases at the keys.
    fn section_at(&self, t: f32) -> Section {
        let keys = &self.sections;
        if keys.len() < 2 {
            return keys[0];
        }
        let k = keys
            .iter()
            .rposition(|s| s.t <= t)
            .unwrap_or(0)
            .min(keys.len() - 2);
        let (a, b) = (keys[k], keys[k + 1]);
        let u = ((t - a.t) / (b.t - a.t)).clamp(0.0, 1.0);
        let slope = |i: usize| {
            let (lo, hi) = (keys[i.saturating_sub(1)], keys[(i + 1).min(keys.len() - 1)]);
            let (lo_values, hi_values) = (lo.values(), hi.values());
            [0, 1, 2, 3, 4].map(|c| (hi_values[c] - lo_values[c]) / (hi.t - lo.t) * (b.t - a.t))
        };
        let (slope_a, slope_b, a_values, b_values) =
            (slope(k), slope(k + 1), a.values(), b.values());
        let (u2, u3) = (u * u, u * u * u);
        let v = [0, 1, 2, 3, 4].map(|c| {
            (2.0 * u3 - 3.0 * u2 + 1.0) * a_values[c]
                + (u3 - 2.0 * u2 + u) * slope_a[c]
                + (3.0 * u2 - 2.0 * u3) * b_values[c]
                + (u3 - u2) * slope_b[c]
        });
        section(t, v[0], v[1]).shifted([v[2], v[3], v[4]])
    }

    fn max_radius(&self) -> f32 {
        self.sections
            .iter()
            .map(|s| s.width.max(s.depth))
            .fold(0.0, f32::max)
    }

    /// Rings as (distance along the axis, scale of the cross-section): cap rings evenly spaced in angle, body rings
    /// about half a radius apart so that bends have vertices to bend with.
    fn rings(&self, cap_rings: usize) -> Vec<(f32, f32)> {
        let spacing = (0.5 * self.max_radius()).clamp(0.004, 0.02);
        let body_rings = (self.length / spacing).ceil() as usize;
        let cap = |k: usize| (k as f32 / cap_rings as f32 * std::f32::consts::FRAC_PI_2).sin_cos();
        let mut rings: Vec<(f32, f32)> = (1..cap_rings)
            .map(cap)
            .map(|(sin, cos)| (-self.caps[0] * cos, sin))
            .collect();
        rings.extend(
            (0..=body_rings).map(|k| (self.length * k as f32 / body_rings.max(1) as f32, 1.0)),
        );
        rings.extend(
            (1..cap_rings)
                .rev()
                .map(cap)
                .map(|(sin, cos)| (self.length + self.caps[1] * cos, sin)),
        );
        rings
    }

    /// The surface point at distance `s` along the axis and unit cross-section coordinates `offset`.
    fn point(&self, s: f32, offset: [f32; 2]) -> Vec3 {
        let section = self.section_at(if self.length > 0.0 {
            s / self.length
        } else {
            0.0
        });
        let centre = add(add(self.start, scale(self.axis, s)), section.shift);
        let across = scale(self.across, offset[0] * section.width);
        add(
            centre,
            add(
                across,
                scale(cross(self.axis, self.across), offset[1] * section.depth),
            ),
        )
    }

    fn girth_offset(&self, v: Vec3) -> Vec3 {
        let (point, direction) = match self.girth {
            Girth::OwnAxis | Girth::OwnAxisLevel => (self.start, self.axis),
            Girth::HeadAxis => ([0.0; 3], [0.0, 1.0, 0.0]),
        };
        let [x, y, z] = sub(
            v,
            add(point, scale(direction, dot(sub(v, point), direction))),
        );
        let y = if matches!(self.girth, Girth::OwnAxisLevel) {
            0.0
        } else {
            y
        };
        scale([x, y, z], GIRTH_PER_BETA)
    }
}

/// The stand-in's parts, built around the rest joints so that proportions follow the skeleton.
fn parts(j: &[Vec3; NUM_JOINTS]) -> Vec<Part> {
    // The neck starts inside the chest so that it bends out of the torso rather than off its top.
    let neck_base = add(j[NECK], [0.0, -0.06, 0.0]);
    let neck = [section(0.0, 0.06, 0.064), section(1.0, 0.052, 0.058)];
    let stations = [NECK, HEAD].map(|joint| distance_along(neck_base, j[HEAD], j[joint]));
    let neck_skin = Skin::chain(&[SPINE3, NECK, HEAD], &stations, 0.03);
    let mut parts = vec![
        torso(j),
        Part::segment(neck_base, j[HEAD], [1.0, 0.0, 0.0], &neck, neck_skin),
    ];
    parts.extend(head(j));
    for side in Side::BOTH {
        parts.extend(leg(j, side));
        parts.extend(arm(j, side));
        parts.extend(hand(j, side));
    }
    parts
}

fn torso(j: &[Vec3; NUM_JOINTS]) -> Part {
    // (height, half-width, half-depth, forward shift): crotch, hips, waist, chest, shoulder line.
    let profile = [
        (-0.50, 0.10, 0.07, 0.0),
        (-0.44, 0.155, 0.10, -0.005),
        (-0.37, 0.168, 0.112, -0.012),
        (-0.27, 0.15, 0.10, -0.002),
        (-0.16, 0.13, 0.094, 0.005),
        (-0.05, 0.145, 0.10, 0.012),
        (0.04, 0.158, 0.105, 0.016),
        (0.12, 0.16, 0.082, -0.008),
    ];
    let (bottom, top) = (profile[0].0, profile[profile.len() - 1].0);
    let sections = profile.map(|(height, width, depth, forward)| {
        section((height - bottom) / (top - bottom), width, depth).shifted([0.0, 0.0, forward])
    });
    let stations = [SPINE1, SPINE2, SPINE3].map(|joint| j[joint][1] - bottom);
    let mut skin = Skin::chain(&[PELVIS, SPINE1, SPINE2, SPINE3], &stations, 0.05);
    skin.collars = true;
    let mut torso = Part::segment(
        [0.0, bottom, -0.01],
        [0.0, top, -0.01],
        [1.0, 0.0, 0.0],
        &sections,
        skin,
    );
    torso.caps = [0.03, 0.055];
    torso.squareness = 2.5;
    torso
}

/// The head (one egg from under the chin to the crown whose lower face follows the jaw), nose, eyeballs, ears.
fn head(j: &[Vec3; NUM_JOINTS]) -> Vec<Part> {
    let x = [1.0, 0.0, 0.0];
    let (chin, crown) = ([0.0, 0.215, 0.035], [0.0, 0.375, -0.01]);
    let jaw_station = distance_along(chin, crown, j[JAW]);
    // Chin, mouth, cheekbones, temples, crown; the face leans forward of the axis.
    let egg = [
        section(0.0, 0.034, 0.03).shifted([0.0, 0.0, 0.02]),
        section(0.2, 0.056, 0.055).shifted([0.0, 0.0, 0.012]),
        section(0.45, 0.069, 0.08).shifted([0.0, 0.0, 0.004]),
        section(0.72, 0.075, 0.097),
        section(1.0, 0.067, 0.088).shifted([0.0, 0.0, -0.005]),
    ];
    let mut head = Part::segment(
        chin,
        crown,
        x,
        &egg,
        Skin::chain(&[JAW, HEAD], &[jaw_station], 0.02),
    );
    head.caps = [0.022, 0.05];
    let nose = [section(0.0, 0.008, 0.009), section(1.0, 0.014, 0.012)];
    let nose = Part::segment(
        [0.0, 0.322, 0.086],
        [0.0, 0.288, 0.104],
        x,
        &nose,
        Skin::rigid(HEAD),
    );
    let mut parts = vec![head, nose];
    for side in Side::BOTH {
        parts.push(Part::ellipsoid(
            j[side.of(LEFT_EYE)],
            [0.0125; 3],
            Skin::rigid(side.of(LEFT_EYE)),
        ));
        let ear = side.mirror([0.072, 0.305, -0.01]);
        parts.push(Part::ellipsoid(
            ear,
            [0.01, 0.028, 0.017],
            Skin::rigid(HEAD),
        ));
    }
    for part in &mut parts {
        part.girth = Girth::HeadAxis;
    }
    parts
}

fn leg(j: &[Vec3; NUM_JOINTS], side: Side) -> Vec<Part> {
    let x = [1.0, 0.0, 0.0];
    let thigh = [
        section(0.0, 0.084, 0.088),
        section(0.5, 0.07, 0.072),
        section(1.0, 0.05, 0.052),
    ];
    let calf_bulge = section(0.3, 0.054, 0.058).shifted([0.0, 0.0, -0.01]);
    let calf = [
        section(0.0, 0.05, 0.05),
        calf_bulge,
        section(1.0, 0.032, 0.034),
    ];
    let (hip, knee, ankle, ball) = (
        side.of(LEFT_HIP),
        side.of(LEFT_KNEE),
        side.of(LEFT_ANKLE),
        side.of(LEFT_FOOT),
    );
    let heel = [j[ankle][0], SOLE_Y, j[ankle][2] - 0.045];
    let toes = add(
        [j[ball][0], SOLE_Y, j[ball][2]],
        side.mirror([0.01, 0.0, 0.055]),
    );
    // Heel, instep, ball, toes: the axis runs along the floor and each section's height lifts its centre by as
    // much, so the sole stays flat on `SOLE_Y`.
    let foot = [
        (0.0, 0.032, 0.035),
        (0.35, 0.04, 0.05),
        (0.72, 0.048, 0.026),
        (1.0, 0.038, 0.016),
    ]
    .map(|(t, width, height)| section(t, width, height).shifted([0.0, height, 0.0]));
    let ball_station = distance_along(heel, toes, j[ball]);
    let mut foot = Part::segment(
        heel,
        toes,
        x,
        &foot,
        Skin::chain(&[ankle, ball], &[ball_station], 0.02),
    );
    foot.caps = [0.03, 0.02];
    foot.girth = Girth::OwnAxisLevel;
    vec![
        Part::limb(j[hip], j[knee], x, &thigh, [hip, knee], 0.06),
        Part::limb(j[knee], j[ankle], x, &calf, [knee, ankle], 0.04),
        foot,
    ]
}

fn arm(j: &[Vec3; NUM_JOINTS], side: Side) -> [Part; 2] {
    let y = [0.0, 1.0, 0.0];
    let upper = [
        section(0.0, 0.048, 0.048),
        section(0.4, 0.043, 0.042),
        section(1.0, 0.035, 0.037),
    ];
    // The wrist is flatter (along y, the palm's normal) than it is wide.
    let fore = [
        section(0.0, 0.036, 0.038),
        section(0.25, 0.039, 0.042),
        section(1.0, 0.02, 0.028),
    ];
    let (shoulder, elbow, wrist) = (
        side.of(LEFT_SHOULDER),
        side.of(LEFT_ELBOW),
        side.of(LEFT_WRIST),
    );
    [
        Part::limb(j[shoulder], j[elbow], y, &upper, [shoulder, elbow], 0.04),
        Part::limb(j[elbow], j[wrist], y, &fore, [elbow, wrist], 0.035),
    ]
}

/// A boxy palm on the wrist and five tapered fingers, each one tube bending at its three joints.
fn hand(j: &[Vec3; NUM_JOINTS], side: Side) -> Vec<Part> {
    let wrist = j[side.of(LEFT_WRIST)];
    // Thin along y (width here), wide along z (depth), centred between the index and pinky knuckles.
    let palm_centre = [0.0, -0.004, -0.003];
    let palm = [
        section(0.0, 0.02, 0.03),
        section(0.4, 0.017, 0.043),
        section(1.0, 0.013, 0.044),
    ];
    let palm = palm.map(|s| s.shifted(palm_centre));
    let knuckles = add(wrist, side.mirror([0.082, 0.0, 0.0]));
    let palm_skin = Skin::chain(&[side.of(LEFT_ELBOW), side.of(LEFT_WRIST)], &[0.0], 0.02);
    let mut palm = Part::segment(wrist, knuckles, [0.0, 1.0, 0.0], &palm, palm_skin);
    palm.caps = [0.012, 0.012];
    palm.squareness = 3.0;
    let mut parts = vec![palm];
    for (f, finger) in FINGERS.iter().enumerate() {
        let first = side.finger(f);
        let direction = side.mirror(normalize(finger.direction));
        let r = finger.radius;
        // The end cap (0.7 r) reaches the fingertip.
        let tip = add(
            j[first + 2],
            scale(direction, finger.phalanges[2] - 0.7 * r),
        );
        let sections = [section(0.0, r, 0.9 * r), section(1.0, 0.8 * r, 0.7 * r)];
        let stations = [0, 1, 2].map(|k| norm(sub(j[first + k], j[first])));
        let skin = Skin::chain(
            &[side.of(LEFT_WRIST), first, first + 1, first + 2],
            &stations,
            0.4 * r,
        );
        parts.push(Part::segment(
            j[first],
            tip,
            [0.0, 0.0, 1.0],
            &sections,
            skin,
        ));
    }
    parts
}

/// Vertices, faces, skinning weights and girth directions, accumulated part by part.
#[derive(Default)]
struct Mesh {
    vertices: Vec<Vec3>,
    faces: Vec<[u32; 3]>,
    weights: SparseWeights,
    girth: Vec<Vec3>,
}

impl Mesh {
    /// Appends a part as a closed surface: a pole, rings of `around` vertices, a pole; faces wind counter-clockwise
    /// seen from outside.
    fn add(&mut self, part: &Part) {
        // About one vertex per 4.5 mm of radius: fingers get 10 around, the torso 43.
        let around = (6.0 + 220.0 * part.max_radius()).round().clamp(10.0, 44.0) as usize;
        let rings = part.rings((around / 4).clamp(3, 8));
        let first = self.vertices.len() as u32;
        self.push_vertex(part, -part.caps[0], [0.0, 0.0]);
        for &(s, ring_scale) in &rings {
            for k in 0..around {
                let (sin, cos) = (k as f32 / around as f32 * std::f32::consts::TAU).sin_cos();
                let superellipse =
                    |c: f32| c.signum() * c.abs().powf(2.0 / part.squareness) * ring_scale;
                self.push_vertex(part, s, [superellipse(cos), superellipse(sin)]);
            }
        }
        self.push_vertex(part, part.length + part.caps[1], [0.0, 0.0]);
        let ring = |r: usize, k: usize| first + 1 + (r * around + k % around) as u32;
        let (last_ring, last_pole) = (rings.len() - 1, first + 1 + (rings.len() * around) as u32);
        for k in 0..around {
            self.faces.push([first, ring(0, k + 1), ring(0, k)]);
            for r in 0..last_ring {
                self.faces
                    .push([ring(r, k), ring(r, k + 1), ring(r + 1, k + 1)]);
                self.faces
                    .push([ring(r, k), ring(r + 1, k + 1), ring(r + 1, k)]);
            }
            self.faces
                .push([last_pole, ring(last_ring, k), ring(last_ring, k + 1)]);
        }
    }

    fn push_vertex(&mut self, part: &Part, s: f32, offset: [f32; 2]) {
        let v = part.point(s, offset);
        self.vertices.push(v);
        self.girth.push(part.girth_offset(v));
        let weights = &mut self.weights;
        if weights.offsets.is_empty() {
            weights.offsets.push(0);
        }
        // Slivers of weight at the edges of a blend are dropped: they would move a vertex by less than f32 can show.
        let kept: Vec<(usize, f32)> = part
            .skin
            .weights(s, v)
            .into_iter()
            .filter(|(_, w)| *w >= 1e-3)
            .collect();
        let total: f32 = kept.iter().map(|(_, w)| w).sum();
        for (joint, weight) in kept {
            weights.joints.push(joint as u8);
            weights.weights.push(weight / total);
        }
        weights.offsets.push(weights.joints.len() as u32);
    }
}

/// How far along the axis from `from` towards `to` the point `p` lies.
fn distance_along(from: Vec3, to: Vec3, p: Vec3) -> f32 {
    dot(sub(p, from), normalize(sub(to, from)))
}

fn smoothstep(edge0: f32, edge1: f32, x: f32) -> f32 {
    let t = ((x - edge0) / (edge1 - edge0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

fn add(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn scale(a: Vec3, k: f32) -> Vec3 {
    a.map(|c| c * k)
}

fn dot(a: Vec3, b: Vec3) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn norm(a: Vec3) -> f32 {
    dot(a, a).sqrt()
}

fn normalize(a: Vec3) -> Vec3 {
    scale(a, 1.0 / norm(a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::joints::JOINT_NAMES;

    fn y_extent(points: &[Vec3]) -> (f32, f32) {
        points.iter().fold((f32::MAX, f32::MIN), |(lo, hi), p| {
            (lo.min(p[1]), hi.max(p[1]))
        })
    }

    fn displaced(points: &[Vec3], direction: &[f32]) -> Vec<Vec3> {
        points
            .iter()
            .zip(direction.chunks_exact(3))
            .map(|(p, d)| add(*p, [d[0], d[1], d[2]]))
            .collect()
    }

    /// Closed parts as vertex labels: vertices connected through faces share a label.
    fn part_labels(model: &BodyModel) -> Vec<usize> {
        let mut label: Vec<usize> = (0..model.num_vertices()).collect();
        fn root(label: &mut [usize], mut v: usize) -> usize {
            while label[v] != v {
                label[v] = label[label[v]];
                v = label[v];
            }
            v
        }
        for face in &model.faces {
            for corner in 1..3 {
                let (a, b) = (
                    root(&mut label, face[0] as usize),
                    root(&mut label, face[corner] as usize),
                );
                label[a] = b;
            }
        }
        (0..label.len()).map(|v| root(&mut label, v)).collect()
    }

    #[test]
    fn stand_in_has_smplx_joint_layout_and_enough_vertices() {
        let model = build();
        let num_vertices = model.num_vertices();
        assert!(model.is_stand_in());
        assert_eq!(model.parents, PARENTS);
        assert!(num_vertices >= 5_000, "{num_vertices} vertices");
        assert!(model.faces.len() <= 25_000, "{} faces", model.faces.len());
        assert_eq!(
            (model.shape_dirs.num_components(), model.shape_dirs.stride),
            (2, num_vertices * 3)
        );
        assert_eq!(
            (
                model.j_shape_dirs.num_components(),
                model.j_shape_dirs.stride
            ),
            (2, NUM_JOINTS * 3)
        );
        assert_eq!(
            (
                model.expression_dirs.num_components(),
                model.expression_dirs.stride
            ),
            (0, num_vertices * 3)
        );
        assert_eq!(model.j_expression_dirs.num_components(), 0);
        assert!(
            model.posedirs.is_none() && model.warnings.is_empty() && model.hands_mean.is_some()
        );
    }

    #[test]
    fn joint_constants_name_the_smplx_joints_on_both_sides() {
        let centre = [
            (PELVIS, "pelvis"),
            (SPINE1, "spine1"),
            (SPINE2, "spine2"),
            (SPINE3, "spine3"),
        ];
        for (joint, name) in centre.into_iter().chain([(NECK, "neck"), (HEAD, "head")]) {
            assert_eq!(JOINT_NAMES[joint], name);
        }
        let limbs = [
            (LEFT_HIP, "hip"),
            (LEFT_KNEE, "knee"),
            (LEFT_ANKLE, "ankle"),
            (LEFT_FOOT, "foot"),
        ];
        let arms = [
            (LEFT_COLLAR, "collar"),
            (LEFT_SHOULDER, "shoulder"),
            (LEFT_ELBOW, "elbow"),
            (LEFT_WRIST, "wrist"),
        ];
        for (side, prefix) in [(Side::Left, "left"), (Side::Right, "right")] {
            for (joint, name) in limbs
                .into_iter()
                .chain(arms)
                .chain([(LEFT_EYE, "eye_smplhf")])
            {
                assert_eq!(JOINT_NAMES[side.of(joint)], format!("{prefix}_{name}"));
            }
            for (f, finger) in ["index", "middle", "pinky", "ring", "thumb"]
                .iter()
                .enumerate()
            {
                assert_eq!(
                    JOINT_NAMES[side.finger(f) + 2],
                    format!("{prefix}_{finger}3")
                );
            }
        }
    }

    #[test]
    fn rest_pose_spans_a_170cm_adult_with_feet_on_the_floor() {
        let model = build();
        let (lowest, highest) = y_extent(&model.v_template);
        assert!((lowest - SOLE_Y).abs() < 0.002, "soles at {lowest}");
        assert!(
            (highest - 0.42).abs() < 0.01,
            "top of the head at {highest}"
        );
        let j = &model.j_template;
        assert!(norm(sub(j[PELVIS], [0.0, -0.35, 0.0])) < 0.02);
        for side in Side::BOTH {
            let left = if matches!(side, Side::Left) {
                1.0
            } else {
                -1.0
            };
            // T-pose: the arm runs straight out along x at shoulder height, the body's left towards +x.
            let arm = [
                side.of(LEFT_SHOULDER),
                side.of(LEFT_ELBOW),
                side.of(LEFT_WRIST),
            ]
            .map(|joint| j[joint]);
            assert!(arm.iter().all(|p| (p[1] - arm[0][1]).abs() < 0.01));
            assert!(left * arm[0][0] > 0.15 && left * arm[1][0] > 0.4 && left * arm[2][0] > 0.65);
            assert!(
                j[side.of(LEFT_ANKLE)][1] > SOLE_Y
                    && j[side.of(LEFT_FOOT)][2] > j[side.of(LEFT_ANKLE)][2] + 0.1
            );
            assert!(j[side.of(LEFT_EYE)][2] > 0.05, "eyes face +z");
        }
        for (joint, name) in JOINT_NAMES.iter().enumerate() {
            let mirrored_name = match name.split_once('_') {
                Some(("left", rest)) => format!("right_{rest}"),
                Some(("right", rest)) => format!("left_{rest}"),
                _ => name.to_string(),
            };
            let mirror = JOINT_NAMES.iter().position(|other| *other == mirrored_name);
            assert!(
                mirror.is_some_and(|m| norm(sub(j[m], Side::Right.mirror(j[joint]))) < 1e-6),
                "{name}"
            );
        }
    }

    #[test]
    fn hands_extend_along_x_with_fingers_in_smplx_order() {
        let j = rest_joints();
        for (side, outwards) in [(Side::Left, 1.0), (Side::Right, -1.0)] {
            for f in 0..5 {
                let first = side.finger(f);
                assert!(outwards * (j[first][0] - j[side.of(LEFT_WRIST)][0]) > 0.0);
                assert!(outwards * (j[first + 2][0] - j[first + 1][0]) > 0.0);
            }
            let z = |f: usize| j[side.finger(f)][2];
            // Index, middle, ring, pinky from front to back; the thumb in front and below.
            assert!(z(0) > z(1) && z(1) > z(3) && z(3) > z(2));
            assert!(
                z(4) > z(0)
                    && j[side.finger(4) + 2][2] > z(0)
                    && j[side.finger(4) + 2][1] < j[side.of(LEFT_WRIST)][1]
            );
        }
    }

    #[test]
    fn weights_sum_to_one_with_at_most_four_joints() {
        let model = build();
        let weights = &model.lbs_weights;
        assert_eq!(weights.offsets.len(), model.num_vertices() + 1);
        for v in 0..model.num_vertices() {
            let pairs: Vec<(usize, f32)> = weights.of_vertex(v).collect();
            assert!(
                !pairs.is_empty() && pairs.len() <= 4,
                "vertex {v}: {pairs:?}"
            );
            assert!(
                pairs
                    .iter()
                    .all(|(joint, weight)| *joint < NUM_JOINTS && *weight > 0.0)
            );
            let total: f32 = pairs.iter().map(|(_, w)| w).sum();
            assert!((total - 1.0).abs() < 1e-5, "vertex {v} sums to {total}");
        }
    }

    #[test]
    fn skinning_is_half_and_half_exactly_on_a_joint_and_rigid_between() {
        let skin = Skin::chain(&[13, 16, 18], &[0.0, 0.26], 0.04);
        let at = |s: f32| skin.weights(s, [0.3, 0.1, 0.0]);
        assert_eq!(at(0.0), vec![(13, 0.5), (16, 0.5)]);
        assert_eq!(at(0.26), vec![(16, 0.5), (18, 0.5)]);
        assert_eq!(at(0.13), vec![(16, 1.0)]);
        assert_eq!(at(-0.05), vec![(13, 1.0)]);
        assert_eq!(at(0.31), vec![(18, 1.0)]);
        let near_elbow = at(0.25);
        assert!(near_elbow[0].1 > 0.5 && near_elbow[1].1 < 0.5);
    }

    #[test]
    fn limbs_are_split_half_and_half_across_the_elbow_and_knee() {
        let model = build();
        let j = &model.j_template;
        for [parent, joint, child] in [
            [LEFT_SHOULDER, LEFT_ELBOW, LEFT_WRIST],
            [LEFT_HIP, LEFT_KNEE, LEFT_ANKLE],
        ] {
            let normal = normalize(sub(j[child], j[parent]));
            let on_joint: Vec<usize> = (0..model.num_vertices())
                .filter(|v| norm(sub(model.v_template[*v], j[joint])) < 0.1)
                .filter(|v| dot(sub(model.v_template[*v], j[joint]), normal).abs() < 0.002)
                .collect();
            assert!(
                on_joint.len() >= 20,
                "{} vertices on {}",
                on_joint.len(),
                JOINT_NAMES[joint]
            );
            for v in on_joint {
                let weights: Vec<(usize, f32)> = model.lbs_weights.of_vertex(v).collect();
                assert_eq!(weights.len(), 2, "{weights:?}");
                assert!(
                    weights.iter().all(|(_, w)| (w - 0.5).abs() < 0.05),
                    "{weights:?}"
                );
                assert!(weights.iter().any(|(joint_of, _)| *joint_of == joint));
            }
        }
    }

    #[test]
    fn faces_index_existing_vertices_and_face_outward() {
        let model = build();
        let num_vertices = model.num_vertices();
        assert!(
            model
                .faces
                .iter()
                .flatten()
                .all(|v| (*v as usize) < num_vertices)
        );
        let labels = part_labels(&model);
        let mut volumes = std::collections::HashMap::new();
        for face in &model.faces {
            let [a, b, c] = face.map(|v| model.v_template[v as usize]);
            *volumes.entry(labels[face[0] as usize]).or_insert(0.0) += dot(a, cross(b, c)) / 6.0;
        }
        assert_eq!(
            volumes.len(),
            parts(&rest_joints()).len(),
            "every part is one closed surface"
        );
        for (part, volume) in volumes {
            assert!(
                volume > 0.0,
                "part with vertex {part} encloses {volume} m³: faces wind inwards"
            );
        }
    }

    #[test]
    fn height_beta_keeps_feet_on_the_floor() {
        let model = build();
        let taller = displaced(&model.v_template, model.shape_dirs.component(0));
        let (lowest, highest) = y_extent(&taller);
        let (rest_lowest, rest_highest) = y_extent(&model.v_template);
        assert!((lowest - rest_lowest).abs() < 1e-5);
        let growth = (highest - lowest) / (rest_highest - rest_lowest);
        assert!(
            (growth - 1.0 - HEIGHT_PER_BETA).abs() < 1e-4,
            "grew by {growth}"
        );
        let joints = displaced(&model.j_template, model.j_shape_dirs.component(0));
        for (moved, rest) in joints.iter().zip(&model.j_template) {
            let expected = add(
                *rest,
                scale(sub(*rest, [0.0, SOLE_Y, 0.0]), HEIGHT_PER_BETA),
            );
            assert!(norm(sub(*moved, expected)) < 1e-6);
        }
    }

    #[test]
    fn girth_beta_thickens_the_body_around_a_still_skeleton() {
        let model = build();
        let thicker = displaced(&model.v_template, model.shape_dirs.component(1));
        assert_eq!(
            y_extent(&thicker).0,
            y_extent(&model.v_template).0,
            "soles stay on the floor"
        );
        let waist_width = |points: &[Vec3]| {
            points
                .iter()
                .filter(|p| (p[1] + 0.16).abs() < 0.01)
                .map(|p| p[0].abs())
                .fold(0.0, f32::max)
        };
        let ratio = waist_width(&thicker) / waist_width(&model.v_template);
        assert!(
            (ratio - 1.0 - GIRTH_PER_BETA).abs() < 0.01,
            "waist widened by {ratio}"
        );
        let girth = model.j_shape_dirs.component(1);
        let mut still = (0..NUM_JOINTS).filter(|joint| ![JAW, LEFT_EYE, RIGHT_EYE].contains(joint));
        assert!(
            still.all(|joint| girth[3 * joint..3 * joint + 3] == [0.0; 3]),
            "only the head's joints move"
        );
    }

    #[test]
    fn relaxed_hand_mean_curls_every_fingertip_towards_the_palm() {
        let model = build();
        let (j, mean) = (&model.j_template, model.hands_mean.unwrap_or([0.0; 90]));
        let curl = |side: Side, f: usize, k: usize| {
            let at = 45 * side.pair() + 3 * (3 * f + k);
            [mean[at], mean[at + 1], mean[at + 2]]
        };
        for side in Side::BOTH {
            for f in 0..5 {
                let first = side.finger(f);
                for k in 0..3 {
                    let bone = sub(j[first + 1], j[first]);
                    // For a small rotation ω, a point at `bone` moves by ω × bone.
                    assert!(
                        cross(curl(side, f, k), bone)[1] < 0.0,
                        "{}",
                        JOINT_NAMES[first + k]
                    );
                }
            }
            assert!(
                norm(curl(side, 2, 0)) > norm(curl(side, 0, 0)),
                "the pinky curls more than the index"
            );
            assert!(
                norm(curl(side, 4, 0)) < norm(curl(side, 0, 0)),
                "the thumb curls least"
            );
        }
    }
}
