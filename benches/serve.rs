//! `meshreel serve` under load, over loopback, at 720×720 with a real-size SMPL-X-layout model: uncached frame
//! latency, cached frame latency and requests/s over 16 keep-alive connections, four WebSocket players at 30 fps,
//! and the server's resident memory after 50,000 requests.
//! Targets on 2 cores (issue 6): cached p99 ≤ 2 ms and ≥ 2,000 requests/s; uncached p50 ≤ 20 ms, p99 ≤ 60 ms;
//! four players with no misses once warm; memory ≤ cache budget + 200 MB. With the CPU backend (what `auto`
//! picks without a GPU), uncached p50 ≤ 8 ms (issue 4).
//!
//! Run with `cargo bench --bench serve`. The load generator shares the machine with the server, so on 2 cores
//! it takes part of the CPU the server would otherwise have. `MESHREEL_BENCH_RENDERER=gl` picks the backend
//! (default `auto`); `MESHREEL_BENCH_REQUESTS` changes the 50,000.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use meshreel::synth::{KeyStyle, Rng, SynthModel, SynthPerson, frame_contents};

/// Frames in the clip: four players' 300 each, then frames only the uncached requests touch.
const NUM_FRAMES: u32 = 2400;
const PLAYER_FRAMES: usize = 300;
const CACHE_MB: u64 = 256;
const CONNECTIONS: usize = 16;
const PLAYERS: usize = 4;

/// A keep-alive HTTP/1.1 connection.
struct Connection {
    reader: BufReader<TcpStream>,
    address: SocketAddr,
}

impl Connection {
    fn open(address: SocketAddr) -> Connection {
        let stream = TcpStream::connect(address).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Connection {
            reader: BufReader::with_capacity(256 * 1024, stream),
            address,
        }
    }

    /// Sends a GET and reads the whole response.
    fn get(&mut self, path: &str) -> Reply {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.address);
        self.reader
            .get_mut()
            .write_all(request.as_bytes())
            .expect("send");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut length = 0;
        let mut render_ms = None;
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header");
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("x-render-ms") {
                    render_ms = value.trim().parse().ok();
                }
            }
        }
        let mut remaining = length;
        while remaining > 0 {
            let buffer = self.reader.fill_buf().expect("body");
            let take = buffer.len().min(remaining);
            self.reader.consume(take);
            remaining -= take;
        }
        Reply {
            status,
            length,
            render_ms,
        }
    }
}

/// What `Connection::get` read: the status, the body's length, and the server's own time to make the frame
/// (`X-Render-Ms`).
struct Reply {
    status: u16,
    length: usize,
    render_ms: Option<f64>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Resident and peak memory of a process, in MB.
fn memory_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn start_server(
    folder: &std::path::Path,
    model: &std::path::Path,
    renderer: &str,
) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshreel"))
        .args([
            "serve",
            folder.to_str().unwrap_or_default(),
            "--bind",
            "127.0.0.1:0",
        ])
        .args([
            "--model",
            model.to_str().unwrap_or_default(),
            "--size",
            "720x720",
        ])
        .args(["--renderer", renderer, "--fps", "30"])
        .args(["--cache-mb", &CACHE_MB.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start meshreel serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("address line");
    let address = line
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|a| a.strip_suffix('/'))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (child, address)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let renderer = std::env::var("MESHREEL_BENCH_RENDERER").unwrap_or_else(|_| "auto".to_string());
    let total_requests: usize = std::env::var("MESHREEL_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let dir = tempfile::tempdir().expect("temporary folder");
    let model = dir.path().join("SMPLX_NEUTRAL.npz");
    SynthModel::stand_in_shaped(1).write(&model).expect("model");
    let frames = dir.path().join("clip").join("frames");
    std::fs::create_dir_all(&frames).expect("frames folder");
    let mut rng = Rng::new(2);
    for number in 1..=NUM_FRAMES {
        let mut person = SynthPerson::random(&mut rng, 0.2);
        person.cam_trans = [0.0, 0.3, 50.0];
        frame_contents(KeyStyle::OsxPrefixed, &[person], false)
            .write(&frames.join(format!("frame_{number:04}_params.npz")), false)
            .expect("frame");
    }
    let started = Instant::now();
    let (mut server, address) = start_server(&dir.path().join("clip"), &model, &renderer);
    println!(
        "serve bench: {NUM_FRAMES} frames at 720x720, renderer {renderer}, cache {CACHE_MB} MiB; startup {:.0} ms",
        millis(started)
    );
    let path = |index: usize| format!("/api/sequences/clip/frames/{index}");
    let requests = AtomicUsize::new(0);
    let (rss, _) = memory_mb(server.id());
    println!("memory after startup: {rss:.0} MB resident");

    // Four players at 30 fps over WebSocket, each over its own 300 frames (PLAYER_FRAMES), twice: the first
    // pass finds nothing cached, the second (starting half-way, a seek) counts misses once warm.
    let players: Vec<(usize, usize, usize)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..PLAYERS)
            .map(|player| scope.spawn(move || play(address, player * PLAYER_FRAMES, PLAYER_FRAMES)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or((0, 0, 0)))
            .collect()
    });
    for (player, (shown, late_cold, late_warm)) in players.iter().enumerate() {
        println!(
            "player {player} at 30 fps: {shown} frames a pass; late frames: {late_cold} in the cold pass, {late_warm} once warm"
        );
    }

