//! One served sequence: its frames, video timing, output size, the validity of each frame (scanned once, in
//! the background for long sequences), the fallback plan of any frame, and its pre-rendered folder.
//!
//! A frame's plan needs only the validity of the frames up to `max_hold` before it, so frames can be served
//! before the scan ends, with exactly the bytes a batch run gives: the batch's own `plan_frames` and
//! `render_planned` run on that window of the sequence.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::batch::image_name;
use crate::encode::ImageFormat;
use crate::frames::{FrameSlot, ReadOptions, Sequence, SequenceOptions, discover, read_frame};
use crate::pipeline::{FallbackPolicy, FallbackSettings, Plan, RenderSettings, plan_frames};
use crate::render::camera::{SizeSource, output_size};
use crate::report::{Counts, FrameStatus, Report};

use super::ServeSettings;
use super::cache::FrameMeta;
use super::library::SequenceSource;
use super::video::{Container, VideoTiming, read_mp4_timing};

/// Sequences up to this many frames are scanned before serving starts; longer ones in the background.
pub const SYNC_SCAN_FRAMES: usize = 300;
/// The rate assumed when neither the video nor `--fps` gives one.
pub const DEFAULT_FPS: f64 = 30.0;
/// The file in a pre-rendered folder that says which settings this server renders it with.
pub const MARKER_FILE: &str = ".meshreel-serve.json";
/// Largest render report read from a pre-rendered folder.
const MAX_REPORT_BYTES: u64 = 512 * 1024 * 1024;

/// A frame's validity: persons, or the reason string it is not valid.
pub type Validity = Result<u32, Arc<str>>;

/// The sequence's video, if any.
#[derive(Clone, Debug)]
pub struct VideoEntry {
    pub path: PathBuf,
    pub container: Container,
    /// The container's frame timing, or why it could not be read.
    pub timing: Result<VideoTiming, String>,
}

/// Whether the pre-rendered folder's images are served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrerenderedUse {
    /// No such folder (or an empty one).
    Absent,
    /// Served: its report or this server's marker shows it was rendered with these settings.
    Served { why: String },
    /// Present but made with other settings: neither served nor written to.
    Ignored { why: String },
}

/// Progress of pre-rendering one sequence (`--prerender`).
#[derive(Debug, Default)]
pub struct PrerenderProgress {
    /// Shared with the batch run, which counts into it.
    pub done: Arc<AtomicUsize>,
    pub total: AtomicUsize,
    pub running: AtomicBool,
    pub finished: AtomicBool,
}

/// The read-ahead cursor of HTTP frame requests: a request outside the last read-ahead window is a seek, which
/// cancels the read-ahead still queued for the old window.
#[derive(Debug, Default)]
pub struct ReadAhead {
    pub last_index: Option<usize>,
}

/// One served sequence.
pub struct SequenceState {
    /// Position in the server's list: the sequence's part of a cache key.
    pub key: u32,
    pub id: String,
    pub name: String,
    /// The frame files, in NPZ numbering.
    pub sequence: Sequence,
    /// Frames served: the video's frame count when its timing is known, else the NPZ numbering's length.
    pub num_frames: usize,
    pub video: Option<VideoEntry>,
    pub fps: f64,
    /// `video`, `--fps` or `default`.
    pub fps_source: &'static str,
    /// Render settings with this sequence's size.
    pub render: RenderSettings,
    /// `--size`, `image_size`, `video` or `default`.
    pub size_source: &'static str,
    pub fallback: FallbackSettings,
    validity: RwLock<Vec<Option<Validity>>>,
    /// Frames whose validity is not known yet.
    unscanned: AtomicUsize,
    scanned: AtomicBool,
    render_errors: Mutex<BTreeMap<usize, String>>,
    pub rendered_dir: PathBuf,
    pub prerendered: PrerenderedUse,
    pub prerender: Arc<PrerenderProgress>,
    pub warnings: Vec<String>,
    /// Hex digest of everything that decides this sequence's bytes: the base of its frames' ETags.
    pub identity: String,
    /// Hex digest of the render settings alone (no file listing): what the pre-rendered marker records.
    pub settings_identity: String,
    pub read_ahead: Mutex<ReadAhead>,
    /// Bumped on a seek of HTTP requests; queued read-ahead of an older generation is dropped.
    pub read_ahead_generation: Arc<AtomicU64>,
}

/// Why a sequence could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Sequence(#[from] crate::frames::SequenceError),
}

