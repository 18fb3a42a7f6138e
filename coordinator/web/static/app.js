// The Convoy dashboard: plain JavaScript, no build step, the same REST API as everyone else.
//
// One rule above all: what a device sends (hostnames, output, error logs, tags) is untrusted
// text. Every element is built with h(); strings become text nodes; nothing is ever assigned to
// innerHTML. The server's Content-Security-Policy forbids inline script as a second wall.

import { newDeploymentPage } from "./deployment_form.js";

const TOKEN_KEY = "convoy.token";
const FINISHED = new Set(["completed", "failed", "cancelled", "rollback"]);
const LIVE = new Set(["downloading", "installing", "running"]);

// --- DOM ------------------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  add(el, children);
  return el;
}

function add(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const $ = (id) => document.getElementById(id);
const main = () => $("main");
const enc = encodeURIComponent;

function badge(status) {
  return h("span", { class: `badge s-${String(status).replace(/[^a-z]/g, "")}`, "data-status": status }, status);
}

function bar(p) {
  const total = Math.max(p.total || 0, 1);
  const seg = (name) => {
    const el = h("span", { class: name });
    el.style.width = `${(100 * (p[name] || 0)) / total}%`; // CSSOM, which the CSP allows (a style attribute it would not)
    return el;
  };
  return h("div", { class: "bar", role: "img", "aria-label": `${p.completed} completed, ${p.failed} failed of ${p.total}` },
    seg("completed"), seg("failed"), seg("skipped"), seg("running"));
}

function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

function ago(iso) {
  if (!iso) return "never";
  const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return `${Math.max(s, 0)}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

// --- banner ---------------------------------------------------------------------------------

function showError(err) {
  const b = $("banner");
  b.className = "";
  b.replaceChildren();
  if (err instanceof ApiError) {
    add(b, [h("b", {}, err.status ? `${err.status} ${err.code}` : err.code), ": ", err.message]);
  } else {
    add(b, String(err && err.message ? err.message : err));
  }
  b.hidden = false;
}

function showInfo(text) {
  const b = $("banner");
  b.className = "info";
  b.replaceChildren(document.createTextNode(text));
  b.hidden = false;
  setTimeout(() => { if (b.className === "info" && b.textContent === text) b.hidden = true; }, 4000);
}

function hideBanner() {
  $("banner").hidden = true;
}

// --- the API --------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

const token = () => sessionStorage.getItem(TOKEN_KEY) || "";

async function api(method, path, body, bearer) {
  const headers = { Authorization: `Bearer ${bearer || token()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(`/v2${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, "unreachable", `cannot reach the coordinator (${e.message})`);
  }
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const e = (data && data.error) || {};
    throw new ApiError(resp.status, e.code || "error", e.message || `HTTP ${resp.status}`, e.details);
  }
  return data;
}

let me = null; // {role, partner, clients: [{id, name}]}

function clientName(id) {
  const c = me && me.clients.find((x) => x.id === id);
  return c ? c.name : id;
}

// --- pages ----------------------------------------------------------------------------------

function signInPage(message) {
  $("nav").hidden = true;
  $("signout").hidden = true;
  $("who").replaceChildren();
  const input = h("input", { type: "password", id: "token", name: "token", placeholder: "cvy_api_…", autocomplete: "off", required: true });
  const form = h("form", { class: "signin", id: "signin" },
    h("h1", {}, "Sign in to Convoy"),
    h("p", {}, "Paste an API token (from convoy admin bootstrap or convoy api-tokens create). It stays in this browser tab only."),
    h("div", { class: "row" }, input, h("button", { class: "primary", type: "submit" }, "Sign in")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    hideBanner();
    try {
      const who = await api("GET", "/me", undefined, input.value.trim());
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      me = who;
      if (!location.hash || location.hash === "#/signin") location.hash = "#/fleet";
      else render();
    } catch (err) {
      showError(err);
    }
  });
  main().replaceChildren(form);
  if (message) showError(message);
  input.focus();
}

async function fleetPage() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const filter = params.get("filter") || "";
  const input = h("input", { type: "text", id: "filter", value: filter, placeholder: 'os == "linux" and "web" in tags' });
  const form = h("form", { class: "row", id: "filter-form" }, input, h("button", { type: "submit" }, "Filter"),
    h("span", { class: "muted" }, "the target filter language of deployments"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = input.value.trim() ? `#/fleet?filter=${enc(input.value.trim())}` : "#/fleet";
  });
  const counts = h("div", { class: "counts", id: "fleet-counts" });
  const body = h("tbody");
  main().replaceChildren(h("h1", {}, "Fleet"), form, counts,
    h("table", { id: "devices" }, h("thead", {}, h("tr", {}, ["hostname", "online", "os", "site", "tags", "last seen", ...(me.clients.length > 1 ? ["client"] : [])].map((c) => h("th", {}, c)))), body));
  const devices = [];
  for (const c of me.clients) {
    const q = new URLSearchParams({ limit: "1000" });
    if (filter) q.set("filter", filter);
    const page = await api("GET", `/clients/${enc(c.id)}/devices?${q}`);
    devices.push(...page.data);
  }
  const by = (key) => {
    const m = new Map();
    for (const d of devices) m.set(key(d) || "—", (m.get(key(d) || "—") || 0) + 1);
    return [...m.entries()].sort((a, b) => b[1] - a[1]);
  };
  const online = devices.filter((d) => d.online).length;
  add(counts, [
    h("div", { "data-count": "total" }, h("b", {}, devices.length), " devices"),
    h("div", { "data-count": "online" }, h("b", {}, online), " online"),
    h("div", { "data-count": "offline" }, h("b", {}, devices.length - online), " offline"),
    h("div", {}, "OS: ", by((d) => d.facts.os).map(([k, n]) => `${k} ${n}`).join(", ") || "—"),
    h("div", {}, "site: ", by((d) => d.site).map(([k, n]) => `${k} ${n}`).join(", ") || "—"),
  ]);
  for (const d of devices) {
    body.append(h("tr", { "data-device": d.id },
      h("td", {}, h("a", { href: `#/devices/${enc(d.client_id)}/${enc(d.id)}`, class: "hostname" }, d.facts.hostname || d.id)),
      h("td", {}, h("span", { class: d.online ? "dot on" : "dot" }), d.online ? "online" : "offline"),
      h("td", {}, `${d.facts.os} ${d.facts.os_version}`),
      h("td", {}, d.site || "—"),
      h("td", {}, d.tags.map((t) => h("span", { class: "tag" }, t))),
      h("td", { title: d.last_seen_at || "" }, ago(d.last_seen_at)),
      me.clients.length > 1 ? h("td", {}, clientName(d.client_id)) : null));
  }
  if (!devices.length) body.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, filter ? "no device matches this filter" : "no devices enrolled yet")));
}

