// Composited sync and smoothness, as figures: plays 9 s of the demo in headed Chromium on Xvfb and reads the
// screen at 120 Hz (screen.mjs), for the plain <video> element (Chromium's own video page: the baseline for
// smoothness), the player's two-layer fallback (`?present=layers`) and the player's one picture, each idle and
// with one core kept busy. For each it prints the screen samples where the overlay showed another frame, the
// video frames that never reached the screen, and the frames the browser dropped, over the 8 s of steady
// playback after the first second. Figures, not a test: it never fails on them.
//
//   node tests/browser/sync-bench.mjs [--runs N] [--only video,layers,composite] [--old-web DIR]
//
// `--old-web DIR` adds the player in DIR (e.g. an older version, `git archive`d) as `old`, judged on its
// `#overlay` canvas. MESHREEL_BIN and CHROMIUM as for the browser test; the binary must know
// --stamp-frame-code (`cargo build --release` and MESHREEL_BIN=target/release/meshreel for release figures).

import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { judge, pictureRect, startBrowser, startCapture, startDisplay } from './screen.mjs';
import { startServer } from './player.e2e.mjs';

const { values: options } = parseArgs({
  options: {
    runs: { type: 'string', default: '1' },
    only: { type: 'string', default: 'video,layers,composite' },
    'old-web': { type: 'string' },
  },
});
const SCREEN = { width: 1280, height: 900 };
const PLAY_MS = 9000;

/** One core kept busy by a shell loop, as another program would. */
function loadOneCore() {
  const busy = spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' });
  return () => busy.kill('SIGKILL');
}

async function measure(page, mode, url, sequence) {
  const sequenceId = sequence.id;
  const video = mode.name === 'video';
  await page.goto(video ? `${url}/api/sequences/${encodeURIComponent(sequenceId)}/video` : `${url}/${mode.query}`);
  if (video) {
    await page.waitForFunction(() => document.querySelector('video')?.readyState >= 2, null, { timeout: 30_000 });
  } else {
    await page.waitForFunction(() => window.meshreel && window.meshreel.ready, null, { timeout: 30_000 });
    await page.waitForFunction((selector) => document.querySelector(selector).dataset.frame === '0',
      mode.selector, { timeout: 15_000 });
  }
  await page.waitForTimeout(500);
  const { rect, picture } = await pictureRect(page, video ? 'video' : mode.selector);
  const capture = startCapture({ display: process.env.DISPLAY, rect, picture });
  await page.waitForTimeout(300);
  const events = [{ at: Date.now(), kind: 'play' }];
  if (video) await page.evaluate(() => document.querySelector('video').play());
  else await page.click('#play');
  await page.waitForTimeout(PLAY_MS);
  events.push({ at: Date.now(), kind: 'pause' });
  const quality = await page.evaluate(() => {
    const element = document.querySelector('video');
    element.pause();
    return element.getVideoPlaybackQuality().droppedVideoFrames;
  });
  return { verdict: judge(await capture.stop(), events, sequence.fps), dropped: quality };
}

async function main() {
  const display = await startDisplay(SCREEN);
  process.env.DISPLAY = display.display;
  const wanted = new Set(options.only.split(','));
  const modes = [
    { name: 'video' },
    { name: 'layers', query: '?present=layers', selector: '#view' },
    { name: 'composite', query: '', selector: '#view' },
  ].filter((mode) => wanted.has(mode.name));
  if (options['old-web']) modes.push({ name: 'old', query: '', selector: '#overlay', webDir: options['old-web'] });
  const rows = [];
  for (let run = 0; run < Number(options.runs); run += 1) {
    for (const load of ['idle', 'one core busy']) {
      for (const mode of modes) {
        const extra = ['--stamp-frame-code', ...(mode.webDir ? ['--web-dir', mode.webDir] : [])];
        const { server, url } = await startServer('data-samples/demo', extra);
        const browser = await startBrowser({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
          ...SCREEN, display: display.display, url: 'about:blank' });
        const stopLoad = load === 'idle' ? () => {} : loadOneCore();
        try {
          const sequences = await (await fetch(`${url}/api/sequences`)).json();
          const { verdict, dropped } = await measure(browser.page, mode, url, sequences.sequences[0]);
          const both = verdict.playing - verdict.missing - verdict.unreadable;
          const row = {
            mode: mode.name, load, run,
            samples: verdict.playing,
            mismatched: mode.name === 'video' ? '–' : `${verdict.mismatched.length} (${
              (100 * verdict.mismatched.length / Math.max(1, both)).toFixed(1)} %)`,
            noOverlay: mode.name === 'video' ? '–' : verdict.missing,
            framesOnScreen: verdict.framesOnScreen,
            skippedOnScreen: verdict.skippedOnScreen,
            dropped,
          };
          rows.push(row);
          console.log(JSON.stringify(row));
        } finally {
          stopLoad();
          await browser.close();
          server.kill('SIGINT');
        }
      }
    }
  }
  console.log('\nmode       load           run  steady samples  overlay of another frame  no overlay  ' +
    'frames on screen  skipped on screen  dropped');
  for (const row of rows) {
    console.log(`${row.mode.padEnd(10)} ${row.load.padEnd(14)} ${String(row.run).padEnd(4)} ` +
      `${String(row.samples).padEnd(15)} ${String(row.mismatched).padEnd(25)} ${String(row.noOverlay).padEnd(11)} ` +
      `${String(row.framesOnScreen).padEnd(17)} ${String(row.skippedOnScreen).padEnd(18)} ${row.dropped}`);
  }
  display.close();
}

main().catch((error) => {
  console.error(error.stack || error);
  process.exit(2);
});
