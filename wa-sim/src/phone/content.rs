//! The `wa::Message` contents the phone reads and writes: texts, the
//! app-state sync key share that lets a freshly paired client finish its
//! first sync without waiting for its key-share timeout, and the initial
//! history-sync notification a phone sends a newly linked companion.

use rand::RngExt as _;
use waproto::buffa::{Message as _, MessageField};
use waproto::whatsapp as wa;

/// The `v` attribute of every `<enc>` the phone sends: v2 means the plaintext
/// carries 1..=16 bytes of PKCS-style padding, which the client strips.
pub const ENC_VERSION: u8 = 2;

/// The text of a message: `conversation`, `extended_text_message.text`, or the
/// same inside `device_sent_message.message` (the copy a companion sends to its
/// own phone).
pub fn message_text(message: &wa::Message) -> Option<&str> {
    if let Some(text) = message.conversation.as_deref() {
        return Some(text);
    }
    if let Some(text) = message
        .extended_text_message
        .as_option()
        .and_then(|extended| extended.text.as_deref())
    {
        return Some(text);
    }
    message
        .device_sent_message
        .as_option()
        .and_then(|sent| sent.message.as_option())
        .and_then(message_text)
}

/// A plain text message, as WhatsApp phones send short texts.
pub fn text_message(text: &str) -> wa::Message {
    wa::Message {
        conversation: Some(text.to_string()),
        ..Default::default()
    }
}

