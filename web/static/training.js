// Training and the engine's other calls: a run's settings and reset, the
// stepping loop (one queued call at a time, the chunk sized to keep the tab
// responsive), the live grid and scores, samples, downloads, the self-test.

import { $, query, state, history, page, publish, serial, clearError } from './state.js';
import { drawImages, drawQuality, drawLoss } from './draw.js';

const GRID_EVERY_STEPS = 50;

function settings() {
  const num = (id, dflt) => {
    const q = query.get(id);
    const v = Number(q != null ? q : $(id).value);
    return Number.isFinite(v) ? v : dflt;
  };
  const model = query.get('model') || $('model').value || page.defaults.model;
  const loss = query.get('loss') || $('loss-fn').value || page.defaults.loss;
  return { model, loss, batch: num('batch', page.defaults.batch), lr: num('lr', page.defaults.lr), seed: num('seed', page.defaults.seed), limit: num('limit', 0) };
}

// Steps between scorings of the generator (0: never).
function qualityEvery() {
  if (state.scorer == null) return 0;
  const v = Number(query.get('quality_every') != null ? query.get('quality_every') : $('quality-every').value);
  return Number.isFinite(v) && v > 0 ? Math.floor(v) : 0;
}

// Scores the generator in training (`gan-wgpu eval`'s numbers on the
// latent codes of its default seed) and adds a point to the curve.
async function scoreQuality() {
  const q = JSON.parse(await page.engine.score(page.defaults.quality_count, page.defaults.seed));
  q.step = state.steps;
  q.seed = page.defaults.seed;
  state.quality.push(q);
  const acc = q.conditional_accuracy != null ? `, right class ${(100 * q.conditional_accuracy).toFixed(1)}%` : '';
  $('quality-line').textContent = `step ${q.step}: FID ${q.fid.toFixed(1)}, ${q.classes_covered} of ` +
    `${page.defaults.classes} classes covered${acc} (${q.n} samples, ${q.seconds.toFixed(1)} s)`;
  drawQuality();
}

async function drawGrid() {
  const [h, w, c] = page.engine.image_shape();
  const [count, cols] = page.engine.grid_shape();
  const pixels = await page.engine.grid();
  drawImages($('grid'), pixels, count, h, w, cols, c);
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
  const stepsPerEpoch = page.engine.new_session(s.model, s.loss, s.batch, s.lr, s.seed, s.limit);
  Object.assign(state, {
    steps: 0, epoch: 0, loss_d: null, loss_g: null, steps_per_s: null,
    first_loss_d: null, first_loss_g: null, done: false, settings: { ...s, steps_per_epoch: stepsPerEpoch },
  });
  history.length = 0;
  state.quality = [];
  page.timing = { steps: 0, ms: 0, calls: 0 };
  drawLoss();
  drawQuality();
  updateDrawButtons();
}

// The "draw a K" buttons work on a conditional generator: the loaded file's,
// else the model in training's.
function updateDrawButtons() {
  const on = page.loadedClasses != null || (state.settings && state.settings.model === 'cgan');
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
  const rows = JSON.parse(await page.engine.run_steps(want));
  const ms = performance.now() - t0;
  const n = rows.length;
  // The first call of a run compiles the pipelines: not part of the rate.
  if (page.timing.calls++ > 0) {
    page.timing.steps += n;
    page.timing.ms += ms;
    state.steps_per_s = page.timing.steps / (page.timing.ms / 1000);
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
  const rows = JSON.parse(await page.engine.self_test());
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
  const seed = Number($('sample-seed').value) || page.defaults.seed;
  const conditional = fromLoaded ? page.loadedClasses != null : state.settings.model === 'cgan';
  // The generator's classes: the loaded file's, or the data's in training.
  const classes = (fromLoaded ? page.loadedClasses : state.data && state.data.classes.length) || page.defaults.classes;
  const count = conditional && cls < 0 ? 2 * classes : page.defaults.grid_samples;
  const pixels = await page.engine.sample(seed, count, fromLoaded, cls);
  const [h, w, c] = fromLoaded ? page.engine.loaded_shape() : page.engine.image_shape();
  drawImages($('samples'), pixels, count, h, w, conditional && cls < 0 ? classes : 0, c);
  // The pixels, for the browser test's comparison with `gan-wgpu sample`.
  window.ganLastSample = btoa(String.fromCharCode(...pixels));
  state.sample = { seed, count, from: fromLoaded ? 'file' : 'training', class: cls, height: h, width: w };
  $('sample-info').textContent = cls >= 0 ? `${count} samples of class ${cls}` : '';
  publish();
}


export { drawGrid, download, reset, updateDrawButtons, startOrPause, runSelfTest, sample };
