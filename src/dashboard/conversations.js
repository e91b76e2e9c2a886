// Conversations: per contact, what was sent to it and what it sent back, in time order, kept
// live from `message_received` and `message_status` events.

import { api } from "./api.js";
import { $, el, formatTime, setText } from "./dom.js";
import { formatPhone } from "./connection.js";

export function createConversations({ userId }) {
  const contacts = new Set();
  let generation = 0;

  function bubble(direction, text, at, status) {
    return el(
      "li",
      { class: `bubble ${direction}`, "data-direction": direction },
      el("p", { class: "text", text }),
      el("p", { class: "meta" }, el("time", { datetime: at, text: formatTime(at) }), status ? ` · ${status}` : ""),
    );
  }

  function addContact(number) {
    if (!number || contacts.has(number)) return;
    contacts.add(number);
    $("conv-contact").append(el("option", { value: number, text: formatPhone(number) }));
    $("conv-empty").hidden = true;
  }

  async function loadContacts() {
    try {
      const [received, sent] = await Promise.all([
        api("GET", "/api/messages?direction=in&limit=200"),
        api("GET", "/api/messages?limit=200"),
      ]);
      for (const message of received.messages) addContact(message.from);
      for (const message of sent.messages) addContact(message.recipient);
      $("conv-empty").hidden = contacts.size > 0;
      if (!$("conv-contact").value && contacts.size > 0) $("conv-contact").value = [...contacts][0];
      await showThread();
    } catch (error) {
      setText("conv-error", error.message);
    }
  }

  async function showThread() {
    const contact = $("conv-contact").value;
    const mine = ++generation;
    if (!contact) {
      $("conv-thread").replaceChildren();
      return;
    }
    const query = new URLSearchParams({ limit: "200" });
    try {
      const [received, sent] = await Promise.all([
        api("GET", `/api/messages?direction=in&contact=${encodeURIComponent(contact)}&${query}`),
        api("GET", `/api/messages?recipient=${encodeURIComponent(contact)}&${query}`),
      ]);
      if (mine !== generation) return;
      const items = [
        ...received.messages.map((m) => ({ at: m.received_at, node: bubble("in", m.text, m.received_at) })),
        ...sent.messages.map((m) => ({ at: m.created_at, node: bubble("out", m.body, m.created_at, m.status) })),
      ].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
      $("conv-thread").replaceChildren(...items.map((item) => item.node));
      setText("conv-error", "");
    } catch (error) {
      if (mine === generation) setText("conv-error", error.message);
    }
  }

  let refreshSoon = null;
  function onEvent(event) {
    if (event.user_id !== userId) return;
    if (event.type === "message_received") {
      const message = event.message;
      addContact(message.from);
      if (!$("conv-contact").value) $("conv-contact").value = message.from;
      if ($("conv-contact").value === message.from) {
        $("conv-thread").append(bubble("in", message.text, message.received_at));
      }
      setText("conv-live", `New message from ${formatPhone(message.from)}`);
    } else if (event.type === "message_status") {
      // A status moved on a sent message: re-read the open thread shortly (several come at once).
      clearTimeout(refreshSoon);
      refreshSoon = setTimeout(loadContacts, 400);
    }
  }

  $("conv-contact").onchange = showThread;

  return { load: loadContacts, onEvent };
}
