// Your own pictures: the files of a chosen folder (or several chosen or
// dropped files) decoded by the browser, as the CLI reads an image folder:
// sorted by path; sub-folders are classes (sorted names, labels 0, 1, ...);
// alpha composited on white; the shorter side resized to `size` and the
// centre size x size cropped; 3 channels if any image has colour, else 1.
// Files the browser cannot decode are skipped and counted.

// A file's path under the chosen or dropped folder ("root/cat/a.png"):
// the browser's for a chosen folder, ours (`droppedFiles`) for a dropped one.
const pathOf = (file) => file.galleryPath || file.webkitRelativePath || file.name;

// The class folder of a file chosen with its folder ("root/cat/a.png":
// "cat"); null for a file directly in the chosen folder, or chosen alone.
function classOf(file) {
  const parts = pathOf(file).split('/');
  return parts.length >= 3 ? parts[1] : null;
}

// The files of a drop: dropped folders are walked (their paths kept for
// the classes), dropped files taken as they are.
export async function droppedFiles(dataTransfer) {
  const entries = [...dataTransfer.items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter((e) => e);
  if (!entries.length) return [...dataTransfer.files];
  const files = [];
  const walk = async (entry, path) => {
    if (entry.isFile) {
      const f = await new Promise((ok, fail) => entry.file(ok, fail));
      f.galleryPath = path + entry.name;
      files.push(f);
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
        if (!batch.length) break;
        for (const e of batch) await walk(e, `${path}${entry.name}/`);
      }
    }
  };
  for (const e of entries) await walk(e, '');
  return files;
}

// RGBA bytes of one image on white, resized and centre-cropped to size x size.
async function decodeOne(file, size, canvas) {
  const bitmap = await createImageBitmap(file);
  const { width: w, height: h } = bitmap;
  const scale = size / Math.min(w, h);
  const [dw, dh] = [Math.max(size, Math.floor(w * scale)), Math.max(size, Math.floor(h * scale))];
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, size, size);
  ctx.imageSmoothingQuality = 'medium';
  ctx.drawImage(bitmap, -Math.round((dw - size) / 2), -Math.round((dh - size) / 2), dw, dh);
  bitmap.close();
  return ctx.getImageData(0, 0, size, size).data;
}

// Decodes `files` at `size`; calls progress(done, total). Returns
// { pixels (Uint8Array, HWC), count, channels, labels (Uint8Array or
// null), classes ([names]), skipped ([names]) }.
export async function decodeImages(files, size, progress) {
  const sorted = [...files]
    .filter((f) => !f.name.startsWith('.'))
    .sort((a, b) => (pathOf(a) < pathOf(b) ? -1 : 1));
  const classes = [...new Set(sorted.map(classOf).filter((c) => c != null))].sort();
  const canvas = new OffscreenCanvas(size, size);
  const decoded = [], skipped = [];
  for (const [i, f] of sorted.entries()) {
    const cls = classOf(f);
    if (classes.length && cls == null) {
      skipped.push(f.name);
    } else {
      try {
        decoded.push({ rgba: await decodeOne(f, size, canvas), label: cls == null ? 0 : classes.indexOf(cls) });
      } catch (e) {
        skipped.push(f.name);
      }
    }
    if (progress && (i % 16 === 15 || i === sorted.length - 1)) await progress(i + 1, sorted.length);
  }
  const colour = decoded.some(({ rgba }) => {
    for (let p = 0; p < rgba.length; p += 4) if (rgba[p] !== rgba[p + 1] || rgba[p + 1] !== rgba[p + 2]) return true;
    return false;
  });
  const channels = colour ? 3 : 1, dim = size * size * channels;
  const pixels = new Uint8Array(decoded.length * dim);
  decoded.forEach(({ rgba }, n) => {
    for (let p = 0, o = n * dim; p < rgba.length; p += 4) {
      if (colour) { pixels[o++] = rgba[p]; pixels[o++] = rgba[p + 1]; pixels[o++] = rgba[p + 2]; }
      else pixels[o++] = rgba[p];
    }
  });
  const labels = classes.length ? Uint8Array.from(decoded.map((d) => d.label)) : null;
  return { pixels, count: decoded.length, channels, labels, classes, skipped };
}
