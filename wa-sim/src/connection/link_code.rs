//! The link-code IQs of an unpaired companion (`<iq xmlns="md" type="set">
//! <link_code_companion_reg stage=…>`): `companion_hello` registers a request to be
//! linked to a phone number and is answered with its ref; `companion_finish` carries
//! the companion's key bundle to the phone that sent `primary_hello`.

use wacore_binary::{Jid, Node, NodeContent, Server};

use super::ConnError;
use super::pairing::new_ref;
use super::session::{Flow, Role, Session};
use crate::pair_code::{CompanionFinish, LinkCodeRequest};
use crate::stanza;

const WRAPPED_EPHEMERAL_LEN: usize = 80;

fn child_bytes<'a>(node: &'a Node, tag: &str) -> Option<&'a [u8]> {
    match &node.get_optional_child(tag)?.content {
        Some(NodeContent::Bytes(bytes)) => Some(bytes),
        Some(NodeContent::String(text)) => Some(text.as_bytes()),
        _ => None,
    }
}

/// The phone number a request names: `jid` must be a plain PN user.
fn requested_number(reg: &Node) -> Option<String> {
    let jid: Jid = reg.attrs().optional_jid("jid")?;
    let digits = !jid.user.is_empty() && jid.user.bytes().all(|b| b.is_ascii_digit());
    (jid.server == Server::Pn && jid.device == 0 && digits).then(|| jid.user.to_string())
}

/// WhatsApp accepts only a `Browser (OS)` display name and answers anything else with
/// `bad-request`.
fn plausible_platform_display(display: &[u8]) -> bool {
    std::str::from_utf8(display).is_ok_and(|text| {
        text.strip_suffix(')')
            .and_then(|rest| rest.split_once(" ("))
            .is_some_and(|(browser, os)| !browser.trim().is_empty() && !os.trim().is_empty())
    })
}

impl Session {
    pub async fn on_link_code_iq(&mut self, id: &str, reg: &Node) -> Result<Flow, ConnError> {
        let stage = reg
            .attrs()
            .optional_string("stage")
            .map(|v| v.into_owned())
            .unwrap_or_default();
        let reply = match stage.as_str() {
            "companion_hello" => self.companion_hello(id, reg),
            "companion_finish" => self.companion_finish(id, reg),
            _ => stanza::iq_error(id, 400, "bad-request"),
        };
        self.send(&reply).await?;
        Ok(Flow::Continue)
    }

    fn companion_hello(&mut self, id: &str, reg: &Node) -> Node {
        let Role::Unpaired(unpaired) = &self.role else {
            return stanza::iq_error(id, 400, "bad-request");
        };
        let noise_public = unpaired.noise_public();
        let number = requested_number(reg);
        let wrapped = child_bytes(reg, "link_code_pairing_wrapped_companion_ephemeral_pub")
            .filter(|w| w.len() == WRAPPED_EPHEMERAL_LEN);
        // The server-auth key is the companion's Noise key: the one it pairs with.
        let auth_key_matches =
            child_bytes(reg, "companion_server_auth_key_pub") == Some(&noise_public[..]);
        let display_ok =
            child_bytes(reg, "companion_platform_display").is_some_and(plausible_platform_display);
        let (Some(number), Some(wrapped), true, true) =
            (number, wrapped, auth_key_matches, display_ok)
        else {
            tracing::info!(conn = self.conn.id, "malformed companion_hello refused");
            return stanza::iq_error(id, 400, "bad-request");
        };
        let pairing_ref = new_ref();
        tracing::info!(conn = self.conn.id, number, "link-code request registered");
        self.shared.link_codes.register(
            &number,
            LinkCodeRequest::new(
                self.conn.clone(),
                noise_public,
                pairing_ref.clone(),
                wrapped.to_vec(),
            ),
        );
        stanza::link_code_hello_result(id, &pairing_ref)
    }

    fn companion_finish(&mut self, id: &str, reg: &Node) -> Node {
        let number = requested_number(reg);
        let bundle = child_bytes(reg, "link_code_pairing_wrapped_key_bundle");
        let identity = child_bytes(reg, "companion_identity_public").filter(|k| k.len() == 32);
        let pairing_ref =
            child_bytes(reg, "link_code_pairing_ref").and_then(|r| std::str::from_utf8(r).ok());
        let (Some(number), Some(bundle), Some(identity), Some(pairing_ref)) =
            (number, bundle, identity, pairing_ref)
        else {
            return stanza::iq_error(id, 400, "bad-request");
        };
        let finish = CompanionFinish {
            wrapped_key_bundle: bundle.to_vec(),
            identity_public: identity.to_vec(),
        };
        // The server acknowledges the relay; whether the bundle opens is the phone's
        // business, and a phone that cannot open it simply never links.
        if self.shared.link_codes.finish(&number, pairing_ref, finish) {
            stanza::iq_result(id, Vec::new())
        } else {
            stanza::iq_error(id, 400, "bad-request")
        }
    }
}
