// Forgot password: asking for a link by email (#/forgot), and the page that link opens
// (/reset-password?token=…), which sets the new password and sends the user to log in.

import { api } from "./api.js";
import { $, busy, fieldError, setText } from "./dom.js";

/** The token of the reset link this page was opened with, if any. */
export function resetToken() {
  if (location.pathname !== "/reset-password") return null;
  return new URLSearchParams(location.search).get("token") || "";
}

export function createResetForms() {
  $("forgot-form").onsubmit = (submit) => {
    submit.preventDefault();
    const form = $("forgot-form");
    busy(form.querySelector("button"), async () => {
      setText("forgot-error", "");
      setText("forgot-status", "");
      fieldError("forgot-email", "");
      try {
        const answer = await api("POST", "/api/auth/forgot-password", { email: $("forgot-email").value.trim() });
        setText("forgot-status", `${answer.message[0].toUpperCase()}${answer.message.slice(1)}.`);
      } catch (error) {
        if (error.field === "email") fieldError("forgot-email", error.message);
        else setText("forgot-error", error.message);
      }
    });
  };

  $("reset-form").onsubmit = (submit) => {
    submit.preventDefault();
    const form = $("reset-form");
    busy(form.querySelector("button"), async () => {
      setText("reset-error", "");
      fieldError("reset-password", "");
      try {
        await api("POST", "/api/auth/reset-password", { token: resetToken(), new_password: $("reset-password").value });
        // The link is spent: leave its page (and the token in the address bar) behind.
        history.replaceState(null, "", "/#/login");
        setText("login-notice", "Your password was changed. Log in with the new one.");
        window.dispatchEvent(new HashChangeEvent("hashchange"));
      } catch (error) {
        if (error.field === "new_password") fieldError("reset-password", error.message);
        else setText("reset-error", error.message);
      }
    });
  };
}
