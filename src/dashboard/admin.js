// The admin area (#/admin/…), created only for accounts whose role is admin: its link in the
// main navigation, its own tabs, and routing the live event stream to the open tab. The API
// refuses everyone else anyway; hiding it is for the people, not for security.

import { $, el } from "./dom.js";
import { createSessionsView } from "./admin-sessions.js";
import { createUsersView } from "./admin-users.js";
import { createAnalyticsView } from "./admin-analytics.js";
import { createAuditView } from "./admin-audit.js";
import { createClusterView } from "./admin-cluster.js";
import { createPlansView } from "./admin-plans.js";

const TABS = [
  ["sessions", "Sessions"],
  ["users", "Users"],
  ["plans", "Plans"],
  ["analytics", "Analytics"],
  ["audit", "Audit log"],
  ["cluster", "Cluster"],
];

export function createAdmin({ live, selfId }) {
  const views = {
    sessions: createSessionsView(),
    users: createUsersView({ selfId }),
    plans: createPlansView(),
    analytics: createAnalyticsView(),
    audit: createAuditView(),
    cluster: createClusterView(),
  };
  const links = {};
  const panels = {};
  for (const [name, label] of TABS) {
    links[name] = el("a", { href: `#/admin/${name}`, id: `admin-tab-${name}`, text: label });
    panels[name] = el("div", { id: `admin-${name}`, class: "admin-panel", hidden: true }, views[name].root);
  }
  $("view-admin").replaceChildren(
    el("nav", { class: "tabs admin-tabs", "aria-label": "Administration" }, ...TABS.map(([name]) => links[name])),
    ...TABS.map(([name]) => panels[name]),
  );
  $("nav-admin").hidden = false;

  let open = null;

  live.subscribe({
    onEvent: (event) => {
      if (open) views[open].onEvent(event);
    },
    onResync: () => {
      if (open) views[open].onResync();
    },
  });

  /** Shows the tab `hash` names and returns the main navigation's route, or null if the
   *  hash is not an admin one (then the admin area is closed). */
  function route(hash) {
    const match = /^#\/admin(?:\/([a-z]+))?$/.exec(hash);
    const name = match && views[match[1] || "sessions"] ? match[1] || "sessions" : null;
    if (open && open !== name) {
      views[open].hide();
      panels[open].hidden = true;
      links[open].removeAttribute("aria-current");
    }
    if (!name) {
      open = null;
      return null;
    }
    if (open !== name) {
      open = name;
      panels[name].hidden = false;
      links[name].setAttribute("aria-current", "page");
    }
    document.title = `${TABS.find(([tab]) => tab === name)[1]} · Admin · botwave`;
    views[name].show();
    return "admin";
  }

  return { route };
}
