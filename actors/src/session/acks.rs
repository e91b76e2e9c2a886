//! WhatsApp's acknowledgements of the messages a session sends: the server's
//! `<ack class="message">` is what makes a message `sent` (WhatsApp's single tick).
//! whatsapp-rust's send returns once the stanza is written to the socket, which is not yet
//! the server having it: a node that stops, or a connection that drops, right after the
//! write loses the message, and recording it `sent` then would never send it again. So the
//! outbox waits for the ack; without one the message goes back to the queue under the same
//! id, and the recipient's WhatsApp treats a second copy as the first.
//!
//! The client's event handler [`offer`](ServerAcks::offer)s every ack before anything else
//! sees it (it never waits in the session actor's mailbox); the sender [`expect`]s one
//! before it writes the message.
//!
//! [`expect`]: ServerAcks::expect

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;
use whatsapp_rust::types::events::ServerAck;

/// What became of a message the server was expected to acknowledge.
#[derive(Debug, PartialEq, Eq)]
pub enum AckOutcome {
    /// The server has it.
    Acked,
    /// The server refused it, with this error code.
    Refused(String),
    /// No ack: the connection went away, or none came in time. Whether the server has the
    /// message is unknown.
    Unknown,
}

/// Each waiting send by message id; it is told the nack code, if the server refused.
type Waiting = HashMap<String, oneshot::Sender<Option<String>>>;

/// The acks a session's sends are waiting for, by message id.
#[derive(Default)]
pub struct ServerAcks {
    waiting: Mutex<Waiting>,
}

impl ServerAcks {
    fn waiting(&self) -> MutexGuard<'_, Waiting> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts waiting for the ack of message `id` (before it is written, so a fast ack is
    /// not missed).
    pub fn expect(self: &Arc<Self>, id: &str) -> PendingAck {
        let (tx, rx) = oneshot::channel();
        self.waiting().insert(id.to_owned(), tx);
        PendingAck {
            acks: self.clone(),
            id: id.to_owned(),
            rx,
        }
    }

    /// Hands a server ack to the send waiting for it; whether one was.
    pub fn offer(&self, ack: &ServerAck) -> bool {
        if ack.class.as_deref().is_some_and(|class| class != "message") {
            return false;
        }
        match self.waiting().remove(&ack.id) {
            Some(waiter) => waiter.send(ack.error.clone()).is_ok(),
            None => false,
        }
    }

    /// The connection is gone: no ack of what it carried will come.
    pub fn connection_lost(&self) {
        self.waiting().clear();
    }
}

/// One send's wait for its ack; dropping it stops waiting.
pub struct PendingAck {
    acks: Arc<ServerAcks>,
    id: String,
    rx: oneshot::Receiver<Option<String>>,
}

impl PendingAck {
    /// Waits up to `within` for the ack.
    pub async fn wait(mut self, within: Duration) -> AckOutcome {
        match tokio::time::timeout(within, &mut self.rx).await {
            Ok(Ok(None)) => AckOutcome::Acked,
            Ok(Ok(Some(code))) => AckOutcome::Refused(code),
            Ok(Err(_)) | Err(_) => AckOutcome::Unknown,
        }
    }
}

impl Drop for PendingAck {
    fn drop(&mut self) {
        self.rx.close();
        let mut waiting = self.acks.waiting();
        // Only this send's own entry: a retry of the same id may have registered anew.
        if waiting.get(&self.id).is_some_and(|tx| tx.is_closed()) {
            waiting.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(id: &str, class: Option<&str>, error: Option<&str>) -> ServerAck {
        ServerAck::builder()
            .id(id.to_owned())
            .maybe_class(class.map(str::to_owned))
            .maybe_error(error.map(str::to_owned))
            .build()
    }

    #[tokio::test]
    async fn an_ack_resolves_only_the_send_it_names() {
        let acks = Arc::new(ServerAcks::default());
        let first = acks.expect("A");
        let second = acks.expect("B");
        assert!(
            !acks.offer(&ack("B", Some("receipt"), None)),
            "not a message ack"
        );
        assert!(acks.offer(&ack("A", Some("message"), None)));
        assert!(!acks.offer(&ack("A", Some("message"), None)), "taken once");
        assert_eq!(first.wait(Duration::from_secs(1)).await, AckOutcome::Acked);
        assert!(acks.offer(&ack("B", None, Some("479"))));
        assert_eq!(
            second.wait(Duration::from_secs(1)).await,
            AckOutcome::Refused("479".into())
        );
    }

    #[tokio::test]
    async fn a_lost_connection_or_silence_leaves_the_outcome_unknown() {
        let acks = Arc::new(ServerAcks::default());
        let lost = acks.expect("A");
        acks.connection_lost();
        assert_eq!(lost.wait(Duration::from_secs(1)).await, AckOutcome::Unknown);
        let silent = acks.expect("B");
        assert_eq!(
            silent.wait(Duration::from_millis(20)).await,
            AckOutcome::Unknown
        );
        assert!(
            acks.waiting().is_empty(),
            "a wait that ended leaves nothing behind"
        );
    }
}
