// Drawing: image grids (pixel-crisp), the loss curve and the quality curve.

import { $, state, history } from './state.js';

// `count` images of height x width x channels (1 grey, 3 RGB; HWC bytes).
export function drawImages(canvas, pixels, count, height, width, columns, channels = 1) {
  const cols = columns || Math.ceil(Math.sqrt(count));
  const rows = Math.ceil(count / cols);
  const pad = 2;
  const img = new ImageData(cols * (width + pad) + pad, rows * (height + pad) + pad);
  img.data.fill(255);
  for (let n = 0; n < count; n++) {
    const ox = pad + (n % cols) * (width + pad);
    const oy = pad + Math.floor(n / cols) * (height + pad);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const i = (n * height * width + y * width + x) * channels;
        const o = ((oy + y) * img.width + ox + x) * 4;
        for (let k = 0; k < 3; k++) img.data[o + k] = pixels[i + (channels === 3 ? k : 0)];
        img.data[o + 3] = 255;
      }
    }
  }
  const scratch = document.createElement('canvas');
  scratch.width = img.width;
  scratch.height = img.height;
  scratch.getContext('2d').putImageData(img, 0, 0);
  // Pixel-crisp: a whole number of screen pixels per image pixel, as many
  // as fit the canvas's box (data-box, in CSS pixels).
  const box = Number(canvas.dataset.box) || img.width;
  const scale = Math.max(1, Math.floor(box / Math.max(img.width, img.height)));
  canvas.width = img.width * scale;
  canvas.height = img.height * scale;
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(scratch, 0, 0, canvas.width, canvas.height);
  canvas.hidden = false;
  const hint = document.getElementById(`${canvas.id}-hint`);
  if (hint) hint.hidden = true;
}

// The FID curve (left axis) and, for cgan, the conditional accuracy (right
// axis, 0-100%), over the steps scored.
export function drawQuality() {
  const c = $('quality');
  const rows = state.quality;
  c.hidden = rows.length === 0;
  if (!rows.length) return;
  const ctx = c.getContext('2d');
  ctx.clearRect(0, 0, c.width, c.height);
  ctx.font = '11px sans-serif';
  const left = 38, right = c.width - 38, top = 10, bottom = c.height - 16;
  const hi = Math.max(1, ...rows.map((r) => r.fid));
  const first = rows[0].step, last = rows[rows.length - 1].step;
  const x = (s) => rows.length === 1 ? (left + right) / 2 : left + (right - left) * (s - first) / (last - first);
  ctx.strokeStyle = '#999';
  ctx.beginPath(); ctx.moveTo(left, top); ctx.lineTo(left, bottom); ctx.lineTo(right, bottom); ctx.lineTo(right, top); ctx.stroke();
  ctx.fillStyle = '#555';
  ctx.fillText(`step ${first}`, left, c.height - 3);
  if (rows.length > 1) ctx.fillText(`${last}`, right - 30, c.height - 3);
  const series = [['fid', '#1f77b4', 'FID', (v) => bottom - (bottom - top) * v / hi]];
  ctx.fillStyle = '#1f77b4';
  ctx.fillText(hi.toFixed(0), 2, top + 8);
  ctx.fillText('0', 26, bottom);
  if (rows.some((r) => r.conditional_accuracy != null)) {
    series.push(['conditional_accuracy', '#2ca02c', 'right class', (v) => bottom - (bottom - top) * v]);
    ctx.fillStyle = '#2ca02c';
    ctx.fillText('100%', right + 4, top + 8);
    ctx.fillText('0%', right + 4, bottom);
  }
  series.forEach(([key, color, name, y], k) => {
    ctx.strokeStyle = ctx.fillStyle = color;
    ctx.beginPath();
    rows.forEach((r, i) => { if (i === 0) ctx.moveTo(x(r.step), y(r[key])); else ctx.lineTo(x(r.step), y(r[key])); });
    ctx.stroke();
    for (const r of rows) ctx.fillRect(x(r.step) - 2, y(r[key]) - 2, 4, 4);
    ctx.fillText(name, left + 8 + 80 * k, top + 10);
  });
}

export function drawLoss() {
  const c = $('loss');
  const ctx = c.getContext('2d');
  ctx.clearRect(0, 0, c.width, c.height);
  ctx.font = '11px sans-serif';
  if (history.length < 2) return;
  let hi = 0;
  for (const [, d, g] of history) hi = Math.max(hi, d, g);
  hi = Math.max(hi, 1e-3);
  const left = 34, bottom = c.height - 16, top = 8, right = c.width - 8;
  const last = history[history.length - 1][0], first = history[0][0];
  const x = (s) => left + (right - left) * (s - first) / Math.max(1, last - first);
  const y = (v) => bottom - (bottom - top) * v / hi;
  ctx.strokeStyle = '#999';
  ctx.beginPath(); ctx.moveTo(left, top); ctx.lineTo(left, bottom); ctx.lineTo(right, bottom); ctx.stroke();
  ctx.fillStyle = '#555';
  ctx.fillText(hi.toFixed(2), 2, top + 8);
  ctx.fillText('0', 24, bottom);
  ctx.fillText(`step ${first}`, left, c.height - 3);
  ctx.fillText(`${last}`, right - 40, c.height - 3);
  const every = Math.max(1, Math.floor(history.length / 2000));
  for (const [idx, color, name] of [[1, '#1f77b4', 'loss D'], [2, '#ff7f0e', 'loss G']]) {
    ctx.strokeStyle = color;
    ctx.beginPath();
    history.forEach((h, i) => {
      if (i % every) return;
      if (i === 0) ctx.moveTo(x(h[0]), y(h[idx])); else ctx.lineTo(x(h[0]), y(h[idx]));
    });
    ctx.stroke();
    ctx.fillStyle = color;
    ctx.fillText(name, right - 110 + (idx - 1) * 55, top + 8);
  }
}