    let (rss, peak) = memory_mb(server.id());
    println!("memory after the players: {rss:.0} MB resident, {peak:.0} MB peak");

    // Uncached: one request at a time, 12 frames apart in frames no one asked for yet (so the read-ahead of
    // 8 frames never helps), 100 ms apart as a user's seeks are.
    let mut connection = Connection::open(address);
    let mut uncached = Vec::new();
    let mut made = Vec::new();
    let mut bytes = 0;
    let first_untouched = PLAYERS * PLAYER_FRAMES;
    for index in (first_untouched..NUM_FRAMES as usize).step_by(12).take(100) {
        let start = Instant::now();
        let reply = connection.get(&path(index));
        uncached.push(millis(start));
        assert_eq!(reply.status, 200, "frame {index}");
        bytes += reply.length;
        made.extend(reply.render_ms);
        requests.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(100));
    }
    uncached.sort_by(f64::total_cmp);
    made.sort_by(f64::total_cmp);
    println!(
        "uncached frame: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} requests, mean {:.0} KB a frame); \
         the server's own time to make one (X-Render-Ms): p50 {:.1} ms, p99 {:.1} ms",
        percentile(&uncached, 0.5),
        percentile(&uncached, 0.99),
        uncached.last().copied().unwrap_or(f64::NAN),
        uncached.len(),
        bytes as f64 / uncached.len().max(1) as f64 / 1024.0,
        percentile(&made, 0.5),
        percentile(&made, 0.99),
    );

    // Cached: the players' frames are all in the cache now. First as fast as 16 connections go, then paced
    // at a steady 2,500 requests/s (latency counted from each request's scheduled time).
    let cached_frames = PLAYERS * PLAYER_FRAMES;
    for index in 0..cached_frames {
        connection.get(&path(index));
        requests.fetch_add(1, Ordering::Relaxed);
    }
    let remaining = total_requests.saturating_sub(requests.load(Ordering::Relaxed));
    let saturated = (remaining * 3 / 5) / CONNECTIONS;
    let load = |per_connection: usize, interval: Option<Duration>| -> (Vec<f64>, f64) {
        let load_started = Instant::now();
        let mut latencies: Vec<f64> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..CONNECTIONS)
                .map(|worker| {
                    let requests = &requests;
                    scope.spawn(move || {
                        let mut connection = Connection::open(address);
                        let mut rng = Rng::new(100 + worker as u64);
                        let mut times = Vec::with_capacity(per_connection);
                        // Connections start spread over one interval.
                        let offset = interval
                            .map_or(Duration::ZERO, |i| i * worker as u32 / CONNECTIONS as u32);
                        let began = Instant::now() + offset;
                        for step in 0..per_connection {
                            let scheduled =
                                interval.map_or_else(Instant::now, |i| began + i * step as u32);
                            while Instant::now() < scheduled {
                                std::thread::sleep(scheduled - Instant::now());
                            }
                            let index = rng.index(cached_frames);
                            let reply =
                                connection.get(&format!("/api/sequences/clip/frames/{index}"));
                            times.push(millis(scheduled));
                            assert_eq!(reply.status, 200);
                            requests.fetch_add(1, Ordering::Relaxed);
                        }
                        times
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_default())
                .collect()
        });
        latencies.sort_by(f64::total_cmp);
        let rate = latencies.len() as f64 / load_started.elapsed().as_secs_f64();
        (latencies, rate)
    };
    let (latencies, rate) = load(saturated, None);
    println!(
        "cached frame, {CONNECTIONS} connections flat out: {rate:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms ({} requests)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN),
        latencies.len()
    );
    let paced_rate = 2_500.0;
    let interval = Duration::from_secs_f64(CONNECTIONS as f64 / paced_rate);
    let remaining = total_requests.saturating_sub(requests.load(Ordering::Relaxed));
    let (latencies, rate) = load(remaining / CONNECTIONS, Some(interval));
    println!(
        "cached frame, {CONNECTIONS} connections at {paced_rate:.0} requests/s: {rate:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms ({} requests)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN),
        latencies.len()
    );

    // Top up to the request count, then read the server's memory.
    let mut connection = Connection::open(address);
    let mut rng = Rng::new(7);
    while requests.load(Ordering::Relaxed) < total_requests {
        connection.get(&path(rng.index(cached_frames)));
        requests.fetch_add(1, Ordering::Relaxed);
    }
    let (rss, peak) = memory_mb(server.id());
    println!(
        "memory after {} HTTP requests: {rss:.0} MB resident, {peak:.0} MB peak (budget: {CACHE_MB} MiB cache + 200 MB)",
        requests.load(Ordering::Relaxed)
    );
    let _ = Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status();
    let _ = server.wait();
}

