//! `meshreel serve`: an HTTP and WebSocket server that gives a browser player each frame's overlay image, in
//! step with the video.
//!
//! A request's trip: [`routes`] (thin handlers) → [`work::FrameStore`] (the byte-bounded [`cache`], then one
//! render per frame on dedicated threads, with priorities and cancellation) → `pipeline::render_planned` and
//! `encode::encode`, the batch's own functions, so a served frame has exactly the bytes `meshreel render`
//! writes. [`stream`] pushes frames ahead of a player's playhead over a WebSocket; [`prerender`] fills each
//! sequence's `rendered/` folder with the batch machinery in the background. [`library`] finds the sequences,
//! [`sequence`] holds one, [`video`] reads the MP4's frame timing. The API is documented in `docs/api.md`.

pub mod cache;
pub mod error;
pub mod library;
mod prerender;
mod routes;
pub mod sequence;
pub mod stats;
mod stream;
pub mod video;
mod web;
pub mod work;

use std::collections::HashMap;
use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use actix_web::{App, HttpServer, web as aweb};

use crate::body::{BodyModel, ModelKind};
use crate::frames::SequenceOptions;
use crate::pipeline::{FallbackSettings, MeshSettings, RenderSettings, check_settings};
use crate::render::camera::{CameraOptions, DEFAULT_SIZE};
use crate::render::{Look, RenderHandle};
use crate::report::sha256_file;

use self::library::{find_sequences, unique_id};
use self::sequence::{SequenceState, sha256_hex};
use self::stats::Stats;
use self::work::FrameStore;

/// Default address: loopback only, as the player is a local tool.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Default cache budget in MiB.
pub const DEFAULT_CACHE_MB: u64 = 256;

/// Everything `serve` needs, from the command line or a test.
pub struct ServerConfig {
    /// Sequence folders, library folders or prototype roots.
    pub paths: Vec<PathBuf>,
    /// `--model`; without it, a prototype root's `models/SMPLX_NEUTRAL.npz`, else the stand-in.
    pub model: Option<PathBuf>,
    pub mesh: MeshSettings,
    pub look: Look,
    pub camera: CameraOptions,
    pub fallback: FallbackSettings,
    pub size: Option<(u32, u32)>,
    pub fps: Option<f64>,
    pub first_frame_number: Option<u32>,
    pub renderer: RenderHandle,
    pub cache_bytes: usize,
    /// Serve the player from this folder instead of the embedded copy.
    pub web_dir: Option<PathBuf>,
    pub prerender: bool,
    /// `--stamp-frame-code`: every overlay image carries its own frame code
    /// ([`OVERLAY`](crate::frame_code::CodeLayout::OVERLAY) layout). Cannot be combined with `prerender`:
    /// pre-rendered images carry no stamp.
    pub stamp_frame_code: bool,
    /// Render threads (and HTTP workers).
    pub workers: usize,
}

/// The settings fixed for the server's lifetime that decide a frame's bytes.
pub struct ServeSettings {
    pub model: Arc<BodyModel>,
    /// SHA-256 of the SMPL-X file; `None` for the stand-in.
    pub model_sha256: Option<String>,
    pub renderer: RenderHandle,
    /// Size is per sequence; the rest is shared.
    pub render: RenderSettings,
    pub fallback: FallbackSettings,
    pub size: Option<(u32, u32)>,
    pub fps: Option<f64>,
    pub first_frame_number: Option<u32>,
    pub scan_threads: usize,
    pub prerender: bool,
    /// Every overlay image carries its frame index's code
    /// ([`OVERLAY`](crate::frame_code::CodeLayout::OVERLAY) layout); pre-rendered folders are then neither
    /// served nor written to.
    pub stamp_frame_code: bool,
}

