//! One Signal device of a simulated phone: its keys, its prekey pool, its
//! sessions, and the decrypt/encrypt operations the server needs.

use std::collections::VecDeque;

use rand::RngExt as _;
use wacore::iq::prekeys::PreKeyBundleUserNode;
use wacore::messages::MessageUtils;
use wacore::protocol::ProtocolNode as _;
use wacore_binary::{Jid, Node};
use wacore_libsignal::protocol::{
    CiphertextMessage, CiphertextMessageType, GenericSignedPreKey as _, IdentityKey,
    IdentityKeyPair, KeyPair, PreKeyBundle, PreKeyId, PreKeyRecord, PreKeySignalMessage,
    ProtocolAddress, SignalMessage, SignedPreKeyRecord, Timestamp, UsePQRatchet, message_decrypt,
    message_encrypt, process_prekey_bundle,
};
use waproto::whatsapp as wa;

use super::PhoneError;
use super::companion::CompanionBundle;
use super::content::ENC_VERSION;
use super::ready::run_ready;
use super::stores::SignalStores;

/// The only signed prekey id a simulated device uses; it never rotates.
const SIGNED_PREKEY_ID: u32 = 1;
/// Prekey ids travel as 3 big-endian bytes.
const MAX_PREKEY_ID: u32 = 0x00FF_FFFF;
/// WhatsApp registration ids are 14-bit, never 0.
const MAX_REGISTRATION_ID: u32 = 16380;

/// The two Signal envelopes of an `<enc type=…>` node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncType {
    /// `pkmsg`: a `PreKeySignalMessage`, sent until the peer has replied once.
    PreKey,
    /// `msg`: a plain `SignalMessage` on an established session.
    Message,
}

impl EncType {
    /// The `type` attribute value of the `<enc>` node.
    pub fn as_wire_str(self) -> &'static str {
        match self {
            EncType::PreKey => "pkmsg",
            EncType::Message => "msg",
        }
    }

    pub fn from_wire(value: &str) -> Result<Self, PhoneError> {
        match value {
            "pkmsg" => Ok(EncType::PreKey),
            "msg" => Ok(EncType::Message),
            other => Err(PhoneError::UnsupportedEncType(other.to_string())),
        }
    }
}

/// What to put into one `<enc v="2" type=…>` node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedMessage {
    pub enc_type: EncType,
    pub ciphertext: Vec<u8>,
    /// The `v` attribute: always [`ENC_VERSION`] (padded plaintext).
    pub version: u8,
}

/// One Signal device: identity, registration id, signed prekey, one-time
/// prekeys and sessions, all in memory. `Send`, not `Sync`-dependent: keep it
/// behind a mutex and call it from any task; nothing here awaits.
pub struct PhoneDevice {
    stores: SignalStores,
    signed_prekey: KeyPair,
    signed_prekey_signature: [u8; 64],
    /// One-time prekeys that are in the store but not yet handed out in a bundle.
    unissued_prekeys: VecDeque<u32>,
    next_prekey_id: u32,
}

impl PhoneDevice {
    /// A device with a fresh identity, random registration id and
    /// `one_time_prekeys` one-time prekeys.
    pub fn generate(one_time_prekeys: usize) -> Result<Self, PhoneError> {
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let identity = IdentityKeyPair::generate(&mut rng);
        let registration_id = rng.random_range(1..=MAX_REGISTRATION_ID);
        Self::from_identity(identity, registration_id, one_time_prekeys)
    }

    /// A device around an existing identity (e.g. a phone account key loaded from a fixture).
    pub fn from_identity(
        identity: IdentityKeyPair,
        registration_id: u32,
        one_time_prekeys: usize,
    ) -> Result<Self, PhoneError> {
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let signed_prekey = KeyPair::generate(&mut rng);
        // libsignal verifies this over the 33-byte (type-prefixed) public key.
        let signed_prekey_signature = identity
            .private_key()
            .calculate_signature(&signed_prekey.public_key.serialize(), &mut rng)?;
        let mut stores = SignalStores::new(identity, registration_id);
        stores.signed_prekeys.insert(
            SIGNED_PREKEY_ID.into(),
            SignedPreKeyRecord::new(
                SIGNED_PREKEY_ID.into(),
                Timestamp::from_epoch_millis(0),
                &signed_prekey,
                &signed_prekey_signature,
            ),
        );
        let mut device = Self {
            stores,
            signed_prekey,
            signed_prekey_signature,
            unissued_prekeys: VecDeque::new(),
            next_prekey_id: 1,
        };
        device.add_one_time_prekeys(one_time_prekeys);
        Ok(device)
    }

    pub fn identity_key_pair(&self) -> &IdentityKeyPair {
        self.stores.identity.identity()
    }

