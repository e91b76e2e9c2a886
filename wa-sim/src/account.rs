//! One WhatsApp account: the simulated phone's Signal devices, the companions (real
//! clients) paired to it, and the texts its phone devices received.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::RngExt as _;
use serde::Serialize;
use wacore::pair::{DeviceState, PairUtils};
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node};
use wacore_libsignal::protocol::KeyPair;
use waproto::whatsapp as wa;

use crate::app_state::{AppState, AppStateError};
use crate::inbox::{Inbox, ReceivedText};
use crate::phone::{
    AdvDeviceDetails, AppStateSyncKey, CompanionBundle, EncryptedMessage, KeyIndexList, PairingQr,
    PhoneDevice, PhoneError, app_state_key_share_message, initial_history_bootstrap_message,
    pair_success_device_identity, signed_key_index_list, verify_pair_device_sign,
};
use crate::stanza::unix_now;
use crate::state::DeviceKey;

/// One-time prekeys each simulated phone device starts with (more are made on demand).
const INITIAL_PREKEYS: usize = 20;
/// Most simulated devices one phone number may have.
pub const MAX_PHONE_DEVICES: u16 = 8;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Phone(#[from] PhoneError),
    #[error("a phone has between 1 and {MAX_PHONE_DEVICES} devices, not {0}")]
    DeviceCount(u16),
    #[error("no pairing in progress for device {0}")]
    NoPendingPairing(u16),
    #[error("the companion signed key index {signed}, the phone issued {issued}")]
    KeyIndexMismatch { signed: u32, issued: u32 },
    #[error("pairing the simulated secondary device failed: {0}")]
    SecondaryDevice(String),
    #[error(transparent)]
    AppState(#[from] AppStateError),
}

/// What the server answers a paired device's login with.
#[derive(Debug)]
pub enum LoginVerdict {
    Accept {
        /// The messages the device has not acknowledged yet (sent while it was offline, or
        /// sent to its connection without a receipt coming back), oldest first.
        queued: Vec<Node>,
    },
    /// `<failure reason=…/>` (401: not (or no longer) a device of this account).
    Refuse(u16),
    /// `<failure reason="402"/>`: temporarily banned.
    Ban,
}

/// A one-shot override of a companion's next login (set by the control API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextLogin {
    Refuse401,
    Ban,
}

/// A receipt a client sent this phone (delivered, read, `peer_msg` for what the phone
/// synced to its own companions, …): WhatsApp routes every receipt to the message's sender.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ClientReceipt {
    /// The id of the message the receipt is for.
    pub id: String,
    /// The client device that sent the receipt.
    pub from_device: String,
    /// The receipt's `type`: `delivered` when it has none (that is how WhatsApp writes it).
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix milliseconds.
    pub received_at: u64,
}

/// A real client paired to this account.
pub struct Companion {
    pub key_index: u32,
    pub noise_public: [u8; 32],
    pub bundle: CompanionBundle,
    /// One-time prekeys from the client's upload, handed out one per new session.
    uploaded_prekeys: VecDeque<(u32, [u8; 32])>,
    /// Whether the client ever uploaded its prekeys: until then the server has no key bundle
    /// record for it (a digest query is 404).
    prekeys_uploaded: bool,
    next_login: Option<NextLogin>,
    /// WhatsApp's queue for this device: every message sent to it stays here until the
    /// device acknowledges it (its delivery receipt, or a plain `<ack class="message">`),
    /// and what is still here goes out again at its next login.
    unacked: Vec<Unacked>,
    /// Whether the phone already sent this companion its initial history chunk (once per
    /// linking, as a real phone does).
    history_bootstrap_sent: bool,
    /// Whether the phone already shared its app-state key with this companion unasked
    /// (once per linking, as a real phone does).
    key_share_sent: bool,
}

/// A message stanza waiting for its recipient device to acknowledge it.
struct Unacked {
    id: String,
    /// The number of the account that sent it (the chat of a direct message).
    from: String,
    stanza: Node,
}

/// What a phone sent, kept so it can send the message again under the same id.
#[derive(Clone, Debug)]
pub struct SentMessage {
    /// The number it was sent to.
    pub to: String,
    pub message: wa::Message,
    pub addressing: crate::delivery::Addressing,
}

struct PendingPairing {
    key_index: u32,
    qr: PairingQr,
}

/// One simulated device of the phone, with its `<device-identity>` when it is not device 0.
struct PhoneSlot {
    signal: PhoneDevice,
    key_index: u32,
    device_identity: Option<Vec<u8>>,
}

