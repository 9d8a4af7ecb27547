// The editor page: open a photo, paint "look here" / "look away", run G and E on the
// device, show overlays, compare, download at full resolution.
import { blendGuidance, guidanceFromMasks } from "./guidance.js";
import { makeImage, resizeToFloat } from "./imaging.js";
import { loadModel, loadRuntime, runModel, runtimeThreads } from "./models.js";
import { applyCoefficients, applyResidual, coefficientsFromFields } from "./operators.js";
import { applyCoefficientsParallel } from "./parallel.js";

const $ = (id) => document.getElementById(id);
const PREVIEW_SIDE = 1600; // the on-screen copy's longer side (the download is full size)

const state = {
  config: null,
  models: new Map(), // "WxH" -> {g, e}
  ready: false,
  busy: false,
  photo: null, // {name, width, height, bitmap, preview (rgba8 image), small: Map}
  strokes: [],
  current: null,
  result: null,
  overlay: "none",
  limits: { maxMegapixels: 48 },
};

// What the browser tests read (and a person can inspect in the console).
const hooks = {
  state,
  timings: {},
  lastRun: null,
  lastDownload: null,
  errors: [],
};
window.sagimApp = hooks;

// ----------------------------------------------------------------- messages and progress
function setMessage(text) {
  $("message").textContent = text;
}

function setProgress(fraction) {
  const bar = $("progress");
  bar.classList.toggle("idle", fraction === null);
  const value = fraction === null ? 0 : Math.round(100 * Math.min(1, Math.max(0, fraction)));
  bar.firstElementChild.style.width = `${value}%`;
  bar.setAttribute("aria-valuenow", String(value));
}

function showError(text) {
  hooks.errors.push(text);
  $("error-text").textContent = text;
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
}

const frame = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));

function updateButtons() {
  const hasPhoto = Boolean(state.photo);
  $("edit").disabled = !(hasPhoto && state.ready && !state.busy);
  $("undo").disabled = !(hasPhoto && state.strokes.length && !state.busy);
  $("compare").disabled = !state.result || state.busy;
  $("download").disabled = !state.result || state.busy;
}

function setBusy(busy) {
  state.busy = busy;
  document.body.classList.toggle("busy", busy);
  updateButtons();
}

// ----------------------------------------------------------------- start-up
async function start() {
  wireControls();
  if (typeof WebAssembly !== "object" || typeof WebAssembly.instantiate !== "function") {
    setProgress(null);
    setMessage("Editing is unavailable in this browser.");
    showError("This browser cannot run WebAssembly, which the on-device editor needs. Open the page in a current Chrome, Edge, Firefox or Safari (WebAssembly may also be turned off by a policy or a \"lockdown\" mode).");
    return;
  }
  if ("serviceWorker" in navigator && window.isSecureContext) {
    navigator.serviceWorker.register("sw.js").catch((error) => console.warn("no offline copy:", error));
  }
  try {
    const response = await fetch("app.json");
    if (!response.ok) throw new Error(`app.json: the server answered ${response.status}`);
    state.config = await response.json();
    state.limits.maxMegapixels = state.config.limits.max_megapixels;
    await loadModels();
  } catch (error) {
    setProgress(null);
    setMessage("The editing model is not loaded; you can still open photos and paint.");
    showError(`The editing model could not be loaded (${error.message || error}). Check the connection and reload; if it keeps failing, rebuild the app with "sagim app build".`);
    hooks.timings.loadError = String(error);
  }
  updateButtons();
}

async function loadModels() {
  const t0 = performance.now();
  setMessage("Loading the on-device runtime…");
  setProgress(0.02);
  await loadRuntime(new URL("wasm/", document.baseURI).href);
  const files = state.config.sizes.flatMap((s) => [s.g, s.e]);
  let done = 0;
  for (const size of state.config.sizes) {
    const pair = {};
    for (const [key, url] of [["g", size.g], ["e", size.e]]) {
      setMessage(`Loading the editing models (${done + 1} of ${files.length})…`);
      pair[key] = await loadModel(url, (received, total) => {
        if (total) setProgress((done + received / total) / files.length);
      });
      done += 1;
      setProgress(done / files.length);
    }
    state.models.set(`${size.width}x${size.height}`, pair);
  }
  state.ready = true;
  hooks.timings.modelLoadMs = performance.now() - t0;
  hooks.timings.threads = runtimeThreads();
  setProgress(null);
  setMessage(state.photo ? "Ready: paint, then Edit." : "Ready. Open a photo to start.");
}

