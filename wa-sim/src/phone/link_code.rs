//! The phone's half of "link with phone number instead": the 8-character code the
//! companion shows is the only secret the two sides share, so each wraps a fresh
//! ephemeral X25519 key with it, and the companion's key bundle (sealed under the
//! ephemeral agreement) proves the phone's user typed the right code.
//!
//! Wire formats, as WhatsApp Web, whatsmeow and Baileys build them:
//! - wrapped ephemeral: `salt(32) ‖ iv(16) ‖ AES-256-CTR(key, iv, pub(32))`, the key
//!   being PBKDF2-HMAC-SHA256(code, salt, 2^17 rounds, 32 bytes);
//! - wrapped key bundle: `salt(32) ‖ iv(12) ‖ AES-256-GCM(key, iv, bundle(96))`, the
//!   key being HKDF-SHA256(ephemeral agreement, salt, "link_code_pairing_key_bundle_encryption_key"),
//!   the bundle `companion identity(32) ‖ primary identity(32) ‖ random(32)`;
//! - ADV secret: HKDF-SHA256(ephemeral agreement ‖ identity agreement ‖ random, no
//!   salt, "adv_secret"), the HMAC key of the pair-success container.
//!
//! A mistyped code is only noticed at the bundle: CTR has no integrity, so the phone
//! unwraps a wrong key without error, the two agreements differ, and the bundle's
//! GCM tag fails. That is [`LinkCodeError::WrongCode`].

use aes::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, KeyInit, Mac};
use rand::RngExt as _;
use sha2::Sha256;
use wacore_libsignal::protocol::{IdentityKeyPair, KeyPair, PublicKey};

/// The characters a code is drawn from (Crockford's base 32 without 0, I, O, U).
const ALPHABET: &[u8; 32] = b"123456789ABCDEFGHJKLMNPQRSTVWXYZ";
pub const LINK_CODE_LEN: usize = 8;
const PBKDF2_ROUNDS: u32 = 1 << 17;
const WRAPPED_EPHEMERAL_LEN: usize = 32 + 16 + 32;
const BUNDLE_SALT_LEN: usize = 32;
const BUNDLE_IV_LEN: usize = 12;
const BUNDLE_LEN: usize = 96;
const GCM_TAG_LEN: usize = 16;
const BUNDLE_KEY_INFO: &[u8] = b"link_code_pairing_key_bundle_encryption_key";
const ADV_SECRET_INFO: &[u8] = b"adv_secret";

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkCodeError {
    #[error("a link code is 8 characters of 123456789ABCDEFGHJKLMNPQRSTVWXYZ")]
    MalformedCode,
    #[error("the wrapped {0} has the wrong length")]
    BadLength(&'static str),
    /// The companion's key bundle did not open: the code typed on the phone is not the
    /// one the companion shows.
    #[error("the code does not match the one the companion shows")]
    WrongCode,
    #[error("the key bundle names another primary identity")]
    ForeignPrimary,
    #[error("the key bundle's companion identity differs from the one the companion sent")]
    IdentityMismatch,
    #[error("curve25519: {0}")]
    Curve(String),
}

/// The code as the phone's keyboard produces it: upper case, a dash or spaces allowed
/// between the halves (the companion shows `ABCD-EFGH`). `None` if it cannot be a code.
pub fn normalize_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let valid = code.len() == LINK_CODE_LEN && code.bytes().all(|b| ALPHABET.contains(&b));
    valid.then_some(code)
}

