//! `render_report.json`: what a batch render did with every frame, as plain data (documented for users in
//! `docs/render-report.md`, checked by `docs/render_report.schema.json`), and the merge of shard reports.
//!
//! Depends on nothing else in the crate: settings and model kinds are the strings the user typed or read.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The version of the document layout. Raised on any change a reader could trip over.
pub const SCHEMA_VERSION: u32 = 1;

/// What happened to one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameStatus {
    /// Rendered from the frame's own parameters.
    Ok,
    /// No valid parameters; shows the nearest earlier valid frame's mesh (at most `max_hold` frames back).
    Fallback,
    /// Nothing to show: a transparent image with a badge naming the reason.
    Placeholder,
    /// No image written (`--fallback skip`).
    Skipped,
    /// Rendering failed for this frame only; no image written.
    RenderError,
}

/// Milliseconds spent in each stage of one frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageMs {
    pub read: f64,
    pub forward: f64,
    pub render: f64,
    pub encode: f64,
    pub write: f64,
}

/// One frame's fate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameRecord {
    /// The number in the file name.
    pub number: u32,
    /// The 0-based video frame this number shows.
    pub video_index: usize,
    /// File names (inside the sequence folder) read for this frame; empty for a missing file.
    pub input_files: Vec<String>,
    pub status: FrameStatus,
    /// The stable reason string (`no_person`, `missing_key:<key>`, …) or, for a render error, its message.
    /// `None` for `ok` frames.
    pub reason: Option<String>,
    /// The frame number whose mesh a fallback frame shows.
    pub source_frame: Option<u32>,
    /// Persons drawn (0 for placeholder and skipped frames).
    pub persons: u32,
    /// File name inside the output folder; `None` when skipped or on a render error.
    pub output: Option<String>,
    /// `--resume` found the image already complete and kept it.
    pub resumed: bool,
    /// Total milliseconds spent on this frame (may exceed the stages' sum: queueing, bookkeeping).
    pub ms: f64,
    pub stage_ms: StageMs,
}

/// Frames by status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub total: usize,
    pub ok: usize,
    pub fallback: usize,
    pub placeholder: usize,
    pub skipped: usize,
    pub render_error: usize,
}

impl Counts {
    /// One line for people: `60 frames: 53 ok, 7 fallback, 0 placeholder, 0 skipped, 0 render_error`.
    pub fn summary(&self) -> String {
        format!(
            "{} frames: {} ok, {} fallback, {} placeholder, {} skipped, {} render_error",
            self.total, self.ok, self.fallback, self.placeholder, self.skipped, self.render_error
        )
    }
}

/// Each status's count divided by the total; all 0 when there are no frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    pub ok: f64,
    pub fallback: f64,
    pub placeholder: f64,
    pub skipped: f64,
    pub render_error: f64,
}

/// Summary of one stage's per-frame milliseconds. Percentiles are nearest-rank.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageStats {
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
}

/// [`StageStats`] for every stage and for the frame total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageTimings {
    pub read: StageStats,
    pub forward: StageStats,
    pub render: StageStats,
    pub encode: StageStats,
    pub write: StageStats,
    pub total: StageStats,
}

/// How long the run took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timings {
    pub wall_secs: f64,
    /// Frames processed in this run (resumed frames excluded) per wall-clock second.
    pub frames_per_sec: f64,
    pub stages: StageTimings,
}

/// The body model used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInfo {
    /// `smplx` or `stand_in`.
    pub kind: String,
    pub path: Option<String>,
    /// Lowercase hex SHA-256 of the model file ([`sha256_file`]).
    pub sha256: Option<String>,
    pub variant: Option<String>,
    pub description: String,
    pub warnings: Vec<String>,
}

/// What was rendered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// The folder of the frame files, as given.
    pub sequence: String,
    /// The file naming layout, e.g. `frame_NNNN_params.npz`.
    pub layout: String,
    /// Frame slots from the first to the last number, gaps included.
    pub num_frames: usize,
    pub first_frame_number: u32,
    pub last_frame_number: u32,
    /// Numbers between the first and last with no file.
    pub missing_numbers: Vec<u32>,
    pub model: ModelInfo,
    pub hand_mean: bool,
    /// `auto`, `params` or `saved`.
    pub mesh_source: String,
}

