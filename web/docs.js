"use strict";
// Renders /openapi.json with DOM calls only (textContent, never innerHTML with data).
const keyInput = document.getElementById("key");
keyInput.value = sessionStorage.getItem("edgeq-key") || "";
keyInput.addEventListener("change", () => sessionStorage.setItem("edgeq-key", keyInput.value));

function field(name, where, required, description) {
  const label = document.createElement("label");
  label.textContent = `${name} (${where}${required ? ", required" : ""}) `;
  const input = document.createElement("input");
  input.name = name;
  input.dataset.in = where;
  input.required = required;
  if (description) input.placeholder = description;
  label.append(input);
  return label;
}

async function tryIt(form, method, path, result) {
  let url = path;
  const query = new URLSearchParams();
  for (const input of form.querySelectorAll("input")) {
    if (input.dataset.in === "path") url = url.replace(`{${input.name}}`, encodeURIComponent(input.value));
    else if (input.value !== "") query.set(input.name, input.value);
  }
  if ([...query].length) url += "?" + query;
  const headers = {};
  if (keyInput.value) headers.authorization = "Bearer " + keyInput.value;
  const init = { method, headers };
  const body = form.elements.body.value;
  if (body && method !== "GET") init.body = body;
  result.textContent = `${method} ${url} …`;
  try {
    const res = await fetch(url, init);
    const text = await res.text();
    result.textContent = `${res.status} ${res.statusText}\n${text}`;
  } catch (e) {
    result.textContent = String(e);
  }
}

async function load() {
  const ops = document.getElementById("ops");
  const doc = await (await fetch("/openapi.json")).json();
  ops.replaceChildren();
  const info = document.createElement("p");
  info.textContent = `${doc.info.title} ${doc.info.version}: ${doc.info.description || ""}`;
  ops.append(info);
  const template = document.getElementById("op");
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const node = template.content.cloneNode(true);
      const M = method.toUpperCase();
      node.querySelector(".method").textContent = M;
      node.querySelector(".method").classList.add(method);
      node.querySelector(".path").textContent = path;
      node.querySelector(".summary").textContent = op.summary || "";
      node.querySelector(".description").textContent = op.description || "";
      const params = node.querySelector(".params");
      for (const p of op.parameters || []) params.append(field(p.name, p.in, !!p.required, p.description));
      if (!op.requestBody) node.querySelector(".bodyfield").remove();
      const form = node.querySelector("form");
      const result = node.querySelector(".result");
      form.addEventListener("submit", (e) => { e.preventDefault(); tryIt(form, M, path, result); });
      ops.append(node);
    }
  }
}
load().catch((e) => { document.getElementById("ops").textContent = "Could not load /openapi.json: " + e; });
