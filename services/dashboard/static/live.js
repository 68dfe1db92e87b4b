// Keeps a list up to date without reloading the page: every few seconds, fetch the element's
// data-live address (same origin, same session) and put the new rows in if they changed.
// The container is an aria-live region, so a screen reader hears that something arrived.
// Without JavaScript the page still works: reloading it shows the same rows.
(function () {
  "use strict";
  var EVERY_MS = 3000;
  document.querySelectorAll("[data-live]").forEach(function (box) {
    var url = box.getAttribute("data-live");
    var last = box.innerHTML.trim();
    var busy = false;
    function refresh() {
      if (busy || document.hidden) return;
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (html !== null && html.trim() !== last) {
            last = html.trim();
            box.innerHTML = html;
          }
        })
        .catch(function () { /* offline for a moment: the next round tries again */ })
        .finally(function () { busy = false; });
    }
    window.setInterval(refresh, EVERY_MS);
  });
})();