async function deploymentsPage() {
  const page = await api("GET", "/deployments?limit=100");
  const body = h("tbody");
  for (const d of page.data) {
    const p = d.progress;
    body.append(h("tr", { "data-deployment": d.id },
      h("td", {}, h("a", { href: `#/deployments/${enc(d.id)}` }, d.name)),
      h("td", {}, badge(d.status)),
      h("td", { class: "barcell" }, bar(p)),
      h("td", {}, `${p.completed + p.failed + p.skipped}/${p.total}`, p.failed ? h("span", { class: "s-failed" }, ` (${p.failed} failed)`) : null),
      h("td", {}, p.totalBatches ? `${p.currentBatch}/${p.totalBatches}` : "—"),
      h("td", {}, d.type),
      h("td", {}, when(d.createdAt))));
  }
  if (!page.data.length) body.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "no deployments yet: convoy deployments create …")));
  main().replaceChildren(h("div", { class: "row" }, h("h1", {}, "Deployments"),
    h("a", { href: "#/deployments/new", id: "new-deployment-link", class: "button primary" }, "New deployment")),
    h("p", { class: "muted" }, `${page.total} deployment(s), newest first`),
    h("table", { id: "deployments" }, h("thead", {}, h("tr", {}, ["name", "status", "progress", "done", "batch", "type", "created"].map((c) => h("th", {}, c)))), body));
}

// The actions a status allows, as docs/deployments.md lists them; the API still decides.
function actionsFor(status) {
  if (status === "draft") return ["initialize"];
  if (status === "pending") return ["start", "cancel"];
  if (LIVE.has(status)) return ["pause", "cancel"];
  if (status === "paused") return ["resume", "cancel", "rollback"];
  if (status === "completed" || status === "failed" || status === "cancelled") return ["rollback"];
  return [];
}

// docs/approvals.md: who approved, or why an approval is still needed.
function approvalText(a) {
  if (!a) return "";
  if (a.status === "required") return `${a.reason} (an operator other than its creator approves it)`;
  if (a.status !== "approved") return "";
  return "approved by " + a.approvals.map((x) => `${x.tokenName || x.tokenId} ${when(x.at)}${x.comment ? `: ${x.comment}` : ""}`).join("; ");
}

