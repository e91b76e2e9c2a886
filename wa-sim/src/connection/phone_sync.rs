//! What the account's phone sends its own logged-in companion: the app-state key share
//! (unasked once after linking, and again when the companion asks for a key it lacks) and
//! the initial history chunk (once after linking). Both are Signal messages from the
//! phone's primary device, in `<message category="peer">` from the account's own PN.

use tracing::{info, warn};
use waproto::whatsapp as wa;

use super::ConnError;
use super::session::{Role, Session};
use crate::state::lock;

/// One message from the phone to the companion of this connection.
pub enum PhoneMessage {
    KeyShare(wa::Message),
    InitialHistory(wa::Message),
}

impl PhoneMessage {
    fn label(&self) -> &'static str {
        match self {
            Self::KeyShare(_) => "app-state key",
            Self::InitialHistory(_) => "initial history",
        }
    }

    fn message(&self) -> &wa::Message {
        match self {
            Self::KeyShare(message) | Self::InitialHistory(message) => message,
        }
    }
}

impl Session {
    /// What the phone sends a companion once it is online (after the offline marker): its
    /// app-state key and its initial history, each only the first time after linking.
    pub async fn send_phone_welcome(&mut self) -> Result<(), ConnError> {
        let Role::Online(online) = &self.role else {
            return Ok(());
        };
        let messages = {
            let mut account = lock(&online.account);
            let mut messages = Vec::new();
            if self.shared.config.share_app_state_key {
                messages.extend(
                    account
                        .take_key_share(online.device.device)
                        .map(PhoneMessage::KeyShare),
                );
            }
            messages.extend(
                account
                    .take_initial_history(online.device.device)
                    .map(PhoneMessage::InitialHistory),
            );
            messages
        };
        self.send_phone_messages(messages).await
    }

    /// The companion asked its own devices for the app-state keys `key_ids`: the phone
    /// shares those it has, as a real phone answers an `appStateSyncKeyRequest`.
    pub async fn answer_key_request(&mut self, key_ids: &[Vec<u8>]) -> Result<(), ConnError> {
        let Role::Online(online) = &self.role else {
            return Ok(());
        };
        self.shared.stats.app_state_key_request();
        if !self.shared.config.share_app_state_key {
            info!(
                conn = self.conn.id,
                "key request ignored: this phone shares no keys"
            );
            return Ok(());
        }
        let share = lock(&online.account).key_share_for(online.device.device, key_ids);
        match share {
            Some(share) => {
                self.send_phone_messages(vec![PhoneMessage::KeyShare(share)])
                    .await
            }
            None => {
                info!(
                    conn = self.conn.id,
                    "key request for keys the phone does not have"
                );
                Ok(())
            }
        }
    }

    /// Encrypts `messages` from the phone's primary device to this connection's companion
    /// and sends them, in order.
    async fn send_phone_messages(&mut self, messages: Vec<PhoneMessage>) -> Result<(), ConnError> {
        let Role::Online(online) = &self.role else {
            return Ok(());
        };
        if messages.is_empty() {
            return Ok(());
        }
        let device = online.device.clone();
        let encrypted = {
            let mut account = lock(&online.account);
            // Only a session's first message needs the companion's prekey bundle (with it,
            // the phone also notices a companion whose identity changed).
            let mut bundle = account.take_companion_bundle(device.device);
            let address = device.jid().to_string();
            let own_pn = account.pn_jid();
            messages
                .into_iter()
                .map(|message| {
                    let encrypted = account.encrypt_from_primary(
                        &address,
                        bundle.take().as_ref(),
                        message.message(),
                    );
                    (message, encrypted, own_pn.clone())
                })
                .collect::<Vec<_>>()
        };
        for (message, encrypted, own_pn) in encrypted {
            let what = message.label();
            match encrypted {
                Ok(encrypted) => {
                    let stanza = crate::stanza::encrypted_message(
                        &crate::delivery::new_message_id(),
                        &own_pn,
                        &device.jid(),
                        encrypted.enc_type.as_wire_str(),
                        encrypted.ciphertext,
                        true,
                    );
                    info!(conn = self.conn.id, device = %device.jid(), what, "phone message to companion");
                    self.send(&stanza).await?;
                    if let PhoneMessage::KeyShare(_) = message {
                        self.shared.stats.app_state_key_share();
                    }
                }
                Err(error) => {
                    warn!(conn = self.conn.id, %error, what, "phone message to companion failed")
                }
            }
        }
        Ok(())
    }
}
