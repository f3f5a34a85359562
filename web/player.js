// The meshreel player: the video with the server-rendered mesh overlay, in sync frame for frame by
// construction. In each requestVideoFrameCallback the video's current picture is taken as a VideoFrame, its own
// timestamp names its frame (round((t − start)·fps)), and the picture and that frame's overlay are drawn into
// one canvas together (screen.js): the screen can only show them as one picture. An overlay that has not
// arrived is left out and counted as a miss, never replaced by a neighbour's.

import { FrameStream, fetchFrame, getJson } from './api.js';
import { FrameStore } from './frames.js';
import { Screen } from './screen.js';
import { Timeline } from './timeline.js';

const $ = (id) => document.getElementById(id);
const ui = {
  stage: $('stage'),
  video: $('video'),
  noVideo: $('no-video'),
  view: $('view'),
  error: $('error'),
  sequence: $('sequence'),
  model: $('model'),
  prerender: $('prerender'),
  play: $('play'),
  back: $('back'),
  forward: $('forward'),
  prevGap: $('prev-gap'),
  nextGap: $('next-gap'),
  scrub: $('scrub'),
  position: $('position'),
  speed: $('speed'),
  showOverlay: $('show-overlay'),
  opacity: $('opacity'),
  sideBySide: $('side-by-side'),
  statsBody: $('stats-body'),
};
const hud = Object.fromEntries(
  ['video', 'overlay', 'status', 'reason', 'source', 'cache', 'latency', 'ahead', 'misses', 'dropped', 'sync']
    .map((name) => [name, $(`hud-${name}`)]),
);

/** Misses count only once playback has run this long: the first frames of a start are still on their way. */
const WARM_UP_MS = 1000;
/** How often the playhead is reported while playing. */
const REPORT_EVERY_MS = 200;
/** How often the HUD, scrubber and timeline follow the playhead while playing: text and layout stay out of
 * most frames' work. */
const UI_EVERY_MS = 100;

/** One picture of video and overlay needs VideoFrame and requestVideoFrameCallback; `?present=layers`
 * forces the two-layer fallback (to compare them). */
const COMPOSITE = typeof VideoFrame === 'function' &&
  'requestVideoFrameCallback' in HTMLVideoElement.prototype &&
  new URLSearchParams(location.search).get('present') !== 'layers';

const state = {
  id: null,
  meta: null,
  fps: 30,
  count: 0,
  start: 0,
  hasVideo: false,
  current: -1,
  /** A seek's frame until the video presents it. */
  target: null,
  /** The overlay frame on screen, or null. */
  shown: null,
  /** Composite mode: the picture on screen (a VideoFrame), kept to redraw it with a late overlay. */
  picture: null,
  /** Callbacks whose picture had already moved past the frame the callback reported. */
  pictureAhead: 0,
  lastUiAt: 0,
  uiTimer: null,
  playing: false,
  rate: 1,
  clock: null,
  playStartedAt: 0,
  lastReportAt: 0,
  misses: 0,
  presented: 0,
  dropped: 0,
  lastPresentedFrames: null,
  loadToken: 0,
};
const store = new FrameStore();
let stream = null;
const screen = new Screen(ui.view, COMPOSITE);
const timeline = new Timeline($('timeline'), (index) => seek(index));

// For automation and debugging: tests read the view's data-frame, and may read these.
window.meshreel = { state, store, composite: COMPOSITE };

// ---------------------------------------------------------------------------------------------------------
// Frames

function clampIndex(index) {
  return Math.min(Math.max(index, 0), Math.max(state.count - 1, 0));
}

/** The 0-based frame index of a presented video frame. */
function indexAtMediaTime(mediaTime) {
  return clampIndex(Math.round((mediaTime - state.start) * state.fps));
}

/** The frame index of a VideoFrame taken from the video (its timestamp is in microseconds). */
function indexOfPicture(picture) {
  return indexAtMediaTime(picture.timestamp / 1e6);
}

/** Puts frame `index` on screen: in composite mode with `picture` (that frame's picture, or null
 * without a video), drawn with its overlay in this task; in layers mode the overlay alone. An overlay that is
 * not here yet (or, in layers mode, too late to show) is left out, counted as a miss and asked for. */