const ACTION_TEXT = {
  approve: "Approve this deployment? It can then be started (you cannot approve one your token created).",
  initialize: "Resolve the targets and plan the batches? Nothing is sent to devices yet.",
  start: "Start this deployment? Devices of batch 1 receive the job now.",
  pause: "Pause this deployment? Devices already dispatched finish; no new ones start.",
  resume: "Resume this deployment? Failure thresholds re-arm from the failures counted now.",
  cancel: "Cancel this deployment? Pending devices are skipped. This cannot be undone.",
  rollback: "Roll back this deployment? A new deployment reverts the change on every device where it completed.",
};

// Every batch dispatched, devices still pending, offlineDevices "wait": waiting for late arrivers.
function lateArrivers(dep) {
  const p = dep.progress, offline = (dep.rolloutConfig || {}).offlineDevices || {};
  if (offline.policy !== "wait" || dep.status !== "running" || !p.pending || p.currentBatch < p.totalBatches) return "";
  return `waiting for ${p.pending} device(s) to connect: each gets the job within ${offline.waitMinutes} min of its batch's start, else it is skipped`;
}

async function deploymentPage(depId) {
  let dep = await api("GET", `/deployments/${enc(depId)}`);
  let batches = [];
  let failedShown = -1;
  const open = new Set(); // device ids whose output is expanded
  const head = h("div", { id: "dep-head" });
  const overall = h("div", { class: "overall", id: "overall" });
  const actions = h("div", { class: "actions row", id: "actions" });
  const preview = h("div", { id: "preview" });
  const batchBody = h("tbody");
  const failures = h("div", { id: "failures" });
  const live = h("span", { class: "live", id: "live" }, "connecting…");

  let paintedStatus = dep.status;
  function paint() {
    const p = dep.progress;
    if (dep.status !== paintedStatus && $("banner").className === "info") hideBanner(); // "resumed" is old news once it moves on
    paintedStatus = dep.status;
    head.replaceChildren(
      h("h1", {}, dep.name, " ", badge(dep.status)),
      h("dl", { class: "kv" },
        h("dt", {}, "id"), h("dd", {}, dep.id),
        h("dt", {}, "type"), h("dd", {}, `${dep.type}, target ${dep.targetType}`),
        h("dt", {}, "client"), h("dd", {}, clientName(dep.clientId)),
        dep.statusReason ? [h("dt", {}, "reason"), h("dd", { id: "status-reason" }, dep.statusReason)] : null,
        dep.nextBatchAt && dep.status === "running"
          ? [h("dt", {}, dep.progress.currentBatch === 0 ? "first batch" : "next batch"), h("dd", {}, when(dep.nextBatchAt))] : null,
        dep.strategies && dep.strategies.length ? [h("dt", {}, "strategies"), h("dd", { id: "strategies" }, ...dep.strategies.map((s) => h("div", {}, s)))] : null,
        lateArrivers(dep) ? [h("dt", {}, "late arrivers"), h("dd", { id: "late-arrivers" }, lateArrivers(dep))] : null,
        dep.rollbackOf ? [h("dt", {}, "rollback of"), h("dd", {}, h("a", { href: `#/deployments/${enc(dep.rollbackOf)}` }, dep.rollbackOf))] : null,
        dep.rolledBackBy ? [h("dt", {}, "rolled back by"), h("dd", {}, h("a", { href: `#/deployments/${enc(dep.rolledBackBy)}` }, dep.rolledBackBy))] : null,
        approvalText(dep.approval) ? [h("dt", {}, "approval"), h("dd", { id: "approval" }, approvalText(dep.approval))] : null,
        h("dt", {}, "started"), h("dd", {}, when(dep.startedAt)),
        h("dt", {}, "finished"), h("dd", {}, when(dep.completedAt))));
    overall.replaceChildren(bar(p), h("p", { id: "progress-text" },
      `${p.percentComplete}% · ${p.completed} completed · ${p.failed} failed · ${p.skipped} skipped · ${p.running} running · ${p.pending} pending · of ${p.total}`,
      p.totalBatches ? ` · batch ${p.currentBatch} of ${p.totalBatches}` : ""));
    const allowed = actionsFor(dep.status);
    if (dep.approval && dep.approval.status === "required") allowed.unshift("approve");
    actions.replaceChildren(...allowed.map((name) =>
      h("button", { type: "button", "data-action": name, class: name === "cancel" || name === "rollback" ? "danger" : name === "start" || name === "resume" ? "primary" : "", onclick: () => act(name) }, name[0].toUpperCase() + name.slice(1))), live,
      dep.status === "draft" ? h("span", { class: "muted", id: "draft-hint" }, "a draft: Initialize resolves its targets and shows the batches before anything runs") : null);
    batchBody.replaceChildren(...batches.map((b) => h("tr", { "data-batch": b.batchNumber, class: b.batchNumber === p.currentBatch ? "current" : "" },
      h("td", {}, `batch ${b.batchNumber}`, b.batchNumber === p.currentBatch && !FINISHED.has(dep.status) ? " ◀" : ""),
      h("td", { class: "barcell" }, bar(b)),
      h("td", {}, `${b.completed + b.failed + b.skipped}/${b.total}`),
      h("td", {}, b.failed ? h("span", { class: "s-failed" }, `${b.failed} failed`) : "", b.skipped ? h("span", { class: "s-skipped" }, ` ${b.skipped} skipped`) : ""))));
    if (p.failed !== failedShown) loadFailures().catch(showError);
  }

  async function loadFailures() {
    failedShown = dep.progress.failed;
    const page = await api("GET", `/deployments/${enc(depId)}/devices?status=failed&limit=500`);
    const rows = page.data.map((r) => {
      const out = h("pre", { class: "output" }, r.output || "(no output)");
      const outRow = h("tr", { class: "output-row", hidden: !open.has(r.deviceId) }, h("td", { colspan: 6 }, out));
      const toggle = h("button", { type: "button", "data-output": r.deviceId, onclick: () => {
        outRow.hidden = !outRow.hidden;
        if (outRow.hidden) open.delete(r.deviceId); else open.add(r.deviceId);
      } }, "Output");
      const retry = h("button", { type: "button", "data-retry": r.deviceId, onclick: () => act("retry", r) }, "Retry");
      return [h("tr", { "data-failed": r.deviceId },
        h("td", {}, h("a", { href: `#/devices/${enc(dep.clientId)}/${enc(r.deviceId)}`, class: "hostname" }, r.hostname || r.deviceId)),
        h("td", {}, r.batchNumber), h("td", {}, r.exitCode === null ? "—" : r.exitCode),
        h("td", {}, r.error || ""), h("td", {}, `${r.retryCount}`), h("td", { class: "row" }, toggle, retry)),
      outRow];
    });
    failures.replaceChildren(h("h2", {}, `Failed devices (${page.total})`),
      page.total ? h("table", { id: "failed" }, h("thead", {}, h("tr", {}, ["hostname", "batch", "exit", "error", "retries", ""].map((c) => h("th", {}, c)))), h("tbody", {}, rows))
        : h("p", { class: "muted" }, "none"));
  }

  async function act(name, record) {
    const question = name === "retry" ? `Retry ${record.hostname || record.deviceId}? It counts against maxRetries.` : ACTION_TEXT[name];
    if (!window.confirm(question)) return;
    hideBanner();
    try {
      if (name === "retry") {
        await api("POST", `/deployments/${enc(depId)}/devices/${enc(record.deviceId)}/retry`);
        showInfo(`retrying ${record.hostname || record.deviceId}`);
        failedShown = -1;
      } else if (name === "initialize") {
        const out = await api("POST", `/deployments/${enc(depId)}/initialize`);
        dep = out.deployment;
        preview.replaceChildren(h("h2", {}, "Preview"), h("p", {}, `${out.preview.resolvedCount} device(s) in ${out.preview.totalBatches} batch(es): `,
          out.preview.batches.map((b) => `batch ${b.batchNumber}: ${b.deviceCount}`).join(", ")),
          strategyPreview(out.preview));
        showInfo("initialized: nothing has been sent to devices; start it when ready");
      } else if (name === "approve") {
        const comment = window.prompt("Comment for the audit trail (optional):", "");
        if (comment === null) return;
        dep = await api("POST", `/deployments/${enc(depId)}/approve`, { comment });
        showInfo("approved: it can be started now");
      } else if (name === "rollback") {
        const out = await api("POST", `/deployments/${enc(depId)}/rollback`);
        showInfo("rollback started");
        location.hash = `#/deployments/${enc(out.id)}`;
        return;
      } else {
        dep = await api("POST", `/deployments/${enc(depId)}/${name}`);
        showInfo(`${name}: now ${dep.status}`);
      }
      paint();
      if (!FINISHED.has(dep.status) && !stop) startFollowing();
    } catch (err) {
      showError(err);
    }
  }

  let stop = null;
  function startFollowing() {
    stop = follow(depId, (snap) => {
      dep = snap.deployment;
      batches = snap.batches;
      paint();
    }, (connected, message) => {
      live.className = connected ? "live on" : "live";
      live.textContent = connected ? "live" : (message || (FINISHED.has(dep.status) ? "finished" : "reconnecting…"));
      if (!connected && FINISHED.has(dep.status)) stop = null;
    });
  }

  main().replaceChildren(h("p", {}, h("a", { href: "#/deployments" }, "← deployments")), head, overall, actions, preview,
    h("h2", {}, "Batches"), h("table", { class: "batches", id: "batches" }, batchBody), failures);
  paint();
  startFollowing();
  return () => { if (stop) stop(); };
}

