//! The WebSocket stream of one player: it reports its playhead, the server pushes encoded frames ahead of it.
//!
//! - Window: frames from the playhead onwards (backwards when the rate is negative), one second of them at
//!   the playing rate, at least [`MIN_WINDOW`]; each frame is sent once per connection until the next seek.
//! - Backpressure: at most [`MAX_IN_FLIGHT`] frames are sent-but-unacknowledged or being fetched; a client that
//!   stops acknowledging receives nothing more, and costs no memory beyond those few frames.
//! - Seeks (a playhead outside the current window, or a change of direction) drop the old window's queued work:
//!   its jobs carry this connection's cancellation token.
//!
//! - Nothing is pushed before the first playhead message. Frames are fetched in window order but sent as they
//!   are ready, so neighbours may arrive out of order: the header names each frame.
//!
//! Binary messages: a 4-byte little-endian header length, a UTF-8 JSON header, then the image bytes.

use std::collections::{HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use actix_ws::{Message, Session};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::json;

use crate::encode::ImageFormat;

use super::AppState;
use super::error::ApiError;
use super::routes::{cache_word, frame_etag, status_name};
use super::sequence::SequenceState;
use super::work::{Cancel, Failure, Got, Priority};

/// Fewest frames pushed ahead of the playhead.
pub const MIN_WINDOW: usize = 8;
/// Most frames pushed ahead (8 s at 30 fps), whatever the rate.
pub const MAX_WINDOW: usize = 240;
/// Seconds of playback pushed ahead while playing.
pub const WINDOW_SECS: f64 = 1.0;
/// Frames sent but not acknowledged, plus frames being fetched, per connection.
pub const MAX_IN_FLIGHT: usize = 6;
/// Largest text message accepted from a client.
const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// `GET /api/sequences/{id}/stream`: upgrades to a WebSocket.
pub async fn stream(
    req: HttpRequest,
    body: web::Payload,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let sequence = state.sequence(&path).cloned().ok_or_else(|| {
        ApiError::not_found(format!(
            "no sequence with id '{}'",
            path.chars().take(80).collect::<String>()
        ))
    })?;
    let format = match web::Query::<FormatQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(format!("bad query string: {e}")))?
        .format
        .as_deref()
    {
        None | Some("png") => ImageFormat::Png,
        Some("webp") => ImageFormat::Webp,
        Some(_) => return Err(ApiError::bad_request("format must be png or webp")),
    };
    let (response, session, messages) = actix_ws::handle(&req, body)
        .map_err(|e| ApiError::bad_request(format!("not a WebSocket upgrade: {e}")))?;
    let messages = messages.max_frame_size(MAX_MESSAGE_BYTES);
    let state = state.into_inner();
    actix_web::rt::spawn(async move {
        let stats = state.stats.clone();
        stats.ws_connections.fetch_add(1, Ordering::Relaxed);
        stats.ws_connections_total.fetch_add(1, Ordering::Relaxed);
        let mut connection = Connection::new(state, sequence, session, format);
        connection.run(messages).await;
        stats.ws_connections.fetch_sub(1, Ordering::Relaxed);
    });
    Ok(response)
}

#[derive(serde::Deserialize)]
struct FormatQuery {
    format: Option<String>,
}

/// What a client says.
#[derive(serde::Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientMessage {
    Playhead {
        frame: i64,
        #[serde(default = "default_rate")]
        rate: f64,
        #[serde(default)]
        playing: bool,
    },
    Ack {
        frame: i64,
    },
    Want {
        frame: i64,
    },
}

fn default_rate() -> f64 {
    1.0
}

type Fetch = Pin<Box<dyn std::future::Future<Output = Fetched>>>;

/// A finished fetch: which frame, for which generation, asked by `want`.
struct Fetched {
    index: usize,
    generation: u64,
    wanted: bool,
    outcome: Result<Got, Failure>,
}

/// Why the connection ends.
struct Closed;

struct Connection {
    state: Arc<AppState>,
    sequence: Arc<SequenceState>,
    session: Session,
    format: ImageFormat,
    playhead: usize,
    /// Nothing is pushed before the first playhead message.
    started: bool,
    rate: f64,
    playing: bool,
    /// Bumped on every seek; queued work of older generations is dropped.
    token: Arc<AtomicU64>,
    generation: u64,
    sent: HashSet<usize>,
    unacked: HashSet<usize>,
    fetching: HashSet<usize>,
    wants: VecDeque<usize>,
}

impl Connection {
    fn new(
        state: Arc<AppState>,
        sequence: Arc<SequenceState>,
        session: Session,
        format: ImageFormat,
    ) -> Connection {
        Connection {
            state,
            sequence,
            session,
            format,
            playhead: 0,
            started: false,
            rate: 1.0,
            playing: false,
            token: Arc::new(AtomicU64::new(0)),
            generation: 0,
            sent: HashSet::new(),
            unacked: HashSet::new(),
            fetching: HashSet::new(),
            wants: VecDeque::new(),
        }
    }

