//! ADV (account device verification): the phone's side of QR pairing.
//!
//! The phone's account key (device 0's Signal identity) vouches for a companion:
//! it signs the companion's identity key inside `ADVSignedDeviceIdentity`, MACs
//! that with the secret from the QR, and later signs the list of valid
//! companion key indexes that usync hands out.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use wacore::adv::{AdvValidation, validate_adv_with_identity_key};
use wacore::pair::PairUtils;
use wacore_libsignal::protocol::IdentityKeyPair;
use waproto::buffa::Message as _;
use waproto::whatsapp as wa;

use super::PhoneError;
use super::companion::key32;

/// Domain separators of WhatsApp's ADV signatures (consumer, end-to-end encrypted
/// accounts). The companion's device signature uses [6, 1]; wacore checks that one.
const ACCOUNT_SIGNATURE_PREFIX: [u8; 2] = [6, 0];
const KEY_INDEX_LIST_PREFIX: [u8; 2] = [6, 2];

/// What the phone learns of a companion it links: read from its pairing QR code, or
/// from the link-code exchange (the ref is then the link-code request's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingQr {
    /// The server-issued ref: tells the server which connection is pairing.
    pub pairing_ref: String,
    /// The companion's Noise static key (equals the key of that connection's handshake).
    pub noise_public: [u8; 32],
    /// The companion's Signal identity key, which the phone signs.
    pub identity_public: [u8; 32],
    /// The HMAC key for the pair-success container.
    pub adv_secret: [u8; 32],
}

impl PairingQr {
    /// Parses `ref,noise,identity,adv_secret[,client_type]` with the client's own
    /// parser, plus the ADV secret field that parser does not return.
    pub fn parse(qr: &str) -> Result<Self, PhoneError> {
        let (pairing_ref, noise_public, identity_public) =
            PairUtils::parse_qr_code(qr).map_err(|e| PhoneError::InvalidQr(format!("{e:#}")))?;
        let body = qr
            .strip_prefix(wacore::companion_reg::NATIVE_CAMERA_DEEP_LINK_PREFIX)
            .unwrap_or(qr);
        let secret_b64 = body
            .split(',')
            .nth(3)
            .ok_or_else(|| PhoneError::InvalidQr("missing ADV secret field".into()))?;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret_b64)
            .map_err(|e| PhoneError::InvalidQr(format!("ADV secret is not base64: {e}")))?;
        let adv_secret = secret
            .try_into()
            .map_err(|_| PhoneError::InvalidQr("ADV secret must be 32 bytes".into()))?;
        Ok(Self {
            pairing_ref,
            noise_public,
            identity_public,
            adv_secret,
        })
    }
}

/// The facts the phone vouches for about one companion (`ADVDeviceIdentity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdvDeviceDetails {
    /// The account's ADV id; the same value goes into the key index list.
    pub raw_id: u32,
    /// The companion's key index (the client refuses a pairing without one).
    pub key_index: u32,
    /// Unix seconds.
    pub timestamp: u64,
}

impl AdvDeviceDetails {
    fn encode(&self) -> Vec<u8> {
        wa::ADVDeviceIdentity {
            raw_id: Some(self.raw_id),
            timestamp: Some(self.timestamp),
            key_index: Some(self.key_index),
            account_type: Some(wa::ADVEncryptionType::E2EE),
            device_type: Some(wa::ADVEncryptionType::E2EE),
        }
        .encode_to_vec()
    }
}

/// The bytes of `<pair-success><device-identity>`: an `ADVSignedDeviceIdentityHMAC`
/// whose inner identity carries the account's signature over the companion key.
pub fn pair_success_device_identity(
    account: &IdentityKeyPair,
    companion_identity: &[u8; 32],
    adv_secret: &[u8; 32],
    details: &AdvDeviceDetails,
) -> Result<Vec<u8>, PhoneError> {
    let details = details.encode();
    let to_sign = [&ACCOUNT_SIGNATURE_PREFIX[..], &details, companion_identity].concat();
    let account_signature = account
        .private_key()
        .calculate_signature(&to_sign, &mut rand::make_rng::<rand::rngs::StdRng>())?;
    let signed = wa::ADVSignedDeviceIdentity {
        details: Some(details),
        account_signature_key: Some(account.public_key().public_key_bytes().to_vec()),
        account_signature: Some(account_signature.to_vec()),
        device_signature: None,
    }
    .encode_to_vec();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(adv_secret).map_err(|e| {
        PhoneError::InvalidKey {
            what: "ADV secret",
            reason: e.to_string(),
        }
    })?;
    mac.update(&signed);
    Ok(wa::ADVSignedDeviceIdentityHMAC {
        details: Some(signed),
        hmac: Some(mac.finalize().into_bytes().to_vec()),
        account_type: Some(wa::ADVEncryptionType::E2EE),
    }
    .encode_to_vec())
}

