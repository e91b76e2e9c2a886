//! What a logged-in client sends about messages. A `<message>`: ack it, let every
//! simulated recipient device decrypt its `<enc>`, record the texts (a message id the
//! device already got from that sender only once), and schedule the phone's receipts.
//! A `<receipt>`: ack it, hand it to the phone that sent the message, and (unless it asks
//! for a retry) take the message off the receipting device's queue, as a plain
//! `<ack class="message">` does too. A companion's own phone also answers its requests for
//! app-state keys.

use std::collections::BTreeSet;

use tracing::{debug, warn};
use wacore_binary::{Jid, Node, NodeContent};

use super::ConnError;
use super::session::{Flow, Role, Session};
use crate::account::{ClientReceipt, unix_millis};
use crate::delivery;
use crate::inbox::ReceivedText;
use crate::phone::{message_text, requested_app_state_keys};
use crate::stanza;
use crate::state::lock;

fn attr(node: &Node, key: &str) -> Option<String> {
    node.attrs().optional_string(key).map(|v| v.into_owned())
}

/// `(device the enc is for, enc node)` pairs: `<participants><to jid><enc>` for a
/// fan-out, or direct `<enc>` children addressed to the stanza's `to`.
fn encrypted_parts<'a>(node: &'a Node, to: &Jid) -> Vec<(Jid, &'a Node)> {
    let mut parts = Vec::new();
    if let Some(participants) = node.get_optional_child("participants") {
        for target in participants.get_children_by_tag("to") {
            let Some(jid) = target.attrs().optional_jid("jid") else {
                continue;
            };
            for enc in target.get_children_by_tag("enc") {
                parts.push((jid.clone(), enc));
            }
        }
    }
    for enc in node.get_children_by_tag("enc") {
        parts.push((to.clone(), enc));
    }
    parts
}

impl Session {
    pub async fn on_client_message(&mut self, node: Node) -> Result<Flow, ConnError> {
        let Role::Online(online) = &self.role else {
            return Ok(Flow::Continue);
        };
        let sender = online.device.clone();
        // The receipt mode when the message arrived decides its receipts: a mode changed
        // while the phone is still decrypting it applies to the next message only.
        let receipts = self.shared.receipt_mode();
        let (Some(id), Some(to_text)) = (attr(&node, "id"), attr(&node, "to")) else {
            return Ok(Flow::Continue);
        };
        // The server has the message once it read it: a client that closed its socket right
        // after sending (a node shutting down) misses the ack, not the delivery. So the ack's
        // failure ends the connection only after the message is taken.
        let acked = if self.shared.take_lost_ack(&sender.number) {
            Ok(())
        } else {
            self.send(&stanza::message_ack(&id, &to_text)).await
        };
        let Ok(to) = to_text.parse::<Jid>() else {
            return acked.map(|()| Flow::Continue);
        };
        let sender_address = sender.jid().to_string();
        let mut recipients = BTreeSet::new();
        let mut key_request = None;
        for (target, enc) in encrypted_parts(&node, &to) {
            let Some(account) = self.shared.account_for_jid(&target) else {
                continue;
            };
            let enc_type = attr(enc, "type").unwrap_or_default();
            let version = attr(enc, "v").and_then(|v| v.parse().ok()).unwrap_or(2);
            let Some(NodeContent::Bytes(ciphertext)) = &enc.content else {
                continue;
            };
            let mut account = lock(&account);
            if !account.is_phone_device(target.device) {
                debug!(target = %target, "enc for a real companion; not relayed");
                continue;
            }
            match account.decrypt(
                target.device,
                &sender_address,
                &enc_type,
                ciphertext,
                version,
            ) {
                Ok(message) => {
                    // The sender's own phone gets a device-sent copy: not a received text.
                    if account.number == sender.number || message.device_sent_message.is_set() {
                        self.shared.stats.own_device_copy_decrypted();
                        // Only the primary answers: the client takes keys from it alone.
                        if account.number == sender.number && target.device == 0 {
                            key_request = key_request.or(requested_app_state_keys(&message));
                        }
                        continue;
                    }
                    // A repeat is answered like the first copy (WhatsApp clients send a
                    // receipt for every message they decrypt, one they know included), so
                    // a sender that lost the first receipts still sees it delivered.
                    recipients.insert(account.number.clone());
                    if !account.first_copy(target.device, &sender.number, &id) {
                        self.shared.stats.duplicate_message();
                        continue;
                    }
                    self.shared.stats.message_decrypted_by_recipient();
                    if let Some(text) = message_text(&message) {
                        account.record(ReceivedText {
                            id: id.clone(),
                            from: sender.number.clone(),
                            from_device: sender_address.clone(),
                            device: target.device,
                            text: text.to_string(),
                            received_at: unix_millis(),
                            enc_type: enc_type.clone(),
                            addressed_to: target.to_string(),
                            chat: to.to_non_ad().to_string(),
                        });
                    }
                }
                Err(error) => {
                    self.shared.stats.decrypt_failure();
                    warn!(conn = self.conn.id, target = %target, %error, "phone could not decrypt");
                }
            }
        }
        if !recipients.is_empty() {
            delivery::schedule_receipts(&self.shared, receipts, &to.to_non_ad(), &sender, &id);
        }
        acked?;
        if let Some(key_ids) = key_request {
            self.answer_key_request(&key_ids).await?;
        }
        Ok(Flow::Continue)
    }

