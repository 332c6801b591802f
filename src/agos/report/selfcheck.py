"""The report page's self-check: a script placed at the end of <body> by the report generator
(`report.html`). After the window's load event (and any lazy images) it writes a JSON summary of
images, tables and script errors into <pre id="agos-selfcheck">, which `agos.validate.browser`
reads back from headless Chromium. It belongs to the page, so it lives with the renderer."""

from __future__ import annotations

SELF_CHECK_SCRIPT = """<script id="agos-selfcheck-script">
/* agos self-check: after load, summarise images, tables and script errors into #agos-selfcheck. */
(function () {
  var errors = [];
  window.addEventListener("error", function (e) {
    if (e instanceof ErrorEvent) {
      errors.push(String(e.message) + " (" + (e.filename || "?") + ":" + (e.lineno || 0) + ")");
    }
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    errors.push("unhandled rejection: " + String(e.reason));
  });
  function settle(img) {
    return new Promise(function (resolve) {
      if (img.complete) { resolve(); return; }
      img.addEventListener("load", resolve);
      img.addEventListener("error", resolve);
      setTimeout(resolve, 10000);
    });
  }
  function label(el) {
    var src = el.getAttribute("src") || "";
    return src.length > 120 ? src.slice(0, 117) + "..." : src;
  }
  function report() {
    var images = Array.prototype.slice.call(document.images);
    images.forEach(function (img) { if (img.loading === "lazy") { img.loading = "eager"; } });
    Promise.all(images.map(settle)).then(function () {
      var broken = [];
      images.forEach(function (img) {
        if (!(img.complete && img.naturalWidth > 0)) { broken.push(label(img)); }
      });
      var tables = Array.prototype.slice.call(document.querySelectorAll("table"));
      var empty = [];
      tables.forEach(function (t, i) {
        var rows = 0;
        Array.prototype.forEach.call(t.tBodies, function (body) {
          Array.prototype.forEach.call(body.rows, function (row) {
            if (row.querySelector("td")) { rows += 1; }
          });
        });
        if (rows === 0) {
          var cap = t.caption ? t.caption.textContent.trim().slice(0, 80) : "";
          empty.push("table " + (i + 1) + (t.id ? " #" + t.id : "") + (cap ? " (" + cap + ")" : ""));
        }
      });
      var out = document.getElementById("agos-selfcheck");
      if (!out) {
        out = document.createElement("pre");
        out.id = "agos-selfcheck";
        out.hidden = true;
        document.body.appendChild(out);
      }
      out.textContent = JSON.stringify({
        images_total: images.length,
        images_loaded: images.length - broken.length,
        broken_images: broken,
        tables_total: tables.length,
        tables_with_rows: tables.length - empty.length,
        empty_tables: empty,
        js_errors: errors
      });
    });
  }
  if (document.readyState === "complete") { report(); } else { window.addEventListener("load", report); }
})();
</script>"""
