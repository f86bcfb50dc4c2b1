// Live parts of the dashboard: every element with data-live="URL" is re-fetched every
// data-every milliseconds and replaced by the server-rendered fragment (the same template
// the page was drawn with, escaped on the server). No markup is built here. A dashboard
// that goes away (dispatcher restart with `triage serve --dashboard`) is retried until
// it answers again; the page never needs a reload.
"use strict";
(function () {
  var status = document.getElementById("live-status");

  function say(text, bad) {
    if (!status) { return; }
    status.textContent = text;
    status.classList.toggle("bad", !!bad);
  }

  function clock() {
    return new Date().toISOString().substring(11, 19) + " UTC";
  }

  function follow(el) {
    var url = el.getAttribute("data-live");
    var every = parseInt(el.getAttribute("data-every") || "1000", 10);
    var last = null;

    function tick() {
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: { "X-Requested-With": "dashboard" } })
        .then(function (r) {
          if (r.status === 401) { say("token needed: reload the page to log in", true); return null; }
          if (!r.ok) { throw new Error("HTTP " + r.status); }
          return r.text();
        })
        .then(function (html) {
          if (html === null) { return; }
          if (html !== last) {
            el.innerHTML = html;
            last = html;
          }
          el.setAttribute("data-refreshed", String(Date.now()));
          say("live · " + clock(), false);
        })
        .catch(function () { say("dashboard unreachable since " + clock() + ", retrying…", true); })
        .then(function () { window.setTimeout(tick, every); });
    }
    window.setTimeout(tick, every);
  }

  var live = document.querySelectorAll("[data-live]");
  for (var i = 0; i < live.length; i++) { follow(live[i]); }
})();