fn pbkdf2_key(code: &str, salt: &[u8]) -> [u8; 32] {
    // One 32-byte block of PBKDF2 (RFC 8018) is all a SHA-256 key needs.
    let keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(code.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    let mut first = keyed.clone();
    first.update(salt);
    first.update(&1u32.to_be_bytes());
    let mut block: [u8; 32] = first.finalize().into_bytes().into();
    let mut key = block;
    for _ in 1..PBKDF2_ROUNDS {
        let mut mac = keyed.clone();
        mac.update(&block);
        block = mac.finalize().into_bytes().into();
        key.iter_mut().zip(block).for_each(|(k, b)| *k ^= b);
    }
    key
}

fn hkdf(ikm: &[u8], salt: Option<&[u8]>, info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(salt, ikm)
        .expand(info, &mut out)
        .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 length"));
    out
}

fn ctr_apply(key: &[u8; 32], iv: &[u8; 16], data: &mut [u8]) {
    let mut cipher = Aes256Ctr::new(key.into(), iv.into());
    cipher.apply_keystream(data);
}

fn unwrap_ephemeral(wrapped: &[u8], code: &str) -> Result<[u8; 32], LinkCodeError> {
    if wrapped.len() != WRAPPED_EPHEMERAL_LEN {
        return Err(LinkCodeError::BadLength("ephemeral key"));
    }
    let (salt, rest) = wrapped.split_at(32);
    let (iv, ciphertext) = rest.split_at(16);
    let iv: &[u8; 16] = iv
        .try_into()
        .map_err(|_| LinkCodeError::BadLength("ephemeral key iv"))?;
    let mut public = [0u8; 32];
    public.copy_from_slice(ciphertext);
    ctr_apply(&pbkdf2_key(code, salt), iv, &mut public);
    Ok(public)
}

fn wrap_ephemeral(public: &[u8; 32], code: &str) -> [u8; WRAPPED_EPHEMERAL_LEN] {
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut salt = [0u8; 32];
    let mut iv = [0u8; 16];
    rng.fill(&mut salt);
    rng.fill(&mut iv);
    let mut ciphertext = *public;
    ctr_apply(&pbkdf2_key(code, &salt), &iv, &mut ciphertext);
    let mut wrapped = [0u8; WRAPPED_EPHEMERAL_LEN];
    wrapped[..32].copy_from_slice(&salt);
    wrapped[32..48].copy_from_slice(&iv);
    wrapped[48..].copy_from_slice(&ciphertext);
    wrapped
}

fn curve(error: impl std::fmt::Display) -> LinkCodeError {
    LinkCodeError::Curve(error.to_string())
}

/// What the phone sends once its user typed a code (`stage="primary_hello"`), and what
/// it keeps to open the companion's answer.
pub struct PrimaryHello {
    /// `link_code_pairing_wrapped_primary_ephemeral_pub`.
    pub wrapped_primary_ephemeral: [u8; WRAPPED_EPHEMERAL_LEN],
    ephemeral: KeyPair,
    /// The companion's ephemeral key as unwrapped with the typed code (garbage if the
    /// code was wrong, which only the bundle reveals).
    companion_ephemeral: [u8; 32],
}

/// The companion keys a successful exchange yields, for the ordinary ADV pairing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedCompanion {
    pub identity_public: [u8; 32],
    pub adv_secret: [u8; 32],
}

impl PrimaryHello {
    /// Unwraps the companion's ephemeral key with `code` and wraps a fresh one of the
    /// phone's. Runs two PBKDF2 derivations: call it off the async threads.
    pub fn new(wrapped_companion_ephemeral: &[u8], code: &str) -> Result<Self, LinkCodeError> {
        let code = normalize_code(code).ok_or(LinkCodeError::MalformedCode)?;
        let companion_ephemeral = unwrap_ephemeral(wrapped_companion_ephemeral, &code)?;
        let ephemeral = KeyPair::generate(&mut rand::make_rng::<rand::rngs::StdRng>());
        let mut public = [0u8; 32];
        public.copy_from_slice(ephemeral.public_key.public_key_bytes());
        Ok(Self {
            wrapped_primary_ephemeral: wrap_ephemeral(&public, &code),
            ephemeral,
            companion_ephemeral,
        })
    }

