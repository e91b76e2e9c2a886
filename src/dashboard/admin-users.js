// Admin › Users: search and page through accounts, create one, and per account disable or
// enable, promote or demote, reset the password, set its number's pacing (or switch it off),
// or delete it (after a confirming click).
// A refused change (e.g. the last admin) is explained in the account's own row.

import { api } from "./api.js";
import { busy, el, fieldError, formatTime, setText } from "./dom.js";
import { formatPhone } from "./connection.js";
import { STATE_LABELS } from "./admin-sessions.js";
import { actionButton, card, confirmButton, debounce, errorLine, formatCount, table } from "./admin-ui.js";

const PER_PAGE = 20;

function field(id, label, input, hint) {
  return el(
    "div",
    { class: "field" },
    el("label", { for: id, text: label }),
    input,
    hint ? el("p", { id: `${id}-hint`, class: "hint", text: hint }) : null,
    el("p", { id: `${id}-error`, class: "error field-error" }),
  );
}

export function createUsersView({ selfId }) {
  let page = 1;
  let search = "";
  let visible = false;
  let plans = []; // for the plan select of each row, loaded with the list

  // Create form
  const email = el("input", { id: "admin-new-email", type: "email", autocomplete: "off", required: true, "aria-describedby": "admin-new-email-error" });
  const password = el("input", {
    id: "admin-new-password",
    type: "password",
    autocomplete: "new-password",
    required: true,
    "aria-describedby": "admin-new-password-hint admin-new-password-error",
  });
  const role = el("select", { id: "admin-new-role" }, el("option", { value: "user", text: "User" }), el("option", { value: "admin", text: "Admin" }));
  const submit = el("button", { type: "submit", text: "Create user" });
  const form = el(
    "form",
    { id: "admin-user-form", class: "admin-form", novalidate: true },
    field("admin-new-email", "Email", email),
    field("admin-new-password", "Password", password, "At least 10 characters, mixing letters with digits or symbols."),
    field("admin-new-role", "Role", role),
    errorLine("admin-new-error"),
    el("p", { id: "admin-new-result", class: "ok", role: "status", "aria-live": "polite" }),
    submit,
  );

  // List
  const searchInput = el("input", { id: "admin-users-search", type: "search", placeholder: "Search by email", autocomplete: "off" });
  const { wrap, body } = table("Accounts", ["Email", "Role", "Status", "WhatsApp", "Messages", "Plan", "Created", "Actions"], "admin-users-body");
  const prev = el("button", { type: "button", id: "admin-users-prev", class: "secondary small", text: "Previous" });
  const next = el("button", { type: "button", id: "admin-users-next", class: "secondary small", text: "Next" });
  const pageInfo = el("span", { id: "admin-users-page", class: "hint", "aria-live": "polite" });

  const root = el(
    "div",
    { class: "admin-stack" },
    card(
      "admin-users-title",
      "Users",
      el("div", { class: "filters admin-search" }, el("label", { for: "admin-users-search", text: "Search" }), searchInput),
      wrap,
      el("p", { id: "admin-users-empty", class: "hint", hidden: true, text: "No account matches." }),
      el("div", { class: "pager" }, prev, pageInfo, next),
      errorLine("admin-users-error"),
    ),
    card("admin-new-title", "Create a user", form),
  );

  function rowError(tr, message) {
    tr.querySelector(".row-error").textContent = message || "";
  }

  function row(user) {
    const tr = el("tr", { "data-user-id": user.id, "data-role": user.role, "data-disabled": String(user.disabled) });
    const self = user.id === selfId;
    const change = (method, path, bodyValue) => async () => {
      try {
        await api(method, `/api/admin/users/${encodeURIComponent(user.id)}${path}`, bodyValue);
      } catch (error) {
        rowError(tr, error.message);
        return;
      }
      // Demoted (or disabled) yourself: this page's admin area is no longer yours. Start over.
      if (self) {
        location.hash = "#/";
        location.reload();
        return;
      }
      await load();
    };
    const toggle = user.disabled
      ? actionButton("Enable", `Enable ${user.email}`, change("POST", "/enable"))
      : confirmButton({ label: "Disable", confirm: "Really disable?", ariaLabel: `Disable ${user.email}`, action: change("POST", "/disable") });
    const demote = change("POST", "/role", { role: "user" });
    const roleButton =
      user.role !== "admin"
        ? actionButton("Make admin", `Promote ${user.email} to admin`, change("POST", "/role", { role: "admin" }))
        : self
          ? confirmButton({ label: "Make user", confirm: "Drop your admin role?", className: "secondary small", ariaLabel: `Demote ${user.email} to user`, action: demote })
          : actionButton("Make user", `Demote ${user.email} to user`, demote);
    const remove = confirmButton({
      label: "Delete",
      confirm: "Delete for good?",
      ariaLabel: `Delete ${user.email}`,
      action: change("DELETE", ""),
    });
    const resetButton = el("button", { type: "button", class: "secondary small", text: "Reset password", "aria-label": `Reset the password of ${user.email}` });
    resetButton.onclick = () => showReset(tr, user, resetButton);
    const pacingButton = el("button", { type: "button", class: "secondary small", text: "Pacing", "aria-label": `Pacing of ${user.email}` });
    pacingButton.onclick = () => showPacing(tr, user, pacingButton);

    const session = user.session;
    const whatsapp = session
      ? [el("span", { class: "badge small", "data-state": session.state, text: STATE_LABELS[session.state] || session.state }), " ", formatPhone(session.phone)]
      : ["—"];
    const status = user.disabled ? "Disabled" : "Active";
    const messages = `${formatCount(user.messages.total)}${user.messages.failed ? ` (${formatCount(user.messages.failed)} failed)` : ""}`;
    const quota = (used, limit) => (limit === null ? formatCount(used) : `${formatCount(used)}/${formatCount(limit)}`);
    const planSelect = el(
      "select",
      { class: "plan-select", "aria-label": `Plan of ${user.email}` },
      ...plans.map((plan) => el("option", { value: plan.id, text: plan.name, selected: plan.id === user.plan.id })),
    );
    planSelect.onchange = () => busy(planSelect, change("PUT", "/plan", { plan_id: planSelect.value }));
    tr.append(
      el("td", { class: "email" }, user.email, self ? el("span", { class: "tag", text: "you" }) : null),
      el("td", { class: "role", text: user.role === "admin" ? "Admin" : "User" }),
      el("td", { class: "status-cell" }, el("span", { class: "status", "data-status": user.disabled ? "failed" : "delivered", text: status })),
      el("td", { class: "whatsapp" }, ...whatsapp),
      el("td", { class: "num", text: messages }),
      el(
        "td",
        { class: "plan" },
        planSelect,
        el("span", {
          class: "hint plan-usage",
          text: ` today ${quota(user.plan.messages_today, user.plan.messages_per_day)} · month ${quota(user.plan.messages_this_month, user.plan.messages_per_month)}`,
        }),
      ),
      el("td", { class: "time", text: formatTime(user.created_at) }),
      el(
        "td",
        { class: "row-actions" },
        el("div", { class: "buttons" }, toggle, roleButton, resetButton, pacingButton, remove),
        el("div", { class: "reset-slot" }),
        el("p", { class: "error row-error", role: "alert" }),
      ),
    );
    return tr;
  }

  /** The inline password form in the row; one open at a time is plenty. */
  function showReset(tr, user, opener) {
    const slot = tr.querySelector(".reset-slot");
    if (slot.firstChild) {
      slot.replaceChildren();
      return;
    }
    const id = `admin-reset-${user.id}`;
    const input = el("input", { id, type: "password", autocomplete: "new-password", "aria-label": `New password for ${user.email}` });
    const save = el("button", { type: "submit", class: "small", text: "Set password" });
    const resetForm = el("form", { class: "reset-form", novalidate: true }, input, save);
    resetForm.onsubmit = (event) => {
      event.preventDefault();
      busy(save, async () => {
        try {
          await api("POST", `/api/admin/users/${encodeURIComponent(user.id)}/password`, { password: input.value });
          slot.replaceChildren(el("span", { class: "ok", role: "status", text: "Password changed." }));
          rowError(tr, "");
        } catch (error) {
          rowError(tr, error.message);
          input.focus();
        }
      });
    };
    slot.replaceChildren(resetForm);
    input.focus();
    opener.setAttribute("aria-expanded", "true");
  }

  /** The inline pacing form in the row: the settings in force, saved as the account's own. */
  async function showPacing(tr, user, opener) {
    const slot = tr.querySelector(".reset-slot");
    if (slot.firstChild) {
      slot.replaceChildren();
      return;
    }
    const path = `/api/admin/users/${encodeURIComponent(user.id)}/pacing`;
    let current;
    try {
      current = await api("GET", path);
    } catch (error) {
      rowError(tr, error.message);
      return;
    }
    const p = current.pacing;
    const id = (name) => `admin-pacing-${name}-${user.id}`;
    const input = (name, label, value, type = "number") =>
      el("label", { for: id(name), class: "inline" }, `${label} `, el("input", { id: id(name), name, type, value: String(value), size: 8 }));
    const enabled = el("input", { id: id("enabled"), type: "checkbox" });
    enabled.checked = p.enabled;
    const save = el("button", { type: "submit", class: "small", text: "Save pacing" });
    const defaults = el("button", { type: "button", class: "secondary small", text: "Use defaults" });
    const pacingForm = el(
      "form",
      { class: "pacing-form", novalidate: true, "aria-label": `Pacing of ${user.email}` },
      el("label", { for: id("enabled"), class: "inline" }, enabled, " Pacing on"),
      input("min_gap_ms", "Gap (ms)", p.min_gap_ms),
      input("jitter_ms", "Jitter (ms)", p.jitter_ms),
      input("per_minute", "Per minute", p.per_minute),
      input("per_hour", "Per hour", p.per_hour),
      input("per_day", "Per day", p.per_day),
      input("quiet_start", "Quiet from", p.quiet_hours ? p.quiet_hours.start : "", "text"),
      input("quiet_end", "to", p.quiet_hours ? p.quiet_hours.end : "", "text"),
      input("time_zone", "Time zone", p.time_zone, "text"),
      input("warmup", "Warm-up caps", p.warmup_daily_caps.join(", "), "text"),
      el("span", { class: "hint", text: current.custom ? " Own settings." : " The node's defaults." }),
      save,
      defaults,
    );
    const value = (name) => pacingForm.querySelector(`[name="${name}"]`).value.trim();
    pacingForm.onsubmit = (event) => {
      event.preventDefault();
      busy(save, async () => {
        const start = value("quiet_start");
        const end = value("quiet_end");
        const body = {
          enabled: enabled.checked,
          min_gap_ms: Number(value("min_gap_ms")),
          jitter_ms: Number(value("jitter_ms")),
          per_minute: Number(value("per_minute")),
          per_hour: Number(value("per_hour")),
          per_day: Number(value("per_day")),
          quiet_hours: start || end ? { start, end } : null,
          time_zone: value("time_zone"),
          warmup_daily_caps: value("warmup") ? value("warmup").split(",").map((cap) => Number(cap.trim())) : [],
        };
        try {
          await api("PUT", path, body);
          slot.replaceChildren(el("span", { class: "ok", role: "status", text: "Pacing saved." }));
          rowError(tr, "");
        } catch (error) {
          rowError(tr, error.field ? `${error.field}: ${error.message}` : error.message);
        }
      });
    };
    defaults.onclick = () =>
      busy(defaults, async () => {
        try {
          await api("DELETE", path);
          slot.replaceChildren(el("span", { class: "ok", role: "status", text: "Pacing back to the defaults." }));
          rowError(tr, "");
        } catch (error) {
          rowError(tr, error.message);
        }
      });
    slot.replaceChildren(pacingForm);
    opener.setAttribute("aria-expanded", "true");
  }

  let latest = 0; // answers to older requests (a search typed further since) are dropped

  async function load() {
    const query = new URLSearchParams({ page: String(page), per_page: String(PER_PAGE) });
    if (search) query.set("search", search);
    const request = ++latest;
    try {
      const [answer, planList] = await Promise.all([api("GET", `/api/admin/users?${query}`), api("GET", "/api/admin/plans")]);
      if (request !== latest) return;
      plans = planList.plans;
      const pages = Math.max(1, Math.ceil(answer.total / PER_PAGE));
      if (page > pages) {
        // The last page emptied (a delete, a narrower search): show the new last one.
        page = pages;
        return load();
      }
      body.replaceChildren(...answer.users.map(row));
      body.dataset.search = search;
      root.querySelector("#admin-users-empty").hidden = answer.users.length > 0;
      pageInfo.textContent = `Page ${page} of ${pages} · ${formatCount(answer.total)} ${answer.total === 1 ? "account" : "accounts"}`;
      prev.disabled = page <= 1;
      next.disabled = page >= pages;
      setText("admin-users-error", "");
    } catch (error) {
      setText("admin-users-error", error.message);
    }
  }

  searchInput.oninput = debounce(() => {
    search = searchInput.value.trim();
    page = 1;
    load();
  }, 250);
  prev.onclick = () => {
    page = Math.max(1, page - 1);
    load();
  };
  next.onclick = () => {
    page += 1;
    load();
  };

  form.onsubmit = (event) => {
    event.preventDefault();
    busy(submit, async () => {
      setText("admin-new-error", "");
      setText("admin-new-result", "");
      fieldError("admin-new-email", "");
      fieldError("admin-new-password", "");
      try {
        const answer = await api("POST", "/api/admin/users", { email: email.value.trim(), password: password.value, role: role.value });
        setText("admin-new-result", `Created ${answer.user.email}.`);
        form.reset();
        await load();
      } catch (error) {
        if (error.code === "email_taken") fieldError("admin-new-email", "An account with this email already exists.");
        else if (error.field === "email" || error.field === "password") fieldError(`admin-new-${error.field}`, error.message);
        else setText("admin-new-error", error.message);
      }
    });
  };

  return {
    root,
    show() {
      visible = true;
      return load();
    },
    hide() {
      visible = false;
    },
    // No live reloads: they would wipe a half-typed password or an armed delete. The list is
    // fetched when the view opens and after every change made here.
    onEvent() {},
    onResync() {},
  };
}
