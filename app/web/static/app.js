// The demo page: upload or pick an X-ray, see a bar per pathology, click a bar for its Grad-CAM overlay;
// the side panel lists the registry's models and the training jobs. Plain DOM code, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
// Every answer is tied to the user action that asked for it: a new file or model starts a new generation
// (aborting what is in flight), a Grad-CAM click a new CAM request; an answer for anything but the latest is
// dropped, so the page never shows bars, an overlay or a caption of an image or model no longer chosen.
const state = {
  file: null, result: null, previewUrl: null, overlayUrl: null, previewFile: null, previewCaption: "",
  generation: 0, controller: null,  // the current file + model
  cam: 0, camController: null,  // the current overlay request
  pick: 0,  // the latest sample click (its download may come back late)
};

function newGeneration() {
  state.generation += 1;
  if (state.controller) state.controller.abort();
  if (state.camController) state.camController.abort();
  state.controller = new AbortController();
  state.cam += 1;
  return { generation: state.generation, signal: state.controller.signal };
}

const isCurrent = (generation) => generation === state.generation;
const isAbort = (error) => error && error.name === "AbortError";

// fetch that sends the API key when one is given (a service with open_predict off asks for it) and turns
// the API's JSON errors ({"error", "message"}) into exceptions with that message
async function api(path, options = {}) {
  const key = $("api-key") ? $("api-key").value.trim() : "";
  if (key) options = { ...options, headers: { ...(options.headers || {}), "X-API-Key": key } };
  const response = await fetch(path, options);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).message || message; } catch (_) { /* not JSON */ }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return response;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "style") node.style.cssText = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "muted";
}

function query(extra = {}) {
  const params = new URLSearchParams(extra);
  if ($("model").value) params.set("model", $("model").value);
  return params.toString();
}

// -- the image and its prediction -------------------------------------------------------------------

const BROWSER_IMAGES = ["image/png", "image/jpeg", "image/gif", "image/webp"];

function needsServerPreview(file) {
  return /\.dcm$/i.test(file.name) || !BROWSER_IMAGES.includes(file.type);
}

function setImage(url, caption) {
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.previewUrl = url;
  state.previewCaption = caption;
  const preview = $("preview");
  preview.hidden = false;
  preview.src = url;
  $("caption").textContent = caption;
}

// the browser shows PNG and JPEG itself; DICOM (or anything it cannot decode) is rendered by the server
async function showPreview(file, generation) {
  hideOverlay();
  if (state.previewFile === file && $("preview").getAttribute("src")) {  // same image, another model
    $("caption").textContent = state.previewCaption;
    return;
  }
  state.previewFile = file;
  $("preview").hidden = true;
  $("preview").removeAttribute("src");
  $("caption").textContent = file.name;
  const fromServer = async () => {
    const form = new FormData();
    form.append("file", file, file.name);
    try {
      const response = await api("/preview", { method: "POST", body: form, signal: state.controller.signal });
      const blob = await response.blob();
      if (!isCurrent(generation)) return;
      setImage(URL.createObjectURL(blob), `${file.name} (preview rendered by the server, ` +
        `${response.headers.get("X-Image-Width")}×${response.headers.get("X-Image-Height")} px)`);
    } catch (error) {
      if (isCurrent(generation) && !isAbort(error)) $("caption").textContent = `${file.name} (no preview: ${error.message})`;
    }
  };
  if (needsServerPreview(file)) return fromServer();
  $("preview").onerror = () => { if (isCurrent(generation)) fromServer(); };
  setImage(URL.createObjectURL(file), file.name);
}

function clearResult() {
  state.result = null;
  $("bars").replaceChildren();
  $("model-used").textContent = "";
  clearReading();
}

async function useFile(file) {
  state.file = file;
  await predict();
}

async function predict() {
  if (!state.file) return;
  const file = state.file;
  const { generation, signal } = newGeneration();
  clearResult();
  showPreview(file, generation);
  const form = new FormData();
  form.append("file", file, file.name);
  setStatus(`Classifying ${file.name}…`);
  try {
    const response = await api(`/predict?${query()}`, { method: "POST", body: form, signal });
    const result = await response.json();
    if (!isCurrent(generation)) return;  // a newer file or model was chosen meanwhile
    state.result = result;
    renderBars(result);
    renderReading(result);
    setStatus(`Done in ${result.timing_ms.total.toFixed(0)} ms.`);
  } catch (error) {
    if (isCurrent(generation) && !isAbort(error)) setStatus(error.message, true);
  }
}

