// Helpers shared by the server's pages: JSON and HTML-fragment requests with readable errors.
// Fragments are HTML the server rendered (every corpus or model string escaped there); anything
// else the scripts show is written with textContent.
var saescope = (function () {
  "use strict";

  async function failure(response) {
    var text = await response.text();
    try {
      var body = JSON.parse(text);
      return body.error || body.detail && JSON.stringify(body.detail) || text;
    } catch (e) {
      return response.status + " " + response.statusText;
    }
  }

  async function request(url, options) {
    var response = await fetch(url, options || {});
    if (!response.ok) throw new Error(await failure(response));
    return response;
  }

  function post(body) {
    return { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  }

  return {
    json: async function (url, body) {
      return (await request(url, body === undefined ? {} : post(body))).json();
    },
    fragment: async function (url, body) {
      return (await request(url, body === undefined ? {} : post(body))).text();
    },
    stream: async function (url, body, signal) {
      var options = post(body);
      options.signal = signal;
      return request(url, options);
    },
    showError: function (element, error) {
      element.textContent = error ? String(error.message || error) : "";
    },
  };
})();
