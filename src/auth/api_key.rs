//! API keys: `bw_` followed by 43 random URL-safe characters (256 bits). Only a SHA-256 digest is
//! stored — the key has full entropy, so a slow hash would add nothing but latency — together
//! with a short prefix that lets people tell their keys apart.

use base64::Engine;
use sha2::{Digest, Sha256};

const MARKER: &str = "bw_";
/// How much of the key is kept in clear to identify it in lists.
const PREFIX_LEN: usize = 11;

/// A key as handed to its owner, once.
pub struct GeneratedKey {
    pub secret: String,
    pub prefix: String,
    pub hash: Vec<u8>,
}

pub fn generate() -> GeneratedKey {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let secret = format!(
        "{MARKER}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    GeneratedKey {
        prefix: secret[..PREFIX_LEN].to_owned(),
        hash: digest(&secret),
        secret,
    }
}

/// The stored form of a presented key.
pub fn digest(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// Whether a bearer credential is an API key rather than a JWT.
pub fn looks_like_key(credential: &str) -> bool {
    credential.starts_with(MARKER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_their_digest_matches() {
        let a = generate();
        let b = generate();
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with(&a.prefix) && looks_like_key(&a.secret));
        assert_eq!(a.secret.len(), MARKER.len() + 43);
        assert_eq!(digest(&a.secret), a.hash);
        assert_ne!(digest(&b.secret), a.hash);
    }
}
