// ctforge progressive enhancement: pages work without this script.
(function () {
  "use strict";
  var root = document.documentElement;
  var stored = null;
  try { stored = localStorage.getItem("ctforge-theme"); } catch (e) {}
  if (stored) root.setAttribute("data-theme", stored);

  document.addEventListener("click", function (ev) {
    var toggle = ev.target.closest("[data-theme-toggle]");
    if (toggle) {
      var dark = root.getAttribute("data-theme") === "dark" ||
        (!root.getAttribute("data-theme") && matchMedia("(prefers-color-scheme: dark)").matches);
      var next = dark ? "light" : "dark";
      root.setAttribute("data-theme", next);
      try { localStorage.setItem("ctforge-theme", next); } catch (e) {}
      document.cookie = "ctforge_theme=" + next + "; path=/; max-age=31536000; samesite=lax";
      toggle.setAttribute("aria-pressed", String(next === "dark"));
      return;
    }
    var opener = ev.target.closest("[data-dialog-open]");
    if (opener) {
      var dlg = document.getElementById(opener.getAttribute("data-dialog-open"));
      if (dlg && dlg.showModal) { ev.preventDefault(); dlg.showModal(); }
      return;
    }
    var closer = ev.target.closest("[data-dialog-close]");
    if (closer) {
      var d = closer.closest("dialog");
      if (d) { ev.preventDefault(); d.close(); }
    }
  });

  // Confirm forms marked data-confirm when no dialog element is available.
  document.addEventListener("submit", function (ev) {
    var msg = ev.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) ev.preventDefault();
  });
})();

// Auto-refresh of live regions ([data-refresh="seconds"]): fetch the same URL, swap the region's
// content, keep scroll position and filters; only while the tab is visible and no dialog in the
// region is open or focused.
(function () {
  "use strict";
  function refresh(region) {
    if (document.visibilityState !== "visible") return;
    if (region.querySelector("dialog[open]") || region.contains(document.activeElement)) return;
    fetch(location.href, { credentials: "same-origin", headers: { "x-ctforge-refresh": "1" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById(region.id);
        if (!fresh || region.querySelector("dialog[open]")) return;
        var y = window.scrollY;
        region.innerHTML = fresh.innerHTML;
        window.scrollTo(0, y);
      })
      .catch(function () {});
  }
  document.querySelectorAll("[data-refresh][id]").forEach(function (region) {
    var secs = parseInt(region.getAttribute("data-refresh"), 10) || 30;
    setInterval(function () { refresh(region); }, secs * 1000);
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") {
      document.querySelectorAll("[data-refresh][id]").forEach(refresh);
    }
  });
  // Copy buttons ([data-copy]).
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("[data-copy]");
    if (!btn || !navigator.clipboard) return;
    navigator.clipboard.writeText(btn.getAttribute("data-copy")).then(function () {
      var old = btn.textContent; btn.textContent = "Copied"; setTimeout(function () { btn.textContent = old; }, 1500);
    });
  });
})();
