// The notifications feed, live: one server-sent-event stream from the notifications API
// (same origin, same session). Every page shows the unread count beside the menu's
// "Notifications" link; the feed page also puts each new notification at the top of its
// list (an aria-live region, so a screen reader hears it). Text goes in with textContent
// only: nothing a notification says is ever read as HTML.
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

  function linkOf(facts) {
    if (facts && facts.referral_id) return "/referrals/" + encodeURIComponent(facts.referral_id);
    if (facts && facts.org_id) return "/directory/" + encodeURIComponent(facts.org_id);
    return null;
  }

  function badge(className, text) {
    var span = document.createElement("span");
    span.className = "badge " + className;
    span.textContent = text;
    return span;
  }

  function prepend(item) {
    if (!feed || feed.querySelector('[data-notification="' + item.id + '"]')) return;
    var li = document.createElement("li");
    li.className = "feed-item unread" + (item.emergency ? " emergency" : "");
    li.setAttribute("data-notification", item.id);
    li.appendChild(badge("new", feed.getAttribute("data-new-label")));
    li.appendChild(document.createTextNode(" "));
    if (item.emergency) {
      li.appendChild(badge("urgency-emergency", feed.getAttribute("data-emergency-label")));
      li.appendChild(document.createTextNode(" "));
    }
    var title = document.createElement("span");
    title.className = "feed-title";
    var href = linkOf(item.facts);
    if (href) {
      var a = document.createElement("a");
      a.href = href;
      a.textContent = item.title;
      title.appendChild(a);
    } else {
      title.textContent = item.title;
    }
    li.appendChild(title);
    li.appendChild(document.createTextNode(" "));
    var time = document.createElement("time");
    time.setAttribute("datetime", item.created_at);
    time.textContent = new Date(item.created_at).toLocaleString(document.documentElement.lang);
    li.appendChild(time);
    feed.insertBefore(li, feed.firstChild);
    if (empty) empty.hidden = true;
  }

  var stream = new EventSource("/api/v1/notifications/stream");
  stream.addEventListener("unread", function (event) {
    showUnread(JSON.parse(event.data).unread);
  });
  stream.addEventListener("notification", function (event) {
    prepend(JSON.parse(event.data));
  });
  // Leaving the page closes the stream at once, so the server frees it.
  window.addEventListener("pagehide", function () { stream.close(); });
})();
