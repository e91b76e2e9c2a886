// API keys: create (with its scopes and an optional rate of its own; the secret is shown once,
// with a copy button and a curl example), list, revoke (a second click confirms).

import { api, ApiError } from "./api.js";
import { $, busy, el, fieldError, formatTime, setText } from "./dom.js";

const SCOPES = ["messages:send", "messages:read", "webhooks:manage", "session:read"];
const scopeBox = (scope) => $(`key-scope-${scope.replace(":", "-")}`);

function rateText(rate) {
  // Without one of its own, the account's rate applies: nothing to add.
  return rate ? `${rate.requests_per_second}/s, burst ${rate.burst}` : "";
}

export function createKeys() {
  function row(key) {
    const revoke = el("button", { type: "button", class: "danger small", text: "Revoke", "aria-label": `Revoke ${key.name}` });
    let armed = null;
    revoke.onclick = () => {
      if (!armed) {
        revoke.textContent = "Really revoke?";
        armed = setTimeout(() => {
          armed = null;
          revoke.textContent = "Revoke";
        }, 5000);
        return;
      }
      clearTimeout(armed);
      busy(revoke, async () => {
        try {
          await api("DELETE", `/api/keys/${encodeURIComponent(key.id)}`);
          setText("keys-error", "");
          await load();
        } catch (error) {
          setText("keys-error", error.message);
        }
      });
    };
    return el(
      "tr",
      { "data-id": key.id },
      // What the key may do goes under its name: the table stays narrow enough for the card.
      el("td", {}, el("span", { class: "name", text: key.name }), el("span", { class: "scopes hint" }), el("span", { class: "rate hint" })),
      el("td", {}, el("code", { text: `${key.prefix}…` })),
      el("td", { text: formatTime(key.created_at) }),
      el("td", { class: "last-used" }),
      el("td", { class: "row-actions" }, revoke),
    );
  }

  // Rows are kept across reloads of the list, so a half-done revoke (armed button) or a
  // focused button survives a refresh.
  const rows = new Map(); // key id → <tr>

  function render(keys) {
    const shown = keys.map((key) => {
      let tr = rows.get(key.id);
      if (!tr) {
        tr = row(key);
        rows.set(key.id, tr);
      }
      tr.querySelector(".scopes").textContent = key.scopes.length === SCOPES.length ? "All scopes" : key.scopes.join(", ");
      tr.querySelector(".rate").textContent = rateText(key.rate_limit);
      tr.querySelector(".last-used").textContent = key.last_used_at ? formatTime(key.last_used_at) : "Never";
      return tr;
    });
    const ids = new Set(keys.map((key) => key.id));
    for (const id of [...rows.keys()]) if (!ids.has(id)) rows.delete(id);
    $("keys-body").replaceChildren(...shown);
  }

  async function load() {
    try {
      const { keys } = await api("GET", "/api/keys");
      render(keys);
      $("keys-empty").hidden = keys.length > 0;
      setText("keys-error", "");
    } catch (error) {
      setText("keys-error", error.message);
    }
  }

  function showSecret(secret) {
    setText("key-secret", secret);
    setText("key-copied", "");
    setText(
      "key-curl",
      `curl -X POST ${location.origin}/api/send \\\n` +
        `  -H 'X-Api-Key: ${secret}' \\\n` +
        `  -H 'Content-Type: application/json' \\\n` +
        `  -d '{"to":"+15551234567","text":"Hello from botwave"}'`,
    );
    $("key-secret-panel").hidden = false;
    $("key-copy").focus();
  }

  $("key-form").onsubmit = (submit) => {
    submit.preventDefault();
    busy(submit.submitter || $("key-form").querySelector("button"), async () => {
      const fields = {
        name: "key-name",
        scopes: "key-scopes",
        "rate_limit.requests_per_second": "key-rate",
        "rate_limit.burst": "key-burst",
      };
      for (const id of Object.values(fields)) fieldError(id, "");
      setText("key-error", "");
      const body = {
        name: $("key-name").value,
        scopes: SCOPES.filter((scope) => scopeBox(scope).checked),
      };
      const rate = $("key-rate").value.trim();
      const burst = $("key-burst").value.trim();
      if (burst && !rate) {
        fieldError("key-rate", "give the requests per second with a burst");
        $("key-rate").focus();
        return;
      }
      if (rate) {
        // Sent as typed: the server says what is wrong with it, field by field.
        body.rate_limit = { requests_per_second: Number(rate) };
        if (burst) body.rate_limit.burst = Number(burst);
      }
      try {
        const created = await api("POST", "/api/keys", body);
        $("key-name").value = "";
        $("key-rate").value = "";
        $("key-burst").value = "";
        for (const scope of SCOPES) scopeBox(scope).checked = true;
        showSecret(created.key);
        await load();
      } catch (error) {
        const field = error instanceof ApiError && fields[error.field];
        if (field) {
          fieldError(field, error.message);
          (field === "key-scopes" ? scopeBox(SCOPES[0]) : $(field)).focus();
        } else {
          setText("key-error", error.message);
        }
      }
    });
  };

  $("key-copy").onclick = async () => {
    const secret = $("key-secret").textContent;
    try {
      await navigator.clipboard.writeText(secret);
      setText("key-copied", "Copied to the clipboard.");
    } catch {
      // No clipboard permission (e.g. plain HTTP on a LAN address): select it for Ctrl+C.
      const range = document.createRange();
      range.selectNodeContents($("key-secret"));
      const selection = getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      setText("key-copied", "Selected — press Ctrl+C (⌘C) to copy.");
    }
  };

  /** Leaving the page forgets the secret: it is shown once only. */
  function hideSecret() {
    $("key-secret-panel").hidden = true;
    setText("key-secret", "");
    setText("key-curl", "");
  }

  return { load, hideSecret };
}