// Server-sent events over fetch (EventSource cannot send the bearer header). Reconnects until
// the server says the deployment has ended; returns a function that stops following.
function follow(depId, onSnapshot, onState) {
  const ctrl = new AbortController();
  let ended = false;
  (async () => {
    while (!ended && !ctrl.signal.aborted) {
      let message;
      try {
        const resp = await fetch(`/v2/deployments/${enc(depId)}/events`, { headers: { Authorization: `Bearer ${token()}` }, signal: ctrl.signal });
        if (!resp.ok) {
          const data = await resp.json().catch(() => ({}));
          message = `live updates unavailable: ${(data.error && data.error.message) || resp.status}`;
          if ([401, 403, 404].includes(resp.status)) ended = true;
        } else {
          onState(true);
          const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
          let buf = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += value;
            let cut;
            while ((cut = buf.indexOf("\n\n")) >= 0) {
              const block = buf.slice(0, cut);
              buf = buf.slice(cut + 2);
              let event = "message";
              let data = "";
              for (const line of block.split("\n")) {
                if (line.startsWith("event:")) event = line.slice(6).trim();
                else if (line.startsWith("data:")) data += line.slice(5).trim();
              }
              if (event === "progress" && data) onSnapshot(JSON.parse(data));
              else if (event === "end") ended = true;
            }
          }
        }
      } catch (err) {
        if (ctrl.signal.aborted) return;
        message = "reconnecting…";
      }
      onState(false, ended ? "finished" : message);
      if (!ended) await new Promise((r) => setTimeout(r, 2000));
    }
  })();
  return () => ctrl.abort();
}

