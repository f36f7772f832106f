// rvmkit live matting in the browser (onnxruntime-web). Written by `rvmkit export-web`; no build step.
//
// The models are rvmkit's TRT-ready exports (the downsample ratio baked in, one file per ratio, listed in
// models.json): inputs src, r1i..r4i; outputs fgr, pha, r1o..r4o. The recurrent state r1o..r4o of one
// frame is fed back as r1i..r4i of the next (zeros [1,1,1,1] at the start), and the model runs at the
// newest frame only: frames that arrive while it runs are skipped, as in `rvmkit live`.
//
// Test hook (documented in the README), on window.rvmkitTest:
//   ready: Promise, resolved once the runtime and models.json are loaded (rejected with the page's message)
//   matteUrls(urls, ratio?) -> Promise<[{width, height, alpha: number[] (uint8, HxW),
//                                         fgr: number[] (uint8 RGB, HxWx3), runMs, backend}]>
//       mattes the images in order with a fresh state carried from one to the next, at their own size
//       (ratio: one listed in models.json, default the page's); runMs: that frame's session.run() time;
//       backend: the one that ran that frame
//   failWebgpu(n) makes the nth WebGPU run from now fail (as ?failwebgpu does from the page's start)
//   status() -> {backend, lastBackend, fallback, threads, isolated, running, frames, fps, runMs, stageMs,
//                message, ortVersion, ratio}
//       backend: the one new sessions use; lastBackend: the one that ran the last frame (null before);
//       fallback: what failed on WebGPU ('' when nothing did); frames: live frames matted; fps: over the
//       last 10 of them; runMs: the last session.run() time; stageMs: {readMs, packMs, runMs, drawMs}, the
//       live frames' mean time reading the frame (canvas), packing it (float CHW), in session.run(), drawing
//
// URL parameters, each checked at start-up (a value out of range is said on the page, and clamped):
//   ?backend=wasm|webgpu  forces a backend (default: WebGPU where the browser has an adapter)
//   ?threads=N            WASM threads, 1..the machine's cores (default: up to 4)
//   ?failwebgpu=N         test hook, 0..1000: WebGPU fails at session creation (0) or on its Nth run
//
// WebGPU failing anywhere (session creation, the first run, a later run, or a run that never ends)
// switches the page to WASM once, says so, and goes on matting the same stream (state kept).

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const STATES = ['r1', 'r2', 'r3', 'r4'];
const HERE = new URL('./', import.meta.url);

let ort = null;
let manifest = null;
const CORES = Math.max(1, navigator.hardwareConcurrency || 1);
// a WebGPU run that has not ended after this long counts as failed: a stuck one never ends. The first
// run compiles the shaders (a minute on a software adapter under load); a later one gets 10 times the
// session's slowest run so far, at least 30 s.
const WEBGPU_RUN_LIMIT_MS = { first: 300_000, later: 30_000, laterTimes: 10 };
const runtime = {
  backend: null, lastBackend: null, fallback: '', threads: 1, isolated: Boolean(self.crossOriginIsolated),
  notes: [], failWebgpu: null, webgpuRuns: 0,
};
const sessions = new Map(); // `${backend}:${ratio}` -> Promise<{session, backend}>
let runQueue = Promise.resolve(); // one session.run() at a time, whichever stream asks
const slowest = new WeakMap(); // WebGPU session -> its slowest run so far (ms)
const live = { token: 0, running: false, frames: 0, fps: 0, runMs: 0, presented: 0, done: -1, wake: null,
  stageTotals: { readMs: 0, packMs: 0, runMs: 0, drawMs: 0 } };
const view = { background: null, message: '', phase: 'loading', image: null };

// ---- messages: always in words on the page, and drawn on the canvas so it is never blank ----

function showMessage(text, isError = true) {
  if (isError) view.message = text;
  const box = $('message');
  box.textContent = text;
  box.className = isError ? 'error' : 'note';
  box.hidden = false;
  if (isError) {
    document.body.dataset.state = 'error';
    drawText(text);
  }
}

