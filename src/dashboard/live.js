// Live updates: the /ws websocket, reconnected with exponential backoff. While it is down (or
// websockets are blocked altogether, e.g. by a proxy) the page polls the API instead, so it
// never silently goes stale. A socket that reconnects says when it last heard from the server
// (`since`, the last frame's cursor) and is sent a snapshot plus what it missed, so the page
// only reads everything again when the server says it must (`resync`).

const POLL_EVERY_MS = 3000;
const MAX_BACKOFF_MS = 30000;
// Close codes after which this token is no use: failed, expired, revoked, account disabled.
const CLOSE_LOGGED_OUT = new Set([4001, 4002, 4003, 4004]);
const CLOSE_ROLE_CHANGED = 4005;

export class Live {
  /**
   * onEvent(event): a server event; onResync(): fetch everything again (after a gap, and on
   * every poll); onMode("live"|"polling"|"connecting"|"offline"); onAuthFailed();
   * onRoleChanged().
   */
  constructor({ onEvent, onResync, onMode, onAuthFailed, onRoleChanged }) {
    // More views (the admin area) listen to the same socket through subscribe().
    this.listeners = new Set();
    this.onEvent = (event) => {
      onEvent(event);
      for (const listener of this.listeners) listener.onEvent(event);
    };
    this.onResync = () => {
      onResync();
      for (const listener of this.listeners) listener.onResync();
    };
    this.onMode = onMode;
    this.onAuthFailed = onAuthFailed;
    this.onRoleChanged = onRoleChanged;
    this.socket = null;
    this.failures = 0;
    this.retryTimer = null;
    this.pollTimer = null;
    this.token = null;
    // The cursor of the last frame heard, for the next reconnect.
    this.cursor = null;
  }

  /** listener: { onEvent(event), onResync() }, called after the constructor's own. */
  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  start(token) {
    this.stop();
    this.token = token;
    this.cursor = null;
    if (typeof WebSocket !== "function") {
      this.startPolling();
      return;
    }
    this.connect();
  }

  stop() {
    this.token = null;
    clearTimeout(this.retryTimer);
    this.stopPolling();
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.onclose = null;
      socket.close(1000, "logged out");
    }
    this.onMode("offline");
  }

  connect() {
    if (!this.token) return;
    if (!this.pollTimer) this.onMode("connecting");
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
    let socket;
    try {
      socket = new WebSocket(url);
    } catch {
      this.retry();
      return;
    }
    this.socket = socket;
    let authenticated = false;
    const since = this.cursor;
    socket.onopen = () => {
      const hello = { type: "authenticate", token: this.token };
      if (since) hello.since = since;
      socket.send(JSON.stringify(hello));
    };
    socket.onmessage = (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (event.cursor) this.cursor = event.cursor;
      if (event.type === "authenticated") {
        authenticated = true;
        this.failures = 0;
        this.stopPolling();
        this.onMode("live");
        // A first socket (or one after polling) reads everything once; a reconnecting one is
        // sent what it missed, except other users' sessions for the admin views.
        if (since) for (const listener of this.listeners) listener.onResync();
        else this.onResync();
        return;
      }
      if (event.type === "resync") {
        this.onResync();
        return;
      }
      this.onEvent(event);
    };
    socket.onclose = (close) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (CLOSE_LOGGED_OUT.has(close.code)) {
        this.onAuthFailed();
        return;
      }
      if (close.code === CLOSE_ROLE_CHANGED) {
        this.onRoleChanged();
        return;
      }
      if (!authenticated) this.failures += 1;
      this.retry();
    };
  }

  retry() {
    if (!this.token) return;
    this.startPolling();
    const backoff = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.min(this.failures, 5));
    const jitter = Math.random() * 500;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), backoff + jitter);
  }

  startPolling() {
    if (this.pollTimer || !this.token) return;
    this.onMode("polling");
    this.onResync();
    this.pollTimer = setInterval(() => this.onResync(), POLL_EVERY_MS);
  }

  stopPolling() {
    clearInterval(this.pollTimer);
    this.pollTimer = null;
  }
}