async function devicePage(clientId, deviceId) {
  const d = await api("GET", `/clients/${enc(clientId)}/devices/${enc(deviceId)}`);
  const f = d.facts;
  const history = await api("GET", `/clients/${enc(clientId)}/devices/${enc(deviceId)}/deployments?page_size=50`);
  const records = await api("GET", `/clients/${enc(clientId)}/devices/${enc(deviceId)}/records?limit=100`);
  const recordRows = records.data.map((r) => {
    const out = h("pre", { class: "output" }, r.output || "(no output)");
    const outRow = h("tr", { class: "output-row", hidden: true }, h("td", { colspan: 6 }, out));
    return [h("tr", { "data-record": r.deploymentId },
      h("td", {}, h("a", { href: `#/deployments/${enc(r.deploymentId)}` }, r.deploymentName)),
      h("td", {}, badge(r.status)), h("td", {}, r.batchNumber), h("td", {}, r.exitCode === null ? "—" : r.exitCode),
      h("td", {}, r.error || r.skipReason || ""),
      h("td", {}, h("button", { type: "button", "data-record-output": r.deploymentId, onclick: () => { outRow.hidden = !outRow.hidden; } }, "Output"))),
    outRow];
  });
  const rows = history.data.map((r) => {
    const logs = h("pre", { class: "output" });
    const logsRow = h("tr", { class: "output-row", hidden: true }, h("td", { colspan: 4 }, logs));
    const show = r.status === "error" ? h("button", { type: "button", "data-logs": r.id, onclick: async () => {
      if (!logsRow.hidden) { logsRow.hidden = true; return; }
      try {
        const full = await api("GET", `/clients/${enc(clientId)}/devices/${enc(deviceId)}/deployments/${enc(r.id)}`);
        logs.textContent = (full.error_logs || []).map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n") || "(no logs)";
        logsRow.hidden = false;
      } catch (err) {
        showError(err);
      }
    } }, "Error logs") : null;
    return [h("tr", {}, h("td", {}, when(r.enrollment_date)), h("td", {}, badge(r.status)), h("td", { class: "muted" }, r.id), h("td", {}, show)),
      logsRow];
  });
  main().replaceChildren(h("p", {}, h("a", { href: "#/fleet" }, "← fleet")),
    h("h1", { id: "device-hostname" }, f.hostname || d.id, " ", h("span", { class: d.online ? "dot on" : "dot" }), h("span", { class: "muted" }, d.online ? "online" : "offline")),
    h("dl", { class: "kv", id: "facts" },
      [["id", d.id], ["client", clientName(d.client_id)], ["machine id", d.machine_id], ["os", `${f.os} ${f.os_version} (${f.arch})`],
        ["cpus", f.cpu_count], ["memory", `${Math.round(f.memory_bytes / 1048576)} MiB`], ["ip addresses", f.ip_addresses.join(", ") || "—"],
        ["site", d.site || "—"], ["tags", d.tags.join(", ") || "—"], ["maintenance windows", d.maintenance_windows.join("; ") || "—"],
        ["agent", d.agent_version || "—"], ["last seen", `${when(d.last_seen_at)} (${ago(d.last_seen_at)})`]]
        .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    h("h2", {}, `Deployments (${records.total})`),
    records.total ? h("table", { id: "records" }, h("thead", {}, h("tr", {}, ["deployment", "status", "batch", "exit", "error / skip reason", ""].map((c) => h("th", {}, c)))), h("tbody", {}, recordRows))
      : h("p", { class: "muted" }, "no deployment has targeted this device"),
    h("h2", {}, `Enrollment history (${history.total_count})`),
    h("table", { id: "history" }, h("thead", {}, h("tr", {}, ["enrolled", "status", "record", ""].map((c) => h("th", {}, c)))), h("tbody", {}, rows)));
}

// --- routing --------------------------------------------------------------------------------

const ROUTES = [
  [/^#\/fleet(\?.*)?$/, fleetPage, "fleet"],
  [/^#\/deployments$/, deploymentsPage, "deployments"],
  [/^#\/deployments\/new$/, () => newDeploymentPage({ h, api, enc, me, showError, hideBanner, main }), "deployments"],
  [/^#\/deployments\/([^/?]+)$/, deploymentPage, "deployments"],
  [/^#\/devices\/([^/?]+)\/([^/?]+)$/, devicePage, "fleet"],
];

let leave = null; // stops the current page's live stream

async function render() {
  if (leave) { leave(); leave = null; }
  if (!token()) return signInPage();
  try {
    if (!me) me = await api("GET", "/me");
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    me = null;
    return signInPage(err);
  }
  $("nav").hidden = false;
  $("signout").hidden = false;
  $("who").textContent = `${me.role}${me.partner ? " (partner)" : ""} · ${me.clients.map((c) => c.name).join(", ")}`;
  const hash = location.hash || "#/fleet";
  const route = ROUTES.find(([re]) => re.test(hash));
  if (!route) { location.hash = "#/fleet"; return; }
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === route[2]);
  const args = hash.match(route[0]).slice(1).filter((x) => x !== undefined && !String(x).startsWith("?")).map(decodeURIComponent);
  main().replaceChildren(h("p", { class: "muted" }, "Loading…"));
  try {
    const cleanup = await route[1](...args);
    if (typeof cleanup === "function") leave = cleanup;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      me = null;
      return signInPage(err);
    }
    main().replaceChildren(h("p", { class: "muted" }, "This page could not be loaded."));
    showError(err);
  }
}

window.addEventListener("hashchange", () => { hideBanner(); render(); });
$("signout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  me = null;
  hideBanner();
  location.hash = "#/fleet";
  signInPage();
});
render();

// The rollout strategies a preview lists (docs/deployments-rules.md, "Rollout strategies"): only
// those in use are in it, so a seed deployment's preview shows none.
function strategyPreview(pv) {
  const labels = [["startAt", "first batch at"], ["maxPerMinute", "dispatches a minute at most"],
    ["successGatePercent", "success gate (%)"], ["failureBasis", "failure percent over"],
    ["minFinishedForPercent", "finished before a percent pause"], ["onFailureThreshold", "a crossed threshold"]];
  const rows = labels.filter(([key]) => pv[key] !== undefined && pv[key] !== null && pv[key] !== "")
    .map(([key, label]) => [h("dt", {}, label), h("dd", {}, key === "startAt" ? when(pv[key]) : String(pv[key]))]);
  return rows.length ? h("dl", { class: "kv", id: "preview-strategies" }, rows) : null;
}
