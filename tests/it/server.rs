//! `meshreel serve` in-process on port 0: every endpoint, frame headers and ETags, batch-identical bytes, the
//! pre-rendered folder, Range requests, the cache's byte bound, one render for concurrent requests, the
//! WebSocket protocol (playhead, seek, backpressure), and bad requests of every kind (JSON 4xx, never a 5xx,
//! never a file outside the served folders). Rendering uses the CPU backend, so no EGL is needed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use meshreel::frame_code::{self, CodeLayout};
use meshreel::pipeline::{FallbackPolicy, FallbackSettings, MeshSettings};
use meshreel::render::camera::CameraOptions;
use meshreel::render::{OSX_LOOK, RenderHandle, RendererChoice};
use meshreel::server::library::find_sequences;
use meshreel::server::video::read_mp4_timing;
use meshreel::server::{AppState, ServeError, ServerConfig};
use meshreel::synth::{Rng, SynthMp4};
use serde_json::Value;

use crate::support::{faulty_sequence, framed_person, temp_dir, write_osx_frame};

const SIZE: (u32, u32) = (160, 120);

/// A plain sequence of `count` valid frames.
fn valid_sequence(dir: &Path, count: u32) -> PathBuf {
    let frames = dir.join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    for n in 1..=count {
        write_osx_frame(&frames, n, &[framed_person(n)]);
    }
    dir.to_path_buf()
}

fn config(paths: Vec<PathBuf>) -> ServerConfig {
    ServerConfig {
        paths,
        model: None,
        mesh: MeshSettings::default(),
        look: OSX_LOOK,
        camera: CameraOptions::default(),
        fallback: FallbackSettings {
            policy: FallbackPolicy::LastValid,
            max_hold: 1,
        },
        size: Some(SIZE),
        fps: None,
        first_frame_number: None,
        renderer: RenderHandle::spawn(RendererChoice::Cpu, None, 1).unwrap(),
        cache_bytes: 64 << 20,
        web_dir: None,
        prerender: false,
        stamp_frame_code: false,
        workers: 2,
    }
}

/// A server running in its own thread with its own actix system, stopped when dropped.
pub struct TestApp {
    pub address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

/// Starts the server on 127.0.0.1:0.
pub fn spawn_app(config: ServerConfig) -> TestApp {
    let state = AppState::start(config).expect("start the server");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(meshreel::server::run(listener, state, async {
            let _ = stopped.await;
        }))
    });
    TestApp {
        address,
        stop: Some(stop),
        thread: Some(thread),
    }
}

