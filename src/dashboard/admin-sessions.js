// Admin › Sessions: every WhatsApp session of the installation and the node running it, kept
// live from the websocket (admins hear every session's `session_state`), with disconnect,
// restart and stop.

import { api } from "./api.js";
import { el, formatTime, setText } from "./dom.js";
import { formatPhone } from "./connection.js";
import { actionButton, card, confirmButton, debounce, errorLine, table } from "./admin-ui.js";

export const STATE_LABELS = {
  idle: "Idle",
  connecting: "Connecting…",
  qr: "Waiting for scan",
  connected: "Connected",
  disconnected: "Disconnected",
  failed: "Failed",
};

/** How long after the last state event the list is fetched again for the other columns. */
const REFETCH_AFTER_MS = 300;

export function createSessionsView() {
  const { wrap, body } = table(
    "Every WhatsApp session",
    ["User", "State", "Phone", "Connected since", "Restarts", "Last error", "QR age", "Queued", "Node", "Actions"],
    "admin-sessions-body",
  );
  const empty = el("p", { id: "admin-sessions-empty", class: "hint", hidden: true, text: "No user has started a WhatsApp session yet." });
  const node = el("p", { id: "admin-sessions-node", class: "hint" });
  const root = card("admin-sessions-title", "Sessions", node, wrap, empty, errorLine("admin-sessions-error"));
  let visible = false;

  function stateBadge(state) {
    const known = STATE_LABELS[state] ? state : "idle";
    return el("span", { class: "badge", "data-state": known, text: STATE_LABELS[known] });
  }

  function row(session) {
    const who = `${session.email}'s session`;
    const act = (action) => async () => {
      try {
        await api("POST", `/api/admin/sessions/${encodeURIComponent(session.user_id)}/${action}`);
        setText("admin-sessions-error", "");
      } catch (error) {
        setText("admin-sessions-error", `${session.email}: ${error.message}`);
      }
      await load();
    };
    const user = el("td", { class: "email", text: session.email });
    if (session.user_disabled) user.append(" ", el("span", { class: "tag", text: "disabled" }));
    return el(
      "tr",
      { "data-user-id": session.user_id, "data-state": session.state },
      user,
      el("td", { class: "state" }, stateBadge(session.state)),
      el("td", { class: "to", text: formatPhone(session.phone) }),
      el("td", { class: "time", text: session.connected_since ? formatTime(session.connected_since) : "" }),
      el("td", { class: "num", text: String(session.restart_count) }),
      el("td", { class: "last-error", text: session.last_error || "" }),
      el("td", { class: "num", text: session.qr_age_seconds === null ? "" : `${Math.round(session.qr_age_seconds)} s` }),
      el("td", { class: "num queued", text: String(session.queued_messages) }),
      el("td", { class: "owner-node", text: session.owner_node || "" }),
      el(
        "td",
        { class: "row-actions" },
        confirmButton({
          label: "Disconnect",
          confirm: "Log out?",
          ariaLabel: `Disconnect ${who} (logs the device out)`,
          action: act("disconnect"),
        }),
        actionButton("Restart", `Restart ${who}`, act("restart")),
        actionButton("Stop", `Stop ${who}`, act("stop")),
      ),
    );
  }

  async function load() {
    try {
      const answer = await api("GET", "/api/admin/sessions");
      const rows = answer.sessions.map(row);
      for (const fresh of rows) keepArmedActions(fresh);
      body.replaceChildren(...rows);
      empty.hidden = answer.sessions.length > 0;
      node.textContent = `This page is served by node ${answer.node}; the Node column names the node running each session.`;
      setText("admin-sessions-error", "");
    } catch (error) {
      setText("admin-sessions-error", error.message);
    }
  }

  /** A refetch must not disarm a "Log out?" the admin is about to confirm. */
  function keepArmedActions(fresh) {
    const old = [...body.rows].find((r) => r.dataset.userId === fresh.dataset.userId);
    if (old && old.querySelector("[data-armed]")) fresh.lastElementChild.replaceWith(old.lastElementChild);
  }

  const refetch = debounce(() => {
    if (visible) load();
  }, REFETCH_AFTER_MS);

  /** The state changes in the row at once; the rest (phone, since, errors) follows a fetch. */
  function onEvent(event) {
    if (event.type !== "session_state" || !visible) return;
    const tr = [...body.rows].find((r) => r.dataset.userId === event.user_id);
    if (tr) {
      tr.dataset.state = event.state;
      tr.querySelector(".state").replaceChildren(stateBadge(event.state));
    }
    refetch();
  }

  return {
    root,
    show() {
      visible = true;
      return load();
    },
    hide() {
      visible = false;
    },
    onEvent,
    onResync() {
      if (visible) load();
    },
  };
}