impl ServeSettings {
    /// Every setting that decides a frame's pixels, as text; its hash is part of each ETag and of the marker in
    /// a folder pre-rendered by the server.
    pub fn describe(&self, size: (u32, u32)) -> String {
        format!(
            "meshreel {}\nbackend {}\nmodel {}\nsize {}x{}\nlook {:?}\ncamera {:?}\nfallback {} {}\nmesh {:?}\n\
             stamp_frame_code {}",
            env!("CARGO_PKG_VERSION"),
            self.renderer.backend(),
            self.model_sha256.as_deref().map_or_else(
                || "stand_in".to_string(),
                |sha| format!("smplx sha256:{sha}")
            ),
            size.0,
            size.1,
            self.render.look,
            self.render.camera,
            self.fallback.policy.name(),
            self.fallback.max_hold,
            self.render.mesh,
            self.stamp_frame_code,
        )
    }

    pub fn identity(&self, size: (u32, u32)) -> String {
        sha256_hex(&self.describe(size))
    }
}

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Library(#[from] library::LibraryError),
    #[error("{name}: {source}")]
    Sequence {
        name: String,
        #[source]
        source: sequence::LoadError,
    },
    #[error(transparent)]
    Model(#[from] crate::body::ModelLoadError),
    #[error(transparent)]
    Settings(#[from] crate::pipeline::SettingsError),
    #[error("cannot checksum the model ({source}): {}", path.display())]
    ModelChecksum {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("--web-dir is not a folder: {}", .0.display())]
    WebDir(PathBuf),
    #[error(
        "--stamp-frame-code cannot be combined with --prerender: pre-rendered images carry no stamp"
    )]
    StampWithPrerender,
}

