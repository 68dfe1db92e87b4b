// The notifications feed, live: one server-sent-event stream from the notifications API
// (same origin, same session). Every page shows the unread count beside the menu's
// "Notifications" link; the feed page also puts each new notification at the top of its
// list (an aria-live region, so a screen reader hears it), as the dashboard writes it from
// its facts in the page's language: the stream says that something arrived, not its words.
// Without JavaScript the feed page still shows everything when reloaded.
(function () {
  "use strict";
  if (!window.EventSource) return;
  var badges = document.querySelectorAll("[data-unread]");
  var totals = document.querySelectorAll("[data-unread-total]");
  var feed = document.querySelector("#feed[data-feed-live]");
  var empty = document.getElementById("feed-empty");

  function showUnread(count) {
    badges.forEach(function (badge) {
      badge.querySelector("[data-unread-number]").textContent = String(count);
      badge.hidden = count === 0;
    });
    totals.forEach(function (total) { total.textContent = String(count); });
  }

  // A new notification: ask the dashboard for the items newer than the newest one shown,
  // written in the page's language by the same partial as the page itself
  // (/notifications/items, autoescaped HTML, grouped by referral), and put them at the top:
  // into their referral's group when the page has it (the group then moves to the top), as a
  // new group otherwise. One fetch at a time; a notification arriving meanwhile asks for one
  // more round.
  var busy = false;
  var again = false;
  function newest() {
    var first = feed.querySelector("[data-notification]");
    return first ? first.getAttribute("data-notification") : "";
  }
  function refresh() {
    if (!feed) return;
    if (busy) { again = true; return; }
    busy = true;
    var after = newest();
    var url = feed.getAttribute("data-feed-live") + (after ? "?after=" + encodeURIComponent(after) : "");
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : ""; })
      .then(function (html) {
        var box = document.createElement("template");
        box.innerHTML = html;
        // Oldest group first, each put at the very top: the newest ends first.
        Array.prototype.slice.call(box.content.querySelectorAll("[data-feed-group]"))
          .reverse()
          .forEach(function (group) {
            var key = group.getAttribute("data-feed-group");
            var shown = feed.querySelector('[data-feed-group="' + CSS.escape(key) + '"]');
            if (!shown) { feed.insertBefore(group, feed.firstChild); return; }
            var list = shown.querySelector(".feed-group-items");
            Array.prototype.slice.call(group.querySelectorAll("[data-notification]"))
              .reverse()
              .forEach(function (li) {
                var id = li.getAttribute("data-notification");
                if (feed.querySelector('[data-notification="' + CSS.escape(id) + '"]')) return;
                list.insertBefore(li, list.firstChild);
              });
            feed.insertBefore(shown, feed.firstChild);
          });
        if (empty && feed.querySelector("[data-notification]")) empty.hidden = true;
      })
      .catch(function () { /* offline for a moment: the next notification tries again */ })
      .finally(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  var stream = new EventSource("/api/v1/notifications/stream");
  stream.addEventListener("unread", function (event) {
    showUnread(JSON.parse(event.data).unread);
  });
  stream.addEventListener("notification", refresh);
  // Leaving the page closes the stream at once, so the server frees it.
  window.addEventListener("pagehide", function () { stream.close(); });
})();