// ----------------------------------------------------------------- opening a photo
async function openFile(file) {
  clearError();
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    showError(`"${file.name}" is not an image (${file.type}). Choose a photo: JPEG, PNG, WebP or HEIC where the browser supports it.`);
    return;
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch (error) {
    showError(`"${file.name}" could not be read as an image: it is not an image, it is damaged, it is too large for this device to decode, or this browser cannot decode its format.`);
    return;
  }
  const { width, height } = bitmap;
  const megapixels = (width * height) / 1e6;
  if (megapixels > state.limits.maxMegapixels) {
    bitmap.close();
    showError(`This photo is ${width}×${height} (${megapixels.toFixed(1)} megapixels), too large for this device: the limit is ${state.limits.maxMegapixels} megapixels. Choose a smaller photo or shrink it first.`);
    return;
  }
  try {
    const scale = Math.min(1, PREVIEW_SIDE / Math.max(bitmap.width, bitmap.height));
    const pw = Math.max(1, Math.round(bitmap.width * scale));
    const ph = Math.max(1, Math.round(bitmap.height * scale));
    const preview = { ...pixelsOf(bitmap, pw, ph), kind: "rgba8" };
    if (state.photo) state.photo.bitmap.close();
    state.photo = { name: file.name || "photo", width: bitmap.width, height: bitmap.height, bitmap, preview, small: new Map() };
  } catch (error) {
    bitmap.close();
    showError(`This photo (${width}×${height}) is too large for this device's memory. Choose a smaller photo.`);
    return;
  }
  state.strokes = [];
  state.result = null;
  $("frame").hidden = false;
  $("frame").classList.remove("edited");
  $("empty").hidden = true;
  layout();
  setMessage(state.ready ? "Paint Look here / Look away, then Edit." : $("message").textContent);
  updateButtons();
}

// RGBA pixels of `bitmap` drawn at width x height; throws when the canvas cannot be made.
function pixelsOf(bitmap, width, height) {
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  if (!ctx) throw new Error("no canvas");
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(bitmap, 0, 0, width, height);
  const data = ctx.getImageData(0, 0, width, height).data;
  return { width, height, data };
}

function workSize() {
  const { width, height } = state.photo;
  const sizes = state.config.sizes;
  const landscape = width >= height;
  return sizes.find((s) => (s.width >= s.height) === landscape) || sizes[0];
}

// The photo at G's working size, float RGB, from the full-resolution pixels (cached).
function smallCopy(size) {
  const key = `${size.width}x${size.height}`;
  if (!state.photo.small.has(key)) {
    const full = { ...pixelsOf(state.photo.bitmap, state.photo.width, state.photo.height), kind: "rgba8" };
    state.photo.small.set(key, { image: resizeToFloat(full, size.width, size.height), saliency: null });
  }
  return state.photo.small.get(key);
}

// ----------------------------------------------------------------- drawing and layout
function layout() {
  if (!state.photo) return;
  const stage = $("stage").getBoundingClientRect();
  const scale = Math.min(stage.width / state.photo.width, stage.height / state.photo.height);
  const cssW = Math.max(1, Math.floor(state.photo.width * scale));
  const cssH = Math.max(1, Math.floor(state.photo.height * scale));
  const f = $("frame");
  f.style.width = `${cssW}px`;
  f.style.height = `${cssH}px`;
  const dpr = window.devicePixelRatio || 1;
  const pw = Math.min(state.photo.preview.width, Math.round(cssW * dpr));
  const ph = Math.min(state.photo.preview.height, Math.round(cssH * dpr));
  for (const id of ["view", "paint"]) {
    $(id).width = pw;
    $(id).height = ph;
  }
  drawView(false);
  drawStrokes($("paint"), state.strokes, false);
  drawOverlay();
}

function imageDataOf(image) {
  return new ImageData(image.data, image.width, image.height);
}

async function drawView(original) {
  const canvas = $("view");
  const shown = !original && state.result ? state.result.preview : state.photo.preview;
  const bitmap = await createImageBitmap(imageDataOf(shown));
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
}

const COLORS = { here: "rgb(255,122,26)", away: "rgb(58,160,255)" };
const MASK_COLORS = { here: "rgb(255,0,0)", away: "rgb(0,0,255)" };

