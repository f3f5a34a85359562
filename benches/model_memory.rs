//! Peak resident memory and wall time of loading a real-size model file, measured in a fresh process so the
//! file's generation does not count. Target (issue 2): ≤ 200 MB resident, ≤ 2 s, for a 100+ MB file.
//!
//! Run with `cargo bench --bench model_memory`; prints one line per file variant.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use meshreel::body::load_smplx;
use meshreel::frames::npz::NpzLimits;
use meshreel::synth::{ModelSpec, SynthModel};

const CHILD_ENV: &str = "MESHREEL_BENCH_LOAD_MODEL";

/// Peak resident set size of this process, from /proc (Linux).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        let start = Instant::now();
        let model = load_smplx(Path::new(&path), NpzLimits::MODEL).expect("load model");
        let seconds = start.elapsed().as_secs_f64();
        let peak = peak_rss_mb().map_or("unknown".to_string(), |mb| format!("{mb:.0} MB"));
        println!(
            "{} vertices: {seconds:.2} s, peak RSS {peak}",
            model.num_vertices()
        );
        return;
    }
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing and expects no work.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary folder");
    for (label, float64, compressed) in [
        ("float32, stored", false, false),
        ("float64, stored", true, false),
        ("float32, deflated", false, true),
    ] {
        let path = dir.path().join("SMPLX_NEUTRAL.npz");
        let spec = ModelSpec {
            float64,
            compressed,
            ..ModelSpec::real_size()
        };
        SynthModel::generate(spec, 1)
            .write(&path)
            .expect("write model");
        let file_mb = std::fs::metadata(&path).expect("model file").len() as f64 / 1e6;
        let output = Command::new(std::env::current_exe().expect("own path"))
            .env(CHILD_ENV, &path)
            .output()
            .expect("run the loading process");
        print!(
            "load real-size model ({label}, {file_mb:.0} MB file): {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}