/// Checks the `ADVSignedDeviceIdentity` a client returns in
/// `<pair-device-sign><device-identity>`: it carries this account's key or none,
/// and the account signature and the companion's device signature must verify. Returns
/// the details it vouches for; the caller compares them with what it issued.
/// Keep the bytes: they are that companion's `<device-identity>` from now on.
pub fn verify_pair_device_sign(
    signed_identity: &[u8],
    companion_identity: &[u8; 32],
    account_public: &[u8; 32],
) -> Result<AdvDeviceDetails, PhoneError> {
    let signed =
        waproto::codec::adv_signed_device_identity_decode(signed_identity).map_err(|e| {
            PhoneError::InvalidProto {
                what: "ADVSignedDeviceIdentity",
                reason: e.to_string(),
            }
        })?;
    // Real clients (whatsmeow, Baileys) clear `accountSignatureKey` on purpose before they send
    // it back: WhatsApp then verifies against the account key it already knows. A key that is
    // there and different is what gets refused.
    match signed.account_signature_key.as_deref() {
        Some(key) if !key.is_empty() && key != &account_public[..] => {
            return Err(PhoneError::AdvRejected("signed by another account key"));
        }
        _ => {}
    }
    // wacore's check is the one every client runs on this blob when it fetches the companion's bundle.
    if validate_adv_with_identity_key(signed_identity, companion_identity, Some(account_public))
        != AdvValidation::Valid
    {
        return Err(PhoneError::AdvRejected("signature mismatch"));
    }
    let details = signed.details.as_deref().unwrap_or_default();
    let identity = waproto::codec::adv_device_identity_decode(details).map_err(|e| {
        PhoneError::InvalidProto {
            what: "ADVDeviceIdentity",
            reason: e.to_string(),
        }
    })?;
    let missing = |field: &str| PhoneError::InvalidProto {
        what: "ADVDeviceIdentity",
        reason: format!("missing {field}"),
    };
    Ok(AdvDeviceDetails {
        raw_id: identity.raw_id.ok_or_else(|| missing("raw_id"))?,
        key_index: identity.key_index.ok_or_else(|| missing("key_index"))?,
        timestamp: identity.timestamp.ok_or_else(|| missing("timestamp"))?,
    })
}

/// The account's current list of valid companion key indexes (`ADVKeyIndexList`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIndexList {
    pub raw_id: u32,
    /// Unix seconds; also the `ts` attribute of `<key-index-list>`.
    pub timestamp: u64,
    pub current_index: u32,
    pub valid_indexes: Vec<u32>,
}

/// The bytes of usync's `<key-index-list ts=…>`: an `ADVSignedKeyIndexList` signed
/// by the account key. whatsapp-rust does not check the signature, WhatsApp Web
/// does; it is made the way the phone makes it.
pub fn signed_key_index_list(
    account: &IdentityKeyPair,
    list: &KeyIndexList,
) -> Result<Vec<u8>, PhoneError> {
    let details = wa::ADVKeyIndexList {
        raw_id: Some(list.raw_id),
        timestamp: Some(list.timestamp),
        current_index: Some(list.current_index),
        valid_indexes: list.valid_indexes.clone(),
        account_type: Some(wa::ADVEncryptionType::E2EE),
    }
    .encode_to_vec();
    let to_sign = [&KEY_INDEX_LIST_PREFIX[..], &details].concat();
    let signature = account
        .private_key()
        .calculate_signature(&to_sign, &mut rand::make_rng::<rand::rngs::StdRng>())?;
    Ok(wa::ADVSignedKeyIndexList {
        details: Some(details),
        account_signature: Some(signature.to_vec()),
        account_signature_key: Some(account.public_key().public_key_bytes().to_vec()),
    }
    .encode_to_vec())
}

