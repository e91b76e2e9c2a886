//! The server's Noise static key and the certificate chain that vouches for it, built
//! the way WhatsApp builds its own. A root key signs an intermediate certificate
//! (`issuerSerial` 0), and the intermediate key signs the leaf (`issuerSerial` = the
//! intermediate's serial), whose key is the server static key. Both signatures are
//! XEdDSA over the serialized `Details`. Both certificates carry
//! `notBefore`/`notAfter`; with that window, clients cache the chain and resume with
//! Noise IK on reconnect.
//!
//! WhatsApp's root public key is hard-coded in clients. The simulator cannot sign
//! with it, so it makes its own root at every start and publishes the public half
//! (`GET /control/root-key`, [`crate::SimHandle::noise_root_public_key`]): a client
//! that pins that key can verify the chain for real.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use wacore_libsignal::protocol::{CurveError, KeyPair};
use waproto::buffa::{Message as _, MessageField};
use waproto::whatsapp as wa;
use waproto::whatsapp::cert_chain::{NoiseCertificate, noise_certificate::Details};

/// The root's own serial: an intermediate names it as its issuer.
const ROOT_SERIAL: u32 = 0;
const INTERMEDIATE_SERIAL: u32 = 1;
/// Leaves are numbered from here, one more for every static key rotation.
const FIRST_LEAF_SERIAL: u32 = 2;
/// Backdating covers a client clock slightly behind the simulator's.
const CLOCK_SKEW: Duration = Duration::from_secs(24 * 3600);
const INTERMEDIATE_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
const LEAF_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("signing a Noise certificate failed: {0}")]
    Sign(#[from] CurveError),
}

/// The root public key as `GET /control/root-key` answers it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NoiseRootKey {
    /// The 32-byte Curve25519 key, lowercase hex.
    pub hex: String,
    /// The same bytes, standard base64 with padding.
    pub base64: String,
}

impl NoiseRootKey {
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            hex: key.iter().map(|byte| format!("{byte:02x}")).collect(),
            base64: base64::engine::general_purpose::STANDARD.encode(key),
        }
    }
}

/// One static key and the chain whose leaf names it: what a handshake needs.
pub struct ServerIdentity {
    pub(super) static_key: KeyPair,
    pub(super) cert_chain: Vec<u8>,
}

impl ServerIdentity {
    pub fn static_public(&self) -> [u8; 32] {
        public_bytes(&self.static_key)
    }

    /// The serialized `CertChain` the ServerHello carries.
    pub fn cert_chain(&self) -> &[u8] {
        &self.cert_chain
    }
}

/// The root and intermediate, fixed for the simulator's lifetime, and the current
/// leaf identity, which [`Self::rotate_static_key`] replaces.
pub struct NoiseKeys {
    authority: Authority,
    current: RwLock<Arc<ServerIdentity>>,
}

struct Authority {
    root: KeyPair,
    intermediate_key: KeyPair,
    intermediate: NoiseCertificate,
    intermediate_not_after: u64,
    next_leaf_serial: AtomicU32,
}

impl NoiseKeys {
    /// A fresh root, intermediate and static key, valid from now.
    pub fn generate() -> Result<Self, CertificateError> {
        let now = unix_now();
        let root = new_key_pair();
        let intermediate_key = new_key_pair();
        let intermediate_not_after = now + INTERMEDIATE_LIFETIME.as_secs();
        let intermediate = sign(
            &root,
            Details {
                serial: Some(INTERMEDIATE_SERIAL),
                issuer_serial: Some(ROOT_SERIAL),
                key: Some(public_bytes(&intermediate_key).to_vec()),
                not_before: Some(now.saturating_sub(CLOCK_SKEW.as_secs())),
                not_after: Some(intermediate_not_after),
            },
        )?;
        let authority = Authority {
            root,
            intermediate_key,
            intermediate,
            intermediate_not_after,
            next_leaf_serial: AtomicU32::new(FIRST_LEAF_SERIAL),
        };
        let identity = authority.issue(new_key_pair())?;
        Ok(Self {
            authority,
            current: RwLock::new(Arc::new(identity)),
        })
    }

    /// The identity new handshakes use.
    pub fn current(&self) -> Arc<ServerIdentity> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn root_public(&self) -> [u8; 32] {
        public_bytes(&self.authority.root)
    }

    /// Replaces the static key with a new one, with a fresh leaf from the same
    /// intermediate, as when WhatsApp rotates its server keys. Connections already
    /// up keep their transport keys; a client that resumes with IK against the old
    /// key is answered with XXfallback. Returns the new static public key.
    pub fn rotate_static_key(&self) -> Result<[u8; 32], CertificateError> {
        let identity = Arc::new(self.authority.issue(new_key_pair())?);
        let public = identity.static_public();
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = identity;
        Ok(public)
    }
}

