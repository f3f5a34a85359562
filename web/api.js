// The server's API as the player uses it: JSON routes, one frame over HTTP, and the WebSocket frame stream.
// Protocol and routes: docs/api.md.

/** GET a JSON route; a non-2xx answer throws an Error carrying the server's message. */
export async function getJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw await apiError(response);
  return response.json();
}

async function apiError(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.message) message = body.message;
  } catch {
    // Not JSON: keep the status line.
  }
  return new Error(message);
}

/** One frame's image and what the server says about it, fetched over HTTP. */
export async function fetchFrame(sequenceId, index) {
  const started = performance.now();
  const response = await fetch(`/api/sequences/${encodeURIComponent(sequenceId)}/frames/${index}`);
  if (!response.ok) throw await apiError(response);
  const blob = await response.blob();
  const bitmap = await createImageBitmap(blob);
  const header = (name) => response.headers.get(name);
  const source = header('X-Frame-Source');
  return {
    index,
    bitmap,
    status: header('X-Frame-Status') || 'ok',
    reason: header('X-Frame-Reason'),
    source: source === null ? null : Number(source),
    cache: header('X-Cache') || 'http',
    renderMs: Number(header('X-Render-Ms') || 0),
    latencyMs: performance.now() - started,
  };
}

/**
 * The WebSocket stream of one sequence. The player reports its playhead; the server pushes encoded frames
 * ahead of it, each acknowledged once decoded, so at most a few are ever in flight. Reconnects with backoff.
 */
export class FrameStream {
  constructor(sequenceId, { onFrame, onMessage }) {
    this.url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}` +
      `/api/sequences/${encodeURIComponent(sequenceId)}/stream`;
    this.onFrame = onFrame;
    this.onMessage = onMessage;
    this.lastPlayhead = null;
    this.closed = false;
    this.retryMs = 250;
    this.connect();
  }

  connect() {
    if (this.closed) return;
    const socket = new WebSocket(this.url);
    socket.binaryType = 'arraybuffer';
    socket.onopen = () => {
      this.retryMs = 250;
      if (this.lastPlayhead) socket.send(JSON.stringify(this.lastPlayhead));
    };
    socket.onmessage = (event) => this.receive(event.data);
    socket.onclose = () => {
      if (this.closed) return;
      setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 5000);
    };
    this.socket = socket;
  }

  get open() {
    return this.socket && this.socket.readyState === WebSocket.OPEN;
  }

  send(message) {
    if (this.open) this.socket.send(JSON.stringify(message));
  }

  /** Where the player is: sent on every seek, play and pause, and a few times a second while playing. */
  playhead(frame, rate, playing) {
    this.lastPlayhead = { type: 'playhead', frame, rate, playing };
    this.send(this.lastPlayhead);
  }

  want(frame) {
    this.send({ type: 'want', frame });
  }

  async receive(data) {
    if (typeof data === 'string') {
      try {
        this.onMessage(JSON.parse(data));
      } catch {
        // Ignore text the player does not understand.
      }
      return;
    }
    const view = new DataView(data);
    const headerLength = view.getUint32(0, true);
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(data, 4, headerLength)));
    const bytes = new Uint8Array(data, 4 + headerLength);
    try {
      const bitmap = await createImageBitmap(new Blob([bytes], { type: `image/${header.format || 'png'}` }));
      this.onFrame({
        index: header.frame,
        bitmap,
        status: header.status || 'ok',
        reason: header.reason ?? null,
        source: header.source ?? null,
        cache: header.cache || 'stream',
        renderMs: Number(header.render_ms || 0),
        latencyMs: null,
      });
    } finally {
      this.send({ type: 'ack', frame: header.frame });
    }
  }

  close() {
    this.closed = true;
    if (this.socket) this.socket.close();
  }
}
