// Admin › Analytics: usage over a range of UTC days — headline numbers, charts per day, by
// source and per hour, the top senders, and the per-day CSV as a download.

import { api, session } from "./api.js";
import { busy, el, setText } from "./dom.js";
import { barChart } from "./chart.js";
import { card, errorLine, formatCount, formatDuration, formatRate, table } from "./admin-ui.js";

const STATUSES = [
  ["delivered", "Delivered"],
  ["read", "Read"],
  ["sent", "Sent"],
  ["sending", "Sending"],
  ["queued", "Queued"],
  ["failed", "Failed"],
];

/** A UTC calendar day as YYYY-MM-DD, `back` days before today. The API counts UTC days. */
function utcDay(back = 0) {
  return new Date(Date.now() - back * 86400000).toISOString().slice(0, 10);
}

function stat(id, label) {
  return el("div", { class: "stat" }, el("span", { class: "stat-label", text: label }), el("span", { class: "stat-value", id, text: "—" }));
}

export function createAnalyticsView() {
  const from = el("input", { id: "admin-from", type: "date", value: utcDay(29), required: true });
  const until = el("input", { id: "admin-until", type: "date", value: utcDay(0), required: true });
  const apply = el("button", { type: "submit", text: "Show" });
  const download = el("button", { type: "button", id: "admin-csv", class: "secondary", text: "Download CSV" });
  const form = el(
    "form",
    { id: "admin-range", class: "range", novalidate: true },
    el("div", { class: "field" }, el("label", { for: "admin-from", text: "From (UTC)" }), from),
    el("div", { class: "field" }, el("label", { for: "admin-until", text: "Until (UTC)" }), until),
    apply,
    download,
  );
  const numbers = el(
    "div",
    { class: "stats", id: "admin-stats" },
    stat("admin-total", "Messages"),
    stat("admin-delivered", "Delivered or read"),
    stat("admin-failed", "Failed"),
    stat("admin-rate", "Delivery rate"),
    stat("admin-median", "Median time to delivered"),
  );
  const charts = el("div", { class: "charts", id: "admin-charts" });
  const { wrap, body } = table("Top senders", ["User", "Messages", "Web", "API", "Failed", "Delivery rate"], "admin-top-body");
  const byPlan = table("Usage by plan", ["Plan", "Accounts", "Sent today", "Sent this month", "Quota per account (day / month)"], "admin-plan-usage-body");
  const root = el(
    "div",
    { class: "admin-stack" },
    card("admin-analytics-title", "Analytics", form, errorLine("admin-analytics-error"), numbers, el("p", { class: "hint", id: "admin-analytics-note" })),
    card("admin-charts-title", "Charts", charts),
    card("admin-top-title", "Top senders", wrap, el("p", { id: "admin-top-empty", class: "hint", hidden: true, text: "No messages in this range." })),
    card("admin-plan-usage-title", "Usage by plan (today and this month, UTC)", byPlan.wrap),
  );

  async function loadPlans() {
    const limit = (value) => (value === null ? "∞" : formatCount(value));
    try {
      const answer = await api("GET", "/api/admin/plans");
      byPlan.body.replaceChildren(
        ...answer.plans.map((plan) =>
          el(
            "tr",
            { "data-plan-id": plan.id },
            el("td", { text: plan.name }),
            el("td", { class: "num", text: formatCount(plan.members) }),
            el("td", { class: "num", text: formatCount(plan.messages_today) }),
            el("td", { class: "num", text: formatCount(plan.messages_this_month) }),
            el("td", { class: "num", text: `${limit(plan.messages_per_day)} / ${limit(plan.messages_per_month)}` }),
          ),
        ),
      );
    } catch (error) {
      setText("admin-analytics-error", error.message);
    }
  }

  function query() {
    return new URLSearchParams({ from: from.value, until: until.value });
  }

  function render(report) {
    const t = report.totals;
    setText("admin-total", formatCount(t.messages));
    setText("admin-delivered", formatCount(t.by_status.delivered + t.by_status.read));
    setText("admin-failed", formatCount(t.by_status.failed));
    setText("admin-rate", formatRate(t.delivery_rate));
    setText("admin-median", formatDuration(t.median_delivery_ms));
    const inFlight = t.by_status.queued + t.by_status.sending;
    setText(
      "admin-analytics-note",
      `${report.from} to ${report.until}, counted on the day each message was created.` +
        (inFlight ? ` ${formatCount(inFlight)} still in flight (left out of the delivery rate).` : ""),
    );

    const days = report.per_day.map((d) => d.day.slice(5));
    const perDay = barChart({
      id: "chart-per-day",
      title: "Messages per day, by status",
      labels: days,
      series: STATUSES.map(([key, name]) => ({ name, className: `s-${key}`, values: report.per_day.map((d) => d.by_status[key]) })),
      summary: `${formatCount(t.messages)} messages over ${days.length} days.`,
    });
    const bySource = barChart({
      id: "chart-by-source",
      title: "Messages per day, by source",
      labels: days,
      stacked: false,
      series: [
        { name: "Dashboard", className: "s-web", values: report.per_day.map((d) => d.by_source.web) },
        { name: "API", className: "s-api", values: report.per_day.map((d) => d.by_source.api) },
      ],
      summary: `${formatCount(t.by_source.web)} from the dashboard, ${formatCount(t.by_source.api)} through the API.`,
    });
    const perHour = barChart({
      id: "chart-per-hour",
      title: "Messages per hour of the day (UTC)",
      labels: report.per_hour.map((h) => String(h.hour).padStart(2, "0")),
      series: [{ name: "Messages", className: "s-all", values: report.per_hour.map((h) => h.messages) }],
      height: 180,
    });
    charts.replaceChildren(perDay, bySource, perHour);

    body.replaceChildren(
      ...report.top_senders.map((u) =>
        el(
          "tr",
          { "data-user-id": u.user_id },
          el("td", { class: "email", text: u.email }),
          el("td", { class: "num", text: formatCount(u.messages) }),
          el("td", { class: "num", text: formatCount(u.by_source.web) }),
          el("td", { class: "num", text: formatCount(u.by_source.api) }),
          el("td", { class: "num", text: formatCount(u.by_status.failed) }),
          el("td", { class: "num", text: formatRate(u.delivery_rate) }),
        ),
      ),
    );
    root.querySelector("#admin-top-empty").hidden = report.top_senders.length > 0;
  }

  async function load() {
    try {
      const report = await api("GET", `/api/admin/analytics?${query()}`);
      setText("admin-analytics-error", "");
      render(report);
      root.dataset.loaded = `${report.from}/${report.until}`;
    } catch (error) {
      setText("admin-analytics-error", error.message);
    }
  }

  // The export needs the Authorization header, which a plain link cannot send: fetch it and
  // hand the browser the file from memory.
  async function saveCsv() {
    try {
      const response = await fetch(`/api/admin/analytics.csv?${query()}`, {
        headers: { Authorization: `Bearer ${session.token}` },
        cache: "no-store",
      });
      if (!response.ok) {
        const answer = await response.json().catch(() => null);
        throw new Error(answer && answer.error ? answer.error.message : `The server answered ${response.status}.`);
      }
      const url = URL.createObjectURL(await response.blob());
      const link = el("a", { href: url, download: `botwave-${from.value}-${until.value}.csv`, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      setText("admin-analytics-error", "");
    } catch (error) {
      setText("admin-analytics-error", error.message === "Failed to fetch" ? "Cannot reach the server." : error.message);
    }
  }

  form.onsubmit = (event) => {
    event.preventDefault();
    busy(apply, load);
  };
  download.onclick = () => busy(download, saveCsv);

  return {
    root,
    show: () => Promise.all([load(), loadPlans()]),
    hide() {},
    onEvent() {},
    onResync() {},
  };
}
