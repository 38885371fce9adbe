// stepwell web UI: live updates over Server-Sent Events, lazy iteration lists.
// Pages work without this script; it only keeps them current and loads lazily.
"use strict";
(function () {
  var FRAGMENT = { "X-Stepwell-Fragment": "1" };

  function fetchFragment(url) {
    return fetch(url, { headers: FRAGMENT, credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.text();
    });
  }

  // <details data-src> loads its content when opened; links inside stay inside it.
  function loadLazy(details, url) {
    var box = details.querySelector(".lazy");
    if (!box) { return; }
    box.setAttribute("aria-busy", "true");
    fetchFragment(url || details.getAttribute("data-src")).then(function (html) {
      box.innerHTML = html;
      box.removeAttribute("aria-busy");
      details.setAttribute("data-loaded", url || details.getAttribute("data-src"));
    }).catch(function () {
      box.removeAttribute("aria-busy");
    });
  }

  function wireLazy(root) {
    root.querySelectorAll("details[data-src]").forEach(function (details) {
      if (details.open && !details.hasAttribute("data-loaded")) { loadLazy(details); }
      details.addEventListener("toggle", function () {
        if (details.open && !details.hasAttribute("data-loaded")) { loadLazy(details); }
      });
    });
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest(".lazy a[href*='/iterations?']");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey) { return; }
    var details = link.closest("details[data-src]");
    if (!details) { return; }
    event.preventDefault();
    loadLazy(details, link.getAttribute("href"));
  });

  // Swap the live region, keeping open <details>, loaded lists and scroll position.
  function refresh(live) {
    var active = document.activeElement;
    if (active && live.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName)) {
      live.setAttribute("data-stale", "1");
      return;
    }
    var open = {};
    live.querySelectorAll("details[id]").forEach(function (d) {
      if (d.open) { open[d.id] = d.getAttribute("data-loaded") || true; }
    });
    var focusedHref = active && live.contains(active) ? active.getAttribute("href") : null;
    fetchFragment(window.location.href).then(function (html) {
      live.innerHTML = html;
      live.removeAttribute("data-stale");
      Object.keys(open).forEach(function (id) {
        var d = document.getElementById(id);
        if (!d) { return; }
        d.open = true;
        if (d.hasAttribute("data-src")) {
          loadLazy(d, open[id] === true ? null : open[id]);
        }
      });
      wireLazy(live);
      if (focusedHref) {
        var again = live.querySelector("a[href='" + CSS.escape(focusedHref) + "']");
        if (again) { again.focus(); }
      }
      document.dispatchEvent(new CustomEvent("stepwell:updated"));
    }).catch(function () { /* the next change retries */ });
  }

  function listen(live) {
    var url = live.getAttribute("data-events");
    if (!url || !window.EventSource) { return; }
    var source = new EventSource(url);
    source.addEventListener("change", function () { refresh(live); });
    source.addEventListener("end", function () {
      source.close();
      refresh(live);
    });
    live.addEventListener("focusout", function () {
      if (live.getAttribute("data-stale")) { setTimeout(function () { refresh(live); }, 50); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var live = document.getElementById("live");
    wireLazy(document);
    if (live) { listen(live); }
  });
})();