/// Which part of the frames a run rendered: frames are dealt to `count` shards, this run is `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Shard {
        Shard { index: 0, count: 1 }
    }
}

/// How it was rendered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub width: u32,
    pub height: u32,
    /// `last-valid`, `placeholder` or `skip`.
    pub fallback: String,
    pub max_hold: u32,
    /// `png` or `webp`.
    pub format: String,
    pub shard: Shard,
}

/// Where it was rendered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// The backend that drew the images, `gl` or `cpu`: part of the images' identity (the two may differ in a few
    /// edge pixels). Empty in reports written before it was recorded.
    #[serde(default)]
    pub backend: String,
    /// The backend's description: the GL renderer string, or the CPU rasterizer.
    pub renderer: String,
    pub threads: usize,
}

/// The whole `render_report.json` document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub schema_version: u32,
    pub meshreel_version: String,
    /// The run was stopped (Ctrl-C) before all its frames.
    pub interrupted: bool,
    pub inputs: Inputs,
    pub settings: Settings,
    pub counts: Counts,
    pub rates: Rates,
    /// Frames that are not `ok`, counted by reason string.
    pub reasons: BTreeMap<String, usize>,
    pub frames: Vec<FrameRecord>,
    pub timings: Timings,
    pub environment: Environment,
}

/// Why a report cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("not a valid render report: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "render report schema_version {found} is not supported (this meshreel reads version {SCHEMA_VERSION})"
    )]
    UnsupportedVersion { found: u64 },
}

/// Why shard reports cannot be merged into one.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum MergeError {
    #[error("no shard reports to merge")]
    NoShards,
    #[error(
        "shard {index} was rendered with different inputs than shard {first_index} (differs in: {})",
        fields.join(", ")
    )]
    InputsDiffer {
        index: u32,
        first_index: u32,
        fields: Vec<String>,
    },
    #[error(
        "shard {index} was rendered with different settings than shard {first_index} (differs in: {})",
        fields.join(", ")
    )]
    SettingsDiffer {
        index: u32,
        first_index: u32,
        fields: Vec<String>,
    },
    #[error(
        "shard {index} says there are {count} shards, but shard {first_index} says {first_count}"
    )]
    ShardCountDiffers {
        index: u32,
        count: u32,
        first_index: u32,
        first_count: u32,
    },
    #[error("shard index {index} is out of range for {count} shards")]
    ShardOutOfRange { index: u32, count: u32 },
    #[error("shard {index} is given twice")]
    DuplicateShard { index: u32 },
    #[error("shard(s) {missing:?} of {count} are missing")]
    MissingShards { missing: Vec<u32>, count: u32 },
    #[error(
        "frame {number} appears in more than one shard report (shards {first_shard} and {second_shard})"
    )]
    DuplicateFrame {
        number: u32,
        first_shard: u32,
        second_shard: u32,
    },
    #[error("frame {number} is outside the sequence's frames {first}..={last}")]
    FrameOutOfRange { number: u32, first: u32, last: u32 },
    #[error(
        "the shards hold {found} of the sequence's {expected} frames (missing numbers: {missing:?}); was a shard \
         interrupted?"
    )]
    IncompleteCoverage {
        expected: usize,
        found: usize,
        missing: Vec<u32>,
    },
}

