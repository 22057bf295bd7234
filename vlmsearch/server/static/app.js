"use strict";
// The vlmsearch page: plain JS against the server's own API (no CDN, no build step).

const $ = (selector, root = document) => root.querySelector(selector);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
};

// --- the API, with the key when the server asks for one ---------------------------------------
let apiKey = localStorage.getItem("vlmsearch-key") || "";

async function askForKey() {
  const dialog = $("#key-dialog");
  dialog.showModal();
  await new Promise((resolve) => dialog.addEventListener("close", resolve, { once: true }));
  apiKey = $("#key-input").value.trim();
  localStorage.setItem("vlmsearch-key", apiKey);
}

async function api(path, options = {}, retried = false) {
  const headers = Object.assign({}, options.headers || {}, apiKey ? { Authorization: `Bearer ${apiKey}` } : {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401 && !retried) {
    await askForKey();
    return api(path, options, true);
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error.message; } catch (_) { /* not our JSON */ }
    throw new Error(message);
  }
  return response;
}

const imageURLs = new Map();
async function imageURL(path) {  // images come through fetch, so they carry the key too
  if (!imageURLs.has(path)) {
    imageURLs.set(path, api(path).then((r) => r.blob()).then((b) => URL.createObjectURL(b)));
  }
  return imageURLs.get(path);
}

function thumb(path, alt) {
  const img = el("img", { alt, loading: "lazy" });
  imageURL(path).then((url) => { img.src = url; }).catch(() => { img.alt = `${alt} (unavailable)`; });
  return img;
}

// --- tabs -------------------------------------------------------------------------------------
function showTab(name) {
  document.querySelectorAll("nav [data-tab]").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.tab === name)));
  document.querySelectorAll(".tab").forEach((t) => { t.hidden = t.id !== `tab-${name}`; });
}
document.querySelectorAll("nav [data-tab]").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));

