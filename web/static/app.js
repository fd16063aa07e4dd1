// The page: drives the engine (gan_wgpu_web.wasm) one call at a time and
// draws what it returns. State for tests is in <pre id="status"> as JSON.
// Query parameters: autostart=1, steps=N (stop after N steps), model
// (gan|cgan), seed, batch, lr, limit (images), selftest=1 (run the kernel
// self-test first), quality_every=N (score the generator every N steps; 0:
// never).
import init, { open_engine, defaults } from './gan_wgpu_web.js';

const $ = (id) => document.getElementById(id);
const query = new URLSearchParams(location.search);
const GRID_EVERY_STEPS = 50;

const state = {
  steps: 0, epoch: 0, loss_d: null, loss_g: null, steps_per_s: null,
  adapter: null, error: null, first_loss_d: null, first_loss_g: null,
  done: false, running: false, steps_target: null, settings: null,
  selftest: null, sample: null, grid_steps: null,
  // The live quality: the classifier file's description (null until
  // loaded), why it is off, and a row per scoring.
  scorer: null, quality_off: null, quality: [],
};
const history = []; // [step, loss_d, loss_g]
let engine = null;
// The CLI's defaults (batch, lr, seed, grid_samples, ...), read from the
// engine once it is loaded: no default is written in the page.
let DEFAULTS = null;
let busy = Promise.resolve(); // serialises the page's engine calls
let timing = { steps: 0, ms: 0, calls: 0 };
// Classes of the loaded generator file (null: none loaded, or unconditional).
let loadedClasses = null;

function publish() {
  $('status').textContent = JSON.stringify(state, null, 1);
  $('s-steps').textContent = state.steps;
  $('s-epoch').textContent = state.epoch;
  $('s-rate').textContent = state.steps_per_s == null ? '-' : state.steps_per_s.toFixed(2);
  $('s-lossd').textContent = state.loss_d == null ? '-' : state.loss_d.toFixed(4);
  $('s-lossg').textContent = state.loss_g == null ? '-' : state.loss_g.toFixed(4);
  $('start').textContent = state.running ? 'Pause' : (state.steps > 0 ? 'Resume' : 'Start');
}

function oneLine(e) {
  const text = (e && e.message) ? e.message : String(e);
  return text.replace(/\s+/g, ' ').trim();
}

function fail(e) {
  state.error = oneLine(e);
  state.running = false;
  $('error').textContent = state.error;
  $('error').title = state.error;
  console.error(e);
  publish();
}

// Runs `job` after every engine call queued before it; errors show in the page.
function serial(job) {
  const next = busy.then(job).catch(fail);
  busy = next;
  return next;
}

function clearError() {
  state.error = null;
  $('error').textContent = '';
}

function settings() {
  const num = (id, dflt) => {
    const q = query.get(id);
    const v = Number(q != null ? q : $(id).value);
    return Number.isFinite(v) ? v : dflt;
  };
  const model = query.get('model') || $('model').value || DEFAULTS.model;
  return { model, batch: num('batch', DEFAULTS.batch), lr: num('lr', DEFAULTS.lr), seed: num('seed', DEFAULTS.seed), limit: num('limit', 0) };
}

