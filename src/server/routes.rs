//! The HTTP routes, thin: parse and check the request, ask the state, shape the answer. Documented in
//! `docs/api.md`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde_json::json;

use crate::encode::ImageFormat;
use crate::report::FrameStatus;

use super::AppState;
use super::cache::{EncodedFrame, FrameMeta, Origin};
use super::error::ApiError;
use super::sequence::{PrerenderedUse, SequenceState};
use super::stats::Prometheus;
use super::web::if_none_match;
use super::work::{Cancel, Failure, Priority, READ_AHEAD_FRAMES};

type State = web::Data<AppState>;

/// Frames are immutable under their ETag (it hashes every input and setting).
const FRAME_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
const EXPOSED_HEADERS: &str =
    "X-Frame-Index, X-Frame-Status, X-Frame-Reason, X-Frame-Source, X-Cache, X-Render-Ms, ETag";

pub fn configure(config: &mut web::ServiceConfig) {
    let get = |path: &str, route: actix_web::Route| {
        web::resource(path)
            .route(route)
            .default_service(web::to(method_not_allowed))
    };
    config
        .service(get("/healthz", web::get().to(healthz)))
        .service(get("/metrics", web::get().to(metrics)))
        .service(get("/api/stats", web::get().to(stats)))
        .service(get("/api/sequences", web::get().to(sequences)))
        .service(get("/api/sequences/{id}", web::get().to(sequence)))
        .service(get(
            "/api/sequences/{id}/frames/{index}",
            web::get().to(frame),
        ))
        .service(
            web::resource("/api/sequences/{id}/video")
                .route(web::get().to(video))
                .route(web::head().to(video))
                .default_service(web::to(method_not_allowed)),
        )
        .service(get(
            "/api/sequences/{id}/stream",
            web::get().to(super::stream::stream),
        ))
        .service(get("/{path:.*}", web::get().to(web_file)))
        .default_service(web::to(not_found));
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed {
        method: req.method().to_string(),
    })
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return method_not_allowed(req).await;
    }
    Err(ApiError::not_found(format!(
        "no route {}",
        clip(req.path())
    )))
}

/// At most 80 characters of user text in messages.
fn clip(text: &str) -> String {
    let mut clipped: String = text.chars().take(80).collect();
    if clipped.len() < text.len() {
        clipped.push('…');
    }
    clipped
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body("ok")
}

async fn web_file(req: HttpRequest, state: State) -> Result<HttpResponse, ApiError> {
    let path = req.match_info().get("path").unwrap_or_default().to_string();
    if path == "api" || path.starts_with("api/") {
        return Err(ApiError::not_found(format!("no route /{}", clip(&path))));
    }
    state.web.serve(&req, &path).await
}

fn find<'a>(state: &'a AppState, id: &str) -> Result<&'a Arc<SequenceState>, ApiError> {
    state
        .sequence(id)
        .ok_or_else(|| ApiError::not_found(format!("no sequence with id '{}'", clip(id))))
}

fn json_response(value: &serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .json(value)
}

async fn sequences(state: State) -> HttpResponse {
    let list: Vec<_> = state
        .sequences
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "name": s.name,
                "num_frames": s.num_frames,
                "fps": s.fps,
                "has_video": s.video.is_some(),
                "width": s.render.size.0,
                "height": s.render.size.1,
                "scanned": s.is_scanned(),
            })
        })
        .collect();
    json_response(&json!({ "sequences": list, "warnings": state.warnings }))
}

