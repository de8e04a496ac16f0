# ruff: noqa: E501  (the page is one HTML string)
"""``/docs``: a self-contained page that renders ``/openapi.json`` in the browser.

No CDN and no bundled framework: a few lines of plain JavaScript list every operation
with its role, parameters, body and responses, and resolve schema references on
demand, so the page works on an air-gapped machine.
"""

from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Fleetlog API</title>
<style>
 body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 70rem; padding: 1rem 2rem; color: #222; }
 h1 { margin-bottom: 0 } .muted { color: #666 }
 details { border: 1px solid #ddd; border-radius: 6px; margin: .4rem 0; padding: .3rem .7rem; }
 summary { cursor: pointer; } code, pre { font: 13px ui-monospace, monospace; }
 pre { background: #f6f6f6; padding: .6rem; overflow: auto; max-height: 30rem; }
 .m { display: inline-block; width: 4.5rem; font-weight: 600; }
 .GET { color: #1565c0 } .POST { color: #2e7d32 } .PATCH { color: #ef6c00 } .PUT { color: #6a1b9a }
 table { border-collapse: collapse; } td, th { text-align: left; padding: .15rem .6rem .15rem 0; vertical-align: top; }
</style>
</head>
<body>
<h1>Fleetlog API</h1>
<p class="muted">Rendered from <a href="openapi.json">openapi.json</a> (OpenAPI 3.1). Send
<code>Authorization: Bearer &lt;token&gt;</code>; mint a token with <code>fleetlog token</code>.</p>
<div id="intro"></div>
<div id="ops">Loading&hellip;</div>
<script>
"use strict";
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
function resolve(doc, schema, depth) {
  if (depth > 6 || schema === null || typeof schema !== "object") return schema;
  if (Array.isArray(schema)) return schema.map((s) => resolve(doc, s, depth));
  if (schema.$ref) {
    const name = schema.$ref.split("/").pop();
    return {title: name, ...resolve(doc, doc.components.schemas[name], depth + 1)};
  }
  const out = {};
  for (const [k, v] of Object.entries(schema)) out[k] = resolve(doc, v, depth);
  return out;
}
function block(doc, title, schema) {
  return "<details><summary>" + esc(title) + "</summary><pre>" +
    esc(JSON.stringify(resolve(doc, schema, 0), null, 2)) + "</pre></details>";
}
fetch("openapi.json").then((r) => r.json()).then((doc) => {
  document.getElementById("intro").innerHTML = "<p>" + esc(doc.info.description) + "</p>";
  let html = "";
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const m = method.toUpperCase();
      html += "<details><summary><span class='m " + m + "'>" + m + "</span><code>" + esc(path) +
        "</code> &mdash; " + esc(op.summary || "") + "</summary>";
      if (op.description) html += "<p>" + esc(op.description) + "</p>";
      if (op.parameters) {
        html += "<table><tr><th>parameter</th><th>in</th><th>schema</th></tr>";
        for (const p of op.parameters)
          html += "<tr><td><code>" + esc(p.name) + "</code>" + (p.required ? " *" : "") + "</td><td>" +
            esc(p.in) + "</td><td><code>" + esc(JSON.stringify(p.schema)) + "</code></td></tr>";
        html += "</table>";
      }
      if (op.requestBody) html += block(doc, "request body", op.requestBody.content["application/json"].schema);
      for (const [status, resp] of Object.entries(op.responses)) {
        const content = resp.content ? Object.values(resp.content)[0].schema : null;
        html += content ? block(doc, status + " " + resp.description, content)
                        : "<p>" + esc(status + " " + resp.description) + "</p>";
      }
      html += "</details>";
    }
  }
  document.getElementById("ops").innerHTML = html;
}).catch((e) => { document.getElementById("ops").textContent = "could not load openapi.json: " + e; });
</script>
</body>
</html>
"""