function renderBars(result) {
  const rows = Object.entries(result.probabilities).sort((a, b) => b[1] - a[1]);
  const bars = rows.map(([label, p]) => {
    const threshold = result.thresholds[label];
    const positive = result.positive.includes(label);
    const bar = el("button", { class: positive ? "bar positive" : "bar", type: "button", "data-label": label,
                               "aria-pressed": "false", title: `threshold ${threshold.toFixed(2)}` },
      el("span", { class: "name" }, label),
      el("span", { class: "track" },
        el("span", { class: "fill", style: `width:${(100 * p).toFixed(1)}%` }),
        el("span", { class: "tick", style: `left:calc(${(100 * threshold).toFixed(1)}% - 1px)` })),
      el("span", { class: "value" }, `${(100 * p).toFixed(1)}%`));
    bar.addEventListener("click", () => showCam(label, bar));
    return bar;
  });
  $("bars").replaceChildren(...bars);
  const m = result.model;
  $("model-used").textContent = `${m.ref}${m.alias ? ` (@${m.alias})` : ""} · ${m.architecture} · ` +
    `${result.width}×${result.height} px`;
}

// -- the Grad-CAM overlay: stacked over the image, with an opacity slider and a toggle to the original ---

function hideOverlay() {
  $("overlay").hidden = true;
  $("overlay").removeAttribute("src");
  $("overlay-controls").hidden = true;
  for (const bar of document.querySelectorAll(".bar")) bar.setAttribute("aria-pressed", "false");
}

function applyOverlayView() {
  const original = $("show-original").checked;
  $("overlay").style.opacity = String(Number($("opacity").value) / 100);
  $("overlay").hidden = original || !$("overlay").getAttribute("src");
}

async function showCam(label, bar) {
  if (!state.file || !state.result) return;
  const generation = state.generation;
  const cam = ++state.cam;
  if (state.camController) state.camController.abort();
  state.camController = new AbortController();
  for (const other of document.querySelectorAll(".bar")) other.setAttribute("aria-pressed", String(other === bar));
  const method = $("method").value;
  const form = new FormData();
  form.append("file", state.file, state.file.name);
  setStatus(`Computing ${method} for ${label}…`);
  try {
    const response = await api(`/gradcam?${query({ target: label, method })}`,
                               { method: "POST", body: form, signal: state.camController.signal });
    const blob = await response.blob();
    if (!isCurrent(generation) || cam !== state.cam) return;  // another image, model or bar since
    if (state.overlayUrl) URL.revokeObjectURL(state.overlayUrl);
    state.overlayUrl = URL.createObjectURL(blob);
    const overlay = $("overlay");
    const probability = Number(response.headers.get("X-Probability")).toFixed(3);
    overlay.onload = () => {
      if (!isCurrent(generation) || cam !== state.cam) return;
      $("show-original").checked = false;
      applyOverlayView();
      $("overlay-controls").hidden = false;
      $("caption").textContent = `${method} for ${label} (p = ${probability}) on ${state.file.name}`;
      setStatus(`Overlay for ${label} ready.`);
    };
    overlay.src = state.overlayUrl;
  } catch (error) {
    if (isCurrent(generation) && cam === state.cam && !isAbort(error)) setStatus(error.message, true);
  }
}

// -- inputs -----------------------------------------------------------------------------------------

function wireInputs() {
  const pickFile = (file) => { state.pick += 1; useFile(file); };
  $("file").addEventListener("change", (event) => { if (event.target.files[0]) pickFile(event.target.files[0]); });
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files[0]) pickFile(event.dataTransfer.files[0]);
  });
  $("model").addEventListener("change", predict);
  $("opacity").addEventListener("input", applyOverlayView);
  $("show-original").addEventListener("change", applyOverlayView);
}

async function loadSamples() {
  try {
    const samples = await (await api("/samples")).json();
    $("samples").replaceChildren(...samples.map((s) => {
      const button = el("button", { type: "button", "data-sample": s.name }, s.name);
      button.addEventListener("click", async () => {
        const pick = ++state.pick;
        const blob = await (await api(s.url)).blob();
        if (pick === state.pick) await useFile(new File([blob], s.name, { type: blob.type }));
      });
      return button;
    }));
  } catch (error) {
    $("samples").replaceChildren(el("p", { class: "muted" }, `no samples (${error.message})`));
  }
}

