// The run page: a client of /api/v1 (sources/api.py). No framework, no build step.
// Every value from an event goes into the page as text (textContent), never as markup.
"use strict";

const API = "/api/v1";
const TOKEN_KEY = "job-executor.token";
const REFRESH_MS = 3000;
const PHASES = [
  ["queued", "submitted", "queued"],
  ["submitted", "staged", "staging"],
  ["staged", "started", "starting"],
  ["started", "ended", "running"],
];

const $ = (id) => document.getElementById(id);
let timer = null;
let follows = new Map(); // "action/task" -> AbortController of a following log stream
let loaded = new Set(); // "action/task" of ended tasks whose log is on the page already
let nextCursor = null;

// ---- the API, with the token when one is kept ----
class Unauthorized extends Error {}

function headers() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function call(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (response.status === 401) {
    throw new Unauthorized();
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).error || message;
    } catch (_) { /* not JSON: the status says enough */ }
    throw new Error(message);
  }
  return response;
}

function askToken() {
  stop();
  for (const id of ["list-view", "run-view"]) $(id).hidden = true;
  $("login").hidden = false;
  $("token").focus();
}

function notice(text) {
  $("notice").textContent = text || "";
}

function failed(error) {
  if (error instanceof Unauthorized) {
    askToken();
  } else {
    notice(`Could not reach the service: ${error.message}`);
  }
}

// ---- small helpers ----
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  }
  return node;
}

function badge(status) {
  return el("span", { class: `status ${status}` }, status);
}

function ago(iso) {
  if (!iso) return "";
  const seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 60) return `${Math.max(seconds, 0)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleString();
}

function took(from, to) {
  if (!from || !to) return "";
  const ms = Date.parse(to) - Date.parse(from);
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function stop() {
  if (timer) clearTimeout(timer);
  timer = null;
}

function stopFollowing() {
  for (const controller of follows.values()) controller.abort();
  follows = new Map();
  loaded = new Set();
}

// ---- the run list ----
function filterQuery() {
  const params = new URLSearchParams();
  for (const [name, value] of new FormData($("filters"))) {
    if (value) params.set(name, value);
  }
  params.set("limit", "50");
  return params;
}

async function showList(older = false) {
  stop();
  stopFollowing();
  $("run-view").hidden = true;
  $("login").hidden = true;
  $("list-view").hidden = false;
  const params = filterQuery();
  if (older && nextCursor) params.set("before", nextCursor);
  try {
    const page = await (await call(`${API}/runs?${params}`)).json();
    notice("");
    const body = $("runs").tBodies[0];
    if (!older) body.replaceChildren();
    for (const run of page.runs) {
      const link = el("a", { href: `#/run/${run.key}` }, run.id);
      const where = [run.project, run.stage, run.service].filter(Boolean).join(" / ");
      const row = el(
        "tr",
        { "data-key": run.key },
        el("td", {}, badge(run.status)),
        el("td", {}, run.type),
        el("td", {}, where),
        el("td", {}, link),
        el("td", { title: run.received_at }, ago(run.received_at)),
        el("td", {}, took(run.received_at, run.finished_at)),
      );
      row.addEventListener("click", (event) => {
        if (event.target.tagName !== "A") location.hash = `#/run/${run.key}`;
      });
      body.append(row);
    }
    nextCursor = page.next;
    $("older").hidden = !page.next;
    $("empty").hidden = body.rows.length > 0;
  } catch (error) {
    failed(error);
    if (error instanceof Unauthorized) return;
  }
  // Auto-refresh shows the first page again (older pages stay as they are until then).
  if ($("auto").checked && !older) timer = setTimeout(() => showList(), REFRESH_MS);
}

// ---- one run ----
async function showRun(key) {
  stop();
  $("list-view").hidden = true;
  $("login").hidden = true;
  $("run-view").hidden = false;
  let run;
  try {
    run = await (await call(`${API}/runs/${encodeURIComponent(key)}`)).json();
    notice("");
  } catch (error) {
    failed(error);
    return;
  }
  if (location.hash !== `#/run/${key}`) return; // the user went elsewhere meanwhile
  $("run-status").replaceChildren(badge(run.status));
  $("run-type").textContent = run.type;
  const facts = [
    ["Id", run.id], ["Source", run.source],
    ["Project / stage / service", [run.project, run.stage, run.service].filter(Boolean).join(" / ")],
    ["Received", run.received_at], ["Finished", run.finished_at || "not yet"],
    ["Config digest", run.config_digest || ""],
  ];
  $("run-facts").replaceChildren(...facts.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]));
  $("run-event").textContent = JSON.stringify(run.event, null, 2);
  renderActions(run);
  if (run.status === "queued" || run.status === "running") {
    timer = setTimeout(() => showRun(key), REFRESH_MS);
  }
}

