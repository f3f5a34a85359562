// What a person sees: Chromium headed on a virtual X display (Xvfb), and the display's pixels read back with
// ffmpeg's x11grab, so sync is judged after the browser has composited the page, not from inside it.
//
// The demo video carries its frame code in rows 0–99 of its 640×480 reference and `serve --stamp-frame-code`
// stamps each overlay image with its own code in rows 100–159 (README, "The frame code"): one captured screen
// picture of the player's canvas gives both the video frame on screen and the overlay shown with it.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

/** The two codes' layouts on the 640×480 reference: the video's (strip y 0–99) and the overlay stamp's
 * (strip y 100–159). 12 blocks at x = 24 + 50k, 42 wide; row A white for 1, row B its inverse. */
export const VIDEO_CODE = { rowA: 8, rowB: 52, height: 40 };
export const OVERLAY_CODE = { rowA: 108, rowB: 132, height: 20 };
/** Rows of the reference that hold both codes. */
export const CODE_ROWS = 160;
const MIN_CONTRAST = 64;

/** Reads a code from a `width`×`height` region of 4-byte pixels (any channel order: brightness is the mean of
 * the first three) showing the top `CODE_ROWS / 480` of a picture `pictureWidth`×`pictureHeight` on screen. */
export function readCode(pixels, width, pictureWidth, pictureHeight, layout) {
  const sx = pictureWidth / 640;
  const sy = pictureHeight / 480;
  const mean = (x0, y0, x1, y1) => {
    // The middle half of the block in each direction, away from edges blurred by scaling and compression.
    const [a0, a1] = [Math.round(x0 * sx), Math.round(x1 * sx)];
    const [b0, b1] = [Math.round(y0 * sy), Math.round(y1 * sy)];
    const [dx, dy] = [Math.floor((a1 - a0) / 4), Math.floor((b1 - b0) / 4)];
    let sum = 0;
    let count = 0;
    for (let y = b0 + dy; y < b1 - dy; y += 1) {
      let offset = (y * width + a0 + dx) * 4;
      for (let x = a0 + dx; x < a1 - dx; x += 1, offset += 4) {
        sum += pixels[offset] + pixels[offset + 1] + pixels[offset + 2];
        count += 1;
      }
    }
    return count ? sum / count / 3 : 0;
  };
  let value = 0;
  for (let bit = 0; bit < 12; bit += 1) {
    const x = 24 + 50 * bit;
    const a = mean(x, layout.rowA, x + 42, layout.rowA + layout.height);
    const b = mean(x, layout.rowB, x + 42, layout.rowB + layout.height);
    if (Math.abs(a - b) < MIN_CONTRAST) return null;
    value = value * 2 + (a > b ? 1 : 0);
  }
  return value;
}

