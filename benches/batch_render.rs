//! End-to-end batch speed: `meshreel render` on an 1,800-frame sequence (one person per frame, real-size
//! SMPL-X-layout model) at 720×720, 1280×720 and 1920×1080, with frames/s and the process's peak memory.
//! Targets on 2 cores at 720×720: GL on Mesa llvmpipe ≥ 100 frames/s, ≤ 300 MB (issue 3); the CPU backend
//! ≥ 300 frames/s, ≤ 300 MB (issue 4).
//!
//! Run with `cargo bench --bench batch_render`; the GL runs need EGL (`meshreel doctor`).
//! `MESHREEL_BENCH_RENDERERS=cpu` and `MESHREEL_BENCH_SIZES=720x720,1920x1080` narrow the run;
//! `MESHREEL_BENCH_KEEP=DIR` keeps the generated inputs in DIR.

use std::process::Command;
use std::time::{Duration, Instant};

use meshreel::report::Report;
use meshreel::synth::{KeyStyle, Rng, SynthModel, SynthPerson, frame_contents};

const NUM_FRAMES: u32 = 1800;

/// Peak resident memory of a running process (VmHWM), in MB.
fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary folder");
    // MESHREEL_BENCH_KEEP=DIR writes the inputs there and keeps them, for profiling the same run by hand.
    let inputs = std::env::var_os("MESHREEL_BENCH_KEEP")
        .map_or_else(|| dir.path().to_path_buf(), Into::into);
    std::fs::create_dir_all(&inputs).expect("inputs folder");
    let model = inputs.join("SMPLX_NEUTRAL.npz");
    SynthModel::stand_in_shaped(1).write(&model).expect("model");
    let frames = inputs.join("frames");
    std::fs::create_dir_all(&frames).expect("frames folder");
    let mut rng = Rng::new(2);
    for number in 1..=NUM_FRAMES {
        let mut person = SynthPerson::random(&mut rng, 0.2);
        person.cam_trans = [0.0, 0.3, 50.0];
        let contents = frame_contents(KeyStyle::OsxPrefixed, &[person], false);
        contents
            .write(&frames.join(format!("frame_{number:04}_params.npz")), false)
            .expect("frame");
    }
    // MESHREEL_BENCH_RENDERERS=cpu and MESHREEL_BENCH_SIZES=720x720 narrow the run.
    let pick = |var: &str, all: &'static [&'static str]| -> Vec<String> {
        std::env::var(var).map_or_else(
            |_| all.iter().map(|s| s.to_string()).collect(),
            |list| list.split(',').map(str::to_string).collect(),
        )
    };
    let renderers = pick("MESHREEL_BENCH_RENDERERS", &["gl", "cpu"]);
    let sizes = pick(
        "MESHREEL_BENCH_SIZES",
        &["720x720", "1280x720", "1920x1080"],
    );
    for (renderer, size) in renderers
        .iter()
        .flat_map(|r| sizes.iter().map(move |s| (r.as_str(), s.as_str())))
    {
        let out = dir.path().join(format!("out-{renderer}-{size}"));
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_meshreel"))
            .args([
                "render",
                frames.to_str().unwrap_or_default(),
                "--out",
                out.to_str().unwrap_or_default(),
            ])
            .args([
                "--model",
                model.to_str().unwrap_or_default(),
                "--size",
                size,
                "--renderer",
                renderer,
            ])
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("run meshreel render");
        let mut peak = 0.0f64;
        while child.try_wait().expect("wait").is_none() {
            peak = peak.max(peak_rss_mb(child.id()).unwrap_or(0.0));
            std::thread::sleep(Duration::from_millis(20));
        }
        let wall = started.elapsed().as_secs_f64();
        let report = Report::from_json(
            &std::fs::read_to_string(out.join("render_report.json")).expect("report"),
        )
        .expect("report parses");
        let stages = &report.timings.stages;
        println!(
            "{renderer} {size}: {:.1} frames/s in the run ({:.1} s wall incl. start-up, {} frames), peak RSS {peak:.0} MB; \
             per frame p50 ms: read {:.2}, forward {:.2}, render {:.2}, encode {:.2}, write {:.2}; renderer {}",
            report.timings.frames_per_sec,
            wall,
            report.counts.total,
            stages.read.p50_ms,
            stages.forward.p50_ms,
            stages.render.p50_ms,
            stages.encode.p50_ms,
            stages.write.p50_ms,
            report.environment.renderer,
        );
    }
}
