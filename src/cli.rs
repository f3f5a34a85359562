//! The command line: subcommands and their flags. Doc comments here are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::pipeline::MeshSource;

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
