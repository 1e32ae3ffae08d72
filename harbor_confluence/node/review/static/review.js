/* Live updates for the review page (progressive enhancement: everything works without it).
   Server-sent events say a ticket changed; the page fetches itself and swaps in the parts
   that show state, keeping anything an operator is typing while the ticket is unchanged. */
"use strict";
(function () {
  var body = document.body;
  var url = body.getAttribute("data-events");
  if (!url || !window.EventSource || !window.fetch || !window.DOMParser) {
    return;
  }
  var page = body.getAttribute("data-page");
  var ticket = body.getAttribute("data-ticket");
  var live = document.getElementById("live");
  var timer = null;
  var busy = false;
  var again = false;
  var source = new EventSource(url, { withCredentials: true });

  function announce(text) {
    if (live) {
      live.textContent = text;
    }
  }

  function swap(doc, id) {
    var fresh = doc.getElementById(id);
    var old = document.getElementById(id);
    if (fresh && old) {
      old.replaceWith(document.importNode(fresh, true));
      return true;
    }
    return false;
  }

  function stateOf(root, id) {
    var el = root.getElementById(id);
    return el ? el.getAttribute("data-state") : null;
  }

  function refresh() {
    timer = null;
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    fetch(window.location.href, {
      credentials: "same-origin",
      cache: "no-store",
      redirect: "manual",
      headers: { "X-Harbor-Live": "1" }
    }).then(function (response) {
      if (response.type === "opaqueredirect" || !response.ok) {
        throw new Error("signed out");
      }
      return response.text();
    }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      if (page === "queue") {
        swap(doc, "rows");
        swap(doc, "pending-count");
        announce("The queue was updated.");
      } else if (page === "ticket") {
        var before = stateOf(document, "status");
        swap(doc, "status");
        if (stateOf(doc, "actions") !== stateOf(document, "actions")) {
          swap(doc, "actions");
        }
        var after = stateOf(document, "status");
        if (after && after !== before) {
          announce("This ticket is now " + after + ".");
        }
      }
      body.setAttribute("data-live-updated", String(Date.now()));
    }).catch(function () {
      source.close();
      announce("Live updates stopped: your session may have ended. Reload the page.");
    }).then(function () {
      busy = false;
      if (again) {
        again = false;
        schedule();
      }
    });
  }

  function schedule() {
    if (!timer) {
      timer = window.setTimeout(refresh, 150);
    }
  }

  source.addEventListener("ticket", function (event) {
    var data = null;
    try {
      data = JSON.parse(event.data);
    } catch (err) {
      return;
    }
    if (page === "ticket" && data && data.id !== ticket) {
      return;
    }
    schedule();
  });
  source.addEventListener("resync", schedule);
  source.addEventListener("signed-out", function () {
    source.close();
    announce("Your session has ended. Reload the page to sign in again.");
  });
})();