/// One sequence's metadata: everything the player needs to lay out its timeline.
pub fn sequence_json(state: &AppState, s: &SequenceState) -> serde_json::Value {
    let timeline = s.timeline();
    let video = s.video.as_ref().map(|v| {
        let timing = v.timing.as_ref().ok();
        json!({
            "container": v.container,
            "content_type": v.container.mime(),
            "frame_count": timing.map(|t| t.frame_count),
            "fps": timing.map(|t| t.fps),
            "fps_num": timing.map(|t| t.fps_num),
            "fps_den": timing.map(|t| t.fps_den),
            "start_secs": timing.map(|t| t.start_secs),
            "end_secs": timing.map(|t| t.end_secs),
            "constant_rate": timing.map(|t| t.constant_rate),
            "width": timing.map(|t| t.width),
            "height": timing.map(|t| t.height),
            "codec": timing.map(|t| t.codec.as_str()),
            "timing_error": v.timing.as_ref().err(),
        })
    });
    let model = &state.settings.model;
    let prerender = state.prerender_enabled.then(|| {
        json!({
            "done": s.prerender.done.load(Ordering::Relaxed),
            "total": s.prerender.total.load(Ordering::Relaxed),
            "running": s.prerender.running.load(Ordering::Relaxed),
        })
    });
    let (prerendered_used, prerendered_note) = match &s.prerendered {
        PrerenderedUse::Absent => (false, None),
        PrerenderedUse::Served { why } => (true, Some(why.clone())),
        PrerenderedUse::Ignored { why } => (false, Some(why.clone())),
    };
    let last_number = s
        .sequence
        .frames
        .last()
        .map_or(s.sequence.first_number, |f| f.number);
    json!({
        "id": s.id,
        "name": s.name,
        "fps": s.fps,
        "fps_source": s.fps_source,
        "num_frames": s.num_frames,
        "width": s.render.size.0,
        "height": s.render.size.1,
        "size_source": s.size_source,
        "video_url": s.video.as_ref().map(|_| format!("/api/sequences/{}/video", s.id)),
        "video": video,
        "frame_url_template": format!("/api/sequences/{}/frames/{{index}}", s.id),
        "stream_url": format!("/api/sequences/{}/stream", s.id),
        "first_frame_number": s.sequence.first_number,
        "last_frame_number": last_number,
        "npz_frames": s.sequence.len(),
        "layout": s.sequence.layout.to_string(),
        "model": {
            "kind": if model.is_stand_in() { "stand_in" } else { "smplx" },
            "label": model_label(model),
        },
        "renderer": {
            "backend": state.settings.renderer.backend(),
            "description": state.settings.renderer.description(),
        },
        "fallback": {
            "policy": s.fallback.policy.name(),
            "max_hold": s.fallback.max_hold,
        },
        "timeline": {
            "status": timeline.status,
            "reasons": timeline.reasons.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(v.as_str()))).collect::<serde_json::Map<_, _>>(),
            "scanned": timeline.scanned,
        },
        "counts": timeline.counts,
        "warnings": s.warnings,
        "prerender": prerender,
        "prerendered": { "used": prerendered_used, "note": prerendered_note },
    })
}

/// The model in a few words, without its path.
fn model_label(model: &crate::body::BodyModel) -> String {
    match &model.kind {
        crate::body::ModelKind::Smplx(info) => format!("SMPL-X {}", info.variant),
        crate::body::ModelKind::StandIn => "built-in stand-in body (not SMPL-X)".to_string(),
    }
}

async fn sequence(path: web::Path<String>, state: State) -> Result<HttpResponse, ApiError> {
    let s = find(&state, &path)?;
    Ok(json_response(&sequence_json(&state, s)))
}

/// A 0-based frame index: decimal digits only.
fn parse_index(text: &str, s: &SequenceState) -> Result<usize, ApiError> {
    if text.is_empty() || text.len() > 9 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(format!(
            "the frame index must be a whole number from 0 (a video frame index), not '{}'",
            clip(text)
        )));
    }
    let index: usize = text
        .parse()
        .map_err(|_| ApiError::bad_request(format!("bad frame index '{}'", clip(text))))?;
    if index >= s.num_frames {
        return Err(ApiError::not_found(format!(
            "frame {index} is outside sequence '{}' (frames 0–{})",
            s.id,
            s.num_frames.saturating_sub(1)
        )));
    }
    Ok(index)
}

#[derive(serde::Deserialize)]
struct FrameQuery {
    format: Option<String>,
}

/// `?format=png|webp`.
fn parse_format(query: &str) -> Result<ImageFormat, ApiError> {
    let query = web::Query::<FrameQuery>::from_query(query)
        .map_err(|e| ApiError::bad_request(format!("bad query string: {e}")))?;
    match query.format.as_deref() {
        None | Some("png") => Ok(ImageFormat::Png),
        Some("webp") => Ok(ImageFormat::Webp),
        Some(other) => Err(ApiError::bad_request(format!(
            "format must be png or webp, not '{}'",
            clip(other)
        ))),
    }
}