    /// The raw 32-byte identity public key (what QR codes, bundles and ADV use).
    pub fn identity_public(&self) -> [u8; 32] {
        let mut raw = [0u8; 32];
        raw.copy_from_slice(self.identity_key_pair().public_key().public_key_bytes());
        raw
    }

    pub fn registration_id(&self) -> u32 {
        self.stores.identity.registration_id()
    }

    /// Generates `count` more one-time prekeys (ids keep counting, wrapping below 2^24).
    pub fn add_one_time_prekeys(&mut self, count: usize) {
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        for _ in 0..count {
            let id = self.next_prekey_id;
            self.next_prekey_id = if id >= MAX_PREKEY_ID { 1 } else { id + 1 };
            let key = KeyPair::generate(&mut rng);
            self.stores
                .prekeys
                .insert(id.into(), PreKeyRecord::new(id.into(), &key));
            self.unissued_prekeys.push_back(id);
        }
    }

    /// One-time prekeys not yet handed out in a bundle.
    pub fn unissued_prekey_count(&self) -> usize {
        self.unissued_prekeys.len()
    }

    /// One-time prekeys still held privately (issued or not): a pkmsg consumes one.
    pub fn stored_prekey_count(&self) -> usize {
        self.stores.prekeys.len()
    }

    /// This device's public bundle. Hands out (but keeps, until a pkmsg uses
    /// it) the next one-time prekey; without one left the bundle has only the
    /// signed prekey, which is still enough to start a session.
    pub fn prekey_bundle(&mut self) -> Result<PreKeyBundle, PhoneError> {
        let one_time = match self.unissued_prekeys.pop_front() {
            Some(id) => {
                let record = self.stores.prekeys.get(id.into()).ok_or_else(|| {
                    PhoneError::BundleNode(format!("one-time prekey {id} vanished"))
                })?;
                Some((PreKeyId::from(id), record.public_key()?))
            }
            None => None,
        };
        Ok(PreKeyBundle::new(
            self.registration_id(),
            0u32.into(),
            one_time,
            SIGNED_PREKEY_ID.into(),
            self.signed_prekey.public_key,
            self.signed_prekey_signature.to_vec(),
            *self.identity_key_pair().identity_key(),
        )?)
    }

    /// The `<user jid=…>` node of an `encrypt` key-fetch reply. `requested_jid`
    /// is echoed byte for byte (the client keys bundles by it);
    /// `device_identity` is the companion's stored `pair-device-sign` blob and
    /// must be given for every device ≠ 0.
    pub fn bundle_user_node(
        &mut self,
        requested_jid: &str,
        device_identity: Option<Vec<u8>>,
    ) -> Result<Node, PhoneError> {
        let jid: Jid = requested_jid
            .parse()
            .map_err(|e| PhoneError::BundleNode(format!("bad jid {requested_jid:?}: {e}")))?;
        let bundle = self.prekey_bundle()?;
        let mut node = PreKeyBundleUserNode::from_bundle(jid, &bundle, device_identity)
            .map_err(|e| PhoneError::BundleNode(format!("{e:#}")))?
            .into_node();
        node.attrs.insert("jid", requested_jid.to_string());
        Ok(node)
    }

    /// Decrypts one `<enc>` addressed to this device. `sender` is the sending
    /// device's address string (e.g. `"15550001111:1@s.whatsapp.net"`): use one
    /// canonical form per peer device, since it keys the session. A consumed
    /// one-time prekey is deleted. Bad ciphertext is an error and leaves the
    /// session untouched.
    pub fn decrypt(
        &mut self,
        sender: &str,
        enc_type: &str,
        ciphertext: &[u8],
        version: u8,
    ) -> Result<wa::Message, PhoneError> {
        let envelope = match EncType::from_wire(enc_type)? {
            EncType::PreKey => {
                CiphertextMessage::PreKeySignalMessage(PreKeySignalMessage::try_from(ciphertext)?)
            }
            EncType::Message => {
                CiphertextMessage::SignalMessage(SignalMessage::try_from(ciphertext)?)
            }
        };
        let address = signal_address(sender);
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let stores = &mut self.stores;
        let decrypted = run_ready(message_decrypt(
            &envelope,
            &address,
            &mut stores.sessions,
            &mut stores.identity,
            &mut stores.prekeys,
            &stores.signed_prekeys,
            &mut rng,
            UsePQRatchet::No,
        ))??;
        // libsignal reports the used one-time prekey but leaves deleting it to the store owner.
        if let Some(used) = decrypted.consumed_prekey_id {
            self.stores.prekeys.remove(used);
            let used = u32::from(used);
            self.unissued_prekeys.retain(|id| *id != used);
        }
        wacore::messages::decode_plaintext(&decrypted.plaintext, version)
            .map_err(|e| PhoneError::Plaintext(format!("{e:#}")))
    }