impl TestApp {
    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[])
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        http(self.address, method, path, headers)
    }

    pub fn json(&self, path: &str) -> Value {
        let reply = self.get(path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        serde_json::from_slice(&reply.body).unwrap()
    }

    fn websocket(&self, path: &str) -> Ws {
        let (socket, _) =
            tungstenite::connect(format!("ws://{}{path}", self.address)).expect("connect");
        if let tungstenite::stream::MaybeTlsStream::Plain(stream) = socket.get_ref() {
            stream
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
        }
        Ws { socket }
    }

    /// Stops the server and waits for it.
    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.shut();
        }
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn error_json(&self) -> Value {
        assert_eq!(self.header("content-type"), Some("application/json"));
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// One HTTP/1.1 request on its own connection, the path sent exactly as given (no normalisation).
pub fn http(address: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {line:?}"));
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let mut body = Vec::new();
    if method != "HEAD" && status != 304 && status != 204 {
        match headers
            .get("content-length")
            .and_then(|l| l.parse::<usize>().ok())
        {
            Some(len) => {
                body.resize(len, 0);
                reader.read_exact(&mut body).unwrap();
            }
            None => {
                reader.read_to_end(&mut body).unwrap();
            }
        }
    }
    Reply {
        status,
        headers,
        body,
    }
}

/// Renders the sequence with the batch (`meshreel render`) at the test settings.
fn batch_render(sequence: &Path, out: &Path, extra: &[&str]) {
    let size = format!("{}x{}", SIZE.0, SIZE.1);
    let output = Command::new(env!("CARGO_BIN_EXE_meshreel"))
        .args([
            "render",
            sequence.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(["--size", &size, "--renderer", "cpu", "--max-hold", "1"])
        .args(extra)
        .env_remove("MESHREEL_MODEL")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_endpoint_answers() {
    let dir = temp_dir();
    let sequence = faulty_sequence(&dir.path().join("clip one"));
    SynthMp4::constant(12, 30_000, 1001, 320, 240)
        .write(&sequence.join("video.mp4"))
        .unwrap();
    let app = spawn_app(config(vec![sequence]));

    let health = app.get("/healthz");
    assert_eq!((health.status, health.text().as_str()), (200, "ok"));

    let list = app.json("/api/sequences");
    let first = &list["sequences"][0];
    assert_eq!(first["id"], "clip-one");
    assert_eq!(first["name"], "clip one");
    assert_eq!(first["num_frames"], 12);
    assert_eq!(first["has_video"], true);
    assert!((first["fps"].as_f64().unwrap() - 29.97).abs() < 0.01);

    let detail = app.json("/api/sequences/clip-one");
    for key in [
        "id",
        "name",
        "fps",
        "num_frames",
        "width",
        "height",
        "video_url",
        "video",
        "first_frame_number",
        "model",
        "renderer",
        "timeline",
        "counts",
        "warnings",
        "prerender",
    ] {
        assert!(detail.get(key).is_some(), "metadata lacks {key}: {detail}");
    }
    assert_eq!(detail["video_url"], "/api/sequences/clip-one/video");
    assert_eq!(detail["width"], SIZE.0);
    assert_eq!(detail["first_frame_number"], 1);
    assert_eq!(detail["model"]["kind"], "stand_in");
    assert_eq!(detail["renderer"]["backend"], "cpu");
    assert_eq!(detail["video"]["frame_count"], 12);
    assert_eq!(detail["video"]["fps_num"], 30_000);
    assert_eq!(detail["video"]["fps_den"], 1001);
    assert_eq!(detail["video"]["width"], 320);
    assert_eq!(detail["video"]["codec"], "h264");
    assert_eq!(detail["timeline"]["scanned"], true);
    assert_eq!(detail["timeline"]["status"], "oofppooofppo");
    assert_eq!(detail["timeline"]["reasons"]["2"], "no_person");
    assert_eq!(detail["timeline"]["reasons"]["3"], "missing_file");
    assert_eq!(detail["timeline"]["reasons"]["4"], "corrupt_npz");
    assert_eq!(detail["counts"]["ok"], 6);
    assert_eq!(detail["counts"]["fallback"], 2);
    assert_eq!(detail["counts"]["placeholder"], 4);
    assert_eq!(detail["prerender"], Value::Null);

    let frame = app.get("/api/sequences/clip-one/frames/0");
    assert_eq!(frame.status, 200);
    assert_eq!(frame.header("content-type"), Some("image/png"));
    assert!(frame.body.starts_with(b"\x89PNG"));

    let video = app.get("/api/sequences/clip-one/video");
    assert_eq!(video.status, 200);
    assert_eq!(video.header("content-type"), Some("video/mp4"));
    assert_eq!(video.header("accept-ranges"), Some("bytes"));

    let stats = app.json("/api/stats");
    for key in ["hits", "misses", "bytes", "capacity_bytes", "entries"] {
        assert!(stats["cache"].get(key).is_some(), "stats lack cache.{key}");
    }
    for key in ["count", "p50_ms", "mean_render_ms", "mean_encode_ms"] {
        assert!(
            stats["renders"].get(key).is_some(),
            "stats lack renders.{key}"
        );
    }
    assert!(stats.get("queue_depth").is_some());
    assert!(stats.get("websocket_connections").is_some());
    assert!(stats.get("prerender").is_some());

    let metrics = app.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text();
    for name in [
        "meshreel_cache_hits_total",
        "meshreel_cache_misses_total",
        "meshreel_cache_bytes",
        "meshreel_renders_total",
        "meshreel_queue_depth",
        "meshreel_websocket_connections",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} missing:\n{text}"
        );
    }

    let page = app.get("/");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let again = app.request(
        "GET",
        "/",
        &[("If-None-Match", page.header("etag").unwrap())],
    );
    assert_eq!(again.status, 304);
    let index = app.get("/index.html");
    assert_eq!(index.body, page.body);
}

#[test]
fn frames_carry_their_status_reason_source_and_a_strong_etag() {
    let dir = temp_dir();
    let sequence = faulty_sequence(dir.path());
    let app = spawn_app(config(vec![sequence]));
    let id = app.json("/api/sequences")["sequences"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let frame = |index: usize| app.get(&format!("/api/sequences/{id}/frames/{index}"));

    let ok = frame(1);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("x-frame-index"), Some("1"));
    assert_eq!(ok.header("x-frame-status"), Some("ok"));
    assert_eq!(ok.header("x-frame-reason"), None);
    assert_eq!(ok.header("x-cache"), Some("miss"));
    assert_eq!(
        ok.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert!(ok.header("x-render-ms").unwrap().parse::<f64>().unwrap() >= 0.0);
    let etag = ok.header("etag").unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"));

    let again = frame(1);
    assert_eq!(again.header("x-cache"), Some("hit"));
    assert_eq!(again.body, ok.body);
    assert_eq!(again.header("etag"), Some(etag.as_str()));

    let fallback = frame(2);
    assert_eq!(fallback.header("x-frame-status"), Some("fallback"));
    assert_eq!(fallback.header("x-frame-reason"), Some("no_person"));
    assert_eq!(fallback.header("x-frame-source"), Some("1"));
    assert_eq!(fallback.body, ok.body, "a fallback shows its source's mesh");

    let placeholder = frame(10);
    assert_eq!(placeholder.status, 200);
    assert_eq!(placeholder.header("x-frame-status"), Some("placeholder"));
    assert_eq!(placeholder.header("x-frame-reason"), Some("no_person"));
    assert_eq!(placeholder.header("x-frame-source"), None);

    let corrupt = frame(4);
    assert_eq!(corrupt.header("x-frame-reason"), Some("corrupt_npz"));

    let not_modified = app.request(
        "GET",
        &format!("/api/sequences/{id}/frames/1"),
        &[("If-None-Match", &etag)],
    );
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag"), Some(etag.as_str()));

    let webp = app.get(&format!("/api/sequences/{id}/frames/1?format=webp"));
    assert_eq!(webp.status, 200);
    assert_eq!(webp.header("content-type"), Some("image/webp"));
    assert_eq!(&webp.body[..4], b"RIFF");
    assert_ne!(
        webp.header("etag"),
        Some(etag.as_str()),
        "the format is part of the ETag"
    );
}

#[test]
fn skipped_frames_answer_no_content_with_their_status() {
    let dir = temp_dir();
    let sequence = faulty_sequence(dir.path());
    let mut config = config(vec![sequence]);
    config.fallback.policy = FallbackPolicy::Skip;
    let app = spawn_app(config);
    let id = app.json("/api/sequences")["sequences"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let skipped = app.get(&format!("/api/sequences/{id}/frames/2"));
    assert_eq!(skipped.status, 204);
    assert_eq!(skipped.header("x-frame-status"), Some("skipped"));
    assert_eq!(skipped.header("x-frame-reason"), Some("no_person"));
    let detail = app.json(&format!("/api/sequences/{id}"));
    assert_eq!(detail["timeline"]["status"], "oosssooossso");
}

#[test]
fn served_frames_have_exactly_the_batch_bytes() {
    let dir = temp_dir();
    let sequence = faulty_sequence(&dir.path().join("seq"));
    let out = dir.path().join("batch");
    batch_render(&sequence, &out, &[]);
    let app = spawn_app(config(vec![sequence]));
    for index in 0..12u32 {
        let served = app.get(&format!("/api/sequences/seq/frames/{index}"));
        assert_eq!(served.status, 200, "frame {index}");
        let batch = std::fs::read(out.join(format!("frame_{:04}.png", index + 1))).unwrap();
        assert!(
            served.body == batch,
            "frame {index} differs from the batch's"
        );
    }
}

#[test]
fn a_matching_prerendered_folder_is_served_and_another_is_ignored() {
    let dir = temp_dir();
    let sequence = faulty_sequence(&dir.path().join("seq"));
    batch_render(&sequence, &sequence.join("rendered"), &[]);
    let app = spawn_app(config(vec![sequence.clone()]));
    let detail = app.json("/api/sequences/seq");
    assert_eq!(detail["prerendered"]["used"], true, "{detail}");
    let frame = app.get("/api/sequences/seq/frames/6");
    assert_eq!(frame.header("x-cache"), Some("prerendered"));
    assert_eq!(frame.header("x-frame-status"), Some("ok"));
    assert_eq!(
        frame.body,
        std::fs::read(sequence.join("rendered/frame_0007.png")).unwrap()
    );
    let fallback = app.get("/api/sequences/seq/frames/2");
    assert_eq!(fallback.header("x-frame-status"), Some("fallback"));
    assert_eq!(fallback.header("x-frame-source"), Some("1"));
    assert_eq!(
        app.get("/api/sequences/seq/frames/6").header("x-cache"),
        Some("hit")
    );
    app.stop();

    // Another size: the folder is ignored, and the metadata says why.
    let mut other = config(vec![sequence]);
    other.size = Some((200, 100));
    let app = spawn_app(other);
    let detail = app.json("/api/sequences/seq");
    assert_eq!(detail["prerendered"]["used"], false);
    let note = detail["prerendered"]["note"].as_str().unwrap();
    assert!(note.contains("size 160x120"), "{note}");
    assert!(
        detail["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("rendered/")),
        "{detail}"
    );
    let frame = app.get("/api/sequences/seq/frames/6");
    assert_eq!(frame.header("x-cache"), Some("miss"));
}

/// Decodes a served PNG frame to its size and RGBA pixels.
fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgba);
    pixels.truncate(info.buffer_size());
    (info.width, info.height, pixels)
}

#[test]
fn stamped_frames_carry_their_own_frame_code_one_strip_below_the_video_code() {
    let dir = temp_dir();
    let sequence = faulty_sequence(&dir.path().join("seq"));
    // A folder that matches the settings: served without the stamp, ignored with it (its images carry none).
    batch_render(&sequence, &sequence.join("rendered"), &[]);
    let plain = spawn_app(config(vec![sequence.clone()]));
    let mut stamping = config(vec![sequence]);
    stamping.stamp_frame_code = true;
    let stamped = spawn_app(stamping);
    assert_eq!(
        plain.json("/api/sequences/seq")["prerendered"]["used"],
        true
    );
    let detail = stamped.json("/api/sequences/seq");
    assert_eq!(detail["prerendered"]["used"], false, "{detail}");
    let note = detail["prerendered"]["note"].as_str().unwrap();
    assert!(note.contains("--stamp-frame-code"), "{note}");

    let strip = CodeLayout::OVERLAY.strip_rows(SIZE.1);
    let row_bytes = SIZE.0 as usize * 4;
    for (index, status) in [(0u32, "ok"), (2, "fallback"), (10, "placeholder")] {
        let path = format!("/api/sequences/seq/frames/{index}");
        let (without, with) = (plain.get(&path), stamped.get(&path));
        assert_eq!(with.status, 200, "frame {index}: {}", with.text());
        assert_eq!(with.header("x-frame-status"), Some(status));
        assert_eq!(without.header("x-frame-status"), Some(status));
        assert_eq!(
            with.header("x-cache"),
            Some("miss"),
            "frame {index} was rendered"
        );
        assert_ne!(
            with.header("etag"),
            without.header("etag"),
            "frame {index}: the stamp is part of the ETag"
        );
        let (width, height, stamped_pixels) = decode_png(&with.body);
        assert_eq!((width, height), SIZE);
        let (_, _, plain_pixels) = decode_png(&without.body);
        let read = |pixels: &[u8], layout| frame_code::read(pixels, width, height, layout);
        assert_eq!(
            read(&stamped_pixels, &CodeLayout::OVERLAY),
            Some(frame_code::value(index)),
            "frame {index}"
        );
        assert_eq!(
            read(&stamped_pixels, &CodeLayout::VIDEO),
            read(&plain_pixels, &CodeLayout::VIDEO),
            "frame {index}: the stamp leaves the video code's place alone"
        );
        assert_eq!(
            read(&plain_pixels, &CodeLayout::OVERLAY),
            None,
            "frame {index}"
        );
        // Outside the stamp's strip, rows 0-99 of the video's code included, the image is the plain one.
        let outside = |pixels: &[u8]| {
            let (above, rest) = pixels.split_at(strip.start as usize * row_bytes);
            let below = &rest[strip.len() * row_bytes..];
            (above.to_vec(), below.to_vec())
        };
        assert!(
            outside(&stamped_pixels) == outside(&plain_pixels),
            "frame {index} differs outside the stamp's rows {strip:?}"
        );
    }

    // The stream sends the same stamped bytes.
    let mut ws = stamped.websocket("/api/sequences/seq/stream");
    ws.text();
    ws.send(serde_json::json!({"type": "want", "frame": 10}));
    let wanted = ws.expect_frames(1);
    assert_eq!(wanted[0].header["status"], "placeholder");
    let (width, height, pixels) = decode_png(&wanted[0].image);
    assert_eq!(
        frame_code::read(&pixels, width, height, &CodeLayout::OVERLAY),
        Some(10)
    );
    assert_eq!(
        wanted[0].image,
        stamped.get("/api/sequences/seq/frames/10").body
    );
}

#[test]
fn stamping_frame_codes_cannot_be_combined_with_prerendering() {
    let dir = temp_dir();
    let sequence = valid_sequence(&dir.path().join("seq"), 2);
    let mut both = config(vec![sequence]);
    both.stamp_frame_code = true;
    both.prerender = true;
    let error = AppState::start(both)
        .err()
        .expect("the server refuses to start");
    assert!(matches!(error, ServeError::StampWithPrerender), "{error}");
}

#[test]
fn the_video_answers_range_requests() {
    let dir = temp_dir();
    let sequence = faulty_sequence(dir.path());
    let video = SynthMp4::constant(12, 15_360, 512, 320, 240).to_bytes();
    std::fs::write(sequence.join("video.mp4"), &video).unwrap();
    let app = spawn_app(config(vec![sequence]));
    let id = app.json("/api/sequences")["sequences"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/sequences/{id}/video");
    let whole = app.get(&path);
    assert_eq!(whole.body, video);

    let part = app.request("GET", &path, &[("Range", "bytes=100-199")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &video[100..200]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 100-199/{}", video.len()).as_str())
    );
    let tail = app.request("GET", &path, &[("Range", "bytes=-10")]);
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body, &video[video.len() - 10..]);

    let outside = app.request("GET", &path, &[("Range", "bytes=99999999-")]);
    assert_eq!(outside.status, 416);
    assert_eq!(outside.error_json()["error"], "range");

    let head = app.request("HEAD", &path, &[]);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(video.len().to_string().as_str())
    );
}

#[test]
fn a_video_longer_than_the_numbering_is_reported_and_its_extra_frames_are_missing() {
    let dir = temp_dir();
    let sequence = valid_sequence(&dir.path().join("seq"), 4);
    SynthMp4::constant(6, 25, 1, 320, 240)
        .write(&sequence.join("video.mp4"))
        .unwrap();
    let mut config = config(vec![sequence]);
    config.fallback.policy = FallbackPolicy::Placeholder;
    let app = spawn_app(config);
    let detail = app.json("/api/sequences/seq");
    assert_eq!(detail["num_frames"], 6);
    assert_eq!(detail["fps"], 25.0);
    assert_eq!(detail["timeline"]["status"], "oooopp");
    let warnings = detail["warnings"].to_string();
    assert!(
        warnings.contains("video has 6 frames but NPZ numbering covers 4"),
        "{warnings}"
    );
    let extra = app.get("/api/sequences/seq/frames/5");
    assert_eq!(extra.header("x-frame-status"), Some("placeholder"));
    assert_eq!(extra.header("x-frame-reason"), Some("missing_file"));
    assert_eq!(app.get("/api/sequences/seq/frames/6").status, 404);
}

#[test]
fn mp4_timing_reads_rates_reordering_and_edit_lists() {
    let dir = temp_dir();
    let path = dir.path().join("v.mp4");

    SynthMp4::constant(300, 30_000, 1001, 1280, 720)
        .write(&path)
        .unwrap();
    let timing = read_mp4_timing(&path).unwrap();
    assert_eq!(timing.frame_count, 300);
    assert_eq!((timing.fps_num, timing.fps_den), (30_000, 1001));
    assert!((timing.fps - 29.97).abs() < 0.001);
    assert_eq!((timing.width, timing.height), (1280, 720));
    assert_eq!(timing.start_secs, 0.0);
    assert!(timing.constant_rate);

    // B-frames: composition offsets reorder frames; the edit list starts presentation at the first one.
    let mut reordered = SynthMp4::constant(8, 12_800, 512, 64, 64);
    reordered.composition_offsets = Some(vec![1024, 2560, 1024, 0, 512, 1536, 1024, 0]);
    reordered.edit_media_time = Some(1024);
    reordered.write(&path).unwrap();
    let timing = read_mp4_timing(&path).unwrap();
    assert_eq!(timing.frame_count, 8);
    assert_eq!(timing.fps, 25.0);
    assert_eq!(timing.start_secs, 0.0);

    // Without the edit list, the first frame shows at its composition offset.
    reordered.edit_media_time = None;
    reordered.write(&path).unwrap();
    assert_eq!(read_mp4_timing(&path).unwrap().start_secs, 0.08);

    // An empty edit delays the start.
    let mut delayed = SynthMp4::constant(5, 25, 1, 64, 64);
    delayed.empty_edit_ms = 500;
    delayed.write(&path).unwrap();
    assert_eq!(read_mp4_timing(&path).unwrap().start_secs, 0.5);

    // Variable frame rate: the most common duration gives the rate.
    let mut variable = SynthMp4::constant(6, 1000, 40, 64, 64);
    variable.frame_ticks = vec![40, 40, 40, 80, 40, 40];
    variable.write(&path).unwrap();
    let timing = read_mp4_timing(&path).unwrap();
    assert_eq!(timing.fps, 25.0);
    assert!(!timing.constant_rate);

    // Damaged files are errors, never panics.
    let good = SynthMp4::constant(10, 25, 1, 64, 64).to_bytes();
    for cut in [0, 4, 20, good.len() / 2, good.len() - 1] {
        std::fs::write(&path, &good[..cut]).unwrap();
        assert!(read_mp4_timing(&path).is_err(), "cut at {cut}");
    }
    let mut rng = Rng::new(9);
    for _ in 0..50 {
        let mut damaged = good.clone();
        for _ in 0..8 {
            let at = rng.index(damaged.len());
            damaged[at] = rng.index(256) as u8;
        }
        std::fs::write(&path, &damaged).unwrap();
        let result = std::panic::catch_unwind(|| read_mp4_timing(&path));
        assert!(result.is_ok(), "the MP4 parser panicked on a damaged file");
    }
    std::fs::write(&path, b"not a video at all").unwrap();
    assert!(read_mp4_timing(&path).is_err());
}

#[test]
fn bad_requests_are_json_4xx_and_never_reach_outside_files() {
    let dir = temp_dir();
    let root = dir.path().join("served");
    let sequence = faulty_sequence(&root.join("seq"));
    std::fs::write(dir.path().join("secret.txt"), "SECRET-CONTENTS").unwrap();
    std::fs::write(root.join("secret.txt"), "SECRET-CONTENTS").unwrap();
    let web = dir.path().join("web");
    std::fs::create_dir(&web).unwrap();
    std::fs::write(web.join("index.html"), "<!doctype html><p>player</p>").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), web.join("link.txt")).unwrap();
    for web_dir in [None, Some(web.clone())] {
        let mut config = config(vec![sequence.clone()]);
        config.web_dir = web_dir.clone();
        let app = spawn_app(config);
        let cases: &[(&str, &str, u16)] = &[
            ("GET", "/api/sequences/nope", 404),
            ("GET", "/api/sequences/nope/frames/0", 404),
            ("GET", "/api/sequences/nope/video", 404),
            ("GET", "/api/sequences/nope/stream", 404),
            ("GET", "/api/sequences/seq/stream", 400),
            ("GET", "/api/sequences/seq/video", 404),
            ("GET", "/api/sequences/seq/frames/abc", 400),
            ("GET", "/api/sequences/seq/frames/-1", 400),
            ("GET", "/api/sequences/seq/frames/1.5", 400),
            ("GET", "/api/sequences/seq/frames/1e3", 400),
            ("GET", "/api/sequences/seq/frames/0x10", 400),
            ("GET", "/api/sequences/seq/frames/%20", 400),
            ("GET", "/api/sequences/seq/frames/99999999999999999999", 400),
            ("GET", "/api/sequences/seq/frames/12", 404),
            ("GET", "/api/sequences/seq/frames/4294967296", 400),
            ("GET", "/api/sequences/seq/frames/0?format=gif", 400),
            ("GET", "/api/sequences/seq/frames/0?format=%ZZ", 400),
            ("GET", "/api/sequences/seq/frames/..%2f..%2fsecret.txt", 400),
            ("GET", "/api/sequences/seq/frames/../../secret.txt", 404),
            ("GET", "/api/sequences/..%2f..%2fsecret.txt/frames/0", 404),
            ("GET", "/api/sequences/%2e%2e/video", 404),
            ("GET", "/../secret.txt", 404),
            ("GET", "/../../secret.txt", 404),
            ("GET", "/%2e%2e/secret.txt", 404),
            ("GET", "/%2e%2e%2fsecret.txt", 404),
            ("GET", "/..%5csecret.txt", 404),
            ("GET", "/link.txt", 404),
            ("GET", "/.hidden", 404),
            ("GET", "//etc/passwd", 404),
            ("GET", "/api/nothing", 404),
            ("GET", "/api", 404),
            ("GET", "/no-such-file.js", 404),
            ("POST", "/api/sequences", 405),
            ("DELETE", "/api/sequences/seq/frames/0", 405),
            ("PUT", "/healthz", 405),
        ];
        for (method, path, expected) in cases {
            let reply = app.request(method, path, &[]);
            assert_eq!(
                reply.status,
                *expected,
                "{method} {path} (web dir {web_dir:?}): {}",
                reply.text()
            );
            let body = reply.error_json();
            assert!(
                body["error"].is_string() && body["message"].is_string(),
                "{path}: {body}"
            );
            assert!(
                !reply.text().contains("SECRET-CONTENTS"),
                "{path} leaked a file"
            );
        }
        // Still healthy after all that.
        assert_eq!(app.get("/api/sequences/seq/frames/0").status, 200);
        if web_dir.is_some() {
            assert_eq!(app.get("/").text(), "<!doctype html><p>player</p>");
        }
    }
}

#[test]
fn the_cache_never_holds_more_bytes_than_its_budget() {
    let dir = temp_dir();
    let sequence = valid_sequence(&dir.path().join("seq"), 24);
    let mut config = config(vec![sequence]);
    // Room for a few frames of this size only.
    config.cache_bytes = 40_000;
    let app = spawn_app(config);
    for round in 0..2 {
        for index in 0..24 {
            let reply = app.get(&format!("/api/sequences/seq/frames/{index}"));
            assert_eq!(reply.status, 200, "round {round} frame {index}");
            let cache = &app.json("/api/stats")["cache"];
            assert!(
                cache["bytes"].as_u64().unwrap() <= 40_000,
                "over budget: {cache}"
            );
        }
    }
    let cache = &app.json("/api/stats")["cache"];
    assert_eq!(cache["capacity_bytes"], 40_000);
    assert!(cache["entries"].as_u64().unwrap() < 24, "{cache}");
    assert!(cache["evictions"].as_u64().unwrap() > 0, "{cache}");
}

#[test]
fn concurrent_requests_for_one_uncached_frame_render_it_once() {
    let dir = temp_dir();
    let sequence = valid_sequence(&dir.path().join("seq"), 6);
    let app = spawn_app(config(vec![sequence]));
    let address = app.address;
    // The last frame: no read-ahead follows it, so the only render is the requests' own.
    let replies: Vec<Reply> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..12)
            .map(|_| scope.spawn(move || http(address, "GET", "/api/sequences/seq/frames/5", &[])))
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for reply in &replies {
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, replies[0].body);
    }
    let stats = app.json("/api/stats");
    assert_eq!(stats["renders"]["count"], 1, "{stats}");
}

