// An attribution graph page (render/templates/graph_body.html): hover a node for its facts and its
// latent's examples, click to pin it; on the server's page, select pinned latents and run the
// model with them ablated or scaled, the logits before and after side by side.
// Text from the graph is written with textContent; HTML comes only from the page's own
// <template> elements or the server's fragments (rendered, escaped, by saescope.render).
(function () {
  "use strict";
  const root = document.getElementById("graph");
  if (!root) return;
  const nodes = JSON.parse(document.getElementById("graph-nodes").textContent);
  const byKey = new Map(nodes.map((n) => [n.key, n])); // keys are unique; ids are the graph's
  const facts = document.getElementById("node-facts");
  const detail = document.getElementById("node-detail");
  const selectButton = document.getElementById("select-node");
  const detailUrl = root.dataset.detailUrl || "";
  const editUrl = root.dataset.editUrl || "";
  const cache = new Map();
  const edits = new Map(); // node key -> factor
  let pinned = null;
  let shown = null;
  const drawing = root.querySelector(".graph-drawing");
  // the last positions, where the logits are, in view (once the stylesheet has made it scroll)
  // (now, and again on load in case the stylesheet arrived later: a load event already past never fires)
  const toLogits = () => { drawing.scrollLeft = drawing.scrollWidth; };
  toLogits();
  window.addEventListener("load", toLogits);
  requestAnimationFrame(toLogits);

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  function fmt(x, digits) { return Number(x).toFixed(digits === undefined ? 4 : digits); }

  function nodeFacts(n) {
    facts.replaceChildren();
    facts.appendChild(el("p", n.label, "node-label"));
    if (n.kind === "latent") facts.appendChild(el("p", n.explanation || "no explanation yet", n.explanation ? "node-explanation" : "empty"));
    const rows = [["kind", n.kind], ["layer", String(n.layer)], ["position", String(n.position)],
      [n.kind === "latent" ? "latent" : "feature", String(n.feature)], ["value", fmt(n.value)], ["influence", fmt(n.influence)]];
    const table = el("table", undefined, "kv");
    for (const [k, v] of rows) {
      const tr = el("tr"); tr.appendChild(el("td", k)); tr.appendChild(el("td", v)); table.appendChild(tr);
    }
    facts.appendChild(table);
  }

  function templateOf(id) {
    for (const t of document.querySelectorAll("template.node-detail")) if (t.dataset.node === id) return t;
    return null;
  }

  function nodeDetail(n) {
    detail.replaceChildren();
    if (n.kind !== "latent") return;
    const t = templateOf(n.id);
    if (t) { detail.appendChild(t.content.cloneNode(true)); return; }
    if (!detailUrl) return;
    if (cache.has(n.id)) { detail.innerHTML = cache.get(n.id); return; } // the server's fragment
    detail.appendChild(el("p", "loading examples…", "muted"));
    fetch(detailUrl + "/" + encodeURIComponent(n.id)).then((r) => r.ok ? r.text() : r.json().then((b) => { throw new Error(b.error); }))
      .then((html) => { cache.set(n.id, html); if (shown === n.key) detail.innerHTML = html; })
      .catch((e) => { if (shown === n.key) detail.replaceChildren(el("p", String(e.message || e), "error")); });
  }

  function show(key) {
    const n = byKey.get(key);
    if (!n || shown === key) return;
    shown = key;
    nodeFacts(n);
    nodeDetail(n);
    for (const e of document.querySelectorAll("svg.graph .edge")) {
      e.classList.toggle("lit", e.dataset.source === key || e.dataset.target === key);
    }
    document.querySelector("svg.graph").classList.add("focused");
  }

  function unfocus() {
    if (pinned) return;
    document.querySelector("svg.graph").classList.remove("focused");
  }

  function pin(target) {
    const key = target.dataset.id;
    for (const p of document.querySelectorAll("svg.graph .node.pinned")) p.classList.remove("pinned");
    if (pinned === key) { pinned = null; unfocus(); }
    else { pinned = key; target.classList.add("pinned"); shown = null; show(key); }
    if (selectButton) selectButton.disabled = !(pinned && byKey.get(pinned).kind === "latent");
  }

  for (const node of document.querySelectorAll("svg.graph .node")) {
    node.addEventListener("mouseenter", () => { if (!pinned) show(node.dataset.id); });
    node.addEventListener("mouseleave", unfocus);
    node.addEventListener("click", () => pin(node));
    node.addEventListener("keydown", (ev) => { if (ev.key === "Enter") pin(node); });
  }

  // ----- ablate or steer (the server's page only) ---------------------------------------
  const list = document.getElementById("edits");
  const run = document.getElementById("run-edit");
  const status = document.getElementById("edit-status");
  const error = document.getElementById("edit-error");
  const result = document.getElementById("edit-result");
  if (!list || !editUrl) return;

  function drawEdits() {
    list.replaceChildren();
    for (const [key, factor] of edits) {
      const n = byKey.get(key);
      const li = el("li", undefined, "edit-row");
      li.appendChild(el("span", n.label + " @" + n.position + " × "));
      const input = el("input");
      input.type = "number"; input.step = "0.5"; input.value = String(factor); input.className = "edit-factor";
      input.title = "factor on its activation (0 ablates it)";
      input.addEventListener("input", () => edits.set(key, Number(input.value)));
      li.appendChild(input);
      const drop = el("button", "remove"); drop.type = "button";
      drop.addEventListener("click", () => { edits.delete(key); drawEdits(); });
      li.appendChild(drop);
      list.appendChild(li);
    }
    run.disabled = edits.size === 0;
  }

  selectButton.addEventListener("click", () => {
    if (pinned && !edits.has(pinned)) { edits.set(pinned, 0); drawEdits(); }
  });

  function logitTable(title, rows, cols) {
    const wrap = el("div", undefined, "edit-table");
    wrap.appendChild(el("h4", title));
    const table = el("table", undefined, "logits-compare");
    const head = el("tr");
    for (const c of cols) head.appendChild(el("th", c[0], c[2]));
    const thead = el("thead"); thead.appendChild(head); table.appendChild(thead);
    const body = el("tbody");
    for (const r of rows) {
      const tr = el("tr");
      for (const c of cols) tr.appendChild(el("td", c[1](r), c[2]));
      body.appendChild(tr);
    }
    table.appendChild(body);
    wrap.appendChild(table);
    return wrap;
  }

  function showResult(data) {
    result.replaceChildren();
    const tok = (r) => JSON.stringify(r.token);
    result.appendChild(logitTable("the graph's output logits", data.logits, [
      ["token", tok, "tokname"],
      ["before: logit", (r) => fmt(r.old_logit, 3), "num old"], ["p", (r) => fmt(r.old_probability, 3), "num old"],
      ["after: logit", (r) => fmt(r.new_logit, 3), "num new"], ["p", (r) => fmt(r.new_probability, 3), "num new"],
      ["change", (r) => (r.new_logit - r.old_logit >= 0 ? "+" : "") + fmt(r.new_logit - r.old_logit, 3), "num"],
    ]));
    const side = el("div", undefined, "edit-sides");
    const top = [["token", tok, "tokname"], ["logit", (r) => fmt(r.logit, 3), "num"], ["p", (r) => fmt(r.probability, 3), "num"]];
    side.appendChild(logitTable("top tokens before", data.old_top, top));
    side.appendChild(logitTable("top tokens after", data.new_top, top));
    result.appendChild(side);
    result.appendChild(el("p", "KL(before ‖ after) at the last position: " + fmt(data.kl, 4) + " nats", "muted"));
  }

  run.addEventListener("click", () => {
    error.textContent = ""; status.textContent = "running…"; run.disabled = true;
    const body = {edits: [...edits].map(([key, factor]) => ({node: byKey.get(key).id, factor: factor}))};
    fetch(editUrl, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)})
      .then((r) => r.json().then((b) => { if (!r.ok) throw new Error(b.error || r.statusText); return b; }))
      .then((data) => { showResult(data); status.textContent = "done"; })
      .catch((e) => { error.textContent = String(e.message || e); status.textContent = ""; })
      .finally(() => { run.disabled = edits.size === 0; });
  });
})();