/// A frame's strong ETag: the sequence's identity (every input and setting), the index and the format.
pub fn frame_etag(s: &SequenceState, index: usize, format: ImageFormat) -> String {
    format!(
        "\"{}-{index}-{}\"",
        &s.identity[..s.identity.len().min(24)],
        format.extension()
    )
}

pub fn status_name(status: FrameStatus) -> &'static str {
    match status {
        FrameStatus::Ok => "ok",
        FrameStatus::Fallback => "fallback",
        FrameStatus::Placeholder => "placeholder",
        FrameStatus::Skipped => "skipped",
        FrameStatus::RenderError => "render_error",
    }
}

/// A header value from any text: printable ASCII kept, anything else replaced.
fn header_text(text: &str) -> HeaderValue {
    let clean: String = text
        .chars()
        .take(200)
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect();
    HeaderValue::from_str(&clean).unwrap_or_else(|_| HeaderValue::from_static("?"))
}

fn insert(response: &mut HttpResponse, name: &'static str, value: HeaderValue) {
    response
        .headers_mut()
        .insert(HeaderName::from_static(name), value);
}

fn meta_headers(response: &mut HttpResponse, index: usize, meta: &FrameMeta) {
    insert(response, "x-frame-index", HeaderValue::from(index));
    insert(
        response,
        "x-frame-status",
        HeaderValue::from_static(status_name(meta.status)),
    );
    if let Some(reason) = &meta.reason {
        insert(response, "x-frame-reason", header_text(reason));
    }
    if let Some(source) = meta.source {
        insert(response, "x-frame-source", HeaderValue::from(source));
    }
    insert(
        response,
        "access-control-expose-headers",
        HeaderValue::from_static(EXPOSED_HEADERS),
    );
}

/// The `X-Cache` word: served from the cache, rendered for this request, or read from `rendered/`.
pub fn cache_word(frame: &EncodedFrame, cached: bool) -> &'static str {
    match (cached, frame.origin) {
        (true, _) => "hit",
        (false, Origin::Prerendered) => "prerendered",
        (false, Origin::Rendered) => "miss",
    }
}

async fn frame(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let (id, index_text) = path.into_inner();
    let s = find(&state, &id)?;
    let index = parse_index(&index_text, s)?;
    let format = parse_format(req.query_string())?;
    state.stats.frame_requests.fetch_add(1, Ordering::Relaxed);
    let etag = frame_etag(s, index, format);
    if if_none_match(&req, &etag) {
        state.stats.not_modified.fetch_add(1, Ordering::Relaxed);
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, FRAME_CACHE_CONTROL))
            .finish());
    }
    let got = state
        .store
        .get(s, index, format, Priority::Live, None)
        .await;
    read_ahead(&state, s, index, format);
    match got {
        Ok(got) => {
            let frame = &got.frame;
            let mut response = if frame.meta.status == FrameStatus::Skipped {
                HttpResponse::NoContent().finish()
            } else {
                HttpResponse::Ok()
                    .content_type(match format {
                        ImageFormat::Png => "image/png",
                        ImageFormat::Webp => "image/webp",
                    })
                    .body(frame.bytes.clone())
            };
            meta_headers(&mut response, index, &frame.meta);
            insert(
                &mut response,
                "x-cache",
                HeaderValue::from_static(cache_word(frame, got.cached)),
            );
            insert(
                &mut response,
                "x-render-ms",
                header_text(&format!("{:.2}", frame.render_ms + frame.encode_ms)),
            );
            let headers = response.headers_mut();
            headers.insert(header::ETAG, header_text(&etag));
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static(FRAME_CACHE_CONTROL),
            );
            Ok(response)
        }
        Err(Failure::Render { meta, message }) => {
            let mut response = ApiError::RenderFailed { index, message }.error_response();
            meta_headers(&mut response, index, &meta);
            Ok(response)
        }
        Err(Failure::Busy) => Err(ApiError::Busy),
        Err(Failure::Cancelled | Failure::Stopped) => {
            if state.stopping() {
                Err(ApiError::Busy)
            } else {
                Err(ApiError::Internal(format!(
                    "frame {index} of {} was dropped",
                    s.id
                )))
            }
        }
    }
}

