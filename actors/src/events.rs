//! The event hub: every session and message status change is published here, and the
//! websocket bridge (and tests) subscribe — a socket to its user's events, an admin's also
//! to every session's state. In a cluster, what a node publishes is also
//! handed to the cluster layer, which delivers it to the hubs of the other nodes: a
//! dashboard sees its sessions' events whichever node it is connected to.

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use crate::outbox::MessageStatus;
use crate::sessions::SessionState;
use crate::telemetry::Telemetry;

/// Something a user (or an admin watching every session) wants to hear about.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SessionEvent {
    /// A fresh QR code to scan; it replaces any earlier one.
    QrCode {
        user_id: Uuid,
        code: String,
        expires_at: DateTime<Utc>,
    },
    /// A link code to type on the phone (Linked devices → Link with phone number
    /// instead); it replaces any earlier one. The QR code stays valid alongside it.
    PairCode {
        user_id: Uuid,
        code: String,
        expires_at: DateTime<Utc>,
    },
    WhatsappConnected {
        user_id: Uuid,
        phone: String,
        push_name: Option<String>,
    },
    WhatsappDisconnected {
        user_id: Uuid,
        reason: String,
    },
    MessageStatus {
        user_id: Uuid,
        message_id: Uuid,
        status: MessageStatus,
        at: DateTime<Utc>,
        error: Option<String>,
        /// A queued message's pacing: the earliest it goes out (see `Message::not_before`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_before: Option<DateTime<Utc>>,
    },
    /// Every state change of a session.
    SessionState {
        user_id: Uuid,
        state: SessionState,
    },
    /// A message a contact sent to the linked number, as stored (once per WhatsApp id).
    MessageReceived {
        user_id: Uuid,
        message: crate::inbound::InboundMessage,
    },
    /// A webhook endpoint failed too often in a row and is paused until its user resumes it.
    WebhookPaused {
        user_id: Uuid,
        endpoint_id: Uuid,
        reason: String,
    },
}

impl SessionEvent {
    /// The user whose session or message the event is about.
    pub fn user_id(&self) -> Uuid {
        match self {
            SessionEvent::QrCode { user_id, .. }
            | SessionEvent::PairCode { user_id, .. }
            | SessionEvent::WhatsappConnected { user_id, .. }
            | SessionEvent::WhatsappDisconnected { user_id, .. }
            | SessionEvent::MessageStatus { user_id, .. }
            | SessionEvent::SessionState { user_id, .. }
            | SessionEvent::MessageReceived { user_id, .. }
            | SessionEvent::WebhookPaused { user_id, .. } => *user_id,
        }
    }
}

/// Fan-out of [`SessionEvent`]s. Each user's events go to that user's own channel, every
/// session's state changes also to the admins' channel, and everything to a channel for whoever
/// watches it all (tests, tools): a burst of one user's events fills only that user's channel,
/// so it never holds back or closes anyone else's socket. A subscriber that falls more than a
/// channel's capacity behind loses the oldest events (it sees `RecvError::Lagged`), so a slow
/// websocket never holds back a session. Cheap to clone; clones share the channels.
#[derive(Clone)]
pub struct EventHub {
    inner: Arc<Hub>,
}

struct Hub {
    all: broadcast::Sender<SessionEvent>,
    states: broadcast::Sender<SessionEvent>,
    /// Channels of users somebody listens to; one is dropped when its last listener is gone.
    users: Mutex<HashMap<Uuid, broadcast::Sender<SessionEvent>>>,
    per_user: usize,
    /// Where this node's own events go to reach the other nodes, once the cluster runs.
    cluster: OnceLock<mpsc::UnboundedSender<SessionEvent>>,
    telemetry: Telemetry,
}

impl EventHub {
    /// `capacity`: how far behind a subscriber of the shared channels may fall; a user's own
    /// channel holds a quarter of that (it is allocated whole for every user with a socket).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            inner: Arc::new(Hub {
                all: broadcast::channel(capacity).0,
                states: broadcast::channel(capacity).0,
                users: Mutex::new(HashMap::new()),
                per_user: (capacity / 4).max(16),
                cluster: OnceLock::new(),
                telemetry: Telemetry::default(),
            }),
        }
    }

    /// Publishes an event of this node: to its subscribers and to the other nodes.
    /// Having no subscriber is not an error.
    pub fn publish(&self, event: SessionEvent) {
        tracing::debug!(?event, "session event");
        self.inner.telemetry.published(&event);
        if let Some(cluster) = self.inner.cluster.get() {
            let _ = cluster.send(event.clone());
        }
        self.deliver(event);
    }

    /// What this node's sessions did so far (for metrics).
    pub fn telemetry(&self) -> &Telemetry {
        &self.inner.telemetry
    }

    /// Delivers an event another node published, to this node's subscribers only.
    pub fn deliver_from_peer(&self, event: SessionEvent) {
        self.deliver(event);
    }

    fn deliver(&self, event: SessionEvent) {
        let hub = &self.inner;
        {
            let mut users = lock(&hub.users);
            if let Some(channel) = users.get(&event.user_id())
                && channel.send(event.clone()).is_err()
            {
                users.remove(&event.user_id());
            }
        }
        if matches!(event, SessionEvent::SessionState { .. }) && hub.states.receiver_count() > 0 {
            let _ = hub.states.send(event.clone());
        }
        let _ = hub.all.send(event);
    }

    /// Hands every event published from now on to the cluster layer as well.
    pub fn forward_to_cluster(&self, sink: mpsc::UnboundedSender<SessionEvent>) {
        let _ = self.inner.cluster.set(sink);
    }

    /// The events of one user.
    pub fn subscribe_user(&self, user_id: Uuid) -> broadcast::Receiver<SessionEvent> {
        lock(&self.inner.users)
            .entry(user_id)
            .or_insert_with(|| broadcast::channel(self.inner.per_user).0)
            .subscribe()
    }

    /// Every session's state changes (what admins watch).
    pub fn subscribe_states(&self) -> broadcast::Receiver<SessionEvent> {
        self.inner.states.subscribe()
    }

    /// Every event.
    pub fn subscribe(&self) -> broadcast::Receiver<SessionEvent> {
        self.inner.all.subscribe()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl Default for EventHub {
    fn default() -> Self {
        Self::new(1024)
    }
}
