//! The subcommands, on top of the stages: each turns its flags into stage calls and prints what a user needs.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::process::ExitCode;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};

use crate::batch::{BatchJob, report_name, resolve_shard, write_atomic};
use crate::pipeline::{FallbackSettings, RenderSettings};
use crate::render::camera::{CameraOptions, DEFAULT_SIZE, Intrinsics};
use crate::render::{
    Look, OSX_LOOK, PersonView, RenderHandle, RendererChoice, egl_devices, prepare,
};
use crate::report::{Report, Shard};

use crate::body::{BodyModel, ForwardOptions};
use crate::cli::{
    CheckArgs, Command, DoctorArgs, LookArgs, MergeArgs, MeshArgs, ModelArgs, RenderArgs,
    SequenceArgs, ServeArgs,
};
use crate::frames::{ReadOptions, Sequence, SequenceOptions, discover, read_frame};
use crate::mesh_file::{MeshFormat, write_meshes};
use crate::pipeline::{MeshOrigin, MeshSettings, check_settings, frame_meshes};

/// Runs one subcommand.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check(args) => check(&args),
        Command::Mesh(args) => mesh(&args),
        Command::Render(args) => render(&args),
        Command::MergeReports(args) => merge_reports(&args),
        Command::Doctor(args) => doctor(&args),
        Command::Serve(args) => serve(&args),
    }
}

fn open_sequence(args: &SequenceArgs) -> anyhow::Result<Sequence> {
    let options = SequenceOptions {
        first_number: args.first_frame_number,
    };
    let sequence = discover(&args.sequence, &options)?;
    for ignored in &sequence.ignored {
        tracing::warn!(file = %ignored.path.display(), why = %ignored.why, "ignoring file");
    }
    Ok(sequence)
}

/// Loads the user's model, or the stand-in when none is given; warnings go to the log.
pub fn load_model(args: &ModelArgs) -> anyhow::Result<BodyModel> {
    Ok(crate::pipeline::load_model(args.model.as_deref())?)
}

fn mesh_settings(args: &ModelArgs) -> MeshSettings {
    MeshSettings {
        source: args.mesh_source,
        forward: ForwardOptions {
            add_hand_mean: !args.flat_hands,
        },
    }
}

/// What `check` found, also its JSON output.
#[derive(Debug, serde::Serialize)]
struct CheckReport {
    sequence: String,
    layout: String,
    first_frame_number: u32,
    last_frame_number: u32,
    num_frames: usize,
    num_valid: usize,
    /// Frame numbers by reason string, for frames that are not valid.
    invalid: BTreeMap<String, Vec<u32>>,
    /// Frame numbers with more than one person.
    multi_person: Vec<u32>,
    ignored_files: Vec<String>,
    /// One message per invalid frame, naming the file and the problem.
    messages: Vec<String>,
}

fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let sequence = open_sequence(&args.sequence)?;
    let options = ReadOptions::default();
    let mut report = CheckReport {
        sequence: sequence.dir.display().to_string(),
        layout: sequence.layout.to_string(),
        first_frame_number: sequence.first_number,
        last_frame_number: sequence
            .frames
            .last()
            .map_or(sequence.first_number, |f| f.number),
        num_frames: sequence.len(),
        num_valid: 0,
        invalid: BTreeMap::new(),
        multi_person: Vec::new(),
        ignored_files: sequence
            .ignored
            .iter()
            .map(|i| format!("{} ({})", i.path.display(), i.why))
            .collect(),
        messages: Vec::new(),
    };
    for slot in &sequence.frames {
        match read_frame(slot, &options) {
            Ok(frame) => {
                report.num_valid += 1;
                if frame.persons.len() > 1 {
                    report.multi_person.push(slot.number);
                }
            }
            Err(error) => {
                tracing::debug!(frame = slot.number, %error, "invalid frame");
                report
                    .invalid
                    .entry(error.reason().to_string())
                    .or_default()
                    .push(slot.number);
                report
                    .messages
                    .push(format!("frame {}: {error}", slot.number));
            }
        }
    }
    let mut out = std::io::stdout().lock();
    let printed = if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)
    } else {
        print_check(&mut out, &report)
    };
    finish_output(printed)
}

