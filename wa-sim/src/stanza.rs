//! Builders for every stanza the server sends, so the wire shapes live in one place.

use std::time::{SystemTime, UNIX_EPOCH};

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, NodeContent, SERVER_JID};

/// Seconds since the epoch, as WhatsApp stamps `t`.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// `<iq type="result" id=… from="s.whatsapp.net">children</iq>`
pub fn iq_result(id: &str, children: Vec<Node>) -> Node {
    let builder = NodeBuilder::new("iq")
        .attr("type", "result")
        .attr("id", id)
        .attr("from", SERVER_JID);
    if children.is_empty() {
        builder.build()
    } else {
        builder.children(children).build()
    }
}

/// `<iq type="error" id=…><error code=… text=…/></iq>`
pub fn iq_error(id: &str, code: u16, text: &str) -> Node {
    NodeBuilder::new("iq")
        .attr("type", "error")
        .attr("id", id)
        .attr("from", SERVER_JID)
        .children([NodeBuilder::new("error")
            .attr("code", code.to_string())
            .attr("text", text)
            .build()])
        .build()
}

/// WhatsApp refusing an IQ of a send because the number sends too fast:
/// `<error code="429" text="rate-overlimit" backoff="…"/>` (whatsmeow and Baileys see the same
/// from the usync and prekey queries of a burst).
pub fn iq_rate_overlimit(id: &str, backoff_secs: Option<u32>) -> Node {
    let mut error = NodeBuilder::new("error")
        .attr("code", "429")
        .attr("text", "rate-overlimit");
    if let Some(backoff) = backoff_secs {
        error = error.attr("backoff", backoff.to_string());
    }
    NodeBuilder::new("iq")
        .attr("type", "error")
        .attr("id", id)
        .attr("from", SERVER_JID)
        .children([error.build()])
        .build()
}

/// The QR refs for an unpaired client. Refs go as bytes: short strings would be
/// token-encoded and the client would read them as absent.
pub fn pair_device(id: &str, refs: &[String]) -> Node {
    let refs = refs
        .iter()
        .map(|r| NodeBuilder::new("ref").bytes(r.as_bytes().to_vec()).build());
    NodeBuilder::new("iq")
        .attr("from", SERVER_JID)
        .attr("type", "set")
        .attr("id", id)
        .attr("xmlns", "md")
        .attr("t", unix_now().to_string())
        .children([NodeBuilder::new("pair-device").children(refs).build()])
        .build()
}

/// Tells the companion which account it now belongs to.
pub fn pair_success(id: &str, device_identity: Vec<u8>, jid: &Jid, lid: &Jid) -> Node {
    NodeBuilder::new("iq")
        .attr("from", SERVER_JID)
        .attr("type", "set")
        .attr("id", id)
        .attr("xmlns", "md")
        .attr("t", unix_now().to_string())
        .children([NodeBuilder::new("pair-success")
            .children([
                NodeBuilder::new("device-identity")
                    .bytes(device_identity)
                    .build(),
                NodeBuilder::new("device")
                    .attr("jid", jid)
                    .attr("lid", lid)
                    .build(),
                NodeBuilder::new("platform").attr("name", "android").build(),
            ])
            .build()])
        .build()
}

/// Accepts a login. `lid` is the device's own LID (`…:N@lid`), the one pair-success gave it.
pub fn success(lid: &Jid) -> Node {
    NodeBuilder::new("success")
        .attr("t", unix_now().to_string())
        .attr("lid", lid)
        .attr("props", "1")
        .build()
}

/// Refuses a login (`401` logged out, `402` temporary ban, …).
pub fn failure(reason: u16) -> Node {
    NodeBuilder::new("failure")
        .attr("reason", reason.to_string())
        .build()
}

/// A temporary ban: the client reports `TemporaryBan` with this code and expiry.
pub fn temporary_ban(code: u32, expire_secs: u64) -> Node {
    NodeBuilder::new("failure")
        .attr("reason", "402")
        .attr("code", code.to_string())
        .attr("expire", expire_secs.to_string())
        .build()
}

/// `<stream:error code=…/>` (515 = reconnect now, 516/401 = logged out).
pub fn stream_error_code(code: u16) -> Node {
    NodeBuilder::new("stream:error")
        .attr("code", code.to_string())
        .build()
}

/// `<stream:error><conflict type="replaced"/></stream:error>`: another connection took over.
pub fn stream_replaced() -> Node {
    NodeBuilder::new("stream:error")
        .children([NodeBuilder::new("conflict")
            .attr("type", "replaced")
            .build()])
        .build()
}

