// The sortable, searchable list of latents. The rows come from JSON embedded in the page
// (<script type="application/json" id="latent-rows">); every value is written with textContent,
// never as HTML. Works from file:// with no server.
(function () {
  "use strict";
  var SHOWN = 1000; // rows put in the table at once; the rest are reached by searching or sorting
  var table = document.getElementById("latents");
  var body = table.querySelector("tbody");
  var search = document.getElementById("search");
  var hideDead = document.getElementById("hide-dead");
  var minFreq = document.getElementById("min-freq");
  var maxFreq = document.getElementById("max-freq");
  var shown = document.getElementById("shown");
  var href = table.getAttribute("data-href");
  var rows = JSON.parse(document.getElementById("latent-rows").textContent);
  var sortKey = "f";
  var descending = true;

  function text(value, digits) {
    if (value === null || value === undefined) return "–";
    if (typeof value === "number") return digits === undefined ? String(value) : value.toPrecision(digits);
    return value;
  }

  function cell(tr, value, cls) {
    var td = document.createElement("td");
    td.textContent = value;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function row(r) {
    var tr = document.createElement("tr");
    var link = document.createElement("a");
    link.href = href.replace("{}", String(r.l));
    link.textContent = String(r.l);
    cell(tr, "", "num").appendChild(link);
    cell(tr, r.f > 0 ? (r.f * 100).toPrecision(3) + "%" : "0", "num");
    cell(tr, text(r.m, 3), "num");
    cell(tr, text(r.s, 2), "num");
    cell(tr, r.e || "");
    cell(tr, r.t || "", "tokname");
    return tr;
  }

  function percent(input, otherwise) {
    return input.value === "" ? otherwise : Number(input.value) / 100;
  }

  function matches(r, words, low, high) {
    if (hideDead.checked && !(r.f > 0)) return false;
    if (r.f < low || r.f > high) return false;
    if (!words.length) return true;
    var hay = (String(r.l) + " " + (r.e || "") + " " + (r.t || "")).toLowerCase();
    return words.every(function (w) { return hay.indexOf(w) >= 0; });
  }

  function compare(a, b) {
    var x = a[sortKey], y = b[sortKey];
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    var order = typeof x === "string" ? x.localeCompare(y) : x - y;
    return descending ? -order : order;
  }

  function draw() {
    var words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    var low = percent(minFreq, 0), high = percent(maxFreq, Infinity);
    var found = rows.filter(function (r) { return matches(r, words, low, high); }).sort(compare);
    var fragment = document.createDocumentFragment();
    found.slice(0, SHOWN).forEach(function (r) { fragment.appendChild(row(r)); });
    body.replaceChildren(fragment);
    shown.textContent = found.length > SHOWN
      ? "showing " + SHOWN + " of " + found.length + " matching latents"
      : found.length + " matching latents";
    table.querySelectorAll("th").forEach(function (th) {
      th.classList.toggle("sorted", th.getAttribute("data-key") === sortKey);
      th.classList.toggle("desc", th.getAttribute("data-key") === sortKey && descending);
    });
  }

  table.querySelectorAll("th").forEach(function (th) {
    th.addEventListener("click", function () {
      var key = th.getAttribute("data-key");
      descending = key === sortKey ? !descending : key !== "l" && key !== "e" && key !== "t";
      sortKey = key;
      draw();
    });
  });
  search.addEventListener("input", draw);
  hideDead.addEventListener("change", draw);
  minFreq.addEventListener("input", draw);
  maxFreq.addEventListener("input", draw);
  var asked = new URLSearchParams(window.location.search).get("q");
  if (asked) search.value = asked;
  draw();
})();
