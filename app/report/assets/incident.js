// Tapio's incident page: draws each root cause's graph with Cytoscape.js and the dagre layout (root cause on
// the left, impact on the right) once its section is open. `tapio.graphs[rank]` is the drawn graph.
(function () {
  "use strict";
  var elements = JSON.parse(document.getElementById("tapio-elements").textContent);
  var ROLE = { root: "#c62828", impacted: "#ef6c00", context: "#90a4ae" };
  var style = [
    { selector: "node", style: {
      "label": "data(label)", "text-wrap": "wrap", "text-valign": "center", "text-halign": "center",
      "font-size": 10, "width": 150, "height": 42, "shape": "round-rectangle", "color": "#fff",
      "background-color": function (n) { return ROLE[n.data("role")] || ROLE.context; },
      "text-max-width": 140 } },
    { selector: "node[role = 'root']", style: { "border-width": 4, "border-color": "#4a0000", "font-weight": "bold" } },
    { selector: "node[role = 'context']", style: { "color": "#102027", "background-opacity": 0.45 } },
    { selector: "edge", style: {
      "label": "data(label)", "font-size": 9, "curve-style": "bezier", "target-arrow-shape": "triangle",
      "width": 1, "line-color": "#b0bec5", "target-arrow-color": "#b0bec5", "text-background-color": "#fff",
      "text-background-opacity": 0.85, "text-background-padding": 2, "color": "#455a64" } },
    { selector: "edge.backwards", style: { "target-arrow-shape": "none", "source-arrow-shape": "triangle",
      "source-arrow-color": "#b0bec5" } },
    { selector: "edge[type = 'CAUSED']", style: { "width": 3, "line-color": "#c62828", "target-arrow-color": "#c62828",
      "color": "#c62828", "font-weight": "bold" } },
    { selector: "edge[type = 'PRECEDED']", style: { "width": 2, "line-style": "dashed", "line-color": "#ef6c00",
      "target-arrow-color": "#ef6c00", "color": "#ef6c00" } }
  ];
  var tapio = window.tapio = { graphs: {} };

  function draw(rank) {
    if (tapio.graphs[rank] || !elements[rank]) { return; }
    var cy = tapio.graphs[rank] = cytoscape({
      container: document.getElementById("graph-" + rank), elements: elements[rank], style: style,
      minZoom: 0.2, maxZoom: 3
    });
    cy.one("layoutstop", function () {  // a small graph is drawn at its size, not blown up to the frame
      if (cy.zoom() > 1.2) { cy.zoom(1.2); cy.center(); }
    });
    cy.layout({ name: "dagre", rankDir: "LR", nodeSep: 18, rankSep: 90, edgeSep: 8 }).run();
  }

  document.querySelectorAll("details.cause").forEach(function (section) {
    var rank = section.getAttribute("data-rank");
    if (section.open) { draw(rank); }
    section.addEventListener("toggle", function () { if (section.open) { draw(rank); } });
  });
})();