function present(index, { picture = null, late = false } = {}) {
  state.current = index;
  state.target = null;
  if (picture !== state.picture) {
    state.picture?.close();
    state.picture = picture;
  }
  const frame = late ? null : store.get(index) ?? null;
  draw(frame);
  if (!frame) {
    if (state.playing && performance.now() - state.playStartedAt > WARM_UP_MS) state.misses += 1;
    if (!late) request(index);
  }
  reportPlayhead(false);
  updateUi();
}

/** Draws the current picture with `frame`'s overlay (or none). */
function draw(frame) {
  const size = frame && !state.hasVideo ? [frame.bitmap.width, frame.bitmap.height] : null;
  if (size && (size[0] !== screen.pictureWidth || size[1] !== screen.pictureHeight)) {
    configureScreen(size);
  }
  state.shown = screen.draw(state.picture, frame) ? frame.index : null;
  if (state.shown !== null) state.presented += 1;
}

/** Fetches one frame over HTTP (a seek, a step, or a frame the stream has not brought in time). */
function request(index) {
  if (index < 0 || index >= state.count || store.has(index) || store.pending.has(index)) return;
  store.pending.add(index);
  const token = state.loadToken;
  fetchFrame(state.id, index)
    .then((frame) => {
      if (token !== state.loadToken) return frame.bitmap.close();
      arrived(frame);
    })
    .catch((error) => {
      store.pending.delete(index);
      if (token === state.loadToken) showError(`frame ${index}: ${error.message}`);
    });
}

/** A frame from the stream or from HTTP. If it is the one on screen, it is drawn with that same picture. */
function arrived(frame) {
  store.put(frame, state.current);
  if (frame.index === state.current && state.shown !== state.current && state.target === null) {
    draw(frame);
    updateUi(true);
  }
}

function reportPlayhead(force) {
  if (!stream) return;
  const now = performance.now();
  if (!force && now - state.lastReportAt < REPORT_EVERY_MS) return;
  state.lastReportAt = now;
  stream.playhead(Math.max(state.target ?? state.current, 0), state.rate, state.playing);
}

// ---------------------------------------------------------------------------------------------------------
// Playback: the video drives it when there is one, otherwise a clock.

function countDropped(metadata) {
  if (state.lastPresentedFrames !== null && state.playing) {
    state.dropped += Math.max(0, metadata.presentedFrames - state.lastPresentedFrames - 1);
  }
  state.lastPresentedFrames = metadata.presentedFrames;
}

/** Composite mode: the picture the video holds now, drawn with its own overlay. The picture's timestamp, not
 * the callback's mediaTime or a clock, names the frame: if the video has moved on since the callback was due,
 * the newer picture is drawn with the newer overlay. */
function onVideoFrameComposite(now, metadata) {
  countDropped(metadata);
  let picture = null;
  try {
    picture = new VideoFrame(ui.video);
  } catch {
    // No picture to take (the video is between sources): the next callback tries again.
  }
  if (picture) {
    if (indexOfPicture(picture) !== indexAtMediaTime(metadata.mediaTime)) state.pictureAhead += 1;
    pictures.take(picture);
  }
  ui.video.requestVideoFrameCallback(onVideoFrameComposite);
}

/**
 * The video's pictures on their way to the screen. A worker turns each VideoFrame into an ImageBitmap (the
 * YUV conversion is the costly step and would hold the main thread); at most one is being converted and one
 * waits, the newest (an older waiting one is dropped, as the screen has moved past it). Without workers'
 * OffscreenCanvas the VideoFrame is drawn directly.
 */
class PictureQueue {
  constructor(onPicture) {
    this.onPicture = onPicture;
    this.busy = false;
    this.waiting = null;
    this.generation = 0;
    this.worker = typeof OffscreenCanvas === 'function' ? new Worker('picture-worker.js') : null;
    if (this.worker) {
      this.worker.onmessage = ({ data }) => this.converted(data);
      this.worker.onerror = () => {
        this.worker = null;
        this.busy = false;
      };
    }
  }

  take(frame) {
    if (!this.worker) {
      this.onPicture(indexOfPicture(frame), frame);
      return;
    }
    if (this.busy) {
      this.waiting?.close();
      this.waiting = frame;
      return;
    }
    this.send(frame);
  }

  send(frame) {
    this.busy = true;
    this.sentGeneration = this.generation;
    this.worker.postMessage(frame, [frame]);
  }

  converted({ timestamp, bitmap }) {
    this.busy = false;
    const next = this.waiting;
    this.waiting = null;
    if (next) this.send(next);
    // A picture converted for a sequence since replaced is dropped.
    if (!bitmap) return;
    if (this.sentGeneration !== this.generation) bitmap.close();
    else this.onPicture(indexAtMediaTime(timestamp / 1e6), bitmap);
  }

