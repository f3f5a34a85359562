//! Who draws: a cloneable [`RenderHandle`] over either backend. GL runs on one long-lived thread named "render"
//! that creates the context and owns every GPU object, reached over a bounded channel with one reply per
//! request. The CPU backend needs no such thread: it rasterizes in the caller's thread (band-parallel when
//! asked), so batch workers and server requests draw side by side.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use super::cpu::render_cpu;
use super::gl::{GlRenderer, egl_devices};
use super::{RenderError, RendererChoice, RgbaImage, Triangles};

/// Requests waiting for the render thread at most; senders block beyond that, so memory stays bounded.
const QUEUE_DEPTH: usize = 4;

struct Request {
    triangles: Triangles,
    size: (u32, u32),
    reply: SyncSender<Result<RgbaImage, RenderError>>,
}

/// The render thread and the way to it. Dropping it (with the last handle) closes the queue and joins the
/// thread, so the GL context is destroyed before `main` returns: Mesa tearing down its EGL state at process exit
/// while the render thread still destroys its context crashed the process now and then.
struct GlThread {
    /// `Some` until dropped.
    sender: Option<SyncSender<Request>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for GlThread {
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A cloneable handle to a backend. With GL, dropping the last handle ends the render thread and waits for it.
#[derive(Clone)]
pub struct RenderHandle {
    engine: Engine,
    description: Arc<str>,
}

#[derive(Clone)]
enum Engine {
    /// GL, on the render thread.
    Gl(Arc<GlThread>),
    /// The CPU rasterizer in the caller's thread, with this many band threads per image.
    Cpu { threads: usize },
}

impl RenderHandle {
    /// Starts the chosen backend and waits until it is ready, so a missing EGL is reported here. `auto` renders
    /// with GL on a GPU EGL device and otherwise with the CPU backend, which is faster than Mesa's software GL
    /// for this work; it logs once which backend it uses and why. `cpu_threads` is how many threads the CPU
    /// backend splits one image over: 1 when callers already draw several images at once.
    pub fn spawn(
        choice: RendererChoice,
        device_index: Option<usize>,
        cpu_threads: usize,
    ) -> Result<RenderHandle, RenderError> {
        let use_gl = match choice {
            RendererChoice::Gl => true,
            RendererChoice::Cpu => false,
            RendererChoice::Auto if device_index.is_some() => true,
            RendererChoice::Auto => match egl_devices() {
                Ok(devices) if devices.iter().any(|d| !d.software) => true,
                Ok(_) => {
                    tracing::info!(
                        "no GPU EGL device: rendering with the CPU backend (faster than software GL)"
                    );
                    false
                }
                Err(error) => {
                    tracing::info!("rendering with the CPU backend: {error}");
                    false
                }
            },
        };
        if use_gl {
            Self::spawn_gl(device_index)
        } else {
            Ok(Self::cpu(cpu_threads))
        }
    }

    /// The CPU backend, splitting each image over `threads` threads.
    pub fn cpu(threads: usize) -> RenderHandle {
        let threads = threads.max(1);
        RenderHandle {
            engine: Engine::Cpu { threads },
            description: format!("meshreel CPU rasterizer ({threads} threads per image)").into(),
        }
    }

    /// Starts the render thread with a GL context on `device_index` (or the best device) and waits for it.
    pub fn spawn_gl(device_index: Option<usize>) -> Result<RenderHandle, RenderError> {
        let (sender, receiver) = sync_channel::<Request>(QUEUE_DEPTH);
        let (ready_sender, ready) = sync_channel::<Result<String, RenderError>>(1);
        let thread = std::thread::Builder::new()
            .name("render".to_string())
            .spawn(move || match GlRenderer::new(device_index) {
                Ok(renderer) => {
                    let _ = ready_sender.send(Ok(renderer.description().to_string()));
                    serve(renderer, receiver);
                }
                Err(error) => {
                    let _ = ready_sender.send(Err(error));
                }
            })
            .map_err(|e| RenderError::ThreadGone(e.to_string()))?;
        let description = ready.recv().map_err(|_| {
            RenderError::ThreadGone("it stopped while creating the GL context".to_string())
        })??;
        Ok(RenderHandle {
            engine: Engine::Gl(Arc::new(GlThread {
                sender: Some(sender),
                thread: Some(thread),
            })),
            description: description.into(),
        })
    }

    /// The backend's description (GL renderer and version, or the CPU rasterizer).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The backend's short name, `gl` or `cpu`: part of a frame's identity wherever its bytes are cached or
    /// compared, as the two backends may differ in a few edge pixels.
    pub fn backend(&self) -> &'static str {
        match self.engine {
            Engine::Gl(_) => "gl",
            Engine::Cpu { .. } => "cpu",
        }
    }

    /// Renders and waits for the image.
    pub fn render(&self, triangles: Triangles, size: (u32, u32)) -> Result<RgbaImage, RenderError> {
        match &self.engine {
            Engine::Cpu { threads } => guarded(|| Ok(render_cpu(&triangles, size, *threads))),
            Engine::Gl(gl) => {
                let (reply, answer) = sync_channel(1);
                let gone = || RenderError::ThreadGone("no longer accepting work".to_string());
                gl.sender
                    .as_ref()
                    .ok_or_else(gone)?
                    .send(Request {
                        triangles,
                        size,
                        reply,
                    })
                    .map_err(|_| gone())?;
                answer.recv().map_err(|_| {
                    RenderError::ThreadGone("it stopped before answering".to_string())
                })?
            }
        }
    }
}

/// Runs a render, turning a panic into an error for this frame only.
fn guarded(
    render: impl FnOnce() -> Result<RgbaImage, RenderError>,
) -> Result<RgbaImage, RenderError> {
    catch_unwind(AssertUnwindSafe(render)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        Err(RenderError::Panicked(message.to_string()))
    })
}

/// The render thread's loop: a panic inside GL code fails that frame only and the thread keeps serving.
fn serve(mut renderer: GlRenderer, requests: Receiver<Request>) {
    for request in requests {
        let result = guarded(|| renderer.render(&request.triangles, request.size));
        let _ = request.reply.send(result);
    }
}
