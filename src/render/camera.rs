//! Cameras: which OpenCV pinhole (in image pixels) shows each person, and how large the output image is.
//!
//! Intrinsics come, in order, from the frame's `focal`/`princpt`; from its `bbox_xywh` by OSX's rules; from the
//! sequence options; else from an automatic framing that fits the body in view.

use serde::Serialize;

/// An OpenCV pinhole camera in image pixels: a camera-space point (X, Y, Z) lands at
/// `u = fx·X/Z + cx`, `v = fy·Y/Z + cy`, with +y down and pixel (i, j) centred on (u, v) = (i, j).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Intrinsics {
    pub fx: f32,
    pub fy: f32,
    pub cx: f32,
    pub cy: f32,
}

/// Where a person's intrinsics came from (reported per frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntrinsicsSource {
    Frame,
    Bbox,
    Options,
    AutoFraming,
}

/// OSX's body-crop camera (`main/config.py`): focal 5000 px on a 192×256 crop.
const OSX_FOCAL: f32 = 5000.0;
const OSX_BODY_WIDTH: f32 = 192.0;
const OSX_BODY_HEIGHT: f32 = 256.0;

/// Intrinsics from a processed OSX bounding box (x, y, w, h in image pixels): the crop camera scaled to the box.
pub fn intrinsics_from_bbox(bbox_xywh: [f32; 4]) -> Option<Intrinsics> {
    let [x, y, w, h] = bbox_xywh;
    if !(w > 0.0 && h > 0.0) {
        return None;
    }
    Some(Intrinsics {
        fx: OSX_FOCAL / OSX_BODY_WIDTH * w,
        fy: OSX_FOCAL / OSX_BODY_HEIGHT * h,
        cx: x + w / 2.0,
        cy: y + h / 2.0,
    })
}

/// Camera values given for the whole sequence (`--focal`, `--princpt`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CameraOptions {
    pub focal: Option<[f32; 2]>,
    pub princpt: Option<[f32; 2]>,
}

/// Picks a person's intrinsics by the documented order. `None` means automatic framing.
pub fn choose_intrinsics(
    focal: Option<[f32; 2]>,
    princpt: Option<[f32; 2]>,
    bbox_xywh: Option<[f32; 4]>,
    options: &CameraOptions,
    size: (u32, u32),
) -> Option<(Intrinsics, IntrinsicsSource)> {
    let centre = [size.0 as f32 / 2.0, size.1 as f32 / 2.0];
    if let Some([fx, fy]) = focal.filter(|f| f[0] > 0.0 && f[1] > 0.0) {
        let [cx, cy] = princpt.or(options.princpt).unwrap_or(centre);
        return Some((Intrinsics { fx, fy, cx, cy }, IntrinsicsSource::Frame));
    }
    if let Some(intrinsics) = bbox_xywh.and_then(intrinsics_from_bbox) {
        return Some((intrinsics, IntrinsicsSource::Bbox));
    }
    if let Some([fx, fy]) = options.focal {
        let [cx, cy] = options.princpt.unwrap_or(centre);
        return Some((Intrinsics { fx, fy, cx, cy }, IntrinsicsSource::Options));
    }
    None
}

/// Fraction of the image an automatically framed body fills.
const AUTO_FRAMING_FILL: f32 = 0.85;
/// Distance at which a body without a usable camera translation is placed, in body extents.
const AUTO_FRAMING_DISTANCE: f32 = 3.0;

/// Automatic framing for a person with no intrinsics: a camera looking down +z at the body's bounding box,
/// centred, the body filling 85 % of the smaller image side. A body that is not in front of the camera (no
/// `cam_trans`) is first moved there, three body extents away; the returned offset must be added to its vertices.
pub fn auto_framing(vertices: &[[f32; 3]], size: (u32, u32)) -> (Intrinsics, [f32; 3]) {
    let (mut min, mut max) = ([f32::MAX; 3], [f32::MIN; 3]);
    for v in vertices {
        for a in 0..3 {
            min[a] = min[a].min(v[a]);
            max[a] = max[a].max(v[a]);
        }
    }
    let extent = (0..3)
        .map(|a| max[a] - min[a])
        .fold(0.0f32, f32::max)
        .max(1e-3);
    let offset = if min[2] > 0.1 * extent {
        [0.0; 3]
    } else {
        let centre: Vec<f32> = (0..3).map(|a| (min[a] + max[a]) / 2.0).collect();
        [
            -centre[0],
            -centre[1],
            -centre[2] + AUTO_FRAMING_DISTANCE * extent,
        ]
    };
    let (mut u_min, mut u_max, mut v_min, mut v_max) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for v in vertices {
        let z = v[2] + offset[2];
        let (x, y) = ((v[0] + offset[0]) / z, (v[1] + offset[1]) / z);
        u_min = u_min.min(x);
        u_max = u_max.max(x);
        v_min = v_min.min(y);
        v_max = v_max.max(y);
    }
    let (width, height) = (size.0 as f32, size.1 as f32);
    let span = ((u_max - u_min) / width)
        .max((v_max - v_min) / height)
        .max(1e-6);
    let f = AUTO_FRAMING_FILL / span;
    let intrinsics = Intrinsics {
        fx: f,
        fy: f,
        cx: width / 2.0 - f * (u_min + u_max) / 2.0,
        cy: height / 2.0 - f * (v_min + v_max) / 2.0,
    };
    (intrinsics, offset)
}