#[test]
fn read_ahead_renders_the_next_frames_after_a_request() {
    let dir = temp_dir();
    let sequence = valid_sequence(&dir.path().join("seq"), 20);
    let app = spawn_app(config(vec![sequence]));
    assert_eq!(app.get("/api/sequences/seq/frames/3").status, 200);
    wait_until("read-ahead", || {
        app.json("/api/stats")["renders"]["count"].as_u64().unwrap() >= 9
    });
    let next = app.get("/api/sequences/seq/frames/4");
    assert_eq!(next.header("x-cache"), Some("hit"));
}

/// A WebSocket client of the stream.
struct Ws {
    socket: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
}

/// A pushed frame: its JSON header and image bytes.
struct Pushed {
    header: Value,
    image: Vec<u8>,
}

enum Received {
    Frame(Pushed),
    Text(Value),
}

impl Ws {
    fn send(&mut self, message: Value) {
        self.socket
            .send(tungstenite::Message::text(message.to_string()))
            .unwrap();
    }

    /// The next message, or `None` if nothing arrives within `wait`.
    fn next(&mut self, wait: Duration) -> Option<Received> {
        let started = Instant::now();
        loop {
            match self.socket.read() {
                Ok(tungstenite::Message::Binary(bytes)) => {
                    let length = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
                    let header = serde_json::from_slice(&bytes[4..4 + length]).unwrap();
                    return Some(Received::Frame(Pushed {
                        header,
                        image: bytes[4 + length..].to_vec(),
                    }));
                }
                Ok(tungstenite::Message::Text(text)) => {
                    return Some(Received::Text(serde_json::from_str(&text).unwrap()));
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if started.elapsed() >= wait {
                        return None;
                    }
                }
                Err(error) => panic!("stream failed: {error}"),
            }
        }
    }

