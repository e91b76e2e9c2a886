//! A companion device's public prekey bundle, as the phone needs it to start a
//! Signal session towards that companion (phone → client messages).

use wacore_libsignal::protocol::{IdentityKey, PreKeyBundle, PublicKey};
use waproto::whatsapp as wa;

use super::PhoneError;

/// The companion's keys, taken from its registration payload
/// ([`CompanionBundle::from_pairing_data`]) or from its prekey upload.
/// All keys are the raw 32-byte Curve25519 form the wire uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanionBundle {
    pub registration_id: u32,
    pub identity_public: [u8; 32],
    pub signed_prekey_id: u32,
    pub signed_prekey_public: [u8; 32],
    /// XEdDSA signature by the identity key over the 33-byte serialized signed prekey.
    pub signed_prekey_signature: Vec<u8>,
    /// `(id, public key)` of a one-time prekey, if the server has one left for this device.
    pub one_time_prekey: Option<(u32, [u8; 32])>,
}

impl CompanionBundle {
    /// Reads the bundle a freshly paired client announced in its registration
    /// `ClientPayload.device_pairing_data` (no one-time prekey: those come later
    /// with the prekey upload, and the signed prekey alone starts a session).
    pub fn from_pairing_data(
        data: &wa::client_payload::DevicePairingRegistrationData,
    ) -> Result<Self, PhoneError> {
        let field = |value: &Option<Vec<u8>>, what: &'static str| {
            value.clone().ok_or(PhoneError::InvalidProto {
                what: "device pairing data",
                reason: format!("missing {what}"),
            })
        };
        Ok(Self {
            registration_id: be_uint(&field(&data.e_regid, "e_regid")?, 4, "e_regid")?,
            identity_public: key32(&field(&data.e_ident, "e_ident")?, "e_ident")?,
            signed_prekey_id: be_uint(&field(&data.e_skey_id, "e_skey_id")?, 3, "e_skey_id")?,
            signed_prekey_public: key32(&field(&data.e_skey_val, "e_skey_val")?, "e_skey_val")?,
            signed_prekey_signature: field(&data.e_skey_sig, "e_skey_sig")?,
            one_time_prekey: None,
        })
    }

    /// The same keys as libsignal's bundle type (device id 0: WhatsApp puts the
    /// device into the address name, never into the Signal device id).
    pub fn to_prekey_bundle(&self) -> Result<PreKeyBundle, PhoneError> {
        let one_time = match self.one_time_prekey {
            Some((id, public)) => Some((id.into(), public_key(&public, "one-time prekey")?)),
            None => None,
        };
        Ok(PreKeyBundle::new(
            self.registration_id,
            0u32.into(),
            one_time,
            self.signed_prekey_id.into(),
            public_key(&self.signed_prekey_public, "signed prekey")?,
            self.signed_prekey_signature.clone(),
            self.identity_key()?,
        )?)
    }

    pub fn identity_key(&self) -> Result<IdentityKey, PhoneError> {
        Ok(IdentityKey::new(public_key(
            &self.identity_public,
            "identity key",
        )?))
    }
}

pub(crate) fn public_key(raw: &[u8], what: &'static str) -> Result<PublicKey, PhoneError> {
    PublicKey::from_djb_public_key_bytes(raw).map_err(|e| PhoneError::InvalidKey {
        what,
        reason: e.to_string(),
    })
}

pub(crate) fn key32(raw: &[u8], what: &'static str) -> Result<[u8; 32], PhoneError> {
    raw.try_into().map_err(|_| PhoneError::InvalidKey {
        what,
        reason: format!("expected 32 bytes, got {}", raw.len()),
    })
}

/// Big-endian unsigned integer of exactly `len` bytes (the wire's 3- and 4-byte ids).
fn be_uint(raw: &[u8], len: usize, what: &'static str) -> Result<u32, PhoneError> {
    if raw.len() != len {
        return Err(PhoneError::InvalidProto {
            what: "device pairing data",
            reason: format!("{what} must be {len} bytes, got {}", raw.len()),
        });
    }
    Ok(raw
        .iter()
        .fold(0u32, |acc, byte| (acc << 8) | u32::from(*byte)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_registration_payload_of_a_real_client_device() {
        let device = wacore::store::Device::new();
        let payload = device.get_client_payload();
        let data = payload.device_pairing_data.as_option().unwrap();
        let bundle = CompanionBundle::from_pairing_data(data).unwrap();
        assert_eq!(bundle.registration_id, device.registration_id);
        assert_eq!(
            &bundle.identity_public[..],
            device.identity_key.public_key.public_key_bytes()
        );
        assert_eq!(bundle.signed_prekey_id, 1);
        // libsignal checks the signed prekey signature when building a session from it.
        bundle.to_prekey_bundle().unwrap();
    }

    #[test]
    fn short_fields_are_rejected() {
        let data = wa::client_payload::DevicePairingRegistrationData {
            e_regid: Some(vec![0, 1]),
            ..Default::default()
        };
        assert!(CompanionBundle::from_pairing_data(&data).is_err());
    }
}