/** Resolves with the first match of `pattern` in a child's output, or rejects after `timeoutMs`. */
function waitForOutput(child, pattern, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`${what}: nothing after ${timeoutMs} ms:\n${output}`)),
      timeoutMs);
    const look = (chunk) => {
      output += chunk;
      const match = pattern.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match);
      }
    };
    child.stdout?.on('data', look);
    child.stderr?.on('data', look);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}:\n${output}`));
    });
  });
}

/** An Xvfb display of `width`×`height`; it picks a free display number itself (-displayfd). */
export async function startDisplay({ width, height }) {
  const xvfb = spawn('Xvfb', ['-displayfd', '1', '-screen', '0', `${width}x${height}x24`, '-nolisten', 'tcp'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  const match = await waitForOutput(xvfb, /^(\d+)\s*$/m, 20_000, 'Xvfb');
  return { display: `:${match[1]}`, width, height, close: () => xvfb.kill('SIGTERM') };
}

/** Chromium headed and full-screen (--kiosk) on `display`, showing `url`, driven over CDP by playwright-core.
 * Kiosk mode puts the page's viewport at the display's origin, so page coordinates are screen coordinates. */
export async function startBrowser({ executablePath, display, width, height, url }) {
  const profile = mkdtempSync(path.join(os.tmpdir(), 'meshreel-chromium-'));
  const browserProcess = spawn(executablePath, [
    '--kiosk', `--window-size=${width},${height}`, '--window-position=0,0', `--user-data-dir=${profile}`,
    '--remote-debugging-port=0', '--no-sandbox', '--no-first-run', '--no-default-browser-check',
    '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-features=Translate,MediaRouter', '--password-store=basic', '--disable-gpu',
    '--autoplay-policy=no-user-gesture-required', '--disable-background-timer-throttling', url,
  ], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DISPLAY: display } });
  const match = await waitForOutput(browserProcess, /DevTools listening on (ws:\/\/\S+)/, 60_000, 'Chromium');
  const browser = await chromium.connectOverCDP(match[1]);
  const context = browser.contexts()[0];
  const page = context.pages()[0] ?? await context.waitForEvent('page');
  return {
    browser,
    page,
    close: async () => {
      await browser.close().catch(() => {});
      browserProcess.kill('SIGTERM');
      await new Promise((resolve) => {
        if (browserProcess.exitCode !== null) resolve();
        else browserProcess.once('exit', resolve);
      });
      rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    },
  };
}

/**
 * Reads the display's pixels in `rect` (the picture's top CODE_ROWS rows on screen) `fps` times a second and
 * decodes both codes from each read. `picture` is the size of the whole picture on screen. Each sample is
 * `{ at, video, overlay }`: `at` in Date.now() milliseconds when it arrived, codes or null.
 */
export function startCapture({ display, rect, picture, fps = 120 }) {
  const { x, y, width, height } = rect;
  const ffmpeg = spawn('ffmpeg', [
    '-loglevel', 'error', '-nostdin', '-f', 'x11grab', '-draw_mouse', '0', '-framerate', String(fps),
    '-video_size', `${width}x${height}`, '-i', `${display}+${x},${y}`,
    // One sample per grab: by default ffmpeg repeats the last grab to fill any gap, which would look like a
    // screen standing still.
    '-fps_mode', 'passthrough', '-f', 'rawvideo', '-pix_fmt', 'bgr0', 'pipe:1',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  const frameBytes = width * height * 4;
  const samples = [];
  let errors = '';
  let pending = Buffer.alloc(0);
  ffmpeg.stdout.on('data', (chunk) => {
    const at = Date.now();
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= frameBytes) {
      const pixels = pending.subarray(0, frameBytes);
      samples.push({
        at,
        video: readCode(pixels, width, picture.width, picture.height, VIDEO_CODE),
        overlay: readCode(pixels, width, picture.width, picture.height, OVERLAY_CODE),
      });
      pending = pending.subarray(frameBytes);
    }
    if (pending.length) pending = Buffer.from(pending);
  });
  ffmpeg.stderr.on('data', (chunk) => {
    errors += chunk;
  });
  const exited = new Promise((resolve) => ffmpeg.once('exit', resolve));
  return {
    samples,
    stop: async () => {
      ffmpeg.kill('SIGINT');
      await exited;
      if (!samples.length) throw new Error(`the screen capture read nothing: ${errors}`);
      return samples;
    },
  };
}

/** The screen rectangle of the top CODE_ROWS reference rows of the picture drawn in the element `selector`
 * (a canvas showing the picture with object-fit: contain semantics, or positioned exactly over it). */
export async function pictureRect(page, selector) {
  const box = await page.$eval(selector, (element) => {
    const r = element.getBoundingClientRect();
    return { x: r.left, y: r.top, width: r.width, height: r.height, ratio: window.devicePixelRatio };
  });
  const x = Math.round(box.x * box.ratio);
  const y = Math.round(box.y * box.ratio);
  const width = Math.round(box.width * box.ratio);
  const height = Math.round(box.height * box.ratio);
  return {
    picture: { width, height },
    rect: { x, y, width: width - (width % 2), height: Math.ceil((height * CODE_ROWS) / 480) },
  };
}

/** How long after a play starts, and after a pause or a seek, the screen may still be settling: samples then
 * are reported but not judged. At the start of playing the first overlays are still on their way (misses);
 * after a seek the old picture stays until the new one is decoded. */
export const STARTUP_MS = 1000;
export const SETTLE_MS = 300;

/**
 * Sorts screen samples by what the page was doing (`events`: `{ at, kind }` with kind `play`, `pause` or
 * `seek`, in Date.now() milliseconds) and sums them up: `judged` samples are those of steady playback (from
 * STARTUP_MS after a play to its pause) and of a settled paused picture (SETTLE_MS after a pause or seek).
 * `expectedOnScreen` is how many video frames steady playback at `fps` should have shown in the time the
 * judged samples span: a screen (or a capture) standing still shows far fewer than that.
 */
export function judge(samples, events, fps) {
  const sorted = [...events].sort((a, b) => a.at - b.at);
  const phaseAt = (at) => {
    let last = null;
    for (const event of sorted) {
      if (event.at > at) break;
      last = event;
    }
    return last;
  };
  const result = {
    samples: samples.length, judged: 0, playing: 0, mismatched: [], unjudgedMismatched: 0, missing: 0,
    unreadable: 0, skippedOnScreen: 0, framesOnScreen: 0, expectedOnScreen: 0,
  };
  // Per play: the distinct video frames that reached the screen, to count those that never did.
  const seenPerPlay = new Map();
  // Per play: the times of its first and last judged sample.
  const spanPerPlay = new Map();
  for (const sample of samples) {
    const event = phaseAt(sample.at);
    if (!event) continue;
    const since = sample.at - event.at;
    const playing = event.kind === 'play';
    const steady = playing ? since > STARTUP_MS : since > SETTLE_MS;
    const differ = sample.video !== null && sample.overlay !== null && sample.video !== sample.overlay;
    if (!steady) {
      if (differ) result.unjudgedMismatched += 1;
      continue;
    }
    result.judged += 1;
    if (playing) result.playing += 1;
    if (sample.video === null) {
      result.unreadable += 1;
      continue;
    }
    if (differ) result.mismatched.push({ ...sample, phase: event.kind, sinceMs: since });
    else if (sample.overlay === null) result.missing += 1;
    if (playing) {
      if (!seenPerPlay.has(event)) seenPerPlay.set(event, new Set());
      seenPerPlay.get(event).add(sample.video);
      const span = spanPerPlay.get(event);
      spanPerPlay.set(event, span ? [span[0], sample.at] : [sample.at, sample.at]);
    }
  }
  for (const [first, last] of spanPerPlay.values()) {
    result.expectedOnScreen += Math.floor(((last - first) / 1000) * fps);
  }
  for (const seen of seenPerPlay.values()) {
    const codes = [...seen].sort((a, b) => a - b);
    result.framesOnScreen += codes.length;
    // The first and last frames of the judged stretch bound it; each code between them not seen was skipped.
    if (codes.length) result.skippedOnScreen += codes.at(-1) - codes[0] + 1 - codes.length;
  }
  return result;
}
