//! Things simulated phones send to real clients: receipts (automatic or on command)
//! and texts, encrypted to every companion of the recipient account.

use std::sync::Arc;
use std::time::Duration;

use rand::RngExt as _;
use serde::Serialize;
use wacore_binary::Jid;

use crate::account::AccountError;
use crate::config::ReceiptMode;
use crate::phone::{PhoneError, text_message};
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

/// Phone `from` (created if needed) sends `text` to every client paired to `to`.
/// How a phone's message names its sender: by phone number, or (as WhatsApp does in chats
/// migrated to LIDs) by the sender's LID, with its phone number in `sender_pn`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Addressing {
    #[default]
    Pn,
    Lid,
}

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
    let (sender, _) = shared.create_account(from, 1)?;
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
    let message = text_message(text);
    let id = new_message_id();
    let mut sent = SentText {
        id: id.clone(),
        delivered: Vec::new(),
        queued: Vec::new(),
    };
    for (device, bundle) in targets {
        let target = DeviceKey::new(to, device);
        let target_jid = target.jid();
        let (encrypted, sender_pn, sender_lid) = {
            let mut sender = lock(&sender);
            let encrypted =
                sender.encrypt_from_primary(&target_jid.to_string(), bundle.as_ref(), &message)?;
            (encrypted, sender.pn_jid(), sender.lid_jid())
        };
        let mut stanza = stanza::encrypted_message(
            &id,
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
        if addressing == Addressing::Lid {
            // WhatsApp's LID-addressed direct message: from the LID, the number alongside.
            stanza.attrs.insert("sender_pn", sender_pn.to_string());
            stanza.attrs.insert("addressing_mode", "lid".to_string());
        }
        if shared.send_to_device(&target, ConnCommand::Send(stanza.clone())) {
            shared.stats.message_sent_to_client();
            sent.delivered.push(target_jid.to_string());
        } else {
            lock(&recipient).queue_for(device, stanza);
            sent.queued.push(target_jid.to_string());
        }
    }
    Ok(sent)
}