    /// Frames received within `wait` (text messages are skipped unless they are errors).
    fn frames(&mut self, wait: Duration) -> Vec<Pushed> {
        let mut frames = Vec::new();
        while let Some(received) = self.next(wait) {
            match received {
                Received::Frame(frame) => frames.push(frame),
                Received::Text(text) => assert_ne!(text["type"], "error", "{text}"),
            }
        }
        frames
    }

    /// Exactly `count` frames: waits for them (however slow the machine), then checks nothing more comes.
    fn expect_frames(&mut self, count: usize) -> Vec<Pushed> {
        let mut frames = Vec::new();
        let started = Instant::now();
        while frames.len() < count {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "only {} of {count} frames arrived",
                frames.len()
            );
            match self.next(Duration::from_secs(1)) {
                Some(Received::Frame(frame)) => frames.push(frame),
                Some(Received::Text(text)) => assert_ne!(text["type"], "error", "{text}"),
                None => {}
            }
        }
        let extra = self.frames(QUIET);
        assert!(
            extra.is_empty(),
            "more than {count} frames: also {:?}",
            indices(&extra)
        );
        frames
    }

    fn text(&mut self) -> Value {
        loop {
            match self.next(Duration::from_secs(30)) {
                Some(Received::Text(text)) => return text,
                Some(Received::Frame(_)) => {}
                None => panic!("no text message"),
            }
        }
    }

    fn ack(&mut self, frames: &[Pushed]) {
        for frame in frames {
            self.send(serde_json::json!({"type": "ack", "frame": frame.header["frame"]}));
        }
    }
}