    async fn run(&mut self, mut messages: actix_ws::MessageStream) {
        let mut fetches: FuturesUnordered<Fetch> = FuturesUnordered::new();
        let mut closing = self.state.closing.subscribe();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last_progress = None;
        let hello = json!({
            "type": "hello",
            "sequence": self.sequence.id,
            "num_frames": self.sequence.num_frames,
            "fps": self.sequence.fps,
            "format": self.format.extension(),
            "min_window": MIN_WINDOW,
            "window_secs": WINDOW_SECS,
            "max_in_flight": MAX_IN_FLIGHT,
        });
        let mut open = self.session.text(hello.to_string()).await.is_ok() && !*closing.borrow();
        while open {
            self.fill(&mut fetches);
            open = tokio::select! {
                message = messages.recv() => match message {
                    Some(Ok(Message::Text(text))) => self.on_text(&text, &mut fetches).await.is_ok(),
                    Some(Ok(Message::Binary(_))) => self
                        .error(None, "bad_request", "binary messages are not understood: send JSON text")
                        .await
                        .is_ok(),
                    Some(Ok(Message::Ping(bytes))) => self.session.pong(&bytes).await.is_ok(),
                    Some(Ok(Message::Close(_))) | None => false,
                    Some(Ok(_)) => true,
                    Some(Err(error)) => {
                        tracing::debug!(%error, "stream protocol error");
                        false
                    }
                },
                Some(fetched) = fetches.next(), if !fetches.is_empty() => self.deliver(fetched).await.is_ok(),
                _ = tick.tick() => {
                    let progress = self.state.prerender_progress();
                    if progress.is_some() && progress != last_progress {
                        last_progress = progress;
                        let message = json!({"type": "progress", "prerender": progress});
                        self.session.text(message.to_string()).await.is_ok()
                    } else {
                        true
                    }
                }
                _ = closing.changed() => false,
            };
        }
        // Drop whatever is still queued for this connection.
        self.token.fetch_add(1, Ordering::AcqRel);
        let _ = self.session.clone().close(None).await;
    }

    /// Frames per window at the current rate.
    fn window(&self) -> usize {
        if self.playing {
            let ahead = (self.sequence.fps * self.rate.abs() * WINDOW_SECS).ceil();
            (ahead as usize).clamp(MIN_WINDOW, MAX_WINDOW)
        } else {
            MIN_WINDOW
        }
    }

    fn backwards(&self) -> bool {
        self.rate < 0.0
    }

    /// The frame `step` frames ahead of the playhead in the playing direction.
    fn ahead(&self, step: usize) -> Option<usize> {
        let index = if self.backwards() {
            self.playhead.checked_sub(step)?
        } else {
            self.playhead.checked_add(step)?
        };
        (index < self.sequence.num_frames).then_some(index)
    }

    fn in_window(&self, index: usize) -> bool {
        let window = self.window().max(MIN_WINDOW);
        if self.backwards() {
            index <= self.playhead && self.playhead - index < window
        } else {
            index >= self.playhead && index - self.playhead < window
        }
    }

    /// Starts fetches while the connection has room: wanted frames first, then the window in order.
    fn fill(&mut self, fetches: &mut FuturesUnordered<Fetch>) {
        while self.unacked.len() + fetches.len() < MAX_IN_FLIGHT {
            let (index, wanted) = if let Some(index) = self.wants.pop_front() {
                (index, true)
            } else if self.started {
                let window = self.window();
                let next = (0..window)
                    .map_while(|step| self.ahead(step))
                    .find(|i| !self.sent.contains(i) && !self.fetching.contains(i));
                match next {
                    Some(index) => (index, false),
                    None => return,
                }
            } else {
                return;
            };
            self.fetching.insert(index);
            let (priority, cancel) = if wanted {
                (Priority::Live, None)
            } else {
                (
                    Priority::Stream,
                    Some(Cancel {
                        token: self.token.clone(),
                        generation: self.generation,
                    }),
                )
            };
            let state = self.state.clone();
            let sequence = self.sequence.clone();
            let (format, generation) = (self.format, self.generation);
            fetches.push(Box::pin(async move {
                let outcome = state
                    .store
                    .get(&sequence, index, format, priority, cancel)
                    .await;
                Fetched {
                    index,
                    generation,
                    wanted,
                    outcome,
                }
            }));
        }
    }

