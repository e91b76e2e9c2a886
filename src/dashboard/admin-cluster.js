// Admin › Cluster: the nodes of the installation — where they listen, since when, their last
// heartbeat, how many sessions each runs — and draining one (it hands its sessions to the
// others and takes none until undrained). Nodes join and leave without any event on the
// websocket, so the list is fetched again every couple of seconds while the tab is on screen.

import { api } from "./api.js";
import { el, formatTime, setText } from "./dom.js";
import { actionButton, card, confirmButton, errorLine, formatCount, table } from "./admin-ui.js";

/** How often the open tab asks again; heartbeats come every lease_ttl / 4 (2 s by default). */
const REFRESH_MS = 2000;

const NODE_STATES = {
  alive: "Alive",
  draining: "Draining",
  unresponsive: "Not responding",
  stopped: "Stopped",
};

/** Stopped on purpose, silent past a lease's lifetime, draining, or alive. */
function nodeState(node) {
  if (node.stopped_at) return "stopped";
  if (!node.alive) return "unresponsive";
  return node.draining ? "draining" : "alive";
}

export function createClusterView() {
  const { wrap, body } = table(
    "Every node of the installation, live ones first",
    ["Node", "Address", "Incarnation", "Up since", "Last heartbeat", "Sessions", "State", "Actions"],
    "admin-cluster-body",
  );
  const here = el("p", { id: "admin-cluster-node", class: "hint" });
  const root = card(
    "admin-cluster-title",
    "Cluster",
    here,
    wrap,
    errorLine("admin-cluster-action-error"),
    errorLine("admin-cluster-error"),
  );
  let visible = false;
  let timer = null;
  let latest = 0; // an answer overtaken by a newer request is dropped

  function row(node, self) {
    const state = nodeState(node);
    const drain = (method) => async () => {
      try {
        await api(method, `/api/admin/cluster/nodes/${encodeURIComponent(node.name)}/drain`);
        setText("admin-cluster-action-error", "");
      } catch (error) {
        setText("admin-cluster-action-error", `${node.name}: ${error.message}`);
      }
      await load();
    };
    const actions = el("td", { class: "row-actions" });
    if (state !== "stopped") {
      actions.append(
        node.draining
          ? actionButton("Undrain", `Undrain ${node.name} (it takes sessions again)`, drain("DELETE"))
          : confirmButton({
              label: "Drain",
              confirm: "Move its sessions?",
              ariaLabel: `Drain ${node.name} (moves its sessions to the other nodes)`,
              action: drain("POST"),
            }),
      );
    }
    const address = el("td", { class: "address" }, node.http_addr);
    if (node.cluster_addr) address.append(el("span", { class: "hint", text: ` · cluster ${node.cluster_addr}` }));
    return el(
      "tr",
      { "data-incarnation": node.incarnation, "data-name": node.name, "data-state": state },
      el("td", { class: "name" }, node.name, self ? el("span", { class: "tag", text: "this node" }) : null),
      address,
      el("td", { class: "incarnation" }, el("code", { title: node.incarnation, text: node.incarnation.slice(0, 8) })),
      el("td", { class: "time", text: formatTime(node.started_at) }),
      el("td", { class: "time heartbeat", text: formatTime(node.last_heartbeat) }),
      el("td", { class: "num sessions", text: formatCount(node.sessions) }),
      el("td", { class: "state" }, el("span", { class: "badge", "data-node": state, text: NODE_STATES[state] })),
      actions,
    );
  }

  async function load() {
    const request = ++latest;
    try {
      const answer = await api("GET", "/api/admin/cluster");
      if (request !== latest) return;
      const rows = answer.nodes.map((node) => row(node, node.incarnation === answer.incarnation));
      for (const fresh of rows) keepArmedActions(fresh);
      body.replaceChildren(...rows);
      here.textContent = `This page is served by node ${answer.node}.`;
      setText("admin-cluster-error", "");
    } catch (error) {
      if (request === latest) setText("admin-cluster-error", error.message);
    }
  }

  /** A refresh must not disarm a "Move its sessions?" the admin is about to confirm. */
  function keepArmedActions(fresh) {
    const old = [...body.rows].find((r) => r.dataset.incarnation === fresh.dataset.incarnation);
    if (old && old.querySelector("[data-armed]")) fresh.lastElementChild.replaceWith(old.lastElementChild);
  }

  /** Asks again every REFRESH_MS while the tab is open and the browser shows the page. */
  async function poll() {
    clearTimeout(timer);
    timer = null;
    if (!visible || document.hidden) return;
    await load();
    if (visible && !document.hidden && timer === null) timer = setTimeout(poll, REFRESH_MS);
  }

  document.addEventListener("visibilitychange", () => {
    if (visible && !document.hidden) poll();
  });

  return {
    root,
    show() {
      visible = true;
      return poll();
    },
    hide() {
      visible = false;
      clearTimeout(timer);
      timer = null;
    },
    onEvent() {},
    onResync() {},
  };
}