    /// Opens the companion's `companion_finish` bundle and derives the ADV secret.
    /// `companion_identity` is the `companion_identity_public` the companion sent
    /// beside the bundle; the bundle must carry the same key.
    pub fn open_key_bundle(
        &self,
        wrapped_bundle: &[u8],
        companion_identity: &[u8],
        primary: &IdentityKeyPair,
    ) -> Result<LinkedCompanion, LinkCodeError> {
        if wrapped_bundle.len() != BUNDLE_SALT_LEN + BUNDLE_IV_LEN + BUNDLE_LEN + GCM_TAG_LEN {
            return Err(LinkCodeError::BadLength("key bundle"));
        }
        let companion_ephemeral =
            PublicKey::from_djb_public_key_bytes(&self.companion_ephemeral).map_err(curve)?;
        let ephemeral_shared = self
            .ephemeral
            .private_key
            .calculate_agreement(&companion_ephemeral)
            .map_err(curve)?;
        let (salt, rest) = wrapped_bundle.split_at(BUNDLE_SALT_LEN);
        let (iv, sealed) = rest.split_at(BUNDLE_IV_LEN);
        let key = hkdf(&ephemeral_shared, Some(salt), BUNDLE_KEY_INFO);
        let iv: &[u8; BUNDLE_IV_LEN] = iv
            .try_into()
            .map_err(|_| LinkCodeError::BadLength("key bundle iv"))?;
        let mut bundle = Vec::with_capacity(BUNDLE_LEN);
        wacore_libsignal::crypto::aes_256_gcm_decrypt(&key, iv, b"", sealed, &mut bundle)
            .map_err(|_| LinkCodeError::WrongCode)?;
        let (identity, rest) = bundle.split_at(32);
        let (primary_in_bundle, random) = rest.split_at(32);
        if primary_in_bundle != primary.public_key().public_key_bytes() {
            return Err(LinkCodeError::ForeignPrimary);
        }
        if identity != companion_identity {
            return Err(LinkCodeError::IdentityMismatch);
        }
        let companion_identity = PublicKey::from_djb_public_key_bytes(identity).map_err(curve)?;
        let identity_shared = primary
            .private_key()
            .calculate_agreement(&companion_identity)
            .map_err(curve)?;
        let mut input = Vec::with_capacity(96);
        input.extend_from_slice(&ephemeral_shared);
        input.extend_from_slice(&identity_shared);
        input.extend_from_slice(random);
        let mut identity_public = [0u8; 32];
        identity_public.copy_from_slice(identity);
        Ok(LinkedCompanion {
            identity_public,
            adv_secret: hkdf(&input, None, ADV_SECRET_INFO),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wacore::pair_code::PairCodeUtils;

    fn identity() -> IdentityKeyPair {
        IdentityKeyPair::generate(&mut rand::make_rng::<rand::rngs::StdRng>())
    }

    #[test]
    fn codes_are_normalized_like_a_phone_keyboard() {
        assert_eq!(normalize_code("abcd-efgh").as_deref(), Some("ABCDEFGH"));
        assert_eq!(normalize_code("ABCD EFGH").as_deref(), Some("ABCDEFGH"));
        assert_eq!(normalize_code("ABCDEFG"), None, "too short");
        assert_eq!(normalize_code("ABCDEFG0"), None, "0 is not in the alphabet");
        assert_eq!(normalize_code("ABCDEFGHJ"), None, "too long");
    }

    /// The client's own stage-1 and stage-2 code against the phone's: the right code
    /// links with the ADV secret the client derived, a wrong one is noticed.
    #[test]
    fn the_client_bundle_opens_only_with_the_right_code() {
        let code = "7KQ2M9XA";
        let companion_identity = KeyPair::generate(&mut rand::make_rng::<rand::rngs::StdRng>());
        let companion_ephemeral = KeyPair::generate(&mut rand::make_rng::<rand::rngs::StdRng>());
        let companion_eph_pub: [u8; 32] = companion_ephemeral
            .public_key
            .public_key_bytes()
            .try_into()
            .unwrap();
        let wrapped = PairCodeUtils::encrypt_ephemeral_pub(&companion_eph_pub, code);
        let primary = identity();
        let primary_pub: [u8; 32] = primary.public_key().public_key_bytes().try_into().unwrap();

        for (typed, right) in [("ZZZZ2222", false), ("7kq2-m9xa", true)] {
            let hello = PrimaryHello::new(&wrapped, typed).unwrap();
            let primary_eph = PairCodeUtils::decrypt_primary_ephemeral_pub(
                &hello.wrapped_primary_ephemeral,
                code,
            )
            .unwrap();
            let (bundle, client_adv_secret) = PairCodeUtils::prepare_key_bundle(
                &companion_ephemeral,
                &primary_eph,
                &primary_pub,
                &companion_identity,
            )
            .unwrap();
            let opened = hello.open_key_bundle(
                &bundle,
                companion_identity.public_key.public_key_bytes(),
                &primary,
            );
            if right {
                let linked = opened.expect("the right code opens the bundle");
                assert_eq!(linked.adv_secret, client_adv_secret);
                assert_eq!(
                    &linked.identity_public[..],
                    companion_identity.public_key.public_key_bytes()
                );
            } else {
                assert_eq!(opened, Err(LinkCodeError::WrongCode));
            }
        }
    }
}
