// The steering playground: latents picked by search, each with a mode and a value; the
// unsteered and steered completions (and the controls) side by side, streamed token by token
// from /api/steer/stream (server-sent events read from a POST response), then the effects on the
// target tokens (what `saescope steer` reports, each number with what it covers) and, when asked,
// the sweep of strengths. Every text from the model is written with textContent.
(function () {
  "use strict";
  var init = JSON.parse(document.getElementById("steer-init").textContent);
  var edits = document.getElementById("edits");
  var hits = document.getElementById("latent-hits");
  var search = document.getElementById("latent-search");
  var output = document.getElementById("steer-output");
  var error = document.getElementById("steer-error");
  var status = document.getElementById("steer-status");
  var effectsPanel = document.getElementById("steer-effects");
  var sweepPanel = document.getElementById("steer-sweep");
  var run = document.getElementById("steer-run");
  var stop = document.getElementById("steer-stop");
  var controller = null;
  var MODES = ["add", "clamp", "scale", "ablate"];

  function element(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  function addEdit(latent, label) {
    if (edits.querySelector('[data-latent="' + latent + '"]')) return;
    var row = element("div", undefined, "steer-row");
    row.setAttribute("data-latent", String(latent));
    var link = element("a", "latent " + latent);
    link.href = "/latents/" + latent;
    row.appendChild(link);
    var mode = element("select");
    MODES.forEach(function (m) { var o = element("option", m); o.value = m; mode.appendChild(o); });
    mode.className = "mode";
    row.appendChild(mode);
    var value = element("input");
    value.type = "text"; value.value = "3x"; value.className = "value"; value.size = 6;
    row.appendChild(value);
    row.appendChild(element("span", label || "", "muted"));
    var remove = element("button", "remove", "secondary");
    remove.type = "button";
    remove.addEventListener("click", function () { row.remove(); });
    row.appendChild(remove);
    edits.appendChild(row);
  }

  var searching = 0;
  search.addEventListener("input", async function () {
    var mine = ++searching;
    var q = search.value.trim();
    if (!q) { hits.replaceChildren(); return; }
    try {
      var found = await saescope.json("/api/latents?limit=12&q=" + encodeURIComponent(q));
      if (mine !== searching) return;
      hits.replaceChildren();
      found.rows.forEach(function (r) {
        var li = element("li", r.latent + " · " + (r.explanation || r.top_tokens.join(" ")));
        li.setAttribute("data-latent", String(r.latent));
        li.addEventListener("click", function () { addEdit(r.latent, r.explanation); });
        hits.appendChild(li);
      });
    } catch (e) { saescope.showError(error, e); }
  });

  function interventions() {
    return Array.prototype.map.call(edits.querySelectorAll(".steer-row"), function (row) {
      var mode = row.querySelector(".mode").value;
      var text = row.querySelector(".value").value.trim().toLowerCase();
      var relative = text.endsWith("x");
      return {
        latent: Number(row.getAttribute("data-latent")),
        mode: mode,
        value: mode === "ablate" ? 0 : Number(relative ? text.slice(0, -1) : text),
        relative: relative,
      };
    });
  }

  function layout(prompts, variants) {
    output.replaceChildren();
    var cells = {};
    prompts.forEach(function (prompt, row) {
      var block = element("section", undefined, "panel");
      block.appendChild(element("h2", "prompt " + (row + 1)));
      var grid = element("div", undefined, "grid2");
      variants.forEach(function (name) {
        var box = element("div", undefined, "variant");
        box.appendChild(element("h3", name));
        var text = element("div", undefined, "completion");
        text.setAttribute("data-variant", name);
        text.appendChild(element("span", prompt, "prompt"));
        var generated = element("span", "", "generated");
        text.appendChild(generated);
        box.appendChild(text);
        grid.appendChild(box);
        cells[name + "/" + row] = generated;
      });
      block.appendChild(grid);
      output.appendChild(block);
    });
    return cells;
  }

  // "+1.234 (12 positions)", or "not measured: why"
  function measured(m, digits, signed) {
    if (!m) return "";
    if (m.value === null) return "not measured: " + m.not_measured;
    var text = m.value.toFixed(digits);
    if (signed && m.value >= 0) text = "+" + text;
    return text + " (" + m.covers + " " + m.unit + ")";
  }

  function table(headers, rows) {
    var t = element("table", undefined, "related");
    var head = element("tr");
    headers.forEach(function (h) { head.appendChild(element("th", h)); });
    t.appendChild(element("thead")).appendChild(head);
    var body = element("tbody");
    rows.forEach(function (cells) {
      var tr = element("tr");
      cells.forEach(function (c) { tr.appendChild(element("td", c)); });
      body.appendChild(tr);
    });
    t.appendChild(body);
    return t;
  }

  function showEffects(event) {
    effectsPanel.replaceChildren(element("h2", "Effects on the targets"));
    var targets = event.targets.tokens.map(function (t) { return JSON.stringify(t); }).join(", ");
    effectsPanel.appendChild(element("p", "targets: " + targets + " (" + event.targets.source + ")", "muted"));
    var rows = Object.keys(event.effects).map(function (name) {
      var e = event.effects[name];
      if (e.not_run !== undefined) return [name.replace("_", " "), "not run: " + e.not_run, "", ""];
      return [name.replace("_", " "), measured(e.next_token, 3, true), measured(e.kl, 4, false), measured(e.completion, 3, true)];
    });
    effectsPanel.appendChild(table(["variant", "next token Δ log p (nats)", "KL", "along the completion Δ log p"], rows));
    var notes = element("ul", undefined, "muted");
    Object.keys(event.measures).forEach(function (k) { notes.appendChild(element("li", k.replace("_", " ") + ": " + event.measures[k])); });
    effectsPanel.appendChild(notes);
    effectsPanel.hidden = false;
  }

  function showSweep(sweep) {
    if (!sweep) { sweepPanel.hidden = true; return; }
    sweepPanel.replaceChildren(element("h2", "Sweep of strengths"));
    var rows = [["none", "", "", "", "", "", measured(sweep.unsteered.perplexity, 2, false), measured(sweep.unsteered.repeated, 2, false), "unsteered"]];
    sweep.points.forEach(function (p) {
      rows.push([p.multiple + "x", measured(p.effects.next_token, 3, true), measured(p.effects.kl, 3, false),
        measured(p.effects.completion, 3, true), measured(p.random_latent, 3, true), measured(p.random_direction, 3, true),
        measured(p.perplexity, 2, false), measured(p.repeated, 2, false), p.completions.join(" | ")]);
    });
    sweepPanel.appendChild(table(["strength", "next token", "KL", "completion", "random latent", "random direction",
      "perplexity", "repeated " + sweep.ngram + "-grams", "steered text"], rows));
    var verdict = sweep.readable === null
      ? "no strength keeps the perplexity within " + sweep.perplexity_limit + "x the unsteered"
      : "strongest readable: " + sweep.readable + "x (perplexity within " + sweep.perplexity_limit + "x the unsteered)";
    sweepPanel.appendChild(element("p", verdict, "muted"));
    sweepPanel.hidden = false;
  }

  function handle(event, cells) {
    if (event.event === "token") {
      var cell = cells[event.variant + "/" + event.row];
      if (cell) cell.textContent += event.text;
    } else if (event.event === "sweep") {
      status.textContent = "sweeping: " + event.multiple + "x…";
    } else if (event.event === "done") {
      var speed = event.variants.filter(function (v) { return v.not_run === null; }).map(function (v) {
        return v.variant + " " + v.tokens_per_second.toFixed(1) + " tok/s";
      });
      status.textContent = "done · " + speed.join(" · ");
      event.variants.forEach(function (v) {
        if (v.interventions.length) status.textContent += " · " + v.variant + ": " + v.interventions.join("; ");
        if (v.not_run !== null) {
          Object.keys(cells).forEach(function (key) {
            if (key.indexOf(v.variant + "/") === 0) cells[key].textContent = " (not run: " + v.not_run + ")";
          });
        }
      });
      showEffects(event);
      showSweep(event.sweep);
    } else if (event.event === "error") {
      saescope.showError(error, event.error);
    }
  }

  async function read(response, cells) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    for (;;) {
      var chunk = await reader.read();
      if (chunk.done) break;
      buffer += decoder.decode(chunk.value, { stream: true });
      var parts = buffer.split("\n\n");
      buffer = parts.pop();
      parts.forEach(function (part) {
        part.split("\n").forEach(function (line) {
          if (line.indexOf("data: ") === 0) handle(JSON.parse(line.slice(6)), cells);
        });
      });
    }
  }

  document.getElementById("steer-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    saescope.showError(error, null);
    var prompts = document.getElementById("prompts").value.split("\n").filter(function (p) { return p.trim(); });
    var controls = document.getElementById("controls").checked;
    var body = {
      prompts: prompts,
      interventions: interventions(),
      max_new_tokens: Number(document.getElementById("max-new-tokens").value),
      temperature: Number(document.getElementById("temperature").value),
      top_p: Number(document.getElementById("top-p").value),
      seed: Number(document.getElementById("seed").value),
      controls: controls,
      chat: document.getElementById("chat").checked,
      targets: document.getElementById("targets").value.split(",").filter(function (t) { return t.trim(); }),
      sweep: document.getElementById("sweep").value.split(/[\s,]+/).filter(function (t) { return t; })
        .map(function (t) { return Number(t.toLowerCase().replace(/x$/, "")); }),
    };
    effectsPanel.hidden = true; sweepPanel.hidden = true;
    var names = ["unsteered", "steered"].concat(controls ? ["random latent", "random direction"] : []);
    controller = new AbortController();
    run.disabled = true; stop.disabled = false;
    status.textContent = "generating…";
    try {
      var response = await saescope.stream("/api/steer/stream", body, controller.signal);
      await read(response, layout(prompts, names));
    } catch (e) {
      if (e.name !== "AbortError") { saescope.showError(error, e); status.textContent = ""; }
      else status.textContent = "stopped";
    } finally {
      run.disabled = false; stop.disabled = true; controller = null;
    }
  });
  stop.addEventListener("click", function () { if (controller) controller.abort(); });

  (init.latents || []).forEach(function (l) { addEdit(l, ""); });
})();