    /// Encrypts `message` for the device at `recipient` (an address string,
    /// as in [`Self::decrypt`]), padded like the client pads (`v="2"`).
    ///
    /// A session is started from `bundle` when none exists or when the bundle's
    /// identity differs from the session's (the companion re-paired); otherwise
    /// the existing session is used and `bundle` is ignored, so passing it every
    /// time is fine. The result is `pkmsg` until the peer has sent something
    /// back on the session, `msg` afterwards — libsignal's rule, which the
    /// client follows too.
    pub fn encrypt(
        &mut self,
        recipient: &str,
        bundle: Option<&CompanionBundle>,
        message: &wa::Message,
    ) -> Result<EncryptedMessage, PhoneError> {
        let address = signal_address(recipient);
        let current_identity = self.session_identity(&address);
        let needs_new_session = match (bundle, current_identity) {
            (_, None) => true,
            (Some(bundle), Some(identity)) => bundle.identity_key()? != identity,
            (None, Some(_)) => false,
        };
        if needs_new_session {
            let bundle = bundle.ok_or_else(|| PhoneError::NoSession(recipient.to_string()))?;
            let prekey_bundle = bundle.to_prekey_bundle()?;
            let mut rng = rand::make_rng::<rand::rngs::StdRng>();
            run_ready(process_prekey_bundle(
                &address,
                &mut self.stores.sessions,
                &mut self.stores.identity,
                &prekey_bundle,
                &mut rng,
                UsePQRatchet::No,
            ))??;
        }
        let padded = MessageUtils::encode_and_pad(message);
        let envelope = run_ready(message_encrypt(
            &padded,
            &address,
            &mut self.stores.sessions,
            &mut self.stores.identity,
        ))??;
        let enc_type = match envelope.message_type() {
            CiphertextMessageType::PreKey => EncType::PreKey,
            CiphertextMessageType::Whisper => EncType::Message,
            other => {
                return Err(PhoneError::UnsupportedEncType(format!("{other:?}")));
            }
        };
        Ok(EncryptedMessage {
            enc_type,
            ciphertext: envelope.serialize().to_vec(),
            version: ENC_VERSION,
        })
    }

    /// Whether a session with `peer` exists (either side may have started it).
    pub fn has_session(&self, peer: &str) -> bool {
        self.session_identity(&signal_address(peer)).is_some()
    }

    /// Drops the session with `peer` (e.g. the companion was unlinked).
    pub fn forget_session(&mut self, peer: &str) -> bool {
        self.stores.sessions.remove(&signal_address(peer))
    }

    /// The peer identity of the current session state, if there is a usable one.
    fn session_identity(&self, address: &ProtocolAddress) -> Option<IdentityKey> {
        let record = self.stores.sessions.get(address)?;
        record.session_state()?.remote_identity_key().ok().flatten()
    }
}

/// WhatsApp puts the whole device JID into the Signal address name and always
/// uses Signal device id 0.
fn signal_address(peer: &str) -> ProtocolAddress {
    ProtocolAddress::new(peer, 0u32.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn phone_device_is_send() {
        assert_send::<PhoneDevice>();
    }

    #[test]
    fn bundles_hand_out_each_one_time_prekey_once() {
        let mut device = PhoneDevice::generate(2).unwrap();
        let first = device.prekey_bundle().unwrap().pre_key_id().unwrap();
        let second = device.prekey_bundle().unwrap().pre_key_id().unwrap();
        let third = device.prekey_bundle().unwrap().pre_key_id().unwrap();
        assert_eq!(first, Some(1u32.into()));
        assert_eq!(second, Some(2u32.into()));
        assert_eq!(third, None, "pool exhausted: signed prekey only");
        assert_eq!(
            device.stored_prekey_count(),
            2,
            "issued keys stay until used"
        );
        device.add_one_time_prekeys(1);
        assert_eq!(
            device.prekey_bundle().unwrap().pre_key_id().unwrap(),
            Some(3u32.into())
        );
    }

    #[test]
    fn enc_type_wire_names() {
        assert_eq!(EncType::from_wire("pkmsg").unwrap(), EncType::PreKey);
        assert_eq!(EncType::from_wire("msg").unwrap().as_wire_str(), "msg");
        assert!(matches!(
            EncType::from_wire("skmsg"),
            Err(PhoneError::UnsupportedEncType(_))
        ));
    }

    #[test]
    fn encrypt_without_session_or_bundle_is_an_error() {
        let mut device = PhoneDevice::generate(0).unwrap();
        let message = wa::Message::default();
        let result = device.encrypt("1555:1@s.whatsapp.net", None, &message);
        assert!(matches!(result, Err(PhoneError::NoSession(_))));
    }
}
