//! Messages contacts send to the linked number, from whatsapp-rust's `Messages` event: each
//! is stored once ([`crate::inbound::record`], whose trigger writes the `message.received`
//! webhook in the same statement) and announced as `message_received`.

use chrono::Utc;
use wacore::proto_helpers::MessageExt;
use wacore_binary::jid::{Jid, JidExt};
use whatsapp_rust::types::events::{InboundMessage as Decrypted, MessageBatch};

use super::WaSessionState;
use crate::error::SessionError;
use crate::events::SessionEvent;
use crate::inbound::{self, Received};

pub async fn handle(state: &WaSessionState, batch: &MessageBatch) -> Result<(), SessionError> {
    for decrypted in batch.iter() {
        let info = &decrypted.info;
        // Our own sends echoed to this device, status broadcasts: not a contact writing to us.
        if info.source.is_from_me || info.source.chat.is_status_broadcast() {
            continue;
        }
        let Some((kind, text)) = content(decrypted) else {
            continue;
        };
        let from = sender_number(state, &info.source.sender, info.source.sender_alt.as_ref()).await;
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
        if let Some(message) =
            inbound::record(state.pool(), state.fence(), state.user_id(), &received).await?
        {
            state.publish(SessionEvent::MessageReceived {
                user_id: state.user_id(),
                message,
            });
        }
    }
    Ok(())
}

/// The message's kind and text: the text itself, or a placeholder for what is not text.
/// Protocol messages (key shares, history sync, revocations) are not something a contact
/// wrote and give `None`.
fn content(decrypted: &Decrypted) -> Option<(&'static str, String)> {
    let message = decrypted.message.get_base_message();
    if let Some(text) = message.text_content() {
        return Some(("text", text.to_owned()));
    }
    let caption = message.get_caption().map(str::to_owned);
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
async fn sender_number(state: &WaSessionState, sender: &Jid, alt: Option<&Jid>) -> String {
    if !sender.is_lid() {
        return sender.user.to_string();
    }
    if let Some(alt) = alt.filter(|alt| alt.is_pn()) {
        return alt.user.to_string();
    }
    if let Some(client) = state.client.as_ref()
        && let Ok(Some(entry)) = client.client().get_lid_pn_entry(sender).await
    {
        return entry.phone_number.to_string();
    }
    sender.user.to_string()
}
