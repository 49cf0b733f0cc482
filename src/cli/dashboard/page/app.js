// procs dashboard page: plain JavaScript, no framework, no network fetch beyond this
// dashboard's own API. State comes from the Server-Sent Event streams (`/api/v1/events`
// for processes, `.../logs?follow=true` for logs); the status route is read on load, after
// each action, and every 5 s while the page is visible for CPU and memory (which events
// do not carry). Every text from the API is set with textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const projects = new Map(); // id -> project view
let events = null;
let logStream = null;
const LOG_LIMIT = 2000;
const COLUMNS = [
  ["name", "process"], ["state", "state"], ["reason", "reason"], ["pid", "pid"],
  ["uptime", "uptime"], ["restarts", "restarts"], ["cpu", "CPU"], ["memory", "memory"],
  ["ports", "ports"], ["health", "health"], ["acts", ""],
];
const LIVE = new Set(["starting", "running", "healthy", "unhealthy"]);

class ApiError extends Error {
  constructor(status, body) {
    const text = body && body.error ? body.error : `HTTP ${status}`;
    super(text);
    this.status = status;
    this.body = body || {};
  }
  // The error in procs' grammar: error, caused by, hint.
  words() {
    const lines = [`error: ${this.message}`];
    for (const c of this.body.causes || []) lines.push(`caused by: ${c}`);
    if (this.body.hint) lines.push(`hint: ${this.body.hint}`);
    if (this.status === 401) lines.push("hint: open the link `procs dashboard` printed (the token changes every run)");
    return lines.join("\n");
  }
}

async function api(path, options = {}) {
  const res = await fetch(path, { credentials: "same-origin", cache: "no-store", ...options });
  let body = null;
  try { body = await res.json(); } catch { body = null; }
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

// ---- formatting ----------------------------------------------------------------------

function duration(ms) {
  let s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86400); s %= 86400;
  const h = Math.floor(s / 3600); s %= 3600;
  const m = Math.floor(s / 60); s %= 60;
  if (d) return `${d}d${h}h`;
  if (h) return `${h}h${m}m`;
  if (m) return `${m}m${s}s`;
  return `${s}s`;
}

function bytes(n) {
  if (n == null) return "";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function uptime(row) {
  if (!row.started_at || !LIVE.has(row.state)) return "";
  const t = Date.parse(row.started_at);
  return Number.isNaN(t) ? "" : duration(Date.now() - t);
}

function health(row) {
  if (row.state === "healthy") return "healthy";
  if (row.state === "unhealthy") return "unhealthy";
  if (row.state === "starting" && row.waiting_for) return `waiting: ${row.waiting_for}`;
  if (row.state === "pending" && row.waiting_for) return `waits for ${row.waiting_for}`;
  return "";
}

function reason(row) {
  if (row.reason) return row.reason;
  if (row.state === "exited" || row.state === "failed") {
    if (row.signal != null) return `killed by signal ${row.signal}`;
    if (row.exit_code != null) return `exit code ${row.exit_code}`;
  }
  return "";
}

// ---- confirmation --------------------------------------------------------------------

function confirmAction(text) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "cancel";
    dialog.showModal();
    $("confirm-ok").focus();
  });
}

// ---- projects and processes ----------------------------------------------------------

function projectView(info) {
  let p = projects.get(info.id);
  if (p) return p;
  const actions = el("div", { class: "actions" });
  for (const verb of ["up", "down", "restart"]) {
    const b = el("button", { type: "button", "data-action": verb, text: verb });
    b.addEventListener("click", () => projectAction(p, verb, b));
    actions.append(b);
  }
  const head = el("tr");
  for (const [, label] of COLUMNS) head.append(el("th", { text: label }));
  const body = el("tbody");
  const graph = el("ol");
  const section = el("section", { class: "project", "data-project": info.id },
    el("div", { class: "bar" },
      el("h2", { text: info.name }),
      el("span", { class: "dir muted", text: info.dir }),
      el("span", { class: "sup muted" }),
      actions),
    el("p", { class: "message", hidden: "" }),
    el("div", { class: "scroll" }, el("table", {}, el("thead", {}, head), body)),
    el("details", { class: "graph", open: "" }, el("summary", { text: "dependency graph (start order, level by level)" }), graph));
  $("projects").append(section);
  p = { info, section, body, graph, rows: new Map(), live: false, supervisor: false, timer: 0 };
  projects.set(info.id, p);
  return p;
}