impl SequenceState {
    /// Lists the frames, reads the video's timing, decides the size and scans short sequences.
    pub fn load(
        key: u32,
        id: String,
        source: &SequenceSource,
        settings: &ServeSettings,
    ) -> Result<SequenceState, LoadError> {
        let options = SequenceOptions {
            first_number: settings.first_frame_number,
        };
        let sequence = discover(&source.frames_path, &options)?;
        let mut warnings = Vec::new();
        for ignored in &sequence.ignored {
            tracing::warn!(file = %ignored.path.display(), why = %ignored.why, "ignoring file");
        }
        if !sequence.ignored.is_empty() {
            warnings.push(format!(
                "{} files in the frames folder are not part of the sequence (see the log)",
                sequence.ignored.len()
            ));
        }
        let npz_len = sequence.len();

        let video = source.video.as_ref().and_then(|path| {
            let container = Container::from_path(path)?;
            let timing = match container {
                Container::Mp4 => mp4_timing(path),
                Container::Webm => Err(
                    "WebM frame timing is not read: the rate comes from --fps, the frame count from the NPZ numbering"
                        .to_string(),
                ),
            };
            if let Err(why) = &timing {
                warnings.push(format!("video: {why}"));
            }
            Some(VideoEntry {
                path: path.clone(),
                container,
                timing,
            })
        });
        let timing = video.as_ref().and_then(|v| v.timing.as_ref().ok());
        if let Some(timing) = timing
            && !matches!(timing.codec.as_str(), "h264" | "vp9" | "av1")
        {
            warnings.push(format!(
                "video codec {}: browsers may not play it (H.264, VP9 and AV1 play everywhere)",
                timing.codec
            ));
        }

        let (fps, fps_source) = match (timing, settings.fps) {
            (Some(timing), Some(flag)) if (timing.fps - flag).abs() > 1e-3 => {
                warnings.push(format!(
                    "--fps {flag} differs from the video's {:.3} frames/s: the video's rate is used",
                    timing.fps
                ));
                (timing.fps, "video")
            }
            (Some(timing), _) => (timing.fps, "video"),
            (None, Some(flag)) => (flag, "--fps"),
            (None, None) => {
                warnings.push(format!(
                    "no video timing and no --fps: assuming {DEFAULT_FPS} frames/s"
                ));
                (DEFAULT_FPS, "default")
            }
        };

        let num_frames = timing.map_or(npz_len, |t| t.frame_count);
        if let Some(timing) = timing
            && timing.frame_count != npz_len
        {
            let last_number = sequence
                .frames
                .last()
                .map_or(sequence.first_number, |f| f.number);
            let detail = if timing.frame_count == npz_len + 1 {
                format!("video frame {npz_len} has no NPZ file (missing_file)")
            } else if timing.frame_count > npz_len {
                format!(
                    "video frames {npz_len}–{} have no NPZ file (missing_file)",
                    timing.frame_count - 1
                )
            } else {
                format!(
                    "NPZ frames numbered {}–{last_number} lie past the video's end and are not served",
                    sequence.first_number as usize + timing.frame_count
                )
            };
            warnings.push(format!(
                "video has {} frames but NPZ numbering covers {npz_len} (numbers {}–{last_number}): {detail}",
                timing.frame_count, sequence.first_number
            ));
        }

        // Validity: frames past the NPZ numbering have no file.
        let mut validity: Vec<Option<Validity>> = vec![None; num_frames];
        let missing: Arc<str> = Arc::from("missing_file");
        for slot in validity.iter_mut().skip(npz_len) {
            *slot = Some(Err(missing.clone()));
        }
        let scan_len = npz_len.min(num_frames);
        // The size needs the first image_size in the sequence, as the batch's scan finds it.
        let image_size = if npz_len <= SYNC_SCAN_FRAMES {
            let scan = crate::pipeline::scan(&sequence, settings.scan_threads);
            for (slot, found) in validity.iter_mut().zip(scan.validity) {
                *slot = Some(found.map(|p| p as u32).map_err(Arc::from));
            }
            scan.image_size
        } else {
            let mut found = None;
            for (index, slot) in sequence.frames.iter().enumerate() {
                match read_frame(slot, &ReadOptions::default()) {
                    Ok(frame) => {
                        if let Some(entry) = validity.get_mut(index) {
                            *entry = Some(Ok(frame.persons.len() as u32));
                        }
                        if frame.image_size.is_some() {
                            found = frame.image_size;
                            break;
                        }
                    }
                    Err(error) => {
                        if let Some(entry) = validity.get_mut(index) {
                            *entry = Some(Err(Arc::from(error.reason().to_string())));
                        }
                    }
                }
            }
            found
        };
        let (mut size, source_of_size) = output_size(settings.size, image_size);
        let mut size_source = match source_of_size {
            SizeSource::Option => "--size",
            SizeSource::ImageSize => "image_size",
            SizeSource::Default => "default",
        };
        if source_of_size == SizeSource::Default
            && let Some(timing) = timing
            && timing.width > 0
            && timing.height > 0
        {
            // The overlay must match the picture; a batch run without --size would use 720×720 here.
            size = (timing.width, timing.height);
            size_source = "video";
        }
        if let Some(timing) = timing
            && timing.width > 0
            && (timing.width, timing.height) != size
        {
            warnings.push(format!(
                "frames render at {}x{} ({size_source}) but the video is {}x{}",
                size.0, size.1, timing.width, timing.height
            ));
        }
        let mut render = settings.render;
        render.size = size;

        let settings_identity = settings.identity(size);
        let identity = sequence_identity(&settings_identity, &sequence, num_frames);
        let (mut prerendered, note) = prerendered_use(
            &source.rendered_dir,
            &settings_identity,
            &sequence,
            settings,
            size,
        );
        if settings.prerender && prerendered == PrerenderedUse::Absent {
            prerendered = PrerenderedUse::Served {
                why: "pre-rendered by this server (--prerender)".to_string(),
            };
        }
        if let Some(note) = note {
            tracing::info!(sequence = %source.name, "{note}");
            warnings.push(note);
        }
        let unscanned = validity[..scan_len].iter().filter(|v| v.is_none()).count();
        Ok(SequenceState {
            key,
            id,
            name: source.name.clone(),
            sequence,
            num_frames,
            video,
            fps,
            fps_source,
            render,
            size_source,
            fallback: settings.fallback,
            validity: RwLock::new(validity),
            unscanned: AtomicUsize::new(unscanned),
            scanned: AtomicBool::new(unscanned == 0),
            render_errors: Mutex::new(BTreeMap::new()),
            rendered_dir: source.rendered_dir.clone(),
            prerendered,
            prerender: Arc::new(PrerenderProgress::default()),
            warnings,
            identity,
            settings_identity,
            read_ahead: Mutex::new(ReadAhead::default()),
            read_ahead_generation: Arc::new(AtomicU64::new(0)),
        })
    }

