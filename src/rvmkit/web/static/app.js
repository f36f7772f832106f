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
//                                         fgr: number[] (uint8 RGB, HxWx3), runMs}]>
//       mattes the images in order with a fresh state carried from one to the next, at their own size
//       (ratio: one listed in models.json, default the page's); runMs: that frame's session.run() time
//   status() -> {backend, threads, isolated, running, frames, fps, runMs, message, ortVersion, ratio}
//       frames: live frames matted; fps: over the last 10 of them; runMs: the last session.run() time
//
// URL parameters: ?backend=wasm|webgpu forces a backend, ?threads=N sets the WASM threads.

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const STATES = ['r1', 'r2', 'r3', 'r4'];
const HERE = new URL('./', import.meta.url);

let ort = null;
let manifest = null;
const runtime = { backend: null, threads: 1, isolated: Boolean(self.crossOriginIsolated), notes: [] };
const sessions = new Map(); // ratio -> Promise<InferenceSession>
const live = { token: 0, running: false, frames: 0, fps: 0, runMs: 0, presented: 0, done: -1, wake: null };
const view = { background: null, message: '', phase: 'loading' };

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
  const wanted = Number(params.get('threads')) || Math.min(4, navigator.hardwareConcurrency || 1);
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

async function chooseBackend() {
  const forced = params.get('backend');
  if (forced === 'wasm') return 'wasm';
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

async function createSession(bytes) {
  const options = { executionProviders: [runtime.backend], graphOptimizationLevel: 'all' };
  try {
    return await ort.InferenceSession.create(bytes, options);
  } catch (error) {
    if (runtime.backend !== 'webgpu') throw error;
    runtime.notes.push(`WebGPU failed (${error.message}): using WASM.`);
    runtime.backend = 'wasm';
    return ort.InferenceSession.create(bytes, { ...options, executionProviders: ['wasm'] });
  }
}

function sessionFor(ratio) {
  const key = Number(ratio);
  if (!sessions.has(key)) {
    const pending = (async () => createSession(await fetchModel(modelFor(key))))();
    pending.catch(() => sessions.delete(key));
    sessions.set(key, pending);
  }
  return sessions.get(key);
}

function backendLabel() {
  if (runtime.backend === 'webgpu') return 'WebGPU';
  const threads = runtime.threads === 1 ? '1 thread' : `${runtime.threads} threads`;
  return `WASM (SIMD, ${threads})`;
}

// ---- one recurrent stream ----

class Matter {
  constructor(session) {
    this.session = session;
    this.state = null;
    this.runMs = 0;
  }

  async step(rgba, width, height) {
    const feeds = { src: new ort.Tensor('float32', toPlanar(rgba, width, height), [1, 3, height, width]) };
    const state = this.state ?? STATES.map(() => new ort.Tensor('float32', new Float32Array(1), [1, 1, 1, 1]));
    STATES.forEach((name, index) => { feeds[`${name}i`] = state[index]; });
    const started = performance.now();
    const out = await this.session.run(feeds);
    this.runMs = performance.now() - started;
    this.state = STATES.map((name) => out[`${name}o`]);
    return { fgr: out.fgr.data, pha: out.pha.data };
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

function backgroundPixels(mode, width, height) {
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
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
  return ctx.getImageData(0, 0, width, height).data;
}

function render(fgr, pha, width, height) {
  const canvas = $('output');
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(width, height);
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
      matter = new Matter(await sessionFor(ratio));
      key = `${width}x${height}@${ratio}`;
    }
    const { fgr, pha } = await matter.step(pixelsOf(video, width, height, liveFrame), width, height);
    if (live.token !== token) break;
    render(fgr, pha, width, height);
    live.runMs = matter.runMs;
    live.done = frameId;
    live.frames += 1;
    times.push(performance.now()); // fps over the last (up to) 10 matted frames
    if (times.length > 11) times.shift();
    live.fps = times.length > 1 ? (times.length - 1) * 1000 / (times[times.length - 1] - times[0]) : 0;
    $('fps').textContent = `fps ${live.fps.toFixed(1)} (${width}x${height}, ratio ${ratio})`;
  }
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
  const matter = new Matter(await sessionFor(ratio ?? $('ratio').value));
  const results = [];
  for (const url of urls) {
    const image = await loadImage(url);
    const width = image.naturalWidth;
    const height = image.naturalHeight;
    const { fgr, pha } = await matter.step(pixelsOf(image, width, height), width, height);
    const { alpha, colour } = quantise(fgr, pha, width * height);
    results.push({ width, height, alpha, fgr: colour, runMs: matter.runMs });
  }
  return results;
}

function status() {
  return {
    backend: runtime.backend, threads: runtime.threads, isolated: runtime.isolated,
    running: live.running, frames: live.frames, fps: live.fps, runMs: live.runMs, message: view.message,
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
  $('backend').textContent = `backend: ${backendLabel()} - loading the model`;
  if (runtime.notes.length) showMessage(runtime.notes.join(' '), false);
  enableSources(true); // the camera may start while the model loads: matting begins when it is ready
  drawText('Loading the model...');
  setPhase('loading-model');
  await sessionFor($('ratio').value); // the default model, so a missing file is said at once
  $('backend').textContent = `backend: ${backendLabel()} (onnxruntime-web ${manifest.onnxruntime_web})`;
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
window.rvmkitTest = { ready, matteUrls, status };
