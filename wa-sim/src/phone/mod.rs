//! The simulated phone's crypto: Signal devices, prekey bundles, message
//! encrypt/decrypt and ADV pairing signatures. Pure library code, no I/O; every
//! call is synchronous (the in-memory stores never wait), so a phone can live
//! behind a `std::sync::Mutex` and be used from any tokio task.
//!
//! # How the server uses it
//!
//! **Accounts.** One [`PhoneDevice`] per simulated phone device; device 0 is
//! the primary phone and its identity is the account (ADV) key:
//! `PhoneDevice::generate(100)?`.
//!
//! **Pairing (QR scan).**
//! 1. [`PairingQr::parse`] the QR string → ref, noise key, companion identity, ADV secret.
//! 2. [`pair_success_device_identity`]`(phone.identity_key_pair(), &qr.identity_public,
//!    &qr.adv_secret, &AdvDeviceDetails{raw_id, key_index, timestamp})` → bytes for
//!    `<pair-success><device-identity>` (use `NodeBuilder::bytes`).
//! 3. On the client's `<pair-device-sign><device-identity>` reply:
//!    [`verify_pair_device_sign`]`(bytes, &qr.identity_public, &phone.identity_public())`
//!    → the vouched [`AdvDeviceDetails`]. Store the bytes: they are the companion's
//!    `<device-identity>` in its prekey bundle.
//! 4. usync `<key-index-list ts=…>`: [`signed_key_index_list`]`(account, &KeyIndexList{..})`.
//!
//! **Prekey fetch (`<iq xmlns="encrypt"><key><user jid=…/>`).** For each requested
//! user owned by a simulated device: `phone.bundle_user_node(requested_jid, None)?`
//! gives the `<user>` child of `<list>`; the jid string is echoed exactly. Pass the
//! stored pair-device-sign bytes as `device_identity` for devices ≠ 0. Each call
//! hands out one fresh one-time prekey while any are left ([`PhoneDevice::add_one_time_prekeys`]).
//!
//! **Client → phone message.** For each `<to jid=phone-device><enc v type>bytes</enc>`:
//! `phone.decrypt(sender, type, bytes, v)?` → `wa::Message`; [`message_text`] reads
//! the text (own-device copies are `device_sent_message`-wrapped; it unwraps them).
//! `sender` is the sending device's JID string (e.g. `"15550001111:1@s.whatsapp.net"`);
//! it keys the Signal session, so use one canonical form (PN or LID) per device,
//! the same one later passed to `encrypt`.
//!
//! **Phone → client message.** `phone.encrypt(companion_addr, Some(&bundle), &message)?`
//! → [`EncryptedMessage`] `{enc_type, ciphertext, version}`; emit
//! `<enc v="2" type=enc_type.as_wire_str()>ciphertext</enc>`. The bundle is a
//! [`CompanionBundle`] — from the registration payload via
//! [`CompanionBundle::from_pairing_data`], or from the client's prekey upload. It
//! is only used when no session exists yet (or the companion's identity changed).
//! - Inbound text from a contact: [`text_message`]. The stanza's `from` is the contact.
//! - App-state key share: [`app_state_key_share_message`] over keys from
//!   [`AppStateSyncKey::generate`], sent by the primary phone (device 0) of the
//!   companion's own account — the client drops a share that is not from its own
//!   account. One stored key ends the client's post-pairing wait for keys. A companion
//!   that lacks a key asks for it ([`requested_app_state_keys`]).
//! - Sessions: either side may start one; crossing first messages converge.
//!   [`PhoneDevice::forget_session`] when a companion is unlinked.
//!
//! Errors are [`PhoneError`]; nothing here panics on bad input.

mod adv;
mod companion;
mod content;
mod device;
mod error;
mod link_code;
mod ready;
mod stores;

#[cfg(test)]
mod client_interop_tests;

pub use adv::{
    AdvDeviceDetails, KeyIndexList, PairingQr, pair_success_device_identity, raw_public_key,
    signed_key_index_list, verify_pair_device_sign,
};
pub use companion::CompanionBundle;
pub use content::{
    AppStateSyncKey, ENC_VERSION, app_state_key_share_message, history_sync_type, image_message,
    initial_history_bootstrap_message, location_message, message_text, requested_app_state_keys,
    shared_app_state_keys, stanza_types, text_message,
};
pub use device::{EncType, EncryptedMessage, PhoneDevice};
pub use error::PhoneError;
pub use link_code::{LinkCodeError, LinkedCompanion, PrimaryHello, normalize_code};
pub use stores::{
    InMemoryPreKeyStore, InMemorySessionStore, InMemorySignedPreKeyStore, SignalStores,
    TrustAllIdentityStore,
};
