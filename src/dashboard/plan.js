// The plan card: the account's plan, its message quotas as usage bars with their reset times,
// and, when the node has billing, buttons to upgrade through Stripe Checkout and to manage the
// subscription in Stripe's customer portal (both leave the page for Stripe's).

import { api } from "./api.js";
import { $, busy, el, formatTime, setText } from "./dom.js";

function money(price) {
  if (!price || !price.amount) return "free";
  try {
    return new Intl.NumberFormat([], { style: "currency", currency: price.currency.toUpperCase() }).format(price.amount / 100) + " / month";
  } catch {
    return `${price.amount / 100} ${price.currency} / month`;
  }
}

function bar(id, period) {
  const meter = $(`${id}-bar`);
  const limit = period.limit;
  meter.max = limit === null ? Math.max(period.used, 1) : Math.max(limit, 1);
  meter.value = limit === null ? 0 : Math.min(period.used, limit);
  meter.dataset.full = String(limit !== null && period.used >= limit);
  const of = limit === null ? "no limit" : `of ${limit.toLocaleString()}`;
  setText(id, `${period.used.toLocaleString()} ${of} · resets ${formatTime(period.resets_at)}`);
}

export function createPlan() {
  const notice = new URLSearchParams(location.search).get("billing");
  if (notice === "success") setText("plan-notice", "Thank you: your plan changes as soon as Stripe confirms the payment.");
  if (notice === "cancelled") setText("plan-notice", "Checkout cancelled; nothing was charged.");

  async function redirect(button, path, body) {
    await busy(button, async () => {
      setText("plan-error", "");
      try {
        const answer = await api("POST", path, body);
        location.assign(answer.url);
      } catch (error) {
        setText("plan-error", error.message);
      }
    });
  }

  $("manage-subscription-btn").onclick = () => redirect($("manage-subscription-btn"), "/api/billing/portal");

  async function load() {
    let usage;
    let plans;
    try {
      [usage, plans] = await Promise.all([api("GET", "/api/usage"), api("GET", "/api/plans")]);
    } catch (error) {
      setText("plan-error", error.message);
      return;
    }
    setText("plan-error", "");
    setText("plan-name", usage.plan.name);
    bar("usage-day", usage.messages_today);
    bar("usage-month", usage.messages_this_month);
    const limit = (item, label) => `${item.used} of ${item.limit === null ? "unlimited" : item.limit} ${label}`;
    setText("plan-limits", `${limit(usage.api_keys, "API keys")} · ${limit(usage.webhook_endpoints, "webhooks")}`);
    const downgrade = $("plan-downgrade");
    downgrade.hidden = !usage.downgrade_at;
    downgrade.textContent = usage.downgrade_at
      ? `A payment failed: unless it goes through, this account moves to the default plan on ${formatTime(usage.downgrade_at)}.`
      : "";
    const subscribed = ["active", "trialing", "past_due", "unpaid"].includes(usage.subscription_status);
    $("manage-subscription-btn").hidden = !plans.billing_enabled || !usage.subscription_status;
    const offers = plans.billing_enabled && !subscribed ? plans.plans.filter((plan) => plan.stripe_price_id && plan.id !== usage.plan.id) : [];
    $("plan-upgrades").replaceChildren(
      ...offers.map((plan) => {
        const button = el("button", {
          type: "button",
          class: "upgrade-btn",
          "data-plan-id": plan.id,
          text: `Upgrade to ${plan.name} (${money(plan.price)})`,
        });
        button.onclick = () => redirect(button, "/api/billing/checkout", { plan_id: plan.id });
        return button;
      }),
    );
  }

  // Counts change with every send: reload a moment after a burst of status events.
  let timer = null;
  function onEvent(event) {
    if (event.type !== "message_status") return;
    clearTimeout(timer);
    timer = setTimeout(load, 500);
  }

  return { load, onEvent };
}