// -- side panel: models and training jobs -----------------------------------------------------------

function auroc(metrics) {
  const value = metrics?.test?.mean_auroc ?? metrics?.val?.mean_auroc;
  return typeof value === "number" ? ` · AUROC ${value.toFixed(3)}` : "";
}

async function loadModels() {
  try {
    const body = await (await api("/models")).json();
    const select = $("model");
    const chosen = select.value;
    select.replaceChildren(el("option", { value: "" }, `default (${body.default_model})`));
    const items = body.items.map((m) => {
      const production = m.versions.find((v) => v.aliases.includes("production")) || m.versions[m.versions.length - 1];
      for (const v of m.versions) select.append(el("option", { value: v.ref }, `${v.ref} ${v.aliases.map((a) => "@" + a).join(" ")}`));
      const aliases = Object.entries(m.aliases).map(([a, v]) => `${a}→v${v}`).join(", ") || "no alias";
      return el("li", {},
        el("strong", {}, m.name), m.default ? el("span", { class: "badge" }, " default") : "",
        el("div", { class: "muted" }, `${production.architecture} · ${m.versions.length} version(s) · ${aliases}` +
          `${auroc(production.metrics)} · ${m.labels.length} label(s)`));
    });
    select.value = chosen;
    $("models").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "no models registered yet")]));
  } catch (error) {
    $("models").replaceChildren(el("li", { class: "error" }, error.message));
  }
}

let jobsTimer = null;

// "45 s", "1 min 15 s", "2 h 5 min": seconds as a person reads them (as the job view in runs.js writes them)
function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h ? `${h} h ${m} min` : m ? `${m} min ${r} s` : `${r} s`;
}

// How a job is doing: phase, epochs done, time spent and left, and how long ago its worker last spoke
function jobLiveness(job) {
  const p = job.progress || {};
  const parts = [];
  if (p.phase) parts.push(p.phase);
  if (p.epochs) parts.push(`epoch ${(p.epoch ?? 0)}/${p.epochs}, step ${(p.step ?? 0)}/${p.steps ?? "?"}`);
  if (p.elapsed_s != null) parts.push(`${duration(p.elapsed_s)} elapsed`);
  if (p.eta_s != null) parts.push(`about ${duration(p.eta_s)} left`);
  if (job.heartbeat_at && !["succeeded", "failed", "cancelled"].includes(job.status)) {
    const ago = Math.max(0, (Date.now() - Date.parse(job.heartbeat_at)) / 1000);
    parts.push(`worker seen ${duration(ago)} ago`);
  }
  if (job.device) parts.push(job.device);
  return parts.join(" · ");
}

async function loadJobs() {
  try {
    const body = await (await api("/training-jobs?limit=10")).json();
    const items = (body.items || []).map((job) => {
      const p = job.progress || {};
      const fraction = Math.max(0, Math.min(1, p.fraction ?? 0));
      const badges = [el("span", { class: "badge" }, job.status)];
      if (job.stalled) {
        badges.push(" ", el("span", { class: "badge stalled", title: "its worker stopped renewing its lease: it " +
          "resumes from its last checkpoint when a worker takes it again" }, "stalled"));
      }
      return el("li", { "data-job": String(job.id) },
        el("strong", {}, `#${job.id} ${job.model}`), ` on ${job.dataset} `, ...badges,
        el("div", { class: "muted" }, jobLiveness(job)),
        job.stop_reason ? el("div", { class: "muted" }, job.stop_reason) : "",
        el("div", { class: "progress", title: `${(100 * fraction).toFixed(0)}%` },
          el("div", { style: `width:${(100 * fraction).toFixed(1)}%` })));
    });
    $("jobs").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "no training jobs")]));
    jobsTimer = setTimeout(loadJobs, 5000);
  } catch (error) {
    const text = error.status === 404 ? "Training jobs are not available on this server." : error.message;
    $("jobs").replaceChildren(el("li", { class: error.status === 404 ? "muted" : "error" }, text));
    if (error.status !== 404) jobsTimer = setTimeout(loadJobs, 15000);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  wireInputs();
  loadSamples();
  loadModels();
  loadJobs();
});
