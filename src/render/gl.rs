//! The GL backend: a headless EGL context (any GPU driver, or Mesa's llvmpipe) with three-d on top, rasterizing
//! prepared triangles with a depth test into an RGBA texture and reading it back.
//!
//! Not `Send`: it lives on the render thread, which creates it and owns every GPU object.

use std::sync::Arc;

use glutin::api::egl::context::PossiblyCurrentContext;
use glutin::api::egl::device::Device;
use glutin::api::egl::display::Display;
use glutin::config::{ConfigSurfaceTypes, ConfigTemplateBuilder};
use glutin::context::{ContextApi, ContextAttributesBuilder, Version};
use glutin::display::GlDisplay;
use three_d::context::HasContext;
use three_d::{
    Blend, ClearState, Cull, DepthTest, DepthTexture2D, Interpolation, Program, RenderStates,
    RenderTarget, Texture2D, VertexBuffer, Viewport, Wrapping, WriteMask,
};

use super::scene::Triangles;
use super::{RenderError, RgbaImage};

/// The EGL extension by which Mesa marks its software (llvmpipe) device.
const SOFTWARE_DEVICE_EXTENSION: &str = "EGL_MESA_device_software";

/// What `doctor` and the report say about an EGL device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EglDeviceInfo {
    pub index: usize,
    pub name: String,
    pub software: bool,
}

/// The EGL devices this machine offers; an error when libEGL itself is missing.
pub fn egl_devices() -> Result<Vec<EglDeviceInfo>, RenderError> {
    let devices = Device::query_devices().map_err(|e| RenderError::no_egl(&e.to_string()))?;
    Ok(devices
        .enumerate()
        .map(|(index, device)| EglDeviceInfo {
            index,
            name: device
                .name()
                .or(device.vendor())
                .or(device.drm_device_node_path().and_then(|p| p.to_str()))
                .unwrap_or("unnamed device")
                .to_string(),
            software: device.extensions().contains(SOFTWARE_DEVICE_EXTENSION),
        })
        .collect())
}

/// Vertex shader: positions arrive in NDC already (the intrinsics were applied on the CPU, exactly).
const VERTEX_SHADER: &str = "
in vec3 position;
in vec4 colour;
FLAT out vec4 face_colour;
void main() {
    face_colour = colour;
    gl_Position = vec4(position, 1.0);
}";

const FRAGMENT_SHADER: &str = "
FLAT in vec4 face_colour;
layout (location = 0) out vec4 out_colour;
void main() {
    out_colour = face_colour;
}";

/// A headless GL renderer. Buffers are created once and refilled per frame; the render target is recreated
/// only when the image size changes.
pub struct GlRenderer {
    // Field order is drop order: GPU objects before the context that owns them.
    target: Option<Target>,
    positions: VertexBuffer<[f32; 3]>,
    colours: VertexBuffer<[f32; 4]>,
    flat_program: Program,
    smooth_program: Program,
    context: three_d::Context,
    description: String,
    _egl_context: PossiblyCurrentContext,
    _display: Display,
}

struct Target {
    size: (u32, u32),
    colour: Texture2D,
    depth: DepthTexture2D,
}