/// One player: plays frames `first..first + frames` twice at 30 fps over the stream (looping within them),
/// acknowledging each frame. A frame is late when it has not arrived by its display time. Returns the frames
/// shown per pass and the late frames of each pass.
fn play(address: SocketAddr, first: usize, frames: usize) -> (usize, usize, usize) {
    let (mut socket, _) = tungstenite::connect(format!("ws://{address}/api/sequences/clip/stream"))
        .expect("connect the stream");
    if let tungstenite::stream::MaybeTlsStream::Plain(stream) = socket.get_ref() {
        let _ = stream.set_read_timeout(Some(Duration::from_millis(2)));
    }
    let mut received = vec![false; NUM_FRAMES as usize];
    let mut shown = 0;
    let tick = Duration::from_secs_f64(1.0 / 30.0);
    let send = |socket: &mut tungstenite::WebSocket<_>, text: String| {
        let _ = socket.send(tungstenite::Message::text(text));
    };
    let playhead = |frame: usize| {
        format!(r#"{{"type":"playhead","frame":{frame},"rate":1.0,"playing":true}}"#)
    };
    let mut late = Vec::new();
    for pass in 0..2 {
        let mut late_now = 0;
        // The second pass starts half-way through: a seek, so the server sends every frame again.
        let offset = pass * frames / 2;
        received.iter_mut().for_each(|r| *r = false);
        send(&mut socket, playhead(first + offset));
        // A player buffers a moment before it starts.
        let began = Instant::now() + Duration::from_millis(200);
        for step in 0..frames {
            let frame = first + (offset + step) % frames;
            let due = began + tick * step as u32;
            if step > 0 && frame == first {
                // Looping back is a seek.
                send(&mut socket, playhead(frame));
            } else if step % 5 == 0 {
                send(&mut socket, playhead(frame));
            }
            while Instant::now() < due {
                if let Ok(tungstenite::Message::Binary(bytes)) = socket.read()
                    && bytes.len() >= 4
                {
                    let length =
                        u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
                    let header: serde_json::Value =
                        serde_json::from_slice(&bytes[4..(4 + length).min(bytes.len())])
                            .unwrap_or_default();
                    if let Some(index) = header["frame"].as_u64() {
                        if let Some(slot) = received.get_mut(index as usize) {
                            *slot = true;
                        }
                        send(&mut socket, format!(r#"{{"type":"ack","frame":{index}}}"#));
                    }
                }
            }
            if !received[frame] {
                late_now += 1;
            }
            shown += 1;
        }
        late.push(late_now);
    }
    let _ = socket.close(None);
    (shown / 2, late[0], late[1])
}
