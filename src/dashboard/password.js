// Changing the password: the answer carries a new login token (every older one, and the
// websocket it opened, stops working), and says how many API keys were revoked or are still
// active, so the page can offer to revoke them.

import { api, ApiError, session } from "./api.js";
import { $, busy, fieldError, setText } from "./dom.js";

const FIELDS = { current_password: "password-current", new_password: "password-new" };

/** live: the page's Live connection, moved over to the new token; onKeysChanged(): reload keys. */
export function createPasswordForm({ live, onKeysChanged }) {
  const form = $("password-form");
  form.onsubmit = (submit) => {
    submit.preventDefault();
    busy(submit.submitter || form.querySelector("button"), async () => {
      for (const id of Object.values(FIELDS)) fieldError(id, "");
      setText("password-error", "");
      setText("password-done", "");
      const revoke = $("password-revoke-keys").checked;
      // The server closes this token's websocket as soon as the password changes: let go of
      // it first, so that close is not taken for a logout.
      live.stop();
      try {
        const changed = await api("POST", "/api/auth/password", {
          current_password: $("password-current").value,
          new_password: $("password-new").value,
          revoke_api_keys: revoke,
        });
        session.token = changed.token;
        form.reset();
        const keys = changed.api_keys_revoked
          ? ` ${plural(changed.api_keys_revoked, "API key")} revoked.`
          : changed.api_keys_active
            ? ` Your ${plural(changed.api_keys_active, "API key")} still work — tick the box to revoke them.`
            : "";
        setText("password-done", `Password changed; other browsers are logged out.${keys}`);
        onKeysChanged();
      } catch (error) {
        const id = error instanceof ApiError && FIELDS[error.field];
        if (id) {
          fieldError(id, error.message);
          $(id).focus();
        } else {
          setText("password-error", error.message);
        }
      } finally {
        live.start(session.token);
      }
    });
  };
}

function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}
