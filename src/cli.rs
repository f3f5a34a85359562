//! The command line: subcommands and their flags. Doc comments here are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::encode::ImageFormat;
use crate::pipeline::{DEFAULT_MAX_HOLD, FallbackPolicy, MeshSource};
use crate::render::RendererChoice;
use crate::report::Shard;

/// meshreel: SMPL-X meshes recovered from video (OSX, SMPLer-X), posed from per-frame NPZ files.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read every frame of a sequence and report which are valid and why the others are not.
    Check(CheckArgs),
    /// Write the posed meshes of one frame (camera coordinates, one object per person) to an OBJ or PLY file.
    Mesh(MeshArgs),
    /// Pre-render every frame (or one shard) to images, plus render_report.json saying what happened to each.
    Render(RenderArgs),
    /// Join the reports of a sharded render into one render_report.json.
    MergeReports(MergeArgs),
    /// Check headless rendering: EGL devices, the GL renderer, the model in use, and one timed render.
    Doctor(DoctorArgs),
    /// Serve sequences to the browser player: frames over HTTP and a WebSocket stream, the video, the API.
    Serve(ServeArgs),
}

/// Where a sequence is and how its numbering maps to video frames.
#[derive(Debug, Args)]
pub struct SequenceArgs {
    /// The sequence: a folder of per-frame NPZ files (frame_0001_params.npz, NAME_000123.npz,
    /// NAME_000123_p0.npz or SMPLer-X 00012_0.npz), or a folder with a frames/, smplx/ or npz_files/ sub-folder.
    pub sequence: PathBuf,

    /// The file frame number that shows video frame 0 [default: 1, or 0 when a file numbered 0 exists].
    #[arg(long, value_name = "N")]
    pub first_frame_number: Option<u32>,
}

/// Which body model poses the meshes, and how.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Your SMPL-X model file (SMPLX_NEUTRAL.npz, any published version). Without it, meshreel uses its
    /// built-in stand-in body, which is not SMPL-X and is labelled as such everywhere.
    #[arg(long, value_name = "FILE", env = "MESHREEL_MODEL")]
    pub model: Option<PathBuf>,

    /// Pose hands without the model's mean hand pose. OSX adds the mean (smplx's flat_hand_mean=False), so
    /// leave this off to match OSX.
    #[arg(long)]
    pub flat_hands: bool,

    /// Where vertices come from: pose the model from the parameters, or use the vertices the recovery model
    /// saved in the frame (smplx_mesh_cam; needs --model).
    #[arg(long, value_enum, default_value_t = MeshSource::Auto)]
    pub mesh_source: MeshSource,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub sequence: SequenceArgs,

    /// Print the result as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct MeshArgs {
    #[command(flatten)]
    pub sequence: SequenceArgs,

    #[command(flatten)]
    pub model: ModelArgs,

    /// The frame number, as in the file name (frame_0001_params.npz is 1).
    #[arg(long, value_name = "N")]
    pub frame: u32,

    /// The output file: .obj (one object per person) or .ply (binary, all persons in one mesh).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// How frames look and which camera shows them.
#[derive(Debug, Args)]
pub struct LookArgs {
    /// Output size WIDTHxHEIGHT [default: the frames' image_size, else 720x720].
    #[arg(long, value_name = "WxH", value_parser = crate::render::camera::parse_size)]
    pub size: Option<(u32, u32)>,

    /// Focal lengths fx,fy in pixels for persons whose frame gives neither focal nor bbox_xywh.
    #[arg(long, value_name = "FX,FY", value_parser = parse_pair)]
    pub focal: Option<[f32; 2]>,

    /// Principal point cx,cy in pixels [default: the image centre].
    #[arg(long, value_name = "CX,CY", value_parser = parse_pair)]
    pub princpt: Option<[f32; 2]>,

    /// Mesh colour as linear R,G,B in 0..1 [default: OSX's 1,1,0.9].
    #[arg(long, value_name = "R,G,B", value_parser = parse_colour)]
    pub colour: Option<[f32; 3]>,