impl Report {
    /// An empty report for a run over `inputs` with `settings`; push [`FrameRecord`]s, then [`Report::summarize`].
    pub fn new(inputs: Inputs, settings: Settings, environment: Environment) -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            meshreel_version: env!("CARGO_PKG_VERSION").to_string(),
            interrupted: false,
            inputs,
            settings,
            counts: Counts::default(),
            rates: Rates::default(),
            reasons: BTreeMap::new(),
            frames: Vec::new(),
            timings: Timings::default(),
            environment,
        }
    }

    /// Sorts the frames by number and recomputes counts, rates, reasons and timings from them.
    ///
    /// Frame times are normalised first: non-finite or negative times become 0 (JSON has no NaN), and times are
    /// rounded to microseconds, so the file stays readable and parses back to the same numbers.
    pub fn summarize(&mut self, wall_secs: f64) {
        self.frames.sort_by_key(|frame| frame.number);
        for frame in &mut self.frames {
            frame.ms = clean_ms(frame.ms);
            let stage = &mut frame.stage_ms;
            for value in [
                &mut stage.read,
                &mut stage.forward,
                &mut stage.render,
                &mut stage.encode,
                &mut stage.write,
            ] {
                *value = clean_ms(*value);
            }
        }

        let mut counts = Counts {
            total: self.frames.len(),
            ..Counts::default()
        };
        let mut reasons = BTreeMap::new();
        for frame in &self.frames {
            match frame.status {
                FrameStatus::Ok => counts.ok += 1,
                FrameStatus::Fallback => counts.fallback += 1,
                FrameStatus::Placeholder => counts.placeholder += 1,
                FrameStatus::Skipped => counts.skipped += 1,
                FrameStatus::RenderError => counts.render_error += 1,
            }
            // A non-ok frame always carries a reason when the batch driver wrote it; one without is not
            // counted rather than filed under an invented name.
            if frame.status != FrameStatus::Ok
                && let Some(reason) = &frame.reason
            {
                *reasons.entry(reason.clone()).or_insert(0) += 1;
            }
        }
        let rate = |count: usize| {
            if counts.total == 0 {
                0.0
            } else {
                round_to(count as f64 / counts.total as f64, 4)
            }
        };
        self.rates = Rates {
            ok: rate(counts.ok),
            fallback: rate(counts.fallback),
            placeholder: rate(counts.placeholder),
            skipped: rate(counts.skipped),
            render_error: rate(counts.render_error),
        };
        self.counts = counts;
        self.reasons = reasons;

        // Resumed frames cost nothing in this run, and frames with no time recorded would drag the stats to
        // zero; both are left out of the stage stats. Only resumed frames are left out of the rate.
        let timed: Vec<&FrameRecord> = self
            .frames
            .iter()
            .filter(|frame| !frame.resumed && frame.ms > 0.0)
            .collect();
        let stats = |pick: fn(&FrameRecord) -> f64| {
            stage_stats(timed.iter().map(|frame| pick(frame)).collect())
        };
        let processed = self.frames.iter().filter(|frame| !frame.resumed).count();
        let wall_secs = clean_secs(wall_secs);
        self.timings = Timings {
            wall_secs: round_to(wall_secs, 3),
            frames_per_sec: if wall_secs > 0.0 {
                round_to(processed as f64 / wall_secs, 3)
            } else {
                0.0
            },
            stages: StageTimings {
                read: stats(|frame| frame.stage_ms.read),
                forward: stats(|frame| frame.stage_ms.forward),
                render: stats(|frame| frame.stage_ms.render),
                encode: stats(|frame| frame.stage_ms.encode),
                write: stats(|frame| frame.stage_ms.write),
                total: stats(|frame| frame.ms),
            },
        };
    }

    /// The document as pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut json = serde_json::to_string_pretty(self)
            .expect("a report is plain data with string keys, which always serializes");
        json.push('\n');
        json
    }

    /// Reads a report written by [`Report::to_json`], refusing other schema versions.
    pub fn from_json(json: &str) -> Result<Report, ReportError> {
        // The version is checked before the layout, so a newer report is named as such rather than as broken.
        let value: serde_json::Value = serde_json::from_str(json)?;
        if let Some(found) = value
            .get("schema_version")
            .and_then(serde_json::Value::as_u64)
            && found != u64::from(SCHEMA_VERSION)
        {
            return Err(ReportError::UnsupportedVersion { found });
        }
        Ok(serde_json::from_value(value)?)
    }
}

/// Lowercase hex SHA-256 of a file, read in 1 MiB chunks (SMPL-X model files are hundreds of MiB).
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buffer[..read]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}

