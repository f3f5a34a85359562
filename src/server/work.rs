//! Getting a frame's bytes: the cache, then one render per frame however many ask at once, on a small pool of
//! dedicated threads (named "frames-N") so rendering never blocks the HTTP workers.
//!
//! The queue is a priority queue, bounded per priority: live requests (HTTP, a stream's `want`) before stream
//! windows before read-ahead. Stream and read-ahead work carries a [`Cancel`] token: when its owner seeks, the
//! work still queued for the old window is dropped unless someone else waits for the same frame.

use std::collections::{BinaryHeap, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use actix_web::web::Bytes;
use tokio::sync::watch;

use crate::body::BodyModel;
use crate::encode::{ImageFormat, encode};
use crate::frame_code::{self, CodeLayout};
use crate::pipeline::render_planned;
use crate::render::RenderHandle;
use crate::report::FrameStatus;

use super::cache::{EncodedFrame, FrameCache, FrameKey, FrameMeta, Origin};
use super::sequence::SequenceState;
use super::stats::Stats;

/// Who is waiting, most urgent last (the queue pops the greatest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Frames after an HTTP request, before anyone asks.
    ReadAhead,
    /// Frames in a stream's window ahead of its playhead.
    Stream,
    /// An HTTP request or a stream's `want`: someone is waiting now.
    Live,
}

impl Priority {
    /// Jobs that may be queued when one of this priority arrives: read-ahead yields first, live requests last.
    fn queue_limit(self) -> usize {
        match self {
            Priority::ReadAhead => 32,
            Priority::Stream => 256,
            Priority::Live => 1024,
        }
    }
}

/// Frames read ahead after an HTTP frame request.
pub const READ_AHEAD_FRAMES: usize = 8;

/// Whether a job of `priority` may start while `running` jobs of each priority (indexed by `Priority as
/// usize`) are being made. Read-ahead is a guess: it starts only when nobody waits for a frame, one at a
/// time, so a request arriving meanwhile finds a free worker and shares the cores with at most one guess
/// (every render spreads over all cores by itself).
fn may_start(priority: Priority, running: &[usize; 3]) -> bool {
    priority != Priority::ReadAhead || running == &[0, 0, 0]
}

/// A cancellation token: the work is stale once `token` moved past `generation`.
#[derive(Clone, Debug)]
pub struct Cancel {
    pub token: Arc<AtomicU64>,
    pub generation: u64,
}

impl Cancel {
    pub fn is_stale(&self) -> bool {
        self.token.load(Ordering::Acquire) != self.generation
    }
}

/// Why no bytes came back.
#[derive(Clone, Debug)]
pub enum Failure {
    /// The frame failed to render (this frame only).
    Render { meta: FrameMeta, message: String },
    /// The queue is full.
    Busy,
    /// Everyone who wanted it has moved on.
    Cancelled,
    /// The server is shutting down.
    Stopped,
}

pub type Outcome = Result<Arc<EncodedFrame>, Failure>;

/// A frame for a request, and whether it was already in the cache.
#[derive(Clone, Debug)]
pub struct Got {
    pub frame: Arc<EncodedFrame>,
    pub cached: bool,
}

struct PendingState {
    priority: Priority,
    /// Someone waits who cannot be cancelled (a live request).
    pinned: bool,
    interests: Vec<Cancel>,
    taken: bool,
}

/// A frame being made; every asker waits on the same `done`.
struct Pending {
    done: watch::Sender<Option<Outcome>>,
    state: Mutex<PendingState>,
}

/// Most cancellable interests remembered per frame; beyond that the frame is simply kept.
const MAX_INTERESTS: usize = 64;

struct Queued {
    priority: Priority,
    order: u64,
    key: FrameKey,
    sequence: Arc<SequenceState>,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.priority == other.priority && self.order == other.order
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    /// Higher priority first, then first come first served.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.priority
            .cmp(&other.priority)
            .then(other.order.cmp(&self.order))
    }
}

struct Queue {
    heap: BinaryHeap<Queued>,
    next_order: u64,
    stopped: bool,
    /// Jobs taken by workers and not finished, per priority (`Priority as usize`).
    running: [usize; 3],
}