/// The raw 32-byte public key of an identity, as ADV blobs carry it.
pub fn raw_public_key(identity: &IdentityKeyPair) -> Result<[u8; 32], PhoneError> {
    key32(
        identity.public_key().public_key_bytes(),
        "identity public key",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use wacore::companion_reg::CompanionWebClientType;
    use wacore::pair::DeviceState;
    use wacore_libsignal::protocol::PublicKey;

    const DETAILS: AdvDeviceDetails = AdvDeviceDetails {
        raw_id: 4242,
        key_index: 3,
        timestamp: 1_700_000_000,
    };

    /// A real client device and the QR code it would show.
    fn companion() -> (DeviceState, String) {
        let device = wacore::store::Device::new();
        let state = DeviceState {
            identity_key: device.identity_key.clone(),
            noise_key: device.noise_key.clone(),
            adv_secret_key: device.adv_secret_key,
        };
        let qr = PairUtils::make_qr_data(&state, "2@REF", CompanionWebClientType::OtherWebClient);
        (state, qr)
    }

    fn account() -> IdentityKeyPair {
        IdentityKeyPair::generate(&mut rand::make_rng::<rand::rngs::StdRng>())
    }

    #[test]
    fn qr_parse_returns_every_field_the_phone_needs() {
        let (state, qr) = companion();
        let parsed = PairingQr::parse(&qr).unwrap();
        assert_eq!(parsed.pairing_ref, "2@REF");
        assert_eq!(
            &parsed.noise_public[..],
            state.noise_key.public_key.public_key_bytes()
        );
        assert_eq!(
            &parsed.identity_public[..],
            state.identity_key.public_key.public_key_bytes()
        );
        assert_eq!(parsed.adv_secret, state.adv_secret_key);
        assert!(PairingQr::parse("2@REF,only-two").is_err());
        let bad_secret = qr.replace(&qr.split(',').nth(3).unwrap().to_string(), "AAAA");
        assert!(matches!(
            PairingQr::parse(&bad_secret),
            Err(PhoneError::InvalidQr(_))
        ));
    }

    #[test]
    fn client_accepts_pair_success_and_its_device_signature_verifies() {
        let (state, qr) = companion();
        let qr = PairingQr::parse(&qr).unwrap();
        let account = account();
        let account_public = raw_public_key(&account).unwrap();
        let container =
            pair_success_device_identity(&account, &qr.identity_public, &qr.adv_secret, &DETAILS)
                .unwrap();

        // The client's own verifier, exactly as it runs on <pair-success>.
        let (signed, key_index) = PairUtils::do_pair_crypto(&state, &container).unwrap();
        assert_eq!(key_index, DETAILS.key_index);

        let verified =
            verify_pair_device_sign(&signed, &qr.identity_public, &account_public).unwrap();
        assert_eq!(verified, DETAILS);

        // A flipped bit anywhere in the device signature must be caught.
        let mut tampered = waproto::codec::adv_signed_device_identity_decode(&signed).unwrap();
        if let Some(signature) = tampered.device_signature.as_mut() {
            signature[10] ^= 1;
        }
        let tampered = tampered.encode_to_vec();
        assert!(matches!(
            verify_pair_device_sign(&tampered, &qr.identity_public, &account_public),
            Err(PhoneError::AdvRejected(_))
        ));
        // Signed by the right companion but for another account.
        let other = raw_public_key(&super::tests::account()).unwrap();
        assert!(verify_pair_device_sign(&signed, &qr.identity_public, &other).is_err());

        // As whatsmeow and Baileys send it: without the account key, which WhatsApp knows.
        let mut cleared = waproto::codec::adv_signed_device_identity_decode(&signed).unwrap();
        cleared.account_signature_key = None;
        let cleared = cleared.encode_to_vec();
        assert_eq!(
            verify_pair_device_sign(&cleared, &qr.identity_public, &account_public).unwrap(),
            DETAILS
        );
        assert!(verify_pair_device_sign(&cleared, &qr.identity_public, &other).is_err());
        // A key that is there and is not the account's is refused.
        let mut foreign = waproto::codec::adv_signed_device_identity_decode(&signed).unwrap();
        foreign.account_signature_key = Some(other.to_vec());
        assert!(matches!(
            verify_pair_device_sign(
                &foreign.encode_to_vec(),
                &qr.identity_public,
                &account_public
            ),
            Err(PhoneError::AdvRejected("signed by another account key"))
        ));
        assert!(verify_pair_device_sign(b"garbage", &qr.identity_public, &account_public).is_err());
    }

    #[test]
    fn client_rejects_a_container_made_with_the_wrong_secret() {
        let (state, qr) = companion();
        let qr = PairingQr::parse(&qr).unwrap();
        let container =
            pair_success_device_identity(&account(), &qr.identity_public, &[9u8; 32], &DETAILS)
                .unwrap();
        let error = PairUtils::do_pair_crypto(&state, &container).unwrap_err();
        assert_eq!(error.code, 401);
    }

    #[test]
    fn key_index_list_decodes_with_the_client_and_is_signed_by_the_account() {
        let account = account();
        let list = KeyIndexList {
            raw_id: 4242,
            timestamp: 1_700_000_000,
            current_index: 3,
            valid_indexes: vec![1, 3],
        };
        let bytes = signed_key_index_list(&account, &list).unwrap();
        let decoded = wacore::adv::decode_key_index_list(&bytes).unwrap();
        assert_eq!(decoded.raw_id, 4242);
        assert_eq!(decoded.current_index, 3);
        assert_eq!(decoded.valid_indexes, vec![1, 3]);

        let signed = waproto::codec::adv_signed_key_index_list_decode(&bytes).unwrap();
        let details = signed.details.unwrap();
        let message = [&KEY_INDEX_LIST_PREFIX[..], &details].concat();
        let public =
            PublicKey::from_djb_public_key_bytes(&raw_public_key(&account).unwrap()).unwrap();
        assert!(public.verify_signature(&message, &signed.account_signature.unwrap()));
    }
}