function renderActions(run) {
  const box = $("actions");
  const known = new Set();
  if (!run.actions.length) {
    box.replaceChildren(el("p", {}, run.status === "queued" ? "Waiting to be taken up." : "No task ran for this event."));
    return;
  }
  for (const action of run.actions) {
    for (const task of action.tasks) {
      const id = `${action.name}/${task.name}`;
      known.add(id);
      let card = box.querySelector(`[data-task="${CSS.escape(id)}"]`);
      if (!card) {
        card = el("section", { class: "task", "data-task": id },
          el("h2", {}, el("span", { class: "status" }), ` ${action.name} / ${task.name}`),
          el("p", { class: "facts" }), el("div", { class: "timeline" }), el("pre", { class: "log" }));
        box.append(card);
      }
      card.querySelector("h2 .status").replaceWith(badge(task.status));
      const facts = [task.job && `job ${task.job}`, task.exit_code != null && `exit code ${task.exit_code}`,
        task.reason].filter(Boolean).join(" · ");
      card.querySelector(".facts").textContent = facts;
      renderTimeline(card.querySelector(".timeline"), task.phases || {});
      loadLog(id, task, card.querySelector(".log"));
    }
  }
  for (const card of [...box.querySelectorAll("[data-task]")]) {
    if (!known.has(card.dataset.task)) card.remove();
  }
  for (const child of [...box.children]) {
    if (!child.dataset.task) child.remove();
  }
}

function renderTimeline(box, phases) {
  // Each phase starts where the one before it ended: a backend that stamps whole seconds
  // (the local one) must not draw "started" before "staged".
  const times = {};
  let previous = -Infinity;
  for (const name of ["queued", "submitted", "staged", "started", "ended"]) {
    const at = Date.parse(phases[name]);
    if (Number.isNaN(at)) continue;
    times[name] = Math.max(at, previous);
    previous = times[name];
  }
  if (times.queued === undefined) {
    box.replaceChildren();
    return;
  }
  const now = Math.max(Date.now(), previous);
  const first = times.queued;
  const span = Math.max((times.ended ?? now) - first, 1);
  const bars = [];
  for (const [from, to, label] of PHASES) {
    if (times[from] === undefined) continue;
    const end = times[to] ?? now;
    const length = took(new Date(times[from]).toISOString(), new Date(end).toISOString());
    const bar = el("div", { class: `bar ${label}`, title: `${label}: ${length}` }, `${label} ${length}`);
    // CSSOM, not a style attribute: the page's Content-Security-Policy forbids inline styles.
    bar.style.left = `${((times[from] - first) / span) * 100}%`;
    bar.style.width = `${Math.max(((end - times[from]) / span) * 100, 0.5)}%`;
    bars.push(bar);
  }
  box.replaceChildren(...bars);
}

async function loadLog(id, task, pre) {
  if (follows.has(id)) return; // already streaming; it ends by itself with the task
  if (task.status !== "running") {
    if (loaded.has(id)) return;
    loaded.add(id);
    try {
      pre.textContent = await (await call(task.logs)).text() || "(no output)";
    } catch (error) {
      failed(error);
    }
    return;
  }
  // While the task runs: follow its output as it comes (the API streams until the task ends).
  const controller = new AbortController();
  follows.set(id, controller);
  pre.textContent = "";
  pre.classList.add("following");
  try {
    const response = await call(`${task.logs}?follow=1`, { signal: controller.signal });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pre.textContent += decoder.decode(value, { stream: true });
      pre.scrollTop = pre.scrollHeight;
    }
  } catch (error) {
    if (error.name !== "AbortError") failed(error);
  } finally {
    pre.classList.remove("following");
  }
}

async function replay(key) {
  const current = $("replay-current").checked ? "?config=current" : "";
  try {
    const answer = await (await call(`${API}/runs/${encodeURIComponent(key)}/replay${current}`, { method: "POST" })).json();
    notice(`Replayed as ${answer.id}`);
    location.hash = `#/run/${answer.key}`;
  } catch (error) {
    failed(error);
  }
}

// ---- routing: #/ is the list, #/run/KEY one run ----
function route() {
  const match = location.hash.match(/^#\/run\/([A-Za-z0-9_-]+)$/);
  stopFollowing();
  if (match) showRun(match[1]);
  else showList();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    route();
  });
  $("filters").addEventListener("input", () => showList());
  $("filters").addEventListener("submit", (event) => event.preventDefault());
  $("older").addEventListener("click", () => showList(true));
  $("replay").addEventListener("click", () => {
    const match = location.hash.match(/^#\/run\/([A-Za-z0-9_-]+)$/);
    if (match) replay(match[1]);
  });
  window.addEventListener("hashchange", route);
  route();
});
