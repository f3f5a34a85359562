//! The user's data: sequence discovery, NPZ reading with limits, and per-person parameter extraction.
//!
//! Every frame ends as either valid parameters or one [`FrameError`], whose [`FrameError::reason`] is the stable
//! string used everywhere later (reports, HTTP headers, the player's timeline).

pub mod npz;
mod params;
mod sequence;

use std::fmt;
use std::path::PathBuf;

pub use params::{FrameParams, PersonParams, ReadOptions, read_frame};
pub use sequence::{
    FrameSlot, IgnoredFile, Layout, PersonFile, Sequence, SequenceError, SequenceOptions, discover,
};

/// Why a frame has no valid parameters. One enum, one place: [`FrameError::reason`] gives the stable string.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FrameError {
    /// The file was read and holds no detected person.
    #[error("no person was detected in this frame: {}", file.display())]
    NoPerson { file: PathBuf },
    /// No file carries this frame number (a gap in the numbering).
    #[error("no file for frame number {number} in the sequence")]
    MissingFile { number: u32 },
    /// The file is not a readable NPZ archive, or one of its arrays is damaged or over the size limits.
    #[error("corrupt NPZ ({detail}): {}", file.display())]
    CorruptNpz { file: PathBuf, detail: String },
    /// A required key is absent.
    #[error("missing key '{key}': {}", file.display())]
    MissingKey { key: String, file: PathBuf },
    /// A key holds the wrong number of values, an unusable shape, or a type that is not numbers.
    #[error("key '{key}' has {actual}, expected {expected}: {}", file.display())]
    BadShape {
        key: String,
        expected: String,
        actual: String,
        file: PathBuf,
    },
    /// A key holds NaN or infinity.
    #[error("key '{key}' holds a non-finite value (NaN or infinity): {}", file.display())]
    NonFinite { key: String, file: PathBuf },
    /// The file exists but could not be read (permissions, I/O error).
    #[error("cannot read the file ({detail}): {}", file.display())]
    Unreadable { file: PathBuf, detail: String },
}

impl FrameError {
    /// The stable reason string: `no_person`, `missing_file`, `corrupt_npz`, `missing_key:<key>`,
    /// `bad_shape:<key>`, `non_finite:<key>` or `unreadable`.
    pub fn reason(&self) -> Reason {
        match self {
            FrameError::NoPerson { .. } => Reason::simple("no_person"),
            FrameError::MissingFile { .. } => Reason::simple("missing_file"),
            FrameError::CorruptNpz { .. } => Reason::simple("corrupt_npz"),
            FrameError::MissingKey { key, .. } => Reason::keyed("missing_key", key),
            FrameError::BadShape { key, .. } => Reason::keyed("bad_shape", key),
            FrameError::NonFinite { key, .. } => Reason::keyed("non_finite", key),
            FrameError::Unreadable { .. } => Reason::simple("unreadable"),
        }
    }
}

/// A stable reason: a class (`missing_key`) and, for key-specific classes, the key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reason {
    pub class: &'static str,
    pub key: Option<String>,
}

impl Reason {
    fn simple(class: &'static str) -> Reason {
        Reason { class, key: None }
    }

    fn keyed(class: &'static str, key: &str) -> Reason {
        Reason {
            class,
            key: Some(key.to_string()),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{}:{}", self.class, key),
            None => f.write_str(self.class),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_the_stable_strings() {
        let file = PathBuf::from("frame_0001_params.npz");
        let cases = [
            (FrameError::NoPerson { file: file.clone() }, "no_person"),
            (FrameError::MissingFile { number: 3 }, "missing_file"),
            (
                FrameError::CorruptNpz {
                    file: file.clone(),
                    detail: "x".into(),
                },
                "corrupt_npz",
            ),
            (
                FrameError::MissingKey {
                    key: "person_0_smplx_body_pose".into(),
                    file: file.clone(),
                },
                "missing_key:person_0_smplx_body_pose",
            ),
            (
                FrameError::BadShape {
                    key: "smplx_jaw_pose".into(),
                    expected: "3 values".into(),
                    actual: "(4,)".into(),
                    file: file.clone(),
                },
                "bad_shape:smplx_jaw_pose",
            ),
            (
                FrameError::NonFinite {
                    key: "cam_trans".into(),
                    file: file.clone(),
                },
                "non_finite:cam_trans",
            ),
            (
                FrameError::Unreadable {
                    file: file.clone(),
                    detail: "denied".into(),
                },
                "unreadable",
            ),
        ];
        for (error, reason) in cases {
            assert_eq!(error.reason().to_string(), reason);
            assert!(
                error.to_string().contains("frame"),
                "message names the file or frame: {error}"
            );
        }
    }
}