  /** Forgets pictures of the sequence being replaced. */
  clear() {
    this.generation += 1;
    this.waiting?.close();
    this.waiting = null;
  }
}
const pictures = new PictureQueue((index, picture) => present(index, { picture }));

/** Layers mode with requestVideoFrameCallback: the overlay alone, for the frame the callback reports. */
function onVideoFrame(now, metadata) {
  countDropped(metadata);
  const index = indexAtMediaTime(metadata.mediaTime);
  // A callback running more than a frame after its frame's display time (a starved main thread) means the
  // video has most likely moved on already: showing this frame's overlay now would pair it with the next
  // picture, so it counts as a miss instead. Callbacks normally arrive about half a frame early.
  if (state.playing && now - metadata.expectedDisplayTime > 1000 / state.fps) present(index, { late: true });
  else present(index);
  ui.video.requestVideoFrameCallback(onVideoFrame);
}

/** Browsers without requestVideoFrameCallback: poll currentTime every animation frame (approximate while
 * playing: currentTime follows the audio clock). */
function pollVideo() {
  const index = clampIndex(Math.floor((ui.video.currentTime - state.start) * state.fps + 1e-3));
  if (index !== state.current) present(index);
  requestAnimationFrame(pollVideo);
}

function tickClock(now) {
  if (!state.clock) return;
  const elapsed = ((now - state.clock.startedAt) / 1000) * state.fps * state.rate;
  const index = state.clock.startFrame + Math.floor(elapsed);
  if (index >= state.count) {
    setPlaying(false);
    return;
  }
  if (index !== state.current) present(index);
  requestAnimationFrame(tickClock);
}

function setPlaying(playing) {
  if (state.count === 0) return;
  if (state.hasVideo) {
    if (playing) ui.video.play().catch((error) => showError(`cannot play: ${error.message}`));
    else ui.video.pause();
    return;
  }
  state.playing = playing;
  // Playing from the last frame starts again from the first.
  const from = state.current >= state.count - 1 ? 0 : Math.max(state.current, 0);
  state.clock = playing ? { startedAt: performance.now(), startFrame: from } : null;
  if (playing) {
    state.playStartedAt = performance.now();
    requestAnimationFrame(tickClock);
  }
  playingChanged();
}

function playingChanged() {
  ui.play.textContent = state.playing ? '❚❚' : '▶';
  ui.play.setAttribute('aria-label', state.playing ? 'Pause (space)' : 'Play (space)');
  reportPlayhead(true);
}

function seek(index) {
  index = clampIndex(index);
  request(index);
  if (state.hasVideo) {
    // The middle of the frame, so rounding in the browser or the container cannot land on a neighbour.
    ui.video.currentTime = state.start + (index + 0.5) / state.fps;
    // The overlay follows when the video presents the frame (its next callback), never before.
    if (index === state.current) present(index, { picture: state.picture });
    else {
      state.target = index;
      reportPlayhead(true);
    }
  } else {
    if (state.clock) state.clock = { startedAt: performance.now(), startFrame: index };
    present(index);
    reportPlayhead(true);
  }
}

function step(delta) {
  if (state.playing) setPlaying(false);
  seek((state.target ?? state.current) + delta);
}

// ---------------------------------------------------------------------------------------------------------
// Layout: the canvas is fitted into the stage (object-fit: contain) at any size. In composite mode the
// <video> sits exactly under the canvas's picture, covered; in layers mode the canvas covers the video's
// picture (or, side by side, takes the right half).

/** The picture's own size: the video's, else the overlay frames'. */
function pictureSize() {
  if (state.hasVideo && ui.video.videoWidth > 0) return [ui.video.videoWidth, ui.video.videoHeight];
  return [screen.pictureWidth > 1 ? screen.pictureWidth : state.meta?.width || 1,
    screen.pictureHeight > 1 ? screen.pictureHeight : state.meta?.height || 1];
}

function configureScreen(size = pictureSize()) {
  const sideBySide = ui.sideBySide.checked;
  screen.configure({ width: size[0], height: size[1], sideBySide, withVideo: state.hasVideo });
  layout();
}

function place(element, left, top, width, height) {
  Object.assign(element.style, {
    left: `${left}px`, top: `${top}px`, width: `${width}px`, height: `${height}px`,
  });
}