pub struct Account {
    pub number: String,
    pub lid: String,
    raw_id: u32,
    phones: Vec<PhoneSlot>,
    companions: BTreeMap<u16, Companion>,
    pending: HashMap<u16, PendingPairing>,
    inbox: Inbox,
    receipts: Vec<ClientReceipt>,
    /// What this phone sent, by message id.
    sent: HashMap<String, SentMessage>,
    next_device_id: u16,
    next_key_index: u32,
    /// The app-state sync key the phone shares with its companions.
    app_state_key: AppStateSyncKey,
    /// The user's name, as the phone writes it to `critical_block` (`setting_pushName`).
    push_name: String,
    /// What the phone wrote to its app state, encrypted with `app_state_key`.
    app_state: AppState,
}

pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

impl Account {
    pub fn new(number: String, lid: String, phone_devices: u16) -> Result<Self, AccountError> {
        if !(1..=MAX_PHONE_DEVICES).contains(&phone_devices) {
            return Err(AccountError::DeviceCount(phone_devices));
        }
        let raw_id = rand::make_rng::<rand::rngs::StdRng>().random_range(1..u32::MAX);
        let primary = PhoneDevice::generate(INITIAL_PREKEYS)?;
        let now_ms = unix_millis() as i64;
        let app_state_key = AppStateSyncKey::generate(1, raw_id, vec![0], now_ms);
        // The simulated user goes by their number: it is also the `notify` name the
        // phone's messages carry.
        let push_name = number.clone();
        let app_state = AppState::new(&app_state_key, &push_name, now_ms)?;
        let mut account = Self {
            number,
            lid,
            raw_id,
            phones: vec![PhoneSlot {
                signal: primary,
                key_index: 0,
                device_identity: None,
            }],
            companions: BTreeMap::new(),
            pending: HashMap::new(),
            inbox: Inbox::default(),
            receipts: Vec::new(),
            sent: HashMap::new(),
            next_device_id: phone_devices,
            next_key_index: 1,
            app_state_key,
            push_name,
            app_state,
        };
        for _ in 1..phone_devices {
            account.add_secondary_phone_device()?;
        }
        Ok(account)
    }

    /// A simulated secondary device (think: the same number on a tablet), paired to the
    /// primary with the real ADV exchange so clients accept its bundle.
    fn add_secondary_phone_device(&mut self) -> Result<(), AccountError> {
        let signal = PhoneDevice::generate(INITIAL_PREKEYS)?;
        let key_index = self.take_key_index();
        let identity: KeyPair = signal.identity_key_pair().clone().into();
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let mut adv_secret = [0u8; 32];
        rng.fill(&mut adv_secret[..]);
        let state = DeviceState {
            identity_key: identity,
            noise_key: KeyPair::generate(&mut rng),
            adv_secret_key: adv_secret,
        };
        let container = pair_success_device_identity(
            self.primary().identity_key_pair(),
            &signal.identity_public(),
            &adv_secret,
            &AdvDeviceDetails {
                raw_id: self.raw_id,
                key_index,
                timestamp: unix_now(),
            },
        )?;
        let (signed, _) = PairUtils::do_pair_crypto(&state, &container)
            .map_err(|e| AccountError::SecondaryDevice(format!("{e:?}")))?;
        self.phones.push(PhoneSlot {
            signal,
            key_index,
            device_identity: Some(signed),
        });
        Ok(())
    }

    fn take_key_index(&mut self) -> u32 {
        let index = self.next_key_index;
        self.next_key_index += 1;
        index
    }

    pub fn primary(&self) -> &PhoneDevice {
        &self.phones[0].signal
    }

    pub fn pn_jid(&self) -> Jid {
        Jid::pn(self.number.as_str())
    }

    pub fn lid_jid(&self) -> Jid {
        Jid::lid(self.lid.as_str())
    }

    pub fn phone_device_count(&self) -> u16 {
        self.phones.len() as u16
    }

    pub fn is_phone_device(&self, device: u16) -> bool {
        usize::from(device) < self.phones.len()
    }

    pub fn companion_ids(&self) -> Vec<u16> {
        self.companions.keys().copied().collect()
    }

    pub fn has_companion(&self, device: u16) -> bool {
        self.companions.contains_key(&device)
    }

    // ---- pairing ----