function rowView(p, name) {
  let row = p.rows.get(name);
  if (row) return row;
  const tr = el("tr", { "data-process": name });
  const cells = {};
  for (const [key, label] of COLUMNS) {
    const cls = ["pid", "uptime", "restarts", "cpu", "memory"].includes(key) ? "num" : key;
    cells[key] = el("td", { "data-col": key, "data-label": label, class: cls });
    tr.append(cells[key]);
  }
  cells.name.textContent = name;
  for (const verb of ["start", "stop", "restart"]) {
    const b = el("button", { type: "button", "data-action": verb, text: verb });
    b.addEventListener("click", () => processAction(p, name, verb, b));
    cells.acts.append(b, " ");
  }
  const logs = el("button", { type: "button", "data-action": "logs", text: "logs" });
  logs.addEventListener("click", () => { $("log-source").value = `${p.info.id}\n${name}`; openLog(); });
  cells.acts.append(logs);
  p.body.append(tr);
  row = { name, tr, cells, data: { name } };
  p.rows.set(name, row);
  return row;
}

function render(row) {
  const d = row.data, c = row.cells;
  c.state.replaceChildren(el("span", { class: `state s-${d.state || "unknown"}`, text: d.state || "" }));
  c.reason.textContent = reason(d);
  c.pid.textContent = d.pid == null ? "" : String(d.pid);
  c.uptime.textContent = uptime(d);
  c.restarts.textContent = d.restarts == null ? "" : String(d.restarts);
  c.cpu.textContent = d.cpu_percent == null ? "" : `${d.cpu_percent.toFixed(1)}%`;
  c.memory.textContent = bytes(d.memory_bytes);
  c.ports.textContent = (d.ports || []).join(", ");
  c.health.textContent = health(d);
  row.tr.dataset.state = d.state || "";
  row.tr.dataset.pid = d.pid == null ? "" : String(d.pid);
}

const METRICS = ["cpu_percent", "memory_bytes", "ports", "processes", "log"];

// A status read: only the metrics while a supervisor runs (its state comes from the
// stream alone: the snapshot, then events; a read's state is the registry's, maybe older),
// everything when none runs (no stream: the registry, verified against /proc).
function applyStatus(p, status) {
  const running = !!(status.supervisor && status.supervisor.running);
  const was = p.supervisor;
  p.supervisor = running;
  p.section.querySelector(".sup").textContent = running
    ? `supervisor pid ${status.supervisor.pid}` : "supervisor not running";
  for (const entry of status.processes || []) {
    const row = rowView(p, entry.name);
    if (p.live || running) {
      for (const k of METRICS) row.data[k] = entry[k];
      if (row.data.pid !== entry.pid) { row.data.cpu_percent = null; row.data.memory_bytes = null; }
    } else {
      Object.assign(row.data, entry);
    }
    render(row);
  }
  // A supervisor started elsewhere (`procs up` in a terminal): subscribe to it too.
  if (running && !was && !p.live) reopenEvents();
}

function applyEvent(p, ev) {
  const row = rowView(p, ev.name);
  const pidChanged = row.data.pid !== ev.pid;
  for (const k of ["state", "reason", "pid", "restarts", "started_at", "waiting_for",
                   "exit_code", "signal", "has_health"]) row.data[k] = ev[k];
  if (pidChanged) { row.data.cpu_percent = null; row.data.memory_bytes = null; }
  render(row);
  // Usage and ports of the new pid come from a status read, soon after.
  clearTimeout(p.timer);
  p.timer = setTimeout(() => refreshStatus(p), 400);
}

async function refreshStatus(p) {
  try {
    applyStatus(p, await api(`/api/v1/projects/${encodeURIComponent(p.info.id)}/processes`));
  } catch (e) {
    if (e instanceof ApiError) message(p, e.words(), true);
  }
}

async function loadGraph(p) {
  try {
    const g = await api(`/api/v1/projects/${encodeURIComponent(p.info.id)}/graph`);
    p.graph.replaceChildren();
    for (const layer of g.layers) {
      const li = el("li");
      layer.forEach((name, i) => {
        if (i) li.append(" · ");
        li.append(el("b", { text: name }));
        const deps = (g.dependencies[name] || []).map((d) => `${d.name} (${d.condition})`);
        if (deps.length) li.append(" ", el("span", { class: "dep", text: `← ${deps.join(", ")}` }));
      });
      p.graph.append(li);
    }
  } catch (e) {
    p.graph.replaceChildren(el("li", { class: "muted", text: e.message }));
  }
}

function message(p, text, error) {
  const m = p.section.querySelector(".message");
  m.textContent = text;
  m.classList.toggle("error", !!error);
  m.hidden = !text;
}

function outcomeWords(outcome) {
  const lines = (outcome.processes || []).map((o) => {
    const pid = o.pid == null ? "" : ` (pid ${o.pid})`;
    const why = o.reason ? `: ${o.reason}` : "";
    return `${o.ok ? "✓" : "✗"} ${o.name}: ${o.state}${pid}${o.ok ? "" : why}`;
  });
  for (const n of outcome.notes || []) lines.push(n);
  if (outcome.timed_out) lines.push("the wait timed out");
  return { text: lines.join("\n") || "done", ok: (outcome.processes || []).every((o) => o.ok) };
}

