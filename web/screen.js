// How a frame reaches the screen. The browser composites a <video> and a canvas over it separately, so an
// overlay drawn in the right requestVideoFrameCallback still showed over the next picture in about a fifth of
// screen refreshes (measured on a 120 Hz capture of the display). So the player draws the video's picture and
// then that picture's overlay into one opaque canvas, in one task: no composited picture can pair a frame with
// another frame's overlay. The <video> stays underneath, fully covered, to decode, keep time and play sound.
//
// Browsers without VideoFrame or requestVideoFrameCallback get the two layers: the overlay alone on a
// transparent canvas over the visible <video>, where sync is approximate.

/** Pixels of neutral ground between the picture and the overlay in side-by-side, at the picture's scale. */
const SIDE_BY_SIDE_GAP = 8;
const GROUND = '#808080';
const NO_PICTURE = '#000000';

export class Screen {
  /** `composite`: one picture of video and overlay (true), or the overlay alone over the video (false). */
  constructor(canvas, composite) {
    this.canvas = canvas;
    this.composite = composite;
    // Opaque in composite mode: the canvas hides the video under it, and the compositor need not blend.
    this.context = canvas.getContext('2d', { alpha: !composite });
    this.pictureWidth = 1;
    this.pictureHeight = 1;
    this.sideBySide = false;
    this.withVideo = true;
    this.showOverlay = true;
    this.opacity = 1;
  }

  /** The picture's own size (the video's, or the frames' without one) and the mode; returns whether the
   * backing store changed. */
  configure({ width, height, sideBySide, withVideo }) {
    this.pictureWidth = Math.max(1, width);
    this.pictureHeight = Math.max(1, height);
    this.sideBySide = sideBySide;
    this.withVideo = withVideo;
    const [canvasWidth, canvasHeight] = this.size();
    if (this.canvas.width === canvasWidth && this.canvas.height === canvasHeight) return false;
    this.canvas.width = canvasWidth;
    this.canvas.height = canvasHeight;
    return true;
  }

  /** The canvas's size in picture pixels: one picture, or (composite, side by side) picture, gap, overlay. */
  size() {
    const halves = this.composite && this.sideBySide ? 2 : 1;
    const gap = halves === 2 ? SIDE_BY_SIDE_GAP : 0;
    return [this.pictureWidth * halves + gap, this.pictureHeight];
  }

  /** Where the picture and the overlay go on the canvas, in canvas pixels. */
  overlayX() {
    return this.composite && this.sideBySide ? this.pictureWidth + SIDE_BY_SIDE_GAP : 0;
  }

  /**
   * Draws `picture` (a VideoFrame, or null for none) and over it `overlay` (a decoded frame, or null when it
   * has not arrived), then labels the canvas with what it shows, in this same task: `data-frame` the overlay's
   * frame index ('' for none) and `data-status` its status, `miss` when it has not arrived, `off` when the
   * overlay is switched off. In layers mode `picture` is ignored (the video shows itself).
   */
  draw(picture, overlay) {
    const { context, pictureWidth: width, pictureHeight: height } = this;
    const x = this.overlayX();
    if (this.composite) {
      if (picture) context.drawImage(picture, 0, 0, width, height);
      else {
        context.fillStyle = this.withVideo ? NO_PICTURE : GROUND;
        context.fillRect(0, 0, width, height);
      }
      if (x) {
        context.fillStyle = GROUND;
        context.fillRect(width, 0, x, height);
      }
    } else {
      context.clearRect(0, 0, this.canvas.width, this.canvas.height);
      if (!this.withVideo || this.sideBySide) {
        context.fillStyle = GROUND;
        context.fillRect(0, 0, this.canvas.width, this.canvas.height);
      }
    }
    const shown = overlay && this.showOverlay ? overlay : null;
    if (shown) {
      context.globalAlpha = this.opacity;
      context.drawImage(shown.bitmap, x, 0, width, height);
      context.globalAlpha = 1;
    }
    const { dataset } = this.canvas;
    dataset.frame = shown ? String(shown.index) : '';
    dataset.status = shown ? shown.status : this.showOverlay ? 'miss' : 'off';
    return shown !== null;
  }
}
