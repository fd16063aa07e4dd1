// The page's state and plumbing: the state the browser test reads (<pre
// id="status"> as JSON), the values the modules share (`page`), errors, and
// the queue that runs one engine call at a time.

export const $ = (id) => document.getElementById(id);
export const query = new URLSearchParams(location.search);

export const state = {
  steps: 0, epoch: 0, loss_d: null, loss_g: null, steps_per_s: null,
  adapter: null, error: null, first_loss_d: null, first_loss_g: null,
  done: false, running: false, steps_target: null, settings: null,
  selftest: null, sample: null, grid_steps: null,
  // The live quality: the classifier file's description (null until
  // loaded), why it is off, and a row per scoring.
  scorer: null, quality_off: null, quality: [],
};
export const history = []; // [step, loss_d, loss_g]

// What the modules share and change: the engine, the CLI's defaults (batch,
// lr, seed, grid_samples, ..., read from the engine once it is loaded: no
// default is written in the page), the queue of engine calls, the step
// rate's timing, and the classes of the loaded generator file (null: none
// loaded, or unconditional).
export const page = {
  engine: null,
  defaults: null,
  busy: Promise.resolve(),
  timing: { steps: 0, ms: 0, calls: 0 },
  loadedClasses: null,
};

export function publish() {
  $('status').textContent = JSON.stringify(state, null, 1);
  $('s-steps').textContent = state.steps;
  $('s-epoch').textContent = state.epoch;
  $('s-rate').textContent = state.steps_per_s == null ? '-' : state.steps_per_s.toFixed(2);
  $('s-lossd').textContent = state.loss_d == null ? '-' : state.loss_d.toFixed(4);
  $('s-lossg').textContent = state.loss_g == null ? '-' : state.loss_g.toFixed(4);
  $('start').textContent = state.running ? 'Pause' : (state.steps > 0 ? 'Resume' : 'Start');
}

export function oneLine(e) {
  const text = (e && e.message) ? e.message : String(e);
  return text.replace(/\s+/g, ' ').trim();
}

export function fail(e) {
  state.error = oneLine(e);
  state.running = false;
  $('error').textContent = state.error;
  $('error').title = state.error;
  console.error(e);
  publish();
}

// Runs `job` after every engine call queued before it; errors show in the page.
export function serial(job) {
  const next = page.busy.then(job).catch(fail);
  page.busy = next;
  return next;
}

export function clearError() {
  state.error = null;
  $('error').textContent = '';
}
