// End-to-end: meshreel's player on the demo sequence in Debian's headless Chromium, driven by playwright-core.
//
// Starts `meshreel serve data-samples/demo` on a free port, plays several seconds, seeks, plays again and steps,
// and checks in every presented video frame — read from the demo video's frame code, drawn from the <video>
// inside a requestVideoFrameCallback registered after the player's — that the overlay's data-frame never names
// another frame, and that at least 99 % of frames show their own overlay once the first second of playing has
// passed. Saves a screenshot (docs/player.png with MESHREEL_UPDATE_SCREENSHOT=1, else target/player.png).
//
// Environment: MESHREEL_BIN (the meshreel binary; default target/debug/meshreel), CHROMIUM (default
// /usr/bin/chromium). Exit status 0 on success, 1 on a failed check, 2 when something could not start.

import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const binary = process.env.MESHREEL_BIN || path.join(root, 'target/debug/meshreel');
const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';
const screenshot = process.env.MESHREEL_UPDATE_SCREENSHOT
  ? path.join(root, 'docs/player.png')
  : path.join(root, 'target/player.png');

function startServer(sequence = 'data-samples/demo') {
  const server = spawn(
    binary,
    ['serve', path.join(root, sequence), '--bind', '127.0.0.1:0', '--renderer', 'cpu'],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'info' } },
  );
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`no "listening on" within 60 s:\n${output}`)), 60_000);
    const look = (chunk) => {
      output += chunk;
      const match = /listening on (http:\/\/[^\s/]+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve({ server, url: match[1] });
      }
    };
    server.stdout.on('data', look);
    server.stderr.on('data', look);
    server.on('exit', (code) => reject(new Error(`meshreel serve exited with ${code}:\n${output}`)));
  });
}

/** In the page: watch every presented video frame and record what the overlay shows with it. */
function installMonitor() {
  const video = document.getElementById('video');
  const overlay = document.getElementById('overlay');
  const canvas = document.createElement('canvas');
  const context = canvas.getContext('2d', { willReadFrequently: true });
  // The frame code (README, "The demo sequence"): on a 640×480 reference, 12 blocks at x = 20 + 50k + 4,
  // 42 wide; row A (y 8–47) white for 1, row B (y 52–91) the inverse; most significant bit first.
  const readCode = () => {
    const width = video.videoWidth;
    const height = video.videoHeight;
    canvas.width = width;
    canvas.height = height;
    context.drawImage(video, 0, 0, width, height);
    const sx = width / 640;
    const sy = height / 480;
    const mean = (x0, y0, x1, y1) => {
      const data = context.getImageData(Math.round(x0 * sx), Math.round(y0 * sy),
        Math.max(1, Math.round((x1 - x0) * sx)), Math.max(1, Math.round((y1 - y0) * sy))).data;
      let sum = 0;
      for (let i = 0; i < data.length; i += 4) sum += data[i] + data[i + 1] + data[i + 2];
      return sum / (data.length / 4) / 3;
    };
    let value = 0;
    for (let k = 0; k < 12; k += 1) {
      const x = 20 + 50 * k + 4;
      const a = mean(x + 8, 16, x + 34, 40);
      const b = mean(x + 8, 60, x + 34, 84);
      if (Math.abs(a - b) < 64) return null;
      value = value * 2 + (a > b ? 1 : 0);
    }
    return value;
  };
  const samples = [];
  window.e2e = { samples, playStartedAt: null };
  video.addEventListener('play', () => {
    window.e2e.playStartedAt = performance.now();
  });
  const onFrame = (now, metadata) => {
    samples.push({
      at: performance.now(),
      playing: !video.paused,
      sincePlay: window.e2e.playStartedAt === null ? null : performance.now() - window.e2e.playStartedAt,
      code: readCode(),
      media: Math.round(metadata.mediaTime * 30),
      // How late this callback runs against the frame's expected display time (ms; negative is early).
      late: Math.round(now - metadata.expectedDisplayTime),
      overlay: overlay.dataset.frame === '' ? null : Number(overlay.dataset.frame),
      status: overlay.dataset.status,
    });
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}

async function run() {
  const { server, url } = await startServer();
  const browser = await chromium.launch({
    executablePath: browserPath,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required',
    ],
  });
  const failures = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const pageErrors = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto(`${url}/`);
    await page.waitForFunction(() => window.meshreel && window.meshreel.ready, null, { timeout: 30_000 });
    await page.evaluate(installMonitor);
    // Frame 0 shows once paused at the start.
    await page.waitForFunction(() => document.getElementById('overlay').dataset.frame === '0', null,
      { timeout: 15_000 });

    const play = async (seconds) => {
      await page.click('#play');
      await page.waitForTimeout(seconds * 1000);
      await page.click('#play');
      await page.waitForTimeout(300);
    };
    await play(4);
    // Seek into the two-person stretch, then play across its end, stopping before the clip's end (frame 299),
    // where the next click on play would restart the video from frame 0.
    await page.$eval('#scrub', (input) => {
      input.value = '200';
      input.dispatchEvent(new Event('input'));
    });
    await page.waitForTimeout(800);
    await play(3);
    // Step frame by frame while paused: each step must end showing its own overlay.
    for (let k = 0; k < 5; k += 1) {
      await page.keyboard.press('ArrowRight');
      await page.waitForTimeout(400);
      const shown = await page.evaluate(() => ({
        video: window.meshreel.state.current,
        overlay: document.getElementById('overlay').dataset.frame,
      }));
      if (String(shown.video) !== shown.overlay) {
        failures.push(`after a step the video shows frame ${shown.video} but the overlay ${shown.overlay}`);
      }
    }

    const samples = await page.evaluate(() => window.e2e.samples);
    const coded = samples.filter((s) => s.code !== null);
    // The test reads the picture by drawing the video into a canvas inside its callback. On a loaded machine
    // the decoder can already hold the next frame by then, so that read is not the presented frame the
    // callback describes; such samples cannot judge the overlay and are left out of the comparison. A
    // systematic offset would show up here as mass disagreement and fails below.
    const consistent = coded.filter((s) => s.media === s.code);
    const mismatched = consistent.filter((s) => s.overlay !== null && s.overlay !== s.code);
    const warm = consistent.filter((s) => s.playing && s.sincePlay !== null && s.sincePlay > 1000);
    const own = warm.filter((s) => s.overlay === s.code);
    const mediaAgrees = consistent.length;
    console.log(`presented frames seen: ${samples.length}, with a readable code: ${coded.length}`);
    console.log(`mediaTime·fps rounded names the coded frame in ${mediaAgrees} of ${coded.length}; the others ` +
      `(read a frame ahead of the callback): ${JSON.stringify(coded.filter((s) => s.media !== s.code))}`);
    if (mediaAgrees < 0.97 * coded.length) {
      failures.push(`mediaTime·fps named the coded frame in only ${mediaAgrees} of ${coded.length} frames`);
    }
    console.log(`overlay names another frame: ${mismatched.length}`);
    const lateness = coded.map((s) => s.late).sort((a, b) => a - b);
    const at = (q) => lateness[Math.min(lateness.length - 1, Math.floor(q * lateness.length))];
    console.log(`callback lateness against expectedDisplayTime, ms: p10 ${at(0.1)}, p50 ${at(0.5)}, ` +
      `p90 ${at(0.9)}, max ${at(1)}; of mismatched: ${JSON.stringify(mismatched.map((s) => s.late))}`);
    console.log(`after the first second of playing: ${own.length} of ${warm.length} show their own overlay`);
    if (coded.length < samples.length * 0.95) failures.push('the frame code could not be read in most frames');
    if (mismatched.length) {
      failures.push(`${mismatched.length} presented frames showed another frame's overlay, e.g. ` +
        JSON.stringify(mismatched.slice(0, 3)));
    }
    if (warm.length < 100) failures.push(`only ${warm.length} frames were presented while playing`);
    if (own.length < 0.99 * warm.length) {
      failures.push(`only ${own.length} of ${warm.length} frames showed their own overlay (99 % needed)`);
    }
    if (pageErrors.length) failures.push(`page errors: ${pageErrors.join('; ')}`);

    // A screenshot for the README: paused in the two-person stretch.
    await page.$eval('#scrub', (input) => {
      input.value = '230';
      input.dispatchEvent(new Event('input'));
    });
    await page.waitForFunction(() => document.getElementById('overlay').dataset.frame === '230', null,
      { timeout: 15_000 });
    mkdirSync(path.dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot });
    console.log(`screenshot: ${path.relative(root, screenshot)}`);
  } finally {
    server.kill('SIGINT');
  }
  try {
    await withoutVideo(browser, failures);
  } finally {
    await browser.close();
  }
  return failures;
}

