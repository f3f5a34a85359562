//! A sequence's video, and its frame timing read from the container: frame count, rate, the first frame's
//! presentation time and the picture size, from the MP4 sample table (mp4parse, Firefox's demuxer).
//!
//! Only `ftyp` and `moov` are handed to the parser: the top-level boxes are walked with seeks, so a large
//! `mdat` is never read. WebM is accepted for playback, but its timing is not read (no cluster walker here):
//! `--fps` then gives the rate.

use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use mp4parse::unstable::{CheckedInteger, create_sample_table};
use mp4parse::{CodecType, SampleEntry, TrackType};

/// Largest `moov` read: about 20 bytes a frame in the sample tables, so hours of video.
const MAX_MOOV_BYTES: u64 = 64 * 1024 * 1024;

/// Container kinds served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Container {
    Mp4,
    Webm,
}

impl Container {
    /// The container a file name says, if served at all.
    pub fn from_path(path: &Path) -> Option<Container> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "mp4" | "m4v" | "mov" => Some(Container::Mp4),
            "webm" => Some(Container::Webm),
            _ => None,
        }
    }

    /// The HTTP content type.
    pub fn mime(self) -> &'static str {
        match self {
            Container::Mp4 => "video/mp4",
            Container::Webm => "video/webm",
        }
    }
}

/// Frame timing of a video track, from its sample table.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct VideoTiming {
    /// Samples (frames) in the track.
    pub frame_count: usize,
    /// Frames per second: the track timescale over the most common frame duration.
    pub fps: f64,
    /// The rate as a fraction (e.g. 30000/1001), for exact arithmetic.
    pub fps_num: u64,
    pub fps_den: u64,
    /// Presentation time of the first frame in seconds, after the edit list (what the browser's `mediaTime` shows).
    pub start_secs: f64,
    /// Presentation time of the last frame's end, in seconds.
    pub end_secs: f64,
    /// Every frame lasts the same (within one tick).
    pub constant_rate: bool,
    pub width: u32,
    pub height: u32,
    /// `h264`, `vp9`, `av1`, … or `unknown` (HEVC is reported as unknown: browsers mostly cannot play it).
    pub codec: String,
}

/// Why a video's timing could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("cannot read the video ({source}): {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("not an MP4 file, or a damaged one ({detail}): {}", path.display())]
    Malformed { path: PathBuf, detail: String },
    #[error("the MP4 has no moov box (truncated, or still being written): {}", path.display())]
    NoMoov { path: PathBuf },
    #[error("the MP4's moov box is {bytes} bytes, over the {MAX_MOOV_BYTES}-byte limit: {}", path.display())]
    MoovTooLarge { path: PathBuf, bytes: u64 },
    #[error("the MP4 has no video track: {}", path.display())]
    NoVideoTrack { path: PathBuf },
    #[error(
        "the MP4 is fragmented (its frames are listed in moof boxes, which meshreel does not read); give the rate \
         with --fps: {}",
        path.display()
    )]
    Fragmented { path: PathBuf },
}

