// Draws the run's workflow graph left to right: blocks coloured by their steps' status
// (with a symbol and the status word), loop containers as boxes with item progress.
// Layout: the vendored dagre (static/vendor/dagre.min.js). Text is set with
// textContent only, so labels from workflows are never parsed as HTML.
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

  function clip(value, n) { return value.length > n ? value.slice(0, n - 1) + "…" : value; }

  function statusWord(s) { return s.replace(/_/g, " "); }

  function draw() {
    var holder = document.getElementById("graph");
    var data = document.getElementById("graph-data");
    if (!holder || !data || !window.dagre) { return; }
    var graph = JSON.parse(data.textContent);
    var g = new dagre.graphlib.Graph({ compound: true, multigraph: true });
    g.setGraph({ rankdir: "LR", nodesep: 18, ranksep: 46, marginx: 8, marginy: 8 });
    g.setDefaultEdgeLabel(function () { return {}; });
    var byId = {};
    graph.nodes.forEach(function (n) {
      byId[n.id] = n;
      if (n.container) {
        g.setNode(n.id, { paddingTop: 40 });
        g.setNode(n.id + "::start", { width: 14, height: 14, port: true });
        g.setNode(n.id + "::end", { width: 14, height: 14, port: true });
        g.setParent(n.id + "::start", n.id);
        g.setParent(n.id + "::end", n.id);
        g.setEdge(n.id + "::start", n.id + "::end", { minlen: 1, weight: 0, hidden: true }, "axis");
      } else {
        var width = Math.max(130, Math.min(240, 12 + 7 * Math.max(n.label.length, n.summary.length + 4)));
        g.setNode(n.id, { width: width, height: 46 });
      }
    });
    graph.nodes.forEach(function (n) { if (n.parent) { g.setParent(n.id, n.parent); } });
    graph.edges.forEach(function (e, i) {
      var v = e.source_end ? e.source + "::" + e.source_end : e.source;
      var w = e.target_end ? e.target + "::" + e.target_end : e.target;
      if (g.hasNode(v) && g.hasNode(w)) {
        g.setEdge(v, w, { edge: e, width: e.label ? 7 * e.label.length : 0, height: e.label ? 12 : 0, labelpos: "c" }, "e" + i);
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
    var size = g.graph();
    // dagre sizes the graph by its nodes and labels; an edge routed around them can
    // pass outside, so the view also spans every edge's points
    var x0 = 0, y0 = 0, x1 = size.width, y1 = size.height + 8;
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
    // containers first, outermost first, so nested boxes sit on top
    var containers = graph.nodes.filter(function (n) { return n.container; });
    containers.sort(function (a, b) { return depth(a) - depth(b); });
    function depth(n) { var d = 0; while (n.parent && byId[n.parent]) { d++; n = byId[n.parent]; } return d; }
    containers.forEach(function (n) {
      var box = g.node(n.id);
      var link = el("a", { href: n.href, "class": "cluster st-" + n.status + (n.failed_items ? " failed" : ""),
        "aria-label": n.label + ", " + n.type + ", " + statusWord(n.status) + ", " + n.summary }, svg);
      el("rect", { x: box.x - box.width / 2, y: box.y - box.height / 2, width: box.width, height: box.height, rx: 8 }, link);
      text(link, box.x - box.width / 2 + 8, box.y - box.height / 2 + 16, (SIGNS[n.status] || "") + " " + clip(n.label, 40), "title");
      text(link, box.x - box.width / 2 + 8, box.y - box.height / 2 + 31, n.type + " · " + n.summary, "summary");
    });
    g.edges().forEach(function (ref) {
      var edge = g.edge(ref);
      if (edge.hidden || !edge.points) { return; }
      var d = edge.points.map(function (p, i) { return (i ? "L" : "M") + p.x.toFixed(1) + "," + p.y.toFixed(1); }).join(" ");
      var path = el("path", { d: d, "class": "edge" + (edge.edge && edge.edge.generated ? " generated" : ""), "marker-end": "url(#arrow)" }, svg);
      if (edge.edge) {
        var title = el("title", {}, path);
        title.textContent = edge.edge.title;
        if (edge.edge.label && edge.x !== undefined) { text(svg, edge.x - edge.width / 2, edge.y + 4, edge.edge.label, "edge-label"); }
      }
    });
    g.nodes().forEach(function (id) {
      var box = g.node(id);
      if (box.port) {
        var circle = el("circle", { cx: box.x, cy: box.y, r: 6, "class": "port" }, svg);
        var t = el("title", {}, circle);
        t.textContent = /::start$/.test(id) ? "each item enters here" : "each item's result leaves here";
        return;
      }
      var n = byId[id];
      if (!n || n.container) { return; }
      var link = el("a", { href: n.href, "class": "block st-" + n.status,
        "aria-label": n.label + ", " + n.type + ", " + statusWord(n.status) + (n.summary ? ", " + n.summary : "") }, svg);
      var x = box.x - box.width / 2, y = box.y - box.height / 2;
      el("rect", { x: x, y: y, width: box.width, height: box.height, rx: 6, "class": "node" }, link);
      text(link, x + 8, y + 18, clip(n.label, Math.floor(box.width / 7)), "");
      text(link, x + 8, y + 35, (SIGNS[n.status] || "") + " " + clip(statusWord(n.status === "not_run" ? "not run" : n.summary), Math.floor(box.width / 6.5)), "summary");
    });
    holder.replaceChildren(svg);
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("stepwell:updated", draw);
})();
