// The text inspector: tokens shaded by a latent (a fragment the server renders), each token's
// top latents on hover, and the effects of the text's latents on a next token.
(function () {
  "use strict";
  var form = document.getElementById("inspect-form");
  var text = document.getElementById("text");
  var latent = document.getElementById("latent");
  var result = document.getElementById("inspect-result");
  var error = document.getElementById("inspect-error");
  var pinned = null;

  function show(index) {
    result.querySelectorAll(".token-latents").forEach(function (panel) {
      panel.classList.toggle("open", panel.getAttribute("data-for") === index);
    });
    var hint = result.querySelector(".hint");
    if (hint) hint.style.display = index === null ? "" : "none";
  }

  function bindTokens() {
    result.querySelectorAll(".tok[data-i]").forEach(function (tok) {
      var index = tok.getAttribute("data-i");
      tok.addEventListener("mouseenter", function () { if (pinned === null) show(index); });
      tok.addEventListener("click", function () {
        result.querySelectorAll(".tok.picked").forEach(function (t) { t.classList.remove("picked"); });
        pinned = pinned === index ? null : index;
        if (pinned !== null) tok.classList.add("picked");
        show(pinned === null ? index : pinned);
      });
    });
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    saescope.showError(error, null);
    var body = { text: text.value };
    if (latent.value !== "") body.latent = Number(latent.value);
    try {
      result.innerHTML = await saescope.fragment("/fragments/inspect", body);
      pinned = null;
      bindTokens();
    } catch (e) {
      result.textContent = "";
      saescope.showError(error, e);
    }
  });

  document.getElementById("effects-run").addEventListener("click", async function () {
    var out = document.getElementById("effects-result");
    var failed = document.getElementById("effects-error");
    saescope.showError(failed, null);
    var target = document.getElementById("target").value;
    var body = { text: text.value };
    if (target !== "") body.target = target;
    out.textContent = "computing…";
    try {
      out.innerHTML = await saescope.fragment("/fragments/effects", body);
    } catch (e) {
      out.textContent = "";
      saescope.showError(failed, e);
    }
  });

  if (text.value.trim() !== "") form.requestSubmit();
})();