// --- image drop zones: click to pick, drop, or paste --------------------------------------------
function dropZone(zone, input, onFiles) {
  input.addEventListener("change", () => input.files.length && onFiles([...input.files]));
  zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files.length) onFiles([...e.dataTransfer.files]);
  });
}
document.addEventListener("paste", (e) => {
  const file = [...(e.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
  if (!file) return;
  const tab = document.querySelector(".tab:not([hidden])").id;
  if (tab === "tab-ask") setAskImage(file);
  else if (tab === "tab-compare") setCompareImage(file);
  else if (tab === "tab-search") searchByImage(file);
});

function preview(img, text, file) {
  img.hidden = !file;
  text.hidden = !!file;
  if (file) img.src = URL.createObjectURL(file);
}

// --- asking: one streamed answer rendered into a box --------------------------------------------
function renderAnswerText(node, text, sources) {
  node.replaceChildren();
  for (const part of text.split(/(\[\d{1,2}\])/)) {
    const cite = part.match(/^\[(\d{1,2})\]$/);
    if (cite) {
      const n = cite[1];
      const button = el("button", { type: "button", className: "cite", textContent: part, title: `open source ${n}` });
      button.addEventListener("click", () => openSource(sources, n));
      node.append(button);
    } else {
      node.append(part);
    }
  }
}

function openSource(list, n) {
  const item = list.querySelector(`[data-n="${n}"]`);
  if (!item) return;
  item.classList.add("open", "flash");
  item.scrollIntoView({ block: "nearest" });
  setTimeout(() => item.classList.remove("flash"), 1200);
}

function renderSources(list, citations) {
  list.replaceChildren(...citations.map((c) => {
    const item = el("li", { value: c.n }, el("a", { href: "#", textContent: c.source.split("/").pop() }), el("div", { className: "text", textContent: c.text }));
    item.dataset.n = c.n;
    item.querySelector("a").addEventListener("click", (e) => { e.preventDefault(); item.classList.toggle("open"); });
    return item;
  }));
}

function renderVisual(box, output) {
  box.replaceChildren();
  if (!output || typeof output !== "object") return;
  for (const tag of (output.tags || []).slice(0, 4)) box.append(el("span", { className: "chip", textContent: `${tag.label} ${tag.score.toFixed(2)}` }));
  if (output.ocr_text) box.append(el("span", { className: "chip", textContent: `text: ${output.ocr_text}` }));
  for (const m of (output.matches || []).slice(0, 3)) box.append(el("span", { className: "chip", textContent: `looks like ${m.topic} (${m.region})` }));
  for (const hit of output.similar || []) {
    const figure = el("figure", {}, thumb(`/v1/images/${hit.id}`, hit.path), el("figcaption", { textContent: `similar ${hit.score.toFixed(2)}` }));
    figure.addEventListener("click", () => { showTab("search"); searchByStored(hit.id); });
    box.append(figure);
  }
}

function traceEntry(step) {
  const output = typeof step.output === "string" ? step.output : JSON.stringify(step.output, null, 2);
  return el("details", {}, el("summary", { textContent: `${step.stage} · ${step.model} · ${Math.round(step.ms)} ms` }),
    el("pre", { textContent: `in: ${step.input}\n\nout: ${output}` }));
}

function answerBox(box) {
  box.replaceChildren(
    el("div", { className: "stages" }), el("p", { className: "answer" }), el("ol", { className: "sources" }),
    el("div", { className: "visual" }),
    el("details", {}, el("summary", { textContent: "Trace: every stage, its model, output and time" }), el("div", { className: "trace" })),
  );
  // The sentence being written, before its check: shown faint, then replaced by the checked sentence
  // (or dropped when no source supports it).
  const draft = el("span", { className: "draft", title: "being checked against the sources" });
  return { stages: $(".stages", box), answer: $(".answer", box), sources: $(".sources", box), visual: $(".visual", box), trace: $(".trace", box), draft };
}

// Resolves to the answer's JSON (null when it failed); `history`: the conversation's earlier turns.
async function ask({ question, pipeline, image, history }, box) {
  const parts = answerBox(box);
  const form = new FormData();
  form.append("question", question);
  if (pipeline) form.append("pipeline", pipeline);
  if (image) form.append("image", image, image.name || "image.png");
  if (history && history.length) form.append("history", JSON.stringify(history));
  let result = null;
  const waiting = el("span", { className: "stage waiting", textContent: "working…" });
  parts.stages.append(waiting);
  let text = "";
  try {
    const response = await api("/v1/ask", { method: "POST", body: form });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = (block.match(/^event: (.*)$/m) || [])[1];
        const data = JSON.parse((block.match(/^data: (.*)$/m) || [, "null"])[1]);
        if (event === "stage") {
          waiting.before(el("span", { className: "stage", textContent: `${data.stage} ${Math.round(data.ms)} ms` }));
          parts.trace.append(traceEntry(data));
          if (data.stage === "visual_search") renderVisual(parts.visual, data.output);
        } else if (event === "token") {
          text += data.text;
          renderAnswerText(parts.answer, text, parts.sources);
          parts.answer.append(parts.draft);
        } else if (event === "draft") {
          parts.draft.textContent = data.text;
          if (!parts.draft.isConnected) parts.answer.append(parts.draft);
        } else if (event === "answer") {
          result = data;
          renderSources(parts.sources, data.citations);
          renderAnswerText(parts.answer, data.answer, parts.sources);
        } else if (event === "error") {
          throw new Error(data.error.message);
        }
      }
    }
  } catch (error) {
    parts.answer.append(el("span", { className: "error", textContent: ` ${error.message}` }));
  } finally {
    waiting.remove();
  }
  return result;
}

// --- conversations: the client holds the turns and sends them with each question ------------------
const fileURL = (file) => new Promise((resolve, reject) => {
  const reader = new FileReader();
  reader.onload = () => resolve(reader.result);
  reader.onerror = () => reject(reader.error);
  reader.readAsDataURL(file);
});
const lastImage = (turns) => [...turns].reverse().find((t) => t.image)?.image || null;