fn print_check(out: &mut impl Write, report: &CheckReport) -> io::Result<()> {
    let percent = |n: usize| 100.0 * n as f64 / report.num_frames.max(1) as f64;
    let width = report
        .invalid
        .keys()
        .map(|r| r.chars().count())
        .max()
        .unwrap_or(0)
        .max(8);
    let row =
        |out: &mut dyn Write, label: &str, value: String| writeln!(out, "{label:<width$}  {value}");
    row(out, "sequence", report.sequence.clone())?;
    row(out, "layout", report.layout.clone())?;
    row(
        out,
        "frames",
        format!(
            "{} (numbers {}–{}; number {} is video frame 0)",
            report.num_frames,
            report.first_frame_number,
            report.last_frame_number,
            report.first_frame_number
        ),
    )?;
    row(
        out,
        "valid",
        format!("{} ({:.1} %)", report.num_valid, percent(report.num_valid)),
    )?;
    if !report.multi_person.is_empty() {
        row(
            out,
            "",
            format!("{} of them with several persons", report.multi_person.len()),
        )?;
    }
    for (reason, numbers) in &report.invalid {
        let noun = if numbers.len() == 1 {
            "frame"
        } else {
            "frames"
        };
        row(
            out,
            reason,
            format!(
                "{} ({:.1} %): {noun} {}",
                numbers.len(),
                percent(numbers.len()),
                ranges(numbers)
            ),
        )?;
    }
    for ignored in &report.ignored_files {
        row(out, "ignored", ignored.clone())?;
    }
    if !report.messages.is_empty() {
        writeln!(out)?;
    }
    for message in &report.messages {
        writeln!(out, "{message}")?;
    }
    Ok(())
}

/// A reader that stopped listening (`meshreel check … | head`) is not an error.
fn finish_output(printed: io::Result<()>) -> anyhow::Result<ExitCode> {
    match printed {
        Err(error) if error.kind() != io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// `[1, 2, 3, 7, 9, 10]` → `1–3, 7, 9–10`.
fn ranges(numbers: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = numbers.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end = iter.next().unwrap_or(end);
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}–{end}")
        });
    }
    parts.join(", ")
}

fn mesh(args: &MeshArgs) -> anyhow::Result<ExitCode> {
    let Some(format) = MeshFormat::from_path(&args.out) else {
        bail!(
            "the output file must end in .obj or .ply: {}",
            args.out.display()
        );
    };
    let sequence = open_sequence(&args.sequence)?;
    let model = load_model(&args.model)?;
    let settings = mesh_settings(&args.model);
    check_settings(&model, &settings)?;

    let Some(slot) = sequence.by_number(args.frame) else {
        let last = sequence
            .frames
            .last()
            .map_or(sequence.first_number, |f| f.number);
        bail!(
            "frame {} is outside the sequence (frame numbers {}–{}): {}",
            args.frame,
            sequence.first_number,
            last,
            sequence.dir.display()
        );
    };
    let options = ReadOptions {
        saved_vertices: settings.needs_saved_vertices(),
        ..ReadOptions::default()
    };
    let frame = read_frame(slot, &options)
        .map_err(|e| anyhow::anyhow!("frame {} is not valid ({}): {e}", slot.number, e.reason()))?;
    let meshes = frame_meshes(&model, &frame, &settings);
    for mesh in &meshes {
        if settings.needs_saved_vertices() && mesh.origin == MeshOrigin::Params {
            tracing::warn!(
                person = mesh.person,
                "no usable saved vertices: posed from the parameters instead"
            );
        }
    }
    let header = format!(
        "meshreel {}\nmodel: {}\nsequence: {} frame {} (video frame {})\ncamera coordinates in metres (OpenCV: +x \
         right, +y down, +z forward)",
        env!("CARGO_PKG_VERSION"),
        model.describe(),
        sequence.dir.display(),
        slot.number,
        slot.video_index
    );
    write_meshes(&args.out, format, &meshes, &model.faces, &header)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let sources: Vec<String> = meshes
        .iter()
        .map(|m| {
            format!(
                "person {} from {}",
                m.person,
                if m.origin == MeshOrigin::Saved {
                    "saved vertices"
                } else {
                    "parameters"
                }
            )
        })
        .collect();
    let printed = writeln!(
        std::io::stdout(),
        "wrote {} ({} vertices each; {}; {}) to {}",
        if meshes.len() == 1 {
            "1 person".to_string()
        } else {
            format!("{} persons", meshes.len())
        },
        model.num_vertices(),
        model.describe(),
        sources.join(", "),
        args.out.display()
    );
    finish_output(printed)
}

