// Building blocks the admin views share: cards, tables, the two-step confirm, and number and
// duration formats. Like dom.js, text only ever goes in through textContent.

import { busy, el } from "./dom.js";

/** A card with a heading; `id` names the heading so the card can be labelled by it. */
export function card(id, title, ...children) {
  return el("section", { class: "card wide", "aria-labelledby": id }, el("h2", { id, text: title }), ...children);
}

/** A scrollable table with a hidden caption; returns the wrapper and its tbody. */
export function table(caption, headers, bodyId) {
  const body = el("tbody", { id: bodyId });
  const head = el("tr", {}, ...headers.map((name) => el("th", { scope: "col", text: name })));
  const wrap = el(
    "div",
    { class: "table-wrap" },
    el("table", { class: "admin-table" }, el("caption", { class: "visually-hidden", text: caption }), el("thead", {}, head), body),
  );
  return { wrap, body };
}

/** An error line that screen readers announce; empty ones take no space (see style.css). */
export function errorLine(id) {
  return el("p", { id, class: "error", role: "alert" });
}

/**
 * A button whose first click asks, in place, for a second within five seconds: destructive
 * actions must not happen on one slip of the mouse.
 */
export function confirmButton({ label, confirm, className = "danger small", ariaLabel, action }) {
  const button = el("button", { type: "button", class: className, text: label, "aria-label": ariaLabel });
  let armed = null;
  button.onclick = () => {
    if (!armed) {
      button.textContent = confirm;
      button.dataset.armed = "true";
      armed = setTimeout(disarm, 5000);
      return;
    }
    disarm();
    busy(button, action);
  };
  function disarm() {
    clearTimeout(armed);
    armed = null;
    button.textContent = label;
    delete button.dataset.armed;
  }
  return button;
}

/** A small button running `action` while disabled. */
export function actionButton(label, ariaLabel, action, className = "secondary small") {
  const button = el("button", { type: "button", class: className, text: label, "aria-label": ariaLabel });
  button.onclick = () => busy(button, action);
  return button;
}

export function formatCount(value) {
  return Number(value || 0).toLocaleString();
}

export function formatRate(rate) {
  return rate === null || rate === undefined ? "—" : `${(rate * 100).toFixed(1)} %`;
}

/** 850 ms, 4.2 s, 3 min 5 s, 2 h 10 min: precise where small, coarse where large. */
export function formatDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** Calls `fn` once, `ms` after the last of a burst of calls. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