// A turn of a thread: the question (with the image it sent, small), then its answer box.
function turnBox(thread, question, image) {
  const box = el("div");
  const asked = el("p", { className: "question" }, image ? el("img", { src: image, alt: "image sent" }) : null, question);
  thread.append(el("article", { className: "turn result" }, asked, box));
  return box;
}

// The next question of a conversation: the picked image goes with it when it is new (the server
// then starts a new subject); otherwise the earlier turns carry the picture they sent.
async function askInThread(turns, { question, pipeline, file, thread }) {
  const picked = file ? await fileURL(file) : null;
  const image = picked && picked !== lastImage(turns) ? picked : null;
  const box = turnBox(thread, question, image);
  box.scrollIntoView({ block: "nearest" });
  const answer = await ask({ question, pipeline, image: image ? file : null, history: turns }, box);
  if (answer) turns.push({ question, answer: answer.answer, citations: answer.citations, image });
  return answer;
}

// The Ask tab is one conversation, kept in the browser so that it survives a reload.
const THREAD_KEY = "vlmsearch-thread";
let askImage = null;
let askTurns = [];
function saveThread() {
  try { localStorage.setItem(THREAD_KEY, JSON.stringify(askTurns)); }
  catch (_) {  // over the browser's quota (a large picture): keep the words, drop the pictures
    localStorage.setItem(THREAD_KEY, JSON.stringify(askTurns.map((t) => ({ ...t, image: null }))));
  }
}
function renderStoredTurn(turn) {
  const parts = answerBox(turnBox($("#ask-thread"), turn.question, turn.image));
  renderSources(parts.sources, turn.citations);
  renderAnswerText(parts.answer, turn.answer, parts.sources);
}
function setAskImage(file) { askImage = file; preview($("#ask-preview"), $("#ask-drop-text"), file); }
function newConversation() {
  askTurns = [];
  localStorage.removeItem(THREAD_KEY);
  $("#ask-thread").replaceChildren();
  setAskImage(null);
  $("#ask-image").value = "";
  $("#ask-question").placeholder = "Ask about the image or your documents…";
}
dropZone($("#ask-drop"), $("#ask-image"), (files) => setAskImage(files[0]));
$("#ask-clear").addEventListener("click", () => { setAskImage(null); $("#ask-image").value = ""; });
$("#ask-new").addEventListener("click", newConversation);
$("#ask-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const question = $("#ask-question").value.trim();
  if (!question) return;
  $("#ask-submit").disabled = true;
  try {
    const answer = await askInThread(askTurns, { question, pipeline: $("#ask-pipeline").value, file: askImage, thread: $("#ask-thread") });
    if (answer) {
      saveThread();
      $("#ask-question").value = "";
      $("#ask-question").placeholder = "Ask a follow-up… (New conversation starts over)";
    }
  } finally { $("#ask-submit").disabled = false; }
});
// Objects: the detector's boxes drawn over the image (an SVG in the image's pixel space, so the
// boxes scale with the picture), and listed under it.
function objectsView(url, result) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${result.width} ${result.height}`);
  for (const o of result.objects) {
    const [x0, y0, x1, y1] = o.box;
    const rect = document.createElementNS(svg.namespaceURI, "rect");
    Object.entries({ x: x0, y: y0, width: x1 - x0, height: y1 - y0 }).forEach(([k, v]) => rect.setAttribute(k, v));
    const label = document.createElementNS(svg.namespaceURI, "text");
    label.setAttribute("x", x0 + 4);
    label.setAttribute("y", y0 + Math.max(14, result.height / 40));
    label.style.fontSize = `${Math.max(12, result.height / 40)}px`;
    label.textContent = `${o.label} ${o.score.toFixed(2)}`;
    svg.append(rect, label);
  }
  const list = result.objects.length
    ? result.objects.map((o) => `${o.label} ${o.score.toFixed(2)} [${o.box.join(", ")}]`).join(" · ")
    : "no objects found";
  return el("figure", { className: "objects" }, el("div", { className: "boxed" }, el("img", { src: url, alt: "the image, its objects boxed" }), svg),
    el("figcaption", { className: "muted", textContent: list }));
}
$("#ask-objects").addEventListener("click", async () => {
  if (!askImage) { $("#ask-drop-text").textContent = "Pick an image first, then Objects"; return; }
  const form = new FormData();
  form.append("image", askImage, askImage.name || "image.png");
  const labels = $("#ask-labels").value.trim();
  if (labels) form.append("labels", labels);
  const box = el("div");
  $("#ask-thread").append(el("article", { className: "turn result" }, el("p", { className: "question", textContent: labels ? `Objects: ${labels}` : "Objects" }), box));
  $("#ask-objects").disabled = true;
  try {
    const result = await (await api("/v1/detect", { method: "POST", body: form })).json();
    box.append(objectsView(await fileURL(askImage), result));
  } catch (error) {
    box.append(el("span", { className: "error", textContent: error.message }));
  } finally { $("#ask-objects").disabled = false; }
});
$("#ask-question").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("#ask-form").requestSubmit(); } });
(async () => {  // the conversation as it was before the reload, its image pinned again
  try { askTurns = JSON.parse(localStorage.getItem(THREAD_KEY) || "[]"); } catch (_) { askTurns = []; }
  askTurns.forEach(renderStoredTurn);
  const image = lastImage(askTurns);
  if (image) {
    const blob = await (await fetch(image)).blob();
    setAskImage(new File([blob], "image", { type: blob.type }));
  }
  if (askTurns.length) $("#ask-question").placeholder = "Ask a follow-up… (New conversation starts over)";
})();

// --- compare: every pipeline on the same question, side by side, each in its own conversation ----
let pipelines = [];
let compareImage = null;
let compareTurns = {};  // pipeline -> its turns: each pipeline's follow-ups continue its own answers
function setCompareImage(file) { compareImage = file; preview($("#compare-preview"), $("#compare-drop-text"), file); }
dropZone($("#compare-drop"), $("#compare-image"), (files) => setCompareImage(files[0]));
$("#compare-new").addEventListener("click", () => { compareTurns = {}; $("#compare-results").replaceChildren(); setCompareImage(null); });
$("#compare-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const question = $("#compare-question").value.trim();
  if (!question) return;
  const columns = $("#compare-results");
  $("#compare-submit").disabled = true;
  const runs = pipelines.map((name) => {
    let column = columns.querySelector(`[data-pipeline="${name}"]`);
    if (!column) {
      column = el("div", {}, el("h2", { textContent: name }), el("div", { className: "thread" }));
      column.dataset.pipeline = name;
      columns.append(column);
    }
    compareTurns[name] = compareTurns[name] || [];
    return askInThread(compareTurns[name], { question, pipeline: name, file: compareImage, thread: $(".thread", column) });
  });
  try { await Promise.all(runs); $("#compare-question").value = ""; } finally { $("#compare-submit").disabled = false; }
});

// --- search -------------------------------------------------------------------------------------
function renderHits(hits, note) {
  $("#search-note").textContent = note;
  $("#search-results").replaceChildren(...hits.map((hit) => {
    if (hit.text !== undefined) {
      return el("figure", { className: "passage" }, el("figcaption", { textContent: `${hit.source.split("/").pop()} · ${hit.score.toFixed(3)}` }), el("div", { textContent: hit.text }));
    }
    const tags = hit.tags.slice(0, 2).map((t) => t.label.split(",")[0]).join(", ");
    const figure = el("figure", { title: "search by this image" }, thumb(hit.thumbnail, hit.path.split("/").pop()),
      el("figcaption", { textContent: `${hit.score.toFixed(3)} · ${tags}${hit.ocr_text ? ` · "${hit.ocr_text.slice(0, 30)}"` : ""}` }));
    figure.dataset.id = hit.id;
    figure.addEventListener("click", () => searchByStored(hit.id));
    return figure;
  }));
}

async function searchByImage(file) {
  const form = new FormData();
  form.append("image", file, file.name || "image.png");
  form.append("k", "24");
  try {
    const data = await (await api("/v1/search", { method: "POST", body: form })).json();
    renderHits(data.hits, `images like ${file.name || "the pasted image"}`);
  } catch (error) { $("#search-note").textContent = error.message; }
}

async function searchByStored(id) {
  const blob = await (await api(`/v1/images/${id}/full`)).blob();
  await searchByImage(new File([blob], `${id.slice(0, 8)}.img`, { type: blob.type }));
}

$("#search-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const q = $("#search-text").value.trim();
  if (!q) return;
  const kind = $("#search-kind").value;
  try {
    const path = kind === "passages" ? "/v1/passages" : "/v1/search";
    const data = await (await api(`${path}?k=24&q=${encodeURIComponent(q)}`)).json();
    renderHits(data.hits, `${data.hits.length} ${kind} for “${q}”`);
  } catch (error) { $("#search-note").textContent = error.message; }
});
dropZone($("#search-drop"), $("#search-image"), (files) => searchByImage(files[0]));

// --- index --------------------------------------------------------------------------------------
let indexFiles = [];
dropZone($("#index-drop"), $("#index-files"), (files) => {
  indexFiles = files;
  $("#index-drop-text").textContent = `${files.length} file${files.length === 1 ? "" : "s"} chosen`;
});

async function followJob(job) {
  $("#index-job").hidden = false;
  const failures = $("#index-failures");
  failures.replaceChildren();
  for (;;) {
    $("#index-state").textContent = `${job.state}: ${job.description || "waiting"} (${job.done}${job.total ? ` of ${job.total}` : ""})`;
    $("#index-progress").max = job.total || 1;
    $("#index-progress").value = job.state === "done" ? job.total || 1 : job.done;
    if (job.state === "done" || job.state === "failed") break;
    await new Promise((r) => setTimeout(r, 700));
    job = await (await api(`/v1/jobs/${job.id}`)).json();
  }
  if (job.state === "failed") {
    $("#index-state").textContent = `failed: ${job.error}`;
    return;
  }
  const r = job.report;
  $("#index-state").textContent = `done: ${r.added} added, ${r.updated} updated, ${r.unchanged} unchanged, ${r.failed.length} failed; ${r.passages} passages`;
  failures.replaceChildren(...r.failed.map((f) => el("li", { textContent: `${f.path.split("/").pop()}: ${f.error}` })));
  refreshStatus();
}

$("#index-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!indexFiles.length) { $("#index-files").click(); return; }
  const form = new FormData();
  for (const file of indexFiles) form.append("files", file, file.name);
  try { await followJob(await (await api("/v1/index", { method: "POST", body: form })).json()); }
  catch (error) { $("#index-job").hidden = false; $("#index-state").textContent = error.message; }
});
$("#folder-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const path = $("#folder-path").value.trim();
  if (!path) return;
  try {
    const response = await api("/v1/index", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ paths: [path] }) });
    await followJob(await response.json());
  } catch (error) { $("#index-job").hidden = false; $("#index-state").textContent = error.message; }
});

// --- start: pipelines, counts, the judging page if served ----------------------------------------
async function refreshStatus() {
  const health = await (await fetch("/healthz")).json();
  $("#status").textContent = `${health.images} images · ${health.passages} passages · profile ${health.profile}`;
}

(async () => {
  refreshStatus();
  try {
    const models = await (await api("/v1/models")).json();
    pipelines = models.pipelines;
    $("#ask-pipeline").replaceChildren(...pipelines.map((p) => el("option", { value: p, textContent: `${p} pipeline`, selected: p === models.default_pipeline })));
  } catch (error) { $("#status").textContent = error.message; }
  fetch("/judge/", { method: "HEAD" }).then((r) => { $("#judge-link").hidden = !r.ok; }).catch(() => {});
})();
