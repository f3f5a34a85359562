//! Pixels: cameras, scene preparation, the GL backend on its own render thread, and the placeholder image.
//!
//! Only `gl` touches GL. Everything else here is plain CPU code shared by every backend: a backend receives
//! screen-space [`Triangles`] and returns an [`RgbaImage`].

pub mod camera;
pub mod cpu;
mod gl;
mod image;
mod placeholder;
pub mod scene;
mod thread;

pub use gl::{EglDeviceInfo, egl_devices};
pub use image::RgbaImage;
pub use placeholder::{draw_badge, draw_badge_at, placeholder};
pub use scene::{Look, OSX_LOOK, PersonView, Triangles, composite, prepare};
pub use thread::RenderHandle;

/// Which backend renders (`--renderer`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RendererChoice {
    /// GL on a GPU EGL device if there is one; otherwise the CPU backend.
    #[default]
    Auto,
    /// three-d on EGL (a GPU driver, or Mesa's llvmpipe); an error when EGL is missing.
    Gl,
    /// The built-in CPU rasterizer: no system packages needed.
    Cpu,
}

/// Why an image could not be rendered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// No usable EGL: the message names what to install.
    #[error(
        "headless OpenGL (EGL) is not available ({detail}). Install it with `apt-get install libegl1 \
         libgl1-mesa-dri` (Debian/Ubuntu; Mesa's software renderer, no GPU needed) or install your GPU's driver; \
         `meshreel doctor` checks the result"
    )]
    NoEgl { detail: String },
    #[error("OpenGL failed: {0}")]
    Gl(String),
    #[error("rendering this frame panicked: {0}")]
    Panicked(String),
    #[error("the render thread has stopped: {0}")]
    ThreadGone(String),
}

impl RenderError {
    fn no_egl(detail: &str) -> RenderError {
        RenderError::NoEgl {
            detail: detail.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_egl_names_what_to_install() {
        let message = RenderError::no_egl("not found").to_string();
        assert!(
            message.contains("libegl1 libgl1-mesa-dri") && message.contains("meshreel doctor"),
            "{message}"
        );
    }
}
