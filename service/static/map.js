// The search page's map: an enhancement over the result list, which stays the page's content.
// Reads each card's data-lat / data-lon; draws one numbered marker per place; clicking a
// marker moves to its card. Tiles only when the operator set a tile URL (data-tiles): without
// it the markers stand on a plain background and nothing is fetched from another site.
(function () {
  "use strict";
  var box = document.getElementById("map");
  if (!box || !window.L) { return; }
  var cards = Array.prototype.slice.call(document.querySelectorAll("ol.cards > li[data-lat]"));
  var list = document.querySelector("ol.cards");
  var first = list ? parseInt(list.getAttribute("start") || "1", 10) : 1;
  var all = Array.prototype.slice.call(document.querySelectorAll("ol.cards > li"));
  var points = [];
  box.hidden = false;
  var note = document.getElementById("map-note");
  if (note) { note.hidden = false; }
  var map = window.L.map(box, { scrollWheelZoom: false, zoomSnap: 0.5 });
  map.attributionControl.setPrefix(false);
  var tiles = box.getAttribute("data-tiles");
  if (tiles) {
    window.L.tileLayer(tiles, {
      maxZoom: 19, attribution: box.getAttribute("data-attribution") || ""
    }).addTo(map);
  }
  cards.forEach(function (card) {
    var lat = parseFloat(card.getAttribute("data-lat"));
    var lon = parseFloat(card.getAttribute("data-lon"));
    if (!isFinite(lat) || !isFinite(lon)) { return; }
    var link = card.querySelector("a.result-link");
    var number = first + all.indexOf(card);
    var label = document.createElement("span");  // text only: never parsed as HTML
    label.textContent = number + ". " + (link ? link.textContent : "");
    var marker = window.L.circleMarker([lat, lon], {
      radius: 9, weight: 2, color: "#0b5cad", fillColor: "#ffffff", fillOpacity: 1
    }).addTo(map);
    marker.bindTooltip(label, { direction: "top", offset: [0, -8] });
    marker.on("click", function () {
      card.scrollIntoView({ block: "center" });
      if (link) { link.focus({ preventScroll: true }); }
    });
    points.push([lat, lon]);
  });
  if (points.length === 1) {
    map.setView(points[0], 15);
  } else {
    map.fitBounds(points, { padding: [24, 24], maxZoom: 16 });
  }
}());
