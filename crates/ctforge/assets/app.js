// ctforge progressive enhancement: pages work without this script.
// Theme: the page's head applies a stored choice before first paint (components::layout);
// without one the stylesheet follows prefers-color-scheme.
(function () {
  "use strict";
  var root = document.documentElement;
  var dialogs = 'dialog[open]';

  function isDark() {
    var t = root.getAttribute("data-theme");
    return t === "dark" || (!t && matchMedia("(prefers-color-scheme: dark)").matches);
  }
  function syncToggles() {
    document.querySelectorAll("[data-theme-toggle]").forEach(function (b) {
      b.hidden = false;
      b.setAttribute("aria-pressed", String(isDark()));
    });
  }
  syncToggles();
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", syncToggles);

  function focusables(el) {
    return Array.prototype.filter.call(
      el.querySelectorAll('a[href], button, input, select, textarea, summary, [tabindex]:not([tabindex="-1"])'),
      function (n) { return !n.disabled && !n.hidden && n.type !== "hidden" && n.getClientRects().length > 0; });
  }

  document.addEventListener("click", function (ev) {
    var toggle = ev.target.closest("[data-theme-toggle]");
    if (toggle) {
      var next = isDark() ? "light" : "dark";
      root.setAttribute("data-theme", next);
      try { localStorage.setItem("ctforge-theme", next); } catch (e) {}
      syncToggles();
      return;
    }
    var opener = ev.target.closest("[data-dialog-open]");
    if (opener) {
      var dlg = document.getElementById(opener.getAttribute("data-dialog-open"));
      if (dlg && dlg.showModal) {
        ev.preventDefault();
        dlg.ctforgeOpener = opener;
        dlg.showModal();
      }
      return;
    }
    var closer = ev.target.closest("[data-dialog-close]");
    if (closer) {
      var d = closer.closest("dialog");
      if (d) { ev.preventDefault(); d.close(); }
    }
  });

  // A closed dialog (Cancel, Escape) gives focus back to the button that opened it.
  document.addEventListener("close", function (ev) {
    var d = ev.target;
    if (d.tagName === "DIALOG" && d.ctforgeOpener && document.contains(d.ctforgeOpener)) {
      d.ctforgeOpener.focus();
    }
  }, true);

  document.addEventListener("keydown", function (ev) {
    // Tab and Shift+Tab cycle inside an open modal dialog.
    if (ev.key === "Tab") {
      var open = document.querySelector(dialogs);
      if (!open) return;
      var items = focusables(open);
      if (!items.length) { ev.preventDefault(); return; }
      var first = items[0], last = items[items.length - 1];
      var inside = open.contains(document.activeElement);
      if (ev.shiftKey && (!inside || document.activeElement === first)) { ev.preventDefault(); last.focus(); }
      else if (!ev.shiftKey && (!inside || document.activeElement === last)) { ev.preventDefault(); first.focus(); }
      return;
    }
    // Tabs (role=tablist of links): arrows, Home and End move focus; Enter or Space opens.
    var tab = ev.target.closest && ev.target.closest('[role="tab"]');
    if (!tab) return;
    var list = Array.prototype.slice.call(tab.closest('[role="tablist"]').querySelectorAll('[role="tab"]'));
    var i = list.indexOf(tab), to = -1;
    if (ev.key === "ArrowRight" || ev.key === "ArrowDown") to = (i + 1) % list.length;
    else if (ev.key === "ArrowLeft" || ev.key === "ArrowUp") to = (i - 1 + list.length) % list.length;
    else if (ev.key === "Home") to = 0;
    else if (ev.key === "End") to = list.length - 1;
    else if (ev.key === " ") { ev.preventDefault(); tab.click(); return; }
    if (to < 0) return;
    ev.preventDefault();
    list.forEach(function (t, j) { t.tabIndex = j === to ? 0 : -1; });
    list[to].focus();
  });
  // Roving tab stop: only the selected tab is in the Tab order; arrows reach the others.
  document.querySelectorAll('[role="tablist"]').forEach(function (list) {
    list.querySelectorAll('[role="tab"]').forEach(function (t) {
      t.tabIndex = t.getAttribute("aria-selected") === "true" ? 0 : -1;
    });
  });

  // Confirm forms marked data-confirm when no dialog element is available.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var msg = form.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) { ev.preventDefault(); return; }
    // Search forms leave empty filters out of the URL (the server treats both the same).
    if (form.getAttribute("role") === "search" && (form.method || "get").toLowerCase() === "get") {
      Array.prototype.forEach.call(form.elements, function (el) {
        if (el.name && !el.value && !el.disabled) {
          el.disabled = true;
          setTimeout(function () { el.disabled = false; }, 0);
        }
      });
    }
  });
})();

