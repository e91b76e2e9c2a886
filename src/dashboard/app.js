// Entry point: login and registration, hash routing between the views, and wiring the live
// event stream to the cards.

import { api, ApiError, session } from "./api.js";
import { $, busy, fieldError, setText } from "./dom.js";
import { Live } from "./live.js";
import { createConnection } from "./connection.js";
import { createMessages } from "./messages.js";
import { createKeys } from "./keys.js";
import { createWebhooks } from "./webhooks.js";
import { createConversations } from "./conversations.js";
import { createPlan } from "./plan.js";
import { createPasswordForm } from "./password.js";
import { createAdmin } from "./admin.js";
import { createResetForms, resetToken } from "./reset.js";

const MODE_LABELS = { live: "Live", polling: "Polling", connecting: "Connecting…", offline: "Offline" };

let current = null; // { user, connection, messages, keys, webhooks, conversations, live, admin } while logged in

function show(view) {
  for (const id of ["view-auth", "view-home", "view-keys", "view-webhooks", "view-admin"]) $(id).hidden = id !== `view-${view}`;
}

function route() {
  const hash = location.hash || "#/";
  if (!current) {
    show("auth");
    const view = resetToken() !== null ? "reset" : { "#/register": "register", "#/forgot": "forgot" }[hash] || "login";
    for (const name of ["login", "register", "forgot", "reset"]) $(`${name}-form`).hidden = name !== view;
    // The tabs are for logging in and registering; the reset forms stand alone.
    $("view-auth").querySelector(".tabs").hidden = view === "reset";
    $(view === "register" ? "tab-register" : "tab-login").setAttribute("aria-current", "page");
    $(view === "register" ? "tab-login" : "tab-register").removeAttribute("aria-current");
    document.title = {
      login: "Log in · botwave",
      register: "Create account · botwave",
      forgot: "Forgot password · botwave",
      reset: "New password · botwave",
    }[view];
    return;
  }
  // Admins only: the admin area answers for #/admin/… hashes (and sets its own title).
  const admin = current.admin ? current.admin.route(hash) : null;
  const keys = hash === "#/keys";
  const webhooks = hash === "#/webhooks";
  const active = admin || (keys ? "keys" : webhooks ? "webhooks" : "home");
  show(active);
  for (const link of $("nav").querySelectorAll("a")) {
    if (link.dataset.route === active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!admin) document.title = keys ? "API keys · botwave" : webhooks ? "Webhooks · botwave" : "Dashboard · botwave";
  if (keys) current.keys.load();
  else current.keys.hideSecret();
  if (webhooks) current.webhooks.load();
  else current.webhooks.hideSecret();
}

async function start() {
  // A reset link opens its form even in a browser still logged in (the reset ends that login).
  if (!session.token || resetToken() !== null) {
    route();
    return;
  }
  let me;
  let config = { demo: false };
  try {
    [me, config] = await Promise.all([api("GET", "/api/auth/me"), api("GET", "/api/dashboard/config").catch(() => config)]);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) session.token = null;
    else setText("login-error", error.message);
    route();
    return;
  }
  const user = me.user;
  const connection = createConnection({ userId: user.id, demo: Boolean(config.demo) });
  const messages = createMessages({ userId: user.id });
  const keys = createKeys();
  const webhooks = createWebhooks();
  const conversations = createConversations({ userId: user.id });
  const plan = createPlan();
  const live = new Live({
    onEvent: (event) => {
      connection.onEvent(event);
      messages.onEvent(event);
      conversations.onEvent(event);
      webhooks.onEvent(event);
      plan.onEvent(event);
    },
    onResync: () => {
      connection.refresh();
      messages.resync();
      conversations.load();
      plan.load();
    },
    onMode: (mode) => {
      const badge = $("live-mode");
      badge.dataset.mode = mode;
      badge.textContent = MODE_LABELS[mode] || mode;
    },
    onAuthFailed: logout,
    // The account became (or stopped being) an admin: start again with the new role.
    onRoleChanged: () => location.reload(),
  });
  createPasswordForm({ live, onKeysChanged: () => keys.load() });
  const admin = user.role === "admin" ? createAdmin({ live, selfId: user.id }) : null;
  current = { user, connection, messages, keys, webhooks, conversations, plan, live, admin };
  $("user-email").textContent = user.email;
  $("nav").hidden = false;
  $("session").hidden = false;
  if (location.hash === "#/login" || location.hash === "#/register") location.hash = "#/";
  route();
  await Promise.all([connection.refresh(), messages.load(), conversations.load(), plan.load()]);
  live.start(session.token);
}

function logout() {
  if (current) current.live.stop();
  current = null;
  session.token = null;
  $("nav").hidden = true;
  $("session").hidden = true;
  // Drop everything the previous user saw, so the next login starts clean.
  location.hash = "#/login";
  location.reload();
}

session.onExpired = () => {
  if (current) logout();
};

async function authenticate(form, path, errorId) {
  const email = form.querySelector("input[type=email]").value.trim();
  const password = form.querySelector("input[type=password]").value;
  const data = await api("POST", path, { email, password });
  session.token = data.token;
  setText(errorId, "");
  location.hash = "#/";
  await start();
}

$("login-form").onsubmit = (submit) => {
  submit.preventDefault();
  const form = $("login-form");
  busy(form.querySelector("button"), async () => {
    setText("login-error", "");
    try {
      await authenticate(form, "/api/auth/login", "login-error");
    } catch (error) {
      setText("login-error", error.code === "invalid_credentials" ? "Wrong email or password." : error.message);
      $("login-password").select();
    }
  });
};

$("register-form").onsubmit = (submit) => {
  submit.preventDefault();
  const form = $("register-form");
  busy(form.querySelector("button"), async () => {
    setText("register-error", "");
    fieldError("register-email", "");
    fieldError("register-password", "");
    try {
      await authenticate(form, "/api/auth/register", "register-error");
    } catch (error) {
      if (error.code === "email_taken") {
        fieldError("register-email", "An account with this email already exists. Log in instead.");
        $("register-email").focus();
      } else if (error.field === "email" || error.field === "password") {
        fieldError(`register-${error.field}`, error.message);
        $(`register-${error.field}`).focus();
      } else {
        setText("register-error", error.message);
      }
    }
  });
};

$("logout").onclick = logout;
createResetForms();
window.addEventListener("hashchange", route);
start();