/** A sequence without a video plays on a clock over a neutral background, overlay and all. */
async function withoutVideo(browser, failures) {
  const { server, url } = await startServer('data-samples/mini');
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const pageErrors = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto(`${url}/`);
    await page.waitForFunction(() => window.meshreel && window.meshreel.ready, null, { timeout: 30_000 });
    await page.waitForFunction(() => document.getElementById('overlay').dataset.frame === '0', null,
      { timeout: 15_000 });
    await page.click('#play');
    await page.waitForTimeout(1000);
    const seen = await page.evaluate(() => {
      const stage = document.getElementById('stage').getBoundingClientRect();
      const overlay = document.getElementById('overlay').getBoundingClientRect();
      return {
        frame: Number(document.getElementById('overlay').dataset.frame || -1),
        current: window.meshreel.state.current,
        stage: [stage.width, stage.height],
        overlay: [overlay.width, overlay.height],
      };
    });
    console.log(`without a video, after 1 s of playing: ${JSON.stringify(seen)}`);
    if (!(seen.current >= 15 && seen.current <= 45)) {
      failures.push(`without a video the clock should be near frame 30 after 1 s, not ${seen.current}`);
    }
    if (seen.frame !== seen.current && seen.frame !== -1) {
      failures.push(`without a video frame ${seen.current} showed overlay ${seen.frame}`);
    }
    if (seen.stage[0] < 600 || seen.overlay[0] < 300) {
      failures.push(`without a video the stage or overlay collapsed: ${JSON.stringify(seen)}`);
    }
    if (pageErrors.length) failures.push(`page errors without a video: ${pageErrors.join('; ')}`);
  } finally {
    server.kill('SIGINT');
  }
}

try {
  const failures = await run();
  for (const failure of failures) console.error(`FAIL: ${failure}`);
  process.exit(failures.length ? 1 : 0);
} catch (error) {
  console.error(`cannot run the browser test: ${error.stack || error}`);
  process.exit(2);
}