/// Queues the frames after `index` at read-ahead priority. A request outside the last read-ahead window is a
/// seek: read-ahead still queued for the old window is dropped.
fn read_ahead(state: &State, s: &Arc<SequenceState>, index: usize, format: ImageFormat) {
    let generation = {
        let Ok(mut cursor) = s.read_ahead.lock() else {
            return;
        };
        let seek = cursor
            .last_index
            .is_some_and(|last| index < last || index > last + READ_AHEAD_FRAMES);
        cursor.last_index = Some(index);
        if seek {
            s.read_ahead_generation.fetch_add(1, Ordering::AcqRel) + 1
        } else {
            s.read_ahead_generation.load(Ordering::Acquire)
        }
    };
    let end = (index + 1 + READ_AHEAD_FRAMES).min(s.num_frames);
    let (state, s) = (state.clone(), s.clone());
    actix_web::rt::spawn(async move {
        actix_web::rt::time::sleep(READ_AHEAD_DELAY).await;
        for next in index + 1..end {
            state.store.prefetch(
                &s,
                next,
                format,
                Cancel {
                    token: s.read_ahead_generation.clone(),
                    generation,
                },
            );
        }
    });
}

/// How long after a frame request its read-ahead is queued, so that the answer's bytes are sent and read first.
/// Measured on 2 cores: read-ahead queued at once started drawing while the answer was going out, and added
/// about 1 ms to it.
const READ_AHEAD_DELAY: std::time::Duration = std::time::Duration::from_millis(2);

async fn video(
    req: HttpRequest,
    path: web::Path<String>,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let s = find(&state, &path)?;
    let video = s
        .video
        .as_ref()
        .ok_or_else(|| ApiError::not_found(format!("sequence '{}' has no video", s.id)))?;
    let path = video.path.clone();
    let file = web::block(move || actix_files::NamedFile::open(path))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| {
            ApiError::not_found(format!("the video of '{}' cannot be opened: {e}", s.id))
        })?;
    let len = file.metadata().len();
    let file = file
        .set_content_type(
            video
                .container
                .mime()
                .parse()
                .unwrap_or(mime_guess::mime::APPLICATION_OCTET_STREAM),
        )
        .disable_content_disposition()
        .use_etag(true)
        .use_last_modified(true);
    let response = file.into_response(&req);
    if response.status() == StatusCode::RANGE_NOT_SATISFIABLE {
        return Err(ApiError::Range { len });
    }
    Ok(response)
}

async fn stats(state: State) -> HttpResponse {
    let cache = state.store.cache.stats();
    let renders = state.stats.renders();
    let stats = &state.stats;
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    let lookups = cache.hits + cache.misses;
    json_response(&json!({
        "cache": {
            "hits": cache.hits,
            "misses": cache.misses,
            "hit_rate": if lookups == 0 { 0.0 } else { cache.hits as f64 / lookups as f64 },
            "evictions": cache.evictions,
            "bytes": cache.bytes,
            "capacity_bytes": cache.capacity_bytes,
            "entries": cache.entries,
        },
        "renders": renders,
        "queue_depth": state.store.queue_depth(),
        "rendering": state.store.running(),
        "prerender": state.prerender_progress(),
        "prerendered_reads": load(&stats.prerendered_reads),
        "requests": {
            "frames": load(&stats.frame_requests),
            "not_modified": load(&stats.not_modified),
            "busy": load(&stats.busy),
            "cancelled": load(&stats.cancelled),
        },
        "websocket_connections": load(&stats.ws_connections),
        "websocket": {
            "connections": load(&stats.ws_connections),
            "connections_total": load(&stats.ws_connections_total),
            "frames_sent": load(&stats.ws_frames_sent),
            "bytes_sent": load(&stats.ws_bytes_sent),
        },
        "sequences": state.sequences.len(),
    }))
}

