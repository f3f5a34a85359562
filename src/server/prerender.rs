//! Background work beside serving: the validity scan of long sequences (for the timeline), and `--prerender`,
//! which runs the batch (`batch::run`, resumable) into each sequence's `rendered/` folder.
//!
//! Both run at the lowest CPU priority (nice 19, inherited by the batch's worker threads), so live requests,
//! which render on normal-priority threads, always come first; on a busy machine they simply wait.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use crate::batch::{BatchJob, write_atomic};
use crate::encode::ImageFormat;
use crate::report::Shard;

use super::AppState;
use super::sequence::{MARKER_FILE, Marker, PrerenderProgress, PrerenderedUse, SequenceState};

/// Frames scanned between checks for shutdown.
const SCAN_CHUNK: usize = 64;

/// Lowers the calling thread's CPU priority to the minimum. On Linux the nice value is per thread and new
/// threads inherit it, so the batch's workers run at idle priority too.
fn idle_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority only reads its integer arguments; `0` names the calling thread on Linux.
        let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
        if result != 0 {
            tracing::debug!("could not lower the background thread's priority");
        }
    }
}

/// Scans the validity of every frame not known yet, sequence by sequence.
pub fn spawn_scanner(state: Arc<AppState>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("scan".to_string())
        .spawn(move || {
            idle_priority();
            for sequence in &state.sequences {
                let mut from = 0;
                while let Some(next) = sequence.next_unscanned(from) {
                    if state.stopping() {
                        return;
                    }
                    let end = (next + SCAN_CHUNK).min(sequence.num_frames);
                    sequence.scan_range(next..end);
                    from = end;
                }
                if !sequence.warnings.is_empty() || sequence.num_frames > 0 {
                    tracing::debug!(sequence = %sequence.id, "scan complete");
                }
            }
        })
}

/// Pre-renders every sequence whose `rendered/` folder is usable, one after another.
pub fn spawn_prerender(state: Arc<AppState>) -> std::io::Result<JoinHandle<()>> {
    for sequence in &state.sequences {
        sequence
            .prerender
            .total
            .store(sequence.sequence.len(), Ordering::Relaxed);
    }
    std::thread::Builder::new()
        .name("prerender".to_string())
        .spawn(move || {
            idle_priority();
            for sequence in &state.sequences {
                if state.stopping() {
                    return;
                }
                prerender_one(&state, sequence);
            }
            tracing::info!("pre-rendering finished");
        })
}

fn prerender_one(state: &AppState, sequence: &SequenceState) {
    let progress = &sequence.prerender;
    if let PrerenderedUse::Ignored { why } = &sequence.prerendered {
        tracing::warn!(sequence = %sequence.id, "not pre-rendering: {why}");
        progress.finished.store(true, Ordering::Relaxed);
        return;
    }
    let dir = &sequence.rendered_dir;
    let marker = Marker {
        identity: sequence.settings_identity.clone(),
        settings: state.settings.describe(sequence.render.size),
    };
    let written = std::fs::create_dir_all(dir).and_then(|()| {
        let text = serde_json::to_string_pretty(&marker).map_err(std::io::Error::other)?;
        write_atomic(&dir.join(MARKER_FILE), text.as_bytes())
    });
    if let Err(error) = written {
        tracing::warn!(sequence = %sequence.id, %error, dir = %dir.display(), "cannot pre-render into the folder");
        progress.finished.store(true, Ordering::Relaxed);
        return;
    }
    progress.running.store(true, Ordering::Relaxed);
    progress.done.store(0, Ordering::Relaxed);
    let job = BatchJob {
        sequence: &sequence.sequence,
        model: &state.settings.model,
        out: dir.clone(),
        format: ImageFormat::Png,
        fallback: sequence.fallback,
        size: Some(sequence.render.size),
        render: sequence.render,
        resume: true,
        shard: Shard::default(),
        threads: state.workers,
        renderer: state.settings.renderer.clone(),
        stop: state.stop.clone(),
        progress: Some(progress.done.clone()),
    };
    tracing::info!(sequence = %sequence.id, frames = sequence.sequence.len(), "pre-rendering");
    let result = crate::batch::run(job);
    progress.running.store(false, Ordering::Relaxed);
    match result {
        Ok(outcome) if !outcome.report.interrupted => {
            progress.finished.store(true, Ordering::Relaxed);
            tracing::info!(sequence = %sequence.id, "{}", outcome.report.counts.summary());
        }
        Ok(_) => {
            tracing::info!(sequence = %sequence.id, "pre-rendering stopped; a restart resumes it")
        }
        Err(error) => {
            progress.finished.store(true, Ordering::Relaxed);
            tracing::warn!(sequence = %sequence.id, "pre-rendering failed: {error:#}");
        }
    }
}

/// Pre-render progress summed over sequences.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub running: bool,
}

impl Progress {
    pub fn of<'a>(sequences: impl Iterator<Item = &'a PrerenderProgress>) -> Progress {
        sequences.fold(Progress::default(), |sum, p| Progress {
            done: sum.done + p.done.load(Ordering::Relaxed),
            total: sum.total + p.total.load(Ordering::Relaxed),
            running: sum.running || p.running.load(Ordering::Relaxed),
        })
    }
}
