//! The `render` subcommand: pre-render every frame (or one shard of them) to images plus `render_report.json`.
//!
//! Pipelined: worker threads read, pose and encode; only GL runs on the render thread. Queues are bounded and
//! each worker holds one frame at a time, so memory stays flat for any frame count. Images and the report are
//! written atomically (temporary file, then rename), so an interrupted run leaves only complete files.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::body::{BodyModel, ModelKind};
use crate::encode::{ImageFormat, encode};
use crate::frames::Sequence;
use crate::pipeline::{
    FallbackSettings, FrameOutput, Plan, RenderSettings, Scan, plan_frames, render_planned_frames,
    scan,
};
use crate::render::RenderHandle;
use crate::report::{
    Environment, FrameRecord, FrameStatus, Inputs, ModelInfo, Report, Settings, Shard, StageMs,
    sha256_file,
};

/// Everything a batch run needs besides the sequence and the model.
pub struct BatchJob<'a> {
    pub sequence: &'a Sequence,
    pub model: &'a BodyModel,
    pub out: PathBuf,
    pub format: ImageFormat,
    pub fallback: FallbackSettings,
    /// `--size`, if given; otherwise the sequence's `image_size` or 720×720.
    pub size: Option<(u32, u32)>,
    /// Settings whose size is filled in from `size` and the scan.
    pub render: RenderSettings,
    pub resume: bool,
    pub shard: Shard,
    pub threads: usize,
    pub renderer: RenderHandle,
    /// Set when the user asks to stop (Ctrl-C): workers finish their frame and take no more.
    pub stop: Arc<AtomicBool>,
    /// Counts frames as they finish (kept ones included), for callers that show progress (`serve --prerender`).
    pub progress: Option<Arc<AtomicUsize>>,
}

/// How a run ended.
pub struct BatchOutcome {
    pub report: Report,
    pub report_path: PathBuf,
}

/// The image file name of a frame number: `frame_0001.png`, matching the input numbering.
pub fn image_name(number: u32, format: ImageFormat) -> String {
    format!("frame_{number:04}.{}", format.extension())
}

/// The report's file name: `render_report.json`, or `render_report.shard-K-of-N.json` for one shard of several.
pub fn report_name(shard: Shard) -> String {
    if shard.count <= 1 {
        "render_report.json".to_string()
    } else {
        format!(
            "render_report.shard-{}-of-{}.json",
            shard.index, shard.count
        )
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so readers never see a
/// partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the path names no file"))?
        .to_string_lossy();
    let temp = path.with_file_name(format!(".{name}.partial"));
    std::fs::write(&temp, bytes)?;
    std::fs::rename(&temp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })
}

/// Whether an image file written earlier is complete: PNG ends with its IEND chunk, WebP's RIFF size matches.
pub fn is_complete(path: &Path, format: ImageFormat) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    match format {
        ImageFormat::Png => {
            bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.ends_with(b"IEND\xaeB`\x82")
        }
        ImageFormat::Webp => {
            bytes.len() >= 12
                && &bytes[..4] == b"RIFF"
                && &bytes[8..12] == b"WEBP"
                && u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize + 8
                    == bytes.len()
        }
    }
}

