/*
 * Operator status page: draws the charts of /status.json (inline SVG, no
 * library) every 2 s and refreshes the server-rendered figures every 6 s.
 * No inline code: the page runs under the same strict CSP as the UI.
 */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var W = 320, H = 110, PAD = 4;

  function svgEl(tag, attrs) {
    var n = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { n.setAttribute(k, attrs[k]); });
    return n;
  }
  function fmt(v) {
    if (v >= 100) return String(Math.round(v));
    if (v >= 10) return v.toFixed(1);
    return v.toFixed(2).replace(/\.?0+$/, "") || "0";
  }

  // draw renders one figure: a polyline per series, the latest value(s)
  // and the maximum of the window in text (for screen readers too).
  function draw(fig, samples) {
    var keys = fig.getAttribute("data-series").split(",");
    var unit = fig.getAttribute("data-unit") || "";
    var max = 0;
    keys.forEach(function (k) { samples.forEach(function (s) { max = Math.max(max, s[k] || 0); }); });
    var top = max > 0 ? max * 1.15 : 1;
    var svg = svgEl("svg", { viewBox: "0 0 " + W + " " + H, role: "img", preserveAspectRatio: "none", "class": "chart-svg" });
    [0.25, 0.5, 0.75].forEach(function (f) {
      var y = PAD + (H - 2 * PAD) * f;
      svg.appendChild(svgEl("line", { x1: 0, x2: W, y1: y, y2: y, "class": "chart-grid" }));
    });
    var t1 = samples.length ? samples[samples.length - 1].t : 0, span = 600000;
    var label = [];
    keys.forEach(function (k, i) {
      var pts = samples.map(function (s) {
        var x = W - (t1 - s.t) / span * W;
        var y = H - PAD - (s[k] || 0) / top * (H - 2 * PAD);
        return x.toFixed(1) + "," + y.toFixed(1);
      });
      if (pts.length) svg.appendChild(svgEl("polyline", { points: pts.join(" "), "class": "chart-line chart-line-" + i }));
      var last = samples.length ? samples[samples.length - 1][k] || 0 : 0;
      label.push((keys.length > 1 ? k + " " : "") + fmt(last) + unit);
    });
    var text = "now " + label.join(", ") + " · max " + fmt(max) + unit;
    svg.setAttribute("aria-label", fig.querySelector("figcaption").textContent + ": " + text);
    var old = fig.querySelector("svg"), val = fig.querySelector(".chart-value");
    if (old) old.remove();
    if (!val) { val = document.createElement("p"); val.className = "chart-value"; fig.appendChild(val); }
    fig.insertBefore(svg, val);
    val.textContent = text;
  }

  function charts() {
    fetch("/status.json", { cache: "no-store" }).then(function (r) { return r.json(); }).then(function (d) {
      var figs = document.querySelectorAll("figure.chart");
      Array.prototype.forEach.call(figs, function (f) { draw(f, d.samples || []); });
      document.body.setAttribute("data-charts", "ready");
    }, function () { /* next tick */ });
  }
  var n = 0;
  function figures() {
    fetch("/status", { cache: "no-store" }).then(function (r) { return r.text(); }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      ["status-live", "status-tables"].forEach(function (id) {
        var now = document.getElementById(id), fresh = doc.getElementById(id);
        if (now && fresh) now.replaceWith(fresh);
      });
    }, function () { /* next tick */ });
  }
  charts();
  setInterval(function () { charts(); if (++n % 3 === 0) figures(); }, 2000);
})();