    /// The phone scanned `qr`: allocates the companion's device id and key index and
    /// returns the `<device-identity>` container for pair-success.
    pub fn begin_pairing(&mut self, qr: PairingQr) -> Result<(u16, Vec<u8>), AccountError> {
        let device = self.next_device_id;
        let key_index = self.take_key_index();
        let container = pair_success_device_identity(
            self.primary().identity_key_pair(),
            &qr.identity_public,
            &qr.adv_secret,
            &AdvDeviceDetails {
                raw_id: self.raw_id,
                key_index,
                timestamp: unix_now(),
            },
        )?;
        self.next_device_id += 1;
        self.pending
            .insert(device, PendingPairing { key_index, qr });
        Ok((device, container))
    }

    /// The client answered pair-success with its signed identity: verify and register it.
    pub fn complete_pairing(
        &mut self,
        device: u16,
        signed_identity: Vec<u8>,
        bundle: CompanionBundle,
    ) -> Result<(), AccountError> {
        let pending = self
            .pending
            .remove(&device)
            .ok_or(AccountError::NoPendingPairing(device))?;
        let details = verify_pair_device_sign(
            &signed_identity,
            &pending.qr.identity_public,
            &self.primary().identity_public(),
        )?;
        if details.key_index != pending.key_index {
            return Err(AccountError::KeyIndexMismatch {
                signed: details.key_index,
                issued: pending.key_index,
            });
        }
        self.companions.insert(
            device,
            Companion {
                key_index: pending.key_index,
                noise_public: pending.qr.noise_public,
                bundle,
                uploaded_prekeys: VecDeque::new(),
                prekeys_uploaded: false,
                next_login: None,
                unacked: Vec::new(),
                history_bootstrap_sent: false,
                key_share_sent: false,
            },
        );
        Ok(())
    }

    pub fn abort_pairing(&mut self, device: u16) {
        self.pending.remove(&device);
    }

    // ---- login and lifecycle ----

    pub fn login_verdict(&mut self, device: u16, noise_public: &[u8; 32]) -> LoginVerdict {
        let Some(companion) = self.companions.get_mut(&device) else {
            return LoginVerdict::Refuse(401);
        };
        if &companion.noise_public != noise_public {
            return LoginVerdict::Refuse(401);
        }
        match companion.next_login.take() {
            Some(NextLogin::Refuse401) => LoginVerdict::Refuse(401),
            Some(NextLogin::Ban) => LoginVerdict::Ban,
            None => LoginVerdict::Accept {
                queued: companion
                    .unacked
                    .iter()
                    .map(|unacked| unacked.stanza.clone())
                    .collect(),
            },
        }
    }

    pub fn set_next_login(&mut self, device: u16, next: NextLogin) -> bool {
        match self.companions.get_mut(&device) {
            Some(companion) => {
                companion.next_login = Some(next);
                true
            }
            None => false,
        }
    }

    /// Unlinks a companion: later logins are refused and its sessions are forgotten.
    pub fn remove_companion(&mut self, device: u16) -> bool {
        let removed = self.companions.remove(&device).is_some();
        if removed {
            let address = DeviceKey::new(self.number.as_str(), device)
                .jid()
                .to_string();
            for phone in &mut self.phones {
                phone.signal.forget_session(&address);
            }
        }
        removed
    }

    /// The app-state key share for companion `device` the first time it is asked after
    /// linking (the phone sends it unasked once, right after the companion's first
    /// login); `None` afterwards (and for unknown devices).
    pub fn take_key_share(&mut self, device: u16) -> Option<wa::Message> {
        let companion = self.companions.get_mut(&device)?;
        if companion.key_share_sent {
            return None;
        }
        companion.key_share_sent = true;
        self.key_share_for(device, std::slice::from_ref(&self.app_state_key.key_id))
    }

    /// The phone's answer to companion `device` asking for the app-state keys `key_ids`
    /// (`appStateSyncKeyRequest`): a share of those it has, `None` if it has none of them.
    pub fn key_share_for(&self, device: u16, key_ids: &[Vec<u8>]) -> Option<wa::Message> {
        let companion = self.companions.get(&device)?;
        if !key_ids.contains(&self.app_state_key.key_id) {
            return None;
        }
        let mut key = self.app_state_key.clone();
        key.device_indexes = vec![0, companion.key_index];
        key.current_index = companion.key_index;
        Some(app_state_key_share_message(&[key]))
    }

    /// The user's name, as companions learn it from `critical_block`.
    pub fn push_name(&self) -> &str {
        &self.push_name
    }

    /// The app state the server holds for this account.
    pub fn app_state(&self) -> &AppState {
        &self.app_state
    }

