// Draws the run's workflow graph left to right: blocks coloured by their steps' status
// (with a symbol and the status word), loop containers as boxes with item progress.
// Layout: the vendored dagre (static/vendor/dagre.min.js). Text is set with
// textContent only, so labels from workflows are never parsed as HTML. Labels are
// measured and wrapped to stay inside their boxes (at most three lines, two for a loop's
// heading, then "…"); the whole label is in each link's aria-label and <title>.
"use strict";
(function () {
  var NS = "http://www.w3.org/2000/svg";
  var SIGNS = { pending: "○", queued: "◔", running: "▶", awaiting_review: "‖", completed: "✓",
    skipped: "↷", error: "✗", cancelled: "⊘", not_run: "·" };

  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) { parent.appendChild(node); }
    return node;
  }

  function text(parent, x, y, value, cls) {
    var t = el("text", { x: x, y: y, "class": cls || "" }, parent);
    t.textContent = value;
    return t;
  }

  // Lines of one text element: a tspan per line, LINE px apart.
  var LINE = 15;
  function lines(parent, x, y, values, cls) {
    var t = el("text", { x: x, y: y, "class": cls || "" }, parent);
    values.forEach(function (value, i) {
      el("tspan", { x: x, y: y + i * LINE }, t).textContent = value;
    });
    return t;
  }

  function tooltip(parent, value) { el("title", {}, parent).textContent = value; }

  function statusWord(s) { return s.replace(/_/g, " "); }

  // Text is measured in the fonts the page gives it (a canvas with the computed font of a
  // probe text of the same class), so labels of wide letters or other scripts fit too.
  var ctx = null, widths = {}, cached = 0;
  function fontsOf(holder) {
    var probe = el("svg", { width: 0, height: 0 });  // gone again before anything is drawn
    var group = el("g", { "class": "cluster" }, probe);
    var kinds = { label: el("text", { "class": "label" }, probe),
      summary: el("text", { "class": "summary" }, probe),
      title: el("text", { "class": "title" }, group),
      edge: el("text", { "class": "edge-label" }, probe) };
    holder.appendChild(probe);
    var fonts = {};
    Object.keys(kinds).forEach(function (k) {
      var st = window.getComputedStyle(kinds[k]);
      fonts[k] = [st.fontStyle, st.fontWeight, st.fontSize, st.fontFamily].join(" ");
    });
    holder.removeChild(probe);
    return fonts;
  }
  function measure(font, value) {
    var key = font + "\u0000" + value;
    if (!(key in widths)) {
      if (cached++ > 20000) { widths = {}; cached = 0; }
      if (!ctx) { ctx = document.createElement("canvas").getContext("2d"); }
      ctx.font = font;
      widths[key] = ctx.measureText(value).width;
    }
    return widths[key];
  }

  var segmenter = window.Intl && Intl.Segmenter ? new Intl.Segmenter(undefined, { granularity: "grapheme" }) : null;
  function graphemes(value) {
    return segmenter ? Array.from(segmenter.segment(value), function (s) { return s.segment; }) : Array.from(value);
  }
  var SPACE = /^\s+$/, AFTER = /[_\-\/.,;:)\]}|+&]$/;
  // no line starts with a closing mark or ends with an opening one (、 。 」 「 …)
  var NO_START = /^[、。，．・：；？！ー）」』】〕〉》”’,.:;!?)\]}…]/, NO_END = /[（「『【〔〈《“‘(\[{]$/;
  function wide(g) { return g.codePointAt(0) >= 0x2e80; }  // CJK and the like, emoji
  // a line may end between g[b - 1] and g[b]: at a space, after an id's separator, next
  // to a CJK character
  function breakable(g, b) {
    if (NO_START.test(g[b]) || NO_END.test(g[b - 1])) { return false; }
    return SPACE.test(g[b]) || SPACE.test(g[b - 1]) || AFTER.test(g[b - 1]) || wide(g[b - 1]) || wide(g[b]);
  }

  // value in at most maxLines lines of at most max px, the last one cut with an ellipsis
  // when more is left; a word longer than a line is broken where it reaches the edge
  function wrap(value, font, max, maxLines) {
    var g = graphemes(value), out = [], i = 0;
    function part(a, b) { return g.slice(a, b).join("").replace(/\s+$/, ""); }
    function fit(a, suffix) {  // the largest b > a with part(a, b) + suffix within max
      var lo = a + 1, hi = g.length;
      while (lo < hi) {
        var mid = Math.ceil((lo + hi) / 2);
        if (measure(font, part(a, mid) + suffix) <= max) { lo = mid; } else { hi = mid - 1; }
      }
      return lo;
    }
    while (i < g.length && out.length < maxLines) {
      while (i < g.length && SPACE.test(g[i])) { i++; }
      if (i >= g.length) { break; }
      var end = fit(i, "");
      if (end >= g.length) { out.push(part(i, g.length)); break; }
      if (out.length === maxLines - 1) {
        var cut = fit(i, "…");
        out.push(measure(font, part(i, cut) + "…") <= max ? part(i, cut) + "…" : "…");
        break;
      }
      var b = end;
      while (b > i + 1 && !breakable(g, b)) { b--; }
      if (!breakable(g, b)) { b = end; }
      out.push(part(i, b));
      i = b;
    }
    return out.length ? out : [""];
  }

  function widest(font, values) {
    return Math.max.apply(null, values.map(function (v) { return measure(font, v); }));
  }

  // Block sizes: at least MIN_W wide (short labels), at most MAX_W (a long label wraps onto
  // up to three lines instead), PAD on each side of the text.
  var MIN_W = 130, MAX_W = 240, PAD = 8;

  function draw() {
    var holder = document.getElementById("graph");
    var data = document.getElementById("graph-data");
    if (!holder || !data || !window.dagre) { return; }
    var graph = JSON.parse(data.textContent);
    var fonts = fontsOf(holder);
    var g = new dagre.graphlib.Graph({ compound: true, multigraph: true });
    g.setGraph({ rankdir: "LR", nodesep: 18, ranksep: 46, marginx: 8, marginy: 8 });
    g.setDefaultEdgeLabel(function () { return {}; });
    var byId = {}, fitted = {};
    graph.nodes.forEach(function (n) {
      byId[n.id] = n;
      if (n.container) {  // sized by dagre around its body; its heading is fitted after
        g.setNode(n.id, {});
        g.setNode(n.id + "::start", { width: 14, height: 14, port: true });
        g.setNode(n.id + "::end", { width: 14, height: 14, port: true });
        g.setParent(n.id + "::start", n.id);
        g.setParent(n.id + "::end", n.id);
        g.setEdge(n.id + "::start", n.id + "::end", { minlen: 1, weight: 0, hidden: true }, "axis");
      } else {
        var label = wrap(n.label, fonts.label, MAX_W - 2 * PAD, 3);
        var summary = wrap((SIGNS[n.status] || "") + " " + statusWord(n.status === "not_run" ? "not run" : n.summary),
          fonts.summary, MAX_W - 2 * PAD, 1);
        var inner = Math.max(widest(fonts.label, label), widest(fonts.summary, summary));
        fitted[n.id] = { label: label, summary: summary[0] };
        g.setNode(n.id, { width: Math.max(MIN_W, Math.min(MAX_W, Math.ceil(inner) + 2 * PAD)),
          height: 46 + LINE * (label.length - 1) });
      }
    });
    graph.nodes.forEach(function (n) { if (n.parent) { g.setParent(n.id, n.parent); } });
    graph.edges.forEach(function (e, i) {
      var v = e.source_end ? e.source + "::" + e.source_end : e.source;
      var w = e.target_end ? e.target + "::" + e.target_end : e.target;
      if (g.hasNode(v) && g.hasNode(w)) {
        var label = e.label ? wrap(e.label, fonts.edge, 160, 1)[0] : "";
        g.setEdge(v, w, { edge: e, text: label, width: label ? Math.ceil(measure(fonts.edge, label)) : 0,
          height: label ? 12 : 0, labelpos: "c" }, "e" + i);
      }
    });
    graph.nodes.forEach(function (n) {  // a body with no edges still sits inside its box
      // (a nested loop through its entry port: dagre takes no edge to a box itself)
      var id = n.container ? n.id + "::start" : n.id;
      if (n.parent && byId[n.parent] && g.inEdges(id).length === 0 && g.outEdges(id).length === 0) {
        g.setEdge(n.parent + "::start", id, { hidden: true }, "fill" + n.id);
      }
    });
    dagre.layout(g);
    // containers first, outermost first, so nested boxes sit on top
    var containers = graph.nodes.filter(function (n) { return n.container; });
    containers.sort(function (a, b) { return depth(a) - depth(b); });
    function depth(n) { var d = 0; while (n.parent && byId[n.parent]) { d++; n = byId[n.parent]; } return d; }
    // A container's heading (its label on up to two lines, its type and progress) is
    // fitted to the width dagre gave it; dagre keeps no room for it, so where its body
    // comes closer to its top, everything from its top edge down moves down to make room
    // (the boxes across that line grow): innermost first, so outer boxes make room for
    // the inner ones' headings too.
    function inside(id, outer) {
      for (var p = g.parent(id); p; p = g.parent(p)) { if (p === outer) { return true; } }
      return false;
    }
    function bodyTop(cid) {  // the highest point of what is drawn inside container cid
      var box = g.node(cid), lowest = box.y + box.height / 2;
      var left = box.x - box.width / 2, right = box.x + box.width / 2, top = box.y - box.height / 2;
      var best = lowest;
      g.nodes().forEach(function (id) {
        if (inside(id, cid)) { var b = g.node(id); best = Math.min(best, b.y - b.height / 2); }
      });
      g.edges().forEach(function (ref) {
        var edge = g.edge(ref);
        if (edge.hidden || !edge.points) { return; }
        edge.points.forEach(function (p) {
          if (p.x >= left && p.x <= right && p.y >= top && p.y <= lowest) { best = Math.min(best, p.y - 2); }
        });
        if (edge.text && edge.x >= left && edge.x <= right && edge.y >= top && edge.y <= lowest) {
          best = Math.min(best, edge.y - edge.height / 2 - 2);
        }
      });
      return best;
    }
    function makeRoom(line, by) {  // moves down by `by` what lies below `line`
      var moved = {};
      g.nodes().forEach(function (id) {
        var b = g.node(id);
        if (g.children(id).length) {  // a box: its edges move on their own
          var top = b.y - b.height / 2, bottom = b.y + b.height / 2;
          if (top > line) { top += by; }
          if (bottom > line) { bottom += by; }
          b.y = (top + bottom) / 2;
          b.height = bottom - top;
        } else if (b.y > line) {
          b.y += by;
          moved[id] = true;
        }
      });
      g.edges().forEach(function (ref) {  // edges keep their ends on their nodes
        var edge = g.edge(ref), last = edge.points ? edge.points.length - 1 : -1;
        (edge.points || []).forEach(function (p, i) {
          if (i === 0 ? moved[ref.v] : i === last ? moved[ref.w] : p.y > line) { p.y += by; }
        });
        if (edge.y !== undefined && edge.y > line) { edge.y += by; }
      });
    }
    var grown = 0;
    containers.slice().reverse().forEach(function (n) {
      var box = g.node(n.id), inner = box.width - 2 * PAD;
      var title = wrap((SIGNS[n.status] || "") + " " + n.label, fonts.title, inner, 2);
      fitted[n.id] = { label: title, summary: wrap(n.type + " · " + n.summary, fonts.summary, inner, 1)[0] };
      var top = box.y - box.height / 2, room = bodyTop(n.id) - top, needed = 40 + LINE * (title.length - 1);
      if (room < needed) {
        var by = Math.ceil(needed - room);
        makeRoom(top, by);
        grown += by;
      }
    });
    var size = g.graph();
    // dagre sizes the graph by its nodes and labels; an edge routed around them can
    // pass outside, so the view also spans every edge's points
    var x0 = 0, y0 = 0, x1 = size.width, y1 = size.height + grown + 8;
    g.edges().forEach(function (ref) {
      var edge = g.edge(ref);
      if (edge.hidden || !edge.points) { return; }
      edge.points.forEach(function (p) {
        x0 = Math.min(x0, p.x - 8); y0 = Math.min(y0, p.y - 8);
        x1 = Math.max(x1, p.x + 8); y1 = Math.max(y1, p.y + 8);
      });
    });
    x0 = Math.floor(x0); y0 = Math.floor(y0);
    var width = Math.ceil(x1) - x0, height = Math.ceil(y1) - y0;
    var svg = el("svg", { width: width, height: height,
      viewBox: x0 + " " + y0 + " " + width + " " + height, role: "group",
      "aria-label": holder.getAttribute("data-label") || "Workflow graph" });
    var defs = el("defs", {}, svg);
    var marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
    el("path", { d: "M0,0 L10,5 L0,10 z", fill: "#6b7280" }, marker);
    // a label cut short is whole in the link's aria-label and in its tooltip (<title>)
    containers.forEach(function (n) {
      var box = g.node(n.id), shown = fitted[n.id];
      var link = el("a", { href: n.href, "class": "cluster st-" + n.status + (n.failed_items ? " failed" : ""),
        "aria-label": n.label + ", " + n.type + ", " + statusWord(n.status) + ", " + n.summary }, svg);
      tooltip(link, n.label + " (" + n.type + ", " + n.summary + ")");
      var x = box.x - box.width / 2, y = box.y - box.height / 2;
      el("rect", { x: x, y: y, width: box.width, height: box.height, rx: 8 }, link);
      lines(link, x + PAD, y + 16, shown.label, "title");
      text(link, x + PAD, y + 31 + LINE * (shown.label.length - 1), shown.summary, "summary");
    });
    g.edges().forEach(function (ref) {
      var edge = g.edge(ref);
      if (edge.hidden || !edge.points) { return; }
      var d = edge.points.map(function (p, i) { return (i ? "L" : "M") + p.x.toFixed(1) + "," + p.y.toFixed(1); }).join(" ");
      var path = el("path", { d: d, "class": "edge" + (edge.edge && edge.edge.generated ? " generated" : ""), "marker-end": "url(#arrow)" }, svg);
      if (edge.edge) {
        tooltip(path, edge.edge.title);
        if (edge.text && edge.x !== undefined) { text(svg, edge.x - edge.width / 2, edge.y + 4, edge.text, "edge-label"); }
      }
    });
    g.nodes().forEach(function (id) {
      var box = g.node(id);
      if (box.port) {
        var circle = el("circle", { cx: box.x, cy: box.y, r: 6, "class": "port" }, svg);
        tooltip(circle, /::start$/.test(id) ? "each item enters here" : "each item's result leaves here");
        return;
      }
      var n = byId[id];
      if (!n || n.container) { return; }
      var shown = fitted[id];
      var link = el("a", { href: n.href, "class": "block st-" + n.status,
        "aria-label": n.label + ", " + n.type + ", " + statusWord(n.status) + (n.summary ? ", " + n.summary : "") }, svg);
      tooltip(link, n.label + " (" + n.type + ")");
      var x = box.x - box.width / 2, y = box.y - box.height / 2;
      el("rect", { x: x, y: y, width: box.width, height: box.height, rx: 6, "class": "node" }, link);
      lines(link, x + PAD, y + 18, shown.label, "label");
      text(link, x + PAD, y + 35 + LINE * (shown.label.length - 1), shown.summary, "summary");
    });
    holder.replaceChildren(svg);
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("stepwell:updated", draw);
})();
