// The meshreel player: the video with the server-rendered mesh overlay drawn exactly over its picture, in sync
// frame for frame. The frame on screen comes from requestVideoFrameCallback's mediaTime (round(t·fps), which
// DOMAIN notes measured exact in Chromium); the overlay for that frame is drawn in the same callback, or hidden
// and counted as a miss when it has not arrived: an overlay never shows a frame other than the video's.

import { FrameStream, fetchFrame, getJson } from './api.js';
import { FrameStore } from './frames.js';
import { Timeline } from './timeline.js';

const $ = (id) => document.getElementById(id);
const ui = {
  stage: $('stage'),
  videoPane: $('video-pane'),
  overlayPane: $('overlay-pane'),
  video: $('video'),
  noVideo: $('no-video'),
  overlay: $('overlay'),
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
  ['video', 'overlay', 'status', 'reason', 'source', 'cache', 'latency', 'ahead', 'misses', 'dropped']
    .map((name) => [name, $(`hud-${name}`)]),
);

/** Misses count only once playback has run this long: the first frames of a start are still on their way. */
const WARM_UP_MS = 1000;
/** How often the playhead is reported while playing. */
const REPORT_EVERY_MS = 200;

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
  shown: null,
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
const context = ui.overlay.getContext('2d');
const timeline = new Timeline($('timeline'), (index) => seek(index));

// For automation and debugging: tests read the overlay's data-frame, and may read these.
window.meshreel = { state, store };

// ---------------------------------------------------------------------------------------------------------
// Frames

function clampIndex(index) {
  return Math.min(Math.max(index, 0), Math.max(state.count - 1, 0));
}

/** The 0-based frame index of a presented video frame. */
function indexAtMediaTime(mediaTime) {
  return clampIndex(Math.round((mediaTime - state.start) * state.fps));
}

/** Shows frame `index`'s overlay now, or hides the overlay and counts a miss if it is not here yet (or it is
 * too late to show it). */
function present(index, { late = false } = {}) {
  state.current = index;
  state.target = null;
  const frame = late ? null : store.get(index);
  if (frame) {
    drawOverlay(frame);
  } else {
    context.clearRect(0, 0, ui.overlay.width, ui.overlay.height);
    ui.overlay.dataset.frame = '';
    ui.overlay.dataset.status = 'miss';
    state.shown = null;
    if (state.playing && performance.now() - state.playStartedAt > WARM_UP_MS) state.misses += 1;
    if (!late) request(index);
  }
  reportPlayhead(false);
  timeline.setPlayhead(index);
  ui.scrub.value = String(index);
  ui.position.textContent = `${index + 1} / ${state.count}`;
  updateHud(frame);
}

function drawOverlay(frame) {
  const { bitmap } = frame;
  if (ui.overlay.width !== bitmap.width || ui.overlay.height !== bitmap.height) {
    ui.overlay.width = bitmap.width;
    ui.overlay.height = bitmap.height;
    layout();
  }
  context.clearRect(0, 0, bitmap.width, bitmap.height);
  context.drawImage(bitmap, 0, 0);
  ui.overlay.dataset.frame = String(frame.index);
  ui.overlay.dataset.status = frame.status;
  state.shown = frame.index;
  state.presented += 1;
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

/** A frame from the stream or from HTTP. If it is the one on screen, it shows at once. */
function arrived(frame) {
  store.put(frame, state.current);
  if (frame.index === state.current && state.shown !== state.current) {
    drawOverlay(frame);
    updateHud(frame);
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

function onVideoFrame(now, metadata) {
  if (state.lastPresentedFrames !== null && state.playing) {
    state.dropped += Math.max(0, metadata.presentedFrames - state.lastPresentedFrames - 1);
  }
  state.lastPresentedFrames = metadata.presentedFrames;
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
    if (index === state.current) present(index);
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
// Layout: the overlay covers exactly the picture the video displays (object-fit: contain), at any size.

function layout() {
  const sideBySide = ui.sideBySide.checked;
  const pane = sideBySide ? ui.overlayPane : ui.videoPane;
  const width = pane.clientWidth;
  const height = pane.clientHeight;
  const useVideo = !sideBySide && state.hasVideo && ui.video.videoWidth > 0;
  const pictureWidth = useVideo ? ui.video.videoWidth : ui.overlay.width || state.meta?.width || 1;
  const pictureHeight = useVideo ? ui.video.videoHeight : ui.overlay.height || state.meta?.height || 1;
  const scale = Math.min(width / pictureWidth, height / pictureHeight);
  const shownWidth = pictureWidth * scale;
  const shownHeight = pictureHeight * scale;
  Object.assign(ui.overlay.style, {
    left: `${(width - shownWidth) / 2}px`,
    top: `${(height - shownHeight) / 2}px`,
    width: `${shownWidth}px`,
    height: `${shownHeight}px`,
  });
}

// ---------------------------------------------------------------------------------------------------------
// HUD and panels

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
  Object.assign(state, { misses: 0, presented: 0, dropped: 0, lastPresentedFrames: null, current: -1 });
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
    layout();
    seek(0);
  } else {
    ui.video.removeAttribute('src');
    ui.video.load();
    layout();
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
  if ('requestVideoFrameCallback' in HTMLVideoElement.prototype) {
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
  ui.showOverlay.addEventListener('change', () => {
    ui.overlay.style.visibility = ui.showOverlay.checked ? 'visible' : 'hidden';
  });
  ui.opacity.addEventListener('input', () => {
    ui.overlay.style.opacity = ui.opacity.value;
  });
  ui.overlay.style.opacity = ui.opacity.value;
  ui.sideBySide.addEventListener('change', () => {
    ui.stage.classList.toggle('side-by-side', ui.sideBySide.checked);
    layout();
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
