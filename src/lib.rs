//! meshreel turns per-frame SMPL-X parameter files from whole-body mesh recovery (OSX, SMPLer-X) into posed
//! body meshes, with every frame's fate stated honestly.
//!
//! # Layout
//! A frame's trip, one module per stage:
//! - [`frames`]: the user's data — sequence discovery, NPZ reading with limits, per-person parameters, and
//!   [`frames::FrameError`], the one enum of reasons a frame is not valid.
//! - [`body`]: body models — the user's SMPL-X file or the built-in stand-in — and the forward pass. Pure.
//! - [`pipeline`]: frame → meshes (parameters or saved vertices), shared by every command.
//! - [`mesh_file`]: meshes → OBJ/PLY files.
//! - [`render`]: meshes and cameras → RGBA pixels (headless GL on one render thread), and placeholders.
//! - [`frame_code`]: the 12-bit block code that makes an image say which frame it is — the demo video's and the
//!   overlay stamp of `serve --stamp-frame-code` — drawn and read at any size.
//! - [`encode`]: RGBA → PNG / WebP bytes.
//! - [`parallel`]: splitting one frame's work over a few threads.
//! - [`report`]: `render_report.json`: what happened to every frame of a batch run, and merging shard reports.
//! - [`server`]: `meshreel serve` — the HTTP/WebSocket API, frame cache and render pool behind the player.
//! - [`commands`]: the subcommands, on top of the stages; [`cli`] declares their flags.
//! - [`synth`]: synthetic model and frame files in the real layouts, for tests, benchmarks and samples.
//! - [`demo`]: the demo sequence (`data-samples/demo`): an actor video whose frames carry their frame code, and
//!   its parameter files with faults.

pub mod batch;
pub mod body;
pub mod cli;
pub mod commands;
pub mod demo;
pub mod encode;
pub mod frame_code;
pub mod frames;
pub mod mesh_file;
pub mod parallel;
pub mod pipeline;
pub mod render;
pub mod report;
pub mod server;
pub mod synth;