/// Picks the shard: `--shard K/N`, else SLURM array variables, else a Kubernetes Indexed Job's
/// `JOB_COMPLETION_INDEX` with `--shard-count N`, else the whole sequence.
pub fn resolve_shard(
    flag: Option<Shard>,
    shard_count: Option<u32>,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Shard> {
    let number = |name: &str| -> anyhow::Result<Option<u32>> {
        env(name)
            .map(|v| {
                v.trim()
                    .parse::<u32>()
                    .with_context(|| format!("{name}={v} is not a whole number"))
            })
            .transpose()
    };
    let shard = if let Some(shard) = flag {
        shard
    } else if let (Some(id), Some(count)) = (
        number("SLURM_ARRAY_TASK_ID")?,
        number("SLURM_ARRAY_TASK_COUNT")?,
    ) {
        // Array ids may start anywhere (--array=1-10): count from the first.
        let first = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        Shard {
            index: id
                .checked_sub(first)
                .context("SLURM_ARRAY_TASK_ID is below SLURM_ARRAY_TASK_MIN")?,
            count,
        }
    } else if let Some(index) = number("JOB_COMPLETION_INDEX")? {
        let Some(count) = shard_count else {
            bail!("JOB_COMPLETION_INDEX is set: give the number of shards with --shard-count N");
        };
        Shard { index, count }
    } else {
        Shard::default()
    };
    if shard.count == 0 || shard.index >= shard.count {
        bail!(
            "shard {}/{} does not exist: K must be below N",
            shard.index,
            shard.count
        );
    }
    Ok(shard)
}

/// Parses `K/N`.
pub fn parse_shard(text: &str) -> Result<Shard, String> {
    let (k, n) = text
        .split_once('/')
        .ok_or_else(|| format!("'{text}' is not K/N, e.g. 0/4"))?;
    match (k.trim().parse(), n.trim().parse()) {
        (Ok(index), Ok(count)) => Ok(Shard { index, count }),
        _ => Err(format!("'{text}' is not K/N with whole numbers")),
    }
}

fn model_info(model: &BodyModel) -> anyhow::Result<ModelInfo> {
    Ok(match &model.kind {
        ModelKind::Smplx(info) => ModelInfo {
            kind: "smplx".to_string(),
            path: Some(info.path.display().to_string()),
            sha256: Some(
                sha256_file(&info.path)
                    .with_context(|| format!("cannot checksum {}", info.path.display()))?,
            ),
            variant: Some(info.variant.clone()),
            description: model.describe(),
            warnings: model.warnings.clone(),
        },
        ModelKind::StandIn => ModelInfo {
            kind: "stand_in".to_string(),
            path: None,
            sha256: None,
            variant: None,
            description: model.describe(),
            warnings: model.warnings.clone(),
        },
    })
}

/// Runs the batch: scan, plan, render the shard's frames, write images and the report.
pub fn run(mut job: BatchJob<'_>) -> anyhow::Result<BatchOutcome> {
    let started = Instant::now();
    std::fs::create_dir_all(&job.out)
        .with_context(|| format!("cannot create the output folder {}", job.out.display()))?;
    let sequence = job.sequence;
    let Scan {
        validity,
        image_size,
    } = scan(sequence, job.threads);
    let (size, size_source) = crate::render::camera::output_size(job.size, image_size);
    job.render.size = size;
    tracing::info!(width = size.0, height = size.1, source = ?size_source, "output size");
    let plan = plan_frames(&validity, &job.fallback);

    let selected: Vec<usize> = (0..sequence.len())
        .filter(|i| *i % job.shard.count as usize == job.shard.index as usize)
        .collect();
    let mut report = Report::new(
        Inputs {
            sequence: sequence.dir.display().to_string(),
            layout: sequence.layout.to_string(),
            num_frames: sequence.len(),
            first_frame_number: sequence.first_number,
            last_frame_number: sequence
                .frames
                .last()
                .map_or(sequence.first_number, |f| f.number),
            missing_numbers: sequence.missing_numbers(),
            model: model_info(job.model)?,
            hand_mean: job.render.mesh.forward.add_hand_mean,
            mesh_source: serde_json::to_value(job.render.mesh.source)?
                .as_str()
                .unwrap_or("auto")
                .to_string(),
        },
        Settings {
            width: size.0,
            height: size.1,
            fallback: job.fallback.policy.name().to_string(),
            max_hold: job.fallback.max_hold,
            format: job.format.extension().to_string(),
            shard: job.shard,
        },
        Environment {
            backend: job.renderer.backend().to_string(),
            renderer: job.renderer.description().to_string(),
            threads: job.threads,
        },
    );

    // Frames already complete from an earlier run are kept when resuming, if that run drew them the same way;
    // the plan says what they show.
    let resume = job.resume && earlier_run_matches(&job.out.join(report_name(job.shard)), &report);
    let mut todo = Vec::with_capacity(selected.len());
    for index in selected {
        let number = sequence.frames[index].number;
        let path = job.out.join(image_name(number, job.format));
        let writes_image = !matches!(plan[index], Plan::Skip { .. });
        if resume && writes_image && is_complete(&path, job.format) {
            report.frames.push(resumed_record(
                sequence, &plan, &validity, index, job.format,
            ));
        } else {
            todo.push(index);
        }
    }
    let kept = report.frames.len();
    if kept > 0 {
        tracing::info!(kept, "resuming: complete images kept");
    }
    let count_done = |frames: usize| {
        if let Some(progress) = &job.progress {
            progress.fetch_add(frames, Ordering::Relaxed);
        }
    };
    count_done(kept);

    let next = AtomicUsize::new(0);
    let (records, received) = sync_channel::<FrameRecord>(64);
    let progress = Progress::new(todo.len());
    std::thread::scope(|scope| {
        for _ in 0..job.threads.max(1) {
            let records = records.clone();
            let (job, todo, plan, next) = (&job, &todo, &plan, &next);
            scope.spawn(move || {
                while !job.stop.load(Ordering::Relaxed) {
                    let first = next.fetch_add(FRAMES_PER_TASK, Ordering::Relaxed);
                    let Some(indices) = todo.get(first..(first + FRAMES_PER_TASK).min(todo.len()))
                    else {
                        break;
                    };
                    if indices.is_empty() {
                        break;
                    }
                    render_frames(job, plan, indices, |record| {
                        let _ = records.send(record);
                    });
                }
            });
        }
        drop(records);
        for record in received {
            progress.tick();
            count_done(1);
            report.frames.push(record);
        }
    });
    progress.finish();
    // Every frame of the shard has a record unless the run was stopped early.
    report.interrupted = report.frames.len() < todo.len() + kept;
    report.summarize(started.elapsed().as_secs_f64());
    let report_path = job.out.join(report_name(job.shard));
    write_atomic(&report_path, report.to_json().as_bytes())
        .with_context(|| format!("cannot write {}", report_path.display()))?;
    Ok(BatchOutcome {
        report,
        report_path,
    })
}

fn input_files(sequence: &Sequence, index: usize) -> Vec<String> {
    sequence.frames[index]
        .files
        .iter()
        .map(|f| {
            f.path.file_name().map_or_else(
                || f.path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

/// Whether the images of the earlier run whose report is at `path` may be kept by the run about to start: the
/// same size, format, fallback, model and backend. Without a report (a run killed outright) they are kept.
fn earlier_run_matches(path: &Path, current: &Report) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        tracing::info!("resuming without an earlier report: complete images are kept as they are");
        return true;
    };
    let earlier = match Report::from_json(&text) {
        Ok(report) => report,
        Err(error) => {
            tracing::warn!(%error, "not resuming: the earlier report cannot be read; rendering every frame");
            return false;
        }
    };
    let identity = |r: &Report| {
        (
            (r.settings.width, r.settings.height),
            r.settings.format.clone(),
            (r.settings.fallback.clone(), r.settings.max_hold),
            (r.inputs.model.kind.clone(), r.inputs.model.sha256.clone()),
            (r.inputs.hand_mean, r.inputs.mesh_source.clone()),
            r.environment.backend.clone(),
        )
    };
    let same = identity(&earlier) == identity(current);
    if !same {
        tracing::warn!(
            earlier = ?identity(&earlier),
            now = ?identity(current),
            "not resuming: the earlier run used other settings (size, format, fallback, model or backend); \
             rendering every frame"
        );
    }
    same
}

/// The record of a frame whose image an earlier run completed.
fn resumed_record(
    sequence: &Sequence,
    plan: &[Plan],
    validity: &[Result<usize, String>],
    index: usize,
    format: ImageFormat,
) -> FrameRecord {
    let slot = &sequence.frames[index];
    let (status, reason, source_frame, persons) = match &plan[index] {
        Plan::Draw { source, reason } => {
            let persons = validity[*source].as_ref().map_or(0, |p| *p as u32);
            let source_number = sequence.frames[*source].number;
            match reason {
                None => (FrameStatus::Ok, None, None, persons),
                Some(reason) => (
                    FrameStatus::Fallback,
                    Some(reason.clone()),
                    Some(source_number),
                    persons,
                ),
            }
        }
        Plan::Placeholder { reason } => (FrameStatus::Placeholder, Some(reason.clone()), None, 0),
        Plan::Skip { reason } => (FrameStatus::Skipped, Some(reason.clone()), None, 0),
    };
    FrameRecord {
        number: slot.number,
        video_index: slot.video_index,
        input_files: input_files(sequence, index),
        status,
        reason,
        source_frame,
        persons,
        output: Some(image_name(slot.number, format)),
        resumed: true,
        ms: 0.0,
        stage_ms: StageMs::default(),
    }
}

/// Frames a worker takes at a time: their forward passes run as one batch, which streams SMPL-X's pose-corrective
/// matrix (31 MB at half precision) once instead of once per frame, with one body per vector lane (measured: 3.1 ms alone
/// on two cores, 1.3 ms per body in eights and 1.1 in sixteens on one). Thirty-two leave the matrix's memory
/// traffic a small share of each body's cost, for up to 32 frames' meshes (about 4 MB) held per worker.
const FRAMES_PER_TASK: usize = 32;

/// Renders, encodes and writes a run of frames; every failure becomes that frame's `render_error`.
fn render_frames(
    job: &BatchJob<'_>,
    plan: &[Plan],
    indices: &[usize],
    mut send: impl FnMut(FrameRecord),
) {
    let mut last = Instant::now();
    render_planned_frames(
        job.model,
        job.sequence,
        plan,
        indices,
        &job.render,
        &job.renderer,
        |index, output| {
            // A frame's time runs from the previous frame's end, so the first of a run also carries the run's reads
            // and its one forward pass (stage_ms splits the forward pass evenly).
            let ms = last.elapsed().as_secs_f64() * 1000.0;
            let record = finish_frame(job, index, output, ms);
            last = Instant::now();
            send(record);
        },
    );
}

/// Encodes and writes one rendered frame and makes its record.
fn finish_frame(
    job: &BatchJob<'_>,
    index: usize,
    output: FrameOutput,
    earlier_ms: f64,
) -> FrameRecord {
    let started = Instant::now();
    let slot = &job.sequence.frames[index];
    let mut record = FrameRecord {
        number: slot.number,
        video_index: slot.video_index,
        input_files: input_files(job.sequence, index),
        status: output.status,
        reason: output.reason,
        source_frame: output.source_frame,
        persons: output.persons,
        output: None,
        resumed: false,
        ms: 0.0,
        stage_ms: StageMs {
            read: output.read_ms,
            forward: output.forward_ms,
            render: output.render_ms,
            encode: 0.0,
            write: 0.0,
        },
    };
    if let Some(image) = output.image {
        let start = Instant::now();
        let bytes = encode(&image, job.format);
        record.stage_ms.encode = start.elapsed().as_secs_f64() * 1000.0;
        let start = Instant::now();
        let name = image_name(slot.number, job.format);
        let written = bytes.map_err(|e| e.to_string()).and_then(|bytes| {
            write_atomic(&job.out.join(&name), &bytes)
                .map_err(|e| format!("cannot write {name}: {e}"))
        });
        record.stage_ms.write = start.elapsed().as_secs_f64() * 1000.0;
        match written {
            Ok(()) => record.output = Some(name),
            Err(message) => {
                record.status = FrameStatus::RenderError;
                record.reason = Some(message);
            }
        }
    }
    if record.status == FrameStatus::RenderError {
        tracing::warn!(frame = slot.number, reason = ?record.reason, "frame could not be rendered");
    }
    record.ms = earlier_ms + started.elapsed().as_secs_f64() * 1000.0;
    record
}

/// A progress bar on a terminal; periodic log lines otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    done: AtomicUsize,
    started: Instant,
    last_log: std::sync::Mutex<Instant>,
}

const LOG_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    fn new(total: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} frames  {per_sec}  ETA {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Progress {
            bar,
            total,
            done: AtomicUsize::new(0),
            started: Instant::now(),
            last_log: std::sync::Mutex::new(Instant::now()),
        }
    }

    fn tick(&self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(bar) = &self.bar {
            bar.inc(1);
            return;
        }
        let Ok(mut last) = self.last_log.lock() else {
            return;
        };
        if last.elapsed() >= LOG_EVERY {
            *last = Instant::now();
            let secs = self.started.elapsed().as_secs_f64();
            let fps = done as f64 / secs.max(1e-9);
            let eta = (self.total - done) as f64 / fps.max(1e-9);
            tracing::info!(
                "rendered {done}/{} frames ({fps:.0} frames/s, ETA {eta:.0} s)",
                self.total
            );
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn shards_come_from_the_flag_then_slurm_then_kubernetes() {
        let flag = Shard { index: 1, count: 3 };
        assert_eq!(
            resolve_shard(Some(flag), None, env(&[("SLURM_ARRAY_TASK_ID", "0")])).unwrap(),
            flag
        );
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "3"),
        ];
        assert_eq!(
            resolve_shard(None, None, env(&slurm)).unwrap(),
            Shard { index: 2, count: 4 }
        );
        let k8s = [("JOB_COMPLETION_INDEX", "2")];
        assert_eq!(
            resolve_shard(None, Some(5), env(&k8s)).unwrap(),
            Shard { index: 2, count: 5 }
        );
        assert!(
            resolve_shard(None, None, env(&k8s)).is_err(),
            "Kubernetes needs --shard-count"
        );
        assert_eq!(
            resolve_shard(None, None, env(&[])).unwrap(),
            Shard { index: 0, count: 1 }
        );
        assert!(resolve_shard(Some(Shard { index: 3, count: 3 }), None, env(&[])).is_err());
    }

    #[test]
    fn names_follow_the_input_numbering() {
        assert_eq!(image_name(1, ImageFormat::Png), "frame_0001.png");
        assert_eq!(image_name(12345, ImageFormat::Webp), "frame_12345.webp");
        assert_eq!(
            report_name(Shard { index: 0, count: 1 }),
            "render_report.json"
        );
        assert_eq!(
            report_name(Shard { index: 2, count: 4 }),
            "render_report.shard-2-of-4.json"
        );
        assert_eq!(parse_shard("1/4"), Ok(Shard { index: 1, count: 4 }));
        assert!(parse_shard("1-4").is_err());
    }

    #[test]
    fn truncated_images_are_not_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("frame_0001.png");
        let image = crate::render::RgbaImage::transparent(4, 4);
        let bytes = encode(&image, ImageFormat::Png).unwrap();
        write_atomic(&path, &bytes).unwrap();
        assert!(is_complete(&path, ImageFormat::Png));
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(!is_complete(&path, ImageFormat::Png));
        let webp = encode(&image, ImageFormat::Webp).unwrap();
        std::fs::write(&path, &webp).unwrap();
        assert!(is_complete(&path, ImageFormat::Webp));
        std::fs::write(&path, &webp[..webp.len() - 1]).unwrap();
        assert!(!is_complete(&path, ImageFormat::Webp));
    }
}