/// Joins the shard reports of one run into the report an unsharded run would have written.
///
/// Every shard must have the same inputs and settings (apart from `shard`), each shard index must be present
/// once, and together the shards must hold every frame of the sequence exactly once. Timings are recomputed
/// from the frames with the longest shard's wall time (shards run side by side).
pub fn merge(shards: Vec<Report>) -> Result<Report, MergeError> {
    let mut shards = shards;
    shards.sort_by_key(|report| report.settings.shard.index);
    let first = shards.first().ok_or(MergeError::NoShards)?;
    let first_index = first.settings.shard.index;
    let count = first.settings.shard.count;

    let mut seen_shards = BTreeSet::new();
    for report in &shards {
        let shard = report.settings.shard;
        if shard.count != count {
            return Err(MergeError::ShardCountDiffers {
                index: shard.index,
                count: shard.count,
                first_index,
                first_count: count,
            });
        }
        if shard.index >= count {
            return Err(MergeError::ShardOutOfRange {
                index: shard.index,
                count,
            });
        }
        if !seen_shards.insert(shard.index) {
            return Err(MergeError::DuplicateShard { index: shard.index });
        }
        if report.inputs != first.inputs {
            return Err(MergeError::InputsDiffer {
                index: shard.index,
                first_index,
                fields: differing_fields(&first.inputs, &report.inputs),
            });
        }
        let unsharded = |settings: &Settings| Settings {
            shard: Shard::default(),
            ..settings.clone()
        };
        if unsharded(&report.settings) != unsharded(&first.settings) {
            return Err(MergeError::SettingsDiffer {
                index: shard.index,
                first_index,
                fields: differing_fields(&first.settings, &report.settings),
            });
        }
    }
    let missing: Vec<u32> = (0..count)
        .filter(|index| !seen_shards.contains(index))
        .collect();
    if !missing.is_empty() {
        return Err(MergeError::MissingShards { missing, count });
    }

    let inputs = &first.inputs;
    let mut frame_shard = BTreeMap::new();
    for report in &shards {
        for frame in &report.frames {
            if frame.number < inputs.first_frame_number || frame.number > inputs.last_frame_number {
                return Err(MergeError::FrameOutOfRange {
                    number: frame.number,
                    first: inputs.first_frame_number,
                    last: inputs.last_frame_number,
                });
            }
            if let Some(first_shard) = frame_shard.insert(frame.number, report.settings.shard.index)
            {
                return Err(MergeError::DuplicateFrame {
                    number: frame.number,
                    first_shard,
                    second_shard: report.settings.shard.index,
                });
            }
        }
    }
    if frame_shard.len() != inputs.num_frames {
        return Err(MergeError::IncompleteCoverage {
            expected: inputs.num_frames,
            found: frame_shard.len(),
            missing: (inputs.first_frame_number..=inputs.last_frame_number)
                .filter(|number| !frame_shard.contains_key(number))
                .collect(),
        });
    }

    let wall_secs = shards
        .iter()
        .map(|report| report.timings.wall_secs)
        .fold(0.0, f64::max);
    let interrupted = shards.iter().any(|report| report.interrupted);
    let mut shards = shards.into_iter();
    let mut merged = shards.next().expect("checked above: at least one shard");
    for report in shards {
        merged.frames.extend(report.frames);
    }
    merged.interrupted = interrupted;
    merged.settings.shard = Shard::default();
    merged.summarize(wall_secs);
    Ok(merged)
}

/// The top-level field names whose values differ between two serializable structs.
fn differing_fields<T: Serialize>(a: &T, b: &T) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(a), serde_json::to_value(b))
    else {
        return Vec::new();
    };
    a.iter()
        .filter(|(key, value)| key.as_str() != "shard" && b.get(key.as_str()) != Some(value))
        .map(|(key, _)| key.clone())
        .collect()
}

