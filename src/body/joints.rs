//! The 55 SMPL-X joints: names, parents and the pose-vector layouts (SMPL-X's and OSX's).
//!
//! Order and parents follow SMPL-X (`smplx/joint_names.py`); every parent precedes its child, which the
//! kinematic chain relies on.

/// Number of skeleton joints in SMPL-X (root + 54 articulated).
pub const NUM_JOINTS: usize = 55;

/// Number of pose-corrective features: 54 non-root joints × 9 entries of `R − I`.
pub const NUM_POSE_FEATURES: usize = (NUM_JOINTS - 1) * 9;

/// Joint names in SMPL-X order.
pub const JOINT_NAMES: [&str; NUM_JOINTS] = [
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "jaw",
    "left_eye_smplhf",
    "right_eye_smplhf",
    "left_index1",
    "left_index2",
    "left_index3",
    "left_middle1",
    "left_middle2",
    "left_middle3",
    "left_pinky1",
    "left_pinky2",
    "left_pinky3",
    "left_ring1",
    "left_ring2",
    "left_ring3",
    "left_thumb1",
    "left_thumb2",
    "left_thumb3",
    "right_index1",
    "right_index2",
    "right_index3",
    "right_middle1",
    "right_middle2",
    "right_middle3",
    "right_pinky1",
    "right_pinky2",
    "right_pinky3",
    "right_ring1",
    "right_ring2",
    "right_ring3",
    "right_thumb1",
    "right_thumb2",
    "right_thumb3",
];

/// Parent of each joint; the root's parent is -1 (model files store it as 4294967295).
pub const PARENTS: [i32; NUM_JOINTS] = [
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15,
    15, // body, jaw, eyes
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38, // left hand
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53, // right hand
];

/// Index of a joint by its SMPL-X name.
pub fn joint_index(name: &str) -> Option<usize> {
    JOINT_NAMES.iter().position(|n| *n == name)
}

// Joint ranges of the pose blocks, in SMPL-X joint numbering.
pub const ROOT: usize = 0;
pub const BODY_FIRST: usize = 1; // 21 joints: 1..=21
pub const JAW: usize = 22;
pub const LEFT_EYE: usize = 23;
pub const RIGHT_EYE: usize = 24;
pub const LEFT_HAND_FIRST: usize = 25; // 15 joints: 25..=39
pub const RIGHT_HAND_FIRST: usize = 40; // 15 joints: 40..=54
pub const NUM_BODY_JOINTS: usize = 21;
pub const NUM_HAND_JOINTS: usize = 15;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parent_precedes_its_child() {
        for (joint, parent) in PARENTS.iter().enumerate().skip(1) {
            assert!(
                (*parent as usize) < joint,
                "joint {joint} has parent {parent}"
            );
        }
        assert_eq!(PARENTS[0], -1);
    }

    #[test]
    fn finger_order_is_index_middle_pinky_ring_thumb() {
        assert_eq!(joint_index("left_pinky1"), Some(31));
        assert_eq!(joint_index("left_ring1"), Some(34));
        assert_eq!(joint_index("right_thumb3"), Some(54));
        assert_eq!(PARENTS[joint_index("right_ring1").unwrap()], 21);
    }
}
