/* Draws the capacity page's charts (uPlot) from the "series" events of its live stream. */
(function () {
  "use strict";
  var charts = {};
  // Tests and curious operators read what each chart draws from here.
  window.dialqCharts = charts;

  function size(box) {
    return { width: Math.max(280, box.clientWidth), height: 240 };
  }

  function options(box, chart) {
    var s = size(box);
    return {
      title: chart.account + ": live calls, last hour",
      width: s.width,
      height: s.height,
      scales: { y: { range: function () { return [0, Math.max(chart.configured, 1) + 1]; } } },
      axes: [{}, { label: "live calls", incrs: [1, 2, 5, 10, 20, 50, 100] }],
      series: [
        {},
        { label: "live", stroke: "#0b4f9c", fill: "rgba(11,79,156,0.15)", width: 2,
          paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } },
        { label: "configured limit", stroke: "#a8141a", dash: [6, 4], width: 2,
          points: { show: false } },
        { label: "learned limit", stroke: "#8a4b00", dash: [2, 3], width: 2,
          points: { show: false } }
      ]
    };
  }

  function rows(chart) {
    var n = chart.times.length;
    var configured = new Array(n).fill(chart.configured);
    var learned = new Array(n).fill(chart.learned);
    return [chart.times, chart.live, configured, learned];
  }

  function draw(holder, chart) {
    var id = "chart-" + chart.account;
    var entry = charts[chart.account];
    var data = rows(chart);
    if (entry) {
      entry.plot.setData(data);
      entry.data = chart;
      return;
    }
    var box = document.createElement("figure");
    box.className = "chart";
    box.id = id;
    box.setAttribute("aria-label", "Live calls of " + chart.account + " over the last hour");
    holder.appendChild(box);
    var plot = new uPlot(options(box, chart), data, box);
    charts[chart.account] = { plot: plot, data: chart, box: box };
  }

  document.addEventListener("htmx:sseBeforeMessage", function (event) {
    var target = event.target;
    if (!target.hasAttribute("data-series")) { return; }
    event.preventDefault(); // JSON for the charts, not HTML to swap in
    var payload = JSON.parse(event.detail.data);
    payload.charts.forEach(function (chart) { draw(target, chart); });
  });

  window.addEventListener("resize", function () {
    Object.keys(charts).forEach(function (name) {
      var entry = charts[name];
      entry.plot.setSize(size(entry.box));
    });
  });
})();
