//! Sequence discovery: which per-frame files a folder holds, which frame number each carries, and which video
//! frame that number shows. Lists the folder once and opens no file.
//!
//! Naming layouts (DOMAIN.md A.6): `frame_0001_params.npz` (OSX users), `<name>_000123.npz`, per-person
//! `<name>_000123_p0.npz` (merged into one frame), SMPLer-X `00012_0.npz` (frame, box id; camera sidecars in
//! `../meta/00012_0.json`).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Most frame numbers one sequence may span (9 hours at 30 fps); a stray `frame_99999999` cannot make the
/// frame table huge.
pub const MAX_FRAMES: u32 = 1_000_000;

/// Sub-folders searched, in order, when the given folder holds no frame files itself.
const FRAME_SUBDIRS: [&str; 3] = ["frames", "smplx", "npz_files"];

/// How frame files are named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layout {
    /// `frame_0001_params.npz`: one file per frame, persons inside (`person_{i}_` keys), numbered from 1.
    OsxFrames,
    /// `00012_0.npz`: SMPLer-X, one file per detected box (`{frame:05}_{bbox_id}`).
    SmplerX,
    /// `<name>_000123_p0.npz`: one file per person.
    PerPerson,
    /// `<name>_000123.npz` or `000123.npz`: one file per frame.
    Numbered,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::OsxFrames => "frame_NNNN_params.npz",
            Layout::SmplerX => "NNNNN_B.npz (SMPLer-X)",
            Layout::PerPerson => "NAME_NNNNNN_pK.npz (per person)",
            Layout::Numbered => "NAME_NNNNNN.npz",
        })
    }
}

/// One file contributing to a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonFile {
    pub path: PathBuf,
    /// The person (or box) id from the file name, for one-person-per-file layouts.
    pub person: Option<u32>,
    /// SMPLer-X camera sidecar (`meta/<stem>.json`), when present.
    pub meta: Option<PathBuf>,
}

/// One frame number of the sequence and the files that carry it (none: `missing_file`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameSlot {
    /// The number in the file name.
    pub number: u32,
    /// The 0-based video frame this number shows.
    pub video_index: usize,
    pub files: Vec<PersonFile>,
}

/// A file in the folder that is not part of the sequence, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IgnoredFile {
    pub path: PathBuf,
    pub why: String,
}

/// Choices for reading a sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SequenceOptions {
    /// The file number that shows video frame 0. `None`: 0 when a file numbered 0 exists, else 1 (ffmpeg's
    /// frame dumps start at 1, so `frame_0001` is the first video frame).
    pub first_number: Option<u32>,
}

/// A discovered sequence: a slot for every frame number from `first_number` to the highest, gaps included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sequence {
    /// The folder holding the frame files.
    pub dir: PathBuf,
    pub layout: Layout,
    pub first_number: u32,
    /// Indexed by video frame index.
    pub frames: Vec<FrameSlot>,
    pub ignored: Vec<IgnoredFile>,
}

impl Sequence {
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The slot showing video frame `video_index`.
    pub fn frame(&self, video_index: usize) -> Option<&FrameSlot> {
        self.frames.get(video_index)
    }

    /// The slot with file number `number`.
    pub fn by_number(&self, number: u32) -> Option<&FrameSlot> {
        let index = number.checked_sub(self.first_number)?;
        self.frames.get(index as usize)
    }

    /// Frame numbers with no file.
    pub fn missing_numbers(&self) -> Vec<u32> {
        self.frames
            .iter()
            .filter(|slot| slot.files.is_empty())
            .map(|slot| slot.number)
            .collect()
    }
}

/// Why a folder is not a usable sequence.
#[derive(Debug, thiserror::Error)]
pub enum SequenceError {
    #[error("cannot list the sequence folder ({source}): {}", dir.display())]
    Unreadable {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "no frame files (*.npz named like frame_0001_params.npz, NAME_000123.npz, NAME_000123_p0.npz or \
         00012_0.npz) in the folder or its frames/, smplx/ or npz_files/ sub-folder: {}",
        dir.display()
    )]
    NoFrames { dir: PathBuf },
    #[error(
        "frame numbers run from {first} to {last}, more than {MAX_FRAMES} frames; is a file misnamed? {}",
        dir.display()
    )]
    TooManyFrames { first: u32, last: u32, dir: PathBuf },
    #[error("every frame file is numbered below the first frame number {first_number}: {}", dir.display())]
    AllBeforeFirst { first_number: u32, dir: PathBuf },
}

