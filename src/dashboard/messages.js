// The send form and the message log. The log updates in place from `message_status` events
// (or, without a websocket, from periodic re-reads of its first page).

import { api, ApiError } from "./api.js";
import { $, busy, el, fieldError, formatTime, setText } from "./dom.js";
import { formatPhone } from "./connection.js";

const PAGE = 20;
const RANK = { queued: 0, sending: 1, sent: 2, delivered: 3, read: 4, failed: 5 };
const STATUS_LABELS = {
  queued: "Queued",
  sending: "Sending",
  sent: "Sent",
  delivered: "Delivered",
  read: "Read",
  failed: "Failed",
};

export function createMessages({ userId }) {
  const rows = new Map(); // message id → <tr>
  let cursor = null;
  let generation = 0; // discards answers to requests made before the filters changed

  function filters() {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if ($("log-status").value) query.set("status", $("log-status").value);
    if ($("log-source").value) query.set("source", $("log-source").value);
    return query;
  }

  function matchesFilters(message) {
    const status = $("log-status").value;
    const source = $("log-source").value;
    return (!status || message.status === status) && (!source || message.source === source);
  }

  // A queued message that pacing holds shows as scheduled, with the time it is due.
  function statusBadge(status, error, notBefore) {
    const scheduled = status === "queued" && notBefore && new Date(notBefore) > new Date();
    return el("span", {
      class: scheduled ? "status scheduled" : "status",
      "data-status": status,
      title: error || (scheduled ? `Paced: due ${new Date(notBefore).toLocaleString()}` : undefined),
      text: scheduled ? `Scheduled ${formatTime(notBefore)}` : STATUS_LABELS[status] || status,
    });
  }

  function row(message) {
    const tr = el(
      "tr",
      { "data-id": message.id },
      el("td", { class: "time" }, el("time", { datetime: message.created_at, text: formatTime(message.created_at) })),
      el("td", { class: "to", text: formatPhone(message.recipient) }),
      el("td", { class: "body", text: message.body }),
      el("td", { class: "source", text: message.source === "api" ? "API" : "Dashboard" }),
      el("td", { class: "status-cell" }, statusBadge(message.status, message.error, message.not_before)),
    );
    tr.dataset.status = message.status;
    tr.dataset.notBefore = message.not_before || "";
    return tr;
  }

  function setStatus(tr, status, error, force, notBefore) {
    const current = tr.dataset.status;
    const moves = force || current === "failed" || (RANK[status] ?? 0) >= (RANK[current] ?? 0);
    const rescheduled = status === "queued" && (notBefore || "") !== tr.dataset.notBefore;
    if (!moves || (current === status && !error && !rescheduled)) return false;
    tr.dataset.status = status;
    tr.dataset.notBefore = notBefore || "";
    tr.querySelector(".status-cell").replaceChildren(statusBadge(status, error, notBefore));
    return true;
  }

  function updateEmpty() {
    $("log-empty").hidden = rows.size > 0;
  }

  function append(messages) {
    for (const message of messages) {
      if (rows.has(message.id)) continue;
      const tr = row(message);
      rows.set(message.id, tr);
      $("log-body").append(tr);
    }
    updateEmpty();
  }

  function prepend(message) {
    if (rows.has(message.id) || !matchesFilters(message)) return;
    const tr = row(message);
    rows.set(message.id, tr);
    $("log-body").prepend(tr);
    updateEmpty();
  }

  async function load() {
    const mine = ++generation;
    rows.clear();
    $("log-body").replaceChildren();
    cursor = null;
    await loadPage(mine);
  }

  async function loadPage(mine) {
    const query = filters();
    if (cursor) query.set("cursor", cursor);
    try {
      const page = await api("GET", `/api/messages?${query}`);
      if (mine !== generation) return;
      setText("log-error", "");
      append(page.messages);
      cursor = page.next_cursor;
      $("log-more").hidden = !cursor;
    } catch (error) {
      if (mine === generation) setText("log-error", error.message);
    }
  }

  /** Merges the newest page into the table: new messages on top, statuses brought up to date. */
  async function resync() {
    const mine = generation;
    let page;
    try {
      page = await api("GET", `/api/messages?${filters()}`);
    } catch {
      return;
    }
    if (mine !== generation) return;
    for (const message of [...page.messages].reverse()) {
      const tr = rows.get(message.id);
      if (tr) setStatus(tr, message.status, message.error, true, message.not_before);
      else if (rows.size === 0 || isNewest(message)) prepend(message);
    }
    if (rows.size === page.messages.length) {
      cursor = page.next_cursor;
      $("log-more").hidden = !cursor;
    }
  }

  function isNewest(message) {
    const first = $("log-body").firstElementChild;
    const time = first && first.querySelector("time");
    return !time || message.created_at >= time.getAttribute("datetime");
  }

  let resyncSoon = null;
  function onEvent(event) {
    if (event.type !== "message_status" || event.user_id !== userId) return;
    const tr = rows.get(event.message_id);
    if (!tr) {
      // Sent from elsewhere (the API, another tab): fetch it with the next read of the log.
      clearTimeout(resyncSoon);
      resyncSoon = setTimeout(resync, 300);
      return;
    }
    if (setStatus(tr, event.status, event.error, false, event.not_before)) {
      const to = tr.querySelector(".to").textContent;
      const what = event.not_before
        ? `scheduled for ${formatTime(event.not_before)}`
        : STATUS_LABELS[event.status] || event.status;
      setText("log-live", `Message to ${to}: ${what}`);
    }
  }

  $("log-status").onchange = load;
  $("log-source").onchange = load;
  $("log-more").onclick = () => busy($("log-more"), () => loadPage(generation));

  $("send-form").onsubmit = (submit) => {
    submit.preventDefault();
    const button = $("send-btn");
    busy(button, async () => {
      fieldError("send-to", "");
      fieldError("send-text", "");
      setText("send-error", "");
      setText("send-result", "");
      const to = $("send-to").value.trim();
      const text = $("send-text").value;
      try {
        const message = await api("POST", "/api/messages/send", { to, text });
        $("send-text").value = "";
        setText("send-result", `Queued for ${formatPhone(message.recipient)}.`);
        prepend(message);
      } catch (error) {
        if (error instanceof ApiError && (error.field === "to" || error.field === "text")) {
          fieldError(`send-${error.field}`, error.message);
          $(`send-${error.field}`).focus();
        } else if (error instanceof ApiError && error.code === "not_paired") {
          setText("send-error", "Link your WhatsApp first: press Connect and scan the QR code.");
        } else {
          setText("send-error", error.message);
        }
      }
    });
  };

  return { load, resync, onEvent };
}
