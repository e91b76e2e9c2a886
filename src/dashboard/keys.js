// API keys: create (the secret is shown once, with a copy button and a curl example), list,
// revoke (a second click confirms).

import { api, ApiError } from "./api.js";
import { $, busy, el, fieldError, formatTime, setText } from "./dom.js";

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
      el("td", { class: "name", text: key.name }),
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
      fieldError("key-name", "");
      setText("key-error", "");
      try {
        const created = await api("POST", "/api/keys", { name: $("key-name").value });
        $("key-name").value = "";
        showSecret(created.key);
        await load();
      } catch (error) {
        if (error instanceof ApiError && error.field === "name") {
          fieldError("key-name", error.message);
          $("key-name").focus();
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
