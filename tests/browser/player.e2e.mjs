// End-to-end: meshreel's player on the demo sequence, judged from the screen as a person sees it.
//
// Starts `meshreel serve data-samples/demo --stamp-frame-code` (every overlay image carries its own frame code
// below the video's), shows the player in Chromium headed and full-screen on a virtual X display (Xvfb), and
// reads the display 120 times a second (ffmpeg x11grab, screen.mjs). Each screen sample gives the video frame
// on screen and the overlay shown with it. The player plays, seeks, plays again and steps; the test fails on
// any judged sample where the two codes differ — steady playback from 1 s after each play starts, and paused
// pictures from 300 ms after each pause or seek (start-up and seeks may settle; mismatches there are counted
// and printed all the same) — or when fewer than 98 % of judged samples show an overlay at all. It then judges
// the controls from the canvas's own pixels while paused (overlay off, opacity, side by side, a resized stage,
// the HUD, speed 2×), and checks the two-layer fallback's HUD, a sequence without video, and saves a screenshot (docs/player.png with
// MESHREEL_UPDATE_SCREENSHOT=1, else target/player.png).
//
// Environment: MESHREEL_BIN (the meshreel binary; default target/debug/meshreel), CHROMIUM (default
// /usr/bin/chromium), MESHREEL_WEB_DIR (serve another copy of the player, e.g. a broken one to see this test
// fail). Exit status 0 on success, 1 on a failed check, 2 when something could not start.

import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CODE_ROWS, judge, OVERLAY_CODE, pictureRect, readCode, startBrowser, startCapture, startDisplay, VIDEO_CODE,
} from './screen.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const binary = process.env.MESHREEL_BIN || path.join(root, 'target/debug/meshreel');
const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';
const screenshot = process.env.MESHREEL_UPDATE_SCREENSHOT
  ? path.join(root, 'docs/player.png')
  : path.join(root, 'target/player.png');
const SCREEN = { width: 1280, height: 900 };
/** Judged samples that must show an overlay (the rest are misses: an overlay that had not arrived). */
const MIN_SHOWN = 0.98;
/** Of the video frames steady playback should show in the judged time, the share that must reach the screen
 * (a capture or a player that stands still fails this). */
const MIN_ON_SCREEN = 0.9;

