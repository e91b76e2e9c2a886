// Admin › Plans: every plan with its quotas, limits, price and Stripe price, how many accounts
// are on it and what they sent today and this month; a form to create a plan or change one
// (an empty limit is no limit), and making a plan the default.

import { api } from "./api.js";
import { busy, el, fieldError, setText } from "./dom.js";
import { actionButton, card, errorLine, formatCount, table } from "./admin-ui.js";

const LIMITS = [
  ["messages_per_day", "Messages per day"],
  ["messages_per_month", "Messages per month"],
  ["linked_numbers", "Linked numbers"],
  ["api_keys", "API keys"],
  ["webhook_endpoints", "Webhook endpoints"],
];

function field(id, label, input, hint) {
  return el(
    "div",
    { class: "field" },
    el("label", { for: id, text: label }),
    input,
    hint ? el("p", { class: "hint", text: hint }) : null,
    el("p", { id: `${id}-error`, class: "error field-error" }),
  );
}

const limitText = (value) => (value === null ? "∞" : formatCount(value));

export function createPlansView() {
  let editing = null; // the plan the form changes; null: a new one

  const inputs = {
    name: el("input", { id: "admin-plan-name", autocomplete: "off", maxlength: 60, required: true }),
    price_amount: el("input", { id: "admin-plan-price_amount", type: "number", min: 0, step: 1, value: "0" }),
    price_currency: el("input", { id: "admin-plan-price_currency", maxlength: 3, value: "usd" }),
    stripe_price_id: el("input", { id: "admin-plan-stripe_price_id", autocomplete: "off", placeholder: "price_…" }),
  };
  for (const [name] of LIMITS) inputs[name] = el("input", { id: `admin-plan-${name}`, type: "number", min: 0, step: 1, placeholder: "no limit" });
  const makeDefault = el("input", { id: "admin-plan-default", type: "checkbox" });
  const title = el("h3", { id: "admin-plan-form-title", text: "New plan" });
  const submit = el("button", { type: "submit", id: "admin-plan-save", text: "Create plan" });
  const cancel = el("button", { type: "button", class: "secondary", text: "New plan instead", hidden: true });
  const form = el(
    "form",
    { id: "admin-plan-form", class: "admin-form", novalidate: true },
    title,
    field("admin-plan-name", "Name", inputs.name),
    ...LIMITS.map(([name, label]) => field(`admin-plan-${name}`, label, inputs[name], name === "messages_per_day" ? "Empty: no limit. Days and months are UTC." : null)),
    field("admin-plan-price_amount", "Price per month (cents)", inputs.price_amount),
    field("admin-plan-price_currency", "Currency", inputs.price_currency),
    field("admin-plan-stripe_price_id", "Stripe price id", inputs.stripe_price_id, "Set it to sell the plan through Stripe Checkout."),
    el("div", { class: "field" }, el("label", {}, makeDefault, " Default plan (new accounts, ended subscriptions)")),
    errorLine("admin-plan-error"),
    el("p", { id: "admin-plan-result", class: "ok", role: "status", "aria-live": "polite" }),
    el("div", { class: "actions" }, submit, cancel),
  );

  const { wrap, body } = table(
    "Plans",
    ["Name", "Per day", "Per month", "Numbers", "Keys", "Webhooks", "Price", "Stripe price", "Accounts", "Sent today", "Sent this month", ""],
    "admin-plans-body",
  );
  const root = el("div", { class: "admin-stack" }, card("admin-plans-title", "Plans", wrap, errorLine("admin-plans-error")), card("admin-plan-form-card", "Create or change a plan", form));

  function edit(plan) {
    editing = plan;
    title.textContent = plan ? `Change ${plan.name}` : "New plan";
    submit.textContent = plan ? "Save changes" : "Create plan";
    cancel.hidden = !plan;
    inputs.name.value = plan ? plan.name : "";
    for (const [name] of LIMITS) inputs[name].value = plan && plan[name] !== null ? String(plan[name]) : "";
    inputs.price_amount.value = plan ? String(plan.price.amount) : "0";
    inputs.price_currency.value = plan ? plan.price.currency : "usd";
    inputs.stripe_price_id.value = plan && plan.stripe_price_id ? plan.stripe_price_id : "";
    makeDefault.checked = Boolean(plan && plan.is_default);
    makeDefault.disabled = Boolean(plan && plan.is_default);
    inputs.name.focus();
  }
  cancel.onclick = () => edit(null);

  function row(plan) {
    return el(
      "tr",
      { "data-plan-id": plan.id },
      el("td", {}, plan.name, plan.is_default ? el("span", { class: "tag", text: "default" }) : null),
      ...LIMITS.map(([name]) => el("td", { class: "num", text: limitText(plan[name]) })),
      el("td", { class: "num", text: `${(plan.price.amount / 100).toFixed(2)} ${plan.price.currency}` }),
      el("td", {}, plan.stripe_price_id ? el("code", { text: plan.stripe_price_id }) : "—"),
      el("td", { class: "num", text: formatCount(plan.members) }),
      el("td", { class: "num", text: formatCount(plan.messages_today) }),
      el("td", { class: "num", text: formatCount(plan.messages_this_month) }),
      el("td", {}, actionButton("Edit", `Edit plan ${plan.name}`, async () => edit(plan))),
    );
  }

  async function load() {
    try {
      const answer = await api("GET", "/api/admin/plans");
      body.replaceChildren(...answer.plans.map(row));
      setText("admin-plans-error", "");
    } catch (error) {
      setText("admin-plans-error", error.message);
    }
  }

  form.onsubmit = (event) => {
    event.preventDefault();
    busy(submit, async () => {
      setText("admin-plan-error", "");
      setText("admin-plan-result", "");
      for (const name of Object.keys(inputs)) fieldError(`admin-plan-${name}`, "");
      const plan = {
        name: inputs.name.value.trim(),
        price_amount: Number(inputs.price_amount.value || 0),
        price_currency: inputs.price_currency.value.trim(),
        stripe_price_id: inputs.stripe_price_id.value.trim() || null,
      };
      for (const [name] of LIMITS) plan[name] = inputs[name].value.trim() === "" ? null : Number(inputs[name].value);
      if (makeDefault.checked && !(editing && editing.is_default)) plan.is_default = true;
      try {
        const answer = editing
          ? await api("PATCH", `/api/admin/plans/${encodeURIComponent(editing.id)}`, plan)
          : await api("POST", "/api/admin/plans", plan);
        setText("admin-plan-result", `Saved ${answer.plan.name}.`);
        edit(null);
        await load();
      } catch (error) {
        if (error.field && inputs[error.field]) fieldError(`admin-plan-${error.field}`, error.message);
        else setText("admin-plan-error", error.message);
      }
    });
  };

  return {
    root,
    show: load,
    hide() {},
    onEvent() {},
    onResync() {},
  };
}