/// Reads the frame timing of the first video track of an MP4 file.
pub fn read_mp4_timing(path: &Path) -> Result<VideoTiming, VideoError> {
    let io_error = |source| VideoError::Io {
        path: path.to_path_buf(),
        source,
    };
    let malformed = |detail: String| VideoError::Malformed {
        path: path.to_path_buf(),
        detail,
    };
    let mut file = File::open(path).map_err(io_error)?;
    let boxes = top_level_boxes(&mut file).map_err(|e| match e {
        BoxError::Io(source) => io_error(source),
        BoxError::Malformed(detail) => malformed(detail),
    })?;
    let moov = boxes
        .iter()
        .find(|b| &b.kind == b"moov")
        .ok_or_else(|| VideoError::NoMoov {
            path: path.to_path_buf(),
        })?;
    if moov.len > MAX_MOOV_BYTES {
        return Err(VideoError::MoovTooLarge {
            path: path.to_path_buf(),
            bytes: moov.len,
        });
    }
    let fragmented = boxes.iter().any(|b| &b.kind == b"moof");
    // The parser wants ftyp before moov; give it exactly those two boxes.
    let mut header = Vec::new();
    for wanted in [b"ftyp", b"moov"] {
        if let Some(found) = boxes.iter().find(|b| &b.kind == wanted) {
            if found.len > MAX_MOOV_BYTES {
                return Err(malformed(format!(
                    "a {} box of {} bytes",
                    String::from_utf8_lossy(wanted),
                    found.len
                )));
            }
            file.seek(SeekFrom::Start(found.offset)).map_err(io_error)?;
            let start = header.len();
            (&mut file)
                .take(found.len)
                .read_to_end(&mut header)
                .map_err(io_error)?;
            if (header.len() - start) as u64 != found.len {
                return Err(malformed("the file ends inside a box".to_string()));
            }
        }
    }
    let context =
        mp4parse::read_mp4(&mut Cursor::new(header)).map_err(|e| malformed(format!("{e:?}")))?;
    let movie_timescale = context.timescale.map(|t| t.0);
    let track = context
        .tracks
        .iter()
        .find(|t| t.track_type == TrackType::Video)
        .ok_or_else(|| VideoError::NoVideoTrack {
            path: path.to_path_buf(),
        })?;
    let timescale = track
        .timescale
        .map(|t| t.0)
        .filter(|t| *t > 0)
        .ok_or_else(|| malformed("the video track has no timescale".to_string()))?;
    let samples = create_sample_table(track, CheckedInteger(0)).unwrap_or_default();
    if samples.is_empty() {
        if fragmented || context.mvex.is_some() {
            return Err(VideoError::Fragmented {
                path: path.to_path_buf(),
            });
        }
        return Err(malformed("the video track has no frames".to_string()));
    }
    let mut pts: Vec<i64> = samples.iter().map(|s| s.start_composition.0).collect();
    pts.sort_unstable();
    let ends = samples
        .iter()
        .map(|s| s.end_composition.0)
        .max()
        .unwrap_or(0);

    // Edit list: media_time (track ticks) is where presentation starts; an empty edit (movie ticks) delays it.
    let media_time = track.media_time.map_or(0, |t| t.0) as f64 / timescale as f64;
    let empty_secs = match (track.empty_duration, movie_timescale) {
        (Some(empty), Some(scale)) if scale > 0 => empty.0 as f64 / scale as f64,
        _ => 0.0,
    };
    let to_secs = |ticks: i64| ticks as f64 / timescale as f64 - media_time + empty_secs;

    let deltas: Vec<i64> = pts.windows(2).map(|w| w[1] - w[0]).collect();
    let frame_ticks = most_common(&deltas)
        .or_else(|| {
            // One frame: its own duration.
            let first = samples.first()?;
            Some(first.end_composition.0 - first.start_composition.0)
        })
        .filter(|d| *d > 0)
        .ok_or_else(|| malformed("frames without duration".to_string()))?;
    let constant_rate = deltas.iter().all(|d| (d - frame_ticks).abs() <= 1);
    let divisor = gcd(timescale, frame_ticks as u64).max(1);
    let (width, height, codec) = picture(track);
    Ok(VideoTiming {
        frame_count: pts.len(),
        fps: timescale as f64 / frame_ticks as f64,
        fps_num: timescale / divisor,
        fps_den: frame_ticks as u64 / divisor,
        start_secs: to_secs(pts[0]),
        end_secs: to_secs(ends),
        constant_rate,
        width,
        height,
        codec,
    })
}

