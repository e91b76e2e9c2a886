// Admin › Audit log: what admins did, newest first, a page at a time.

import { api } from "./api.js";
import { busy, el, formatTime, setText } from "./dom.js";
import { card, errorLine, table } from "./admin-ui.js";

/** `{"was_running":true}` reads better as `was running: yes`. */
function describe(details) {
  if (!details || typeof details !== "object") return "";
  return Object.entries(details)
    .map(([key, value]) => `${key.replaceAll("_", " ")}: ${value === true ? "yes" : value === false ? "no" : String(value)}`)
    .join(", ");
}

export function createAuditView() {
  const { wrap, body } = table("Admin actions, newest first", ["Time", "Admin", "Action", "Account", "Details"], "admin-audit-body");
  const more = el("button", { type: "button", id: "admin-audit-more", class: "secondary", hidden: true, text: "Load more" });
  const empty = el("p", { id: "admin-audit-empty", class: "hint", hidden: true, text: "No admin actions yet." });
  const root = card("admin-audit-title", "Audit log", wrap, empty, more, errorLine("admin-audit-error"));
  let cursor = null;

  function row(entry) {
    return el(
      "tr",
      {},
      el("td", { class: "time", text: formatTime(entry.at) }),
      el("td", { class: "email", text: entry.actor_email }),
      el("td", {}, el("code", { text: entry.action })),
      el("td", { class: "email", text: entry.target_email || "" }),
      el("td", { text: describe(entry.details) }),
    );
  }

  async function load(append) {
    const query = new URLSearchParams({ limit: "50" });
    if (append && cursor) query.set("cursor", cursor);
    try {
      const answer = await api("GET", `/api/admin/audit?${query}`);
      const rows = answer.entries.map(row);
      if (append) body.append(...rows);
      else body.replaceChildren(...rows);
      cursor = answer.next_cursor;
      more.hidden = !cursor;
      empty.hidden = body.rows.length > 0;
      setText("admin-audit-error", "");
    } catch (error) {
      setText("admin-audit-error", error.message);
    }
  }

  more.onclick = () => busy(more, () => load(true));

  return {
    root,
    show: () => load(false),
    hide() {},
    onEvent() {},
    onResync() {},
  };
}
