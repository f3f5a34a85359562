// The timeline: one coloured cell per frame by status, so detection gaps show at a glance, and the playhead.

const COLOURS = {
  o: '--ok',
  f: '--fallback',
  p: '--placeholder',
  s: '--skipped',
  e: '--error',
  '?': '--unknown',
};

export class Timeline {
  constructor(canvas, onSeek) {
    this.canvas = canvas;
    this.status = '';
    this.playhead = 0;
    this.base = document.createElement('canvas');
    const seekAt = (event) => {
      if (!this.status.length) return;
      const rect = canvas.getBoundingClientRect();
      const fraction = Math.min(Math.max((event.clientX - rect.left) / rect.width, 0), 1);
      onSeek(Math.min(Math.floor(fraction * this.status.length), this.status.length - 1));
    };
    canvas.addEventListener('pointerdown', (event) => {
      canvas.setPointerCapture(event.pointerId);
      seekAt(event);
    });
    canvas.addEventListener('pointermove', (event) => {
      if (canvas.hasPointerCapture(event.pointerId)) seekAt(event);
    });
    new ResizeObserver(() => this.drawBase()).observe(canvas);
  }

  /** `status` holds one character per frame (docs/api.md). */
  setStatus(status) {
    this.status = status;
    this.canvas.setAttribute('aria-valuemax', String(Math.max(status.length - 1, 0)));
    this.drawBase();
  }

  drawBase() {
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(this.canvas.clientWidth * ratio));
    const height = Math.max(1, Math.round(this.canvas.clientHeight * ratio));
    this.canvas.width = this.base.width = width;
    this.canvas.height = this.base.height = height;
    const context = this.base.getContext('2d');
    const styles = getComputedStyle(document.documentElement);
    const count = this.status.length;
    context.clearRect(0, 0, width, height);
    // Runs of one status become one rectangle; every frame gets at least a pixel so a single bad frame shows.
    let start = 0;
    for (let index = 1; index <= count; index += 1) {
      if (index < count && this.status[index] === this.status[start]) continue;
      const x0 = Math.floor((start / count) * width);
      const x1 = Math.max(x0 + 1, Math.floor((index / count) * width));
      context.fillStyle = styles.getPropertyValue(COLOURS[this.status[start]] || '--unknown');
      context.fillRect(x0, 0, x1 - x0, height);
      start = index;
    }
    this.draw();
  }

  setPlayhead(index) {
    if (index === this.playhead) return;
    this.playhead = index;
    this.canvas.setAttribute('aria-valuenow', String(index));
    this.draw();
  }

  draw() {
    const context = this.canvas.getContext('2d');
    context.clearRect(0, 0, this.canvas.width, this.canvas.height);
    context.drawImage(this.base, 0, 0);
    const count = this.status.length;
    if (!count) return;
    const x = ((this.playhead + 0.5) / count) * this.canvas.width;
    context.fillStyle = '#ffffff';
    context.fillRect(Math.round(x) - 1, 0, 2, this.canvas.height);
  }

  /** The first frame of the next (direction 1) or previous (-1) run of frames that are not ok. */
  gap(from, direction) {
    const bad = (index) => this.status[index] !== undefined && this.status[index] !== 'o';
    for (let index = from + direction; index >= 0 && index < this.status.length; index += direction) {
      if (bad(index) && !bad(index - 1)) return index;
    }
    return null;
  }
}