/// The picture size (coded size from the sample entry, else the track header's display size) and the codec.
fn picture(track: &mp4parse::Track) -> (u32, u32, String) {
    let entry = track.stsd.as_ref().and_then(|stsd| {
        stsd.descriptions.iter().find_map(|d| match d {
            SampleEntry::Video(video) => Some(video),
            _ => None,
        })
    });
    let codec = match entry.map(|e| e.codec_type) {
        Some(CodecType::H264) => "h264",
        Some(CodecType::AV1) => "av1",
        Some(CodecType::VP9) => "vp9",
        Some(CodecType::VP8) => "vp8",
        Some(CodecType::MP4V) => "mp4v",
        Some(CodecType::H263) => "h263",
        Some(CodecType::EncryptedVideo) => "encrypted",
        _ => "unknown",
    };
    let (mut width, mut height) =
        entry.map_or((0, 0), |e| (u32::from(e.width), u32::from(e.height)));
    if (width == 0 || height == 0)
        && let Some(tkhd) = &track.tkhd
    {
        // 16.16 fixed point.
        (width, height) = (tkhd.width >> 16, tkhd.height >> 16);
    }
    (width, height, codec.to_string())
}

/// The most frequent value (ties: the smallest).
fn most_common(values: &[i64]) -> Option<i64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let mut best: Option<(i64, usize)> = None;
    for run in sorted.chunk_by(|a, b| a == b) {
        if best.is_none_or(|(_, count)| run.len() > count) {
            best = Some((run[0], run.len()));
        }
    }
    best.map(|(value, _)| value)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// One top-level box: where its header starts and its whole length.
struct TopBox {
    kind: [u8; 4],
    offset: u64,
    len: u64,
}

enum BoxError {
    Io(io::Error),
    Malformed(String),
}

/// Most top-level boxes listed; real files have a handful (more only when fragmented).
const MAX_TOP_LEVEL_BOXES: usize = 100_000;

/// Walks the file's top-level boxes by their headers, seeking over their contents.
fn top_level_boxes(file: &mut File) -> Result<Vec<TopBox>, BoxError> {
    let file_len = file.metadata().map_err(BoxError::Io)?.len();
    let mut boxes = Vec::new();
    let mut offset = 0u64;
    while offset + 8 <= file_len {
        if boxes.len() >= MAX_TOP_LEVEL_BOXES {
            return Err(BoxError::Malformed("too many top-level boxes".to_string()));
        }
        file.seek(SeekFrom::Start(offset)).map_err(BoxError::Io)?;
        let mut head = [0u8; 8];
        file.read_exact(&mut head).map_err(BoxError::Io)?;
        let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let kind = [head[4], head[5], head[6], head[7]];
        let len = match size32 {
            // To the end of the file.
            0 => file_len - offset,
            1 => {
                let mut large = [0u8; 8];
                file.read_exact(&mut large).map_err(BoxError::Io)?;
                u64::from_be_bytes(large)
            }
            n => u64::from(n),
        };
        if len < 8 || offset.checked_add(len).is_none_or(|end| end > file_len) {
            // A box running past the end: a truncated file. Keep what was complete.
            if boxes.is_empty() {
                return Err(BoxError::Malformed(format!(
                    "the first box claims {len} bytes of a {file_len}-byte file"
                )));
            }
            break;
        }
        boxes.push(TopBox { kind, offset, len });
        offset += len;
    }
    if boxes.is_empty() {
        return Err(BoxError::Malformed("no boxes".to_string()));
    }
    Ok(boxes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_common_frame_duration_wins() {
        assert_eq!(most_common(&[1001, 1001, 2002, 1001]), Some(1001));
        assert_eq!(most_common(&[]), None);
        assert_eq!(gcd(30000, 1001), 1);
        assert_eq!(gcd(15360, 512), 512);
    }

    #[test]
    fn containers_come_from_the_extension() {
        assert_eq!(
            Container::from_path(Path::new("a/video.MP4")),
            Some(Container::Mp4)
        );
        assert_eq!(
            Container::from_path(Path::new("clip.webm")),
            Some(Container::Webm)
        );
        assert_eq!(Container::from_path(Path::new("clip.avi")), None);
    }
}
