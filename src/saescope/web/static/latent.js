// A latent's page on the server: live queries (more top examples, another quantile, more
// co-occurring latents), each an HTML fragment rendered by the server.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var latent = live.getAttribute("data-latent");
  var shown = Number(live.getAttribute("data-top"));
  var error = document.getElementById("live-error");
  var base = "/fragments/latents/" + latent;

  async function fill(id, url, append) {
    saescope.showError(error, null);
    try {
      var html = await saescope.fragment(url);
      var target = document.getElementById(id);
      if (append) target.insertAdjacentHTML("beforeend", html);
      else target.innerHTML = html;
    } catch (e) {
      saescope.showError(error, e);
    }
  }

  document.getElementById("more-examples").addEventListener("click", async function () {
    await fill("live-examples", base + "/examples?offset=" + shown + "&count=20", true);
    shown += 20;
  });
  document.getElementById("another-quantile").addEventListener("click", function () {
    var which = document.getElementById("q-which").value;
    var of = document.getElementById("q-of").value;
    fill("live-quantile", base + "/quantile?which=" + encodeURIComponent(which) + "&of=" + encodeURIComponent(of));
  });
  document.getElementById("more-cooccurring").addEventListener("click", function () {
    fill("live-related", base + "/related?kind=cooccurring&n=50");
  });
})();
