// The status page's live update: every second, fetch the live part of the
// page as it is filtered (?part=live, rendered by the same template as the
// first response) and swap it in; no page reload, no other host.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var form = document.getElementById("filters");
  var state = document.getElementById("state");
  var every = 1000;
  var busy = false, last = "", lostSince = 0, timer = 0;

  function query() {
    var p = new URLSearchParams(location.search);
    p.delete("part");
    return p;
  }
  function stamp(d) {
    return d.toISOString().slice(11, 19) + "Z";
  }
  function say(text, lost) {
    state.textContent = text;
    state.className = lost ? "lost" : "muted";
  }
  // Keep the form in step with the address (after back/forward, a link).
  function syncForm() {
    var p = query();
    form.elements.q.value = p.get("q") || "";
    form.elements.service.value = p.get("service") || "";
  }
  function refresh() {
    if (busy) return;
    busy = true;
    var p = query();
    p.set("part", "live");
    fetch("/?" + p.toString(), { cache: "no-store", credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        lostSince = 0;
        // Hold still while the reader selects text in the page.
        var sel = window.getSelection && String(window.getSelection());
        if (html !== last && !sel) {
          live.innerHTML = html;
          last = html;
        }
        say("live · updated " + stamp(new Date()), false);
      })
      .catch(function (e) {
        if (!lostSince) lostSince = Date.now();
        say("connection lost since " + stamp(new Date(lostSince)) + " (" + e.message + "); retrying, the page shows the last data", true);
      })
      .then(function () {
        busy = false;
      });
  }
  function go(search, push) {
    var url = location.pathname + (search ? "?" + search : "");
    if (push) history.pushState(null, "", url);
    else history.replaceState(null, "", url);
    refresh();
  }
  function fromForm() {
    var p = new URLSearchParams();
    var q = form.elements.q.value.trim(), s = form.elements.service.value.trim();
    if (q) p.set("q", q);
    if (s) p.set("service", s);
    return p.toString();
  }
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    go(fromForm(), true);
  });
  form.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { go(fromForm(), false); }, 250);
  });
  // Paging and "events of this service" links stay in the page.
  live.addEventListener("click", function (e) {
    var a = e.target.closest && e.target.closest("a[href^='?']");
    if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    go(a.getAttribute("href").slice(1), true);
    syncForm();
  });
  window.addEventListener("popstate", function () {
    syncForm();
    refresh();
  });
  say("live", false);
  setInterval(refresh, every);
})();