export function startServer(sequence, extra = []) {
  const server = spawn(
    binary,
    ['serve', path.join(root, sequence), '--bind', '127.0.0.1:0', '--renderer', 'cpu', ...extra],
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

const frameShown = (page, frame) => page.waitForFunction(
  (wanted) => document.getElementById('view').dataset.frame === wanted, String(frame), { timeout: 15_000 });

async function setScrub(page, frame) {
  await page.$eval('#scrub', (input, value) => {
    input.value = String(value);
    input.dispatchEvent(new Event('input'));
  }, frame);
}

async function playerOnScreen(page, url, failures) {
  await page.goto(`${url}/`);
  await page.waitForFunction(() => window.meshreel && window.meshreel.ready, null, { timeout: 30_000 });
  await frameShown(page, 0);
  const composite = await page.evaluate(() => window.meshreel.composite);
  if (!composite) failures.push('this Chromium did not get the one-picture (composite) player');
  const { rect, picture } = await pictureRect(page, '#view');
  const capture = startCapture({ display: process.env.DISPLAY, rect, picture });
  const events = [];
  const mark = (kind) => events.push({ at: Date.now(), kind });
  await page.waitForTimeout(300);
  mark('pause');

  const play = async (seconds) => {
    mark('play');
    await page.click('#play');
    await page.waitForTimeout(seconds * 1000);
    mark('pause');
    await page.click('#play');
    await page.waitForTimeout(500);
  };
  await play(4);
  // Seek into the two-person stretch, then play across its end, stopping before the clip's end (frame 299),
  // where the next click on play would restart the video from frame 0.
  mark('seek');
  await setScrub(page, 200);
  await page.waitForTimeout(800);
  await play(3);
  // Step frame by frame while paused: each step must end showing its own overlay.
  for (let k = 0; k < 5; k += 1) {
    mark('seek');
    await page.keyboard.press('ArrowRight');
    await page.waitForTimeout(500);
    const shown = await page.evaluate(() => ({
      video: window.meshreel.state.current,
      frame: document.getElementById('view').dataset.frame,
    }));
    if (String(shown.video) !== shown.frame) {
      failures.push(`after a step the video shows frame ${shown.video} but the overlay ${shown.frame}`);
    }
  }
  const samples = await capture.stop();
  const quality = await page.evaluate(() => {
    const q = document.getElementById('video').getVideoPlaybackQuality();
    const { state } = window.meshreel;
    return { dropped: q.droppedVideoFrames, decoded: q.totalVideoFrames, misses: state.misses,
      pictureAhead: state.pictureAhead, fps: state.fps };
  });

  const verdict = judge(samples, events, quality.fps);
  const shownShare = verdict.judged ? 1 - (verdict.missing + verdict.unreadable) / verdict.judged : 0;
  console.log(`screen samples: ${verdict.samples} at 120 Hz, judged ${verdict.judged} (${verdict.playing} ` +
    `playing); video and overlay differ: ${verdict.mismatched.length} judged, ${verdict.unjudgedMismatched} ` +
    `while settling; no overlay: ${verdict.missing}; no readable video code: ${verdict.unreadable}`);
  console.log(`frames on screen while playing: ${verdict.framesOnScreen} of ${verdict.expectedOnScreen} due, ` +
    'skipped on screen: ' +
    `${verdict.skippedOnScreen}; browser: ${quality.dropped} dropped of ${quality.decoded}; player: ` +
    `${quality.misses} misses, ${quality.pictureAhead} pictures newer than their callback`);
  if (verdict.mismatched.length) {
    failures.push(`${verdict.mismatched.length} screen samples showed another frame's overlay, e.g. ` +
      JSON.stringify(verdict.mismatched.slice(0, 5)));
  }
  if (verdict.playing < 400) failures.push(`only ${verdict.playing} screen samples of steady playback`);
  if (verdict.framesOnScreen < MIN_ON_SCREEN * verdict.expectedOnScreen) {
    failures.push(`only ${verdict.framesOnScreen} distinct video frames reached the screen while playing, of ` +
      `${verdict.expectedOnScreen} due: the screen (or its capture) stood still`);
  }
  if (verdict.unreadable > 0.02 * verdict.judged) {
    failures.push(`the video's frame code could not be read in ${verdict.unreadable} of ${verdict.judged} ` +
      'screen samples: the capture does not see the picture');
  }
  if (shownShare < MIN_SHOWN) {
    failures.push(`only ${(100 * shownShare).toFixed(1)} % of judged screen samples showed an overlay ` +
      `(${100 * MIN_SHOWN} % needed)`);
  }
}

/** The top CODE_ROWS rows of the one-picture canvas, as the page drew them: width, height and RGBA pixels. */
async function canvasTop(page) {
  const { width, height, pixels } = await page.evaluate((rows) => {
    const canvas = document.getElementById('view');
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, Math.ceil(canvas.height * rows / 480))
      .data;
    return { width: canvas.width, height: canvas.height, pixels: Array.from(data) };
  }, CODE_ROWS);
  return { width, height, pixels: Uint8ClampedArray.from(pixels) };
}

/** The codes in a canvas region `x0`.. of `pictureWidth`, for a picture `pictureHeight` high. */
function codesAt(top, x0, pictureWidth, pictureHeight) {
  const rows = Math.min(top.pixels.length / 4 / top.width, Math.ceil(pictureHeight * CODE_ROWS / 480));
  const region = new Uint8ClampedArray(pictureWidth * rows * 4);
  for (let y = 0; y < rows; y += 1) {
    const start = (y * top.width + x0) * 4;
    region.set(top.pixels.subarray(start, start + pictureWidth * 4), y * pictureWidth * 4);
  }
  return {
    video: readCode(region, pictureWidth, pictureWidth, pictureHeight, VIDEO_CODE),
    overlay: readCode(region, pictureWidth, pictureWidth, pictureHeight, OVERLAY_CODE),
    region,
  };
}

/** Mean absolute difference between `mix` and `a`·(1 − t) + `b`·t over the colour channels. */
function blendError(mix, a, b, t) {
  let sum = 0;
  let count = 0;
  for (let i = 0; i < mix.length; i += 4) {
    for (let c = 0; c < 3; c += 1, count += 1) sum += Math.abs(mix[i + c] - (a[i + c] * (1 - t) + b[i + c] * t));
  }
  return sum / count;
}

/**
 * The controls keep working on the one picture, judged from the canvas's own pixels while paused at one frame:
 * overlay off shows the video alone and says so; opacity blends the overlay over the video in proportion; side
 * by side puts the video on the left and the overlay, with its own code, on the right; a resized stage keeps
 * the picture whole and the video under it; the HUD names the frame; speed 2× plays twice as fast.
 */
async function controls(page, url, failures) {
  const FRAME = 40;
  await page.goto(`${url}/`);
  await page.waitForFunction(() => window.meshreel && window.meshreel.ready, null, { timeout: 30_000 });
  await setScrub(page, FRAME);
  await frameShown(page, FRAME);
  await page.waitForTimeout(300);
  const check = (ok, message) => {
    if (!ok) failures.push(message);
  };
  const on = await canvasTop(page);
  const [w, h] = [on.width, on.height];
  const onCodes = codesAt(on, 0, w, h);
  console.log(`controls at frame ${FRAME}: canvas ${w}×${h}, codes ${JSON.stringify([onCodes.video, onCodes.overlay])}`);
  check(onCodes.video === FRAME && onCodes.overlay === FRAME,
    `paused at frame ${FRAME} the canvas shows video ${onCodes.video} with overlay ${onCodes.overlay}`);
  const hud = await page.evaluate(() => ({
    video: document.getElementById('hud-video').textContent,
    overlay: document.getElementById('hud-overlay').textContent,
  }));
  check(hud.video.startsWith(`${FRAME} `) && hud.overlay === String(FRAME),
    `the HUD says video "${hud.video}", overlay "${hud.overlay}" at frame ${FRAME}`);

  // Overlay off: the video alone, labelled off.
  await page.click('#show-overlay');
  const offLabel = await page.$eval('#view', (canvas) => ({ ...canvas.dataset }));
  const off = await canvasTop(page);
  const offCodes = codesAt(off, 0, w, h);
  check(offLabel.status === 'off' && offLabel.frame === '',
    `with the overlay off the canvas says ${JSON.stringify(offLabel)}`);
  check(offCodes.video === FRAME && offCodes.overlay === null,
    `with the overlay off the canvas shows video ${offCodes.video} and overlay code ${offCodes.overlay}`);
  await page.click('#show-overlay');

  // Opacity: at 0.5 each pixel is halfway between the video alone and the overlay at full opacity.
  const setOpacity = (value) => page.$eval('#opacity', (input, v) => {
    input.value = String(v);
    input.dispatchEvent(new Event('input'));
  }, value);
  await setOpacity(1);
  const full = codesAt(await canvasTop(page), 0, w, h).region;
  await setOpacity(0.5);
  const half = codesAt(await canvasTop(page), 0, w, h).region;
  const error = blendError(half, offCodes.region, full, 0.5);
  const apart = blendError(offCodes.region, full, full, 0);
  console.log(`opacity 0.5: ${error.toFixed(2)} levels from the halfway blend (video alone and full overlay ` +
    `${apart.toFixed(1)} apart)`);
  check(apart > 10 && error < 2, `at opacity 0.5 the canvas is ${error.toFixed(2)} levels from the halfway ` +
    `blend of the video (${apart.toFixed(1)} levels from the full overlay)`);
  await setOpacity(0.85);

  // Side by side: video on the left, the overlay with its own code on the right, 8 picture pixels apart.
  await page.click('#side-by-side');
  await frameShown(page, FRAME);
  const side = await canvasTop(page);
  const left = codesAt(side, 0, w, h);
  const right = codesAt(side, w + 8, w, h);
  console.log(`side by side: canvas ${side.width}×${side.height}, left ${JSON.stringify([left.video, left.overlay])}` +
    `, right overlay ${right.overlay}`);
  check(side.width === 2 * w + 8 && side.height === h, `side by side the canvas is ${side.width}×${side.height}`);
  check(left.video === FRAME && left.overlay === null && right.overlay === FRAME,
    `side by side the left shows video ${left.video} (overlay code ${left.overlay}), the right overlay ` +
    `${right.overlay}`);
  await page.click('#side-by-side');

  // Resizing the stage keeps the whole picture in it, its aspect kept, the video exactly under it.
  const boxes = () => page.evaluate(() => {
    const box = (id) => {
      const r = document.getElementById(id).getBoundingClientRect();
      return { x: r.x, y: r.y, width: r.width, height: r.height };
    };
    return { stage: box('stage'), view: box('view'), video: box('video') };
  });
  await page.$eval('#stage', (stage) => { stage.style.height = '260px'; });
  await page.waitForTimeout(200);
  const small = await boxes();
  await page.$eval('#stage', (stage) => { stage.style.height = ''; });
  const inside = small.view.x >= small.stage.x - 1 && small.view.y >= small.stage.y - 1 &&
    small.view.x + small.view.width <= small.stage.x + small.stage.width + 1 &&
    small.view.y + small.view.height <= small.stage.y + small.stage.height + 1;
  const aspect = (small.view.width / small.view.height) / (w / h);
  const under = ['x', 'y', 'width', 'height'].every((k) => Math.abs(small.view[k] - small.video[k]) < 1);
  console.log(`stage 260 px high: picture ${small.view.width.toFixed(0)}×${small.view.height.toFixed(0)}`);
  check(inside && Math.abs(aspect - 1) < 0.01 && small.view.height > 250 && under,
    `after a resize the picture does not fit the stage with its aspect and the video under it: ` +
    JSON.stringify(small));

  // Speed 2×: a second of playing moves about 60 frames, and the picture settles on its own overlay.
  await page.selectOption('#speed', '2');
  const startFrame = await page.evaluate(() => window.meshreel.state.current);
  await page.click('#play');
  await page.waitForTimeout(1000);
  await page.click('#play');
  await page.waitForTimeout(400);
  const after = await page.evaluate(() => ({
    current: window.meshreel.state.current, frame: document.getElementById('view').dataset.frame,
  }));
  await page.selectOption('#speed', '1');
  const moved = after.current - startFrame;
  console.log(`speed 2×: ${moved} frames in about 1 s of playing`);
  check(moved >= 45 && moved <= 80, `at speed 2× one second of playing moved ${moved} frames, not about 60`);
  check(after.frame === String(after.current),
    `after playing at 2× the video is at frame ${after.current} but the overlay shows ${after.frame}`);
}

/** Browsers without VideoFrame get two layers; the HUD must say that sync is approximate there. */
async function layersFallback(page, url, failures) {
  await page.goto(`${url}/?present=layers`);
  await page.waitForFunction(() => window.meshreel && window.meshreel.ready, null, { timeout: 30_000 });
  await frameShown(page, 0);
  const sync = await page.$eval('#hud-sync', (element) => element.textContent);
  console.log(`two-layer fallback, HUD sync: ${sync}`);
  if (!/approximate/.test(sync)) failures.push(`the two-layer fallback's HUD says "${sync}", not approximate`);
}

/** A sequence without a video plays on a clock over a neutral background, overlay and all. */
async function withoutVideo(page, failures) {
  const { server, url } = await startServer('data-samples/mini');
  try {
    await page.goto(`${url}/`);
    await page.waitForFunction(() => window.meshreel && window.meshreel.ready, null, { timeout: 30_000 });
    await frameShown(page, 0);
    await page.click('#play');
    await page.waitForTimeout(1000);
    const seen = await page.evaluate(() => {
      const stage = document.getElementById('stage').getBoundingClientRect();
      const view = document.getElementById('view').getBoundingClientRect();
      return {
        frame: Number(document.getElementById('view').dataset.frame || -1),
        current: window.meshreel.state.current,
        stage: [stage.width, stage.height],
        view: [view.width, view.height],
      };
    });
    console.log(`without a video, after 1 s of playing: ${JSON.stringify(seen)}`);
    if (!(seen.current >= 15 && seen.current <= 45)) {
      failures.push(`without a video the clock should be near frame 30 after 1 s, not ${seen.current}`);
    }
    if (seen.frame !== seen.current && seen.frame !== -1) {
      failures.push(`without a video frame ${seen.current} showed overlay ${seen.frame}`);
    }
    if (seen.stage[0] < 600 || seen.view[0] < 300) {
      failures.push(`without a video the stage or picture collapsed: ${JSON.stringify(seen)}`);
    }
  } finally {
    server.kill('SIGINT');
  }
}

/** A screenshot for the README, without the stamped code: paused in the two-person stretch. */
async function saveScreenshot(page) {
  const { server, url } = await startServer('data-samples/demo');
  try {
    await page.goto(`${url}/`);
    await page.waitForFunction(() => window.meshreel && window.meshreel.ready, null, { timeout: 30_000 });
    await setScrub(page, 230);
    await frameShown(page, 230);
    await page.waitForTimeout(300);
    mkdirSync(path.dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot });
    console.log(`screenshot: ${path.relative(root, screenshot)}`);
  } finally {
    server.kill('SIGINT');
  }
}