fn look(args: &LookArgs) -> Look {
    Look {
        colour: args.colour.unwrap_or(OSX_LOOK.colour),
        opacity: args.opacity.clamp(0.0, 1.0),
        smooth: args.smooth,
        background: args.background,
    }
}

/// Stops a batch run cleanly on Ctrl-C: workers finish their frame, the report is written.
fn stop_on_ctrl_c() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    if let Err(error) = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed)) {
        tracing::warn!(%error, "Ctrl-C will stop the run abruptly");
    }
    stop
}

fn render(args: &RenderArgs) -> anyhow::Result<ExitCode> {
    let shard = resolve_shard(args.shard, args.shard_count, |name| {
        std::env::var(name).ok()
    })?;
    let sequence = open_sequence(&args.sequence)?;
    let model = load_model(&args.model)?;
    let mesh = mesh_settings(&args.model);
    check_settings(&model, &mesh)?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
        .max(1);
    // Each worker draws whole images, so the CPU backend splits none of them further.
    let renderer = RenderHandle::spawn(args.look.renderer, args.look.egl_device, 1)?;
    tracing::info!(renderer = renderer.description(), "rendering");
    let job = BatchJob {
        sequence: &sequence,
        model: &model,
        out: args.out.clone(),
        format: args.format,
        fallback: FallbackSettings {
            policy: args.fallback,
            max_hold: args.max_hold,
        },
        size: args.look.size,
        render: RenderSettings {
            size: DEFAULT_SIZE,
            camera: CameraOptions {
                focal: args.look.focal,
                princpt: args.look.princpt,
            },
            look: look(&args.look),
            mesh,
        },
        resume: args.resume,
        shard,
        threads,
        renderer,
        stop: stop_on_ctrl_c(),
        progress: None,
    };
    let outcome = crate::batch::run(job)?;
    let report = &outcome.report;
    let mut out = std::io::stdout().lock();
    let printed = writeln!(
        out,
        "{}; {:.1} frames/s{}\nreport: {}",
        report.counts.summary(),
        report.timings.frames_per_sec,
        if report.interrupted {
            " (interrupted: run again with --resume)"
        } else {
            ""
        },
        outcome.report_path.display()
    );
    finish_output(printed)?;
    Ok(if report.counts.render_error > 0 || report.interrupted {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let workers = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
        .max(1);
    // A lone request is waited for: the CPU backend splits each image over the cores, which shortens it (the
    // pose correctives split themselves too); under load the extra band threads cost little.
    let renderer = RenderHandle::spawn(args.look.renderer, args.look.egl_device, workers)?;
    tracing::info!(renderer = renderer.description(), "rendering");
    let cache_bytes =
        usize::try_from(args.cache_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
    let config = crate::server::ServerConfig {
        paths: args.paths.clone(),
        model: args.model.model.clone(),
        mesh: mesh_settings(&args.model),
        look: look(&args.look),
        camera: CameraOptions {
            focal: args.look.focal,
            princpt: args.look.princpt,
        },
        fallback: FallbackSettings {
            policy: args.fallback,
            max_hold: args.max_hold,
        },
        size: args.look.size,
        fps: args.fps,
        first_frame_number: args.first_frame_number,
        renderer,
        cache_bytes,
        web_dir: args.web_dir.clone(),
        prerender: args.prerender,
        stamp_frame_code: args.stamp_frame_code,
        workers,
    };
    let state = crate::server::AppState::start(config)?;
    let listener = std::net::TcpListener::bind(&args.bind)
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let address = listener.local_addr()?;
    // Scripts and tests read the address from this line, so it goes to stdout and is flushed at once.
    let mut out = std::io::stdout().lock();
    let printed = writeln!(out, "listening on http://{address}/").and_then(|()| out.flush());
    drop(out);
    finish_output(printed)?;
    actix_web::rt::System::new().block_on(crate::server::run(listener, state, async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C; stop the server another way");
            std::future::pending::<()>().await;
        }
    }))?;
    Ok(ExitCode::SUCCESS)
}

/// Largest report file `merge-reports` reads: about 500 bytes a frame, so room for a million frames.
const MAX_REPORT_BYTES: u64 = 512 * 1024 * 1024;

fn merge_reports(args: &MergeArgs) -> anyhow::Result<ExitCode> {
    let mut shards = Vec::with_capacity(args.reports.len());
    for path in &args.reports {
        let bytes = std::fs::metadata(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
        if bytes > MAX_REPORT_BYTES {
            bail!(
                "{bytes} bytes is too large for a render report (over {MAX_REPORT_BYTES}): {}",
                path.display()
            );
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        shards.push(
            Report::from_json(&text)
                .with_context(|| format!("not a render report: {}", path.display()))?,
        );
    }
    let merged = crate::report::merge(shards)?;
    let out = args.out.clone().unwrap_or_else(|| {
        let folder = args.reports[0]
            .parent()
            .unwrap_or(std::path::Path::new("."));
        folder.join(report_name(Shard::default()))
    });
    write_atomic(&out, merged.to_json().as_bytes())
        .with_context(|| format!("cannot write {}", out.display()))?;
    let printed = writeln!(
        std::io::stdout(),
        "merged {} reports: {}\nreport: {}",
        args.reports.len(),
        merged.counts.summary(),
        out.display()
    );
    finish_output(printed)
}

fn doctor(args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let mut healthy = true;
    match egl_devices() {
        // Without EGL the CPU backend still renders: this is information, not a failure.
        Ok(devices) if devices.is_empty() => writeln!(out, "EGL devices: none")?,
        Ok(devices) => {
            writeln!(out, "EGL devices:")?;
            for d in &devices {
                let kind = if d.software { "software" } else { "hardware" };
                writeln!(out, "  {}: {} ({kind})", d.index, d.name)?;
            }
        }
        Err(error) => writeln!(out, "EGL: {error}")?,
    }
    let model = load_model(&args.model)?;
    writeln!(out, "model: {}", model.describe())?;
    for warning in &model.warnings {
        writeln!(out, "  warning: {warning}")?;
    }
    match RenderHandle::spawn_gl(args.egl_device) {
        Ok(renderer) => {
            writeln!(out, "GL backend: {}", renderer.description())?;
            healthy &= timed_render(&mut out, &renderer, &model)?;
        }
        Err(error) => writeln!(out, "GL backend: not available: {error}")?,
    }
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let cpu = RenderHandle::spawn(RendererChoice::Cpu, None, threads)?;
    writeln!(out, "CPU backend: {}", cpu.description())?;
    healthy &= timed_render(&mut out, &cpu, &model)?;
    let chosen = RenderHandle::spawn(RendererChoice::Auto, args.egl_device, threads)?;
    writeln!(out, "--renderer auto uses: {}", chosen.description())?;
    writeln!(
        out,
        "{}",
        if healthy {
            "ready to render"
        } else {
            "rendering is not available"
        }
    )?;
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// Times 20 renders of the model in OSX's camera at 720×720; false when the image comes out empty.
fn timed_render(
    out: &mut impl Write,
    renderer: &RenderHandle,
    model: &BodyModel,
) -> anyhow::Result<bool> {
    let (size, renders) = ((720, 720), 20);
    let mut params = crate::body::BodyParams::default();
    // OSX's camera frame: the body turned to face the camera, 50 m away, as in the users' files.
    params.pose[0] = [std::f32::consts::PI, 0.0, 0.0];
    params.transl = [0.0, 0.35, 50.0];
    let posed = model.pose(&params, &ForwardOptions::default());
    let intrinsics = Intrinsics {
        fx: 19_531.0,
        fy: 19_531.0,
        cx: 360.0,
        cy: 360.0,
    };
    let person = [PersonView {
        vertices: &posed.vertices,
        intrinsics,
    }];
    let mut times = Vec::with_capacity(renders);
    for _ in 0..renders {
        let start = std::time::Instant::now();
        let image = renderer.render(prepare(&person, &model.faces, size, &OSX_LOOK), size)?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        if image.pixels.chunks_exact(4).all(|p| p[3] == 0) {
            writeln!(out, "  test render: the image is empty")?;
            return Ok(false);
        }
    }
    let first = times[0];
    times.sort_by(f64::total_cmp);
    writeln!(
        out,
        "  test render 720x720: median {:.2} ms over {renders} renders (first {first:.1} ms)",
        times[renders / 2]
    )?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_collapse_runs() {
        assert_eq!(ranges(&[1, 2, 3, 7, 9, 10]), "1–3, 7, 9–10");
        assert_eq!(ranges(&[]), "");
    }
}