impl Authority {
    /// A leaf for `static_key`, signed by the intermediate, and the chain around it.
    fn issue(&self, static_key: KeyPair) -> Result<ServerIdentity, CertificateError> {
        let now = unix_now();
        let leaf = sign(
            &self.intermediate_key,
            Details {
                serial: Some(self.next_leaf_serial.fetch_add(1, Ordering::Relaxed)),
                issuer_serial: Some(INTERMEDIATE_SERIAL),
                key: Some(public_bytes(&static_key).to_vec()),
                not_before: Some(now.saturating_sub(CLOCK_SKEW.as_secs())),
                // A leaf never outlives its issuer.
                not_after: Some((now + LEAF_LIFETIME.as_secs()).min(self.intermediate_not_after)),
            },
        )?;
        let cert_chain = wa::CertChain {
            leaf: MessageField::some(leaf),
            intermediate: MessageField::some(self.intermediate.clone()),
        }
        .encode_to_vec();
        Ok(ServerIdentity {
            static_key,
            cert_chain,
        })
    }
}

/// A certificate: `details` serialized, and the issuer's XEdDSA signature over those bytes.
fn sign(issuer: &KeyPair, details: Details) -> Result<NoiseCertificate, CertificateError> {
    let details = details.encode_to_vec();
    let signature = issuer
        .private_key
        .calculate_signature(&details, &mut rand::make_rng::<StdRng>())?;
    Ok(NoiseCertificate {
        details: Some(details),
        signature: Some(signature.to_vec()),
    })
}

fn new_key_pair() -> KeyPair {
    KeyPair::generate(&mut rand::make_rng::<StdRng>())
}

fn public_bytes(key: &KeyPair) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(key.public_key.public_key_bytes());
    bytes
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wacore_libsignal::protocol::PublicKey;

    fn details(certificate: &NoiseCertificate) -> Details {
        Details::decode_from_slice(certificate.details.as_deref().unwrap()).unwrap()
    }

    fn verifies(key: &[u8; 32], certificate: &NoiseCertificate) -> bool {
        PublicKey::from_djb_public_key_bytes(key)
            .unwrap()
            .verify_signature(
                certificate.details.as_deref().unwrap(),
                certificate.signature.as_deref().unwrap(),
            )
    }

    fn chain(identity: &ServerIdentity) -> (NoiseCertificate, NoiseCertificate) {
        let chain = wa::CertChain::decode_from_slice(identity.cert_chain()).unwrap();
        (
            chain.intermediate.into_option().unwrap(),
            chain.leaf.into_option().unwrap(),
        )
    }

    #[test]
    fn the_root_signs_the_intermediate_which_signs_the_leaf_for_the_static_key() {
        let keys = NoiseKeys::generate().unwrap();
        let identity = keys.current();
        let (intermediate, leaf) = chain(&identity);
        assert!(verifies(&keys.root_public(), &intermediate));
        let intermediate_key: [u8; 32] = details(&intermediate).key.unwrap().try_into().unwrap();
        assert!(verifies(&intermediate_key, &leaf));
        assert!(
            !verifies(&keys.root_public(), &leaf),
            "the leaf is the intermediate's"
        );
        assert_eq!(details(&intermediate).issuer_serial, Some(0));
        assert_eq!(details(&leaf).issuer_serial, details(&intermediate).serial);
        assert_eq!(details(&leaf).key.unwrap(), identity.static_public());
        let now = unix_now();
        for certificate in [&intermediate, &leaf] {
            let window = details(certificate);
            assert!(window.not_before.unwrap() <= now && now < window.not_after.unwrap());
        }
    }

    #[test]
    fn rotation_issues_a_new_leaf_under_the_same_intermediate() {
        let keys = NoiseKeys::generate().unwrap();
        let before = keys.current();
        let rotated = keys.rotate_static_key().unwrap();
        let after = keys.current();
        assert_ne!(before.static_public(), rotated);
        assert_eq!(after.static_public(), rotated);
        let (old_intermediate, old_leaf) = chain(&before);
        let (intermediate, leaf) = chain(&after);
        assert_eq!(old_intermediate, intermediate);
        assert_ne!(details(&old_leaf).serial, details(&leaf).serial);
        let intermediate_key: [u8; 32] = details(&intermediate).key.unwrap().try_into().unwrap();
        assert!(verifies(&intermediate_key, &leaf));
    }

    #[test]
    fn the_published_root_key_is_hex_and_base64_of_the_same_bytes() {
        let view = NoiseRootKey::new(&[0xab; 32]);
        assert_eq!(view.hex, "ab".repeat(32));
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&view.base64)
                .unwrap(),
            vec![0xab; 32]
        );
    }
}