function layout() {
  const width = ui.stage.clientWidth;
  const height = ui.stage.clientHeight;
  const sideBySide = ui.sideBySide.checked;
  const halves = sideBySide ? 2 : 1;
  // Layers mode side by side: the video and the canvas each take half the stage, 8 px apart.
  const [canvasWidth, canvasHeight] = COMPOSITE ? screen.size() : [screen.pictureWidth * halves + 8 * (halves - 1),
    screen.pictureHeight];
  const scale = Math.min(width / canvasWidth, height / canvasHeight);
  const left = (width - canvasWidth * scale) / 2;
  const top = (height - canvasHeight * scale) / 2;
  const pictureWidth = screen.pictureWidth * scale;
  const pictureHeight = screen.pictureHeight * scale;
  place(ui.video, left, top, pictureWidth, pictureHeight);
  if (COMPOSITE) place(ui.view, left, top, canvasWidth * scale, canvasHeight * scale);
  else place(ui.view, left + (sideBySide ? canvasWidth * scale - pictureWidth : 0), top, pictureWidth, pictureHeight);
}

// ---------------------------------------------------------------------------------------------------------
// HUD and panels

/** The HUD, scrubber, position and timeline follow the playhead: at once when paused, at most every
 * UI_EVERY_MS while playing (a timer catches the last change). */
function updateUi(force = false) {
  const now = performance.now();
  if (!force && state.playing && now - state.lastUiAt < UI_EVERY_MS) {
    state.uiTimer ??= setTimeout(() => {
      state.uiTimer = null;
      updateUi(true);
    }, UI_EVERY_MS);
    return;
  }
  state.lastUiAt = now;
  const index = state.current;
  timeline.setPlayhead(index);
  ui.scrub.value = String(index);
  ui.position.textContent = `${index + 1} / ${state.count}`;
  updateHud(store.get(index) ?? null);
}

function updateHud(frame) {
  const first = state.meta?.first_frame_number ?? 1;
  hud.video.textContent = state.current >= 0 ? `${state.current} (file ${state.current + first})` : '–';
  const miss = state.shown === null && state.current >= 0;
  hud.overlay.textContent = miss ? 'missing: not arrived yet' : String(state.shown);
  hud.overlay.classList.toggle('miss', miss);
  hud.status.textContent = frame ? frame.status : '–';
  hud.reason.textContent = frame?.reason || '–';
  hud.source.textContent = frame && frame.source !== null ? `frame ${frame.source}` : '–';
  hud.cache.textContent = frame ? frame.cache : '–';
  hud.latency.textContent = frame
    ? frame.latencyMs !== null
      ? `${frame.latencyMs.toFixed(1)} ms (render ${frame.renderMs.toFixed(1)} ms)`
      : `streamed (render ${frame.renderMs.toFixed(1)} ms)`
    : '–';
  hud.ahead.textContent = `${store.readyAhead(state.current + 1)} frames`;
  hud.misses.textContent = String(state.misses);
  hud.misses.classList.toggle('miss', state.misses > 0);
  hud.dropped.textContent = String(state.dropped);
}

function describeSync() {
  if (COMPOSITE) return 'exact: video and overlay drawn as one picture';
  if (!state.hasVideo) return 'clock (no video)';
  return 'approximate: two layers (this browser lacks VideoFrame or requestVideoFrameCallback)';
}

function table(rows, headings) {
  const element = document.createElement('table');
  if (headings) {
    const row = element.insertRow();
    for (const text of headings) {
      const cell = document.createElement('th');
      cell.textContent = text;
      row.appendChild(cell);
    }
  }
  for (const values of rows) {
    const row = element.insertRow();
    for (const value of values) row.insertCell().textContent = String(value);
  }
  return element;
}

function section(title, content) {
  const heading = document.createElement('h3');
  heading.textContent = title;
  ui.statsBody.append(heading, content);
}

/** Nested objects as dotted key/value rows. */
function flatten(object, prefix = '') {
  return Object.entries(object ?? {}).flatMap(([key, value]) =>
    value && typeof value === 'object' && !Array.isArray(value)
      ? flatten(value, `${prefix}${key}.`)
      : [[`${prefix}${key}`, typeof value === 'number' ? +value.toFixed(3) : value]],
  );
}