function drawImages(canvas, pixels, count, height, width, columns) {
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
        const v = pixels[n * height * width + y * width + x];
        const o = ((oy + y) * img.width + ox + x) * 4;
        img.data[o] = img.data[o + 1] = img.data[o + 2] = v;
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

// Steps between scorings of the generator (0: never).
function qualityEvery() {
  if (state.scorer == null) return 0;
  const v = Number(query.get('quality_every') != null ? query.get('quality_every') : $('quality-every').value);
  return Number.isFinite(v) && v > 0 ? Math.floor(v) : 0;
}

// The FID curve (left axis) and, for cgan, the conditional accuracy (right
// axis, 0-100%), over the steps scored.
function drawQuality() {
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

// Scores the generator in training (`gan-wgpu eval`'s numbers on the
// latent codes of its default seed) and adds a point to the curve.
async function scoreQuality() {
  const q = JSON.parse(await engine.score(DEFAULTS.quality_count, DEFAULTS.seed));
  q.step = state.steps;
  q.seed = DEFAULTS.seed;
  state.quality.push(q);
  const acc = q.conditional_accuracy != null ? `, right class ${(100 * q.conditional_accuracy).toFixed(1)}%` : '';
  $('quality-line').textContent = `step ${q.step}: FID ${q.fid.toFixed(1)}, ${q.classes_covered} of ` +
    `${DEFAULTS.classes} classes covered${acc} (${q.n} samples, ${q.seconds.toFixed(1)} s)`;
  drawQuality();
}

function drawLoss() {
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

async function drawGrid() {
  const [h, w] = engine.image_shape();
  const [count, cols] = engine.grid_shape();
  const pixels = await engine.grid();
  drawImages($('grid'), pixels, count, h, w, cols);
  state.grid_steps = state.steps;
}

function download(bytes, name) {
  const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function reset() {
  const s = settings();
  const stepsPerEpoch = engine.new_session(s.model, s.batch, s.lr, s.seed, s.limit);
  Object.assign(state, {
    steps: 0, epoch: 0, loss_d: null, loss_g: null, steps_per_s: null,
    first_loss_d: null, first_loss_g: null, done: false, settings: { ...s, steps_per_epoch: stepsPerEpoch },
  });
  history.length = 0;
  state.quality = [];
  timing = { steps: 0, ms: 0, calls: 0 };
  drawLoss();
  drawQuality();
  updateDrawButtons();
}

// The "draw a K" buttons work on a conditional generator: the loaded file's,
// else the model in training's.
function updateDrawButtons() {
  const on = loadedClasses != null || (state.settings && state.settings.model === 'cgan');
  for (const b of document.querySelectorAll('#draw-row button')) b.disabled = !on;
}

// Steps a call: grows while a call takes under 150 ms, shrinks past 500 ms,
// so the tab stays responsive on slow adapters and the GPU stays busy on
// fast ones.
let chunk = 1;

// One call's worth of training: run_steps, then the numbers, the curve and
// (every GRID_EVERY_STEPS steps) the grid.
async function trainTick() {
  if (!state.running) return;
  if (state.steps_target != null && state.steps >= state.steps_target) {
    state.running = false;
    state.done = true;
    return;
  }
  let want = state.steps_target == null ? chunk : Math.min(chunk, state.steps_target - state.steps);
  // Stop the call at the next scoring, so the score is of that step's generator.
  const every = qualityEvery();
  if (every > 0) want = Math.min(want, every - (state.steps % every));
  const t0 = performance.now();
  const rows = JSON.parse(await engine.run_steps(want));
  const ms = performance.now() - t0;
  const n = rows.length;
  // The first call of a run compiles the pipelines: not part of the rate.
  if (timing.calls++ > 0) {
    timing.steps += n;
    timing.ms += ms;
    state.steps_per_s = timing.steps / (timing.ms / 1000);
  }
  if (ms < 150 && chunk < 64) chunk *= 2;
  else if (ms > 500 && chunk > 1) chunk = Math.max(1, chunk >> 1);
  for (const r of rows) {
    if (r.step === 1) {
      state.first_loss_d = r.loss_d;
      state.first_loss_g = r.loss_g;
    }
    history.push([r.step, r.loss_d, r.loss_g]);
    state.steps = r.step;
    state.epoch = r.epoch;
    state.loss_d = r.loss_d;
    state.loss_g = r.loss_g;
  }
  const finished = state.steps_target != null && state.steps >= state.steps_target;
  if (finished) {
    state.running = false;
    state.done = true;
  }
  if (state.grid_steps == null || state.steps - state.grid_steps >= GRID_EVERY_STEPS || finished) {
    await drawGrid();
  }
  if (every > 0 && n > 0 && state.steps % every === 0) await scoreQuality();
  drawLoss();
  publish();
}

// Trains while `running`, one queued call at a time, so that downloads,
// samples and the self-test run between calls instead of after training.
let loopGeneration = 0;
async function trainLoop() {
  const generation = ++loopGeneration;
  while (state.running && generation === loopGeneration) {
    await serial(trainTick);
    // Yield to the browser (paint, input) between submissions.
    await new Promise((r) => setTimeout(r, 0));
  }
  publish();
}

function startOrPause() {
  if (state.running) {
    state.running = false;
    publish();
    return;
  }
  clearError();
  state.running = true;
  publish();
  trainLoop();
}

async function runSelfTest() {
  $('selftest').innerHTML = '<tr><td>running every kernel against its CPU reference...</td></tr>';
  const rows = JSON.parse(await engine.self_test());
  const failed = rows.filter((r) => !r.ok);
  state.selftest = { passed: rows.length - failed.length, failed: failed.length, results: rows };
  $('selftest').innerHTML = '';
  for (const r of rows) {
    const tr = document.createElement('tr');
    for (const text of [r.ok ? 'pass' : 'FAIL', r.shader, r.what, r.error || '']) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.appendChild(td);
    }
    tr.className = r.ok ? 'ok' : 'bad';
    $('selftest').appendChild(tr);
  }
  publish();
}

// `count` samples (the CLI's `sample --seed S --count N`, with `--class K`
// when `cls` >= 0); a conditional generator without a class draws every
// class in turn, a column each.
async function sample(fromLoaded, cls = -1) {
  const seed = Number($('sample-seed').value) || DEFAULTS.seed;
  const conditional = fromLoaded ? loadedClasses != null : state.settings.model === 'cgan';
  const count = conditional && cls < 0 ? 2 * DEFAULTS.classes : DEFAULTS.grid_samples;
  const pixels = await engine.sample(seed, count, fromLoaded, cls);
  const [h, w] = fromLoaded ? engine.loaded_shape() : engine.image_shape();
  drawImages($('samples'), pixels, count, h, w, conditional && cls < 0 ? DEFAULTS.classes : 0);
  // The pixels, for the browser test's comparison with `gan-wgpu sample`.
  window.ganLastSample = btoa(String.fromCharCode(...pixels));
  state.sample = { seed, count, from: fromLoaded ? 'file' : 'training', class: cls, height: h, width: w };
  $('sample-info').textContent = cls >= 0 ? `${count} samples of class ${cls}` : '';
  publish();
}

async function main() {
  for (const id of ['batch', 'lr', 'seed', 'limit']) {
    if (query.get(id) != null) $(id).value = query.get(id);
  }
  for (let k = 0; k < 10; k++) {
    const b = document.createElement('button');
    b.textContent = String(k);
    b.id = `draw-${k}`;
    b.disabled = true;
    $('draw-row').append(b);
  }
  if (!navigator.gpu) {
    $('adapter').textContent = 'No WebGPU here.';
    throw new Error('This browser has no WebGPU (navigator.gpu is missing): use Chrome or Edge 113 or later, or enable WebGPU (chrome://flags/#enable-unsafe-webgpu, Firefox: dom.webgpu.enabled), on a page served over http://localhost or https');
  }
  // The browser's own words for its adapter (wgpu gets no name from it).
  let browserInfo = {};
  let probe = null;
  try {
    probe = await navigator.gpu.requestAdapter();
    const i = probe && probe.info;
    if (i) browserInfo = { vendor: i.vendor, architecture: i.architecture, description: i.description };
  } catch (e) { /* the engine's own request reports any real problem */ }
  if (!probe) {
    $('adapter').textContent = 'No WebGPU adapter.';
    throw new Error('WebGPU is here but gives no adapter (no usable GPU, or the browser blocks it): enable hardware acceleration; on Linux Chrome, enable chrome://flags/#enable-unsafe-webgpu and #ignore-gpu-blocklist');
  }
  $('adapter').textContent = 'Opening the adapter, then timing and checking the kernel variants on it (a few seconds; longer on a software adapter)...';
  await init();
  DEFAULTS = JSON.parse(defaults());
  for (const id of ['batch', 'lr', 'seed']) {
    if (query.get(id) == null) $(id).value = DEFAULTS[id];
  }
  $('sample-seed').value = DEFAULTS.seed;
  $('quality-every').value = query.get('quality_every') != null ? query.get('quality_every') : DEFAULTS.quality_every;
  for (const m of DEFAULTS.models) {
    const o = document.createElement('option');
    o.value = o.textContent = m;
    $('model').append(o);
  }
  $('model').value = query.get('model') || DEFAULTS.model;
  engine = await open_engine();
  const a = JSON.parse(engine.adapter_json());
  a.browser_info = browserInfo;
  if (a.name.startsWith('(')) {
    const words = [browserInfo.vendor, browserInfo.architecture, browserInfo.description].filter((w) => w);
    if (words.length) a.name = words.join(' ');
  }
  state.adapter = a;
  const compute = a.features.filter((f) => ['TIMESTAMP_QUERY', 'SUBGROUP', 'SHADER_F16'].includes(f));
  $('adapter').innerHTML = '';
  const line = (text, cls) => { const d = document.createElement('div'); d.textContent = text; if (cls) d.className = cls; $('adapter').append(d); };
  line(`${a.name} · ${a.backend} · ${a.device_type}`, 'adapter-name');
  // The variant names on the line; how each was chosen (the timings) on hover.
  const short = (how) => how.split(' (')[0];
  line(`compute features: ${compute.join(', ') || 'none'} \u00b7 largest storage binding ${a.limits.max_storage_buffer_binding_size >> 20} MiB \u00b7 ` +
    `matmul ${short(a.matmul)} \u00b7 reductions ${short(a.reductions)}`, 'adapter-detail');
  $('adapter').title = `matmul: ${a.matmul}\nreductions: ${a.reductions}`;
  publish();
  const fetchBytes = async (path) => {
    const response = await fetch(path);
    if (!response.ok) throw new Error(`fetching ${path}: HTTP ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
  };
  const images = 'mnist/train-images-idx3-ubyte.gz', labels = 'mnist/train-labels-idx1-ubyte.gz';
  engine.load_images(await fetchBytes(images), images, await fetchBytes(labels), labels);
  // The live quality's classifier: without it the page trains as before.
  try {
    const name = DEFAULTS.quality_classifier;
    state.scorer = JSON.parse(engine.load_scorer(await fetchBytes(name), name));
  } catch (e) {
    state.quality_off = oneLine(e);
    $('quality-line').textContent = `Live quality is off: ${state.quality_off}`;
  }
  reset();
  for (const id of ['start', 'reset', 'download-g', 'download-d', 'sample-live', 'selftest-run']) $(id).disabled = false;
  $('start').onclick = startOrPause;
  $('reset').onclick = () => { state.running = false; serial(async () => { clearError(); reset(); await drawGrid(); publish(); }); };
  for (const [id, which] of [['download-g', 'generator'], ['download-d', 'discriminator']]) {
    $(id).onclick = () => serial(async () => {
      const bytes = await engine.checkpoint(which);
      download(bytes, `${which}_step${state.steps}.safetensors`);
    });
  }
  $('gen-file').onchange = () => serial(async () => {
    const file = $('gen-file').files[0];
    if (!file) return;
    clearError();
    const info = JSON.parse(engine.load_generator(new Uint8Array(await file.arrayBuffer()), file.name));
    loadedClasses = info.classes;
    updateDrawButtons();
    $('sample').disabled = false;
    await sample(true);
    $('sample-info').textContent = `${info.name}: latent ${info.latent}, images ${info.height}x${info.width}` +
      (info.classes ? `, ${info.classes} classes` : '');
  });
  $('sample').onclick = () => serial(() => sample(true));
  $('sample-live').onclick = () => serial(() => sample(false));
  for (let k = 0; k < 10; k++) $(`draw-${k}`).onclick = () => serial(() => sample(loadedClasses != null, k));
  $('selftest-run').onclick = () => serial(runSelfTest);
  await drawGrid();
  publish();
  if (query.get('selftest') === '1') await runSelfTest();
  if (query.get('steps') != null) state.steps_target = Number(query.get('steps'));
  if (query.get('autostart') === '1') startOrPause();
}

window.addEventListener('error', (e) => fail(e.error || e.message));
window.addEventListener('unhandledrejection', (e) => fail(e.reason));
serial(main);