/// Finds the frame files of the sequence at `path` (the frames folder, or a folder with one of the usual
/// sub-folders).
pub fn discover(path: &Path, options: &SequenceOptions) -> Result<Sequence, SequenceError> {
    let (dir, names) = frames_dir(path)?;

    let mut parsed: Vec<(String, ParsedName)> = Vec::new();
    let mut ignored = Vec::new();
    for name in names {
        match parse_name(&name) {
            Some(p) => parsed.push((name, p)),
            None => ignored.push(IgnoredFile {
                path: dir.join(&name),
                why: "not named like a frame file".to_string(),
            }),
        }
    }
    let layout =
        dominant_layout(&parsed).ok_or_else(|| SequenceError::NoFrames { dir: dir.clone() })?;
    let meta_stems = if layout == Layout::SmplerX {
        sidecar_stems(&dir)
    } else {
        HashSet::new()
    };

    let mut by_number: BTreeMap<u32, Vec<PersonFile>> = BTreeMap::new();
    for (name, p) in parsed {
        let path = dir.join(&name);
        if p.layout != layout {
            ignored.push(IgnoredFile {
                path,
                why: format!("named like {}, but the sequence uses {layout}", p.layout),
            });
            continue;
        }
        let files = by_number.entry(p.number).or_default();
        let one_file_per_frame = matches!(layout, Layout::OsxFrames | Layout::Numbered);
        if one_file_per_frame && !files.is_empty() || files.iter().any(|f| f.person == p.person) {
            ignored.push(IgnoredFile {
                path,
                why: format!(
                    "another file already carries frame {} (person {:?})",
                    p.number, p.person
                ),
            });
            continue;
        }
        let stem = name.trim_end_matches(".npz");
        let meta = meta_stems
            .contains(stem)
            .then(|| dir.join("..").join("meta").join(format!("{stem}.json")));
        files.push(PersonFile {
            path,
            person: p.person,
            meta,
        });
    }

    let lowest = *by_number
        .keys()
        .next()
        .ok_or_else(|| SequenceError::NoFrames { dir: dir.clone() })?;
    let first_number = options
        .first_number
        .unwrap_or(if lowest == 0 { 0 } else { 1 });
    let early: Vec<u32> = by_number.range(..first_number).map(|(n, _)| *n).collect();
    for number in early {
        for file in by_number.remove(&number).unwrap_or_default() {
            ignored.push(IgnoredFile {
                path: file.path,
                why: format!(
                    "frame number {number} is before the first frame number {first_number}"
                ),
            });
        }
    }
    let last = match by_number.keys().next_back() {
        Some(last) => *last,
        None => return Err(SequenceError::AllBeforeFirst { first_number, dir }),
    };
    if last - first_number >= MAX_FRAMES {
        return Err(SequenceError::TooManyFrames {
            first: first_number,
            last,
            dir,
        });
    }

    let frames = (first_number..=last)
        .enumerate()
        .map(|(video_index, number)| {
            let mut files = by_number.remove(&number).unwrap_or_default();
            files.sort_by_key(|f| f.person);
            FrameSlot {
                number,
                video_index,
                files,
            }
        })
        .collect();
    ignored.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Sequence {
        dir,
        layout,
        first_number,
        frames,
        ignored,
    })
}