function renderStats(serverStats) {
  const meta = state.meta;
  if (!meta) return;
  ui.statsBody.replaceChildren();
  const total = Math.max(state.count, 1);
  const counts = Object.entries(meta.counts ?? {}).filter(([, value]) => typeof value === 'number');
  section(
    'Frames',
    table(counts.map(([name, value]) => [name, value, `${((100 * value) / total).toFixed(1)} %`]),
      ['status', 'frames', 'share']),
  );
  const reasons = new Map();
  for (const reason of Object.values(meta.timeline?.reasons ?? {})) {
    reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
  }
  if (reasons.size) {
    section('Reasons', table([...reasons].sort((a, b) => b[1] - a[1]), ['reason', 'frames']));
  }
  if (meta.warnings?.length) section('Warnings', table(meta.warnings.map((text) => [text])));
  section('Sequence', table(flatten({
    fps: meta.fps,
    frames: meta.num_frames,
    size: `${meta.width}×${meta.height}`,
    video: meta.video ? `${meta.video.codec ?? ''} ${meta.video.frame_count} frames` : 'none',
    renderer: meta.renderer?.description ?? meta.renderer?.backend,
    model: meta.model?.label,
  })));
  if (serverStats) section('Server', table(flatten(serverStats)));
}

function showPrerender(progress) {
  ui.prerender.textContent = progress
    ? `pre-rendering ${progress.done} / ${progress.total}${progress.running ? '' : ' (stopped)'}`
    : '';
}

let errorTimer = null;
function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => {
    ui.error.hidden = true;
  }, 6000);
}

// ---------------------------------------------------------------------------------------------------------
// Sequences

async function loadSequence(id) {
  state.loadToken += 1;
  const token = state.loadToken;
  stream?.close();
  stream = null;
  store.clear();
  state.clock = null;
  state.playing = false;
  state.picture?.close();
  pictures.clear();
  Object.assign(state, {
    misses: 0, presented: 0, dropped: 0, pictureAhead: 0, lastPresentedFrames: null, current: -1, picture: null,
  });
  const meta = await getJson(`/api/sequences/${encodeURIComponent(id)}`);
  if (token !== state.loadToken) return;
  Object.assign(state, {
    id,
    meta,
    fps: meta.video?.fps || meta.fps || 30,
    count: meta.num_frames,
    start: meta.video?.start_secs || 0,
    hasVideo: Boolean(meta.video_url),
  });
  ui.sequence.value = id;
  ui.model.textContent = meta.model?.kind === 'stand_in'
    ? 'stand-in body (not SMPL-X)'
    : meta.model?.label || 'SMPL-X';
  ui.model.classList.toggle('stand-in', meta.model?.kind === 'stand_in');
  ui.scrub.max = String(Math.max(state.count - 1, 0));
  timeline.setStatus(meta.timeline?.status ?? '');
  showPrerender(meta.prerender);
  renderStats(null);
  ui.stage.classList.toggle('without-video', !state.hasVideo);
  ui.video.hidden = !state.hasVideo;
  ui.noVideo.hidden = state.hasVideo;
  hud.sync.textContent = describeSync();
  stream = new FrameStream(id, {
    onFrame: (frame) => (token === state.loadToken ? arrived(frame) : frame.bitmap.close()),
    onMessage: (message) => {
      if (message.type === 'progress') showPrerender(message.prerender);
    },
  });
  if (state.hasVideo) {
    ui.video.src = meta.video_url;
    await new Promise((resolve) => ui.video.addEventListener('loadedmetadata', resolve, { once: true }));
    if (token !== state.loadToken) return;
    configureScreen();
    seek(0);
  } else {
    ui.video.removeAttribute('src');
    ui.video.load();
    configureScreen([meta.width || 1, meta.height || 1]);
    present(0);
  }
  if (!meta.timeline?.scanned) refreshUntilScanned(id, token);
  window.meshreel.ready = true;
}

/** Long sequences are scanned in the background: refresh the timeline until the scan is done. */
async function refreshUntilScanned(id, token) {
  while (token === state.loadToken) {
    await new Promise((resolve) => setTimeout(resolve, 1500));
    if (token !== state.loadToken) return;
    try {
      const meta = await getJson(`/api/sequences/${encodeURIComponent(id)}`);
      state.meta = meta;
      timeline.setStatus(meta.timeline?.status ?? '');
      if (meta.timeline?.scanned) return;
    } catch (error) {
      showError(error.message);
      return;
    }
  }
}

