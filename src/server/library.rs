//! Which sequences the paths given to `serve` hold. Three shapes are recognised:
//! - a sequence folder: frame files directly or in `frames/` (see `frames::discover`), an optional video
//!   (`video.mp4` / `video.webm`, or the folder's only video) and an optional pre-rendered folder `rendered/`;
//! - a library folder whose sub-folders are sequence folders;
//! - the Python prototype's layout: `ROOT/videos/<name>.mp4`, `ROOT/npz_files/<name>/frame_0001_params.npz …`,
//!   `ROOT/models/SMPLX_NEUTRAL.npz`, matched by name; pre-rendered frames go to `ROOT/rendered/<name>/`.
//!
//! Only folders are listed here; no frame file is opened.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::frames::{SequenceOptions, discover};

use super::video::Container;

/// The name of a sequence folder's pre-rendered sub-folder (batch output of `meshreel render`).
pub const RENDERED_DIR: &str = "rendered";

/// One sequence found on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SequenceSource {
    /// Display name: the folder's (or the prototype's matched) name.
    pub name: String,
    /// What `frames::discover` is given.
    pub frames_path: PathBuf,
    pub video: Option<PathBuf>,
    /// Where pre-rendered images are looked for and written (`--prerender`).
    pub rendered_dir: PathBuf,
}

/// Everything found under the paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Library {
    pub sequences: Vec<SequenceSource>,
    /// A model found in a prototype layout (`ROOT/models/SMPLX_NEUTRAL.npz`).
    pub model: Option<PathBuf>,
    /// Things found but not served (unmatched videos, folders without frames), said to the user.
    pub warnings: Vec<String>,
}

/// Why the paths hold nothing to serve.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("not a folder: {}", path.display())]
    NotAFolder { path: PathBuf },
    #[error(
        "no frame files, no sequence sub-folders and no videos/ + npz_files/ layout in the folder: {}",
        path.display()
    )]
    NothingToServe { path: PathBuf },
    #[error("cannot list the folder ({source}): {}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Finds the sequences of every path, in order.
pub fn find_sequences(
    paths: &[PathBuf],
    options: &SequenceOptions,
) -> Result<Library, LibraryError> {
    let mut library = Library::default();
    for path in paths {
        if !path.is_dir() {
            return Err(LibraryError::NotAFolder { path: path.clone() });
        }
        if is_prototype_root(path) {
            prototype_layout(path, options, &mut library)?;
        } else if discover(path, options).is_ok() {
            library.sequences.push(sequence_folder(
                path,
                folder_name(path),
                &mut library.warnings,
            ));
        } else {
            let found_before = library.sequences.len();
            for sub in sub_folders(path)? {
                if discover(&sub, options).is_ok() {
                    library.sequences.push(sequence_folder(
                        &sub,
                        folder_name(&sub),
                        &mut library.warnings,
                    ));
                } else if !is_hidden(&sub) {
                    library.warnings.push(format!(
                        "folder {} holds no frame files: not served",
                        sub.display()
                    ));
                }
            }
            if library.sequences.len() == found_before {
                return Err(LibraryError::NothingToServe { path: path.clone() });
            }
        }
    }
    Ok(library)
}

