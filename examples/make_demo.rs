//! Writes `data-samples/demo`: the parameter files and manifest (`meshreel::demo`), and `video.mp4`, encoded
//! by piping the frames into ffmpeg (H.264, yuv420p, faststart), then decoded back to check every frame's code.
//! Deterministic apart from the encoder's version.
//!
//! `cargo run --release --example make_demo` regenerates it; it needs ffmpeg on the PATH (Debian/Ubuntu:
//! `apt-get install ffmpeg`). meshreel itself never needs ffmpeg.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail, ensure};
use meshreel::demo::{self, Demo, FPS, HEIGHT, VIDEO_FILE, WIDTH};

/// x264 settings: a keyframe every second so seeks are quick, quality high enough that the frame code's blocks
/// stay crisp, one thread and bit-exact muxing so a rerun gives the same bytes with the same ffmpeg.
const ENCODE_ARGS: &[&str] = &[
    "-c:v",
    "libx264",
    "-preset",
    "slow",
    "-crf",
    "21",
    "-g",
    "30",
    "-pix_fmt",
    "yuv420p",
    "-threads",
    "1",
    "-movflags",
    "+faststart",
    "-map_metadata",
    "-1",
    "-fflags",
    "+bitexact",
    "-flags:v",
    "+bitexact",
];

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data-samples/demo");
    let frames = root.join("frames");
    if frames.exists() {
        std::fs::remove_dir_all(&frames)?;
    }
    let demo = Demo::new();
    demo.write_files(&root)?;
    println!("wrote {} frame files and the manifest", demo.num_frames());

    let video = root.join(VIDEO_FILE);
    encode(&demo, &video)?;
    let codes = decoded_codes(&video)?;
    ensure!(
        codes.len() == demo.num_frames(),
        "the video decodes to {} frames, not {}",
        codes.len(),
        demo.num_frames()
    );
    for (index, code) in codes.iter().enumerate() {
        ensure!(
            *code == Some(demo::frame_code(index as u32)),
            "decoded frame {index} carries code {code:?}"
        );
    }
    let bytes = std::fs::metadata(&video)?.len();
    println!(
        "wrote {} ({} KiB); every frame's code reads back",
        video.display(),
        bytes / 1024
    );
    Ok(())
}

fn encode(demo: &Demo, video: &Path) -> anyhow::Result<()> {
    let partial = video.with_extension("partial.mp4");
    let size = format!("{WIDTH}x{HEIGHT}");
    let rate = FPS.to_string();
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args([
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", &size, "-r", &rate,
        ])
        .args(["-i", "-"])
        .args(ENCODE_ARGS)
        .arg(&partial)
        .stdin(Stdio::piped())
        .spawn()
        .context("cannot run ffmpeg (install it: apt-get install ffmpeg)")?;
    let mut stdin = child.stdin.take().context("ffmpeg's standard input")?;
    for index in 0..demo.num_frames() {
        let frame = demo.video_frame(index);
        let rgb: Vec<u8> = frame
            .pixels
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        stdin.write_all(&rgb).context("writing a frame to ffmpeg")?;
    }
    drop(stdin);
    let status = child.wait()?;
    if !status.success() {
        bail!("ffmpeg failed: {status}");
    }
    std::fs::rename(&partial, video)?;
    Ok(())
}

/// Decodes the video with ffmpeg and reads every frame's code.
fn decoded_codes(video: &Path) -> anyhow::Result<Vec<Option<u32>>> {
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(video)
        .args(["-f", "rawvideo", "-pix_fmt", "rgba", "-"])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run ffmpeg")?;
    let mut raw = Vec::new();
    child
        .stdout
        .take()
        .context("ffmpeg's standard output")?
        .read_to_end(&mut raw)?;
    ensure!(
        child.wait()?.success(),
        "ffmpeg could not decode {}",
        video.display()
    );
    let frame_bytes = (WIDTH * HEIGHT * 4) as usize;
    Ok(raw
        .chunks_exact(frame_bytes)
        .map(|frame| demo::read_frame_code(frame, WIDTH, HEIGHT))
        .collect())
}