async function run() {
  const display = await startDisplay(SCREEN);
  process.env.DISPLAY = display.display;
  const failures = [];
  let browser = null;
  const { server, url } = await startServer('data-samples/demo', ['--stamp-frame-code']);
  try {
    browser = await startBrowser({ executablePath: browserPath, ...SCREEN, display: display.display,
      url: 'about:blank' });
    const { page } = browser;
    const pageErrors = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    // Each part's failure is reported and the others still run.
    const part = async (name, check) => {
      try {
        await check();
      } catch (error) {
        failures.push(`${name}: ${error.message}`);
      }
    };
    await part('the player on screen', () => playerOnScreen(page, url, failures));
    await part('the controls', () => controls(page, url, failures));
    await part('the two-layer fallback', () => layersFallback(page, url, failures));
    server.kill('SIGINT');
    await part('the screenshot', () => saveScreenshot(page));
    await part('a sequence without video', () => withoutVideo(page, failures));
    if (pageErrors.length) failures.push(`page errors: ${pageErrors.join('; ')}`);
  } finally {
    server.kill('SIGINT');
    await browser?.close();
    display.close();
  }
  return failures;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    const failures = await run();
    for (const failure of failures) console.error(`FAIL: ${failure}`);
    process.exit(failures.length ? 1 : 0);
  } catch (error) {
    console.error(`cannot run the browser test: ${error.stack || error}`);
    process.exit(2);
  }
}