    /// A receipt names one message (`id`) or several (`<list><item id>` after it); `to`
    /// is the message's sender, whose phone records it.
    pub async fn on_client_receipt(&mut self, node: Node) -> Result<Flow, ConnError> {
        let Role::Online(online) = &self.role else {
            return Ok(Flow::Continue);
        };
        let from_device = online.device.jid().to_string();
        let (Some(id), Some(to_text)) = (attr(&node, "id"), attr(&node, "to")) else {
            return Ok(Flow::Continue);
        };
        let kind = attr(&node, "type");
        // As with a message: a receipt read is a receipt taken, acked or not.
        let acked = self
            .send(&stanza::receipt_ack(&id, &to_text, kind.as_deref()))
            .await;
        let Some((account, sender)) = to_text.parse::<Jid>().ok().and_then(|to| {
            Some((
                self.shared.account_for_jid(&to)?,
                self.shared.number_for_jid(&to)?,
            ))
        }) else {
            return acked.map(|()| Flow::Continue);
        };
        let listed = node
            .get_optional_child("list")
            .into_iter()
            .flat_map(|list| list.get_children_by_tag("item"))
            .filter_map(|item| attr(item, "id"));
        let ids: Vec<String> = std::iter::once(id).chain(listed).collect();
        // Any receipt but a retry (the device could not decrypt it and asks for it again)
        // tells WhatsApp the device has the message.
        if kind.as_deref() != Some("retry") {
            self.acknowledged(&sender, &ids);
        }
        let kind = kind.unwrap_or_else(|| "delivered".to_string());
        let received_at = unix_millis();
        let mut account = lock(&account);
        for id in ids {
            account.record_receipt(ClientReceipt {
                id,
                from_device: from_device.clone(),
                kind: kind.clone(),
                received_at,
            });
        }
        acked.map(|()| Flow::Continue)
    }

    /// `<ack class="message" id to>`: the client's acknowledgement of a message that needs
    /// no receipt; like a receipt, it takes the message off the device's queue.
    pub async fn on_client_ack(&mut self, node: Node) -> Result<Flow, ConnError> {
        if attr(&node, "class").as_deref() != Some("message") {
            return Ok(Flow::Continue);
        }
        let (Some(id), Some(to)) = (
            attr(&node, "id"),
            attr(&node, "to").and_then(|to| to.parse::<Jid>().ok()),
        ) else {
            return Ok(Flow::Continue);
        };
        if let Some(sender) = self.shared.number_for_jid(&to) {
            self.acknowledged(&sender, &[id]);
        }
        Ok(Flow::Continue)
    }

    /// This connection's device has messages `ids` from `sender`: WhatsApp stops holding
    /// them for it.
    fn acknowledged(&self, sender: &str, ids: &[String]) {
        let Role::Online(online) = &self.role else {
            return;
        };
        lock(&online.account).acknowledge(online.device.device, sender, ids);
    }
}