/// The frame indices received, sorted (frames rendered side by side may arrive in any order).
fn indices(frames: &[Pushed]) -> Vec<u64> {
    let mut indices: Vec<u64> = frames
        .iter()
        .map(|f| f.header["frame"].as_u64().unwrap())
        .collect();
    indices.sort_unstable();
    indices
}

fn by_index(frames: &[Pushed], index: u64) -> &Pushed {
    frames
        .iter()
        .find(|f| f.header["frame"] == index)
        .unwrap_or_else(|| panic!("frame {index} not received"))
}

const QUIET: Duration = Duration::from_millis(600);

#[test]
fn the_stream_pushes_the_window_ahead_of_the_playhead_and_waits_for_acks() {
    let dir = temp_dir();
    let sequence = faulty_sequence(&dir.path().join("seq"));
    let app = spawn_app(config(vec![sequence]));
    let mut ws = app.websocket("/api/sequences/seq/stream");
    let hello = ws.text();
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["num_frames"], 12);
    let max_in_flight = hello["max_in_flight"].as_u64().unwrap() as usize;
    assert_eq!(max_in_flight, 6);

    ws.send(serde_json::json!({"type": "playhead", "frame": 0, "rate": 1.0, "playing": false}));
    // Without acks, exactly max_in_flight frames arrive, then nothing: backpressure.
    let first = ws.expect_frames(6);
    assert_eq!(indices(&first), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(app.json("/api/stats")["websocket_connections"], 1);

    let frame0 = by_index(&first, 0);
    assert_eq!(frame0.header["status"], "ok");
    assert_eq!(frame0.header["format"], "png");
    assert_eq!(frame0.image, app.get("/api/sequences/seq/frames/0").body);
    let fallback = by_index(&first, 2);
    assert_eq!(fallback.header["status"], "fallback");
    assert_eq!(fallback.header["reason"], "no_person");
    assert_eq!(fallback.header["source"], 1);

    // Acks open the window again: the rest of the paused window (8 frames) follows, nothing twice.
    ws.ack(&first);
    let more = ws.expect_frames(2);
    assert_eq!(indices(&more), vec![6, 7]);
    ws.ack(&more);
    assert!(ws.frames(QUIET).is_empty(), "a frame was sent twice");

    // Playing moves the window along: frames past the old window arrive.
    ws.send(serde_json::json!({"type": "playhead", "frame": 4, "rate": 1.0, "playing": true}));
    let playing = ws.expect_frames(4);
    assert_eq!(indices(&playing), vec![8, 9, 10, 11]);
    assert_eq!(by_index(&playing, 10).header["status"], "placeholder");
}

