//! What a phone's devices received: the texts in arrival order, each kept once per device,
//! sender and message id, and how many repeats were not kept again.
//!
//! WhatsApp keys a chat's messages by sender and id, so a client that sends again under an
//! id it already used (a retry after a crash, say) sends the same message, and the phone
//! shows it once. It still answers the repeat (see `connection::messages`).

use std::collections::HashSet;

use serde::Serialize;

/// A text a simulated phone device decrypted.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ReceivedText {
    pub id: String,
    /// The sender's phone number.
    pub from: String,
    /// The sending device's JID.
    pub from_device: String,
    /// The simulated device of this phone that decrypted it.
    pub device: u16,
    pub text: String,
    /// Unix milliseconds.
    pub received_at: u64,
    /// `pkmsg` or `msg`.
    pub enc_type: String,
    /// The device JID the sender encrypted this copy for: the LID form once the sender
    /// has learned the recipient's LID (clients key their sessions under it).
    pub addressed_to: String,
    /// The chat JID the sender addressed (receipts come from it).
    #[serde(skip)]
    pub chat: String,
}

/// One message as a phone device knows it.
#[derive(Debug, Hash, PartialEq, Eq)]
struct MessageKey {
    device: u16,
    from: String,
    id: String,
}

#[derive(Debug, Default)]
pub struct Inbox {
    texts: Vec<ReceivedText>,
    seen: HashSet<MessageKey>,
    duplicates: u64,
}

impl Inbox {
    /// Whether phone device `device` gets message `id` from the number `from` for the first
    /// time. A repeat is counted and must not be kept again.
    pub fn first_copy(&mut self, device: u16, from: &str, id: &str) -> bool {
        let first = self.seen.insert(MessageKey {
            device,
            from: from.to_owned(),
            id: id.to_owned(),
        });
        if !first {
            self.duplicates += 1;
        }
        first
    }

    pub fn record(&mut self, text: ReceivedText) {
        self.texts.push(text);
    }

    pub fn texts(&self) -> &[ReceivedText] {
        &self.texts
    }

    /// Copies of messages a device had already received, not kept again.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_new_once_per_device_sender_and_id() {
        let mut inbox = Inbox::default();
        assert!(inbox.first_copy(0, "15550001111", "3EB0A"));
        assert!(!inbox.first_copy(0, "15550001111", "3EB0A"), "a repeat");
        assert!(
            inbox.first_copy(1, "15550001111", "3EB0A"),
            "another device"
        );
        assert!(
            inbox.first_copy(0, "15550002222", "3EB0A"),
            "another sender"
        );
        assert!(inbox.first_copy(0, "15550001111", "3EB0B"), "another id");
        assert!(!inbox.first_copy(0, "15550001111", "3EB0A"));
        assert_eq!(inbox.duplicates(), 2);
    }
}