async function pollStats() {
  try {
    const stats = await getJson('/api/stats');
    if (ui.statsBody.isConnected && document.getElementById('stats').open) renderStats(stats);
    const progress = stats.prerender && state.id ? stats.prerender[state.id] ?? stats.prerender : null;
    if (progress && typeof progress.done === 'number') showPrerender(progress);
  } catch {
    // The next poll tries again.
  }
}

// ---------------------------------------------------------------------------------------------------------
// Wiring

function wire() {
  const { video } = ui;
  ui.stage.classList.toggle('composite', COMPOSITE);
  hud.sync.textContent = describeSync();
  if (COMPOSITE) {
    video.requestVideoFrameCallback(onVideoFrameComposite);
  } else if ('requestVideoFrameCallback' in HTMLVideoElement.prototype) {
    video.requestVideoFrameCallback(onVideoFrame);
  } else {
    requestAnimationFrame(pollVideo);
  }
  video.addEventListener('play', () => {
    state.playing = true;
    state.playStartedAt = performance.now();
    playingChanged();
  });
  for (const event of ['pause', 'ended']) {
    video.addEventListener(event, () => {
      state.playing = false;
      playingChanged();
    });
  }
  video.addEventListener('error', () => showError('the video cannot be played in this browser'));
  ui.play.addEventListener('click', () => setPlaying(!state.playing));
  ui.back.addEventListener('click', () => step(-1));
  ui.forward.addEventListener('click', () => step(1));
  const jumpToGap = (direction) => {
    const index = timeline.gap(state.current, direction);
    if (index !== null) seek(index);
  };
  ui.prevGap.addEventListener('click', () => jumpToGap(-1));
  ui.nextGap.addEventListener('click', () => jumpToGap(1));
  ui.scrub.addEventListener('input', () => seek(Number(ui.scrub.value)));
  ui.speed.addEventListener('change', () => {
    state.rate = Number(ui.speed.value);
    video.playbackRate = state.rate;
    if (state.clock) state.clock = { startedAt: performance.now(), startFrame: state.current };
    reportPlayhead(true);
  });
  // Look changes redraw the picture on screen with its overlay.
  const redraw = () => {
    if (state.current >= 0) draw(store.get(state.current) ?? null);
  };
  ui.showOverlay.addEventListener('change', () => {
    screen.showOverlay = ui.showOverlay.checked;
    redraw();
  });
  ui.opacity.addEventListener('input', () => {
    screen.opacity = Number(ui.opacity.value);
    redraw();
  });
  screen.opacity = Number(ui.opacity.value);
  ui.sideBySide.addEventListener('change', () => {
    ui.stage.classList.toggle('side-by-side', ui.sideBySide.checked);
    configureScreen();
    redraw();
  });
  ui.sequence.addEventListener('change', () => {
    location.hash = `seq=${encodeURIComponent(ui.sequence.value)}`;
  });
  window.addEventListener('hashchange', () => {
    const id = sequenceFromHash();
    if (id && id !== state.id) loadSequence(id).catch((error) => showError(error.message));
  });
  new ResizeObserver(layout).observe(ui.stage);
  document.addEventListener('keydown', (event) => {
    const target = event.target;
    const typing = target instanceof HTMLSelectElement ||
      (target instanceof HTMLInputElement && target.type !== 'checkbox');
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    const actions = {
      ' ': () => setPlaying(!state.playing),
      k: () => setPlaying(!state.playing),
      ArrowLeft: () => step(event.shiftKey ? -10 : -1),
      ArrowRight: () => step(event.shiftKey ? 10 : 1),
      Home: () => seek(0),
      End: () => seek(state.count - 1),
      n: () => jumpToGap(1),
      p: () => jumpToGap(-1),
      o: () => ui.showOverlay.click(),
      s: () => ui.sideBySide.click(),
    };
    const action = actions[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  });
  setInterval(pollStats, 2000);
}

function sequenceFromHash() {
  const match = /seq=([^&]+)/.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

async function main() {
  wire();
  try {
    const { sequences } = await getJson('/api/sequences');
    for (const sequence of sequences) {
      const option = document.createElement('option');
      option.value = sequence.id;
      option.textContent = `${sequence.name} (${sequence.num_frames} frames${sequence.has_video ? '' : ', no video'})`;
      ui.sequence.appendChild(option);
    }
    if (!sequences.length) {
      showError('the server has no sequences');
      return;
    }
    const wanted = sequenceFromHash();
    const id = sequences.some((s) => s.id === wanted) ? wanted : sequences[0].id;
    await loadSequence(id);
  } catch (error) {
    showError(error.message);
  }
}

main();