fn folder_name(path: &Path) -> String {
    path.canonicalize()
        .ok()
        .as_deref()
        .unwrap_or(path)
        .file_name()
        .map_or_else(
            || "sequence".to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// Sub-folders, sorted by name.
fn sub_folders(path: &Path) -> Result<Vec<PathBuf>, LibraryError> {
    let entries = std::fs::read_dir(path).map_err(|source| LibraryError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let mut folders: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    Ok(folders)
}

/// Video files in a folder, sorted by name.
fn videos_in(path: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(path) else {
        return Vec::new();
    };
    let mut videos: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && Container::from_path(p).is_some())
        .collect();
    videos.sort();
    videos
}

/// A sequence folder: its video is `video.mp4` / `video.webm`, else its only video file.
fn sequence_folder(path: &Path, name: String, warnings: &mut Vec<String>) -> SequenceSource {
    let videos = videos_in(path);
    let named = videos
        .iter()
        .find(|v| v.file_stem().is_some_and(|s| s == "video"));
    let video = match (named, videos.len()) {
        (Some(video), _) => Some(video.clone()),
        (None, 1) => videos.first().cloned(),
        (None, 0) => None,
        (None, _) => {
            warnings.push(format!(
                "{name}: several videos and none named video.mp4 or video.webm, so none is used: {}",
                path.display()
            ));
            None
        }
    };
    SequenceSource {
        name,
        frames_path: path.to_path_buf(),
        video,
        rendered_dir: path.join(RENDERED_DIR),
    }
}

/// The prototype's layout: a `videos/` folder, or an `npz_files/` folder of per-video sub-folders.
fn is_prototype_root(path: &Path) -> bool {
    let npz = path.join("npz_files");
    path.join("videos").is_dir()
        || (npz.is_dir()
            && std::fs::read_dir(&npz)
                .is_ok_and(|entries| entries.filter_map(Result::ok).any(|e| e.path().is_dir())))
}

fn prototype_layout(
    root: &Path,
    options: &SequenceOptions,
    library: &mut Library,
) -> Result<(), LibraryError> {
    let mut videos: BTreeMap<String, PathBuf> = BTreeMap::new();
    for video in videos_in(&root.join("videos")) {
        let Some(stem) = video.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
            continue;
        };
        if let Some(earlier) = videos.get(&stem) {
            library.warnings.push(format!(
                "videos/{}: another video named {stem} ({}) is used",
                video
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                earlier
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            ));
            continue;
        }
        videos.insert(stem, video);
    }
    let npz_root = root.join("npz_files");
    let folders = if npz_root.is_dir() {
        sub_folders(&npz_root)?
    } else {
        Vec::new()
    };
    for folder in folders {
        let name = folder_name(&folder);
        if discover(&folder, options).is_err() {
            if !is_hidden(&folder) {
                library
                    .warnings
                    .push(format!("npz_files/{name} holds no frame files: not served"));
            }
            continue;
        }
        let video = videos.remove(&name);
        if video.is_none() {
            library.warnings.push(format!(
                "npz_files/{name} has no matching video (videos/{name}.mp4): served without video"
            ));
        }
        library.sequences.push(SequenceSource {
            frames_path: folder,
            video,
            rendered_dir: root.join(RENDERED_DIR).join(&name),
            name,
        });
    }
    for (name, video) in videos {
        library.warnings.push(format!(
            "videos/{} has no frame folder (npz_files/{name}/): not served",
            video
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        ));
    }
    let model = root.join("models").join("SMPLX_NEUTRAL.npz");
    if model.is_file() && library.model.is_none() {
        library.model = Some(model);
    }
    Ok(())
}

/// A URL-safe id from a name: lowercase ASCII letters, digits, `-` and `_`; other runs become `-`. Unique among
/// `taken` (a `-2`, `-3` … suffix).
pub fn unique_id(name: &str, taken: &[String]) -> String {
    let mut base = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            base.push(c);
        } else if !base.ends_with('-') {
            base.push('-');
        }
    }
    let base = base.trim_matches('-').chars().take(64).collect::<String>();
    let base = if base.is_empty() {
        "sequence".to_string()
    } else {
        base
    };
    let mut id = base.clone();
    let mut n = 2;
    while taken.contains(&id) {
        id = format!("{base}-{n}");
        n += 1;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_url_safe_and_unique() {
        assert_eq!(unique_id("Clip 01 (take 2)", &[]), "clip-01-take-2");
        assert_eq!(unique_id("../..", &[]), "sequence");
        assert_eq!(unique_id("a", &["a".to_string()]), "a-2");
        assert_eq!(unique_id("a", &["a".to_string(), "a-2".to_string()]), "a-3");
        assert_eq!(unique_id("日本", &[]), "sequence");
    }
}
