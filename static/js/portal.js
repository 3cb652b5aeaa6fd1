// opsportal page behaviour, kept out of the HTML so pages need no inline script.
// Charts: an element <div class="chart" data-figure="ID"> is drawn from the JSON in <script id="ID"
// type="application/json">, after page load and after every htmx swap.
(function () {
  "use strict";

  function drawCharts(root) {
    if (typeof window.Plotly === "undefined") return;
    root.querySelectorAll("[data-figure]").forEach(function (el) {
      var source = document.getElementById(el.dataset.figure);
      if (!source) return;
      var figure = JSON.parse(source.textContent);
      var config = Object.assign({ responsive: true, displaylogo: false }, figure.config || {});
      window.Plotly.react(el, figure.data || [], figure.layout || {}, config);
    });
  }

  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
  document.addEventListener("click", function (evt) {
    if (evt.target.closest("[data-print]")) window.print();
  });
  document.addEventListener("htmx:afterSettle", function (evt) { drawCharts(evt.target); });
})();
