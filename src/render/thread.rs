//! The render thread: one long-lived thread named "render" creates the GL context and owns every GPU object;
//! the rest of the program talks to it through a cloneable [`RenderHandle`] over a bounded channel, one reply
//! per request.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use super::gl::GlRenderer;
use super::{RenderError, RgbaImage, Triangles};

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
}

impl RenderHandle {
    /// Starts the render thread with a GL context on `device_index` (or the best device), and waits until the
    /// context exists, so a missing EGL is reported here.
    pub fn spawn_gl(device_index: Option<usize>) -> Result<RenderHandle, RenderError> {
        let (sender, receiver) = sync_channel::<Request>(QUEUE_DEPTH);
        let (ready_sender, ready) = sync_channel::<Result<String, RenderError>>(1);
        std::thread::Builder::new()
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
            sender,
            description: description.into(),
        })
    }

    /// The backend's description (GL renderer and version).
    pub fn description(&self) -> &str {
        &self.description
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

fn serve(mut renderer: GlRenderer, requests: Receiver<Request>) {
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
