//! Things simulated phones send to real clients: receipts (automatic or on command)
//! and messages (texts, photos, locations), encrypted to every companion of the recipient
//! account and kept for each device until it acknowledges them.

use std::sync::Arc;
use std::time::Duration;

use rand::RngExt as _;
use serde::Serialize;
use wacore_binary::Jid;
use waproto::whatsapp as wa;

use crate::account::AccountError;
use crate::account::SentMessage;
use crate::config::ReceiptMode;
use crate::phone::{PhoneError, stanza_types, text_message};
use crate::stanza::{self, ReceiptKind};
use crate::state::{ConnCommand, DeviceKey, Shared, lock};

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{0} is not on WhatsApp")]
    NotOnWhatsApp(String),
    #[error("{0} has no paired client")]
    NoCompanions(String),
    #[error("phone {0} has no message with id {1}")]
    UnknownMessage(String, String),
    #[error("the sender of message {0} is not connected")]
    SenderOffline(String),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Phone(#[from] PhoneError),
}

/// Sends one receipt to the device that sent message `id`; false if it is offline.
pub fn send_receipt(
    shared: &Shared,
    sender: &DeviceKey,
    chat: &Jid,
    id: &str,
    kind: ReceiptKind,
) -> bool {
    let sent = shared.send_to_device(sender, ConnCommand::Send(stanza::receipt(chat, id, kind)));
    if sent {
        shared.stats.receipt_sent();
    }
    sent
}

/// Schedules the automatic receipts of a message per `mode`, the receipt mode it arrived
/// under.
pub fn schedule_receipts(
    shared: &Arc<Shared>,
    mode: ReceiptMode,
    chat: &Jid,
    sender: &DeviceKey,
    id: &str,
) {
    let ReceiptMode::Auto {
        delivered_ms,
        read_ms,
    } = mode
    else {
        return;
    };
    let mut steps: Vec<(u64, ReceiptKind)> = Vec::new();
    if let Some(ms) = delivered_ms {
        steps.push((ms, ReceiptKind::Delivered));
    }
    if let Some(ms) = read_ms {
        steps.push((ms, ReceiptKind::Read));
    }
    if steps.is_empty() {
        return;
    }
    steps.sort_by_key(|(ms, _)| *ms);
    let (shared, chat, sender, id) = (shared.clone(), chat.clone(), sender.clone(), id.to_string());
    tokio::spawn(async move {
        let mut elapsed = 0;
        for (at, kind) in steps {
            tokio::time::sleep(Duration::from_millis(at.saturating_sub(elapsed))).await;
            elapsed = at;
            send_receipt(&shared, &sender, &chat, &id, kind);
        }
    });
}

/// A receipt on command for a message phone `number` received.
pub fn receipt_on_command(
    shared: &Shared,
    number: &str,
    id: &str,
    kind: ReceiptKind,
) -> Result<(), DeliveryError> {
    let account = shared
        .account(number)
        .ok_or_else(|| DeliveryError::NotOnWhatsApp(number.to_string()))?;
    let (sender, chat) = {
        let account = lock(&account);
        let message = account
            .inbox()
            .iter()
            .find(|m| m.id == id)
            .ok_or_else(|| DeliveryError::UnknownMessage(number.to_string(), id.to_string()))?;
        let sender: Jid = message
            .from_device
            .parse()
            .map_err(|_| DeliveryError::UnknownMessage(number.to_string(), id.to_string()))?;
        let chat: Jid = message.chat.parse().unwrap_or_else(|_| account.pn_jid());
        (DeviceKey::new(sender.user.as_str(), sender.device), chat)
    };
    if send_receipt(shared, &sender, &chat, id, kind) {
        Ok(())
    } else {
        Err(DeliveryError::SenderOffline(id.to_string()))
    }
}

/// What happened to a text a phone sent.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct SentText {
    pub id: String,
    /// Companion JIDs that had it pushed on their live connection.
    pub delivered: Vec<String>,
    /// Companion JIDs that were offline; they get it at their next login.
    pub queued: Vec<String>,
}

/// A phone-style message id.
pub fn new_message_id() -> String {
    let random: u64 = rand::make_rng::<rand::rngs::StdRng>().random();
    format!("3A{random:016X}")
}

/// How a phone's message names its sender: by phone number, or (as WhatsApp does in chats
/// migrated to LIDs) by the sender's LID, with its phone number in `sender_pn`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Addressing {
    #[default]
    Pn,
    Lid,
}

/// Phone `from` (created if needed) sends `text` to every client paired to `to`.
pub fn send_text(
    shared: &Shared,
    from: &str,
    to: &str,
    text: &str,
) -> Result<SentText, DeliveryError> {
    send_text_addressed(shared, from, to, text, Addressing::Pn)
}