    /// Mesh opacity, 0..1.
    #[arg(long, default_value_t = 1.0)]
    pub opacity: f32,

    /// Smooth (Gouraud) shading instead of OSX's flat faces.
    #[arg(long)]
    pub smooth: bool,

    /// Composite over a solid background colour (#rrggbb) instead of writing transparent images.
    #[arg(long, value_name = "#RRGGBB", value_parser = parse_hex_colour)]
    pub background: Option<[u8; 3]>,

    /// Which backend renders: GL on a GPU EGL device when there is one, else the CPU rasterizer (auto); always
    /// GL (a GPU or Mesa's software GL); or always the CPU rasterizer, which needs no system packages.
    #[arg(long, value_enum, default_value_t = RendererChoice::Auto, env = "MESHREEL_RENDERER")]
    pub renderer: RendererChoice,

    /// EGL device index to render on with GL (`meshreel doctor` lists them) [default: a GPU, else Mesa's
    /// software device].
    #[arg(long, value_name = "N", env = "MESHREEL_EGL_DEVICE")]
    pub egl_device: Option<usize>,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub sequence: SequenceArgs,

    #[command(flatten)]
    pub model: ModelArgs,

    #[command(flatten)]
    pub look: LookArgs,

    /// Output folder for the images and render_report.json.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Image format.
    #[arg(long, value_enum, default_value_t = ImageFormat::Png)]
    pub format: ImageFormat,

    /// What frames without valid parameters show.
    #[arg(long, value_enum, default_value_t = FallbackPolicy::LastValid)]
    pub fallback: FallbackPolicy,

    /// How many frames back a fallback may reach for the last valid mesh.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_HOLD)]
    pub max_hold: u32,

    /// Keep images a previous run completed; render only the rest. The report covers every frame.
    #[arg(long)]
    pub resume: bool,

    /// Render shard K of N (frames whose index modulo N is K) [default: from SLURM_ARRAY_TASK_ID and
    /// SLURM_ARRAY_TASK_COUNT, or JOB_COMPLETION_INDEX with --shard-count].
    #[arg(long, value_name = "K/N", value_parser = crate::batch::parse_shard)]
    pub shard: Option<Shard>,

    /// Number of shards, for Kubernetes Indexed Jobs (JOB_COMPLETION_INDEX gives K).
    #[arg(long, value_name = "N")]
    pub shard_count: Option<u32>,

    /// Worker threads for reading, posing and encoding [default: the number of cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// What to serve: sequence folders (frames/ or NPZ files, optional video.mp4 or video.webm, optional
    /// rendered/), library folders whose sub-folders are sequences, or a prototype root with videos/NAME.mp4,
    /// npz_files/NAME/ and models/SMPLX_NEUTRAL.npz.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// The file frame number that shows video frame 0 [default: 1, or 0 when a file numbered 0 exists].
    #[arg(long, value_name = "N")]
    pub first_frame_number: Option<u32>,

    #[command(flatten)]
    pub model: ModelArgs,

    #[command(flatten)]
    pub look: LookArgs,

    /// What frames without valid parameters show.
    #[arg(long, value_enum, default_value_t = FallbackPolicy::LastValid)]
    pub fallback: FallbackPolicy,

    /// How many frames back a fallback may reach for the last valid mesh.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_HOLD)]
    pub max_hold: u32,

    /// Frame rate of sequences without a readable video (MP4 timing wins when there is one) [default: 30].
    #[arg(long, value_name = "FPS", env = "MESHREEL_FPS", value_parser = parse_fps)]
    pub fps: Option<f64>,

    /// Address to listen on; port 0 picks a free port (the address is printed as `listening on http://ADDR/`).
    #[arg(long, value_name = "ADDR", default_value = crate::server::DEFAULT_BIND, env = "MESHREEL_BIND")]
    pub bind: String,