/// A photo with an optional caption, as a phone sends one: the media fields a client needs
/// to fetch and decrypt it (a media path, the media key, the hashes of the plain and the
/// encrypted file). The simulator serves no media, so they describe a blob nobody can
/// download; a client that only reads the message (its type, its caption) needs no more.
pub fn image_message(caption: Option<&str>) -> wa::Message {
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut media_key = vec![0u8; 32];
    rng.fill(&mut media_key[..]);
    let mut file_sha256 = vec![0u8; 32];
    rng.fill(&mut file_sha256[..]);
    let mut file_enc_sha256 = vec![0u8; 32];
    rng.fill(&mut file_enc_sha256[..]);
    let path = format!("/v/t62.7118-24/{:016x}.enc", rng.random::<u64>());
    wa::Message {
        image_message: MessageField::some(wa::message::ImageMessage {
            direct_path: Some(path),
            mimetype: Some("image/jpeg".to_string()),
            caption: caption.map(str::to_string),
            file_sha256: Some(file_sha256),
            file_enc_sha256: Some(file_enc_sha256),
            file_length: Some(48_213),
            height: Some(1280),
            width: Some(960),
            media_key: Some(media_key),
            media_key_timestamp: Some(crate::account::unix_millis() as i64 / 1000),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A shared (static) location, with an optional place name.
pub fn location_message(latitude: f64, longitude: f64, name: Option<&str>) -> wa::Message {
    wa::Message {
        location_message: MessageField::some(wa::message::LocationMessage {
            degrees_latitude: Some(latitude),
            degrees_longitude: Some(longitude),
            name: name.map(str::to_string),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The `type` attribute of the `<message>` stanza that carries `message`, and the
/// `mediatype` of its `<enc>` (as WhatsApp clients set them: `media` for photos, locations
/// and other media, `text` for texts).
pub fn stanza_types(message: &wa::Message) -> (&'static str, Option<&'static str>) {
    if message.image_message.is_set() {
        ("media", Some("image"))
    } else if message.location_message.is_set() {
        ("media", Some("location"))
    } else {
        ("text", None)
    }
}

/// One app-state sync key as the phone shares it with its companions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppStateSyncKey {
    /// Opaque id; app-state patches name the key they are encrypted with by it.
    pub key_id: Vec<u8>,
    /// The 32-byte master key the client expands into its app-state keys.
    pub key_data: [u8; 32],
    /// The account's ADV `raw_id`.
    pub raw_id: u32,
    /// The phone's current ADV key index.
    pub current_index: u32,
    /// Key indexes of the devices the key was made for.
    pub device_indexes: Vec<u32>,
    /// Creation time, milliseconds since the epoch.
    pub timestamp_ms: i64,
}

impl AppStateSyncKey {
    /// A random key. `key_id` follows the phone's 6-byte form: two zero bytes
    /// and a big-endian sequence number.
    pub fn generate(
        sequence: u32,
        raw_id: u32,
        device_indexes: Vec<u32>,
        timestamp_ms: i64,
    ) -> Self {
        let mut key_id = vec![0, 0];
        key_id.extend_from_slice(&sequence.to_be_bytes());
        let mut key_data = [0u8; 32];
        rand::make_rng::<rand::rngs::StdRng>().fill(&mut key_data[..]);
        Self {
            key_id,
            key_data,
            raw_id,
            current_index: device_indexes.iter().copied().max().unwrap_or(0),
            device_indexes,
            timestamp_ms,
        }
    }

    fn to_proto(&self) -> wa::message::AppStateSyncKey {
        wa::message::AppStateSyncKey {
            key_id: MessageField::some(wa::message::AppStateSyncKeyId {
                key_id: Some(self.key_id.clone()),
            }),
            // The client drops a key without a fingerprint, so it is always set.
            key_data: MessageField::some(wa::message::AppStateSyncKeyData {
                key_data: Some(self.key_data.to_vec()),
                fingerprint: MessageField::some(wa::message::AppStateSyncKeyFingerprint {
                    raw_id: Some(self.raw_id),
                    current_index: Some(self.current_index),
                    device_indexes: self.device_indexes.clone(),
                }),
                timestamp: Some(self.timestamp_ms),
            }),
        }
    }
}

/// The protocol message that shares `keys` with a companion. The client only
/// accepts it from its own account (the stanza must come from the phone's own
/// JID, device 0), stores every key that has an id, data and fingerprint, and
/// releases its initial app-state sync as soon as one key is stored.
pub fn app_state_key_share_message(keys: &[AppStateSyncKey]) -> wa::Message {
    wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            r#type: Some(wa::message::protocol_message::Type::APP_STATE_SYNC_KEY_SHARE),
            app_state_sync_key_share: MessageField::some(wa::message::AppStateSyncKeyShare {
                keys: keys.iter().map(AppStateSyncKey::to_proto).collect(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The keys carried by a key share message, in the form the client stores
/// them (`None` when `message` is no key share).
pub fn shared_app_state_keys(message: &wa::Message) -> Option<Vec<AppStateSyncKey>> {
    let share = message
        .protocol_message
        .as_option()?
        .app_state_sync_key_share
        .as_option()?;
    let keys = share
        .keys
        .iter()
        .filter_map(|key| {
            let key_id = key.key_id.as_option()?.key_id.clone()?;
            let data = key.key_data.as_option()?;
            let fingerprint = data.fingerprint.as_option()?;
            Some(AppStateSyncKey {
                key_id,
                key_data: data.key_data.as_deref()?.try_into().ok()?,
                raw_id: fingerprint.raw_id.unwrap_or_default(),
                current_index: fingerprint.current_index.unwrap_or_default(),
                device_indexes: fingerprint.device_indexes.clone(),
                timestamp_ms: data.timestamp.unwrap_or_default(),
            })
        })
        .collect();
    Some(keys)
}

/// The key ids an `appStateSyncKeyRequest` asks for (`None` when `message` is no such
/// request). A companion sends one to its own devices when a patch names a key it lacks.
pub fn requested_app_state_keys(message: &wa::Message) -> Option<Vec<Vec<u8>>> {
    let request = message
        .protocol_message
        .as_option()?
        .app_state_sync_key_request
        .as_option()?;
    Some(
        request
            .key_ids
            .iter()
            .filter_map(|id| id.key_id.clone())
            .collect(),
    )
}

/// The history-sync notification a phone sends a companion right after linking it,
/// with the `INITIAL_BOOTSTRAP` chunk. Phones carry that first chunk inline
/// (`initialHistBootstrapInlinePayload`, a zlib-compressed `HistorySync`) instead of as
/// an uploaded media blob. Clients wait for it: Baileys holds a new login in its
/// "awaiting initial sync" state for up to 20 s and runs its initial app-state sync only
/// once the notification arrives. The simulated phone has no chats, so the chunk carries
/// only its type.
pub fn initial_history_bootstrap_message() -> wa::Message {
    let chunk = wa::HistorySync {
        sync_type: wa::history_sync::HistorySyncType::INITIAL_BOOTSTRAP,
        chunk_order: Some(0),
        progress: Some(100),
        ..Default::default()
    };
    let notification = wa::message::HistorySyncNotification {
        sync_type: Some(wa::message::HistorySyncType::INITIAL_BOOTSTRAP),
        chunk_order: Some(0),
        progress: Some(100),
        initial_hist_bootstrap_inline_payload: Some(zlib_compress(&chunk.encode_to_vec())),
        ..Default::default()
    };
    wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            r#type: Some(wa::message::protocol_message::Type::HISTORY_SYNC_NOTIFICATION),
            history_sync_notification: MessageField::some(notification),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Whether `message` is a history-sync notification, and of which type.
pub fn history_sync_type(message: &wa::Message) -> Option<wa::message::HistorySyncType> {
    message
        .protocol_message
        .as_option()?
        .history_sync_notification
        .as_option()?
        .sync_type
}

/// A zlib stream (RFC 1950) of `data`, as history-sync payloads are compressed.
fn zlib_compress(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; zlib_rs::compress_bound(data.len())];
    let (compressed, code) = zlib_rs::compress_slice(&mut out, data, Default::default());
    // The buffer is `compress_bound` long, which always fits the whole stream.
    debug_assert_eq!(code, zlib_rs::ReturnCode::Ok);
    let len = compressed.len();
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_found_in_all_three_places() {
        assert_eq!(message_text(&text_message("a")), Some("a"));
        let extended = wa::Message {
            extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
                text: Some("b".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(message_text(&extended), Some("b"));
        let own_copy = wacore::messages::wrap_device_sent(
            text_message("c"),
            "15559998888@s.whatsapp.net".into(),
        );
        assert_eq!(message_text(&own_copy), Some("c"));
        assert_eq!(message_text(&wa::Message::default()), None);
    }

    #[test]
    fn key_share_carries_what_the_client_requires() {
        let key = AppStateSyncKey::generate(1, 42, vec![0, 1], 1_700_000_000_000);
        assert_eq!(key.key_id, vec![0, 0, 0, 0, 0, 1]);
        assert_eq!(key.current_index, 1);
        let message = app_state_key_share_message(std::slice::from_ref(&key));
        let protocol = message.protocol_message.as_option().unwrap();
        assert_eq!(
            protocol.r#type,
            Some(wa::message::protocol_message::Type::APP_STATE_SYNC_KEY_SHARE)
        );
        assert_eq!(shared_app_state_keys(&message), Some(vec![key]));
        assert_eq!(shared_app_state_keys(&text_message("x")), None);
    }

    #[test]
    fn initial_history_bootstrap_is_an_inline_chunk_clients_decode() {
        let message = initial_history_bootstrap_message();
        assert_eq!(
            history_sync_type(&message),
            Some(wa::message::HistorySyncType::INITIAL_BOOTSTRAP)
        );
        let notification = message
            .protocol_message
            .as_option()
            .and_then(|p| p.history_sync_notification.as_option())
            .unwrap();
        // No media fields: a client that sees a direct path would try to download it.
        assert_eq!(notification.direct_path, None);
        let inline = notification
            .initial_hist_bootstrap_inline_payload
            .as_deref()
            .unwrap();
        // Decompressed the way whatsapp-rust does it.
        let raw = wacore_binary::zlib_pool::decompress_zlib_pooled(inline, 1 << 20).unwrap();
        let chunk = wa::HistorySync::decode_from_slice(&raw).unwrap();
        assert_eq!(
            chunk.sync_type,
            wa::history_sync::HistorySyncType::INITIAL_BOOTSTRAP
        );
        assert!(chunk.conversations.is_empty());
        assert_eq!(history_sync_type(&text_message("x")), None);
    }
}
