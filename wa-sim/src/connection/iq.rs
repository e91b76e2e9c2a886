//! Answers to the IQs a logged-in client sends: passive/active (followed by the offline
//! marker and, after a fresh pairing, the phone's app-state key share and initial history
//! chunk), app-state sync (the patches the phone wrote), usync, prekey upload and fetch,
//! companion removal, and a plain result for the rest.

use tracing::{debug, info, warn};
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, NodeContent, Server};

use super::ConnError;
use super::session::{Flow, Role, Session};
use crate::stanza;
use crate::state::lock;

fn attr(node: &Node, key: &str) -> Option<String> {
    node.attrs().optional_string(key).map(|v| v.into_owned())
}

fn children(node: &Node) -> &[Node] {
    node.children().unwrap_or_default()
}

fn content_bytes(node: &Node) -> Option<&[u8]> {
    match &node.content {
        Some(NodeContent::Bytes(bytes)) => Some(bytes),
        _ => None,
    }
}

/// A 3-byte (or 4-byte) big-endian id.
fn be_u32(bytes: &[u8]) -> Option<u32> {
    (1..=4)
        .contains(&bytes.len())
        .then(|| bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}

impl Session {
    pub async fn on_online_iq(&mut self, node: Node) -> Result<Flow, ConnError> {
        let id = attr(&node, "id").unwrap_or_default();
        let kind = attr(&node, "type").unwrap_or_default();
        if kind == "result" || kind == "error" {
            // Answers to server pings; nothing is waiting on them.
            return Ok(Flow::Continue);
        }
        let xmlns = attr(&node, "xmlns").unwrap_or_default();
        match xmlns.as_str() {
            "passive" => self.on_passive(&id).await,
            "w:sync:app:state" => {
                let reply = self.app_state_reply(&id, &node);
                self.send(&reply).await?;
                Ok(Flow::Continue)
            }
            "usync" | "encrypt" if self.refuse_as_overlimit(&node) => {
                let Role::Online(online) = &self.role else {
                    return Ok(Flow::Continue);
                };
                let number = lock(&online.account).number.clone();
                if let Some(backoff) = self.shared.take_rate_overlimit(&number) {
                    info!(conn = self.conn.id, %number, "send refused: rate-overlimit");
                    self.send(&stanza::iq_rate_overlimit(&id, backoff)).await?;
                    return Ok(Flow::Continue);
                }
                let reply = if xmlns == "usync" {
                    self.usync_reply(&id, &node)
                } else {
                    self.encrypt_reply(&id, &node)
                };
                self.send(&reply).await?;
                Ok(Flow::Continue)
            }
            "usync" => {
                let reply = self.usync_reply(&id, &node);
                self.send(&reply).await?;
                Ok(Flow::Continue)
            }
            "encrypt" => {
                let reply = self.encrypt_reply(&id, &node);
                self.send(&reply).await?;
                Ok(Flow::Continue)
            }
            "md" => self.on_md(&id, &node).await,
            "w:p" => {
                let pong = NodeBuilder::new("iq")
                    .attr("type", "result")
                    .attr("id", id.as_str())
                    .attr("from", wacore_binary::SERVER_JID)
                    .attr("t", stanza::unix_now().to_string())
                    .build();
                self.send(&pong).await?;
                Ok(Flow::Continue)
            }
            other => {
                debug!(conn = self.conn.id, xmlns = other, "generic IQ result");
                self.send(&stanza::iq_result(&id, Vec::new())).await?;
                Ok(Flow::Continue)
            }
        }
    }

    /// `<active/>` is the client's "ready": answer it, close the (empty) offline
    /// queue, and let the phone send a newly linked companion its app-state key and first
    /// history.
    async fn on_passive(&mut self, id: &str) -> Result<Flow, ConnError> {
        self.send(&stanza::iq_result(id, Vec::new())).await?;
        let Role::Online(online) = &mut self.role else {
            return Ok(Flow::Continue);
        };
        if online.offline_sent {
            return Ok(Flow::Continue);
        }
        online.offline_sent = true;
        self.send(&stanza::offline_done(0)).await?;
        self.send_phone_welcome().await?;
        Ok(Flow::Continue)
    }

    /// Each requested collection at the server's version, with the patches the client lacks:
    /// all of them for a client at version 0 (real servers may send a snapshot blob
    /// instead; inline patches from version 1 are what they send for a short collection),
    /// none for one that is up to date. Collections the phone never wrote are empty at
    /// version 0. A phone that shares no key has its app state withheld: no companion could
    /// decrypt it.
    fn app_state_reply(&self, id: &str, node: &Node) -> Node {
        let account = match &self.role {
            Role::Online(online) if self.shared.config.share_app_state_key => {
                Some(online.account.clone())
            }
            _ => None,
        };
        let account = account.as_ref().map(|account| lock(account));
        let collections: Vec<Node> = node
            .get_optional_child("sync")
            .map(children)
            .unwrap_or_default()
            .iter()
            .filter_map(|request| {
                let name = attr(request, "name")?;
                let have = attr(request, "version")
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
                let collection = account
                    .as_ref()
                    .and_then(|account| account.app_state().collection(&name));
                let builder = NodeBuilder::new("collection").attr("name", name.as_str());
                Some(match collection {
                    None => builder.attr("version", "0").build(),
                    Some(collection) => {
                        let patches = collection.patches_after(have);
                        let builder = builder.attr("version", collection.version().to_string());
                        if patches.is_empty() {
                            builder.build()
                        } else {
                            debug!(conn = self.conn.id, collection = %name, from = have, count = patches.len(), "app-state patches");
                            builder
                                .children([NodeBuilder::new("patches")
                                    .children(patches.iter().map(|patch| {
                                        NodeBuilder::new("patch").bytes(patch.clone()).build()
                                    }))
                                    .build()])
                                .build()
                        }
                    }
                })
            })
            .collect();
        stanza::iq_result(
            id,
            vec![NodeBuilder::new("sync").children(collections).build()],
        )
    }

    /// `remove-companion-device` is the client logging itself out.
    async fn on_md(&mut self, id: &str, node: &Node) -> Result<Flow, ConnError> {
        self.send(&stanza::iq_result(id, Vec::new())).await?;
        let Some(removal) = node.get_optional_child("remove-companion-device") else {
            return Ok(Flow::Continue);
        };
        let Role::Online(online) = &self.role else {
            return Ok(Flow::Continue);
        };
        let target = removal
            .attrs()
            .optional_jid("jid")
            .unwrap_or_else(|| online.device.jid());
        // Only devices of the connection's own account can be unlinked from it.
        if self.shared.number_for_jid(&target).as_deref() != Some(online.device.number.as_str()) {
            warn!(conn = self.conn.id, target = %target, "removal of another account's device ignored");
            return Ok(Flow::Continue);
        }
        let target = target.device;
        let removed = lock(&online.account).remove_companion(target);
        info!(
            conn = self.conn.id,
            device = target,
            removed,
            "companion logged out"
        );
        Ok(Flow::Continue)
    }

    /// Whether `node` is an IQ a send makes (the device list, the recipient's keys) from a
    /// phone whose rate-overlimit switch is on.
    fn refuse_as_overlimit(&self, node: &Node) -> bool {
        let Role::Online(online) = &self.role else {
            return false;
        };
        // The users the query names: a send asks about its recipient; the client's own
        // background queries (its own devices) are left alone.
        let users = match (
            node.get_optional_child("usync"),
            node.get_optional_child("key"),
        ) {
            (Some(usync), _) => usync
                .get_optional_child("list")
                .map(children)
                .unwrap_or_default(),
            (None, Some(key)) => children(key),
            (None, None) => return false,
        };
        let (number, lid) = {
            let account = lock(&online.account);
            (account.number.clone(), account.lid.clone())
        };
        let names_another = users.iter().any(|user| {
            attr(user, "jid")
                .and_then(|jid| jid.parse::<Jid>().ok())
                .is_some_and(|jid| jid.user != number && jid.user != lid)
        });
        names_another && self.shared.rate_overlimit(&number).remaining > 0
    }

    fn usync_reply(&self, id: &str, node: &Node) -> Node {
        let Some(usync) = node.get_optional_child("usync") else {
            return stanza::iq_result(id, Vec::new());
        };
        let query = usync.get_optional_child("query");
        let wants =
            |protocol: &str| query.is_some_and(|q| q.get_optional_child(protocol).is_some());
        let (wants_devices, wants_contact, wants_lid) =
            (wants("devices"), wants("contact"), wants("lid"));
        let mut users = Vec::new();
        for user in usync
            .get_optional_child("list")
            .map(children)
            .unwrap_or_default()
        {
            let Some(jid) = user_jid(user) else { continue };
            let jid_text = jid.to_string();
            let account = self.shared.account_for_jid(&jid);
            let mut result = Vec::new();
            if wants_contact {
                let kind = if account.is_some() { "in" } else { "out" };
                result.push(NodeBuilder::new("contact").attr("type", kind).build());
            }
            // WhatsApp addresses users by LID: a phone number on WhatsApp is answered with
            // its LID, which clients then key their Signal sessions and key fetches under.
            if wants_lid
                && jid.server != Server::Lid
                && let Some(account) = &account
            {
                let lid = lock(account).lid_jid();
                result.push(NodeBuilder::new("lid").attr("val", lid.to_string()).build());
            }
            if wants_devices {
                match &account {
                    Some(account) => match lock(account).device_list_user(&jid_text) {
                        // Reuse the whole <user> node, adding the other protocols' answers.
                        Ok(mut device_user) => {
                            if let Some(NodeContent::Nodes(nodes)) = &mut device_user.content {
                                nodes.extend(result);
                            }
                            users.push(device_user);
                            continue;
                        }
                        Err(error) => warn!(%error, "device list failed"),
                    },
                    // Not on WhatsApp: no devices. The send then fails on the key fetch.
                    None => result.push(
                        NodeBuilder::new("devices")
                            .children([NodeBuilder::new("device-list").build()])
                            .build(),
                    ),
                }
            }
            let builder = NodeBuilder::new("user").attr("jid", jid_text);
            users.push(if result.is_empty() {
                builder.build()
            } else {
                builder.children(result).build()
            });
        }
        let mut reply_usync = NodeBuilder::new("usync");
        for key in ["sid", "mode", "context", "index", "last"] {
            if let Some(value) = attr(usync, key) {
                reply_usync = reply_usync.attr(key, value);
            }
        }
        stanza::iq_result(
            id,
            vec![
                reply_usync
                    .children([NodeBuilder::new("list").children(users).build()])
                    .build(),
            ],
        )
    }

    fn encrypt_reply(&self, id: &str, node: &Node) -> Node {
        let Role::Online(online) = &self.role else {
            return stanza::iq_result(id, Vec::new());
        };
        if let Some(key) = node.get_optional_child("key") {
            return self.key_fetch_reply(id, key);
        }
        if node.get_optional_child("list").is_some() {
            let (one_time, signed) = parse_prekey_upload(node);
            debug!(conn = self.conn.id, count = one_time.len(), "prekey upload");
            lock(&online.account).store_uploaded_prekeys(online.device.device, one_time, signed);
            return stanza::iq_result(id, Vec::new());
        }
        if node.get_optional_child("count").is_some() {
            let count = lock(&online.account).uploaded_prekey_count(online.device.device);
            return stanza::iq_result(
                id,
                vec![
                    NodeBuilder::new("count")
                        .attr("value", count.to_string())
                        .build(),
                ],
            );
        }
        if node.get_optional_child("digest").is_some() {
            return match lock(&online.account).key_bundle_digest(online.device.device) {
                Some(digest) => stanza::iq_result(id, vec![digest]),
                None => stanza::iq_error(id, 404, "item-not-found"),
            };
        }
        stanza::iq_result(id, Vec::new())
    }

    /// Prekey bundles for the simulated devices asked for; any user that is not on
    /// WhatsApp fails the whole fetch with 406, as the real server answers.
    fn key_fetch_reply(&self, id: &str, key: &Node) -> Node {
        let mut users = Vec::new();
        for user in children(key) {
            let Some(requested) = attr(user, "jid") else {
                continue;
            };
            let Ok(jid) = requested.parse::<Jid>() else {
                return stanza::iq_error(id, 400, "bad-request");
            };
            let Some(account) = self.shared.account_for_jid(&jid) else {
                info!(conn = self.conn.id, user = %requested, "key fetch for a number not on WhatsApp");
                return stanza::iq_error(id, 406, "not-acceptable");
            };
            match lock(&account).phone_bundle_user(&requested, jid.device) {
                Some(Ok(node)) => users.push(node),
                Some(Err(error)) => warn!(%error, "bundle failed"),
                // A real companion: this simulator does not relay between clients.
                None => debug!(user = %requested, "no bundle for a non-simulated device"),
            }
        }
        stanza::iq_result(id, vec![NodeBuilder::new("list").children(users).build()])
    }
}

/// A usync `<user>`'s JID: its `jid` attribute, or the phone number in `<contact>`.
fn user_jid(user: &Node) -> Option<Jid> {
    if let Some(jid) = user.attrs().optional_jid("jid") {
        return Some(jid.to_non_ad());
    }
    let contact = user.get_optional_child("contact")?;
    let text = match &contact.content {
        Some(NodeContent::String(text)) => text.to_string(),
        Some(NodeContent::Bytes(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        _ => return None,
    };
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    (!digits.is_empty()).then(|| Jid::pn(digits))
}

type SignedPreKey = (u32, [u8; 32], Vec<u8>);

fn parse_prekey_upload(node: &Node) -> (Vec<(u32, [u8; 32])>, Option<SignedPreKey>) {
    let key_id_value = |key: &Node| -> Option<(u32, [u8; 32])> {
        let id = be_u32(key.get_optional_child("id").and_then(content_bytes)?)?;
        let value: [u8; 32] = key
            .get_optional_child("value")
            .and_then(content_bytes)?
            .try_into()
            .ok()?;
        Some((id, value))
    };
    let one_time = node
        .get_optional_child("list")
        .map(children)
        .unwrap_or_default()
        .iter()
        .filter_map(key_id_value)
        .collect();
    let signed = node.get_optional_child("skey").and_then(|skey| {
        let (id, value) = key_id_value(skey)?;
        let signature = skey
            .get_optional_child("signature")
            .and_then(content_bytes)?;
        Some((id, value, signature.to_vec()))
    });
    (one_time, signed)
}
