// Webhooks: create an endpoint (its signing secret is shown once), list them with their state,
// test-ping, pause/resume and delete them, and per endpoint the dead letters (replay one or
// all) and the last attempts with status code, latency and error.

import { api, ApiError } from "./api.js";
import { $, busy, el, fieldError, formatTime, setText } from "./dom.js";

const EVENTS = ["message.status", "message.received", "session.state"];

export function createWebhooks() {
  let selected = null; // endpoint id whose deliveries are shown

  function action(label, aria, onClick, cls = "secondary small") {
    const button = el("button", { type: "button", class: cls, text: label, "aria-label": aria });
    button.onclick = () =>
      busy(button, async () => {
        try {
          await onClick();
          setText("hooks-error", "");
        } catch (error) {
          setText("hooks-error", error.message);
        }
      });
    return button;
  }

  function row(hook) {
    const path = `/api/webhooks/${encodeURIComponent(hook.id)}`;
    const state = hook.paused ? "Paused" : "Active";
    return el(
      "tr",
      { "data-id": hook.id },
      el("td", { class: "url" }, el("code", { text: hook.url })),
      el("td", { class: "events", text: hook.events.join(", ") }),
      el("td", { class: "state", title: hook.paused_reason || undefined, text: state }),
      el("td", {
        class: "pending",
        // A full backlog drops its oldest events (webhooks.max_backlog): say how many.
        title: hook.dropped > 0 ? "Oldest events dropped: the backlog was full" : undefined,
        text: hook.dropped > 0 ? `${hook.pending} (${hook.dropped} dropped)` : String(hook.pending),
      }),
      el("td", { class: "dead", text: String(hook.dead) }),
      el(
        "td",
        { class: "row-actions" },
        action("Test", `Send a test event to ${hook.url}`, async () => {
          const result = await api("POST", `${path}/test`);
          setText(
            "hooks-result",
            result.delivered
              ? `Test delivered: ${result.status_code} in ${result.latency_ms} ms.`
              : `Test failed: ${result.error}`,
          );
          await show(hook.id);
        }),
        action(hook.paused ? "Resume" : "Pause", `${hook.paused ? "Resume" : "Pause"} ${hook.url}`, async () => {
          await api("PATCH", path, { paused: !hook.paused });
          await load();
        }),
        action("Deliveries", `Show deliveries of ${hook.url}`, () => show(hook.id)),
        action("Delete", `Delete ${hook.url}`, async () => {
          await api("DELETE", path);
          if (selected === hook.id) hideDetail();
          await load();
        }, "danger small"),
      ),
    );
  }

  async function load() {
    try {
      const { webhooks } = await api("GET", "/api/webhooks");
      $("hooks-body").replaceChildren(...webhooks.map(row));
      $("hooks-empty").hidden = webhooks.length > 0;
      setText("hooks-error", "");
      if (selected && webhooks.some((hook) => hook.id === selected)) await show(selected);
    } catch (error) {
      setText("hooks-error", error.message);
    }
  }

  function hideDetail() {
    selected = null;
    $("hook-detail").hidden = true;
  }

  async function show(id) {
    selected = id;
    const path = `/api/webhooks/${encodeURIComponent(id)}`;
    const [{ deliveries }, { attempts }] = await Promise.all([
      api("GET", `${path}/deliveries?state=dead`),
      api("GET", `${path}/attempts?limit=20`),
    ]);
    $("dead-body").replaceChildren(
      ...deliveries.map((delivery) =>
        el(
          "tr",
          { "data-id": delivery.id },
          el("td", { text: formatTime(delivery.created_at) }),
          el("td", { text: delivery.event_type }),
          el("td", {}, el("code", { text: delivery.event_id })),
          el("td", { text: String(delivery.attempts) }),
          el("td", { class: "error-cell", text: delivery.last_error || "" }),
          el(
            "td",
            { class: "row-actions" },
            action("Replay", `Replay event ${delivery.event_id}`, async () => {
              await api("POST", `${path}/deliveries/${encodeURIComponent(delivery.id)}/replay`);
              await load();
            }),
          ),
        ),
      ),
    );
    $("dead-empty").hidden = deliveries.length > 0;
    $("dead-replay-all").hidden = deliveries.length === 0;
    $("dead-replay-all").onclick = () =>
      busy($("dead-replay-all"), async () => {
        await api("POST", `${path}/replay`);
        await load();
      });
    $("attempts-body").replaceChildren(
      ...attempts.map((attempt) =>
        el(
          "tr",
          {},
          el("td", { text: formatTime(attempt.at) }),
          el("td", { text: attempt.event_type }),
          el("td", { class: "code", text: attempt.status_code === null ? "—" : String(attempt.status_code) }),
          el("td", { text: `${attempt.latency_ms} ms` }),
          el("td", { class: "error-cell", text: attempt.error || "" }),
        ),
      ),
    );
    $("hook-detail").hidden = false;
  }

  $("hook-form").onsubmit = (submit) => {
    submit.preventDefault();
    busy($("hook-form").querySelector("button"), async () => {
      fieldError("hook-url", "");
      setText("hook-events-error", "");
      setText("hook-error", "");
      const events = EVENTS.filter((event) => $(`hook-event-${event.replace(".", "-")}`).checked);
      try {
        const created = await api("POST", "/api/webhooks", { url: $("hook-url").value.trim(), events });
        $("hook-url").value = "";
        setText("hook-secret", created.secret);
        $("hook-secret-panel").hidden = false;
        await load();
      } catch (error) {
        if (error instanceof ApiError && error.field === "url") {
          fieldError("hook-url", error.message);
          $("hook-url").focus();
        } else if (error instanceof ApiError && error.field === "events") {
          setText("hook-events-error", error.message);
        } else {
          setText("hook-error", error.message);
        }
      }
    });
  };

  /** A paused endpoint (from the live events) or a new event: the counts move. */
  let reloadSoon = null;
  function onEvent(event) {
    if (event.type !== "webhook_paused") return;
    setText("hooks-result", `A webhook endpoint was paused: ${event.reason}`);
    clearTimeout(reloadSoon);
    reloadSoon = setTimeout(load, 200);
  }

  /** Leaving the page forgets the secret: it is shown once only. */
  function hideSecret() {
    $("hook-secret-panel").hidden = true;
    setText("hook-secret", "");
  }

  return { load, hideSecret, onEvent };
}
