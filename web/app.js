// The demo page: choose a model, paste a conversation and candidate replies, rank them by reward.
// Everything heavy runs in the model's Web Worker (dist/browser/model-worker.js); this thread
// only builds the page.
import { RewardModel } from "/dist/browser/gpt2-reward.js";

const $ = (id) => document.getElementById(id);
const DEMO_REPLIES = [
  " Yes, some heat is normal while gaming. Make sure the vents are not blocked, and a cooling pad can help.",
  " idk lol",
  " That is normal. If it shuts down or throttles, clean the fans and check the temperatures with a monitor app.",
  " Laptops are not meant for games.",
];

let model = null;
let modelKey = null;
let modelKind = null; // "demo", "hub" or "files": what the loaded model came from
let files = [];

// ---- the form ----

function source() {
  return document.querySelector("input[name=source]:checked").value;
}

function showPane() {
  for (const pane of document.querySelectorAll(".pane")) pane.hidden = pane.dataset.pane !== source();
}

function addReply(text = "") {
  const row = document.createElement("div");
  row.className = "reply-row";
  row.innerHTML = `<span class="badge"></span><textarea class="reply" rows="2" spellcheck="false"></textarea><button type="button" class="icon" title="Remove this reply" aria-label="Remove this reply">×</button>`;
  row.querySelector("textarea").value = text;
  row.querySelector("button").addEventListener("click", () => {
    row.remove();
    numberReplies();
  });
  $("replies").append(row);
  numberReplies();
}

function numberReplies() {
  [...document.querySelectorAll(".reply-row .badge")].forEach((b, i) => (b.textContent = String.fromCharCode(65 + (i % 26))));
}

function setFiles(list) {
  files = [...list];
  $("files-chosen").textContent = files.length ? `Chosen: ${files.map((f) => `${f.name} (${size(f.size)})`).join(", ")}` : "";
}