/// The folder holding the frame files, and the `.npz` names in it: the given folder if any of its files is
/// named like a frame, else the first usual sub-folder that has such files.
fn frames_dir(path: &Path) -> Result<(PathBuf, Vec<String>), SequenceError> {
    let list = |dir: &Path| -> Result<Vec<String>, SequenceError> {
        let entries = fs::read_dir(dir).map_err(|source| SequenceError::Unreadable {
            dir: dir.to_path_buf(),
            source,
        })?;
        Ok(entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| name.ends_with(".npz"))
            .collect())
    };
    let has_frames = |names: &[String]| names.iter().any(|n| parse_name(n).is_some());
    let names = list(path)?;
    if has_frames(&names) {
        return Ok((path.to_path_buf(), names));
    }
    for sub in FRAME_SUBDIRS {
        let dir = path.join(sub);
        if dir.is_dir() {
            let names = list(&dir)?;
            if has_frames(&names) {
                return Ok((dir, names));
            }
        }
    }
    Err(SequenceError::NoFrames {
        dir: path.to_path_buf(),
    })
}

/// Stems of the SMPLer-X camera sidecars in `../meta/`.
fn sidecar_stems(dir: &Path) -> HashSet<String> {
    let Ok(entries) = fs::read_dir(dir.join("..").join("meta")) else {
        return HashSet::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|name| name.strip_suffix(".json").map(str::to_string))
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ParsedName {
    layout: Layout,
    number: u32,
    person: Option<u32>,
}

/// The layout with the most files; ties go to the more specific layout.
fn dominant_layout(parsed: &[(String, ParsedName)]) -> Option<Layout> {
    let mut counts: BTreeMap<Layout, usize> = BTreeMap::new();
    for (_, p) in parsed {
        *counts.entry(p.layout).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by(|(la, ca), (lb, cb)| ca.cmp(cb).then(lb.cmp(la)))
        .map(|(layout, _)| layout)
}

fn parse_number(digits: &str) -> Option<u32> {
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Reads the layout, frame number and person id from a file name.
fn parse_name(name: &str) -> Option<ParsedName> {
    let stem = name.strip_suffix(".npz")?;
    let parsed = |layout, number, person| {
        Some(ParsedName {
            layout,
            number,
            person,
        })
    };

    if let Some(digits) = stem
        .strip_prefix("frame_")
        .and_then(|s| s.strip_suffix("_params"))
    {
        return parsed(Layout::OsxFrames, parse_number(digits)?, None);
    }
    if let Some((frame, bbox)) = stem.split_once('_')
        && let (Some(number), Some(bbox)) = (parse_number(frame), parse_number(bbox))
    {
        return parsed(Layout::SmplerX, number, Some(bbox));
    }
    if let Some((rest, person)) = stem.rsplit_once("_p")
        && let Some(person) = parse_number(person)
        && let Some((_, digits)) = rest.rsplit_once('_')
        && let Some(number) = parse_number(digits)
    {
        return parsed(Layout::PerPerson, number, Some(person));
    }
    let digits = stem.rsplit_once('_').map_or(stem, |(_, d)| d);
    parsed(Layout::Numbered, parse_number(digits)?, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str) -> Option<(Layout, u32, Option<u32>)> {
        parse_name(name).map(|p| (p.layout, p.number, p.person))
    }

    #[test]
    fn file_names_of_every_layout_parse() {
        assert_eq!(
            parse("frame_0001_params.npz"),
            Some((Layout::OsxFrames, 1, None))
        );
        assert_eq!(
            parse("frame_1800_params.npz"),
            Some((Layout::OsxFrames, 1800, None))
        );
        assert_eq!(parse("00012_0.npz"), Some((Layout::SmplerX, 12, Some(0))));
        assert_eq!(
            parse("hello_abc123_000012_p1.npz"),
            Some((Layout::PerPerson, 12, Some(1)))
        );
        assert_eq!(
            parse("clip_000123.npz"),
            Some((Layout::Numbered, 123, None))
        );
        assert_eq!(parse("000123.npz"), Some((Layout::Numbered, 123, None)));
    }

    #[test]
    fn names_without_a_frame_number_are_not_frames() {
        for name in [
            "summary.npz",
            "frame__params.npz",
            "frame_12a_params.npz",
            "x.npy",
            "clip_.npz",
        ] {
            assert_eq!(parse(name), None, "{name}");
        }
        assert_eq!(
            parse("frame_9999999999_params.npz"),
            None,
            "numbers over 9 digits are refused"
        );
    }
}
