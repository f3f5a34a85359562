//! Integration tests, one binary: test data is generated in code (`meshreel::synth`), never shipped.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
#![allow(clippy::needless_range_loop)] // the reference implementation reads like the equations, index by index

mod batch;
mod cli;
mod demo;
mod forward;
mod frames;
mod npz;
mod render;
mod report;
mod server;
mod support;