async fn metrics(state: State) -> HttpResponse {
    let cache = state.store.cache.stats();
    let renders = state.stats.renders();
    let stats = &state.stats;
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed) as f64;
    let mut text = Prometheus::default();
    text.metric(
        "meshreel_cache_hits_total",
        "counter",
        "Frame requests answered from the cache.",
        cache.hits as f64,
    )
    .metric(
        "meshreel_cache_misses_total",
        "counter",
        "Frame requests not in the cache.",
        cache.misses as f64,
    )
    .metric(
        "meshreel_cache_evictions_total",
        "counter",
        "Frames evicted from the cache.",
        cache.evictions as f64,
    )
    .metric(
        "meshreel_cache_bytes",
        "gauge",
        "Bytes held by the frame cache.",
        cache.bytes as f64,
    )
    .metric(
        "meshreel_cache_capacity_bytes",
        "gauge",
        "The frame cache's budget in bytes.",
        cache.capacity_bytes as f64,
    )
    .metric(
        "meshreel_cache_entries",
        "gauge",
        "Frames held by the cache.",
        cache.entries as f64,
    )
    .metric(
        "meshreel_renders_total",
        "counter",
        "Frames rendered.",
        renders.count as f64,
    )
    .metric(
        "meshreel_render_errors_total",
        "counter",
        "Frames that failed to render.",
        renders.errors as f64,
    )
    .metric(
        "meshreel_render_seconds_total",
        "counter",
        "Time spent reading, posing and drawing frames.",
        load(&stats.render_us) / 1e6,
    )
    .metric(
        "meshreel_encode_seconds_total",
        "counter",
        "Time spent encoding frames.",
        load(&stats.encode_us) / 1e6,
    )
    .metric(
        "meshreel_render_p50_seconds",
        "gauge",
        "Median render and encode time of recent frames.",
        renders.p50_ms / 1000.0,
    )
    .metric(
        "meshreel_render_p99_seconds",
        "gauge",
        "99th percentile render and encode time of recent frames.",
        renders.p99_ms / 1000.0,
    )
    .metric(
        "meshreel_prerendered_reads_total",
        "counter",
        "Frames read from pre-rendered folders.",
        load(&stats.prerendered_reads),
    )
    .metric(
        "meshreel_queue_depth",
        "gauge",
        "Frames waiting for a render thread.",
        state.store.queue_depth() as f64,
    )
    .metric(
        "meshreel_rendering",
        "gauge",
        "Frames being rendered now.",
        state.store.running() as f64,
    )
    .metric(
        "meshreel_frame_requests_total",
        "counter",
        "HTTP frame requests.",
        load(&stats.frame_requests),
    )
    .metric(
        "meshreel_not_modified_total",
        "counter",
        "Frame requests answered 304 Not Modified.",
        load(&stats.not_modified),
    )
    .metric(
        "meshreel_busy_total",
        "counter",
        "Frames refused because the queue was full.",
        load(&stats.busy),
    )
    .metric(
        "meshreel_cancelled_total",
        "counter",
        "Queued frames dropped after a seek.",
        load(&stats.cancelled),
    )
    .metric(
        "meshreel_websocket_connections",
        "gauge",
        "Open stream connections.",
        load(&stats.ws_connections),
    )
    .metric(
        "meshreel_websocket_frames_sent_total",
        "counter",
        "Frames pushed over streams.",
        load(&stats.ws_frames_sent),
    )
    .metric(
        "meshreel_websocket_bytes_sent_total",
        "counter",
        "Bytes pushed over streams.",
        load(&stats.ws_bytes_sent),
    );
    if let Some(progress) = state.prerender_progress() {
        text.metric(
            "meshreel_prerender_done_frames",
            "gauge",
            "Frames pre-rendered so far.",
            progress.done as f64,
        )
        .metric(
            "meshreel_prerender_total_frames",
            "gauge",
            "Frames to pre-render.",
            progress.total as f64,
        );
    }
    let frames: Vec<(String, f64)> = state
        .sequences
        .iter()
        .map(|s| (s.id.clone(), s.num_frames as f64))
        .collect();
    text.labelled(
        "meshreel_sequence_frames",
        "gauge",
        "Frames per served sequence.",
        "sequence",
        &frames,
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(text.finish())
}
