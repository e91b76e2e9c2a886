// The connection card: the session's state, the QR code to scan while linking (or the link
// code to type on the phone, for whoever cannot scan), the linked phone number, and the
// Connect / Disconnect (and, in the demo, simulated scan) buttons.

import { api } from "./api.js";
import { $, busy, fieldError, setText } from "./dom.js";

const LABELS = {
  idle: "Not linked",
  connecting: "Connecting…",
  qr: "Waiting for scan",
  connected: "Connected",
  disconnected: "Disconnected",
  failed: "Failed",
};

const HELP = {
  idle: "Press Connect, then scan the QR code with WhatsApp on your phone.",
  connecting: "Talking to WhatsApp…",
  qr: "Scan the QR code below with WhatsApp on your phone.",
  connected: "Messages are sent from this number.",
  disconnected: "This account is not linked. Press Connect to link it again.",
  failed: "The connection failed. Press Connect to try again.",
};

export function createConnection({ userId, demo }) {
  let status = { state: "idle", paired: false };
  let shownCode = null;
  let qrRequest = null;

  function render() {
    const state = LABELS[status.state] ? status.state : "idle";
    const badge = $("conn-state");
    badge.dataset.state = state;
    badge.textContent = LABELS[state];
    setText("conn-phone", state === "connected" && status.phone ? formatPhone(status.phone) : "");
    const name = state === "connected" && status.push_name ? ` WhatsApp name: ${status.push_name}.` : "";
    setText("conn-help", HELP[state] + name);
    const failedWith = state === "failed" && status.last_error ? status.last_error : "";
    if (failedWith) setText("conn-error", failedWith);

    const linking = state === "connecting" || state === "qr";
    $("connect-btn").hidden = linking || state === "connected";
    $("disconnect-btn").hidden = !(linking || state === "connected" || status.paired);
    $("disconnect-btn").textContent = state === "connected" || status.paired ? "Disconnect" : "Cancel";
    if (state !== "qr") hideQr();
    $("demo-scan-btn").hidden = !(demo && shownCode);
    const linked = state === "connected" || status.paired;
    $("pair-code-form").hidden = linked;
    // A code belongs to a running, unlinked session: linked or stopped, it is of no use.
    if (linked || !linking) hidePairCode();
  }

  function hidePairCode() {
    $("pair-code-box").hidden = true;
    setText("pair-code", "");
    delete $("pair-code").dataset.code;
  }

  /** Shows a link code the way WhatsApp asks for it: two groups of four. */
  function showPairCode(code, expiresAt) {
    if (!code) return;
    $("pair-code").dataset.code = code;
    setText("pair-code", code.length === 8 ? `${code.slice(0, 4)}-${code.slice(4)}` : code);
    const until = expiresAt ? new Date(expiresAt) : null;
    const valid = until && !Number.isNaN(until.getTime());
    setText(
      "pair-code-expiry",
      valid ? `It works until ${until.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}.` : "",
    );
    $("pair-code-box").hidden = false;
  }

  function hideQr() {
    shownCode = null;
    $("qr-box").hidden = true;
    $("qr").replaceChildren();
    delete $("qr").dataset.code;
  }

  function showQr(code, svg, expiresAt) {
    if (!code || !svg) return;
    const parsed = new DOMParser().parseFromString(svg, "image/svg+xml");
    const root = parsed.documentElement;
    if (!root || root.nodeName.toLowerCase() !== "svg") return;
    root.setAttribute("focusable", "false");
    root.setAttribute("aria-hidden", "true");
    root.removeAttribute("width");
    root.removeAttribute("height");
    $("qr").replaceChildren(document.importNode(root, true));
    $("qr").dataset.code = code;
    shownCode = code;
    $("qr-box").hidden = false;
    setText("qr-expiry", expiresAt ? "It is replaced by a fresh one when it expires." : "");
    $("demo-scan-btn").hidden = !demo;
  }

  /** Fetches the current QR code image unless it is the one already shown. */
  function loadQr() {
    if (qrRequest) return qrRequest;
    qrRequest = api("GET", "/api/whatsapp/qr")
      .then((qr) => {
        if (status.state === "qr" && qr.code !== shownCode) showQr(qr.code, qr.svg, qr.expires_at);
      })
      .catch(() => {}) // 404 (not there yet) and 409 (just connected): the next update says.
      .finally(() => {
        qrRequest = null;
      });
    return qrRequest;
  }

  async function refresh() {
    let current;
    try {
      current = await api("GET", "/api/whatsapp/status");
    } catch (error) {
      setText("conn-error", error.message);
      return;
    }
    await show(current);
  }

  /** Shows the session as the status endpoint (or a websocket snapshot) has it. */
  async function show(current) {
    status = current;
    if (status.state !== "failed") setText("conn-error", "");
    if (status.qr_available && status.state !== "qr") status.state = "qr";
    render();
    if (status.state === "qr") await loadQr();
  }

  function onEvent(event) {
    if (event.type === "snapshot") {
      show(event.session);
      return;
    }
    if (event.user_id !== userId) return; // admins also hear about everyone else's sessions
    switch (event.type) {
      case "qr_code":
        status.state = "qr";
        render();
        if (event.svg) showQr(event.code, event.svg, event.expires_at);
        else loadQr();
        break;
      case "pair_code":
        showPairCode(event.code, event.expires_at);
        break;
      case "whatsapp_connected":
        status = { ...status, state: "connected", paired: true, phone: event.phone, push_name: event.push_name };
        render();
        refresh();
        break;
      case "whatsapp_disconnected":
      case "session_state":
        if (event.state) {
          status.state = event.state;
          render();
        }
        refresh();
        break;
      default:
    }
  }

  $("connect-btn").onclick = () =>
    busy($("connect-btn"), async () => {
      setText("conn-error", "");
      try {
        status = await api("POST", "/api/whatsapp/initialize");
        render();
        if (status.state === "qr" || status.qr_available) await loadQr();
      } catch (error) {
        setText("conn-error", error.message);
      }
    });

  $("pair-code-form").onsubmit = (submitted) => {
    submitted.preventDefault();
    busy($("pair-code-btn"), async () => {
      setText("conn-error", "");
      fieldError("pair-phone", "");
      try {
        const answer = await api("POST", "/api/whatsapp/pair-code", { phone: $("pair-phone").value });
        // The request started the session if it was not running.
        if (status.state !== "qr") {
          status.state = "connecting";
          render();
        }
        showPairCode(answer.code, answer.expires_at);
      } catch (error) {
        if (error.field === "phone") fieldError("pair-phone", error.message);
        else setText("conn-error", error.message);
      }
    });
  };

  $("disconnect-btn").onclick = () =>
    busy($("disconnect-btn"), async () => {
      setText("conn-error", "");
      try {
        status = await api("POST", "/api/whatsapp/disconnect");
        render();
      } catch (error) {
        setText("conn-error", error.message);
      }
    });

  $("demo-scan-btn").onclick = () =>
    busy($("demo-scan-btn"), async () => {
      setText("conn-error", "");
      try {
        await api("POST", "/api/dashboard/demo-scan");
        setText("conn-help", "The simulated phone scanned the code; linking…");
      } catch (error) {
        setText("conn-error", error.message);
      }
    });

  hideQr();
  hidePairCode();
  render();
  return { refresh, onEvent };
}

export function formatPhone(digits) {
  return digits ? `+${String(digits).replace(/^\+/, "")}` : "";
}