    /// The phone's initial history-sync notification for companion `device`, the first
    /// time it is asked after linking; `None` afterwards (and for unknown devices).
    pub fn take_initial_history(&mut self, device: u16) -> Option<wa::Message> {
        let companion = self.companions.get_mut(&device)?;
        if companion.history_bootstrap_sent {
            return None;
        }
        companion.history_bootstrap_sent = true;
        Some(initial_history_bootstrap_message())
    }

    /// Keeps message `id` from `from` for companion `device` until the device acknowledges
    /// it (see [`Account::acknowledge`]), whether it is online now or not.
    pub fn queue_for(&mut self, device: u16, id: &str, from: &str, stanza: Node) -> bool {
        match self.companions.get_mut(&device) {
            Some(companion) => {
                companion.unacked.push(Unacked {
                    id: id.to_owned(),
                    from: from.to_owned(),
                    stanza,
                });
                true
            }
            None => false,
        }
    }

    /// Companion `device` acknowledged messages `ids` from the account `from`: WhatsApp
    /// drops them from its queue and does not send them again.
    pub fn acknowledge(&mut self, device: u16, from: &str, ids: &[String]) {
        if let Some(companion) = self.companions.get_mut(&device) {
            companion
                .unacked
                .retain(|unacked| unacked.from != from || !ids.contains(&unacked.id));
        }
    }

    /// How many messages companion `device` has not acknowledged.
    pub fn unacked_count(&self, device: u16) -> usize {
        self.companions
            .get(&device)
            .map_or(0, |companion| companion.unacked.len())
    }

    pub fn remember_sent(&mut self, id: &str, sent: SentMessage) {
        self.sent.insert(id.to_owned(), sent);
    }

    pub fn sent_message(&self, id: &str) -> Option<&SentMessage> {
        self.sent.get(id)
    }

    // ---- prekeys ----

    /// Stores a companion's prekey upload (`<list><key>…`, `<skey>`).
    pub fn store_uploaded_prekeys(
        &mut self,
        device: u16,
        one_time: Vec<(u32, [u8; 32])>,
        signed: Option<(u32, [u8; 32], Vec<u8>)>,
    ) {
        if let Some(companion) = self.companions.get_mut(&device) {
            companion.prekeys_uploaded = true;
            companion.uploaded_prekeys.extend(one_time);
            if let Some((id, public, signature)) = signed {
                companion.bundle.signed_prekey_id = id;
                companion.bundle.signed_prekey_public = public;
                companion.bundle.signed_prekey_signature = signature;
            }
        }
    }

    pub fn uploaded_prekey_count(&self, device: u16) -> usize {
        self.companions
            .get(&device)
            .map_or(0, |c| c.uploaded_prekeys.len())
    }

    /// The `<digest>` of a companion's key bundle as the server holds it: registration id,
    /// identity, signed prekey, the ids of the one-time prekeys not handed out yet, and a SHA-1
    /// over identity, signed prekey, its signature and those prekeys' public keys in list order.
    /// A client compares it with its own keys and uploads again when they differ. `None` before
    /// the first upload: the server has no record.
    pub fn key_bundle_digest(&self, device: u16) -> Option<Node> {
        use sha1::Digest as _;
        let companion = self
            .companions
            .get(&device)
            .filter(|c| c.prekeys_uploaded)?;
        let bundle = &companion.bundle;
        let id3 = |id: u32| id.to_be_bytes()[1..].to_vec();
        let bytes =
            |tag: &'static str, content: Vec<u8>| NodeBuilder::new(tag).bytes(content).build();
        let mut hash = sha1::Sha1::new();
        hash.update(bundle.identity_public);
        hash.update(bundle.signed_prekey_public);
        hash.update(&bundle.signed_prekey_signature);
        for (_, public) in &companion.uploaded_prekeys {
            hash.update(public);
        }
        Some(
            NodeBuilder::new("digest")
                .children([
                    bytes("type", vec![5]),
                    bytes(
                        "registration",
                        bundle.registration_id.to_be_bytes().to_vec(),
                    ),
                    bytes("identity", bundle.identity_public.to_vec()),
                    NodeBuilder::new("skey")
                        .children([
                            bytes("id", id3(bundle.signed_prekey_id)),
                            bytes("value", bundle.signed_prekey_public.to_vec()),
                            bytes("signature", bundle.signed_prekey_signature.clone()),
                        ])
                        .build(),
                    NodeBuilder::new("list")
                        .children(
                            companion
                                .uploaded_prekeys
                                .iter()
                                .map(|(id, _)| bytes("id", id3(*id))),
                        )
                        .build(),
                    bytes("hash", hash.finalize().to_vec()),
                ])
                .build(),
        )
    }