function drawText(text) {
  const canvas = $('output');
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#202428';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = '#ffb4b4';
  ctx.font = `${Math.max(14, Math.round(canvas.width / 40))}px system-ui, sans-serif`;
  const words = text.split(' ');
  let line = '';
  let y = 40;
  for (const word of words) {
    if (ctx.measureText(`${line} ${word}`).width > canvas.width - 40 && line) {
      ctx.fillText(line, 20, y);
      line = word;
      y += Math.round(canvas.width / 28);
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  ctx.fillText(line, 20, y);
}

function clearError() {
  view.message = '';
  $('message').hidden = true;
  document.body.dataset.state = view.phase;
  if (runtime.notes.length) showMessage(runtime.notes.join(' '), false);
}

class PageError extends Error {}

// ---- runtime and models ----

async function loadRuntime() {
  try {
    ort = await import(new URL('ort/ort.min.mjs', HERE).href);
  } catch (error) {
    throw new PageError('The onnxruntime-web files are missing from the ort/ folder next to this page ' +
      `(${error.message}). Re-create the folder with \`rvmkit export-web DIR --overwrite\`.`);
  }
  ort.env.wasm.wasmPaths = new URL('ort/', HERE).href;
  const wanted = intParam('threads', 1, CORES, Math.min(4, CORES));
  runtime.failWebgpu = intParam('failwebgpu', 0, 1000, null);
  runtime.threads = runtime.isolated ? wanted : 1;
  ort.env.wasm.numThreads = runtime.threads;
  if (!runtime.isolated) {
    runtime.notes.push('This page is not cross-origin isolated (the server sends no COOP/COEP headers), ' +
      'so WASM runs on 1 thread. `rvmkit export-web DIR --serve` and `rvmkit serve` send them.');
  }
  runtime.backend = await chooseBackend();
  // WASM runs in ORT's proxy worker, so the page (controls, preview, messages) never waits on the model
  ort.env.wasm.proxy = runtime.backend === 'wasm';
}

/** The whole number ?name=N in min..max; absent: `fallback`; else clamped (or `fallback` for a
 * non-number), and said on the page. */
function intParam(name, min, max, fallback) {
  const text = params.get(name);
  if (text === null || text === '') return fallback;
  const value = Number(text);
  if (Number.isInteger(value) && value >= min && value <= max) return value;
  const used = Number.isFinite(value) ? Math.min(max, Math.max(min, Math.round(value))) : fallback;
  runtime.notes.push(`?${name}=${text} is not a whole number in ${min}..${max}: using ${used ?? 'none'}.`);
  return used;
}

async function chooseBackend() {
  const forced = params.get('backend');
  if (forced === 'wasm') return 'wasm';
  if (forced !== null && forced !== 'webgpu') {
    runtime.notes.push(`?backend=${forced} is not wasm or webgpu: choosing by itself.`);
  }
  try {
    if (navigator.gpu && await navigator.gpu.requestAdapter()) return 'webgpu';
  } catch (error) {
    // no adapter: fall through to WASM
  }
  if (forced === 'webgpu') runtime.notes.push('WebGPU is not available in this browser: using WASM.');
  return 'wasm';
}

async function loadManifest() {
  let response;
  try {
    response = await fetch(new URL('models.json', HERE));
  } catch (error) {
    response = null;
  }
  if (!response || !response.ok) {
    throw new PageError('models.json is missing from this folder. Re-create the folder with ' +
      '`rvmkit export-web DIR --overwrite`.');
  }
  manifest = await response.json();
  const select = $('ratio');
  for (const model of manifest.models) {
    const option = new Option(`ratio ${model.ratio}`, String(model.ratio));
    select.append(option);
  }
}

function modelFor(ratio) {
  const model = manifest.models.find((entry) => entry.ratio === Number(ratio));
  if (!model) {
    const known = manifest.models.map((entry) => entry.ratio).join(', ');
    throw new PageError(`No model for ratio ${ratio} in models.json (it has ${known}).`);
  }
  return model;
}

async function fetchModel(model) {
  let response;
  try {
    response = await fetch(new URL(model.file, HERE));
  } catch (error) {
    response = null;
  }
  if (!response || !response.ok) {
    const status = response ? ` (HTTP ${response.status})` : '';
    throw new PageError(`The model file ${model.file} is missing from this folder${status}. Re-create ` +
      'the folder with `rvmkit export-web DIR --overwrite`, or copy the whole folder again.');
  }
  return new Uint8Array(await response.arrayBuffer());
}

/** The test hook ?failwebgpu=N: WebGPU fails at its session creation (N = 0) or Nth run. */
function failpoint(use) {
  if (runtime.failWebgpu === use) throw new Error(`a failure forced by the test hook, at WebGPU use ${use}`);
}

/** {session, backend} for `ratio` on the current backend; a WebGPU session that cannot be created
 * switches the page to WASM. */
function sessionFor(ratio) {
  const backend = runtime.backend;
  const key = `${backend}:${Number(ratio)}`;
  if (!sessions.has(key)) {
    const pending = (async () => {
      const bytes = await fetchModel(modelFor(ratio));
      const options = { executionProviders: [backend], graphOptimizationLevel: 'all' };
      try {
        if (backend === 'webgpu') failpoint(0);
        return { session: await ort.InferenceSession.create(bytes, options), backend };
      } catch (error) {
        if (backend !== 'webgpu') throw error;
        fallBack(error, 'creating its session');
        return sessionFor(ratio);
      }
    })();
    pending.catch(() => sessions.delete(key));
    sessions.set(key, pending);
  }
  return sessions.get(key);
}

/** WebGPU failed: from now on WASM, once, said on the page; the WebGPU sessions are dropped (a session
 * whose run failed is never called again: onnxruntime-web leaves it unusable). */
function fallBack(error, when) {
  if (runtime.backend !== 'webgpu') return; // another stream switched already
  runtime.backend = 'wasm';
  runtime.fallback = `WebGPU failed ${when} (${error && error.message ? error.message : error}): ` +
    'switched to WASM.';
  runtime.notes.push(runtime.fallback);
  for (const [key, pending] of [...sessions]) {
    if (!key.startsWith('webgpu:')) continue;
    sessions.delete(key);
    // a session that failed to be created resolves to its WASM replacement: that one stays
    pending.then(({ session, backend }) => backend === 'webgpu' && session.release()).catch(() => {});
  }
  if (view.message === '') showMessage(runtime.notes.join(' '), false);
  showBackend();
}

function backendLabel(backend = runtime.backend) {
  if (backend === 'webgpu') return 'WebGPU';
  const threads = runtime.threads === 1 ? '1 thread' : `${runtime.threads} threads`;
  return `WASM (SIMD, ${threads})`;
}

/** The footer: the backend that ran the last frame (before any frame: the one that will). */
function showBackend(loading = false) {
  const version = manifest ? ` (onnxruntime-web ${manifest.onnxruntime_web})` : '';
  const text = runtime.lastBackend === null
    ? `backend: ${backendLabel()}${loading ? ' - loading the model' : ', no frame yet'}${version}`
    : `backend: ${backendLabel(runtime.lastBackend)}${version}`;
  $('backend').textContent = text;
  $('backend').dataset.backend = runtime.lastBackend ?? '';
}

/** session.run(), one at a time; a WebGPU run that fails or never ends throws (it is not retried on
 * that session). */
function runOnce(session, backend, feeds) {
  const run = async () => {
    if (backend !== 'webgpu') return session.run(feeds);
    runtime.webgpuRuns += 1;
    failpoint(runtime.webgpuRuns);
    const { first, later, laterTimes } = WEBGPU_RUN_LIMIT_MS;
    const ms = slowest.has(session) ? Math.max(later, laterTimes * slowest.get(session)) : first;
    const started = performance.now();
    let timer;
    const limit = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no result after ${Math.round(ms / 1000)} s`)), ms);
    });
    try {
      const out = await Promise.race([session.run(feeds), limit]);
      slowest.set(session, Math.max(slowest.get(session) ?? 0, performance.now() - started));
      return out;
    } finally {
      clearTimeout(timer);
    }
  };
  const result = runQueue.then(run);
  runQueue = result.catch(() => {});
  return result;
}

// ---- one recurrent stream ----

class Matter {
  constructor(ratio) {
    this.ratio = ratio;
    this.state = null;
    this.runMs = 0;
    this.packMs = 0;
    this.backend = null;
  }

  /** One frame; where WebGPU fails, the same frame and state again on WASM. */
  async step(rgba, width, height) {
    const packed = performance.now();
    const feeds = { src: new ort.Tensor('float32', toPlanar(rgba, width, height), [1, 3, height, width]) };
    this.packMs = performance.now() - packed;
    const state = this.state ?? STATES.map(() => new ort.Tensor('float32', new Float32Array(1), [1, 1, 1, 1]));
    STATES.forEach((name, index) => { feeds[`${name}i`] = state[index]; });
    for (;;) {
      const { session, backend } = await sessionFor(this.ratio);
      const started = performance.now();
      let out;
      try {
        out = await runOnce(session, backend, feeds);
      } catch (error) {
        if (backend !== 'webgpu') throw error;
        fallBack(error, runtime.webgpuRuns === 1 ? 'on its first run' : `on run ${runtime.webgpuRuns}`);
        continue; // now on WASM: fallBack never returns to WebGPU, so this retries at most once
      }
      this.runMs = performance.now() - started;
      this.state = STATES.map((name) => out[`${name}o`]);
      this.backend = backend;
      runtime.lastBackend = backend;
      showBackend();
      return { fgr: out.fgr.data, pha: out.pha.data };
    }
  }
}

/** RGBA bytes -> float32 CHW in 0..1 (as rvmkit's Python path: uint8 / 255). */
function toPlanar(rgba, width, height) {
  const count = width * height;
  const planar = new Float32Array(3 * count);
  for (let i = 0, j = 0; i < count; i += 1, j += 4) {
    planar[i] = rgba[j] / 255;
    planar[count + i] = rgba[j + 1] / 255;
    planar[2 * count + i] = rgba[j + 2] / 255;
  }
  return planar;
}

/** 0..1 float -> 0..255 integer, clamped, rounded half up. */
const toByte = (value) => Math.round(Math.min(1, Math.max(0, value)) * 255);

function quantise(fgr, pha, count) {
  const alpha = new Array(count);
  const colour = new Array(3 * count);
  for (let i = 0; i < count; i += 1) {
    alpha[i] = toByte(pha[i]);
    colour[3 * i] = toByte(fgr[i]);
    colour[3 * i + 1] = toByte(fgr[count + i]);
    colour[3 * i + 2] = toByte(fgr[2 * count + i]);
  }
  return { alpha, colour };
}

// ---- pixels in and out ----

const scratch = document.createElement('canvas'); // the test hook's images
const liveFrame = document.createElement('canvas'); // the live frame being matted (also the blur source)

function pixelsOf(source, width, height, canvas = scratch) {
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(source, 0, 0, width, height);
  return ctx.getImageData(0, 0, width, height).data;
}

const backdrop = { canvas: document.createElement('canvas'), key: '', pixels: null, image: null };

/** The background's RGBA at width x height; a colour or an image is drawn once per change (the blur
 * follows the live frame, so it is drawn every frame). */
function backgroundPixels(mode, width, height) {
  const key = `${mode}|${$('colour').value}|${width}x${height}`;
  if (mode !== 'blur' && key === backdrop.key && backdrop.image === view.background) return backdrop.pixels;
  const canvas = backdrop.canvas;
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.filter = 'none';
  if (mode === 'blur') {
    ctx.filter = `blur(${Math.max(4, Math.round(width / 60))}px)`;
    ctx.drawImage(liveFrame, 0, 0, width, height);
  } else if (mode === 'image' && view.background) {
    const image = view.background;
    const scale = Math.max(width / image.naturalWidth, height / image.naturalHeight);
    const w = image.naturalWidth * scale;
    const h = image.naturalHeight * scale;
    ctx.drawImage(image, (width - w) / 2, (height - h) / 2, w, h);
  } else {
    ctx.fillStyle = $('colour').value;
    ctx.fillRect(0, 0, width, height);
  }
  Object.assign(backdrop, { key, image: view.background, pixels: ctx.getImageData(0, 0, width, height).data });
  return backdrop.pixels;
}

function render(fgr, pha, width, height) {
  const canvas = $('output');
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const ctx = canvas.getContext('2d');
  if (!view.image || view.image.width !== width || view.image.height !== height) {
    view.image = ctx.createImageData(width, height);
  }
  const image = view.image;
  const out = image.data;
  const count = width * height;
  const mode = $('view').value;
  const back = mode === 'alpha' ? null : backgroundPixels(mode, width, height);
  for (let i = 0, j = 0; i < count; i += 1, j += 4) {
    const a = Math.min(1, Math.max(0, pha[i]));
    if (back === null) {
      out[j] = out[j + 1] = out[j + 2] = a * 255;
    } else {
      out[j] = fgr[i] * 255 * a + back[j] * (1 - a);
      out[j + 1] = fgr[count + i] * 255 * a + back[j + 1] * (1 - a);
      out[j + 2] = fgr[2 * count + i] * 255 * a + back[j + 2] * (1 - a);
    }
    out[j + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
}

// ---- the live loop: newest frame only ----

function processSize(video) {
  const longest = Number($('size').value);
  const scale = longest > 0 ? Math.min(1, longest / Math.max(video.videoWidth, video.videoHeight)) : 1;
  return [Math.max(2, Math.round(video.videoWidth * scale)), Math.max(2, Math.round(video.videoHeight * scale))];
}

function watchFrames(video, token) {
  const seen = () => {
    live.presented += 1;
    if (live.wake) live.wake();
  };
  if ('requestVideoFrameCallback' in video) {
    const next = () => video.requestVideoFrameCallback(() => {
      seen();
      if (live.token === token) next();
    });
    next();
  } else {
    let last = -1;
    const tick = () => {
      if (video.currentTime !== last) {
        last = video.currentTime;
        seen();
      }
      if (live.token === token) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }
}

function nextFrame() {
  return new Promise((resolve) => {
    live.wake = resolve;
    setTimeout(resolve, 200); // never hang on a stalled source
  });
}

async function runLoop(token) {
  const video = $('video');
  let matter = null;
  let key = '';
  const times = [];
  while (live.token === token) {
    if (live.presented === live.done || video.readyState < 2 || !video.videoWidth) {
      await nextFrame();
      continue;
    }
    const frameId = live.presented;
    const [width, height] = processSize(video);
    const ratio = $('ratio').value;
    if (`${width}x${height}@${ratio}` !== key) { // a new size or model starts a new stream
      matter = new Matter(ratio);
      key = `${width}x${height}@${ratio}`;
    }
    const read = performance.now();
    const rgba = pixelsOf(video, width, height, liveFrame);
    const readMs = performance.now() - read;
    const { fgr, pha } = await matter.step(rgba, width, height);
    if (live.token !== token) break;
    const drawn = performance.now();
    render(fgr, pha, width, height);
    addStages({ readMs, packMs: matter.packMs, runMs: matter.runMs, drawMs: performance.now() - drawn });
    live.runMs = matter.runMs;
    live.done = frameId;
    live.frames += 1;
    times.push(performance.now()); // fps over the last (up to) 10 matted frames
    if (times.length > 11) times.shift();
    live.fps = times.length > 1 ? (times.length - 1) * 1000 / (times[times.length - 1] - times[0]) : 0;
    $('fps').textContent = `fps ${live.fps.toFixed(1)} (${width}x${height}, ratio ${ratio})`;
  }
}

/** Sums of the live frames' stage times (status() gives their means). */
function addStages(stages) {
  for (const [name, ms] of Object.entries(stages)) live.stageTotals[name] += ms;
}

function stageMeans() {
  const frames = Math.max(1, live.frames);
  return Object.fromEntries(Object.entries(live.stageTotals).map(([name, ms]) => [name, ms / frames]));
}

function stopSource() {
  live.token += 1;
  live.running = false;
  const video = $('video');
  if (video.srcObject) video.srcObject.getTracks().forEach((track) => track.stop());
  video.srcObject = null;
  if (video.src) URL.revokeObjectURL(video.src);
  video.removeAttribute('src');
  delete video.dataset.live;
  $('stop').disabled = true;
}

async function startSource(attach) {
  stopSource();
  const token = live.token;
  const video = $('video');
  try {
    await attach(video);
    await video.play();
  } catch (error) {
    stopSource();
    showMessage(describeSourceError(error));
    return;
  }
  clearError();
  live.running = true;
  live.presented = 0;
  live.done = -1;
  video.dataset.live = '';
  $('stop').disabled = false;
  watchFrames(video, token);
  runLoop(token).catch((error) => {
    stopSource();
    showMessage(error instanceof PageError ? error.message : `Matting stopped: ${error.message}`);
  });
}

function describeSourceError(error) {
  switch (error && error.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'Camera permission denied. Allow the camera for this page (the icon in the address bar) and ' +
        'press Start camera again, or pick a video file.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No camera found. Connect a camera and press Start camera again, or pick a video file.';
    case 'NotReadableError':
    case 'AbortError':
      return 'The camera could not be started: another application may be using it. Close it and try again.';
    case 'NotSupportedError':
      return 'This video file cannot be played by this browser. Pick another file (MP4/H.264 or WebM).';
    default:
      return `The video source could not be started: ${error && error.message ? error.message : error}`;
  }
}

function startCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    stopSource();
    showMessage('The camera is only available on a secure page: open it via http://localhost or https.');
    return;
  }
  startSource(async (video) => {
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  });
}

function startFile(file) {
  startSource(async (video) => {
    video.loop = true;
    video.src = URL.createObjectURL(file);
  });
}

// ---- the test hook ----

async function loadImage(url) {
  const image = new Image();
  image.src = url;
  await image.decode();
  return image;
}

async function matteUrls(urls, ratio) {
  await ready;
  const matter = new Matter(ratio ?? $('ratio').value);
  const results = [];
  for (const url of urls) {
    const image = await loadImage(url);
    const width = image.naturalWidth;
    const height = image.naturalHeight;
    const { fgr, pha } = await matter.step(pixelsOf(image, width, height), width, height);
    const { alpha, colour } = quantise(fgr, pha, width * height);
    results.push({ width, height, alpha, fgr: colour, runMs: matter.runMs, backend: matter.backend });
  }
  return results;
}

function status() {
  return {
    backend: runtime.backend, lastBackend: runtime.lastBackend, fallback: runtime.fallback,
    threads: runtime.threads, isolated: runtime.isolated,
    running: live.running, frames: live.frames, fps: live.fps, runMs: live.runMs, stageMs: stageMeans(),
    message: view.message,
    ortVersion: manifest ? manifest.onnxruntime_web : null, ratio: $('ratio').value,
  };
}

// ---- start-up ----

function setPhase(phase) {
  view.phase = phase;
  if (document.body.dataset.state !== 'error') document.body.dataset.state = phase;
}

function enableSources(enabled) {
  $('start-camera').disabled = !enabled;
  $('video-file').disabled = !enabled;
}

async function init() {
  await loadRuntime();
  await loadManifest();
  showBackend(true);
  if (runtime.notes.length) showMessage(runtime.notes.join(' '), false);
  enableSources(true); // the camera may start while the model loads: matting begins when it is ready
  drawText('Loading the model...');
  setPhase('loading-model');
  await sessionFor($('ratio').value); // the default model, so a missing file is said at once
  showBackend();
  if (!live.running && view.message === '') drawText('Press Start camera, or pick a video file.');
  setPhase('ready');
}

function wireControls() {
  $('start-camera').addEventListener('click', startCamera);
  $('stop').addEventListener('click', stopSource);
  $('video-file').addEventListener('change', (event) => {
    if (event.target.files.length) startFile(event.target.files[0]);
  });
  $('background-file').addEventListener('change', async (event) => {
    if (!event.target.files.length) return;
    view.background = await loadImage(URL.createObjectURL(event.target.files[0]));
    $('view').value = 'image';
  });
}

const ready = init().catch((error) => {
  stopSource();
  enableSources(false);
  const text = error instanceof PageError ? error.message : `The page could not start: ${error.message}`;
  showMessage(text);
  $('backend').textContent = `backend: ${runtime.backend ? backendLabel() : 'none'}`;
  throw new Error(text);
});
ready.catch(() => {}); // reported on the page; the hook's callers see the rejection
wireControls();
window.rvmkitTest = {
  ready, matteUrls, status, failWebgpu: (n) => { runtime.failWebgpu = runtime.webgpuRuns + n; },
};