#[test]
fn a_seek_drops_the_old_window_and_pushes_the_new_one() {
    let dir = temp_dir();
    let sequence = valid_sequence(&dir.path().join("seq"), 40);
    let app = spawn_app(config(vec![sequence]));
    let mut ws = app.websocket("/api/sequences/seq/stream");
    ws.text();
    ws.send(serde_json::json!({"type": "playhead", "frame": 0, "rate": 1.0, "playing": true}));
    let before = ws.expect_frames(6);
    assert_eq!(indices(&before), vec![0, 1, 2, 3, 4, 5]);

    ws.send(serde_json::json!({"type": "playhead", "frame": 30, "rate": 1.0, "playing": false}));
    ws.ack(&before);
    let after = ws.expect_frames(6);
    assert_eq!(indices(&after), vec![30, 31, 32, 33, 34, 35]);
    ws.ack(&after);
    let rest = ws.expect_frames(2);
    assert_eq!(indices(&rest), vec![36, 37]);
    ws.ack(&rest);

    // Backwards: the window runs down from the playhead.
    ws.send(serde_json::json!({"type": "playhead", "frame": 20, "rate": -1.0, "playing": false}));
    let backwards = ws.expect_frames(6);
    assert_eq!(indices(&backwards), vec![15, 16, 17, 18, 19, 20]);
}

