//! Messages contacts send to the linked number. They are stored from whatsapp-rust's inbound
//! durability hook ([`InboundHook`]), not from its `Messages` event: by the time that event
//! is dispatched the client has already sent the message's delivery receipt, which is also
//! what tells WhatsApp to drop the message from the device's queue. A write that failed there
//! would lose the message for good. With the hook, the client keeps the decrypted message in
//! its own buffer (`wa_pending_inbound`, see the store) and sends the receipt only once the
//! hook returns `Ok`, so each message is stored ([`crate::inbound::record`], whose trigger
//! writes the `message.received` webhook in the same statement) and announced as
//! `message_received` before WhatsApp hears that the device has it.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use wacore::proto_helpers::MessageExt;
use wacore_binary::jid::{Jid, JidExt};
use whatsapp_rust::Client;
use whatsapp_rust::InboundDurabilityHook;
use whatsapp_rust::types::events::InboundMessage as Decrypted;

use super::Writer;
use crate::error::SessionError;
use crate::events::SessionEvent;
use crate::inbound::{self, Received};

/// The first wait after a failed write; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(200);
/// The longest wait between two attempts: a database back after an outage takes at most
/// this long to see the messages that waited for it.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Stores what the session's client decrypts before the client acknowledges it.
///
/// A failed write is retried, with exponential backoff capped at [`RETRY_MAX`], for as long
/// as the session runs under its lease, instead of being handed back to the client at once.
/// Handing it back (`Err`) withholds the receipt, and WhatsApp keeps an unacknowledged
/// message queued for the device and sends it again at the device's next login, not on the
/// connection it is on: a database that recovers a second later would leave the message
/// waiting until some reconnect. Retrying here holds up this chat's receive lane (the client
/// processes one message per chat at a time and the chats in parallel; in the offline drain
/// after a login, where it commits received messages in batches, the whole drain), which is
/// what a store that cannot take messages should do. When the session stops or its lease
/// is lost, the hook gives up with `Err`; the message stays unacknowledged and in the
/// client's buffer, and WhatsApp redelivers it to whichever node runs the session next,
/// whose client replays it into this hook. The write is idempotent (the WhatsApp id is
/// unique per user), so a message the hook saw twice is stored and announced once.
pub struct InboundHook {
    writer: Writer,
    /// Turns `true` (or its sender is dropped) when the session's client is being stopped.
    stopping: watch::Receiver<bool>,
}

impl InboundHook {
    pub fn new(writer: Writer, stopping: watch::Receiver<bool>) -> Self {
        Self { writer, stopping }
    }

    /// Whether retrying still makes sense: the session runs and holds its lease.
    fn session_lives(&self) -> bool {
        !*self.stopping.borrow() && self.writer.fence.is_valid()
    }

    /// Records one message, retrying a failed write while the session lives.
    async fn store(&self, client: &Client, decrypted: &Decrypted) -> Result<(), SessionError> {
        let info = &decrypted.info;
        // Our own sends echoed to this device, status broadcasts: not a contact writing to us.
        if info.source.is_from_me || info.source.chat.is_status_broadcast() {
            return Ok(());
        }
        let Some((kind, text)) = content(decrypted) else {
            return Ok(());
        };
        let from =
            sender_number(client, &info.source.sender, info.source.sender_alt.as_ref()).await;
        let chat = if info.source.is_group {
            info.source.chat.to_string()
        } else {
            // A direct chat is the sender's, named by number whichever way WhatsApp addressed it.
            format!("{from}@s.whatsapp.net")
        };
        let received = Received {
            wa_message_id: &info.id,
            from: &from,
            chat: &chat,
            kind,
            text: &text,
            sent_at: info.timestamp.min(Utc::now()),
        };
        let writer = &self.writer;
        let mut wait = RETRY_FIRST;
        let mut stopping = self.stopping.clone();
        loop {
            let error =
                match inbound::record(&writer.pool, &writer.fence, writer.user_id, &received).await
                {
                    Ok(Some(message)) => {
                        writer.events.publish(SessionEvent::MessageReceived {
                            user_id: writer.user_id,
                            message,
                        });
                        return Ok(());
                    }
                    // Stored before: a redelivery, or a phone that sent the same id again.
                    Ok(None) => return Ok(()),
                    Err(error) => error,
                };
            if !self.session_lives() {
                return Err(error);
            }
            tracing::warn!(
                user_id = %writer.user_id,
                wa_message_id = %info.id,
                %error,
                retry_in_ms = wait.as_millis() as u64,
                "storing a received message failed; WhatsApp gets no receipt until it is stored"
            );
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = writer.fence.lost() => return Err(error),
                _ = stopping.wait_for(|stopping| *stopping) => return Err(error),
            }
            wait = (wait * 2).min(RETRY_MAX);
        }
    }
}

#[async_trait::async_trait]
impl InboundDurabilityHook for InboundHook {
    async fn on_messages(
        &self,
        client: Arc<Client>,
        batch: &[Decrypted],
    ) -> whatsapp_rust::anyhow::Result<()> {
        // In order, one at a time: a batch that fails half-way is replayed whole, and the
        // messages stored already are no-ops then.
        for decrypted in batch {
            self.store(&client, decrypted).await?;
        }
        Ok(())
    }
}

/// The message's kind and text: the text itself, or a placeholder for what is not text.
/// Protocol messages (key shares, history sync, revocations) are not something a contact
/// wrote and give `None`.
fn content(decrypted: &Decrypted) -> Option<(&'static str, String)> {
    let message = decrypted.message.get_base_message();
    if let Some(text) = message.text_content() {
        return Some(("text", text.to_owned()));
    }
    // A location has no caption; its place name is what a person would read.
    let caption = message.get_caption().map(str::to_owned).or_else(|| {
        message
            .location_message
            .as_option()
            .and_then(|location| location.name.clone().or_else(|| location.address.clone()))
    });
    let kind = if message.image_message.as_option().is_some() {
        "image"
    } else if message.video_message.as_option().is_some() {
        "video"
    } else if message.audio_message.as_option().is_some() {
        "audio"
    } else if message.document_message.as_option().is_some() {
        "document"
    } else if message.sticker_message.as_option().is_some() {
        "sticker"
    } else if message.location_message.as_option().is_some()
        || message.live_location_message.as_option().is_some()
    {
        "location"
    } else if message.contact_message.as_option().is_some() {
        "contact"
    } else if message.reaction_message.as_option().is_some() {
        "reaction"
    } else if message.poll_creation_message.as_option().is_some() {
        "poll"
    } else {
        return None;
    };
    let text = match caption.filter(|c| !c.is_empty()) {
        Some(caption) => format!("[{kind}] {caption}"),
        None => format!("[{kind}]"),
    };
    Some((kind, text))
}

/// The sender's phone number: the JID's own when it is a phone number, else (a LID) the
/// phone-number JID WhatsApp sent alongside, else the client's LID↔PN mapping, and as a last
/// resort the LID's user part.
async fn sender_number(client: &Client, sender: &Jid, alt: Option<&Jid>) -> String {
    if !sender.is_lid() {
        return sender.user.to_string();
    }
    if let Some(alt) = alt.filter(|alt| alt.is_pn()) {
        return alt.user.to_string();
    }
    if let Ok(Some(entry)) = client.get_lid_pn_entry(sender).await {
        return entry.phone_number.to_string();
    }
    sender.user.to_string()
}