/// A job taken from the queue: counted in `Queue::running` until dropped, which wakes the workers (read-ahead
/// may be free to start).
struct Taken<'a> {
    store: &'a FrameStore,
    priority: Priority,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        lock(&self.store.queue).running[self.priority as usize] -= 1;
        self.store.ready.notify_all();
    }
}

/// The cache plus the render pool behind it.
pub struct FrameStore {
    pub cache: FrameCache,
    pub stats: Arc<Stats>,
    model: Arc<BodyModel>,
    renderer: RenderHandle,
    /// `--stamp-frame-code`: each image gets its frame index's code before encoding.
    stamp_frame_code: bool,
    pending: Mutex<HashMap<FrameKey, Arc<Pending>>>,
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Jobs waiting for a worker (not counting duplicate heap entries of re-prioritised jobs).
    queued: AtomicUsize,
    /// Jobs being made right now.
    running: AtomicUsize,
}

enum Joined {
    Hit(Arc<EncodedFrame>),
    Wait(watch::Receiver<Option<Outcome>>),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is a single step, so a panic elsewhere leaves them consistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FrameStore {
    /// Starts `workers` render threads; with `stamp_frame_code`, every image they make carries its frame code
    /// ([`CodeLayout::OVERLAY`]).
    pub fn start(
        cache_bytes: usize,
        model: Arc<BodyModel>,
        renderer: RenderHandle,
        stats: Arc<Stats>,
        workers: usize,
        stamp_frame_code: bool,
    ) -> std::io::Result<Arc<FrameStore>> {
        let store = Arc::new(FrameStore {
            cache: FrameCache::new(cache_bytes),
            stats,
            model,
            renderer,
            stamp_frame_code,
            pending: Mutex::new(HashMap::new()),
            queue: Mutex::new(Queue {
                heap: BinaryHeap::new(),
                next_order: 0,
                stopped: false,
                running: [0; 3],
            }),
            ready: Condvar::new(),
            queued: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
        });
        for number in 0..workers.max(1) {
            let worker = store.clone();
            std::thread::Builder::new()
                .name(format!("frames-{number}"))
                .spawn(move || worker.work())?;
        }
        Ok(store)
    }

    /// Stops the workers after their current frame; queued work is answered with `Stopped`.
    pub fn stop(&self) {
        let dropped: Vec<Queued> = {
            let mut queue = lock(&self.queue);
            queue.stopped = true;
            queue.heap.drain().collect()
        };
        self.ready.notify_all();
        for job in dropped {
            self.finish(&job.key, None, Err(Failure::Stopped));
        }
    }

    /// Jobs waiting for a worker.
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Jobs being rendered now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// A frame's bytes: from the cache, else made once for everyone asking.
    pub async fn get(
        &self,
        sequence: &Arc<SequenceState>,
        index: usize,
        format: ImageFormat,
        priority: Priority,
        cancel: Option<Cancel>,
    ) -> Result<Got, Failure> {
        let key = FrameKey {
            sequence: sequence.key,
            index: index as u32,
            format,
        };
        if let Some(frame) = self.cache.get(&key) {
            return Ok(Got {
                frame,
                cached: true,
            });
        }
        // A live request that raced a cancellation asks again; twice is plenty.
        for _ in 0..3 {
            let mut receiver = match self.join(sequence, key, priority, cancel.clone())? {
                Joined::Hit(frame) => {
                    return Ok(Got {
                        frame,
                        cached: true,
                    });
                }
                Joined::Wait(receiver) => receiver,
            };
            let outcome = match receiver.wait_for(Option::is_some).await {
                Ok(done) => done.clone().unwrap_or(Err(Failure::Stopped)),
                Err(_) => Err(Failure::Stopped),
            };
            match outcome {
                Err(Failure::Cancelled) if cancel.is_none() => continue,
                outcome => {
                    return outcome.map(|frame| Got {
                        frame,
                        cached: false,
                    });
                }
            }
        }
        Err(Failure::Busy)
    }

    /// Queues a frame without waiting for it (read-ahead); does nothing when it is cached or the queue is full.
    pub fn prefetch(
        &self,
        sequence: &Arc<SequenceState>,
        index: usize,
        format: ImageFormat,
        cancel: Cancel,
    ) {
        let key = FrameKey {
            sequence: sequence.key,
            index: index as u32,
            format,
        };
        if !self.cache.contains(&key) {
            let _ = self.join(sequence, key, Priority::ReadAhead, Some(cancel));
        }
    }

    /// Joins the frame's pending work, or queues it.
    fn join(
        &self,
        sequence: &Arc<SequenceState>,
        key: FrameKey,
        priority: Priority,
        cancel: Option<Cancel>,
    ) -> Result<Joined, Failure> {
        let mut pending = lock(&self.pending);
        // The worker stores into the cache before it leaves `pending`: look again under the lock.
        if let Some(hit) = self.cache.peek(&key) {
            return Ok(Joined::Hit(hit));
        }
        if let Some(existing) = pending.get(&key) {
            let mut state = lock(&existing.state);
            match cancel {
                Some(cancel) if state.interests.len() < MAX_INTERESTS => {
                    state.interests.push(cancel)
                }
                _ => state.pinned = true,
            }
            if priority > state.priority && !state.taken {
                state.priority = priority;
                // The old heap entry stays; the worker skips whichever comes second.
                self.push(key, priority, sequence);
            }
            return Ok(Joined::Wait(existing.done.subscribe()));
        }
        if self.queued.load(Ordering::Relaxed) >= priority.queue_limit() {
            self.stats.busy.fetch_add(1, Ordering::Relaxed);
            return Err(Failure::Busy);
        }
        let (done, receiver) = watch::channel(None);
        pending.insert(
            key,
            Arc::new(Pending {
                done,
                state: Mutex::new(PendingState {
                    priority,
                    pinned: cancel.is_none(),
                    interests: cancel.into_iter().collect(),
                    taken: false,
                }),
            }),
        );
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.push(key, priority, sequence);
        Ok(Joined::Wait(receiver))
    }

    fn push(&self, key: FrameKey, priority: Priority, sequence: &Arc<SequenceState>) {
        let mut queue = lock(&self.queue);
        let order = queue.next_order;
        queue.next_order += 1;
        queue.heap.push(Queued {
            priority,
            order,
            key,
            sequence: sequence.clone(),
        });
        drop(queue);
        self.ready.notify_one();
    }

    /// A worker's loop.
    fn work(self: Arc<Self>) {
        loop {
            let (job, _taken) = {
                let mut queue = lock(&self.queue);
                loop {
                    if queue.stopped {
                        return;
                    }
                    // The heap's top is its most urgent job: if that may not start, nothing may.
                    if let Some(top) = queue.heap.peek()
                        && may_start(top.priority, &queue.running)
                        && let Some(job) = queue.heap.pop()
                    {
                        queue.running[job.priority as usize] += 1;
                        let priority = job.priority;
                        break (
                            job,
                            Taken {
                                store: &self,
                                priority,
                            },
                        );
                    }
                    queue = self
                        .ready
                        .wait(queue)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
            };
            let Some(pending) = lock(&self.pending).get(&job.key).cloned() else {
                continue;
            };
            let cancelled = {
                let mut state = lock(&pending.state);
                if state.taken {
                    continue;
                }
                state.taken = true;
                !state.pinned
                    && !state.interests.is_empty()
                    && state.interests.iter().all(Cancel::is_stale)
            };
            self.queued.fetch_sub(1, Ordering::Relaxed);
            if cancelled {
                self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
                self.finish(&job.key, Some(&pending), Err(Failure::Cancelled));
                continue;
            }
            self.running.fetch_add(1, Ordering::Relaxed);
            let outcome = catch_unwind(AssertUnwindSafe(|| self.produce(&job.sequence, job.key)))
                .unwrap_or_else(|_| {
                    Err(Failure::Render {
                        meta: FrameMeta {
                            status: FrameStatus::RenderError,
                            reason: Some("rendering panicked".to_string()),
                            source: None,
                            persons: 0,
                        },
                        message: "rendering panicked".to_string(),
                    })
                });
            self.running.fetch_sub(1, Ordering::Relaxed);
            if let Ok(frame) = &outcome {
                self.cache.insert(job.key, frame.clone());
            }
            self.finish(&job.key, Some(&pending), outcome);
        }
    }

    /// Leaves `pending` and tells every waiter.
    fn finish(&self, key: &FrameKey, expected: Option<&Arc<Pending>>, outcome: Outcome) {
        let removed = {
            let mut pending = lock(&self.pending);
            match (pending.get(key), expected) {
                (Some(found), Some(expected)) if !Arc::ptr_eq(found, expected) => None,
                (Some(_), _) => pending.remove(key),
                (None, _) => None,
            }
        };
        if let Some(pending) = removed.as_ref().or(expected) {
            pending.done.send_replace(Some(outcome));
        }
    }

    /// Makes one frame: the plan, then the pre-rendered file or a render (stamped with its frame code under
    /// `--stamp-frame-code`), then encoding.
    fn produce(&self, sequence: &SequenceState, key: FrameKey) -> Outcome {
        let index = key.index as usize;
        let window = sequence.plan_window(index);
        let mut meta = window.meta();
        if meta.status == FrameStatus::Skipped {
            return Ok(Arc::new(EncodedFrame {
                bytes: Bytes::new(),
                meta,
                origin: Origin::Rendered,
                render_ms: 0.0,
                encode_ms: 0.0,
            }));
        }
        // Pre-rendered images carry no stamp: with `--stamp-frame-code` the folder is never served (`prerendered`).
        if let Some(path) = sequence.prerendered_path(index, key.format)
            && let Some(bytes) = read_complete_png(&path)
        {
            self.stats.prerendered_reads.fetch_add(1, Ordering::Relaxed);
            return Ok(Arc::new(EncodedFrame {
                bytes: Bytes::from(bytes),
                meta,
                origin: Origin::Prerendered,
                render_ms: 0.0,
                encode_ms: 0.0,
            }));
        }
        let started = Instant::now();
        let output = render_planned(
            &self.model,
            &window.window,
            &window.plan,
            window.local,
            &sequence.render,
            &self.renderer,
        );
        let render_ms = started.elapsed().as_secs_f64() * 1000.0;
        meta.persons = output.persons;
        let fail = |meta: FrameMeta, message: String| {
            self.stats.render_errors.fetch_add(1, Ordering::Relaxed);
            sequence.record_render_error(index, &message);
            tracing::warn!(sequence = %sequence.id, frame = index, %message, "frame could not be rendered");
            Err(Failure::Render {
                meta: FrameMeta {
                    status: FrameStatus::RenderError,
                    reason: Some(message.clone()),
                    ..meta
                },
                message,
            })
        };
        let mut image = match (output.status, output.image) {
            (FrameStatus::RenderError, _) | (_, None) => {
                let message = output
                    .reason
                    .unwrap_or_else(|| "no image was drawn".to_string());
                return fail(meta, message);
            }
            (_, Some(image)) => image,
        };
        if self.stamp_frame_code {
            // The global index, the video frame the player shows this image with, not the plan window's.
            frame_code::draw(&mut image, key.index, &CodeLayout::OVERLAY);
        }
        let started = Instant::now();
        let mut bytes = match encode(&image, key.format) {
            Ok(bytes) => bytes,
            Err(error) => return fail(meta, error.to_string()),
        };
        // The encoder reserves for the worst case (a quarter of the pixels); a cached frame keeps only its bytes.
        bytes.shrink_to_fit();
        let encode_ms = started.elapsed().as_secs_f64() * 1000.0;
        self.stats.record_render(render_ms, encode_ms);
        sequence.clear_render_error(index);
        Ok(Arc::new(EncodedFrame {
            bytes: Bytes::from(bytes),
            meta,
            origin: Origin::Rendered,
            render_ms,
            encode_ms,
        }))
    }
}

/// A PNG file's bytes, if it is complete (signature and IEND chunk, as the batch's resume checks).
fn read_complete_png(path: &std::path::Path) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    (bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.ends_with(b"IEND\xaeB`\x82")).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_ahead_starts_only_on_an_idle_pool_and_one_at_a_time() {
        let idle = [0, 0, 0];
        for priority in [Priority::ReadAhead, Priority::Stream, Priority::Live] {
            assert!(may_start(priority, &idle), "{priority:?} on an idle pool");
        }
        for busy in [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 2, 3]] {
            assert!(
                !may_start(Priority::ReadAhead, &busy),
                "read-ahead beside {busy:?}"
            );
            assert!(may_start(Priority::Stream, &busy), "stream beside {busy:?}");
            assert!(may_start(Priority::Live, &busy), "live beside {busy:?}");
        }
    }
}