// Auto-refresh of live regions ([data-refresh="seconds"]): fetch the same URL, swap the region's
// content, keep scroll position and filters; only while the tab is visible and no dialog in the
// region is open or focused.
(function () {
  "use strict";
  function refresh(region) {
    if (document.visibilityState !== "visible") return Promise.resolve(false);
    if (region.querySelector("dialog[open]") || region.contains(document.activeElement)) return Promise.resolve(false);
    return fetch(location.href, { credentials: "same-origin", headers: { "x-ctforge-refresh": "1" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return false;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById(region.id);
        if (!fresh || region.querySelector("dialog[open]")) return false;
        var y = window.scrollY;
        var picked = {};
        region.querySelectorAll("[data-bulk-pick]").forEach(function (b) { picked[b.value] = b.checked; });
        region.innerHTML = fresh.innerHTML;
        region.querySelectorAll("[data-bulk-pick]").forEach(function (b) { if (b.value in picked) b.checked = picked[b.value]; });
        region.dispatchEvent(new Event("change", { bubbles: true }));
        window.scrollTo(0, y);
        return true;
      })
      .catch(function () { return false; });
  }
  // What the timer runs, callable directly (tests): resolves to how many regions were swapped.
  window.ctforgeRefresh = function () {
    var regions = Array.prototype.slice.call(document.querySelectorAll("[data-refresh][id]"));
    return Promise.all(regions.map(refresh)).then(function (r) { return r.filter(Boolean).length; });
  };
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

// The container page follows the container's events live: ONE EventSource per page (never
// beside a job stream: browsers allow six HTTP/1.1 connections per host, and a page holding
// several streams starves its own forms), closed when the page is left. A new event is added
// to the Events list at once, then the page region is refreshed (status badge, actions).
(function () {
  "use strict";
  var region = document.querySelector("[data-container-events]");
  if (!region || !window.EventSource || document.querySelector("[data-job-stream]")) return;
  var es = new EventSource(region.getAttribute("data-container-events"));
  var pending = null;
  function refreshSoon() {
    if (pending) return;
    pending = setTimeout(function () {
      pending = null;
      if (window.ctforgeRefresh) window.ctforgeRefresh();
    }, 300);
  }
  function parse(ev) {
    try { return JSON.parse(ev.data); } catch (err) { return null; }
  }
  es.addEventListener("container", function (ev) {
    var e = parse(ev);
    if (!e) return;
    var list = region.querySelector("[data-live-events]");
    if (list) {
      var li = document.createElement("li");
      li.className = "event event-info";
      li.setAttribute("data-event-id", String(e.id));
      var head = document.createElement("div");
      head.className = "row";
      var kind = document.createElement("strong");
      kind.textContent = String(e.kind || "").replace(/_/g, " ");
      var when = document.createElement("span");
      when.className = "muted";
      when.textContent = new Date(e.at).toLocaleString() + (e.actor ? " · " + e.actor : "");
      head.appendChild(kind); head.appendChild(document.createTextNode(" ")); head.appendChild(when);
      var msg = document.createElement("div");
      msg.textContent = e.message || "";
      var body = document.createElement("div");
      body.appendChild(head); body.appendChild(msg);
      li.appendChild(body);
      list.insertBefore(li, list.firstChild);
    }
    refreshSoon();
  });
  es.addEventListener("job", function (ev) {
    var e = parse(ev);
    if (e && /^(done|error|cancelled)$/.test(e.kind)) refreshSoon();
  });
  window.addEventListener("pagehide", function () { es.close(); });
})();

// Job progress: follow the SSE stream, keep the log scrolled unless the reader scrolled up.
// Every SSE message carries the whole event envelope `{job_id, seq, kind, step, data, at}`;
// `data` is the payload (the line for `log`, an object for the others).
(function () {
  "use strict";
  var box = document.querySelector("[data-job-stream]");
  if (!box || !window.EventSource) return;
  var log = box.querySelector("[data-job-log]");
  var follow = true;
  var followLabel = box.querySelector("[data-log-follow]");
  log.addEventListener("scroll", function () {
    follow = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    if (followLabel) followLabel.textContent = follow ? "following" : "paused (scroll down to follow)";
  });
  function scroll() { if (follow) log.scrollTop = log.scrollHeight; }
  scroll();
  function level(text) {
    if (/^(error|fatal|e:)|\b(error|failed|fatal)\b/i.test(text)) return "log-err";
    if (/^(warn|w:)|\bwarning\b/i.test(text)) return "log-warn";
    return "";
  }
  function line(text, cls) {
    var span = document.createElement("span");
    span.className = cls || level(text);
    span.textContent = text + "\n";
    log.appendChild(span);
    var q = box.querySelector("[data-log-search]");
    if (q && q.value) span.hidden = span.textContent.toLowerCase().indexOf(q.value.toLowerCase()) < 0;
    scroll();
  }
  function steps() { return Array.prototype.slice.call(box.querySelectorAll("[data-step]")); }
  function setStep(step, cls) {
    var li = box.querySelector('[data-step="' + (window.CSS && CSS.escape ? CSS.escape(step) : step) + '"]');
    if (!li) return;
    li.className = cls;
    if (cls === "current") li.setAttribute("aria-current", "step"); else li.removeAttribute("aria-current");
  }
  function setCurrent(text) {
    var c = box.querySelector("[data-job-current]");
    if (c) c.textContent = text;
  }
  var shown = 0;
  function setPercent(p) {
    if (typeof p !== "number" || p < shown) return;
    shown = Math.min(100, Math.round(p));
    var bar = box.querySelector("[data-job-percent]");
    if (bar) { bar.value = shown; bar.textContent = shown + "%"; }
    var label = box.querySelector("[data-job-percent-label]");
    if (label) label.textContent = shown + " %";
  }
  var initial = box.querySelector("[data-job-percent]");
  if (initial) shown = Number(initial.value) || 0;
  function setState(state, tone) {
    box.setAttribute("data-state", state);
    var s = box.querySelector("[data-job-state] .badge");
    if (s) { s.className = "badge badge-" + tone; s.textContent = state; }
  }
  // "attempt N" counts the user's tries (retries + 1); the server renders it, a retry adds one.
  function nextAttempt() {
    var a = box.querySelector("[data-job-attempt]");
    if (!a) return;
    var n = parseInt(a.textContent.replace(/\D+/g, ""), 10) || 1;
    a.textContent = "attempt " + (n + 1);
  }
  var after = box.getAttribute("data-last-seq") || "0";
  var es = new EventSource(box.getAttribute("data-job-stream") + "?after=" + encodeURIComponent(after));
  function envelope(ev) {
    var e;
    try { e = JSON.parse(ev.data); } catch (err) { e = null; }
    if (!e || typeof e !== "object") return { kind: ev.type, step: null, data: ev.data };
    return e;
  }
  function payload(e) { return e.data && typeof e.data === "object" ? e.data : {}; }
  es.addEventListener("start", function (ev) {
    var e = envelope(ev), d = payload(e);
    setState("running", "info");
    (d.completed || []).forEach(function (s) { setStep(s, "done"); });
  });
  es.addEventListener("log", function (ev) {
    var e = envelope(ev);
    line(typeof e.data === "string" ? e.data : String(e.data && e.data.line || ""));
  });
  es.addEventListener("step", function (ev) {
    var e = envelope(ev), d = payload(e), name = e.step || d.name;
    if (!name) return;
    setState("running", "info");
    steps().forEach(function (li) { if (li.className === "current") li.className = "done"; });
    setStep(name, "current");
    var total = d.total || steps().length;
    setCurrent("Step " + ((d.index || 0) + 1) + " of " + total + ": " + name);
    if (total) setPercent(Math.floor((d.index || 0) * 100 / total));
    line("── step " + name + " ──", "muted");
  });
  es.addEventListener("complete", function (ev) {
    var e = envelope(ev), d = payload(e);
    if (e.step) setStep(e.step, "done");
    setPercent(d.percent);
  });
  es.addEventListener("progress", function (ev) { setPercent(payload(envelope(ev)).percent); });
  es.addEventListener("retry", function (ev) {
    var d = payload(envelope(ev));
    setState("queued", "warn");
    nextAttempt();
    line("── retry from " + (d.from_step || "the start") + (d.by ? " by " + d.by : "") + " ──", "muted");
  });
  es.addEventListener("result", function (ev) { document.dispatchEvent(new CustomEvent("ctforge:job-result", { detail: envelope(ev) })); });
  function finish(state, tone) {
    es.close();
    setState(state, tone);
    setTimeout(function () { window.location.reload(); }, 600);
  }
  es.addEventListener("done", function () {
    setPercent(100);
    steps().forEach(function (li) { li.className = "done"; li.removeAttribute("aria-current"); });
    setCurrent("All steps done");
    finish("succeeded", "ok");
  });
  es.addEventListener("error", function (ev) {
    if (!ev.data) return; // a connection error: EventSource reconnects by itself
    var e = envelope(ev), d = payload(e), step = e.step || d.step;
    if (step) setStep(step, "failed");
    line("error: " + (d.message || (typeof e.data === "string" ? e.data : "the job failed")), "log-err");
    finish("failed", "err");
  });
  es.addEventListener("cancelled", function (ev) {
    var d = payload(envelope(ev));
    line("cancelled" + (d.by ? " by " + d.by : ""), "log-warn");
    finish("cancelled", "err");
  });
  var search = box.querySelector("[data-log-search]");
  if (search) search.addEventListener("input", function () {
    var q = search.value.toLowerCase();
    Array.prototype.forEach.call(log.children, function (el) { el.hidden = q && el.textContent.toLowerCase().indexOf(q) < 0; });
  });
  var copy = box.querySelector("[data-log-copy]");
  if (copy) copy.addEventListener("click", function () {
    if (navigator.clipboard) navigator.clipboard.writeText(log.textContent);
  });
})();

// Bulk actions on the dashboard (form[data-bulk-form]): the selection count, "select all on this
// page", and destructive actions confirmed in a dialog naming how many and which containers.
// Without this script the form still posts and the server asks for confirmation on a page.
(function () {
  "use strict";
  var form = document.querySelector("form[data-bulk-form]");
  if (!form) return;
  function boxes() { return Array.prototype.slice.call(document.querySelectorAll("[data-bulk-pick]")); }
  function picked() { return boxes().filter(function (b) { return b.checked; }); }
  function count(n) { return n === 1 ? "1 container" : n + " containers"; }
  var all = form.querySelector("[data-bulk-all]");
  if (all) all.setAttribute("role", "button");
  function update() {
    var n = picked().length, total = boxes().length;
    // Nothing ticked, nothing to act on: the action buttons wait for a selection.
    form.querySelectorAll("button[data-bulk-action]").forEach(function (b) { b.disabled = n === 0; });
    var label = form.querySelector("[data-bulk-count]");
    if (label) label.textContent = n === 0 ? "Tick containers to act on several at once." : count(n) + " selected.";
    if (all) {
      var every = total > 0 && n === total;
      all.textContent = every ? "Clear selection" : "Select all on this page";
      all.setAttribute("aria-pressed", String(every));
    }
  }
  document.addEventListener("change", function (ev) {
    if (ev.target.closest && (ev.target.matches("[data-bulk-pick]") || ev.target.id === "ct-live")) update();
  });
  if (all) all.addEventListener("click", function (ev) {
    ev.preventDefault();
    var every = boxes().length > 0 && picked().length === boxes().length;
    boxes().forEach(function (b) { b.checked = !every; });
    update();
  });
  form.addEventListener("click", function (ev) {
    var btn = ev.target.closest("button[data-bulk-confirm]");
    if (!btn) return;
    var dlg = document.getElementById(btn.getAttribute("data-bulk-confirm"));
    var chosen = picked();
    if (!dlg || !dlg.showModal || chosen.length === 0) return; // the server answers
    ev.preventDefault();
    var names = chosen.map(function (b) { return b.getAttribute("data-name"); }).join(", ");
    function fill(t) { return t.split("{n}").join(count(chosen.length)).split("{names}").join(names); }
    dlg.querySelector("h2").textContent = fill(btn.getAttribute("data-bulk-title"));
    dlg.querySelector("p").textContent = fill(btn.getAttribute("data-bulk-text"));
    var target = dlg.querySelector("form");
    target.querySelectorAll("input[data-bulk-id]").forEach(function (i) { i.remove(); });
    chosen.forEach(function (b) {
      var i = document.createElement("input");
      i.type = "hidden"; i.name = "ids"; i.value = b.value; i.setAttribute("data-bulk-id", "");
      target.appendChild(i);
    });
    dlg.showModal();
  });
  update();
})();

// Bulk job page: fill in each container's row as its `result` event arrives (relayed by the
// job progress script above as a `ctforge:job-result` DOM event).
(function () {
  "use strict";
  var table = document.querySelector("[data-bulk-results]");
  if (!table) return;
  document.addEventListener("ctforge:job-result", function (ev) {
    var d = ev.detail;
    if (d && d.data && typeof d.data === "object") d = d.data;
    if (!d || !d.id) return;
    table.querySelectorAll("tr[data-result-id]").forEach(function (row) {
      if (row.getAttribute("data-result-id") !== d.id) return;
      var name = row.querySelector("[data-result-name]");
      if (name && d.vmid != null) {
        var ct = "CT " + d.vmid;
        var text = d.hostname && d.hostname !== ct ? d.hostname + " (" + ct + ")" : ct;
        var link = document.createElement(d.key ? "a" : "span");
        if (d.key) link.href = "/containers/" + d.key;
        link.textContent = text;
        name.replaceChildren(link);
      }
      var outcome = row.querySelector("[data-result-outcome]");
      if (outcome) {
        var badge = document.createElement("span");
        badge.className = "badge badge-" + (d.ok ? "ok" : "err");
        badge.textContent = d.ok ? "ok" : "failed";
        outcome.replaceChildren(badge);
      }
      var status = row.querySelector("[data-result-status]");
      if (status) status.textContent = d.status || "";
      var message = row.querySelector("[data-result-message]");
      if (message) message.textContent = d.message || "";
    });
    var summary = table.querySelector("[data-bulk-summary]");
    if (summary) {
      var rows = table.querySelectorAll("tr[data-result-id]").length;
      var ok = table.querySelectorAll("[data-result-outcome] .badge-ok").length;
      var failed = table.querySelectorAll("[data-result-outcome] .badge-err").length;
      var pending = rows - ok - failed;
      summary.textContent = ok + " succeeded, " + failed + " failed" + (pending > 0 ? ", " + pending + " pending" : "") +
        " — " + (rows === 1 ? "1 container" : rows + " containers") + " in this request.";
    }
  });
})();

// Template editor: line numbers beside code textareas and an unsaved-changes guard
// (form[data-unsaved-guard]). The form works the same without this.
(function () {
  "use strict";
  document.querySelectorAll("form[data-unsaved-guard]").forEach(function (form) {
    var dirty = form.hasAttribute("data-dirty");
    form.addEventListener("input", function () { dirty = true; });
    form.addEventListener("submit", function () { dirty = false; });
    window.addEventListener("beforeunload", function (ev) {
      if (dirty) { ev.preventDefault(); ev.returnValue = ""; }
    });
    form.querySelectorAll("textarea").forEach(function (ta) {
      var wrap = document.createElement("div");
      wrap.className = "code-edit";
      var gutter = document.createElement("div");
      gutter.className = "code-gutter";
      gutter.setAttribute("aria-hidden", "true");
      ta.parentNode.insertBefore(wrap, ta);
      wrap.appendChild(gutter);
      wrap.appendChild(ta);
      var last = -1;
      function number() {
        var n = ta.value.split("\n").length;
        if (n === last) return;
        last = n;
        var out = "";
        for (var i = 1; i <= n; i++) out += i + "\n";
        gutter.textContent = out;
      }
      ta.addEventListener("input", number);
      ta.addEventListener("scroll", function () { gutter.scrollTop = ta.scrollTop; });
      number();
    });
  });
})();

// Wizard Configure step (form[data-check]): the VMID and hostname are checked by the server
// while the user types (GET /api/v1/containers/check); the answer shows next to the field.
// Without this script the same check happens when the user presses Next.
(function () {
  "use strict";
  var form = document.querySelector("form[data-check]");
  if (!form) return;
  var url = form.getAttribute("data-check");
  var timer = null, seq = 0;
  function value(name) {
    var el = form.querySelector("[name='" + name + "']:not([type=hidden])") || form.querySelector("[name='" + name + "']");
    return el ? el.value : "";
  }
  function show(name, verdict) {
    var input = form.querySelector("#" + name);
    if (!input) return;
    var field = input.closest(".field");
    var id = name + "-error";
    var box = document.getElementById(id);
    if (!verdict || verdict.ok) {
      if (box) box.remove();
      input.removeAttribute("aria-invalid");
    } else {
      if (!box) {
        box = document.createElement("div");
        box.className = "error";
        box.id = id;
        box.setAttribute("aria-live", "polite");
        field.appendChild(box);
      }
      box.textContent = verdict.message || "This value is refused.";
      input.setAttribute("aria-invalid", "true");
    }
    var hint = document.getElementById(name + "-hint");
    var ids = [];
    if (document.getElementById(id)) ids.push(id);
    if (hint) ids.push(hint.id);
    if (ids.length) input.setAttribute("aria-describedby", ids.join(" "));
  }
  function check() {
    if (!form.querySelector("#vmid") && !form.querySelector("#hostname")) return;
    var mine = ++seq;
    var q = new URLSearchParams();
    if (form.querySelector("#vmid")) q.set("vmid", value("vmid"));
    if (form.querySelector("#hostname") && value("hostname") !== "") q.set("hostname", value("hostname"));
    q.set("cluster", value("cluster"));
    fetch(url + "?" + q.toString(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (a) {
        if (!a || mine !== seq) return;
        if (form.querySelector("#vmid")) show("vmid", a.vmid);
        if (form.querySelector("#hostname")) show("hostname", a.hostname);
      })
      .catch(function () { /* the server checks again on Next */ });
  }
  form.addEventListener("input", function (ev) {
    var n = ev.target && ev.target.name;
    if (n !== "vmid" && n !== "hostname" && n !== "cluster") return;
    clearTimeout(timer);
    timer = setTimeout(check, 350);
  });
})();

// The guest's boot log, live and read-only: one EventSource on the journal page, lines
// appended as text (never as HTML), the newest kept in view unless the reader scrolled up.
(function () {
  var box = document.querySelector("[data-journal-src]");
  if (!box || !window.EventSource) return;
  var out = box.querySelector("pre");
  var status = box.querySelector("[data-journal-status]");
  var es = new EventSource(box.getAttribute("data-journal-src"));
  var lines = 0;
  function add(text, cls) {
    var atEnd = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
    var span = document.createElement("span");
    if (cls) span.className = cls;
    span.textContent = text + "\n";
    out.appendChild(span);
    lines += 1;
    if (lines > 5000 && out.firstChild) { out.removeChild(out.firstChild); }
    if (atEnd) out.scrollTop = out.scrollHeight;
  }
  es.addEventListener("line", function (ev) {
    try { var d = JSON.parse(ev.data); add(d.line, d.stream === "stderr" ? "log-err" : ""); } catch (e) { add(ev.data, ""); }
  });
  es.addEventListener("end", function (ev) {
    var text = ev.data;
    try { text = JSON.parse(ev.data).line; } catch (e) { /* plain text */ }
    if (status) status.textContent = text;
    es.close();
  });
  es.onerror = function () {
    if (status && es.readyState === 2) status.textContent = "The log view is closed; reload to follow it again.";
  };
})();

// A container's day-two Proxmox tasks, live: the Edit and Snapshots pages follow
// `…/task-log` while open, so a task submitted from them (or by anyone else) shows its log
// line by line until the answer arrives. Lines are added as text, never as HTML.
(function () {
  var box = document.querySelector("[data-task-log]");
  if (!box || !window.EventSource) return;
  var out = box.querySelector("pre");
  var status = box.querySelector("[data-task-status]");
  var es = new EventSource(box.getAttribute("data-task-log"));
  es.addEventListener("task", function (ev) {
    var d;
    try { d = JSON.parse(ev.data); } catch (e) { return; }
    if (d.kind === "start") {
      box.hidden = false;
      out.textContent = "";
      status.textContent = (d.step || "task") + " running on " + ((d.data && d.data.node) || "the node") + "…";
    } else if (d.kind === "log") {
      box.hidden = false;
      out.appendChild(document.createTextNode(String(d.data) + "\n"));
      out.scrollTop = out.scrollHeight;
    } else if (d.kind === "done") {
      status.textContent = (d.step || "task") + " finished.";
    } else if (d.kind === "error") {
      status.textContent = (d.step || "task") + " failed: " + ((d.data && d.data.message) || "");
    }
  });
})();
