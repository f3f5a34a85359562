// Turns the video's pictures (VideoFrames, YUV) into ImageBitmaps off the page's main thread. In software
// rendering the conversion is the costly step of a composite (about 4 ms per 640×480 picture measured in
// Chromium, whether by drawImage, createImageBitmap or copyTo, all on the calling thread); here it runs on
// another core, and the page only draws the finished bitmap and its overlay.

let canvas = null;
let context = null;

onmessage = ({ data: frame }) => {
  const { timestamp } = frame;
  try {
    const width = frame.displayWidth;
    const height = frame.displayHeight;
    if (!canvas || canvas.width !== width || canvas.height !== height) {
      canvas = new OffscreenCanvas(width, height);
      context = canvas.getContext('2d', { alpha: false });
    }
    context.drawImage(frame, 0, 0, width, height);
    const bitmap = canvas.transferToImageBitmap();
    postMessage({ timestamp, bitmap }, [bitmap]);
  } catch (error) {
    postMessage({ timestamp, error: String(error) });
  } finally {
    frame.close();
  }
};