    async fn on_text(
        &mut self,
        text: &str,
        fetches: &mut FuturesUnordered<Fetch>,
    ) -> Result<(), Closed> {
        let message: ClientMessage = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(error) => {
                return self
                    .error(
                        None,
                        "bad_request",
                        &format!("not a message this server understands: {error}"),
                    )
                    .await;
            }
        };
        let num_frames = self.sequence.num_frames;
        let check = |frame: i64| -> Result<usize, String> {
            usize::try_from(frame)
                .ok()
                .filter(|f| *f < num_frames)
                .ok_or_else(|| {
                    format!(
                        "frame {frame} is outside the sequence (0–{})",
                        num_frames.saturating_sub(1)
                    )
                })
        };
        match message {
            ClientMessage::Playhead {
                frame,
                rate,
                playing,
            } => {
                let frame = match check(frame) {
                    Ok(frame) => frame,
                    Err(message) => return self.error(None, "bad_request", &message).await,
                };
                let rate = if rate.is_finite() { rate } else { 1.0 };
                let turned = (rate < 0.0) != self.backwards();
                let jumped = !self.started || (!self.in_window(frame) && frame != self.playhead);
                self.started = true;
                self.rate = rate;
                self.playing = playing;
                if turned || jumped {
                    // A seek: everything queued for the old window is stale.
                    self.generation += 1;
                    self.token.store(self.generation, Ordering::Release);
                    self.sent.clear();
                    self.fetching.clear();
                    *fetches = FuturesUnordered::new();
                    self.playhead = frame;
                } else {
                    self.playhead = frame;
                    let (playhead, backwards) = (self.playhead, self.backwards());
                    self.sent.retain(|i| {
                        if backwards {
                            *i <= playhead
                        } else {
                            *i >= playhead
                        }
                    });
                }
                Ok(())
            }
            ClientMessage::Ack { frame } => {
                if let Ok(frame) = usize::try_from(frame) {
                    self.unacked.remove(&frame);
                }
                Ok(())
            }
            ClientMessage::Want { frame } => match check(frame) {
                Ok(frame) => {
                    if !self.wants.contains(&frame) && self.wants.len() < MAX_WINDOW {
                        self.wants.push_front(frame);
                    }
                    Ok(())
                }
                Err(message) => self.error(None, "bad_request", &message).await,
            },
        }
    }

    async fn deliver(&mut self, fetched: Fetched) -> Result<(), Closed> {
        let Fetched {
            index,
            generation,
            wanted,
            outcome,
        } = fetched;
        self.fetching.remove(&index);
        // Pushed frames of an older window, or ones the playhead has passed, are no use any more.
        if !wanted && (generation != self.generation || !self.in_window(index)) {
            return Ok(());
        }
        match outcome {
            Ok(got) => {
                let frame = &got.frame;
                let header = json!({
                    "frame": index,
                    "status": status_name(frame.meta.status),
                    "reason": frame.meta.reason,
                    "source": frame.meta.source,
                    "persons": frame.meta.persons,
                    "cache": cache_word(frame, got.cached),
                    "render_ms": (frame.render_ms + frame.encode_ms),
                    "format": self.format.extension(),
                    "etag": frame_etag(&self.sequence, index, self.format),
                })
                .to_string();
                let message = frame_message(header.as_bytes(), &frame.bytes);
                let bytes = message.len() as u64;
                self.session.binary(message).await.map_err(|_| Closed)?;
                self.sent.insert(index);
                self.unacked.insert(index);
                let stats = &self.state.stats;
                stats.ws_frames_sent.fetch_add(1, Ordering::Relaxed);
                stats.ws_bytes_sent.fetch_add(bytes, Ordering::Relaxed);
                Ok(())
            }
            Err(Failure::Render { message, .. }) => {
                self.sent.insert(index);
                self.error(Some(index), "render_error", &message).await
            }
            Err(Failure::Busy) => {
                // Not retried by itself: the client may `want` it.
                self.sent.insert(index);
                self.error(Some(index), "busy", "the server is busy: frame skipped")
                    .await
            }
            Err(Failure::Cancelled) => Ok(()),
            Err(Failure::Stopped) => Err(Closed),
        }
    }

    async fn error(
        &mut self,
        frame: Option<usize>,
        code: &str,
        message: &str,
    ) -> Result<(), Closed> {
        let text = json!({"type": "error", "frame": frame, "error": code, "message": message});
        self.session
            .text(text.to_string())
            .await
            .map_err(|_| Closed)
    }
}

/// One binary message: header length (u32, little-endian), the JSON header, the image.
pub fn frame_message(header: &[u8], image: &[u8]) -> Bytes {
    let mut message = Vec::with_capacity(4 + header.len() + image.len());
    message.extend_from_slice(&(header.len() as u32).to_le_bytes());
    message.extend_from_slice(header);
    message.extend_from_slice(image);
    Bytes::from(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_message_starts_with_its_header_length() {
        let message = frame_message(b"{\"frame\":3}", b"PNG");
        assert_eq!(&message[..4], &11u32.to_le_bytes());
        assert_eq!(&message[4..15], b"{\"frame\":3}");
        assert_eq!(&message[15..], b"PNG");
    }
}