// Strokes in photo pixels, drawn onto `canvas` (scaled to its size).
function drawStrokes(canvas, strokes, forMask) {
  const ctx = canvas.getContext("2d", { willReadFrequently: forMask });
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.scale(canvas.width / state.photo.width, canvas.height / state.photo.height);
  for (const stroke of strokes) drawStroke(ctx, stroke, forMask);
  return ctx;
}

function drawStroke(ctx, stroke, forMask) {
  ctx.globalCompositeOperation = stroke.mode === "erase" ? "destination-out" : "source-over";
  const color = stroke.mode === "erase" ? "#000" : (forMask ? MASK_COLORS : COLORS)[stroke.mode];
  ctx.strokeStyle = color;
  ctx.fillStyle = color;
  ctx.lineWidth = 2 * stroke.radius;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  const pts = stroke.points;
  if (pts.length === 1) {
    ctx.beginPath();
    ctx.arc(pts[0][0], pts[0][1], stroke.radius, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(pts[0][0], pts[0][1]);
  for (let i = 1; i < pts.length; i++) ctx.lineTo(pts[i][0], pts[i][1]);
  ctx.stroke();
}

// The painted regions at (width, height): {here, away} masks (Uint8Array, 1 inside).
function rasterMasks(width, height) {
  const canvas = new OffscreenCanvas(width, height);
  const ctx = drawStrokes(canvas, state.strokes, true);
  const data = ctx.getImageData(0, 0, width, height).data;
  const here = new Uint8Array(width * height);
  const away = new Uint8Array(width * height);
  for (let i = 0; i < here.length; i++) {
    if (data[i * 4 + 3] > 127) {
      if (data[i * 4] > 127) here[i] = 1;
      else if (data[i * 4 + 2] > 127) away[i] = 1;
    }
  }
  return { here, away };
}

// A map in [0, 1] (working size) as a heat overlay.
function drawHeat(map, width, height) {
  const canvas = $("heat");
  canvas.width = width;
  canvas.height = height;
  const image = new ImageData(width, height);
  for (let i = 0; i < map.length; i++) {
    const v = Math.min(1, Math.max(0, map[i]));
    image.data[i * 4] = Math.round(255 * Math.min(1, 1.8 * v));
    image.data[i * 4 + 1] = Math.round(255 * Math.max(0, 1.6 * v - 0.45));
    image.data[i * 4 + 2] = Math.round(255 * Math.max(0, 0.55 - v) * 0.9);
    image.data[i * 4 + 3] = Math.round(255 * (0.25 + 0.75 * v));
  }
  canvas.getContext("2d").putImageData(image, 0, 0);
}

function drawOverlay() {
  const canvas = $("heat");
  const r = state.result;
  const cached = state.photo && state.photo.small.get(`${workSize().width}x${workSize().height}`);
  let map = null;
  let size = r ? r.size : workSize();
  if (state.overlay === "guidance" && r) map = r.target;
  else if (state.overlay === "before") map = r ? r.saliencyBefore : cached && cached.saliency;
  else if (state.overlay === "after" && r) map = r.saliencyAfter;
  if (!map) {
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
    if (state.overlay !== "none" && state.photo) {
      setMessage(state.overlay === "before" ? "Saliency before: press Edit to compute it." : "Press Edit first to see this overlay.");
    }
    return;
  }
  drawHeat(map, size.width, size.height);
}

// ----------------------------------------------------------------- painting
function wirePainting() {
  const canvas = $("paint");
  const toPhoto = (event) => {
    const rect = canvas.getBoundingClientRect();
    return [
      ((event.clientX - rect.left) / rect.width) * state.photo.width,
      ((event.clientY - rect.top) / rect.height) * state.photo.height,
    ];
  };
  canvas.addEventListener("pointerdown", (event) => {
    if (!state.photo || state.busy || state.current) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    $("frame").classList.remove("edited");
    const rect = canvas.getBoundingClientRect();
    const mode = document.querySelector('input[name="brush"]:checked').value;
    const radius = (Number($("size").value) / 2) * (state.photo.width / rect.width);
    state.current = { mode, radius, points: [toPhoto(event)], pointerId: event.pointerId };
    const ctx = canvas.getContext("2d");
    ctx.setTransform(canvas.width / state.photo.width, 0, 0, canvas.height / state.photo.height, 0, 0);
    drawStroke(ctx, state.current, false);
  });
  canvas.addEventListener("pointermove", (event) => {
    const stroke = state.current;
    if (!stroke || event.pointerId !== stroke.pointerId) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const e of events.length ? events : [event]) stroke.points.push(toPhoto(e));
    const ctx = canvas.getContext("2d");
    ctx.setTransform(canvas.width / state.photo.width, 0, 0, canvas.height / state.photo.height, 0, 0);
    drawStroke(ctx, { ...stroke, points: stroke.points.slice(-events.length - 1) }, false);
  });
  const finish = (event) => {
    const stroke = state.current;
    if (!stroke || event.pointerId !== stroke.pointerId) return;
    state.current = null;
    delete stroke.pointerId;
    state.strokes.push(stroke);
    drawStrokes(canvas, state.strokes, false);
    updateButtons();
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);
}

// ----------------------------------------------------------------- editing
async function runEdit() {
  if (state.busy || !state.photo || !state.ready) return;
  clearError();
  setBusy(true);
  try {
    const size = workSize();
    const { width: w, height: h } = size;
    const models = state.models.get(`${w}x${h}`);
    const cfg = state.config;
    const strength = Number($("strength").value) / 100;
    setMessage("Editing on this device…");
    setProgress(0.05);
    await frame();
    const t0 = performance.now();
    const cached = smallCopy(size);
    const small = cached.image;
    const { here, away } = rasterMasks(w, h);
    if (!here.some((v) => v) && !away.some((v) => v)) {
      throw new Error("Paint where the eye should go (Look here) or what it should leave (Look away) first.");
    }
    const imageShape = [1, h, w, 3];
    const mapShape = [1, h, w, 1];
    const t1 = performance.now();
    const tE = performance.now();
    if (!cached.saliency) {
      cached.saliency = await runModel(models.e, { [cfg.inputs.image]: [small.data, imageShape] }, cfg.outputs.e);
    }
    const saliency = cached.saliency;
    hooks.timings.eMs = performance.now() - tE;
    const g = cfg.guidance;
    const target = guidanceFromMasks(saliency, here, away, w, h, {
      raiseTo: g.raise_to, lowerFactor: g.lower_factor, sigmaFraction: g.sigma_fraction,
      topFraction: g.top_fraction, minReference: g.min_reference,
    });
    setProgress(0.3);
    const op = cfg.operators;
    const applyOptions = { luma: op.luma, detailSize: op.detail_kernel_size, detailSigma: op.detail_sigma };
    let guidanceUsed;
    let output;
    let edit; // (src, dst, options) -> promise: the edit at any size
    const smallEdited = makeImage(w, h, "rgb32");
    const tG = performance.now();
    if (cfg.head === "operators") {
      guidanceUsed = target;
      output = await runModel(models.g, { [cfg.inputs.image]: [small.data, imageShape], [cfg.inputs.guidance]: [target, mapShape] }, cfg.outputs.g);
      const coef = coefficientsFromFields(output, op.ranges, op.luma, strength);
      // on several cores for photo-sized images (the working-size copy is done here)
      // (the working copy: the detail change is made at G's size, see operators.js)
      edit = (src, dst, options) => applyCoefficientsParallel(src, coef, w, h, dst, { ...applyOptions, work: small, ...options });
      await applyCoefficients(small, coef, w, h, smallEdited, applyOptions);
    } else {
      guidanceUsed = blendGuidance(saliency, target, strength);
      output = await runModel(models.g, { [cfg.inputs.image]: [small.data, imageShape], [cfg.inputs.guidance]: [guidanceUsed, mapShape] }, cfg.outputs.g);
      const residual = new Float32Array(output.length);
      for (let i = 0; i < output.length; i++) {
        residual[i] = output[i] - small.data[i];
        smallEdited.data[i] = Math.min(1, Math.max(0, output[i]));
      }
      edit = (src, dst, options) => applyResidual(src, residual, w, h, dst, options);
    }
    hooks.timings.gMs = performance.now() - tG;
    const tE2 = performance.now();
    const saliencyAfter = await runModel(models.e, { [cfg.inputs.image]: [smallEdited.data, imageShape] }, cfg.outputs.e);
    const t2 = performance.now();
    hooks.timings.eAfterMs = t2 - tE2;
    setProgress(0.6);
    setMessage("Applying the edit to the photo…");
    const preview = makeImage(state.photo.preview.width, state.photo.preview.height, "rgba8");
    await edit(state.photo.preview, preview, { onProgress: (f) => setProgress(0.6 + 0.4 * f) });
    const t3 = performance.now();
    state.result = { size, target, guidanceUsed, saliencyBefore: saliency, saliencyAfter, preview, edit, strength };
    hooks.timings.editMs = t2 - t1; // G and E at the working size (the photo already shrunk)
    hooks.timings.prepareMs = t1 - t0;
    hooks.timings.previewMs = t3 - t2;
    hooks.lastRun = { width: w, height: h, head: cfg.head, strength, small: small.data, saliency, here, away, target, guidance: guidanceUsed, output, smallEdited: smallEdited.data, saliencyAfter };
    await drawView(false);
    drawOverlay();
    $("frame").classList.add("edited"); // the strokes fade so that the edit shows
    setMessage(`Edited in ${Math.round(t3 - t0)} ms. Hold to compare with the original.`);
  } catch (error) {
    showError(error.message || String(error));
    setMessage("The edit did not run; the photo is unchanged.");
  } finally {
    setProgress(null);
    setBusy(false);
  }
}

// The edit at the photo's full resolution, as a canvas.
async function renderFull() {
  const t0 = performance.now();
  const full = { ...pixelsOf(state.photo.bitmap, state.photo.width, state.photo.height), kind: "rgba8" };
  const dst = makeImage(full.width, full.height, "rgba8");
  await state.result.edit(full, dst, { onProgress: (f) => setProgress(0.05 + 0.85 * f) });
  const t1 = performance.now();
  const canvas = new OffscreenCanvas(full.width, full.height);
  canvas.getContext("2d").putImageData(new ImageData(dst.data, full.width, full.height), 0, 0);
  hooks.timings.fullApplyMs = t1 - t0;
  return canvas;
}

async function download() {
  if (!state.result || state.busy) return;
  clearError();
  setBusy(true);
  try {
    setMessage(`Applying the edit at ${state.photo.width}×${state.photo.height}…`);
    setProgress(0.02);
    await frame();
    const t0 = performance.now();
    const canvas = await renderFull();
    setMessage("Encoding the photo…");
    const blob = await canvas.convertToBlob({ type: "image/jpeg", quality: 0.95 });
    hooks.timings.downloadMs = performance.now() - t0;
    const name = state.photo.name.replace(/\.[^.]*$/, "") + "-sagim.jpg";
    hooks.lastDownload = { name, width: canvas.width, height: canvas.height, bytes: blob.size, type: blob.type };
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = name;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    setMessage(`Saved ${name} (${canvas.width}×${canvas.height}).`);
  } catch (error) {
    showError(`The full-size photo could not be made (${error.message || error}); this device may not have the memory for a photo this large.`);
  } finally {
    setProgress(null);
    setBusy(false);
  }
}
hooks.renderFull = async () => {
  const canvas = await renderFull();
  return { width: canvas.width, height: canvas.height, ms: hooks.timings.fullApplyMs };
};

// ----------------------------------------------------------------- controls
function wireControls() {
  for (const id of ["file", "camera"]) {
    $(id).addEventListener("change", (event) => {
      const file = event.target.files && event.target.files[0];
      event.target.value = "";
      openFile(file);
    });
  }
  $("error-close").addEventListener("click", clearError);
  $("undo").addEventListener("click", () => {
    state.strokes.pop();
    drawStrokes($("paint"), state.strokes, false);
    updateButtons();
  });
  $("strength").addEventListener("input", () => {
    $("strength-value").textContent = `${$("strength").value}%`;
  });
  // a new strength redoes the edit when the slider is let go
  $("strength").addEventListener("change", () => {
    if (state.result && !state.busy) runEdit();
  });
  for (const input of document.querySelectorAll('input[name="overlay"]')) {
    input.addEventListener("change", () => {
      state.overlay = input.value;
      if (state.photo) drawOverlay();
    });
  }
  $("edit").addEventListener("click", runEdit);
  $("download").addEventListener("click", download);
  const compare = $("compare");
  const show = (original) => (event) => {
    if (!state.result) return;
    event.preventDefault();
    $("frame").classList.toggle("comparing", original);
    drawView(original);
  };
  compare.addEventListener("pointerdown", show(true));
  for (const type of ["pointerup", "pointerleave", "pointercancel"]) compare.addEventListener(type, show(false));
  compare.addEventListener("contextmenu", (event) => event.preventDefault());
  wirePainting();
  window.addEventListener("resize", () => layout());
  updateButtons();
}

start();
