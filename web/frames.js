// Decoded overlay frames near the playhead, bounded in count: the player never holds more than `capacity`
// bitmaps, and drops the ones farthest from the playhead first.

export class FrameStore {
  constructor(capacity = 240) {
    this.capacity = capacity;
    this.frames = new Map();
    this.pending = new Set();
  }

  get(index) {
    return this.frames.get(index);
  }

  has(index) {
    return this.frames.has(index);
  }

  /** Keeps a frame; a second copy of one already held is released at once. */
  put(frame, playhead) {
    if (this.frames.has(frame.index)) {
      frame.bitmap.close();
      return;
    }
    this.frames.set(frame.index, frame);
    this.pending.delete(frame.index);
    if (this.frames.size > this.capacity) this.evict(playhead);
  }

  /** Releases frames until a quarter of the capacity is free, farthest from `playhead` first (behind counts
   * double: playback moves forward). */
  evict(playhead) {
    const distance = (index) => (index < playhead ? 2 * (playhead - index) : index - playhead);
    const order = [...this.frames.keys()].sort((a, b) => distance(b) - distance(a));
    const target = Math.floor(this.capacity * 0.75);
    for (const index of order) {
      if (this.frames.size <= target) break;
      this.frames.get(index).bitmap.close();
      this.frames.delete(index);
    }
  }

  /** How many consecutive frames from `index` on are ready. */
  readyAhead(index, step = 1) {
    let count = 0;
    while (this.frames.has(index + count * step)) count += 1;
    return count;
  }

  clear() {
    for (const frame of this.frames.values()) frame.bitmap.close();
    this.frames.clear();
    this.pending.clear();
  }
}