pub fn send_text_addressed(
    shared: &Shared,
    from: &str,
    to: &str,
    text: &str,
    addressing: Addressing,
) -> Result<SentText, DeliveryError> {
    send_message(shared, from, to, text_message(text), addressing)
}

/// Phone `from` (created if needed) sends `message` (a text, a photo, a location…) to every
/// client paired to `to`, under a new id.
pub fn send_message(
    shared: &Shared,
    from: &str,
    to: &str,
    message: wa::Message,
    addressing: Addressing,
) -> Result<SentText, DeliveryError> {
    send_message_as(shared, from, to, &new_message_id(), message, addressing)
}

/// [`send_message`] under the id `id`, which the sending device chooses: two phones may
/// pick the same one, and WhatsApp tells messages apart by chat, sender and id together.
pub fn send_message_as(
    shared: &Shared,
    from: &str,
    to: &str,
    id: &str,
    message: wa::Message,
    addressing: Addressing,
) -> Result<SentText, DeliveryError> {
    let (sender, _) = shared.create_account(from, 1)?;
    let sent = deliver(shared, &sender, to, id, &message, addressing)?;
    lock(&sender).remember_sent(
        id,
        SentMessage {
            to: to.to_owned(),
            message,
            addressing,
        },
    );
    Ok(sent)
}

/// Phone `from` sends its message `id` again, as a phone does when a recipient device asks
/// for it (a retry receipt) or its user resends it: the same id and content, encrypted anew
/// on the current Signal sessions, to every client paired to the recipient now.
pub fn resend(shared: &Shared, from: &str, id: &str) -> Result<SentText, DeliveryError> {
    let sender = shared
        .account(from)
        .ok_or_else(|| DeliveryError::NotOnWhatsApp(from.to_string()))?;
    let original = lock(&sender)
        .sent_message(id)
        .cloned()
        .ok_or_else(|| DeliveryError::UnknownMessage(from.to_string(), id.to_string()))?;
    deliver(
        shared,
        &sender,
        &original.to,
        id,
        &original.message,
        original.addressing,
    )
}

/// Encrypts `message` from `sender` to every companion of `to` and hands it to each: pushed
/// on a live connection, and in either case kept in WhatsApp's queue for the device until
/// the device acknowledges it.
fn deliver(
    shared: &Shared,
    sender: &Arc<std::sync::Mutex<crate::account::Account>>,
    to: &str,
    id: &str,
    message: &wa::Message,
    addressing: Addressing,
) -> Result<SentText, DeliveryError> {
    let recipient = shared
        .account(to)
        .ok_or_else(|| DeliveryError::NotOnWhatsApp(to.to_string()))?;
    let targets: Vec<_> = {
        let mut recipient = lock(&recipient);
        recipient
            .companion_ids()
            .into_iter()
            .map(|device| (device, recipient.take_companion_bundle(device)))
            .collect()
    };
    if targets.is_empty() {
        return Err(DeliveryError::NoCompanions(to.to_string()));
    }
    let (message_type, media_type) = stanza_types(message);
    let mut sent = SentText {
        id: id.to_owned(),
        delivered: Vec::new(),
        queued: Vec::new(),
    };
    for (device, bundle) in targets {
        let target = DeviceKey::new(to, device);
        let target_jid = target.jid();
        let (encrypted, sender_number, sender_pn, sender_lid) = {
            let mut sender = lock(sender);
            let encrypted =
                sender.encrypt_from_primary(&target_jid.to_string(), bundle.as_ref(), message)?;
            (
                encrypted,
                sender.number.clone(),
                sender.pn_jid(),
                sender.lid_jid(),
            )
        };
        let mut stanza = stanza::encrypted_message(
            id,
            if addressing == Addressing::Lid {
                &sender_lid
            } else {
                &sender_pn
            },
            &target_jid,
            encrypted.enc_type.as_wire_str(),
            encrypted.ciphertext,
            false,
        );
        stanza::set_message_type(&mut stanza, message_type, media_type);
        if addressing == Addressing::Lid {
            // WhatsApp's LID-addressed direct message: from the LID, the number alongside.
            stanza.attrs.insert("sender_pn", sender_pn.to_string());
            stanza.attrs.insert("addressing_mode", "lid".to_string());
        }
        // Queued before it goes out, so a receipt that comes back at once finds it.
        lock(&recipient).queue_for(device, id, &sender_number, stanza.clone());
        if shared.send_to_device(&target, ConnCommand::Send(stanza)) {
            shared.stats.message_sent_to_client();
            sent.delivered.push(target_jid.to_string());
        } else {
            sent.queued.push(target_jid.to_string());
        }
    }
    Ok(sent)
}