async function run(p, what, path, button) {
  if (!(await confirmAction(what))) return;
  button.disabled = true;
  message(p, `${what}…`, false);
  try {
    const outcome = await api(path, { method: "POST" });
    const words = outcomeWords(outcome);
    message(p, words.text, !words.ok);
  } catch (e) {
    message(p, e instanceof ApiError ? e.words() : String(e), true);
  } finally {
    button.disabled = false;
  }
  await refreshStatus(p);
  if (!p.live && p.supervisor) reopenEvents();
}

function processAction(p, name, verb, button) {
  const id = encodeURIComponent(p.info.id);
  return run(p, `${verb} ${name} (${p.info.name})?`,
    `/api/v1/projects/${id}/processes/${encodeURIComponent(name)}/${verb}`, button);
}

function projectAction(p, verb, button) {
  const what = { up: "bring up", down: "bring down", restart: "restart every process of" }[verb];
  return run(p, `${what} ${p.info.name}?`,
    `/api/v1/projects/${encodeURIComponent(p.info.id)}/${verb}`, button);
}

// ---- the state stream ----------------------------------------------------------------

function reopenEvents() {
  if (events) events.close();
  for (const p of projects.values()) p.live = false;
  const live = $("live");
  events = new EventSource("/api/v1/events");
  events.onopen = () => { live.textContent = "live"; live.className = "live on"; };
  events.onerror = () => { live.textContent = "reconnecting…"; live.className = "live off"; };
  events.addEventListener("snapshot", (m) => {
    const snap = JSON.parse(m.data);
    const p = projects.get(snap.project);
    if (!p) return;
    p.live = true;
    for (const ev of snap.processes || []) applyEvent(p, ev);
  });
  events.addEventListener("event", (m) => {
    const ev = JSON.parse(m.data);
    const p = projects.get(ev.project);
    if (p) applyEvent(p, ev);
  });
}

// ---- logs ----------------------------------------------------------------------------

function fillLogSources() {
  const select = $("log-source");
  const current = select.value;
  select.replaceChildren();
  for (const p of projects.values()) {
    select.append(el("option", { value: `${p.info.id}\n`, text: `${p.info.name}: all processes` }));
    for (const name of [...p.rows.keys()].sort()) {
      select.append(el("option", { value: `${p.info.id}\n${name}`, text: `${p.info.name}: ${name}` }));
    }
  }
  if ([...select.options].some((o) => o.value === current)) select.value = current;
}

function appendLog(line, merged) {
  const log = $("log");
  const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  const time = (line.time || "").replace(/^.*T/, "").replace(/([.,]\d{3})\d*.*$/, "$1");
  const div = el("div", {}, el("span", { class: "t", text: `${time} ` }));
  if (merged) div.append(el("span", { class: "p", text: `${line.process} ` }));
  div.append(line.line);
  log.append(div);
  while (log.childElementCount > LOG_LIMIT) log.firstElementChild.remove();
  if (atEnd) log.scrollTop = log.scrollHeight;
}

function openLog() {
  if (logStream) logStream.close();
  const value = $("log-source").value;
  if (!value) return;
  const [id, name] = value.split("\n");
  const params = new URLSearchParams({ follow: "true", n: "200" });
  const grep = $("log-grep").value;
  if (grep) params.set("grep", grep);
  const base = `/api/v1/projects/${encodeURIComponent(id)}`;
  const path = name ? `${base}/processes/${encodeURIComponent(name)}/logs` : `${base}/logs`;
  $("log").replaceChildren();
  const state = $("log-state");
  logStream = new EventSource(`${path}?${params}`);
  logStream.onopen = () => { state.textContent = "following"; };
  logStream.onerror = () => { state.textContent = "reconnecting…"; };
  logStream.addEventListener("log", (m) => appendLog(JSON.parse(m.data), !name));
}

// ---- start ---------------------------------------------------------------------------

async function load() {
  let list;
  try {
    list = (await api("/api/v1/projects")).projects;
  } catch (e) {
    $("empty").hidden = false;
    $("empty").textContent = e instanceof ApiError ? e.words() : String(e);
    return;
  }
  $("empty").hidden = list.length > 0;
  const ids = new Set(list.map((p) => p.id));
  for (const [id, p] of projects) {
    if (!ids.has(id)) { p.section.remove(); projects.delete(id); }
  }
  await Promise.all(list.map(async (info) => {
    const p = projectView(info);
    await Promise.all([refreshStatus(p), loadGraph(p)]);
  }));
  fillLogSources();
  reopenEvents();
  if (!logStream) openLog();
}

$("reload").addEventListener("click", load);
$("log-source").addEventListener("change", openLog);
$("log-grep").addEventListener("change", openLog);
$("log-clear").addEventListener("click", () => $("log").replaceChildren());
setInterval(() => {
  for (const p of projects.values()) for (const row of p.rows.values()) {
    row.cells.uptime.textContent = uptime(row.data);
  }
}, 1000);
setInterval(() => {
  if (document.visibilityState === "visible") for (const p of projects.values()) refreshStatus(p);
}, 5000);
load();
