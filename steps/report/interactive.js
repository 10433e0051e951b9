// gdlab's interactive report: draws the plots of the #gdlab-data block with plotly.js.
// Every text in the block is HTML-escaped already (plotly shows &lt; as <); this script adds
// markup of its own only around those texts, never from them.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("gdlab-data").textContent);
  const config = { displaylogo: false, responsive: true, scrollZoom: true };
  const font = { family: "-apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif", size: 12 };
  const runs = data.runs || [];
  const hidden = new Set(); // run indices hidden by a legend click
  const plots = []; // every plot div whose traces carry meta.run / meta.group
  const movers = []; // {div, index, points(k) -> {x, y, text, runs}}: the markers the slider moves
  let current = 0; // index into data.epochs

  // The last index j with arr[j] <= k (0 when k is before the first).
  function atOrBefore(arr, k) {
    let lo = 0, hi = arr.length - 1, j = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (arr[mid] <= k) { j = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    return j;
  }

  function add(id, title) {
    const root = document.getElementById("gd-plots");
    const box = document.createElement("section");
    const h = document.createElement("h2");
    h.textContent = title;
    const div = document.createElement("div");
    div.id = id;
    div.className = "gd-plot";
    box.appendChild(h);
    box.appendChild(div);
    root.appendChild(box);
    return div;
  }

  function base(extra) {
    return Object.assign({ font: font, hovermode: "closest", margin: { l: 70, r: 20, t: 60, b: 60 },
      plot_bgcolor: "#fff", paper_bgcolor: "#fff" }, extra);
  }

  // ---- legend: hiding a run hides it in every plot
  function groupOf(trace) {
    const m = trace.meta || {};
    if (m.group) return m.group;
    if (m.run !== undefined) return [m.run];
    return null;
  }

  // ---- the state in the address: #epoch=37&hide=<run id>,<run id> (a link to the page shows the same)
  function remember() {
    if (data.kind !== "compare") return;
    const parts = [];
    if ((data.epochs || []).length) parts.push("epoch=" + data.epochs[current]);
    if (hidden.size) parts.push("hide=" + Array.from(hidden).map(function (r) { return runs[r].id; }).join(","));
    try {
      history.replaceState(null, "", "#" + parts.join("&"));
    } catch (e) { /* a sandboxed frame (MLflow's artifact view) may not have an address to change */ }
  }

  function recall() {
    const state = {};
    (location.hash || "").replace(/^#/, "").split("&").forEach(function (kv) {
      const at = kv.indexOf("=");
      if (at > 0) state[kv.slice(0, at)] = decodeURIComponent(kv.slice(at + 1));
    });
    if (state.hide) {
      const ids = new Set(state.hide.split(","));
      runs.forEach(function (run, r) { if (ids.has(run.id)) hidden.add(r); });
    }
    const epochs = data.epochs || [];
    const k = Number(state.epoch);
    if (state.epoch !== undefined && isFinite(k) && epochs.length) return atOrBefore(epochs, k);
    return epochs.length - 1;
  }

  function applyVisibility() {
    for (const div of plots) {
      const idx = [], vis = [];
      div.data.forEach(function (tr, i) {
        const g = groupOf(tr);
        if (!g) return;
        idx.push(i);
        vis.push(g.every(function (r) { return hidden.has(r); }) ? "legendonly" : true);
      });
      if (idx.length) Plotly.restyle(div, { visible: vis }, idx);
    }
    setEpoch(current);
    remember();
  }

  function onClick(ev) {
    const g = groupOf(ev.data[ev.curveNumber]);
    if (!g) return true; // not a run's: plotly's own toggle
    const show = g.every(function (r) { return hidden.has(r); });
    g.forEach(function (r) { if (show) hidden.delete(r); else hidden.add(r); });
    applyVisibility();
    return false;
  }

  function onDoubleClick(ev) {
    const g = groupOf(ev.data[ev.curveNumber]);
    if (!g) return true;
    const mine = new Set(g);
    const isolated = runs.every(function (_, r) { return mine.has(r) ? !hidden.has(r) : hidden.has(r); });
    hidden.clear();
    if (!isolated) runs.forEach(function (_, r) { if (!mine.has(r)) hidden.add(r); });
    applyVisibility();
    return false;
  }

  function listen(div) {
    plots.push(div);
    div.on("plotly_legendclick", onClick);
    div.on("plotly_legenddoubleclick", onDoubleClick);
  }

  // One trace a run (few runs), or one a kind with the runs' lines joined by gaps (many runs:
  // a thousand SVG traces would take the page seconds to draw).
  function lineTraces(members, make) {
    const traces = [];
    if (data.legend === "run") {
      members.forEach(function (r) { traces.push(make([r], runs[r].label, true, { run: r })); });
      return traces;
    }
    const kinds = new Map();
    members.forEach(function (r) {
      if (!kinds.has(runs[r].kind)) kinds.set(runs[r].kind, []);
      kinds.get(runs[r].kind).push(r);
    });
    kinds.forEach(function (rs, kind) {
      traces.push(make(rs, kind + ": " + rs.length + " runs", true, { group: rs }));
    });
    return traces;
  }

  function joined(rs, field) { // the runs' arrays end to end, a gap (null) between runs
    const out = [];
    rs.forEach(function (r, k) {
      if (k) out.push(null);
      const v = field(r);
      for (let i = 0; i < v.length; i++) out.push(v[i]);
    });
    return out;
  }

  // ---- the epoch slider
  function setEpoch(index) {
    const epochs = data.epochs || [];
    if (!epochs.length) return;
    current = Math.max(0, Math.min(epochs.length - 1, index));
    const k = epochs[current];
    const slider = document.getElementById("gd-epoch");
    if (slider && Number(slider.value) !== current) slider.value = String(current);
    const label = document.getElementById("gd-epoch-label");
    if (label) label.textContent = "epoch " + k;
    for (const m of movers) {
      const p = m.points(k);
      // animate without a redraw moves the markers alone (a restyle redrew the whole plot: 0.1 s a step)
      const trace = { x: p.x, y: p.y, text: p.text, customdata: p.epoch, marker: { color: p.color } };
      const frame = { data: [trace], traces: [m.index] };
      if (m.line) frame.layout = { shapes: [Object.assign({}, m.div.layout.shapes[0], { x0: k, x1: k })] };
      Plotly.animate(m.div, frame, { transition: { duration: 0 }, frame: { duration: 0, redraw: false },
        mode: "immediate" });
    }
  }

  function mover(div, index, members, xs, ys, epochsOf, line) {
    movers.push({ div: div, index: index, line: line, points: function (k) {
      const p = { x: [], y: [], text: [], color: [], epoch: [] }; // epoch: [epoch, run id] a marker
      members.forEach(function (r) {
        if (hidden.has(r)) return;
        const e = epochsOf(r);
        const j = atOrBefore(e, k);
        p.x.push(xs(r)[j]); p.y.push(ys(r)[j]); p.epoch.push([e[j], runs[r].id]);
        p.text.push(runs[r].label); p.color.push(runs[r].color);
      });
      return p;
    } });
  }

  function markerTrace(name) {
    return { type: "scatter", mode: "markers", x: [], y: [], text: [], customdata: [], name: name,
      showlegend: false, meta: { role: "now" },
      marker: { size: data.labelled ? 11 : 6, color: [], line: { color: "#000", width: data.labelled ? 1.2 : 0.5 } },
      hovertemplate: "%{text}<br>epoch %{customdata[0]}<br>(%{x:.6g}, %{y:.6g})<extra></extra>" };
  }

  // ---- compare
  function lossPlot() {
    const members = runs.map(function (_, r) { return r; }).filter(function (r) { return runs[r].e; });
    if (!members.length) return null;
    const div = add("gd-loss", "Loss curves");
    const traces = lineTraces(members, function (rs, name, legend, meta) {
      const one = rs.length === 1;
      return { type: "scatter", mode: "lines", name: name, meta: meta, showlegend: legend,
        x: joined(rs, function (r) { return runs[r].e; }), y: joined(rs, function (r) { return runs[r].l; }),
        text: one ? undefined : joined(rs, function (r) { return runs[r].e.map(function () { return runs[r].label; }); }),
        line: { color: runs[rs[0]].color, width: one ? 2.2 : 1, dash: one && runs[rs[0]].failed ? "dash" : "solid" },
        opacity: one ? 0.95 : 0.45,
        hovertemplate: (one ? "%{fullData.name}" : "%{text}") + "<br>epoch %{x}<br>loss %{y:.6g}<extra></extra>" };
    });
    const now = markerTrace("now");
    now.hovertemplate = "%{text}<br>epoch %{customdata[0]}<br>loss %{y:.6g}<extra></extra>";
    traces.push(now);
    const yaxis = { type: "log", title: { text: data.yLabel + " (log scale)" }, gridcolor: "#e6e9ee" };
    if (data.lossRange) yaxis.range = data.lossRange;
    const layout = base({ title: { text: "Training loss per epoch, " + members.length + " runs" +
        (data.subtitle ? "<br><sup>" + data.subtitle + "</sup>" : "") },
      xaxis: { title: { text: "epoch" }, gridcolor: "#e6e9ee" }, yaxis: yaxis, height: 520,
      legend: { title: { text: data.order } },
      shapes: [{ type: "line", xref: "x", yref: "paper", x0: 0, x1: 0, y0: 0, y1: 1,
        line: { color: "#888", width: 1, dash: "dot" } }] });
    mover(div, traces.length - 1, members, function (r) { return runs[r].e; }, function (r) { return runs[r].l; },
      function (r) { return runs[r].e; }, true);
    return [div, traces, layout];
  }

  function pathPlot(panel, k) {
    const members = runs.map(function (_, r) { return r; }).filter(function (r) { return runs[r].panel === k; });
    const div = add("gd-paths-" + k, panel.heading);
    const traces = [];
    const s = panel.surface;
    const images = [];
    if (s) {
      // The surface is a picture under the paths (plotly.js drops a contour trace when Plotly.animate moves
      // the markers); an invisible heatmap of its range carries the colour bar.
      images.push({ source: s.image, xref: "x", yref: "y", x: s.x0, y: s.y1, sizex: s.x1 - s.x0, sizey: s.y1 - s.y0,
        sizing: "stretch", layer: "below" });
      traces.push({ type: "heatmap", x: [s.x0, s.x1], y: [s.y0, s.y1], z: [[s.range[0], s.range[1]], [s.range[1], s.range[0]]],
        opacity: 0, hoverinfo: "skip", showscale: true, showlegend: false, name: "surface", colorscale: s.colorscale,
        zmin: s.range[0], zmax: s.range[1],
        colorbar: { title: { text: s.what + (s.log ? " (log scale)" : ""), side: "right" }, tickvals: s.ticks,
          ticktext: s.tickText, thickness: 14 } });
    }
    const epochsOf = function (r) { return runs[r].pe || runs[r].e; };
    function lossAt(r, e) { // the run's loss at epoch e, if the page has it
      const l = runs[r].e ? runs[r].e.indexOf(e) : -1;
      return l < 0 ? null : runs[r].l[l];
    }
    lineTraces(members, function (rs, name, legend, meta) {
      const one = rs.length === 1;
      return { type: "scatter", mode: one && data.labelled ? "lines+markers" : "lines", name: name, meta: meta,
        showlegend: legend, x: joined(rs, function (r) { return runs[r].px; }),
        y: joined(rs, function (r) { return runs[r].py; }),
        customdata: joined(rs, function (r) {
          return epochsOf(r).map(function (e) { return [e, lossAt(r, e), runs[r].label]; });
        }),
        line: { color: runs[rs[0]].color, width: one ? 2.2 : 1, dash: one && runs[rs[0]].failed ? "dash" : "solid" },
        marker: { size: 4, color: runs[rs[0]].color }, opacity: one ? 0.95 : 0.5,
        hovertemplate: "%{customdata[2]}<br>epoch %{customdata[0]}<br>(%{x:.6g}, %{y:.6g})<br>loss %{customdata[1]:.6g}<extra></extra>" };
    }).forEach(function (tr) { traces.push(tr); });
    traces.push({ type: "scatter", mode: "markers", name: "start", x: panel.starts.map(function (p) { return p[0]; }),
      y: panel.starts.map(function (p) { return p[1]; }), hovertemplate: "start (%{x:.6g}, %{y:.6g})<extra></extra>",
      marker: { size: 13, color: "#fff", line: { color: "#000", width: 2 } } });
    if (panel.minima.length) {
      traces.push({ type: "scatter", mode: "markers", name: panel.minima.length === 1 ? "global minimum" : "global minima",
        x: panel.minima.map(function (p) { return p[0]; }), y: panel.minima.map(function (p) { return p[1]; }),
        hovertemplate: "global minimum (%{x:.6g}, %{y:.6g})<extra></extra>",
        marker: { symbol: "star", size: 18, color: "#fff", line: { color: "#000", width: 1.2 } } });
    }
    traces.push(markerTrace("now"));
    const yaxis = { range: [panel.lo[1], panel.hi[1]], title: { text: panel.yLabel }, gridcolor: "rgba(0,0,0,0.08)" };
    if (panel.equal) { yaxis.scaleanchor = "x"; yaxis.scaleratio = 1; }
    const layout = base({ title: { text: panel.title + "<br><sup>" + panel.note + "</sup>" },
      xaxis: { range: [panel.lo[0], panel.hi[0]], title: { text: panel.xLabel }, gridcolor: "rgba(0,0,0,0.08)" },
      yaxis: yaxis, height: 700, margin: { l: 70, r: 20, t: 70, b: 40 }, images: images,
      legend: { title: { text: data.order }, orientation: "h", x: 0, y: -0.12, yanchor: "top" } });
    mover(div, traces.length - 1, members, function (r) { return runs[r].px; }, function (r) { return runs[r].py; },
      epochsOf, false);
    return [div, traces, layout];
  }

  function sensitivityPlot(sens) {
    const div = add("gd-sensitivity", "Sensitivity to the learning rate");
    const traces = [];
    sens.lines.forEach(function (l) {
      traces.push({ type: "scatter", mode: "lines+markers", name: l.label, x: l.x, y: l.y, text: l.runs,
        line: { color: l.color, width: 1.8 }, marker: { size: 7, color: l.color }, legendgroup: l.label,
        hovertemplate: "%{text}<br>lr %{x:.4g}<br>" + sens.metric + " %{y:.6g}<extra></extra>" });
      if (l.bad.length) {
        traces.push({ type: "scatter", mode: "markers", name: l.label + " (failed)", x: l.bad,
          y: l.bad.map(function () { return sens.top; }), text: l.badRuns, legendgroup: l.label, showlegend: false,
          marker: { symbol: "x", size: 10, color: l.color }, hovertemplate: "%{text}<br>lr %{x:.4g}<br>failed<extra></extra>" });
      }
    });
    if (sens.best) {
      traces.push({ type: "scatter", mode: "markers", name: "best", x: [sens.best[0]], y: [sens.best[1]],
        text: [sens.bestRun], marker: { symbol: "star", size: 18, color: "gold", line: { color: "#000", width: 1 } },
        hovertemplate: "best: %{text}<br>lr %{x:.4g}<br>" + sens.metric + " %{y:.6g}<extra></extra>" });
    }
    const layout = base({ title: { text: sens.metric + " against the learning rate" },
      xaxis: { type: "log", title: { text: "learning rate (log scale)" } },
      yaxis: { type: sens.log ? "log" : "linear", title: { text: sens.metric + (sens.log ? " (log scale)" : "") } },
      height: 480 });
    return [div, traces, layout];
  }

  function studyPlots(study) {
    const out = [];
    if (study.number.length) {
      const div = add("gd-history", "Optimization history");
      const vals = study.value.filter(function (v) { return v > 0; });
      const log = vals.length === study.value.length && Math.max.apply(null, vals) > 100 * Math.min.apply(null, vals);
      out.push([div, [
        { type: "scatter", mode: "markers", name: "objective value", x: study.number, y: study.value,
          marker: { color: "#1f77b4", size: 7 }, hovertemplate: "trial %{x}<br>value %{y:.6g}<extra></extra>" },
        { type: "scatter", mode: "lines", name: "best value", x: study.number, y: study.best,
          line: { color: "#d62728", width: 2 }, hovertemplate: "best after trial %{x}: %{y:.6g}<extra></extra>" },
      ], base({ title: { text: "Optimization history" }, xaxis: { title: { text: "trial" } },
        yaxis: { title: { text: "objective value" + (log ? " (log scale)" : "") }, type: log ? "log" : "linear" },
        height: 420 })]);
    }
    const names = Object.keys(study.importances);
    if (names.length) {
      names.sort(function (a, b) { return study.importances[a] - study.importances[b]; });
      const div = add("gd-importances", "Parameter importances");
      out.push([div, [{ type: "bar", orientation: "h", name: "importance", y: names,
        x: names.map(function (n) { return study.importances[n]; }), marker: { color: "#1f77b4" },
        hovertemplate: "%{y}: %{x:.3f}<extra></extra>" }],
        base({ title: { text: "Parameter importances (PED-ANOVA)" }, xaxis: { title: { text: "importance" } },
          margin: { l: 140, r: 20, t: 60, b: 60 }, height: 120 + 40 * names.length })]);
    }
    return out;
  }

  function buildCompare() {
    const made = [];
    const loss = lossPlot();
    if (loss) made.push(loss);
    (data.panels || []).forEach(function (p, k) { made.push(pathPlot(p, k)); });
    if (data.morePanels) {
      const note = document.createElement("p");
      note.className = "meta";
      note.textContent = data.morePanels + " more data/model groups not drawn (compare --problem all gives each its own page).";
      document.getElementById("gd-plots").appendChild(note);
    }
    if (data.sensitivity) made.push(sensitivityPlot(data.sensitivity));
    if (data.study) studyPlots(data.study).forEach(function (p) { made.push(p); });
    return made;
  }

  // ---- the benchmark's report
  function buildBenchmark() {
    const made = [];
    (data.figures || []).forEach(function (f) {
      const div = add(f.id, f.title);
      made.push([div, f.traces, base(f.layout)]);
    });
    return made;
  }

  function player() {
    const epochs = data.epochs || [];
    const bar = document.getElementById("gd-player");
    if (!bar || !epochs.length || !movers.length) { if (bar) bar.hidden = true; return; }
    const slider = document.getElementById("gd-epoch");
    const play = document.getElementById("gd-play");
    slider.max = String(epochs.length - 1);
    slider.addEventListener("input", function () { stop(); setEpoch(Number(slider.value)); remember(); });
    let timer = null;
    function stop() {
      if (timer) { clearInterval(timer); timer = null; play.textContent = "▶ play"; remember(); }
    }
    play.addEventListener("click", function () {
      if (timer) { stop(); return; }
      if (current >= epochs.length - 1) setEpoch(0);
      play.textContent = "❚❚ pause";
      timer = setInterval(function () {
        if (current >= epochs.length - 1) { stop(); return; }
        setEpoch(current + 1);
      }, Math.max(30, 6000 / epochs.length));
    });
    current = recall(); // (a plain link opens at the end, every run shown, and leaves the address alone)
    if (hidden.size) applyVisibility(); else setEpoch(current);
    window.addEventListener("hashchange", function () { // a link pasted into the open page
      stop();
      hidden.clear();
      current = recall();
      applyVisibility();
    });
  }

  const made = data.kind === "benchmark" ? buildBenchmark() : buildCompare();
  const drawn = made.map(function (m) {
    return Plotly.newPlot(m[0], m[1], m[2], config).then(function (div) {
      if (data.kind === "compare") listen(div);
      return div;
    });
  });
  window.gdlab = { data: data, hidden: hidden, setEpoch: setEpoch,
    ready: Promise.all(drawn).then(function () { player(); window.gdlab.done = true; }) };
})();