function size(n) {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(1)} kB`;
}

// ---- messages ----

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  $("error").scrollIntoView({ block: "nearest" }); // it appears below the Rank button, maybe below the fold
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function progress(p) {
  $("progress").hidden = false;
  $("progress-bar").max = p.total || 1;
  $("progress-bar").value = p.loaded;
  $("progress-label").textContent = `${p.file}: ${size(p.loaded)} of ${size(p.total)}${p.cached ? " (from the cache)" : ""}`;
}

// ---- the model ----

function loadOptions() {
  const threads = $("threads").value;
  return {
    ...(threads === "auto" ? {} : { threads: Number(threads) }),
    kernels: $("kernels").value,
    onProgress: progress,
    onWarning: (w) => console.warn(w),
  };
}

/** The model the form asks for: the one loaded, or a new one. */
async function ensureModel() {
  const kind = source();
  let what;
  const opts = loadOptions();
  if (kind === "demo") what = new URL("/fixtures/models/demo/", location.href).href;
  else if (kind === "hub") {
    what = $("hub-repo").value.trim();
    if (!what) throw new Error("Enter a Hub repo id, such as owner/name.");
    opts.endpoint = $("hub-endpoint").value.trim() || undefined;
  } else {
    if (files.length === 0) throw new Error("Choose config.json and the weights file first.");
    what = files;
  }
  const key = JSON.stringify([kind, kind === "files" ? files.map((f) => [f.name, f.size, f.lastModified]) : what, opts.endpoint, opts.threads, opts.kernels]);
  if (model && key === modelKey) return model;
  if (model) await model.close();
  model = null;
  modelKey = null;
  $("status").className = "status";
  $("status").textContent = "Loading the model…";
  try {
    model = await RewardModel.load(what, opts);
  } catch (e) {
    $("status").textContent = "No model loaded.";
    throw e;
  } finally {
    $("progress").hidden = true;
  }
  modelKey = key;
  modelKind = kind;
  const c = model.config;
  $("status").className = "status ready";
  $("status").textContent = `Loaded ${describe(kind, what)}: ${c.n_layer} layers × ${c.n_embd}, ${model.kernels} kernels, ${model.threads} thread${model.threads === 1 ? "" : "s"}, in ${Math.round(model.loadMs)} ms.`;
  return model;
}

function describe(kind, what) {
  return kind === "demo" ? "the demo model" : kind === "hub" ? what : files.map((f) => f.name).join(" + ");
}

// ---- ranking ----

async function rank() {
  clearError();
  const button = $("rank");
  button.disabled = true;
  try {
    const context = $("context").value;
    const replies = [...document.querySelectorAll(".reply")].map((t) => t.value);
    if (replies.length === 0) throw new Error("Add at least one reply to rank.");
    if (replies.some((r) => r.trim() === "")) throw new Error("A reply is empty: write it or remove it.");
    const m = await ensureModel();
    const t0 = performance.now();
    // Each reply scored as context + reply, ranked by the package's one rule (the reward of a
    // one-label model; P(last label) for several), as the CLI's rank and the server's /rank.
    const ranked = await m.rank(context, replies);
    const ms = performance.now() - t0;
    show(replies, ranked, m, ms);
  } catch (e) {
    // A list left from an earlier Rank would read as this one's answer.
    $("results-card").hidden = true;
    showError(e instanceof Error ? e.message : String(e));
  } finally {
    button.disabled = false;
  }
}

function show(replies, ranked, m, ms) {
  const { scores, order, results } = ranked;
  const lo = Math.min(...scores);
  const hi = Math.max(...scores);
  const list = $("results");
  list.replaceChildren();
  order.forEach((i, place) => {
    const li = document.createElement("li");
    li.className = "result";
    li.dataset.index = String(i);
    li.dataset.score = String(scores[i]);
    const width = hi > lo ? 8 + (92 * (scores[i] - lo)) / (hi - lo) : 100;
    li.innerHTML = `<span class="rank"></span><span class="text"></span><span class="score"><span class="value"></span><div class="bar"><span></span></div></span>`;
    li.querySelector(".rank").textContent = String(place + 1);
    li.querySelector(".text").textContent = `${String.fromCharCode(65 + (i % 26))} · ${replies[i].trim()}`;
    li.querySelector(".value").textContent = scores[i].toFixed(4);
    li.querySelector(".bar span").style.width = `${width.toFixed(1)}%`;
    list.append(li);
  });
  const tokens = results.reduce((n, r) => n + r.tokens, 0);
  $("meta").innerHTML = `<b>${replies.length}</b> replies · <b>${tokens}</b> tokens · <b>${ms.toFixed(0)} ms</b> · <b>${m.kernels}</b> kernels · <b>${m.threads}</b> thread${m.threads === 1 ? "" : "s"}${crossOriginIsolated ? "" : " (page not cross-origin isolated)"} · ranked by <b class="by"></b>`;
  $("meta").querySelector(".by").textContent = ranked.by; // a label name comes from the model's config: text, never HTML
  $("results-note").hidden = modelKind !== "demo";
  $("results-card").hidden = false;
}

// ---- wiring ----

for (const r of document.querySelectorAll("input[name=source]")) r.addEventListener("change", showPane);
$("files").addEventListener("change", (e) => setFiles(e.target.files));
// Files dropped anywhere on the page are the model's files (a browser would otherwise open a
// dropped file in place of the page).
const drop = $("drop");
window.addEventListener("dragover", (e) => {
  e.preventDefault();
  drop.classList.add("over");
});
window.addEventListener("dragleave", (e) => {
  if (e.relatedTarget === null) drop.classList.remove("over");
});
window.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (!e.dataTransfer || e.dataTransfer.files.length === 0) return;
  $("source-files").checked = true;
  showPane();
  setFiles(e.dataTransfer.files);
});
$("add-reply").addEventListener("click", () => addReply());
$("rank").addEventListener("click", rank);
for (const text of DEMO_REPLIES) addReply(text);
showPane();
document.body.dataset.ready = "true";
