// Drawing canonical predictions over an image on a <canvas>: boxes with labels and scores, tinted masks with a
// legend, and a label banner for classification. Coordinates arrive in the original image's pixels.

const PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
  "#469990", "#9a6324", "#800000", "#808000", "#000075", "#fabed4", "#ffd8b1", "#aaffc3"];

export const colorOf = (id) => PALETTE[id % PALETTE.length];

/** COCO's uncompressed RLE (column-major runs, starting with a 0-run) to a row-major Uint8Array. */
export function decodeRle({ size: [height, width], counts }) {
  const rows = new Uint8Array(height * width);
  let at = 0;
  counts.forEach((run, i) => {
    if (i % 2 === 1) { // a run of ones: set its pixels straight at their row-major places
      for (let k = at; k < at + run; k += 1) rows[(k % height) * width + Math.floor(k / height)] = 1;
    }
    at += run;
  });
  return rows;
}

function hexRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

function label(ctx, text, x, y, color, scale) {
  ctx.font = `${Math.round(14 * scale)}px system-ui, sans-serif`;
  const pad = 4 * scale;
  const width = ctx.measureText(text).width + 2 * pad;
  const height = 18 * scale;
  const top = Math.max(0, y - height);
  ctx.fillStyle = color;
  ctx.fillRect(x, top, width, height);
  const [r, g, b] = hexRgb(color);
  ctx.fillStyle = 0.299 * r + 0.587 * g + 0.114 * b > 150 ? "#000" : "#fff"; // readable on light and dark colours
  ctx.textBaseline = "middle";
  ctx.fillText(text, x + pad, top + height / 2);
}

const percent = (score) => `${(score * 100).toFixed(1)}%`;

/**
 * Draw `prediction` over `image` (an HTMLImageElement) into `canvas`; returns the legend entries drawn.
 * A 3-D prediction has no 2-D overlay: only the image is drawn.
 */
export function drawPrediction(canvas, image, prediction) {
  const [height, width] = prediction.size.slice(-2);
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, 0, 0);
  const sx = canvas.width / width;
  const sy = canvas.height / height;
  const scale = Math.max(1, canvas.width / 640);
  const legend = [];
  if (prediction.classes && prediction.classes.length) {
    const top = prediction.classes[0];
    label(ctx, `${top.name} ${percent(top.score)}`, 0, 22 * scale, colorOf(top.id), scale);
  }
  for (const object of prediction.objects || []) {
    const [x1, y1, x2, y2] = object.box;
    ctx.strokeStyle = colorOf(object.id);
    ctx.lineWidth = 2 * scale;
    ctx.strokeRect(x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy);
    label(ctx, `${object.name} ${percent(object.score)}`, x1 * sx, y1 * sy, colorOf(object.id), scale);
  }
  if (prediction.masks && prediction.masks.length && prediction.size.length === 2) {
    const overlay = document.createElement("canvas");
    overlay.width = width;
    overlay.height = height;
    const pixels = new ImageData(width, height);
    for (const mask of prediction.masks) {
      const bits = decodeRle(mask.rle);
      const [r, g, b] = hexRgb(colorOf(mask.id));
      const rgba = pixels.data;
      for (let i = 0; i < bits.length; i += 1) {
        if (!bits[i]) continue;
        rgba[i * 4] = r;
        rgba[i * 4 + 1] = g;
        rgba[i * 4 + 2] = b;
        rgba[i * 4 + 3] = 110;
      }
      legend.push({ id: mask.id, name: mask.name, detail: `${mask.area} px` });
    }
    overlay.getContext("2d").putImageData(pixels, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(overlay, 0, 0, canvas.width, canvas.height);
  }
  canvas.dataset.drawn = "true";
  return legend;
}
