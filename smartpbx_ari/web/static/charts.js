// Charts over time as plain SVG (no library, no build step): bars or lines, one point per
// bucket of GET /api/v1/metrics/timeline. Each point carries its bucket's index and the
// API's own value (data-index, data-value) and a <title> for the pointer.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const CHART = { width: 640, height: 200, left: 52, right: 12, top: 22, bottom: 26 };
const COLOURS = ["#2a6fb0", "#d9822b"];

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// spec: { kind: "bars" | "lines", unit, top (fixed y maximum, optional), scale (shown value
// = API value × scale), series: [{ name, value: (bucket) => API value or null }] }
function drawChart(svg, spec, buckets, bucketS) {
  const { width, height, left, right, top, bottom } = CHART;
  const plotW = width - left - right, plotH = height - top - bottom;
  const scale = spec.scale || 1;
  const shown = (v) => Math.round(v * scale * 10) / 10;
  const values = spec.series.flatMap((s) => buckets.map(s.value)).filter((v) => v != null);
  const yTop = spec.top || niceTop(Math.max(0, ...values) * scale);
  const slot = plotW / Math.max(1, buckets.length);
  const x = (i) => left + slot * (i + 0.5);
  const y = (v) => top + plotH * (1 - (v * scale) / yTop);
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.append(svgEl("line", { class: "axis", x1: left, y1: top + plotH, x2: width - right, y2: top + plotH }),
    svgEl("line", { class: "axis", x1: left, y1: top, x2: left, y2: top + plotH }),
    svgEl("text", { class: "tick", x: left - 4, y: top + 4, "text-anchor": "end" }, `${yTop} ${spec.unit}`),
    svgEl("text", { class: "tick", x: left - 4, y: top + plotH, "text-anchor": "end" }, "0"));
  const marks = [...new Set([0, Math.floor((buckets.length - 1) / 2), buckets.length - 1])];
  for (const i of marks.filter((i) => i >= 0)) {
    svg.append(svgEl("text", { class: "tick", x: x(i), y: height - 8, "text-anchor": "middle" },
      axisTime(buckets[i].start, bucketS)));
  }
  spec.series.forEach((series, n) => {
    const colour = COLOURS[n % COLOURS.length];
    svg.append(svgEl("text", { class: "legend", x: left + 8 + 80 * n, y: 12, fill: colour },
      `■ ${series.name}`));
    if (spec.kind === "lines") svg.append(linePath(buckets, series, x, y, colour));
    buckets.forEach((bucket, i) => {
      const value = series.value(bucket);
      if (value == null) return;
      const label = `${axisTime(bucket.start, bucketS)} · ${series.name} ${shown(value)} ${spec.unit}`;
      const attrs = { class: "point", "data-series": series.name, "data-index": i, "data-value": value, fill: colour };
      const point = spec.kind === "bars"
        ? svgEl("rect", { ...attrs, x: x(i) - slot * 0.35, width: slot * 0.7, y: y(value), height: top + plotH - y(value) })
        : svgEl("circle", { ...attrs, cx: x(i), cy: y(value), r: 3 });
      point.append(svgEl("title", {}, label));
      svg.append(point);
    });
  });
  if (!values.length) {
    svg.append(svgEl("text", { class: "empty", x: left + plotW / 2, y: top + plotH / 2, "text-anchor": "middle" }, "no data in this period"));
  }
}

// The series as a line, broken where a bucket has no value
function linePath(buckets, series, x, y, colour) {
  let d = "", pen = "M";
  buckets.forEach((bucket, i) => {
    const value = series.value(bucket);
    if (value == null) { pen = "M"; return; }
    d += `${pen}${x(i).toFixed(1)},${y(value).toFixed(1)} `;
    pen = "L";
  });
  return svgEl("path", { class: "line", d: d.trim() || "M0,0", stroke: colour, fill: "none" });
}
