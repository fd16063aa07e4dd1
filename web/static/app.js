// The page: drives the engine (gan_wgpu_web.wasm) one call at a time and
// draws what it returns. State for tests is in <pre id="status"> as JSON.
// Query parameters: autostart=1, steps=N (stop after N steps), model
// (gan|cgan|dcgan), loss (bce|hinge|wgan-gp), seed, batch, lr, limit (images), selftest=1 (run the
// kernel self-test first), quality_every=N (score the generator every N
// steps; 0: never).
// This module: start-up and the form's wiring. The others: state.js (the
// state and the call queue), draw.js (canvases), training.js (engine calls).
import init, { open_engine, defaults } from './gan_wgpu_web.js';
import { $, query, state, page, publish, oneLine, fail, serial, clearError } from './state.js';
import { drawGrid, download, reset, updateDrawButtons, startOrPause, runSelfTest, sample } from './training.js';
import { decodeImages, droppedFiles } from './folder.js';

// Decodes the chosen (or dropped) image files in the browser, hands them
// to the engine as the training set, and starts a fresh run on them. The
// live quality's classifier knows MNIST only: it is off on other data.
async function useImages(files, name) {
  if (!files.length) return;
  clearError();
  state.running = false;
  const size = Number($('image-size').value);
  const d = await decodeImages(files, size, async (done, total) => {
    $('data-line').textContent = `decoding ${done} of ${total} images...`;
    await new Promise((r) => setTimeout(r, 0));
  });
  if (!d.count) throw new Error(`${name}: none of its ${files.length} files is an image the browser can decode`);
  const header = { count: d.count, height: size, width: size, channels: d.channels, classes: d.classes, name };
  const desc = page.engine.load_pixels(d.pixels, JSON.stringify(header), d.labels || undefined);
  const skipped = d.skipped.length ? `; skipped ${d.skipped.length} that are not images: ${d.skipped.slice(0, 3).join(', ')}` : '';
  $('data-line').textContent = `${desc}${d.classes.length ? `, ${d.classes.length} classes` : ''}${skipped}`;
  state.data = { name, count: d.count, size, channels: d.channels, classes: d.classes, skipped: d.skipped };
  state.scorer = null;
  state.quality_off = 'the live quality\'s classifier scores MNIST digits only';
  $('quality-line').textContent = `Live quality is off: ${state.quality_off}`;
  reset();
  await drawGrid();
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
  $('adapter').textContent = 'Opening the adapter, then page.timing and checking the kernel variants on it (a few seconds; longer on a software adapter)...';
  await init();
  page.defaults = JSON.parse(defaults());
  for (const id of ['batch', 'lr', 'seed']) {
    if (query.get(id) == null) $(id).value = page.defaults[id];
  }
  $('sample-seed').value = page.defaults.seed;
  $('quality-every').value = query.get('quality_every') != null ? query.get('quality_every') : page.defaults.quality_every;
  for (const m of page.defaults.models) {
    const o = document.createElement('option');
    o.value = o.textContent = m;
    $('model').append(o);
  }
  $('model').value = query.get('model') || page.defaults.model;
  for (const l of page.defaults.losses) {
    const o = document.createElement('option');
    o.value = o.textContent = l;
    $('loss-fn').append(o);
  }
  $('loss-fn').value = query.get('loss') || page.defaults.loss;
  page.engine = await open_engine();
  const a = JSON.parse(page.engine.adapter_json());
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
  page.engine.load_images(await fetchBytes(images), images, await fetchBytes(labels), labels);
  // The live quality's classifier: without it the page trains as before.
  try {
    const name = page.defaults.quality_classifier;
    state.scorer = JSON.parse(page.engine.load_scorer(await fetchBytes(name), name));
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
      const bytes = await page.engine.checkpoint(which);
      download(bytes, `${which}_step${state.steps}.safetensors`);
    });
  }
  $('gen-file').onchange = () => serial(async () => {
    const file = $('gen-file').files[0];
    if (!file) return;
    clearError();
    const info = JSON.parse(page.engine.load_generator(new Uint8Array(await file.arrayBuffer()), file.name));
    page.loadedClasses = info.classes;
    updateDrawButtons();
    $('sample').disabled = false;
    await sample(true);
    $('sample-info').textContent = `${info.name}: latent ${info.latent}, images ${info.height}x${info.width}` +
      (info.classes ? `, ${info.classes} classes` : '');
  });
  $('sample').onclick = () => serial(() => sample(true));
  $('sample-live').onclick = () => serial(() => sample(false));
  for (let k = 0; k < 10; k++) $(`draw-${k}`).onclick = () => serial(() => sample(page.loadedClasses != null, k));
  $('selftest-run').onclick = () => serial(runSelfTest);
  $('image-folder').onchange = () => serial(() => useImages($('image-folder').files, 'the chosen folder'));
  $('image-files').onchange = () => serial(() => useImages($('image-files').files, 'the chosen files'));
  document.addEventListener('dragover', (e) => e.preventDefault());
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    // The entries must be read before the event returns.
    const files = droppedFiles(e.dataTransfer);
    serial(async () => useImages(await files, 'the dropped images'));
  });
  await drawGrid();
  publish();
  if (query.get('selftest') === '1') await runSelfTest();
  if (query.get('steps') != null) state.steps_target = Number(query.get('steps'));
  if (query.get('autostart') === '1') startOrPause();
}

window.addEventListener('error', (e) => fail(e.error || e.message));
window.addEventListener('unhandledrejection', (e) => fail(e.reason));
serial(main);
