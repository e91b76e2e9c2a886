//! The event hub: every session and message status change is published here, and the
//! websocket bridge (and tests) subscribe. In a cluster, what a node publishes is also
//! handed to the cluster layer, which delivers it to the hubs of the other nodes: a
//! dashboard sees its sessions' events whichever node it is connected to.

use chrono::{DateTime, Utc};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use crate::outbox::MessageStatus;
use crate::sessions::SessionState;

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
    },
    /// Every state change of a session.
    SessionState {
        user_id: Uuid,
        state: SessionState,
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
            | SessionEvent::SessionState { user_id, .. } => *user_id,
        }
    }
}

/// Fan-out of [`SessionEvent`]s to every subscriber. Cheap to clone; clones share the
/// channel. A subscriber that falls more than `capacity` events behind loses the oldest
/// ones (it sees `RecvError::Lagged`), so a slow websocket never holds back a session.
#[derive(Clone)]
pub struct EventHub {
    sender: broadcast::Sender<SessionEvent>,
    /// Where this node's own events go to reach the other nodes, once the cluster runs.
    cluster: Arc<OnceLock<mpsc::UnboundedSender<SessionEvent>>>,
}

impl EventHub {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self {
            sender,
            cluster: Arc::new(OnceLock::new()),
        }
    }

    /// Publishes an event of this node: to its subscribers and to the other nodes.
    /// Having no subscriber is not an error.
    pub fn publish(&self, event: SessionEvent) {
        tracing::debug!(?event, "session event");
        if let Some(cluster) = self.cluster.get() {
            let _ = cluster.send(event.clone());
        }
        let _ = self.sender.send(event);
    }

    /// Delivers an event another node published, to this node's subscribers only.
    pub fn deliver_from_peer(&self, event: SessionEvent) {
        let _ = self.sender.send(event);
    }

    /// Hands every event published from now on to the cluster layer as well.
    pub fn forward_to_cluster(&self, sink: mpsc::UnboundedSender<SessionEvent>) {
        let _ = self.cluster.set(sink);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<SessionEvent> {
        self.sender.subscribe()
    }
}

impl Default for EventHub {
    fn default() -> Self {
        Self::new(1024)
    }
}