impl GlRenderer {
    /// Creates the EGL context on the calling thread: the requested device, else the first hardware device,
    /// else Mesa's software device.
    pub fn new(device_index: Option<usize>) -> Result<GlRenderer, RenderError> {
        let devices: Vec<Device> = Device::query_devices()
            .map_err(|e| RenderError::no_egl(&e.to_string()))?
            .collect();
        if devices.is_empty() {
            return Err(RenderError::no_egl("no EGL device found"));
        }
        let is_software = |d: &Device| d.extensions().contains(SOFTWARE_DEVICE_EXTENSION);
        let device = match device_index {
            Some(index) => devices.get(index).ok_or_else(|| {
                RenderError::Gl(format!(
                    "there is no EGL device {index} (this machine has {})",
                    devices.len()
                ))
            })?,
            None => devices
                .iter()
                .find(|d| !is_software(d))
                .unwrap_or(&devices[0]),
        };
        let gl_error =
            |what: &str, e: glutin::error::Error| RenderError::Gl(format!("{what}: {e}"));
        // SAFETY: no native display is involved; the device comes from EGL's own enumeration.
        let display = unsafe { Display::with_device(device, None) }
            .map_err(|e| gl_error("EGL display", e))?;
        let template = ConfigTemplateBuilder::new()
            .with_alpha_size(8)
            .with_surface_type(ConfigSurfaceTypes::empty())
            .build();
        // SAFETY: the display is valid for the lifetime of this call.
        let config = unsafe { display.find_configs(template) }
            .map_err(|e| gl_error("EGL configs", e))?
            .next()
            .ok_or_else(|| {
                RenderError::Gl("no EGL config with 8-bit alpha and no surface".to_string())
            })?;
        let attributes = ContextAttributesBuilder::new()
            .with_context_api(ContextApi::OpenGl(Some(Version::new(3, 3))))
            .build(None);
        // SAFETY: the config belongs to this display.
        let not_current = unsafe { display.create_context(&config, &attributes) }
            .map_err(|e| gl_error("GL 3.3 core context", e))?;
        let egl_context = not_current
            .make_current_surfaceless()
            .map_err(|e| gl_error("making the context current", e))?;
        // SAFETY: the context is current on this thread, and the loader returns its function pointers.
        let gl = unsafe {
            three_d::context::Context::from_loader_function_cstr(|name| {
                display.get_proc_address(name)
            })
        };
        // SAFETY: plain queries on the current context.
        let (renderer, version) = unsafe {
            (
                gl.get_parameter_string(three_d::context::RENDERER),
                gl.get_parameter_string(three_d::context::VERSION),
            )
        };
        let context = three_d::Context::from_gl_context(Arc::new(gl))
            .map_err(|e| RenderError::Gl(e.to_string()))?;
        let program = |flat: bool| {
            let qualifier = if flat { "flat" } else { "smooth" };
            Program::from_source(
                &context,
                &VERTEX_SHADER.replace("FLAT", qualifier),
                &FRAGMENT_SHADER.replace("FLAT", qualifier),
            )
            .map_err(|e| RenderError::Gl(format!("shader: {e}")))
        };
        Ok(GlRenderer {
            target: None,
            positions: VertexBuffer::new(&context),
            colours: VertexBuffer::new(&context),
            flat_program: program(true)?,
            smooth_program: program(false)?,
            description: format!("{renderer}, OpenGL {version} (EGL, three-d)"),
            context,
            _egl_context: egl_context,
            _display: display,
        })
    }

    /// The GL renderer and version strings.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Rasterizes the triangles into a `size` image with a transparent background.
    pub fn render(
        &mut self,
        triangles: &Triangles,
        size: (u32, u32),
    ) -> Result<RgbaImage, RenderError> {
        if self.target.as_ref().map(|t| t.size) != Some(size) {
            self.target = Some(Target {
                size,
                colour: Texture2D::new_empty::<[u8; 4]>(
                    &self.context,
                    size.0,
                    size.1,
                    Interpolation::Nearest,
                    Interpolation::Nearest,
                    None,
                    Wrapping::ClampToEdge,
                    Wrapping::ClampToEdge,
                ),
                depth: DepthTexture2D::new::<f32>(
                    &self.context,
                    size.0,
                    size.1,
                    Wrapping::ClampToEdge,
                    Wrapping::ClampToEdge,
                ),
            });
        }
        let Some(target) = &mut self.target else {
            return Err(RenderError::Gl("no render target".to_string()));
        };
        let count = triangles.positions.len() as u32;
        if count > 0 {
            self.positions.fill(&triangles.positions);
            self.colours.fill(&triangles.colours);
        }
        let program = if triangles.flat {
            &self.flat_program
        } else {
            &self.smooth_program
        };
        let states = RenderStates {
            write_mask: WriteMask::default(),
            depth_test: DepthTest::Less,
            blend: Blend::Disabled,
            cull: Cull::None,
        };
        let viewport = Viewport::new_at_origo(size.0, size.1);
        let render_target = RenderTarget::new(
            target.colour.as_color_target(None),
            target.depth.as_depth_target(),
        );
        render_target
            .clear(ClearState::color_and_depth(0.0, 0.0, 0.0, 0.0, 1.0))
            .write::<RenderError>(|| {
                if count > 0 {
                    program.use_vertex_attribute("position", &self.positions);
                    program.use_vertex_attribute("colour", &self.colours);
                    program.draw_arrays(states, viewport, count);
                }
                Ok(())
            })?;
        let pixels: Vec<[u8; 4]> = render_target.read_color();
        Ok(RgbaImage {
            width: size.0,
            height: size.1,
            pixels: pixels.into_iter().flatten().collect(),
        })
    }
}
