//! The render thread: one long-lived thread named "render" creates the GL context and owns every GPU object;
//! the rest of the program talks to it through a cloneable [`RenderHandle`] over a bounded channel, one reply
//! per request.

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

/// A cloneable handle to the render thread. The thread ends when the last handle is dropped.
#[derive(Clone)]
pub struct RenderHandle {
    sender: SyncSender<Request>,
    description: Arc<str>,
    backend: &'static str,
}

/// A backend, owned by the render thread.
enum Backend {
    Gl(Box<GlRenderer>),
    Cpu { threads: usize },
}

impl Backend {
    fn render(
        &mut self,
        triangles: &Triangles,
        size: (u32, u32),
    ) -> Result<RgbaImage, RenderError> {
        match self {
            Backend::Gl(renderer) => renderer.render(triangles, size),
            Backend::Cpu { threads } => Ok(render_cpu(triangles, size, *threads)),
        }
    }
}

impl RenderHandle {
    /// Starts the render thread with the chosen backend and waits until it is ready, so a missing EGL is
    /// reported here. `auto` renders with GL on a GPU EGL device and otherwise with the CPU backend, which is
    /// faster than Mesa's software GL for this work; it logs once which backend it uses and why.
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
            Self::start(
                move || {
                    Ok(Backend::Cpu {
                        threads: cpu_threads.max(1),
                    })
                },
                format!("meshreel CPU rasterizer ({} threads)", cpu_threads.max(1)),
            )
        }
    }

    /// Starts the render thread with a GL context on `device_index` (or the best device).
    pub fn spawn_gl(device_index: Option<usize>) -> Result<RenderHandle, RenderError> {
        Self::start(
            move || GlRenderer::new(device_index).map(|gl| Backend::Gl(Box::new(gl))),
            String::new(),
        )
    }

    /// Starts the thread, creates the backend on it, and waits for it.
    fn start(
        create: impl FnOnce() -> Result<Backend, RenderError> + Send + 'static,
        cpu_description: String,
    ) -> Result<RenderHandle, RenderError> {
        let (sender, receiver) = sync_channel::<Request>(QUEUE_DEPTH);
        let (ready_sender, ready) = sync_channel::<Result<(String, &'static str), RenderError>>(1);
        std::thread::Builder::new()
            .name("render".to_string())
            .spawn(move || match create() {
                Ok(backend) => {
                    let identity = match &backend {
                        Backend::Gl(renderer) => (renderer.description().to_string(), "gl"),
                        Backend::Cpu { .. } => (cpu_description, "cpu"),
                    };
                    let _ = ready_sender.send(Ok(identity));
                    serve(backend, receiver);
                }
                Err(error) => {
                    let _ = ready_sender.send(Err(error));
                }
            })
            .map_err(|e| RenderError::ThreadGone(e.to_string()))?;
        let (description, backend) = ready.recv().map_err(|_| {
            RenderError::ThreadGone("it stopped while creating the GL context".to_string())
        })??;
        Ok(RenderHandle {
            sender,
            description: description.into(),
            backend,
        })
    }

    /// The backend's description (GL renderer and version).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The backend's short name, `gl` or `cpu`: part of a frame's identity wherever its bytes are cached or
    /// compared, as the two backends may differ in a few edge pixels.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Renders on the render thread and waits for the image.
    pub fn render(&self, triangles: Triangles, size: (u32, u32)) -> Result<RgbaImage, RenderError> {
        let (reply, answer) = sync_channel(1);
        self.sender
            .send(Request {
                triangles,
                size,
                reply,
            })
            .map_err(|_| RenderError::ThreadGone("no longer accepting work".to_string()))?;
        answer
            .recv()
            .map_err(|_| RenderError::ThreadGone("it stopped before answering".to_string()))?
    }
}

fn serve(mut renderer: Backend, requests: Receiver<Request>) {
    for request in requests {
        // A panic inside GL code fails this frame only; the thread keeps serving.
        let result = catch_unwind(AssertUnwindSafe(|| {
            renderer.render(&request.triangles, request.size)
        }))
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            Err(RenderError::Gl(format!("panicked: {message}")))
        });
        let _ = request.reply.send(result);
    }
}