/// `<stream:error code="401"><conflict type="device_removed"/></stream:error>`: the phone
/// removed this device. The code is what tells clients that go by it (whatsmeow, Baileys) that
/// this is a logout, not a replacement (440).
pub fn stream_device_removed() -> Node {
    NodeBuilder::new("stream:error")
        .attr("code", "401")
        .children([NodeBuilder::new("conflict")
            .attr("type", "device_removed")
            .build()])
        .build()
}

/// End of the (empty) offline queue; the client holds `Connected` until it sees this.
pub fn offline_done(count: usize) -> Node {
    NodeBuilder::new("ib")
        .attr("from", SERVER_JID)
        .children([NodeBuilder::new("offline")
            .attr("count", count.to_string())
            .build()])
        .build()
}

/// Server acknowledgement of a `<message>` the client sent.
pub fn message_ack(id: &str, to: &str) -> Node {
    NodeBuilder::new("ack")
        .attr("class", "message")
        .attr("id", id)
        .attr("from", to)
        .attr("t", unix_now().to_string())
        .build()
}

/// The server's `<ack class="receipt">` for a receipt a client sent, echoing its type.
pub fn receipt_ack(id: &str, to: &str, kind: Option<&str>) -> Node {
    let builder = NodeBuilder::new("ack")
        .attr("class", "receipt")
        .attr("id", id)
        .attr("from", to);
    match kind {
        Some(kind) => builder.attr("type", kind).build(),
        None => builder.build(),
    }
}

/// What a phone reports about a message it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    Delivered,
    Read,
}

/// A receipt from `from` (the recipient) for message `id`.
pub fn receipt(from: &Jid, id: &str, kind: ReceiptKind) -> Node {
    let builder = NodeBuilder::new("receipt")
        .attr("from", from)
        .attr("id", id)
        .attr("t", unix_now().to_string());
    match kind {
        ReceiptKind::Delivered => builder.build(),
        ReceiptKind::Read => builder.attr("type", "read").build(),
    }
}

/// An encrypted 1:1 message from a phone device to a companion device.
pub fn encrypted_message(
    id: &str,
    from: &Jid,
    to: &Jid,
    enc_type: &str,
    ciphertext: Vec<u8>,
    peer_category: bool,
) -> Node {
    let mut builder = NodeBuilder::new("message")
        .attr("from", from)
        .attr("to", to)
        .attr("id", id)
        .attr("type", "text")
        .attr("t", unix_now().to_string());
    if peer_category {
        builder = builder.attr("category", "peer");
    } else {
        builder = builder.attr("notify", from.user.to_string());
    }
    builder
        .children([NodeBuilder::new("enc")
            .attr("v", "2")
            .attr("type", enc_type)
            .bytes(ciphertext)
            .build()])
        .build()
}

/// Sets a phone message's `type` (`text`, `media`) and, for media, its `<enc>`'s
/// `mediatype` (`image`, `location`, …), as WhatsApp clients write them.
pub fn set_message_type(message: &mut Node, message_type: &str, media_type: Option<&str>) {
    message.attrs.insert("type", message_type.to_string());
    let (Some(media_type), Some(NodeContent::Nodes(children))) = (media_type, &mut message.content)
    else {
        return;
    };
    for enc in children.iter_mut().filter(|child| child.tag == "enc") {
        enc.attrs.insert("mediatype", media_type.to_string());
    }
}

/// Answers a companion's `companion_hello` with the ref its pair-code request goes by.
pub fn link_code_hello_result(id: &str, pairing_ref: &str) -> Node {
    iq_result(
        id,
        vec![
            NodeBuilder::new("link_code_companion_reg")
                .children([NodeBuilder::new("link_code_pairing_ref")
                    .bytes(pairing_ref.as_bytes().to_vec())
                    .build()])
                .build(),
        ],
    )
}

/// Forwards the phone's `primary_hello` (its user typed the code) to the companion.
pub fn link_code_primary_hello(
    id: &str,
    pairing_ref: &str,
    wrapped_primary_ephemeral: &[u8],
    primary_identity: &[u8],
) -> Node {
    NodeBuilder::new("notification")
        .attr("from", SERVER_JID)
        .attr("type", "link_code_companion_reg")
        .attr("id", id)
        .attr("t", unix_now().to_string())
        .children([NodeBuilder::new("link_code_companion_reg")
            .attr("stage", "primary_hello")
            .children([
                NodeBuilder::new("link_code_pairing_wrapped_primary_ephemeral_pub")
                    .bytes(wrapped_primary_ephemeral.to_vec())
                    .build(),
                NodeBuilder::new("primary_identity_pub")
                    .bytes(primary_identity.to_vec())
                    .build(),
                NodeBuilder::new("link_code_pairing_ref")
                    .bytes(pairing_ref.as_bytes().to_vec())
                    .build(),
            ])
            .build()])
        .build()
}