    /// Memory budget of the encoded-frame cache, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = crate::server::DEFAULT_CACHE_MB, env = "MESHREEL_CACHE_MB")]
    pub cache_mb: u64,

    /// Serve the player from this folder instead of the copy built into the binary (for working on the player).
    #[arg(long, value_name = "DIR", env = "MESHREEL_WEB_DIR")]
    pub web_dir: Option<PathBuf>,

    /// Pre-render every frame of every sequence into its rendered/ folder (with render_report.json) in the
    /// background, at idle priority; a restart resumes it.
    #[arg(long, env = "MESHREEL_PRERENDER")]
    pub prerender: bool,

    /// Diagnostic: stamp every overlay image with its own frame code (its 0-based frame index modulo 4096, in
    /// the demo video's block code moved one strip down: grey rows 100-159 of a 640x480 reference, scaled to the
    /// image), so a screenshot shows whether each overlay is shown with its own video frame. Pre-rendered
    /// rendered/ folders are not used (their images carry no stamp).
    #[arg(long, env = "MESHREEL_STAMP_FRAME_CODE", conflicts_with = "prerender")]
    pub stamp_frame_code: bool,

    /// Render threads, and HTTP worker threads [default: the number of cores].
    #[arg(long, value_name = "N", env = "MESHREEL_THREADS")]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shard reports (render_report.shard-K-of-N.json), all of one run.
    #[arg(required = true)]
    pub reports: Vec<PathBuf>,

    /// Where to write the merged report [default: render_report.json beside the first shard report].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    /// EGL device index to test [default: a GPU, else Mesa's software device].
    #[arg(long, value_name = "N", env = "MESHREEL_EGL_DEVICE")]
    pub egl_device: Option<usize>,
}

fn parse_floats<const N: usize>(text: &str) -> Result<[f32; N], String> {
    let values: Vec<f32> = text
        .split(',')
        .map(|v| {
            v.trim()
                .parse::<f32>()
                .map_err(|_| format!("'{v}' is not a number"))
        })
        .collect::<Result<_, _>>()?;
    let values: [f32; N] = values
        .try_into()
        .map_err(|_| format!("'{text}' needs {N} comma-separated numbers"))?;
    if values.iter().all(|v| v.is_finite()) {
        Ok(values)
    } else {
        Err(format!("'{text}' has a non-finite value"))
    }
}

fn parse_fps(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(fps) if fps.is_finite() && fps > 0.0 && fps <= 1000.0 => Ok(fps),
        _ => Err(format!("'{text}' is not a frame rate between 0 and 1000")),
    }
}

fn parse_pair(text: &str) -> Result<[f32; 2], String> {
    parse_floats::<2>(text)
}

fn parse_colour(text: &str) -> Result<[f32; 3], String> {
    let colour = parse_floats::<3>(text)?;
    if colour.iter().all(|c| (0.0..=1.0).contains(c)) {
        Ok(colour)
    } else {
        Err(format!("'{text}': each channel must be between 0 and 1"))
    }
}

fn parse_hex_colour(text: &str) -> Result<[u8; 3], String> {
    let hex = text.trim_start_matches('#');
    let channel = |i: usize| {
        hex.get(i..i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
    };
    match (hex.len(), channel(0), channel(2), channel(4)) {
        (6, Some(r), Some(g), Some(b)) => Ok([r, g, b]),
        _ => Err(format!("'{text}' is not a colour like #203040")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(flags: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(["meshreel", "serve", "clip01"].iter().chain(flags))
    }

    #[test]
    fn serve_stamps_frame_codes_only_without_prerendering() {
        let Ok(Cli {
            command: Command::Serve(args),
        }) = serve(&["--stamp-frame-code"])
        else {
            panic!("--stamp-frame-code alone parses");
        };
        assert!(args.stamp_frame_code && !args.prerender);
        let error =
            serve(&["--stamp-frame-code", "--prerender"]).expect_err("the two flags conflict");
        assert_eq!(error.kind(), clap::error::ErrorKind::ArgumentConflict);
    }
}
