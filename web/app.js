"use strict";
// The edgeq dashboard: the v1 API only, with the key typed in (kept in this tab's
// sessionStorage). Every value from the server is shown with textContent, never
// as markup.

const $ = (id) => document.getElementById(id);
const keyInput = $("key");
keyInput.value = sessionStorage.getItem("edgeq-key") || "";
keyInput.addEventListener("change", () => {
  sessionStorage.setItem("edgeq-key", keyInput.value);
  refresh();
});

let selected = null; // the queue object shown in the detail panel
let listingFailed = false; // the status line shows a failed listing

function status(text, error) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

// One API call; throws an Error carrying the API's error message.
async function api(method, path, body, contentType) {
  const headers = {};
  if (keyInput.value) headers.authorization = "Bearer " + keyInput.value;
  if (body !== undefined) headers["content-type"] = contentType || "application/json";
  const res = await fetch(path, { method, headers, body });
  if (!res.ok) {
    let message = res.status + " " + res.statusText;
    try {
      const e = (await res.json()).error;
      message = `${res.status} ${e.code}: ${e.message}`;
    } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return res;
}

const q = (name) => "/v1/queues/" + encodeURIComponent(name);

function cell(row, text, numeric) {
  const td = document.createElement("td");
  td.textContent = text;
  if (numeric) td.className = "num";
  row.append(td);
}

async function refresh() {
  try {
    const health = await (await fetch("/healthz")).json();
    $("auth").textContent = health.auth === "open" ? "open mode: no key needed" : "";
    const page = await (await api("GET", "/v1/queues?details=true&limit=1000")).json();
    const body = $("queues").tBodies[0];
    const rows = page.queues.map((queue) => {
      const s = queue.stats || {};
      const tr = document.createElement("tr");
      tr.dataset.queue = queue.name;
      if (selected && selected.name === queue.name) {
        tr.className = "selected";
        selected = queue;
        showConfig();
      }
      cell(tr, queue.name);
      cell(tr, String(s.messages ?? ""), true);
      cell(tr, String(s.bytes ?? ""), true);
      cell(tr, String(s.in_flight ?? ""), true);
      cell(tr, String(s.dead_lettered ?? ""), true);
      cell(tr, s.oldest_age_ms == null ? "" : (s.oldest_age_ms / 1000).toFixed(1), true);
      tr.addEventListener("click", () => select(queue));
      return tr;
    });
    body.replaceChildren(...rows);
    if (listingFailed) status("");
    listingFailed = false;
  } catch (e) {
    status("Listing queues failed: " + e.message, true);
    listingFailed = true;
  }
}

function showConfig() {
  $("q-config").textContent = "config: " + JSON.stringify(selected.config);
  $("dead").disabled = !selected.config.dead_letter_queue;
}

function select(queue) {
  selected = queue;
  $("detail").hidden = false;
  $("q-name").textContent = queue.name;
  showConfig();
  $("messages").replaceChildren();
  $("list-title").textContent = "";
  for (const tr of $("queues").tBodies[0].rows) {
    tr.className = tr.dataset.queue === queue.name ? "selected" : "";
  }
}

// Shows messages (JSON envelopes: body as text or body_base64).
function showMessages(title, messages) {
  $("list-title").textContent = title;
  $("messages").replaceChildren(...messages.map((m) => {
    const li = document.createElement("li");
    const meta = document.createElement("div");
    meta.className = "muted";
    meta.textContent = `${m.id} · ${m.content_type || "no content type"} · enqueued ${new Date(m.enqueued_at).toISOString()}`;
    const pre = document.createElement("pre");
    pre.className = "body";
    pre.textContent = m.body !== undefined ? m.body : "(base64) " + m.body_base64;
    li.append(meta, pre);
    return li;
  }));
}

// Runs one action, reports failure, refreshes the list.
function action(fn) {
  return async (event) => {
    if (event) event.preventDefault();
    try {
      await fn();
    } catch (e) {
      status(e.message, true);
      listingFailed = false;
      return;
    }
    await refresh();
  };
}

$("create").addEventListener("submit", action(async () => {
  const name = $("new-name").value.trim();
  const config = $("new-config").value.trim();
  await api("PUT", q(name), config || undefined);
  status(`Queue ${name} saved.`);
  $("new-name").value = "";
}));

$("send").addEventListener("submit", action(async () => {
  const res = await api("POST", q(selected.name) + "/messages", $("send-body").value, $("send-type").value || "text/plain");
  status("Sent " + (await res.json()).id);
  $("send-body").value = "";
}));

$("peek").addEventListener("click", action(async () => {
  const page = await (await api("GET", q(selected.name) + "/messages?limit=50")).json();
  showMessages(`First ${page.messages.length} messages of ${selected.name} (not consumed)`, page.messages);
}));

$("pop").addEventListener("click", action(async () => {
  const res = await api("POST", q(selected.name) + "/pop?count=1");
  if (res.status === 204) {
    showMessages("Nothing to pop", []);
    return;
  }
  const page = await res.json();
  showMessages("Popped (removed from the queue)", page.messages);
}));

$("dead").addEventListener("click", action(async () => {
  const dlq = selected.config.dead_letter_queue;
  const page = await (await api("GET", q(dlq) + "/messages?limit=50")).json();
  showMessages(`Dead letters: first ${page.messages.length} messages of ${dlq}`, page.messages);
}));

$("purge").addEventListener("click", action(async () => {
  if (!confirm(`Drop every message of ${selected.name}?`)) return;
  const n = (await (await api("POST", q(selected.name) + "/purge")).json()).purged;
  status(`Purged ${n} messages from ${selected.name}.`);
  $("messages").replaceChildren();
}));

refresh();
setInterval(refresh, 2000);