#[test]
fn a_stream_answers_want_and_survives_bad_messages() {
    let dir = temp_dir();
    let sequence = valid_sequence(&dir.path().join("seq"), 20);
    let app = spawn_app(config(vec![sequence]));
    let mut ws = app.websocket("/api/sequences/seq/stream?format=webp");
    assert_eq!(ws.text()["format"], "webp");
    for bad in [
        "not json",
        r#"{"type":"dance"}"#,
        r#"{"type":"playhead","frame":"x"}"#,
        r#"{"type":"playhead","frame":-3}"#,
        r#"{"type":"playhead","frame":20}"#,
        r#"{"type":"want","frame":99}"#,
    ] {
        ws.socket
            .send(tungstenite::Message::text(bad.to_string()))
            .unwrap();
        let reply = ws.text();
        assert_eq!(reply["type"], "error", "{bad}");
        assert_eq!(reply["error"], "bad_request", "{bad}");
    }
    ws.socket
        .send(tungstenite::Message::binary(vec![1, 2, 3]))
        .unwrap();
    assert_eq!(ws.text()["type"], "error");

    ws.send(serde_json::json!({"type": "want", "frame": 17}));
    let wanted = ws.expect_frames(1);
    assert_eq!(indices(&wanted), vec![17]);
    assert_eq!(wanted[0].header["format"], "webp");
    assert_eq!(&wanted[0].image[..4], b"RIFF");
}

#[test]
fn a_client_that_never_acks_gets_nothing_more_and_costs_no_memory() {
    let dir = temp_dir();
    let sequence = valid_sequence(&dir.path().join("seq"), 30);
    let app = spawn_app(config(vec![sequence]));
    let mut ws = app.websocket("/api/sequences/seq/stream");
    ws.text();
    ws.send(serde_json::json!({"type": "playhead", "frame": 0, "rate": 1.0, "playing": true}));
    ws.expect_frames(6);
    // Seek around without acknowledging anything: nothing more is sent.
    for frame in [10, 20, 5, 25] {
        ws.send(
            serde_json::json!({"type": "playhead", "frame": frame, "rate": 1.0, "playing": true}),
        );
    }
    assert!(
        ws.frames(QUIET).is_empty(),
        "more than max_in_flight frames without acks"
    );
    let stats = app.json("/api/stats");
    assert_eq!(stats["queue_depth"], 0, "{stats}");
}

#[test]
fn a_library_folder_serves_each_sequence_with_its_own_id() {
    let dir = temp_dir();
    valid_sequence(&dir.path().join("b clip"), 3);
    valid_sequence(&dir.path().join("a-clip"), 2);
    std::fs::create_dir(dir.path().join("notes")).unwrap();
    let app = spawn_app(config(vec![dir.path().to_path_buf()]));
    let list = app.json("/api/sequences");
    let ids: Vec<&str> = list["sequences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["a-clip", "b-clip"]);
    assert!(list["warnings"].to_string().contains("notes"), "{list}");
    assert_eq!(app.json("/api/sequences/b-clip")["num_frames"], 3);
    assert_eq!(app.get("/api/sequences/b-clip/frames/2").status, 200);
    assert_eq!(app.get("/api/sequences/a-clip/frames/2").status, 404);
}

#[test]
fn the_prototype_layout_is_matched_by_name_and_unmatched_files_are_reported() {
    let dir = temp_dir();
    let root = dir.path();
    std::fs::create_dir_all(root.join("videos")).unwrap();
    for name in ["walk", "jump"] {
        let frames = root.join("npz_files").join(name);
        std::fs::create_dir_all(&frames).unwrap();
        for n in 1..=3 {
            write_osx_frame(&frames, n, &[framed_person(n)]);
        }
    }
    SynthMp4::constant(3, 30, 1, 64, 64)
        .write(&root.join("videos/walk.mp4"))
        .unwrap();
    SynthMp4::constant(3, 30, 1, 64, 64)
        .write(&root.join("videos/orphan.mp4"))
        .unwrap();
    std::fs::create_dir_all(root.join("models")).unwrap();
    std::fs::write(root.join("models/SMPLX_NEUTRAL.npz"), b"placeholder").unwrap();

    let library = find_sequences(&[root.to_path_buf()], &Default::default()).unwrap();
    let names: Vec<&str> = library.sequences.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["jump", "walk"]);
    assert_eq!(
        library.sequences[1].video,
        Some(root.join("videos/walk.mp4"))
    );
    assert_eq!(library.sequences[0].video, None);
    assert_eq!(
        library.sequences[1].rendered_dir,
        root.join("rendered").join("walk")
    );
    assert_eq!(library.model, Some(root.join("models/SMPLX_NEUTRAL.npz")));
    let warnings = library.warnings.join("\n");
    assert!(
        warnings.contains("orphan.mp4 has no frame folder"),
        "{warnings}"
    );
    assert!(
        warnings.contains("npz_files/jump has no matching video"),
        "{warnings}"
    );

    // The prototype's model is used when --model is absent: this one is not a model, so startup says so.
    let error = AppState::start(config(vec![root.to_path_buf()]))
        .err()
        .expect("a broken model fails startup");
    assert!(error.to_string().contains("SMPLX_NEUTRAL.npz"), "{error}");
}