/// Mean and nearest-rank percentiles; all zeros for no values.
fn stage_stats(mut values: Vec<f64>) -> StageStats {
    if values.is_empty() {
        return StageStats::default();
    }
    values.sort_by(f64::total_cmp);
    let nearest_rank = |percent: usize| {
        let rank = (percent * values.len()).div_ceil(100).max(1);
        values[rank - 1]
    };
    StageStats {
        mean_ms: round_to(values.iter().sum::<f64>() / values.len() as f64, 3),
        p50_ms: nearest_rank(50),
        p95_ms: nearest_rank(95),
    }
}

fn clean_ms(ms: f64) -> f64 {
    round_to(clean_secs(ms), 3)
}

fn clean_secs(value: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        0.0
    }
}

/// Rounds to `decimals` places. A value rounded so prints as a short decimal that parses back exactly.
fn round_to(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(num_frames: u32) -> Inputs {
        Inputs {
            sequence: "data-samples/mini/frames".into(),
            layout: "frame_NNNN_params.npz".into(),
            num_frames: num_frames as usize,
            first_frame_number: 1,
            last_frame_number: num_frames,
            missing_numbers: vec![],
            model: ModelInfo {
                kind: "stand_in".into(),
                path: None,
                sha256: None,
                variant: None,
                description: "built-in stand-in body (not SMPL-X)".into(),
                warnings: vec![],
            },
            hand_mean: true,
            mesh_source: "auto".into(),
        }
    }

    fn settings(shard: Shard) -> Settings {
        Settings {
            width: 64,
            height: 64,
            fallback: "last-valid".into(),
            max_hold: 30,
            format: "png".into(),
            shard,
        }
    }

    fn environment() -> Environment {
        Environment {
            backend: "gl".into(),
            renderer: "llvmpipe".into(),
            threads: 2,
        }
    }

    fn frame(number: u32, status: FrameStatus, reason: Option<&str>, ms: f64) -> FrameRecord {
        FrameRecord {
            number,
            video_index: (number - 1) as usize,
            input_files: vec![format!("frame_{number:04}_params.npz")],
            status,
            reason: reason.map(str::to_string),
            source_frame: (status == FrameStatus::Fallback).then(|| number - 1),
            persons: u32::from(matches!(status, FrameStatus::Ok | FrameStatus::Fallback)),
            output: (!matches!(status, FrameStatus::Skipped | FrameStatus::RenderError))
                .then(|| format!("frame_{number:04}.png")),
            resumed: false,
            ms,
            stage_ms: StageMs {
                read: ms / 10.0,
                forward: ms / 2.0,
                render: ms / 5.0,
                encode: ms / 10.0,
                write: ms / 10.0,
            },
        }
    }

    /// Ten frames: 6 ok, 2 fallback, 1 placeholder, 1 render error; given out of order.
    fn ten_frames() -> Vec<FrameRecord> {
        let mut frames = vec![
            frame(10, FrameStatus::Ok, None, 10.0),
            frame(1, FrameStatus::Ok, None, 1.0),
            frame(2, FrameStatus::Ok, None, 2.0),
            frame(3, FrameStatus::Fallback, Some("no_person"), 3.0),
            frame(4, FrameStatus::Fallback, Some("missing_file"), 4.0),
            frame(5, FrameStatus::Placeholder, Some("no_person"), 5.0),
            frame(6, FrameStatus::RenderError, Some("GL context lost"), 6.0),
            frame(7, FrameStatus::Ok, None, 7.0),
            frame(8, FrameStatus::Ok, None, 8.0),
            frame(9, FrameStatus::Ok, None, 9.0),
        ];
        frames[6].output = None;
        frames
    }

    fn single_report() -> Report {
        let mut report = Report::new(inputs(10), settings(Shard::default()), environment());
        report.frames = ten_frames();
        report.summarize(2.0);
        report
    }

    fn shard_report(index: u32, count: u32) -> Report {
        let mut report = Report::new(inputs(10), settings(Shard { index, count }), environment());
        report.frames = ten_frames()
            .into_iter()
            .filter(|frame| frame.video_index % count as usize == index as usize)
            .collect();
        report.summarize(1.5);
        report
    }

    #[test]
    fn summarize_sorts_frames_and_counts_statuses_rates_and_reasons() {
        let report = single_report();
        let numbers: Vec<u32> = report.frames.iter().map(|frame| frame.number).collect();
        assert_eq!(numbers, (1..=10).collect::<Vec<_>>());
        assert_eq!(
            report.counts,
            Counts {
                total: 10,
                ok: 6,
                fallback: 2,
                placeholder: 1,
                skipped: 0,
                render_error: 1,
            }
        );
        assert_eq!(
            report.rates,
            Rates {
                ok: 0.6,
                fallback: 0.2,
                placeholder: 0.1,
                skipped: 0.0,
                render_error: 0.1,
            }
        );
        let reasons: Vec<(&str, usize)> = report
            .reasons
            .iter()
            .map(|(reason, count)| (reason.as_str(), *count))
            .collect();
        assert_eq!(
            reasons,
            [
                ("GL context lost", 1),
                ("missing_file", 1),
                ("no_person", 2)
            ]
        );
    }

    #[test]
    fn summarize_takes_nearest_rank_percentiles_of_timed_fresh_frames() {
        let mut report = single_report();
        // Frame totals 1..=10 ms: mean 5.5, p50 = 5th value, p95 = 10th value.
        assert_eq!(
            report.timings.stages.total,
            StageStats {
                mean_ms: 5.5,
                p50_ms: 5.0,
                p95_ms: 10.0,
            }
        );
        assert_eq!(report.timings.stages.forward.p50_ms, 2.5);
        assert_eq!(report.timings.wall_secs, 2.0);
        assert_eq!(report.timings.frames_per_sec, 5.0);

        // A resumed frame and an untimed frame leave the stats; only the resumed one leaves the rate.
        report.frames[9].resumed = true; // 10 ms
        report.frames[0].ms = 0.0; // 1 ms
        report.summarize(2.0);
        assert_eq!(
            report.timings.stages.total,
            StageStats {
                mean_ms: 5.5,
                p50_ms: 5.0,
                p95_ms: 9.0,
            }
        );
        assert_eq!(report.timings.frames_per_sec, 4.5);
    }

    #[test]
    fn summarize_of_no_frames_gives_zeros() {
        let mut report = Report::new(inputs(0), settings(Shard::default()), environment());
        report.summarize(0.0);
        assert_eq!(report.counts, Counts::default());
        assert_eq!(report.rates, Rates::default());
        assert_eq!(report.timings, Timings::default());
    }

    #[test]
    fn summarize_turns_non_finite_times_into_zero() {
        let mut report = single_report();
        report.frames[0].ms = f64::NAN;
        report.frames[1].stage_ms.read = f64::INFINITY;
        report.frames[2].stage_ms.write = -1.0;
        report.summarize(f64::NAN);
        assert_eq!(report.frames[0].ms, 0.0);
        assert_eq!(report.frames[1].stage_ms.read, 0.0);
        assert_eq!(report.frames[2].stage_ms.write, 0.0);
        assert_eq!(report.timings.wall_secs, 0.0);
        assert_eq!(report.timings.frames_per_sec, 0.0);
        assert!(report.to_json().contains("\"ms\": 0.0"));
    }

    #[test]
    fn merge_of_two_shards_equals_the_single_report() {
        let single = single_report();
        let merged = merge(vec![shard_report(1, 2), shard_report(0, 2)]).unwrap();
        assert_eq!(merged.frames, single.frames);
        assert_eq!(merged.counts, single.counts);
        assert_eq!(merged.rates, single.rates);
        assert_eq!(merged.reasons, single.reasons);
        assert_eq!(merged.settings, single.settings);
        assert_eq!(merged.inputs, single.inputs);
        assert_eq!(merged.timings.stages, single.timings.stages);
        assert_eq!(merged.timings.wall_secs, 1.5);
        assert!(!merged.interrupted);
    }

    #[test]
    fn merge_is_interrupted_when_any_shard_was() {
        let mut second = shard_report(1, 2);
        second.interrupted = true;
        let merged = merge(vec![shard_report(0, 2), second]).unwrap();
        assert!(merged.interrupted);
    }

    #[test]
    fn merge_refuses_shards_with_different_inputs() {
        let mut second = shard_report(1, 2);
        second.inputs.hand_mean = false;
        let error = merge(vec![shard_report(0, 2), second]).unwrap_err();
        assert_eq!(
            error,
            MergeError::InputsDiffer {
                index: 1,
                first_index: 0,
                fields: vec!["hand_mean".into()],
            }
        );
        assert!(error.to_string().contains("hand_mean"));
    }

    #[test]
    fn merge_refuses_shards_with_different_settings() {
        let mut second = shard_report(1, 2);
        second.settings.format = "webp".into();
        let error = merge(vec![shard_report(0, 2), second]).unwrap_err();
        assert_eq!(
            error,
            MergeError::SettingsDiffer {
                index: 1,
                first_index: 0,
                fields: vec!["format".into()],
            }
        );
    }

    #[test]
    fn merge_refuses_a_frame_in_two_shards() {
        let mut second = shard_report(1, 2);
        second.frames.push(frame(3, FrameStatus::Ok, None, 1.0));
        let error = merge(vec![shard_report(0, 2), second]).unwrap_err();
        assert_eq!(
            error,
            MergeError::DuplicateFrame {
                number: 3,
                first_shard: 0,
                second_shard: 1,
            }
        );
    }

    #[test]
    fn merge_refuses_a_missing_shard() {
        let error = merge(vec![shard_report(0, 3), shard_report(2, 3)]).unwrap_err();
        assert_eq!(
            error,
            MergeError::MissingShards {
                missing: vec![1],
                count: 3,
            }
        );
    }

    #[test]
    fn merge_refuses_a_shard_given_twice() {
        let error = merge(vec![shard_report(0, 2), shard_report(0, 2)]).unwrap_err();
        assert_eq!(error, MergeError::DuplicateShard { index: 0 });
    }

    #[test]
    fn merge_refuses_shards_disagreeing_on_the_shard_count() {
        let error = merge(vec![shard_report(0, 2), shard_report(1, 3)]).unwrap_err();
        assert!(
            matches!(error, MergeError::ShardCountDiffers { .. }),
            "{error}"
        );
    }

    #[test]
    fn merge_refuses_shards_that_do_not_cover_every_frame() {
        let mut second = shard_report(1, 2);
        second.frames.retain(|frame| frame.number != 4);
        second.interrupted = true;
        let error = merge(vec![shard_report(0, 2), second]).unwrap_err();
        assert_eq!(
            error,
            MergeError::IncompleteCoverage {
                expected: 10,
                found: 9,
                missing: vec![4],
            }
        );
    }

    #[test]
    fn merge_refuses_a_frame_outside_the_sequence() {
        let mut second = shard_report(1, 2);
        second.frames.push(frame(11, FrameStatus::Ok, None, 1.0));
        let error = merge(vec![shard_report(0, 2), second]).unwrap_err();
        assert!(
            matches!(error, MergeError::FrameOutOfRange { number: 11, .. }),
            "{error}"
        );
    }

    #[test]
    fn merge_of_nothing_is_refused() {
        assert_eq!(merge(vec![]).unwrap_err(), MergeError::NoShards);
    }

    #[test]
    fn from_json_reads_back_what_to_json_wrote() {
        let report = single_report();
        let json = report.to_json();
        assert!(json.ends_with("}\n"));
        assert!(
            json.contains("\"source_frame\": null"),
            "options are written as null"
        );
        assert_eq!(Report::from_json(&json).unwrap(), report);
    }

    #[test]
    fn from_json_refuses_another_schema_version() {
        let json = single_report()
            .to_json()
            .replace("\"schema_version\": 1", "\"schema_version\": 2");
        assert!(matches!(
            Report::from_json(&json),
            Err(ReportError::UnsupportedVersion { found: 2 })
        ));
    }

    #[test]
    fn sha256_file_matches_the_known_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc.txt");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