    /// A companion's bundle for a new session, with a fresh one-time prekey if any is left.
    pub fn take_companion_bundle(&mut self, device: u16) -> Option<CompanionBundle> {
        let companion = self.companions.get_mut(&device)?;
        let mut bundle = companion.bundle.clone();
        bundle.one_time_prekey = companion.uploaded_prekeys.pop_front();
        Some(bundle)
    }

    // ---- usync and key fetch ----

    /// The `<user jid=requested>` node of a usync device-list reply.
    pub fn device_list_user(&self, requested_jid: &str) -> Result<Node, AccountError> {
        let mut devices = vec![NodeBuilder::new("device").attr("id", "0").build()];
        let mut valid_indexes = Vec::new();
        for (id, phone) in self.phones.iter().enumerate().skip(1) {
            devices.push(device_node(id as u16, phone.key_index));
            valid_indexes.push(phone.key_index);
        }
        for (id, companion) in &self.companions {
            devices.push(device_node(*id, companion.key_index));
            valid_indexes.push(companion.key_index);
        }
        let hash = format!("2:{:08x}{:04x}", self.raw_id, devices.len());
        let mut children = vec![
            NodeBuilder::new("device-list")
                .attr("hash", hash)
                .children(devices)
                .build(),
        ];
        if let Some(&current_index) = valid_indexes.iter().max() {
            let timestamp = unix_now();
            let list = signed_key_index_list(
                self.primary().identity_key_pair(),
                &KeyIndexList {
                    raw_id: self.raw_id,
                    timestamp,
                    current_index,
                    valid_indexes,
                },
            )?;
            children.push(
                NodeBuilder::new("key-index-list")
                    .attr("ts", timestamp.to_string())
                    .bytes(list)
                    .build(),
            );
        }
        Ok(NodeBuilder::new("user")
            .attr("jid", requested_jid)
            .children([NodeBuilder::new("devices").children(children).build()])
            .build())
    }

    /// The `<user>` node of a key-fetch reply for a simulated device; `None` for a
    /// device the phone does not simulate.
    pub fn phone_bundle_user(
        &mut self,
        requested_jid: &str,
        device: u16,
    ) -> Option<Result<Node, AccountError>> {
        let phone = self.phones.get_mut(usize::from(device))?;
        if phone.signal.unissued_prekey_count() == 0 {
            phone.signal.add_one_time_prekeys(INITIAL_PREKEYS);
        }
        Some(
            phone
                .signal
                .bundle_user_node(requested_jid, phone.device_identity.clone())
                .map_err(AccountError::from),
        )
    }

    // ---- messages ----

    /// Decrypts an `<enc>` for simulated device `device` from the device at `sender`.
    pub fn decrypt(
        &mut self,
        device: u16,
        sender: &str,
        enc_type: &str,
        ciphertext: &[u8],
        version: u8,
    ) -> Result<wa::Message, PhoneError> {
        let phone = self
            .phones
            .get_mut(usize::from(device))
            .ok_or_else(|| PhoneError::NoSession(format!("device {device} is not simulated")))?;
        phone.signal.decrypt(sender, enc_type, ciphertext, version)
    }

    /// Encrypts `message` from this phone's primary device to the device at `recipient`.
    pub fn encrypt_from_primary(
        &mut self,
        recipient: &str,
        bundle: Option<&CompanionBundle>,
        message: &wa::Message,
    ) -> Result<EncryptedMessage, PhoneError> {
        self.phones[0].signal.encrypt(recipient, bundle, message)
    }

    /// Whether phone device `device` gets message `id` from the number `from` for the first
    /// time; a repeat is counted (see [`Inbox::first_copy`]).
    pub fn first_copy(&mut self, device: u16, from: &str, id: &str) -> bool {
        self.inbox.first_copy(device, from, id)
    }

    pub fn record(&mut self, text: ReceivedText) {
        self.inbox.record(text);
    }

    pub fn inbox(&self) -> &[ReceivedText] {
        self.inbox.texts()
    }

    /// Copies of messages this phone's devices had already received, not kept again.
    pub fn duplicates(&self) -> u64 {
        self.inbox.duplicates()
    }

    pub fn record_receipt(&mut self, receipt: ClientReceipt) {
        self.receipts.push(receipt);
    }

    pub fn receipts(&self) -> &[ClientReceipt] {
        &self.receipts
    }
}

fn device_node(id: u16, key_index: u32) -> Node {
    NodeBuilder::new("device")
        .attr("id", id.to_string())
        .attr("key-index", key_index.to_string())
        .build()
}