#[test]
fn serve_prerender_fills_the_rendered_folder_and_a_restart_serves_it() {
    let dir = temp_dir();
    let sequence = faulty_sequence(&dir.path().join("seq"));
    let mut first = config(vec![sequence.clone()]);
    first.prerender = true;
    let app = spawn_app(first);
    wait_until("pre-rendering", || {
        let progress = &app.json("/api/stats")["prerender"];
        progress["done"] == 12 && progress["running"] == false
    });
    let detail = app.json("/api/sequences/seq");
    assert_eq!(detail["prerender"]["done"], 12);
    assert_eq!(detail["prerender"]["total"], 12);
    app.stop();
    let rendered = sequence.join("rendered");
    assert!(rendered.join("render_report.json").is_file());
    assert!(rendered.join(".meshreel-serve.json").is_file());
    assert!(rendered.join("frame_0012.png").is_file());

    // A restart keeps the images (the batch resumes) and serves them.
    let mut second = config(vec![sequence.clone()]);
    second.prerender = true;
    let app = spawn_app(second);
    assert_eq!(app.json("/api/sequences/seq")["prerendered"]["used"], true);
    let frame = app.get("/api/sequences/seq/frames/11");
    assert_eq!(frame.header("x-cache"), Some("prerendered"));
    assert_eq!(
        frame.body,
        std::fs::read(rendered.join("frame_0012.png")).unwrap()
    );
    wait_until("the resumed run", || {
        let progress = &app.json("/api/stats")["prerender"];
        progress["done"] == 12 && progress["running"] == false
    });
    let report = std::fs::read_to_string(rendered.join("render_report.json")).unwrap();
    let report = meshreel::report::Report::from_json(&report).unwrap();
    assert!(
        report.frames.iter().all(|f| f.resumed),
        "the restart re-rendered frames"
    );
}

#[test]
fn a_long_sequence_is_scanned_in_the_background() {
    let dir = temp_dir();
    let frames = dir.path().join("seq/frames");
    std::fs::create_dir_all(&frames).unwrap();
    let one = meshreel::synth::frame_contents(
        meshreel::synth::KeyStyle::OsxPrefixed,
        &[framed_person(1)],
        false,
    );
    let bytes = one.to_bytes(false).unwrap();
    for n in 1..=400u32 {
        if n % 50 == 0 {
            std::fs::write(frames.join(format!("frame_{n:04}_params.npz")), b"bad").unwrap();
        } else {
            std::fs::write(frames.join(format!("frame_{n:04}_params.npz")), &bytes).unwrap();
        }
    }
    let app = spawn_app(config(vec![dir.path().join("seq")]));
    // A frame far into the sequence is served before (or while) the scan reaches it.
    let early = app.get("/api/sequences/seq/frames/349");
    assert_eq!(early.header("x-frame-status"), Some("fallback"));
    assert_eq!(early.header("x-frame-source"), Some("348"));
    wait_until("the scan", || {
        app.json("/api/sequences/seq")["timeline"]["scanned"] == true
    });
    let detail = app.json("/api/sequences/seq");
    let status = detail["timeline"]["status"].as_str().unwrap();
    assert_eq!(status.len(), 400);
    assert!(!status.contains('?'));
    assert_eq!(detail["counts"]["fallback"], 8);
    assert_eq!(detail["timeline"]["reasons"]["49"], "corrupt_npz");
}

#[test]
fn the_command_prints_its_address_and_stops_on_ctrl_c() {
    let dir = temp_dir();
    let sequence = valid_sequence(&dir.path().join("seq"), 3);
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshreel"))
        .args(["serve", sequence.to_str().unwrap(), "--bind", "127.0.0.1:0"])
        .args(["--renderer", "cpu", "--size", "64x48", "--cache-mb", "8"])
        .env_remove("MESHREEL_MODEL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|a| a.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let address: SocketAddr = address.parse().unwrap();
    assert_ne!(address.port(), 0);
    assert_eq!(http(address, "GET", "/healthz", &[]).text(), "ok");
    assert_eq!(
        http(address, "GET", "/api/sequences/seq/frames/2", &[]).status,
        200
    );
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still running after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}

#[test]
fn the_gl_backend_serves_the_gl_batch_bytes() {
    let Some(renderer) = crate::render::gl_or_skip() else {
        return;
    };
    let dir = temp_dir();
    let sequence = faulty_sequence(&dir.path().join("seq"));
    let out = dir.path().join("batch");
    let size = format!("{}x{}", SIZE.0, SIZE.1);
    let output = Command::new(env!("CARGO_BIN_EXE_meshreel"))
        .args([
            "render",
            sequence.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(["--size", &size, "--renderer", "gl", "--max-hold", "1"])
        .env_remove("MESHREEL_MODEL")
        .output()
        .unwrap();
    assert!(output.status.success());
    let mut config = config(vec![sequence]);
    config.renderer = renderer;
    let app = spawn_app(config);
    assert_eq!(app.json("/api/sequences/seq")["renderer"]["backend"], "gl");
    for index in [0usize, 2, 10] {
        let served = app.get(&format!("/api/sequences/seq/frames/{index}"));
        let batch = std::fs::read(out.join(format!("frame_{:04}.png", index + 1))).unwrap();
        assert!(
            served.body == batch,
            "frame {index} differs from the GL batch's"
        );
    }
}