    pub fn timing(&self) -> Option<&VideoTiming> {
        self.video.as_ref().and_then(|v| v.timing.as_ref().ok())
    }

    /// Whether every frame's validity is known.
    pub fn is_scanned(&self) -> bool {
        self.scanned.load(Ordering::Acquire)
    }

    fn read_validity(&self) -> std::sync::RwLockReadGuard<'_, Vec<Option<Validity>>> {
        self.validity.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_validity(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Option<Validity>>> {
        self.validity.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the validity of the frames in `range` that are not known yet; returns how many it read.
    pub fn scan_range(&self, range: std::ops::Range<usize>) -> usize {
        let unknown: Vec<usize> = {
            let validity = self.read_validity();
            range
                .filter(|i| validity.get(*i).is_some_and(Option::is_none))
                .collect()
        };
        let found: Vec<(usize, Validity)> = unknown
            .iter()
            .filter_map(|&index| {
                let slot = self.sequence.frame(index)?;
                let validity = match read_frame(slot, &ReadOptions::default()) {
                    Ok(frame) => Ok(frame.persons.len() as u32),
                    Err(error) => {
                        tracing::debug!(frame = slot.number, %error, "invalid frame");
                        Err(Arc::from(error.reason().to_string()))
                    }
                };
                Some((index, validity))
            })
            .collect();
        let read = found.len();
        if read == 0 {
            return 0;
        }
        let mut validity = self.write_validity();
        for (index, found) in found {
            if let Some(entry) = validity.get_mut(index)
                && entry.is_none()
            {
                *entry = Some(found);
                if self.unscanned.fetch_sub(1, Ordering::AcqRel) == 1 {
                    self.scanned.store(true, Ordering::Release);
                }
            }
        }
        read
    }

    /// The first frame whose validity is unknown, from `from` on.
    pub fn next_unscanned(&self, from: usize) -> Option<usize> {
        let validity = self.read_validity();
        (from..validity.len()).find(|i| validity[*i].is_none())
    }

    /// Where frame `index`'s plan starts looking: `max_hold` frames back for `last-valid`.
    fn window_start(&self, index: usize) -> usize {
        match self.fallback.policy {
            FallbackPolicy::LastValid => index.saturating_sub(self.fallback.max_hold as usize),
            FallbackPolicy::Placeholder | FallbackPolicy::Skip => index,
        }
    }

    /// The plan of frame `index` (reading the validity its window needs), on a window of the sequence that
    /// `render_planned` can draw from.
    pub fn plan_window(&self, index: usize) -> PlanWindow {
        let start = self.window_start(index);
        self.scan_range(start..index + 1);
        let validity: Vec<Result<usize, String>> = {
            let validity = self.read_validity();
            (start..=index)
                .map(|i| match validity.get(i) {
                    Some(Some(Ok(persons))) => Ok(*persons as usize),
                    Some(Some(Err(reason))) => Err(reason.to_string()),
                    // Read just above; only a frame outside the sequence lands here.
                    _ => Err("missing_file".to_string()),
                })
                .collect()
        };
        let plan = plan_frames(&validity, &self.fallback);
        let frames = (start..=index).map(|i| self.slot(i)).collect();
        let window = Sequence {
            dir: self.sequence.dir.clone(),
            layout: self.sequence.layout,
            first_number: self.slot(start).number,
            frames,
            ignored: Vec::new(),
        };
        PlanWindow {
            window,
            plan,
            validity,
            start,
            local: index - start,
        }
    }

    /// The slot of video frame `index`: the sequence's, or an empty one (`missing_file`) past its numbering.
    fn slot(&self, index: usize) -> FrameSlot {
        self.sequence
            .frame(index)
            .cloned()
            .unwrap_or_else(|| FrameSlot {
                number: self.sequence.first_number.saturating_add(index as u32),
                video_index: index,
                files: Vec::new(),
            })
    }

    /// The pre-rendered image of frame `index`, when the folder is served and holds a complete one.
    pub fn prerendered_path(&self, index: usize, format: ImageFormat) -> Option<PathBuf> {
        if format != ImageFormat::Png || !matches!(self.prerendered, PrerenderedUse::Served { .. })
        {
            return None;
        }
        let slot = self.sequence.frame(index)?;
        Some(
            self.rendered_dir
                .join(image_name(slot.number, ImageFormat::Png)),
        )
    }

    /// Remembers that a frame failed to render (shown as `e` on the timeline).
    pub fn record_render_error(&self, index: usize, message: &str) {
        if let Ok(mut errors) = self.render_errors.lock() {
            errors.insert(index, message.to_string());
        }
    }

    pub fn clear_render_error(&self, index: usize) {
        if let Ok(mut errors) = self.render_errors.lock()
            && !errors.is_empty()
        {
            errors.remove(&index);
        }
    }

    /// One character per frame (`o` ok, `f` fallback, `p` placeholder, `s` skipped, `e` render error, `?` not
    /// scanned yet) and the reason of every frame that is not `o`.
    pub fn timeline(&self) -> Timeline {
        let validity = self.read_validity();
        let errors = self
            .render_errors
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        let hold = self.fallback.max_hold as usize;
        let mut status = String::with_capacity(validity.len());
        let mut reasons = BTreeMap::new();
        let mut counts = TimelineCounts::default();
        counts.frames.total = validity.len();
        let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
        let (mut last_valid, mut last_unknown): (Option<usize>, Option<usize>) = (None, None);
        for (index, entry) in validity.iter().enumerate() {
            let (c, reason) = match entry {
                None => {
                    last_unknown = Some(index);
                    ('?', None)
                }
                Some(Ok(_)) => {
                    last_valid = Some(index);
                    ('o', None)
                }
                Some(Err(reason)) => {
                    let c = match self.fallback.policy {
                        FallbackPolicy::Skip => 's',
                        FallbackPolicy::Placeholder => 'p',
                        FallbackPolicy::LastValid => {
                            // Any valid frame within the hold makes a fallback; an unknown one might.
                            let within = |i: Option<usize>| i.is_some_and(|i| index - i <= hold);
                            if within(last_valid) {
                                'f'
                            } else if within(last_unknown) {
                                '?'
                            } else {
                                'p'
                            }
                        }
                    };
                    (c, Some(reason.to_string()))
                }
            };
            let (c, reason) = match errors.get(&index) {
                Some(message) => ('e', Some(message.clone())),
                None => (c, reason),
            };
            match c {
                'o' => counts.frames.ok += 1,
                'f' => counts.frames.fallback += 1,
                'p' => counts.frames.placeholder += 1,
                's' => counts.frames.skipped += 1,
                'e' => counts.frames.render_error += 1,
                _ => counts.unscanned += 1,
            }
            if let Some(reason) = reason {
                if c != '?' && c != 'e' {
                    *by_reason.entry(reason.clone()).or_default() += 1;
                }
                reasons.insert(index, reason);
            }
            status.push(c);
        }
        counts.reasons = by_reason;
        Timeline {
            status,
            reasons,
            scanned: validity.iter().all(Option::is_some),
            counts,
        }
    }
}

/// A frame's plan on a window of the sequence: `plan[local]` is the frame, sources count from `start`.
pub struct PlanWindow {
    pub window: Sequence,
    pub plan: Vec<Plan>,
    pub validity: Vec<Result<usize, String>>,
    pub start: usize,
    pub local: usize,
}

impl PlanWindow {
    /// The frame's status, reason and source as the plan decides them (before any render error).
    pub fn meta(&self) -> FrameMeta {
        match self.plan.get(self.local) {
            Some(Plan::Draw { source, reason }) => FrameMeta {
                status: if reason.is_some() {
                    FrameStatus::Fallback
                } else {
                    FrameStatus::Ok
                },
                reason: reason.clone(),
                source: reason.as_ref().map(|_| self.start + source),
                persons: self
                    .validity
                    .get(*source)
                    .and_then(|v| v.as_ref().ok())
                    .map_or(0, |p| *p as u32),
            },
            Some(Plan::Placeholder { reason }) => FrameMeta {
                status: FrameStatus::Placeholder,
                reason: Some(reason.clone()),
                source: None,
                persons: 0,
            },
            Some(Plan::Skip { reason }) => FrameMeta {
                status: FrameStatus::Skipped,
                reason: Some(reason.clone()),
                source: None,
                persons: 0,
            },
            None => FrameMeta {
                status: FrameStatus::RenderError,
                reason: Some("outside the sequence".to_string()),
                source: None,
                persons: 0,
            },
        }
    }
}

/// The timeline of a sequence for its metadata.
pub struct Timeline {
    pub status: String,
    pub reasons: BTreeMap<usize, String>,
    pub scanned: bool,
    pub counts: TimelineCounts,
}

/// Frames by status, as a render report counts them, plus those not scanned yet.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TimelineCounts {
    #[serde(flatten)]
    pub frames: Counts,
    pub unscanned: usize,
    /// Frames that are not `ok`, by reason string.
    pub reasons: BTreeMap<String, usize>,
}

/// The MP4's timing; a panic inside the parser (a hostile file) is an error for this video only.
fn mp4_timing(path: &Path) -> Result<VideoTiming, String> {
    std::panic::catch_unwind(|| read_mp4_timing(path))
        .map_err(|_| format!("the MP4 parser failed on {}", path.display()))?
        .map_err(|e| e.to_string())
}

/// Lowercase hex SHA-256 of `text`.
pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The settings identity plus the frame files (names, sizes, modification times): changes when any input does.
fn sequence_identity(settings_identity: &str, sequence: &Sequence, num_frames: usize) -> String {
    let started = Instant::now();
    let mut hasher = Sha256::new();
    hasher.update(settings_identity.as_bytes());
    hasher.update(
        format!(
            "\n{}\n{}\n{num_frames}\n",
            sequence.layout, sequence.first_number
        )
        .as_bytes(),
    );
    for slot in &sequence.frames {
        for file in &slot.files {
            let meta = std::fs::metadata(&file.path).ok();
            let modified = meta
                .as_ref()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            hasher.update(
                format!(
                    "{} {} {} {modified}\n",
                    slot.number,
                    file.path
                        .file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                    meta.map_or(0, |m| m.len())
                )
                .as_bytes(),
            );
        }
    }
    tracing::debug!(
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "sequence identity"
    );
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The marker a serving meshreel writes into a pre-rendered folder it renders into.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Marker {
    pub identity: String,
    pub settings: String,
}

/// Whether the pre-rendered folder may be served, and a note for the log and metadata.
fn prerendered_use(
    dir: &Path,
    settings_identity: &str,
    sequence: &Sequence,
    settings: &ServeSettings,
    size: (u32, u32),
) -> (PrerenderedUse, Option<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (PrerenderedUse::Absent, None);
    };
    if entries.filter_map(Result::ok).next().is_none() {
        return (PrerenderedUse::Absent, None);
    }
    if settings.stamp_frame_code {
        let why = "--stamp-frame-code stamps every image, and rendered/ images carry no stamp";
        return (
            PrerenderedUse::Ignored {
                why: why.to_string(),
            },
            Some(format!("{why}: not served, not written to")),
        );
    }
    let marker = std::fs::read_to_string(dir.join(MARKER_FILE))
        .ok()
        .and_then(|text| serde_json::from_str::<Marker>(&text).ok());
    if marker
        .as_ref()
        .is_some_and(|m| m.identity == settings_identity)
    {
        return (
            PrerenderedUse::Served {
                why: "pre-rendered by meshreel serve with these settings".to_string(),
            },
            None,
        );
    }
    let report_path = dir.join(crate::batch::report_name(crate::report::Shard::default()));
    let report = std::fs::metadata(&report_path)
        .ok()
        .filter(|m| m.len() <= MAX_REPORT_BYTES)
        .and_then(|_| std::fs::read_to_string(&report_path).ok())
        .and_then(|text| Report::from_json(&text).ok());
    let Some(report) = report else {
        let why = if marker.is_some() {
            "rendered/ was pre-rendered with other settings"
        } else {
            "rendered/ has no render_report.json saying how it was made"
        };
        return (
            PrerenderedUse::Ignored {
                why: why.to_string(),
            },
            Some(format!("{why}: not served, not written to")),
        );
    };
    let differences = report_differences(&report, sequence, settings, size);
    if differences.is_empty() {
        (
            PrerenderedUse::Served {
                why: "its render_report.json matches the size, model, backend and fallback"
                    .to_string(),
            },
            Some("serving pre-rendered frames from rendered/ (its report matches)".to_string()),
        )
    } else {
        let why = format!(
            "rendered/ was made with other settings ({})",
            differences.join("; ")
        );
        (
            PrerenderedUse::Ignored { why: why.clone() },
            Some(format!("{why}: not served, not written to")),
        )
    }
}

/// How a batch report's settings differ from the server's (empty: they match). The look and camera flags are
/// not in the report, so they cannot be compared.
fn report_differences(
    report: &Report,
    sequence: &Sequence,
    settings: &ServeSettings,
    size: (u32, u32),
) -> Vec<String> {
    let mut out = Vec::new();
    let s = &report.settings;
    if (s.width, s.height) != size {
        out.push(format!(
            "size {}x{}, not {}x{}",
            s.width, s.height, size.0, size.1
        ));
    }
    if s.format != "png" {
        out.push(format!("format {}, not png", s.format));
    }
    if s.shard.count != 1 {
        out.push("one shard of several".to_string());
    }
    if s.fallback != settings.fallback.policy.name() || s.max_hold != settings.fallback.max_hold {
        out.push(format!(
            "fallback {} (max hold {}), not {} ({})",
            s.fallback,
            s.max_hold,
            settings.fallback.policy.name(),
            settings.fallback.max_hold
        ));
    }
    let model = &report.inputs.model;
    let same_model = match &settings.model_sha256 {
        Some(sha) => model.kind == "smplx" && model.sha256.as_deref() == Some(sha.as_str()),
        None => model.kind == "stand_in",
    };
    if !same_model {
        out.push(format!("model {}", model.description));
    }
    if report.inputs.hand_mean != settings.render.mesh.forward.add_hand_mean {
        out.push("hand mean".to_string());
    }
    let mesh_source = serde_json::to_value(settings.render.mesh.source)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    if report.inputs.mesh_source != mesh_source {
        out.push(format!("mesh source {}", report.inputs.mesh_source));
    }
    // Reports written before the backend was recorded name it only in the renderer's description.
    let backend = match report.environment.backend.as_str() {
        "" if report.environment.renderer.starts_with("meshreel CPU") => "cpu",
        "" => "gl",
        recorded => recorded,
    };
    if backend != settings.renderer.backend() {
        out.push(format!(
            "{backend} backend, not {}",
            settings.renderer.backend()
        ));
    }
    if report.inputs.first_frame_number != sequence.first_number
        || report.inputs.num_frames != sequence.len()
    {
        out.push("other frame numbering".to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_is_lowercase_hex() {
        let hex = sha256_hex("abc");
        assert_eq!(hex.len(), 64);
        assert!(hex.starts_with("ba7816bf"));
    }
}
