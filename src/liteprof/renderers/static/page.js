/* liteprof's HTML page: sortable, filterable tables and the charts (plotly.js).
 * Everything it needs is in the page: the data block #liteprof-data and plotly.js. */
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("liteprof-data").textContent);
  var CONFIG = { displaylogo: false, responsive: true, displayModeBar: false };
  var COLOURED = {};
  (DATA.colours || []).forEach(function (name, i) { COLOURED[name] = i; });
  var COLORS = ["#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7",
    "#a463f2", "#97bbf5", "#9c6b4e", "#9498a0"];
  var VERDICT = { slower: "#d62728", faster: "#2ca02c", same: "#9498a0",
    added: "#4269d0", removed: "#9c6b4e" };

  /* Plotly reads a few HTML tags and entities in labels: give it text, not markup. */
  function text(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }
  function short(s, n) {
    s = String(s);
    n = n || 60;
    return s.length <= n ? s : s.slice(0, n / 2 - 1) + "…" + s.slice(s.length - n / 2);
  }
  /* The same units as the text report (renderers/base.py: fmt_duration). */
  function dur(ns) {
    if (ns === null || ns === undefined) return "-";
    var a = Math.abs(ns);
    if (a < 1e3) return ns.toFixed(0) + "ns";
    if (a < 1e6) return (ns / 1e3).toFixed(2) + "µs";
    if (a < 1e9) return (ns / 1e6).toFixed(2) + "ms";
    return (ns / 1e9).toFixed(3) + "s";
  }
  /* Axis ticks at powers of ten: 1ns, 10ns, ... 1µs ... */
  function tick(ns) {
    var units = [[1e9, "s"], [1e6, "ms"], [1e3, "µs"], [1, "ns"]];
    for (var i = 0; i < units.length; i++)
      if (ns >= units[i][0] || i === units.length - 1)
        return String(Math.round(ns / units[i][0] * 1000) / 1000) + units[i][1];
  }
  function pct(x) { return (x >= 0 ? "+" : "") + (100 * x).toFixed(1) + "%"; }

  /* -- tables ------------------------------------------------------------------------ */
  function sortable(table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      function sort() {
        var numeric = th.getAttribute("data-type") === "num";
        var down = th.getAttribute("aria-sort") !== "descending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", down ? "descending" : "ascending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col].getAttribute("data-v"), y = b.cells[col].getAttribute("data-v");
          var c;
          if (numeric) {
            x = x === "" || x === null ? -Infinity : parseFloat(x);
            y = y === "" || y === null ? -Infinity : parseFloat(y);
            c = x < y ? -1 : x > y ? 1 : 0;
          } else {
            c = String(x).localeCompare(String(y));
          }
          return down ? -c : c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") sort(); });
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), sortable);
  Array.prototype.forEach.call(document.querySelectorAll("input.filter"), function (box) {
    var table = document.getElementById(box.getAttribute("data-table"));
    box.addEventListener("input", function () {
      var q = box.value.toLowerCase();
      Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
        var name = r.cells[0].textContent.toLowerCase();
        r.hidden = q !== "" && name.indexOf(q) < 0;
      });
    });
  });

  /* -- charts ------------------------------------------------------------------------ */
  var pending = [], TIMES = {};
  window.liteprofTimes = TIMES;
  function draw(id, traces, layout) {
    var el = document.getElementById(id);
    if (!el) return;
    layout.margin = layout.margin || { l: 60, r: 20, t: 10, b: 40 };
    layout.font = { family: "system-ui, sans-serif", size: 12 };
    layout.paper_bgcolor = layout.plot_bgcolor = "rgba(0,0,0,0)";
    var t0 = performance.now();
    pending.push(Plotly.newPlot(el, traces, layout, CONFIG));
    TIMES[id] = performance.now() - t0;
  }

  function tree(t) {
    var n = t.name.length, ids = [], parents = [], labels = [], hover = [], colours = [];
    var root = 0;
    for (var i = 0; i < n; i++) if (t.parent[i] < 0) root += t.value[i];
    ids.push("all"); parents.push(""); labels.push("all threads"); colours.push("#eef1f6");
    hover.push("all threads<br>total " + dur(root));
    for (i = 0; i < n; i++) {
      ids.push("n" + i);
      parents.push(t.parent[i] < 0 ? "all" : "n" + t.parent[i]);
      labels.push(text(short(t.name[i], 40)));
      colours.push(t.name[i] in COLOURED ? COLORS[COLOURED[t.name[i]]] : "#c8ccd2");
      hover.push(text(short(t.name[i], 120)) + "<br>total " + dur(t.total_ns[i]) +
        " (" + (root ? (100 * t.total_ns[i] / root).toFixed(1) : "0") + "%)" +
        "<br>self " + dur(t.self_ns[i]) + "<br>count " + t.count[i] +
        " · p50 " + dur(t.p50_ns[i]) + " · p99 " + dur(t.p99_ns[i]) +
        (t.errors[i] ? "<br>errors " + t.errors[i] : ""));
    }
    draw("tree-chart", [{
      type: "icicle", ids: ids, parents: parents, labels: labels,
      values: [root].concat(t.value), branchvalues: "total", hovertext: hover,
      hoverinfo: "text", textinfo: "label", tiling: { orientation: "v" },
      marker: { colors: colours, line: { color: "#fff", width: 1 } }, maxdepth: 8,
      insidetextfont: { color: "#fff" }
    }], { margin: { l: 4, r: 4, t: 4, b: 4 } });
  }

  function distributions(d, runs) {
    var select = document.getElementById("dist-select");
    var view = document.getElementById("dist-view");
    if (!select) return;
    d.scopes.forEach(function (s, i) {
      var o = document.createElement("option");
      o.value = String(i);
      o.textContent = short(s.name, 90);
      select.appendChild(o);
    });
    function show() {
      var s = d.scopes[parseInt(select.value, 10) || 0], how = view ? view.value : "hist";
      var traces = [], shapes = [], notes = [];
      var x = d.edges.slice(s.lo, s.lo + s.counts[0].length + 1);
      s.counts.forEach(function (counts, r) {
        var y = counts, total = 0;
        if (how === "cdf") {
          counts.forEach(function (c) { total += c; });
          var acc = 0;
          y = counts.map(function (c) { acc += c; return total ? acc / total : 0; });
        }
        // A step per bin: the last edge closes the last bin.
        traces.push({
          type: "scatter", mode: "lines", line: { shape: "hv", width: 1.5, color: COLORS[r] },
          fill: runs.length === 1 && how !== "cdf" ? "tozeroy" : "none", name: runs[r],
          x: x.map(function (v) { return v / 1e9; }), y: y.concat([y[y.length - 1]]),
          hoverinfo: "text", hovertext: x.map(function (e, j) {
            var v = j < y.length ? y[j] : y[y.length - 1];
            return runs[r] + ": " + (how === "cdf" ? (100 * v).toFixed(2) + "% up to " +
              dur(x[j + 1] || e) : v + " events of " + dur(e) + " to " + dur(x[j + 1] || e));
          })
        });
      });
      (s.marks || []).forEach(function (m, k) {
        var v = Math.max(m.ns, 1) / 1e9, colour = runs.length === 1 ? "#d62728" : COLORS[m.run];
        shapes.push({ type: "line", xref: "x", yref: "paper", x0: v, x1: v, y0: 0, y1: 1,
          line: { color: colour, dash: "dot", width: 1.5 } });
        notes.push({ x: Math.log10(v), xref: "x", yref: "paper", y: 1 + 0.07 * (k % 2),
          yanchor: "bottom", text: text(m.label), showarrow: false, font: { color: colour } });
      });
      var ticks = [];
      for (var e = Math.floor(Math.log10(x[0])); e <= Math.ceil(Math.log10(x[x.length - 1])); e++)
        ticks.push(Math.pow(10, e));
      draw("dist-chart", traces, {
        xaxis: { type: "log", title: { text: "duration" },
          tickvals: ticks.map(function (v) { return v / 1e9; }), ticktext: ticks.map(tick) },
        yaxis: { title: { text: how === "cdf" ? "share of events" : "events" },
          type: how === "log" ? "log" : "linear", rangemode: "tozero",
          tickformat: how === "cdf" ? ".0%" : "" },
        shapes: shapes, annotations: notes, showlegend: runs.length > 1,
        margin: { l: 60, r: 20, t: 44, b: 44 }
      });
    }
    select.addEventListener("change", show);
    if (view) view.addEventListener("change", show);
    if (d.scopes.length) show();
  }

  function heat(h) {
    var hover = h.totals.map(function (row, p) {
      return row.map(function (v, s) {
        return text(h.processes[p]) + "<br>" + text(short(h.scopes[s], 80)) + "<br>" +
          (v === null ? "did not run" : "total " + dur(v) + " · " +
            h.ratio[p][s].toFixed(2) + "× median");
      });
    });
    draw("heat-chart", [{
      type: "heatmap", z: h.ratio, x: h.scopes.map(function (s, i) { return i; }),
      y: h.processes.map(function (p, i) { return i; }), hovertext: hover, hoverinfo: "text",
      colorscale: [[0, "#2c7bb6"], [0.5, "#f7f7f7"], [1, "#d7191c"]], zmid: 1,
      zmin: 0, zmax: 2, colorbar: { title: { text: "× median" } }, xgap: 1, ygap: 1
    }], {
      xaxis: { tickvals: h.scopes.map(function (s, i) { return i; }),
        ticktext: h.scopes.map(function (s) { return text(short(s, 24)); }), tickangle: -30 },
      yaxis: { tickvals: h.processes.map(function (p, i) { return i; }),
        ticktext: h.processes.map(function (p) { return text(short(p, 40)); }),
        autorange: "reversed" },
      margin: { l: 260, r: 20, t: 10, b: 110 }
    });
  }

  function timeline(t) {
    var b = t.bars, n = b.y.length, series = [], names = DATA.colours || [];
    for (var k = 0; k <= names.length; k++) {
      series.push({ type: "bar", orientation: "h", base: [], x: [], y: [], hovertext: [],
        hoverinfo: "text", width: 0.85, name: k < names.length ? text(short(names[k], 40)) :
          "other", marker: { color: k < names.length ? COLORS[k] : "#c8ccd2" } });
    }
    for (var i = 0; i < n; i++) {
      var s = series[b.series[i]];
      s.base.push(b.x0[i]); s.x.push(b.dur[i]); s.y.push(b.y[i]);
      s.hovertext.push(text(short(b.name[i], 100)) + "<br>" + dur(b.dur[i] * 1e6) +
        " at +" + (t.offset_ms + b.x0[i]).toFixed(3) + " ms");
    }
    draw("timeline-chart", series.filter(function (s) { return s.x.length; }), {
      barmode: "overlay", bargap: 0, showlegend: true,
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
      xaxis: { title: { text: "ms into the window" }, zeroline: false },
      yaxis: { tickvals: t.row_offset, ticktext: t.rows.map(function (r) {
        return text(short(r, 40)); }), autorange: "reversed", zeroline: false },
      margin: { l: 260, r: 20, t: 40, b: 44 }
    });
  }

  function changes(c) {
    var idx = c.name.map(function (s, i) { return i; });
    draw("change-chart", [{
      type: "bar", orientation: "h", y: idx, x: c.change.map(function (v) { return 100 * v; }),
      marker: { color: c.verdict.map(function (v) { return VERDICT[v] || "#9498a0"; }) },
      error_x: { type: "data", symmetric: false, color: "#555",
        array: c.change.map(function (v, i) { return c.ci[i] ? 100 * (c.ci[i][1] - v) : 0; }),
        arrayminus: c.change.map(function (v, i) {
          return c.ci[i] ? 100 * (v - c.ci[i][0]) : 0; }) },
      hovertext: idx.map(function (i) {
        return text(short(c.name[i], 100)) + "<br>" + pct(c.change[i]) + " · " + c.verdict[i] +
          (c.ci[i] ? "<br>95% CI " + pct(c.ci[i][0]) + " … " + pct(c.ci[i][1]) : "");
      }), hoverinfo: "text"
    }], {
      xaxis: { title: { text: "change of the mean (%)" }, zeroline: true },
      yaxis: { tickvals: idx, ticktext: c.name.map(function (s) { return text(short(s, 40)); }),
        autorange: "reversed" },
      margin: { l: 260, r: 20, t: 10, b: 44 }
    });
  }

  function guarded(f, arg, id) {
    try {
      if (arg) f.apply(null, arg);
    } catch (e) {
      var el = document.getElementById(id);
      if (el) el.textContent = "This chart could not be drawn: " + e;
      console.error(e);
    }
  }
  if (DATA.kind === "report") {
    guarded(tree, DATA.tree && [DATA.tree], "tree-chart");
    guarded(distributions, DATA.dist && [DATA.dist, ["events"]], "dist-chart");
    guarded(heat, DATA.heat && [DATA.heat], "heat-chart");
    guarded(timeline, DATA.timeline && [DATA.timeline], "timeline-chart");
  } else {
    guarded(changes, DATA.change && DATA.change.name.length && [DATA.change], "change-chart");
    guarded(distributions, DATA.dist && [DATA.dist, ["base", "new"]], "dist-chart");
  }
  /* When every chart is drawn: what the tests and the open-time measurement wait for. */
  Promise.all(pending).then(function () {
    window.liteprofDrawn = performance.now();
    document.documentElement.setAttribute("data-drawn", String(pending.length));
  }, function (e) { console.error(e); });
})();
