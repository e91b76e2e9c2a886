// Bar charts as inline SVG, built in the page: no chart library, nothing fetched. Colours come
// from classes in admin.css (no inline styles: the CSP forbids them).

import { el } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const MARGIN = { top: 10, right: 8, bottom: 26, left: 40 };
/** A range of one or two days should not paint half the chart in one block. */
const MAX_BAR = 56;

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

/** 1, 2, 5, 10, 20, 50…: the smallest such step giving at most `ticks` steps up to `max`. */
function niceStep(max, ticks) {
  const raw = Math.max(max, 1) / ticks;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  return Math.max(1, step);
}

/**
 * A bar chart of `labels` (the x axis) by `series` ([{ name, className, values }]); stacked
 * series share one bar per label, otherwise they stand side by side. `summary` is what a
 * screen reader hears instead of the picture.
 */
export function barChart({ id, title, labels, series, stacked = true, height = 220, summary }) {
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = height - MARGIN.top - MARGIN.bottom;
  const totals = labels.map((_, i) => series.reduce((sum, s) => sum + (s.values[i] || 0), 0));
  const highest = stacked ? Math.max(0, ...totals) : Math.max(0, ...series.flatMap((s) => s.values));
  const step = niceStep(highest, 4);
  const top = Math.max(step, Math.ceil(highest / step) * step);
  const y = (value) => MARGIN.top + plotHeight - (value / top) * plotHeight;

  const grid = svg("g", { class: "chart-grid" });
  for (let value = 0; value <= top; value += step) {
    grid.append(
      svg("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(value), y2: y(value) }),
      svg("text", { x: MARGIN.left - 6, y: y(value) + 4, "text-anchor": "end" }, value.toLocaleString()),
    );
  }

  const slot = plotWidth / Math.max(labels.length, 1);
  // Label every n-th bar so the axis text never overlaps.
  const every = Math.ceil(labels.length / Math.floor(plotWidth / 48));
  const bars = svg("g", { class: "chart-bars" });
  const axis = svg("g", { class: "chart-axis" });
  labels.forEach((label, i) => {
    const left = MARGIN.left + i * slot;
    if (stacked) {
      const width = Math.min(slot * 0.7, MAX_BAR);
      let base = 0;
      for (const s of series) {
        const value = s.values[i] || 0;
        if (value > 0) {
          bars.append(
            svg(
              "rect",
              { class: s.className, x: left + (slot - width) / 2, y: y(base + value), width, height: y(base) - y(base + value) },
              svg("title", {}, `${label} · ${s.name}: ${value.toLocaleString()}`),
            ),
          );
        }
        base += value;
      }
    } else {
      const width = Math.min((slot * 0.8) / series.length, MAX_BAR);
      const start = left + (slot - width * series.length) / 2;
      series.forEach((s, k) => {
        const value = s.values[i] || 0;
        bars.append(
          svg(
            "rect",
            { class: s.className, x: start + k * width, y: y(value), width: Math.max(width - 1, 1), height: y(0) - y(value) },
            svg("title", {}, `${label} · ${s.name}: ${value.toLocaleString()}`),
          ),
        );
      });
    }
    if (i % every === 0) {
      axis.append(svg("text", { x: left + slot / 2, y: height - 8, "text-anchor": "middle" }, label));
    }
  });

  const picture = svg(
    "svg",
    { viewBox: `0 0 ${WIDTH} ${height}`, role: "img", "aria-label": `${title}. ${summary || ""}`.trim(), class: "chart-svg" },
    grid,
    bars,
    axis,
  );
  const legend =
    series.length > 1
      ? el(
          "ul",
          { class: "chart-legend" },
          ...series.map((s) => el("li", {}, el("span", { class: `swatch ${s.className}`, "aria-hidden": "true" }), s.name)),
        )
      : null;
  return el("figure", { class: "chart", id }, el("figcaption", { text: title }), picture, legend);
}