/// The server's shared state.
pub struct AppState {
    pub sequences: Vec<Arc<SequenceState>>,
    by_id: HashMap<String, usize>,
    pub store: Arc<FrameStore>,
    pub stats: Arc<Stats>,
    pub settings: ServeSettings,
    /// Library-level warnings (unmatched videos or frame folders).
    pub warnings: Vec<String>,
    web: web::WebFiles,
    pub prerender_enabled: bool,
    workers: usize,
    /// Set on shutdown: background threads stop, streams close.
    stop: Arc<AtomicBool>,
    closing: tokio::sync::watch::Sender<bool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl AppState {
    /// Finds the sequences, loads the model, lists and times every sequence (scanning short ones), and starts
    /// the render threads, the background scan and, with `prerender`, the pre-rendering.
    pub fn start(config: ServerConfig) -> Result<Arc<AppState>, ServeError> {
        if config.stamp_frame_code && config.prerender {
            return Err(ServeError::StampWithPrerender);
        }
        let options = SequenceOptions {
            first_number: config.first_frame_number,
        };
        let library = find_sequences(&config.paths, &options)?;
        for warning in &library.warnings {
            tracing::warn!("{warning}");
        }
        let model_path = config.model.clone().or_else(|| {
            let found = library.model.clone();
            if let Some(path) = &found {
                tracing::info!(model = %path.display(), "using the model found beside the videos");
            }
            found
        });
        let model = crate::pipeline::load_model(model_path.as_deref())?;
        check_settings(&model, &config.mesh)?;
        let model_sha256 = match &model.kind {
            ModelKind::Smplx(info) => {
                Some(
                    sha256_file(&info.path).map_err(|source| ServeError::ModelChecksum {
                        path: info.path.clone(),
                        source,
                    })?,
                )
            }
            ModelKind::StandIn => None,
        };
        if let Some(dir) = &config.web_dir
            && !dir.is_dir()
        {
            return Err(ServeError::WebDir(dir.clone()));
        }
        let workers = config.workers.max(1);
        let model = Arc::new(model);
        let settings = ServeSettings {
            model: model.clone(),
            model_sha256,
            renderer: config.renderer.clone(),
            render: RenderSettings {
                size: DEFAULT_SIZE,
                camera: config.camera,
                look: config.look,
                mesh: config.mesh,
            },
            fallback: config.fallback,
            size: config.size,
            fps: config.fps,
            first_frame_number: config.first_frame_number,
            scan_threads: workers,
            prerender: config.prerender,
            stamp_frame_code: config.stamp_frame_code,
        };

        let mut sequences = Vec::with_capacity(library.sequences.len());
        let mut ids: Vec<String> = Vec::new();
        for (position, source) in library.sequences.iter().enumerate() {
            let id = unique_id(&source.name, &ids);
            ids.push(id.clone());
            let state = SequenceState::load(position as u32, id, source, &settings).map_err(
                |source_error| ServeError::Sequence {
                    name: source.name.clone(),
                    source: source_error,
                },
            )?;
            tracing::info!(
                sequence = %state.id,
                frames = state.num_frames,
                fps = state.fps,
                width = state.render.size.0,
                height = state.render.size.1,
                video = state.video.is_some(),
                scanned = state.is_scanned(),
                "sequence ready"
            );
            for warning in &state.warnings {
                tracing::warn!(sequence = %state.id, "{warning}");
            }
            sequences.push(Arc::new(state));
        }
        let by_id = sequences
            .iter()
            .enumerate()
            .map(|(position, s)| (s.id.clone(), position))
            .collect();

        let stats = Arc::new(Stats::default());
        let store = FrameStore::start(
            config.cache_bytes,
            model,
            config.renderer.clone(),
            stats.clone(),
            workers,
            config.stamp_frame_code,
        )
        .map_err(ServeError::Thread)?;
        let (closing, _) = tokio::sync::watch::channel(false);
        let state = Arc::new(AppState {
            sequences,
            by_id,
            store,
            stats,
            settings,
            warnings: library.warnings,
            web: web::WebFiles::new(config.web_dir),
            prerender_enabled: config.prerender,
            workers,
            stop: Arc::new(AtomicBool::new(false)),
            closing,
            threads: Mutex::new(Vec::new()),
        });
        let scanner = prerender::spawn_scanner(state.clone()).map_err(ServeError::Thread)?;
        state.keep_thread(scanner);
        if config.prerender {
            let thread = prerender::spawn_prerender(state.clone()).map_err(ServeError::Thread)?;
            state.keep_thread(thread);
        }
        Ok(state)
    }

    fn keep_thread(&self, thread: JoinHandle<()>) {
        if let Ok(mut threads) = self.threads.lock() {
            threads.push(thread);
        }
    }

    pub fn sequence(&self, id: &str) -> Option<&Arc<SequenceState>> {
        self.by_id.get(id).and_then(|i| self.sequences.get(*i))
    }

    /// Whether shutdown has begun.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Stops the background work: pre-rendering finishes its frames and writes its report, render threads
    /// finish their frame, streams close. Blocks until the background threads are done.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.closing.send_replace(true);
        self.store.stop();
        let threads = self
            .threads
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for thread in threads {
            let _ = thread.join();
        }
    }

    /// Pre-render progress over all sequences, `None` without `--prerender`.
    pub fn prerender_progress(&self) -> Option<prerender::Progress> {
        self.prerender_enabled
            .then(|| prerender::Progress::of(self.sequences.iter().map(|s| &*s.prerender)))
    }
}

/// Serves on `listener` until `shutdown` completes, then stops gracefully (in-flight requests finish, streams
/// close, pre-rendering writes its report). Must run inside an actix system (`actix_web::rt::System`).
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let data = aweb::Data::from(state.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .configure(routes::configure)
    })
    .workers(state.workers)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?
    .run();
    let handle = server.handle();
    let mut server = std::pin::pin!(server);
    let result = tokio::select! {
        result = &mut server => result,
        () = shutdown => {
            tracing::info!("shutting down");
            state.closing.send_replace(true);
            // `stop` sends its command at once; the server future itself carries it out, so await that.
            drop(handle.stop(true));
            server.await
        }
    };
    let background = state.clone();
    // Joining threads blocks: keep it off the async workers.
    let _ = actix_web::rt::task::spawn_blocking(move || background.shutdown()).await;
    result
}