/// Where the output size came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SizeSource {
    Option,
    ImageSize,
    Default,
}

/// Output size when nothing says otherwise.
pub const DEFAULT_SIZE: (u32, u32) = (720, 720);
/// Largest output side accepted.
pub const MAX_SIDE: u32 = 8192;

/// Output size: `--size`, else the frame's `image_size` (stored as numpy's `img.shape[:2]`, i.e. height then
/// width), else 720×720.
pub fn output_size(
    option: Option<(u32, u32)>,
    image_size: Option<[f32; 2]>,
) -> ((u32, u32), SizeSource) {
    if let Some(size) = option {
        return (size, SizeSource::Option);
    }
    if let Some([height, width]) = image_size {
        let valid = |v: f32| v >= 1.0 && v <= MAX_SIDE as f32 && v.fract() == 0.0;
        if valid(width) && valid(height) {
            return ((width as u32, height as u32), SizeSource::ImageSize);
        }
    }
    (DEFAULT_SIZE, SizeSource::Default)
}

/// Parses `WxH` (e.g. `1280x720`).
pub fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("'{text}' is not WIDTHxHEIGHT, e.g. 1280x720"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<u32>()
            .ok()
            .filter(|v| (1..=MAX_SIDE).contains(v))
    };
    match (parse(w), parse(h)) {
        (Some(w), Some(h)) => Ok((w, h)),
        _ => Err(format!(
            "'{text}': width and height must be 1 to {MAX_SIDE}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osx_bbox_rules_give_equal_focals_for_a_three_by_four_box() {
        let k = intrinsics_from_bbox([265.0, -140.0, 750.0, 1000.0]).unwrap();
        assert!((k.fx - 19_531.25).abs() < 0.01 && (k.fy - 19_531.25).abs() < 0.01);
        assert_eq!((k.cx, k.cy), (640.0, 360.0));
    }

    #[test]
    fn frame_intrinsics_win_over_bbox_and_options() {
        let options = CameraOptions {
            focal: Some([100.0, 100.0]),
            princpt: None,
        };
        let chosen = choose_intrinsics(
            Some([5.0, 6.0]),
            Some([1.0, 2.0]),
            Some([0.0, 0.0, 3.0, 4.0]),
            &options,
            (10, 10),
        );
        assert_eq!(chosen.unwrap().1, IntrinsicsSource::Frame);
        let chosen = choose_intrinsics(None, None, Some([0.0, 0.0, 3.0, 4.0]), &options, (10, 10));
        assert_eq!(chosen.unwrap().1, IntrinsicsSource::Bbox);
        let chosen = choose_intrinsics(None, None, None, &options, (10, 20)).unwrap();
        assert_eq!(chosen.1, IntrinsicsSource::Options);
        assert_eq!((chosen.0.cx, chosen.0.cy), (5.0, 10.0));
        assert!(choose_intrinsics(None, None, None, &CameraOptions::default(), (10, 10)).is_none());
    }

    #[test]
    fn auto_framing_centres_a_body_without_camera_translation() {
        let body = [[-0.3, -1.0, -0.1], [0.3, 0.7, 0.1]];
        let (k, offset) = auto_framing(&body, (720, 720));
        let project = |v: [f32; 3]| {
            let (x, y, z) = (v[0] + offset[0], v[1] + offset[1], v[2] + offset[2]);
            (k.fx * x / z + k.cx, k.fy * y / z + k.cy)
        };
        let (top, bottom) = (project(body[0]), project(body[1]));
        assert!(top.1 > 0.0 && bottom.1 < 720.0 && (bottom.1 - top.1) > 0.8 * 720.0);
        assert!(((top.0 + bottom.0) / 2.0 - 360.0).abs() < 1.0);
    }

    #[test]
    fn sizes_parse_and_image_size_is_height_then_width() {
        assert_eq!(parse_size("1280x720"), Ok((1280, 720)));
        assert!(parse_size("0x10").is_err() && parse_size("big").is_err());
        assert_eq!(
            output_size(None, Some([720.0, 1280.0])),
            ((1280, 720), SizeSource::ImageSize)
        );
        assert_eq!(
            output_size(None, Some([0.0, 1280.0])).1,
            SizeSource::Default
        );
        assert_eq!(output_size(Some((5, 6)), Some([720.0, 1280.0])).0, (5, 6));
    }
}
